#include "netlink.h"

#include <linux/netlink.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <random>

#ifndef SO_RCVBUFFORCE
#define SO_RCVBUFFORCE 33
#endif

namespace pm {
namespace {

constexpr size_t kDgramSize = 1024;    // a proc event datagram is under 100 bytes
constexpr int kSoMemInfo = 55;         // SO_MEMINFO (Linux 4.12+)
constexpr unsigned kMemInfoDrops = 8;  // SK_MEMINFO_DROPS: packets the socket dropped
constexpr unsigned kMemInfoVars = 16;  // room for the kernel's array (9 or 10 today)

int64_t MonoMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (static_cast<int64_t>(ts.tv_sec) * 1000000000LL + ts.tv_nsec) / 1000000;
}

StartError Err(const char* code, std::string msg) { return StartError{code, std::move(msg)}; }

// The kernel refused the subscription. Whether an unprivileged process may subscribe depends
// on how the kernel was built (some builds of Linux 6.6 and later admit any user, others do
// not), so the remedies are named without a version.
StartError Refused() {
  return Err("EPERM",
             "the kernel refused this process's subscription to process events (EPERM): it "
             "admits only privileged subscribers; run as root or with CAP_NET_ADMIN (e.g. "
             "AmbientCapabilities=CAP_NET_ADMIN in a systemd unit), or on a kernel that lets "
             "unprivileged processes subscribe");
}

}  // namespace

bool ConnectorSocket::Open(int rcvbuf, int* granted, bool* forced, StartError* err) {
  fd_ = socket(PF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_CONNECTOR);
  if (fd_ < 0) {
    int e = errno;
    if (e == EPROTONOSUPPORT || e == EAFNOSUPPORT) {
      *err = Err("EPROTONOSUPPORT", "this kernel has no netlink connector (CONFIG_CONNECTOR / CONFIG_PROC_EVENTS)");
    } else {
      *err = Err("ESOCKET", std::string("cannot open a netlink connector socket: ") + std::strerror(e));
    }
    return false;
  }
  if (rcvbuf > 0) {
    int v = rcvbuf;
    if (setsockopt(fd_, SOL_SOCKET, SO_RCVBUFFORCE, &v, sizeof v) == 0) {
      *forced = true;
    } else {
      setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &v, sizeof v);  // capped by rmem_max
    }
  }
  int size = 0;
  socklen_t gl = sizeof size;
  getsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &size, &gl);
  *granted = size;

  sockaddr_nl addr{};
  addr.nl_family = AF_NETLINK;
  addr.nl_pid = 0;
  addr.nl_groups = kCnIdxProc;
  if (bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) {
    int e = errno;
    Close();
    if (e == EPERM || e == EACCES) {
      *err = Refused();
    } else {
      *err = Err("ESOCKET", std::string("cannot bind the netlink connector socket: ") + std::strerror(e));
    }
    return false;
  }
  socklen_t al = sizeof addr;
  getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &al);
  portid_ = addr.nl_pid;

  std::random_device rd;
  seq_base_ = rd() & 0x3fffffff;
  ack_base_ = rd() & 0x3fffffff;
  return true;
}

void ConnectorSocket::Close() {
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
}

bool ConnectorSocket::SendOp(uint32_t op, bool with_mask, uint32_t mask) {
  uint8_t buf[64];
  size_t n = BuildMcastRequest(buf, sizeof buf, op, with_mask, mask, ++seq_base_, ++ack_base_, portid_);
  sockaddr_nl to{};
  to.nl_family = AF_NETLINK;
  to.nl_pid = 0;  // the kernel
  for (;;) {
    ssize_t r = sendto(fd_, buf, n, 0, reinterpret_cast<sockaddr*>(&to), sizeof to);
    if (r >= 0) return true;
    if (errno != EINTR) return false;
  }
}

void ConnectorSocket::Unsubscribe() { SendOp(kMcastIgnore, false, 0); }

bool ConnectorSocket::Subscribe(uint32_t want, bool kernel_filter, int ack_timeout_ms, std::vector<RawEvent>& early, bool* overflow,
                                bool* filtered, StartError* err) {
  bool timed_out = false;
  *filtered = false;
  if (!Listen(false, 0, ack_timeout_ms, early, overflow, err, &timed_out)) {
    if (timed_out) {
      *err = Err("ENOACK",
                 "the kernel never acknowledged the proc connector subscription: either this "
                 "process is not in the host's user/PID namespace (run it on the host, not in "
                 "a container or `unshare -U`), or the kernel lacks CONFIG_PROC_EVENTS");
    }
    return false;
  }
  // Prefer the kernel's own filter (Linux 6.6+) when we do not need everything. The kernel
  // filters its own acknowledgements too, so support is probed with an all-events mask
  // (acknowledged on 6.6+, silently dropped before), then the real mask is set.
  if (kernel_filter && want != kAllEvents) {
    int probe = ack_timeout_ms < 300 ? ack_timeout_ms : 300;
    StartError ignored;
    if (Listen(true, kAllEvents | kNonzeroExit, probe, early, overflow, &ignored, &timed_out) && SendOp(kMcastListen, true, want)) {
      *filtered = true;
    }
  }
  return true;
}

// Sends LISTEN and waits for the kernel's acknowledgement of *this* request. The ack is
// multicast to every listener and carries the per-CPU event counter as its sequence
// number, so it is matched by its ack field (our ack + 1). Events (and acknowledgements,
// which use up sequence numbers) that arrive meanwhile are kept for the reader thread.
bool ConnectorSocket::Listen(bool with_mask, uint32_t mask, int timeout_ms, std::vector<RawEvent>& early, bool* overflow, StartError* err,
                             bool* timed_out) {
  *timed_out = false;
  const uint32_t first_ack = ack_base_ + 1;
  int resent = 0;
  if (!SendOp(kMcastListen, with_mask, mask)) {
    int e = errno;
    if (e == ECONNREFUSED) {
      *err = Err("ENOTHOSTNS",
                 "the kernel's proc connector is not reachable from this network namespace; "
                 "run procmonitor in the host's network namespace");
    } else if (e == EPERM) {
      *err = Refused();
    } else {
      *err = Err("ESUBSCRIBE", std::string("cannot send the proc connector subscription: ") + std::strerror(e));
    }
    return false;
  }
  uint32_t ack = ack_base_;
  int64_t deadline = MonoMs() + timeout_ms;
  std::vector<uint8_t> buf(kDgramSize * 4);
  for (;;) {
    int64_t left = deadline - MonoMs();
    if (left <= 0) {
      *timed_out = true;
      return false;
    }
    pollfd p{fd_, POLLIN, 0};
    int r = poll(&p, 1, static_cast<int>(left));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) continue;
    sockaddr_nl from{};
    socklen_t fl = sizeof from;
    ssize_t n = recvfrom(fd_, buf.data(), buf.size(), MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&from), &fl);
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      if (errno == ENOBUFS) {
        // The socket overflowed (a small receive buffer on a busy machine): the kernel's
        // acknowledgement may be among what it dropped. Ask again (a repeated LISTEN is
        // harmless) and take the answer to either.
        *overflow = true;
        if (resent < 8 && SendOp(kMcastListen, with_mask, mask)) {
          resent++;
          ack = ack_base_;
        }
        continue;
      }
      *err = Err("ESUBSCRIBE", std::string("reading the proc connector failed: ") + std::strerror(errno));
      return false;
    }
    if (from.nl_pid != 0) continue;  // only the kernel speaks here
    scratch_.clear();
    ParseStats ps;
    ParseDatagram(buf.data(), static_cast<size_t>(n), scratch_, ps);
    bool matched = false;
    if (!Acknowledged(early, first_ack, ack, &matched, err)) return false;
    if (matched) return true;
  }
}

bool ConnectorSocket::Acknowledged(std::vector<RawEvent>& early, uint32_t first_ack, uint32_t ack, bool* matched, StartError* err) {
  for (const RawEvent& ev : scratch_) {
    early.push_back(ev);
    if (ev.what == kNone && ev.ack - first_ack >= 1 && ev.ack - first_ack <= ack - first_ack + 1) {
      *matched = true;
      if (ev.a != 0) {
        if (ev.a == EPERM) {
          *err = Refused();
        } else {
          *err = Err("ESUBSCRIBE", std::string("the kernel refused the subscription: ") + std::strerror(static_cast<int>(ev.a)));
        }
        return false;
      }
    }
  }
  return true;
}

int ConnectorSocket::Receive(std::vector<RawEvent>& raw, ParseStats& ps) {
  rbuf_.resize(kBatch * kDgramSize);
  mmsghdr msgs[kBatch];
  iovec iov[kBatch];
  sockaddr_nl from[kBatch];
  for (unsigned i = 0; i < kBatch; i++) {
    iov[i] = {rbuf_.data() + i * kDgramSize, kDgramSize};
    msgs[i] = {};
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
    msgs[i].msg_hdr.msg_name = &from[i];
    msgs[i].msg_hdr.msg_namelen = sizeof from[i];
  }
  int n = recvmmsg(fd_, msgs, kBatch, MSG_DONTWAIT, nullptr);
  for (int i = 0; i < n; i++) {
    if (from[i].nl_pid != 0) continue;  // only the kernel speaks here
    if (msgs[i].msg_hdr.msg_flags & MSG_TRUNC) {
      ps.malformed++;
      continue;
    }
    ParseDatagram(rbuf_.data() + i * kDgramSize, msgs[i].msg_len, raw, ps);
  }
  return n;
}

bool ConnectorSocket::Drops(uint32_t* count) const {
  uint32_t mem[kMemInfoVars] = {};
  socklen_t len = sizeof mem;
  if (getsockopt(fd_, SOL_SOCKET, kSoMemInfo, mem, &len) != 0 || len <= kMemInfoDrops * 4) return false;
  *count = mem[kMemInfoDrops];
  return true;
}

}  // namespace pm
