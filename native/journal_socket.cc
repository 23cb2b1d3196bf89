// See journal_socket.h.
#include "journal_socket.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#ifndef MFD_CLOEXEC
#define MFD_CLOEXEC 0x0001U
#endif
#ifndef MFD_ALLOW_SEALING
#define MFD_ALLOW_SEALING 0x0002U
#endif
#ifndef F_ADD_SEALS
#define F_ADD_SEALS 1033
#define F_SEAL_SEAL 0x0001
#define F_SEAL_SHRINK 0x0002
#define F_SEAL_GROW 0x0004
#define F_SEAL_WRITE 0x0008
#endif

namespace pm {
namespace {

// journald's receive buffer takes what our send buffer holds; as sd-journal does, ask for 8 MiB
// so that bursts of events queue in the kernel rather than fail (the kernel caps it at wmem_max).
constexpr int kSendBuffer = 8 << 20;

bool MakeAddress(const std::string& path, sockaddr_un* sa, socklen_t* len) {
  if (path.empty() || path.size() >= sizeof sa->sun_path || path.find('\0') != std::string::npos) return false;
  std::memset(sa, 0, sizeof *sa);
  sa->sun_family = AF_UNIX;
  std::memcpy(sa->sun_path, path.data(), path.size());
  *len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + 1);
  return true;
}

int WriteAll(int fd, const uint8_t* data, size_t len) {
  while (len > 0) {
    ssize_t w = write(fd, data, len);
    if (w < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    data += w;
    len -= static_cast<size_t>(w);
  }
  return 0;
}

}  // namespace

int JournalSocket::Open() {
  if (fd_ >= 0) return 0;
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return errno;
  int size = kSendBuffer;
  (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);  // (less is fine)
  fd_ = fd;
  return 0;
}

void JournalSocket::Close() {
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
}

int JournalSocket::Send(const std::string& path, const uint8_t* data, size_t len) {
  if (fd_ < 0) return EBADF;
  sockaddr_un sa;
  socklen_t salen = 0;
  if (!MakeAddress(path, &sa, &salen)) return ENAMETOOLONG;
  iovec iov{const_cast<uint8_t*>(data), len};
  msghdr mh{};
  mh.msg_name = &sa;
  mh.msg_namelen = salen;
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  for (;;) {
    if (sendmsg(fd_, &mh, MSG_NOSIGNAL) >= 0) return 0;
    if (errno != EINTR) break;
  }
  // Too large for one datagram: the entry goes in a sealed memfd instead.
  if (errno == EMSGSIZE || errno == ENOBUFS) return SendMemfd(&sa, salen, data, len);
  return errno;
}

int JournalSocket::SendMemfd(const void* addr, unsigned addrlen, const uint8_t* data, size_t len) {
  // (By number: the glibc wrapper is newer than some systems the prebuilds run on.)
  int mfd = static_cast<int>(syscall(SYS_memfd_create, "procmonitor-journal", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (mfd < 0) return errno;  // (ENOSYS before Linux 3.17: the entry cannot be sent at all)
  int err = WriteAll(mfd, data, len);
  // (fcntl by number too: glibc 2.28 renamed the symbol, and the prebuilds need glibc 2.17 only.)
  if (err == 0 && syscall(SYS_fcntl, mfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0) err = errno;
  if (err == 0) {
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
    std::memset(control, 0, sizeof control);
    msghdr mh{};
    mh.msg_name = const_cast<void*>(addr);
    mh.msg_namelen = addrlen;
    mh.msg_control = control;
    mh.msg_controllen = sizeof control;
    cmsghdr* cm = CMSG_FIRSTHDR(&mh);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(cm), &mfd, sizeof(int));
    err = 0;
    for (;;) {
      if (sendmsg(fd_, &mh, MSG_NOSIGNAL) >= 0) break;
      if (errno != EINTR) {
        err = errno;
        break;
      }
    }
  }
  close(mfd);
  return err;
}

}  // namespace pm
