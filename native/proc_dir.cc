#include "proc_dir.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace pm {
namespace {

// "/proc/PID/LEAF" (LEAF may be empty) into path (64 bytes): no printf on the reader's hot path.
void ProcPath(char* path, int32_t pid, const char* leaf) {
  char digits[12];
  int n = 0;
  uint32_t v = pid < 0 ? 0 : static_cast<uint32_t>(pid);
  do {
    digits[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0);
  char* p = path;
  std::memcpy(p, "/proc/", 6);
  p += 6;
  while (n > 0) *p++ = digits[--n];
  size_t l = std::strlen(leaf);
  if (l > 40) l = 40;
  if (l > 0) *p++ = '/';
  std::memcpy(p, leaf, l);
  p[l] = '\0';
}

// Reads all of fd into buf, at most `limit` bytes; closes fd. Bytes read or -1 (errno set).
ssize_t ReadAll(int fd, std::string& buf, size_t limit) {
  if (fd < 0) return -1;
  buf.resize(limit < 4096 ? limit : 4096);
  size_t got = 0;
  for (;;) {
    if (got == buf.size()) {
      if (buf.size() >= limit) break;
      buf.resize(buf.size() * 2 > limit ? limit : buf.size() * 2);
    }
    ssize_t n = read(fd, &buf[got], buf.size() - got);
    if (n < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      close(fd);
      errno = e;
      return -1;
    }
    if (n == 0) break;
    got += static_cast<size_t>(n);
    // The files read here (cmdline, environ, and the single-record seq files comm, status,
    // stat, cgroup, loginuid) return everything that fits in one read: a short read is the
    // end, and the read that would return 0 is saved.
    if (got < buf.size()) break;
  }
  close(fd);
  buf.resize(got);
  return static_cast<ssize_t>(got);
}

bool LinkAt(int dir, const char* path, std::string& out) {
  char target[4096];
  ssize_t l = readlinkat(dir, path, target, sizeof target);
  if (l < 0) return false;
  if (static_cast<size_t>(l) >= sizeof target) {
    errno = ENAMETOOLONG;
    return false;
  }
  out.assign(target, static_cast<size_t>(l));
  return true;
}

}  // namespace

ProcDir& ProcDir::operator=(ProcDir&& o) noexcept {
  if (this != &o) {
    Close();
    fd_ = o.fd_;
    pid_ = o.pid_;
    o.fd_ = -1;
  }
  return *this;
}

bool ProcDir::Open(int32_t pid) {
  if (fd_ >= 0 && pid_ == pid) return true;
  Close();
  char path[64];
  ProcPath(path, pid, "");
  fd_ = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
  pid_ = pid;
  return fd_ >= 0;
}

void ProcDir::Close() {
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
}

ssize_t ProcDir::Read(int32_t pid, const char* leaf, std::string& buf, size_t limit) {
  if (!Open(pid)) return -1;
  return ReadAll(openat(fd_, leaf, O_RDONLY | O_CLOEXEC), buf, limit);
}

bool ProcDir::Link(int32_t pid, const char* leaf, std::string& out) { return Open(pid) && LinkAt(fd_, leaf, out); }

ssize_t ReadProcFile(int32_t pid, const char* leaf, std::string& buf, size_t limit) {
  char path[64];
  ProcPath(path, pid, leaf);
  return ReadKernelFile(path, buf, limit);
}

ssize_t ReadKernelFile(const char* path, std::string& buf, size_t limit) { return ReadAll(open(path, O_RDONLY | O_CLOEXEC), buf, limit); }

}  // namespace pm
