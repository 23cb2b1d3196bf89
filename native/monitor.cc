#include "monitor.h"

#include <linux/netlink.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>

#ifndef SO_RCVBUFFORCE
#define SO_RCVBUFFORCE 33
#endif

namespace pm {
namespace {

constexpr unsigned kBatch = 64;        // datagrams per recvmmsg
constexpr size_t kDgramSize = 1024;    // a proc event datagram is under 100 bytes
constexpr uint32_t kMaxCpus = 8192;    // sanity bound for the per-CPU sequence table
constexpr int kSoMemInfo = 55;         // SO_MEMINFO (Linux 4.12+)
constexpr unsigned kMemInfoDrops = 8;  // SK_MEMINFO_DROPS: packets the socket dropped
constexpr unsigned kMemInfoVars = 16;  // room for the kernel's array (9 or 10 today)

// The first 8 hex digits of this boot's random id: exec ids of two boots never collide.
std::string ReadBootId() {
  std::string id;
  FILE* f = std::fopen("/proc/sys/kernel/random/boot_id", "re");
  if (f != nullptr) {
    int c;
    while ((c = std::fgetc(f)) != EOF && id.size() < 8) {
      if (std::isxdigit(c)) id.push_back(static_cast<char>(std::tolower(c)));
    }
    std::fclose(f);
  }
  if (id.size() < 8) id = "00000000";
  return id;
}

int64_t Now(clockid_t c) {
  timespec ts;
  clock_gettime(c, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000LL + ts.tv_nsec;
}

int64_t MonoMs() { return Now(CLOCK_MONOTONIC) / 1000000; }

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

Monitor::Monitor(std::function<void()> notify) : notify_(std::move(notify)) {}

Monitor::~Monitor() {
  Stop();
  pthread_cond_destroy(&seeded_cv_);
}

bool Monitor::SendOp(uint32_t op, bool with_mask, uint32_t mask, uint32_t seq, uint32_t ack) {
  uint8_t buf[64];
  size_t n = BuildMcastRequest(buf, sizeof buf, op, with_mask, mask, seq, ack, portid_);
  sockaddr_nl to{};
  to.nl_family = AF_NETLINK;
  to.nl_pid = 0;  // the kernel
  for (;;) {
    ssize_t r = sendto(fd_, buf, n, 0, reinterpret_cast<sockaddr*>(&to), sizeof to);
    if (r >= 0) return true;
    if (errno != EINTR) return false;
  }
}

// Sends LISTEN and waits for the kernel's acknowledgement of *this* request. The ack is
// multicast to every listener and carries the per-CPU event counter as its sequence
// number, so it is matched by its ack field (our ack + 1). Events (and acknowledgements,
// which use up sequence numbers) that arrive meanwhile are kept for the reader thread.
bool Monitor::Subscribe(bool with_mask, uint32_t mask, int timeout_ms, StartError* err, bool* timed_out) {
  *timed_out = false;
  uint32_t seq = ++seq_base_;
  uint32_t ack = ++ack_base_;
  const uint32_t first_ack = ack;
  int resent = 0;
  if (!SendOp(kMcastListen, with_mask, mask, seq, ack)) {
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
  int64_t deadline = MonoMs() + timeout_ms;
  std::vector<uint8_t> buf(kDgramSize * 4);
  ParseStats ps;
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
        overflow_ = true;
        if (resent < 8 && SendOp(kMcastListen, with_mask, mask, ++seq_base_, ++ack_base_)) {
          resent++;
          ack = ack_base_;
        }
        continue;
      }
      *err = Err("ESUBSCRIBE", std::string("reading the proc connector failed: ") + std::strerror(errno));
      return false;
    }
    if (from.nl_pid != 0) continue;  // only the kernel speaks here
    raw_.clear();
    ParseDatagram(buf.data(), static_cast<size_t>(n), raw_, ps);
    bool matched = false;
    for (const RawEvent& ev : raw_) {
      early_.push_back(ev);
      if (ev.what == kNone && ev.ack - first_ack >= 1 && ev.ack - first_ack <= ack - first_ack + 1) {
        matched = true;
        {
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
    }
    if (matched) return true;
  }
}

bool Monitor::Start(const Options& opts, StartError* err) {
  if (running_) return true;
  opts_ = opts;
  stop_ = false;
  early_.clear();
  last_seq_.clear();
  seen_cpu_.clear();
  overflow_ = false;
  flush_deferred_ = false;
  read_errno_ = 0;
  {
    std::lock_guard<std::mutex> lk(mu_);
    fatal_.clear();
    injected_.clear();
  }
  drops_seen_ = 0;  // a new socket
  drops_credit_ = 0;
  {
    std::lock_guard<std::mutex> lk(table_mu_);
    table_.clear();
    seeded_ = !opts.seed;
  }
  boot_ = ReadBootId();
  {
    std::lock_guard<std::mutex> lk(mu_);
    queue_.clear();
    queue_dropped_ = 0;
    notified_ = false;
    stats_ = Stats();
  }
  want_ = opts.events & kAllEvents;
  // Bookkeeping: the process table (exec ids, ancestry, what exited, snapshot()) follows
  // fork, exec, exit and comm whatever is reported, and uid changes (setuid() and friends)
  // so that exec and exit know the user without reading /proc/PID/status.
  want_ |= kFork | kExec | kExit | kComm | kUid;

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
  Stats st;
  if (opts.rcvbuf > 0) {
    int v = opts.rcvbuf;
    if (setsockopt(fd_, SOL_SOCKET, SO_RCVBUFFORCE, &v, sizeof v) == 0) {
      st.rcvbuf_forced = true;
    } else {
      setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &v, sizeof v);  // capped by rmem_max
    }
  }
  int granted = 0;
  socklen_t gl = sizeof granted;
  getsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &granted, &gl);
  st.rcvbuf = granted;

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

  bool timed_out = false;
  with_mask_ = false;
  if (!Subscribe(false, 0, opts.ack_timeout_ms, err, &timed_out)) {
    if (timed_out) {
      *err = Err("ENOACK",
                 "the kernel never acknowledged the proc connector subscription: either this "
                 "process is not in the host's user/PID namespace (run it on the host, not in "
                 "a container or `unshare -U`), or the kernel lacks CONFIG_PROC_EVENTS");
    }
    Close();
    return false;
  }
  // Prefer the kernel's own filter (Linux 6.6+) when we do not need everything. The kernel
  // filters its own acknowledgements too, so support is probed with an all-events mask
  // (acknowledged on 6.6+, silently dropped before), then the real mask is set.
  if (opts.kernel_filter && want_ != kAllEvents) {
    int probe = opts.ack_timeout_ms < 300 ? opts.ack_timeout_ms : 300;
    StartError ignored;
    if (Subscribe(true, kAllEvents | kNonzeroExit, probe, &ignored, &timed_out) &&
        SendOp(kMcastListen, true, want_, ++seq_base_, ++ack_base_)) {
      with_mask_ = true;
    }
  }
  filter_active_ = with_mask_;
  st.kernel_filter = with_mask_;
  {
    std::lock_guard<std::mutex> lk(mu_);
    stats_ = st;
  }
  wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd_ < 0) {
    *err = Err("ESOCKET", std::string("eventfd: ") + std::strerror(errno));
    SendOp(kMcastIgnore, false, 0, ++seq_base_, ++ack_base_);
    Close();
    return false;
  }
  clock_offset_ns_ = Now(CLOCK_REALTIME) - Now(CLOCK_MONOTONIC);
  running_ = true;
  thread_ = std::thread([this] { Run(); });
  return true;
}

void Monitor::Close() {
  if (fd_ >= 0) close(fd_);
  if (wake_fd_ >= 0) close(wake_fd_);
  fd_ = -1;
  wake_fd_ = -1;
}

void Monitor::Stop() {
  if (!running_) return;
  stop_ = true;
  uint64_t one = 1;
  ssize_t w = write(wake_fd_, &one, sizeof one);
  (void)w;
  if (thread_.joinable()) thread_.join();
  // Everything already in the socket still counts: read it before unsubscribing.
  std::vector<OutEvent> rest;
  ReadBatch(rest);
  Push(rest);
  SendOp(kMcastIgnore, false, 0, ++seq_base_, ++ack_base_);
  Close();
  running_ = false;
}

double Monitor::WallMs(uint64_t ts_ns) const { return static_cast<double>((static_cast<int64_t>(ts_ns) + clock_offset_ns_) / 1000000); }

void Monitor::Run() {
  // A short-lived process must still be in /proc when its exec is read: the reader wakes
  // ahead of ordinary work where the system lets it (CAP_SYS_NICE). It sleeps in poll()
  // otherwise, so this costs nothing when idle.
  prctl(PR_SET_NAME, "procmon-reader", 0, 0, 0);  // this thread's name (old-glibc safe)
  pid_t tid = static_cast<pid_t>(syscall(SYS_gettid));
  if (opts_.nice != 0) setpriority(PRIO_PROCESS, static_cast<id_t>(tid), opts_.nice);
  errno = 0;
  int nice_now = getpriority(PRIO_PROCESS, static_cast<id_t>(tid));
  {
    std::lock_guard<std::mutex> lk(mu_);
    stats_.nice = errno == 0 ? nice_now : 0;
  }
  if (opts_.seed) Seed();  // takes the table lock per process
  // JS is woken at most once per batch interval: events read meanwhile (at once, for /proc's
  // sake) wait in the queue and go over together, which saves a wake-up and a write per
  // client for each of them.
  const int64_t interval = static_cast<int64_t>(opts_.batch_interval_us) * 1000;
  int64_t last_wake = 0;
  bool due = false;
  auto wake = [&](bool more) {
    due = due || more;
    int64_t now = Now(CLOCK_MONOTONIC);
    if (due && now - last_wake >= interval) {
      notify_();
      last_wake = now;
      due = false;
    }
  };
  std::vector<OutEvent> batch;
  {
    std::lock_guard<std::mutex> lk(table_mu_);
    for (RawEvent& ev : early_) Handle(ev, batch, nullptr);
  }
  early_.clear();
  wake(Push(batch));
  pollfd fds[2] = {{fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
  while (!stop_) {
    timespec ts;
    timespec* timeout = nullptr;
    if (due) {
      int64_t left = last_wake + interval - Now(CLOCK_MONOTONIC);
      if (left < 0) left = 0;
      ts.tv_sec = static_cast<time_t>(left / 1000000000);
      ts.tv_nsec = static_cast<long>(left % 1000000000);
      timeout = &ts;
    }
    int r = ppoll(fds, 2, timeout, nullptr);
    if (r < 0) {
      if (errno == EINTR) continue;
      Fail(std::string("poll on the netlink socket failed: ") + std::strerror(errno));
      break;
    }
    if (stop_) break;
    if (fds[1].revents) {
      std::string why;
      {
        std::lock_guard<std::mutex> lk(mu_);
        why.swap(injected_);
      }
      if (!why.empty()) Fail(why);
      break;
    }
    if (fds[0].revents & POLLNVAL) {
      Fail("the netlink socket was closed under the reader");
      break;
    }
    bool more = false;
    if (r > 0 && fds[0].revents) {
      clock_offset_ns_ = Now(CLOCK_REALTIME) - Now(CLOCK_MONOTONIC);
      batch.clear();
      ReadBatch(batch);
      if (flush_deferred_) {
        std::lock_guard<std::mutex> lk(table_mu_);
        FlushDeferred(batch);
        flush_deferred_ = false;
      }
      more = Push(batch);
      if (read_errno_ != 0) {
        notify_();  // what was read before the failure goes first
        Fail(std::string("reading the netlink socket failed: ") + std::strerror(read_errno_));
        break;
      }
    }
    wake(more);
  }
}

void Monitor::Fail(const std::string& why) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    fatal_ = why;
  }
  notify_();
}

std::string Monitor::TakeFatal() {
  std::lock_guard<std::mutex> lk(mu_);
  std::string why;
  why.swap(fatal_);
  return why;
}

void Monitor::InjectFault(const std::string& why) {
  if (!running_ || wake_fd_ < 0) return;
  {
    std::lock_guard<std::mutex> lk(mu_);
    injected_ = why.empty() ? std::string("injected fault") : why;
  }
  uint64_t one = 1;
  ssize_t w = write(wake_fd_, &one, sizeof one);
  (void)w;
}

// Reads every datagram waiting in the socket, a batch per syscall.
void Monitor::ReadBatch(std::vector<OutEvent>& out) {
  std::vector<uint8_t>& bufs = rbuf_;
  bufs.resize(kBatch * kDgramSize);
  mmsghdr msgs[kBatch];
  iovec iov[kBatch];
  sockaddr_nl from[kBatch];
  for (;;) {
    for (unsigned i = 0; i < kBatch; i++) {
      iov[i] = {bufs.data() + i * kDgramSize, kDgramSize};
      msgs[i] = {};
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
      msgs[i].msg_hdr.msg_name = &from[i];
      msgs[i].msg_hdr.msg_namelen = sizeof from[i];
    }
    int n = recvmmsg(fd_, msgs, kBatch, MSG_DONTWAIT, nullptr);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == ENOBUFS) {
        // The kernel dropped events: the socket buffer was full.
        std::lock_guard<std::mutex> lk(mu_);
        stats_.enobufs++;
        overflow_ = true;
        continue;
      }
      if (errno != EAGAIN && errno != EWOULDBLOCK) read_errno_ = errno;
      if (overflow_) FlushDrops(out);
      return;  // EAGAIN: drained
    }
    ParseStats ps;
    uint64_t received = 0;
    raw_.clear();
    for (int i = 0; i < n; i++) {
      if (from[i].nl_pid != 0) continue;  // only the kernel speaks here
      if (msgs[i].msg_hdr.msg_flags & MSG_TRUNC) {
        ps.malformed++;
        continue;
      }
      ParseDatagram(bufs.data() + i * kDgramSize, msgs[i].msg_len, raw_, ps);
    }
    // A short-lived process may be gone a moment after its exec: read what it loses
    // first (argv, then exe) for every exec of the batch before anything else.
    execs_.clear();
    for (const RawEvent& ev : raw_) {
      if (ev.what == kExec) execs_.emplace_back();
    }
    size_t k = 0;
    for (const RawEvent& ev : raw_) {
      if (ev.what == kExec) ReadArgv(ev.tgid, execs_[k++]);
    }
    k = 0;
    for (const RawEvent& ev : raw_) {
      if (ev.what != kExec) continue;
      ProcInfo& info = execs_[k++];
      if (!info.gone) ReadExe(ev.tgid, info);  // the table keeps it too
    }
    k = 0;
    {
      std::lock_guard<std::mutex> lk(table_mu_);
      for (const RawEvent& ev : raw_) {
        if (ev.what != kNone) received++;
        // Acknowledgements are handled too: they use up sequence numbers.
        Handle(ev, out, ev.what == kExec ? &execs_[k++] : nullptr);
      }
    }
    {
      std::lock_guard<std::mutex> lk(mu_);
      stats_.received += received;
      stats_.malformed += ps.malformed;
    }
    if (static_cast<unsigned>(n) < kBatch) {
      if (overflow_) FlushDrops(out);
      return;
    }
  }
}

// A socket drop (the receive buffer was full) is counted by the kernel exactly, whatever
// the filter: read that count. A per-CPU seq gap is also a loss where no event is filtered
// out; the drops already reported account for the first such gaps, only the rest is new.
void Monitor::EmitLost(uint64_t count, double time_ms, std::vector<OutEvent>& out) {
  flush_deferred_ = true;  // a thread's exit may be among the lost
  OutEvent o;
  o.what = kLost;
  o.time_ms = time_ms;
  o.lost_count = count;
  o.lost_source = kLostKernel;
  out.push_back(std::move(o));
  std::lock_guard<std::mutex> lk(mu_);
  stats_.lost_kernel += count;
}

// Reads the socket's drop counter and reports what it grew by. Called once the socket
// has been drained after an ENOBUFS: until then the kernel may still be dropping (the
// socket stays congested until its queue is empty), and everything read before came
// before the drops, so the report stands where the loss happened.
void Monitor::FlushDrops(std::vector<OutEvent>& out) {
  overflow_ = false;
  uint32_t mem[kMemInfoVars] = {};
  socklen_t len = sizeof mem;
  if (getsockopt(fd_, SOL_SOCKET, kSoMemInfo, mem, &len) != 0 || len <= kMemInfoDrops * 4) return;
  uint32_t delta = mem[kMemInfoDrops] - drops_seen_;
  drops_seen_ = mem[kMemInfoDrops];
  if (delta == 0) return;
  drops_credit_ += delta;
  EmitLost(delta, static_cast<double>(Now(CLOCK_REALTIME) / 1000000), out);
}

void Monitor::CheckGap(const RawEvent& ev, std::vector<OutEvent>& out) {
  if (ev.cpu >= kMaxCpus) return;
  if (ev.cpu >= last_seq_.size()) {
    last_seq_.resize(ev.cpu + 1, 0);
    seen_cpu_.resize(ev.cpu + 1, 0);
  }
  uint32_t c = ev.cpu;
  if (seen_cpu_[c] && !filter_active_) {
    uint32_t gap = ev.seq - last_seq_[c] - 1;
    if (gap != 0 && gap < 0x80000000u) {
      // An event after the drops arrived before the socket looked drained: count them now.
      if (overflow_) FlushDrops(out);
      uint64_t known = drops_credit_ < gap ? drops_credit_ : gap;
      drops_credit_ -= known;
      if (gap > known) EmitLost(gap - known, WallMs(ev.ts_ns), out);
    }
  }
  seen_cpu_[c] = 1;
  last_seq_[c] = ev.seq;
}

Monitor::Proc* Monitor::Lookup(int32_t tgid, bool learn) {
  auto it = table_.find(tgid);
  if (it != table_.end()) return &it->second;
  if (!learn || tgid <= 0) return nullptr;
  // A process that was running before we started: learn it from /proc.
  ProcInfo info;
  if (!ReadProc(tgid, true, info)) return nullptr;
  Redact(info.argv, opts_.redact);
  Proc p = Learned(info);
  p.start_ns = ReadStartNs(tgid);
  p.run_ns = p.start_ns;  // when it last exec'd is not known: its start stands for it
  ReadCgroupOf(tgid, p);
  return Insert(tgid, std::move(p));
}

void Monitor::ReadCgroupOf(int32_t pid, Proc& p) {
  if (!opts_.cgroups) return;
  p.have_cgroup = ReadCgroup(pid, p.cgroup);
  if (!p.have_cgroup) p.cgroup.clear();
  p.container_id = p.have_cgroup ? ContainerIdOf(p.cgroup) : std::string();  // once per read
}

// boot:pid:start of the run in ns of the kernel's monotonic clock. Unique within a boot
// (one pid cannot start two runs in the same nanosecond), and the boot prefix keeps ids
// of different boots apart.
std::string Monitor::ExecId(int32_t pid, uint64_t run_ns) const {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%s:%d:%llu", boot_.c_str(), pid, static_cast<unsigned long long>(run_ns));
  return buf;
}

std::string Monitor::RunOf(int32_t pid) const {
  const Proc* p = pid > 0 ? Find(pid) : nullptr;
  return p != nullptr && p->run_ns != 0 ? ExecId(pid, p->run_ns) : std::string();
}

const Monitor::Proc* Monitor::Find(int32_t pid) const {
  auto it = table_.find(pid);
  return it == table_.end() ? nullptr : &it->second;
}

void Monitor::Identify(OutEvent& o, int32_t pid, const Proc* p, int32_t ppid, uint64_t run_ns) {
  if (p != nullptr && p->run_ns != 0) run_ns = p->run_ns;
  if (run_ns != 0) {
    o.exec_id = ExecId(pid, run_ns);
  } else {
    o.missing |= kMissExecId;
  }
  if (p != nullptr) o.learned = p->from_proc;
  o.parent_exec_id = RunOf(ppid);
  if (o.parent_exec_id.empty() && ppid != 0) o.missing |= kMissParentExecId;  // pid 0: the kernel
  if (opts_.cgroups && (o.what == kFork || o.what == kExec || o.what == kExit)) {
    o.with_cgroup = true;
    if (p != nullptr && p->have_cgroup) {
      o.cgroup = p->cgroup;
      o.container_id = p->container_id;
    } else {
      o.missing |= kMissCgroup;
    }
  }
  if (opts_.ancestor_depth <= 0 || !(opts_.ancestor_events & o.what)) return;
  o.with_ancestors = true;
  int32_t next = ppid;
  for (int depth = 0; depth < opts_.ancestor_depth; depth++) {
    if (next <= 0) break;  // above init (or kthreadd): the top
    const Proc* a = Find(next);
    if (a == nullptr) {
      o.missing |= kMissAncestors;
      break;
    }
    Ancestor anc;
    anc.pid = next;
    if (a->run_ns != 0) anc.exec_id = ExecId(next, a->run_ns);
    anc.comm = a->comm;
    anc.exe = a->exe;
    anc.have_exe = a->have_exe;
    o.ancestors.push_back(std::move(anc));
    if (next == 1) break;
    next = a->ppid;
  }
}

void Monitor::Record(int32_t pid, const Proc& p, ProcRecord& r) {
  r.pid = pid;
  r.ppid = p.ppid;
  if (p.run_ns != 0) r.exec_id = ExecId(pid, p.run_ns);
  r.parent_exec_id = RunOf(p.ppid);
  r.comm = p.comm;
  r.have_comm = p.have_comm;
  r.exe = p.exe;
  r.have_exe = p.have_exe;
  r.cmdline = p.cmdline;
  r.have_cmd = p.have_cmd;
  r.uid = p.uid;
  r.have_uid = p.have_uid;
  if (p.have_uid) r.user = users_.Name(p.uid);
  r.cgroup = p.cgroup;
  r.have_cgroup = p.have_cgroup;
  r.container_id = p.container_id;
  r.learned = p.from_proc;
  r.start_ms = p.start_ns != 0 ? WallMs(p.start_ns) : -1;
  r.exec_ms = p.run_ns != 0 ? WallMs(p.run_ns) : -1;
  r.threads = p.threads;
}

// Waits for the scan of /proc at start: until it is over, the table lacks processes that
// are running. The reader thread always ends the scan (Seed() marks it over even when it
// stops early), and only this (JS) thread could stop it. An untimed wait: a timed one
// needs pthread_cond_clockwait (glibc 2.30+), which the prebuilds must not.
void Monitor::WaitSeeded(std::unique_lock<std::mutex>& lk) {
  while (!seeded_ && running_) pthread_cond_wait(&seeded_cv_, lk.mutex()->native_handle());
}

void Monitor::Snapshot(std::vector<ProcRecord>& out) {
  std::unique_lock<std::mutex> lk(table_mu_);
  out.clear();
  if (!running_) return;
  WaitSeeded(lk);
  out.reserve(table_.size());
  for (const auto& kv : table_) {
    out.emplace_back();
    Record(kv.first, kv.second, out.back());
  }
}

bool Monitor::Ancestry(int32_t pid, std::vector<ProcRecord>& out) {
  std::unique_lock<std::mutex> lk(table_mu_);
  out.clear();
  if (!running_) return false;
  WaitSeeded(lk);
  int32_t next = pid;
  // Bounded: a chain longer than the table is a loop (a stale entry), not ancestry.
  for (size_t depth = 0; next > 0 && depth <= table_.size(); depth++) {
    const Proc* p = Find(next);
    if (p == nullptr) break;
    out.emplace_back();
    Record(next, *p, out.back());
    if (next == 1) break;
    next = p->ppid;
  }
  return !out.empty();
}

// What /proc says of a process, as a table entry.
Monitor::Proc Monitor::Learned(const ProcInfo& info) {
  Proc p;
  p.ppid = info.ppid;
  p.uid = info.uid;
  p.have_uid = info.have_status;
  p.comm = info.comm;
  p.have_comm = info.have_status;
  p.cmdline = info.have_argv ? JoinArgv(info.argv) : std::string();
  p.have_cmd = info.have_argv;
  p.exe = info.exe;
  p.have_exe = info.have_exe;
  p.from_proc = true;
  return p;
}

// Learns every process already running, so that their exits say what exited. Runs after
// the subscription: a process that starts meanwhile is seen by its events as well.
void Monitor::Seed() {
  for (int32_t pid : ListPids()) {
    if (stop_) break;
    std::lock_guard<std::mutex> lk(table_mu_);  // per process: events are handled between
    if (table_.size() >= opts_.table_max) break;
    Lookup(pid, true);
  }
  std::lock_guard<std::mutex> lk(table_mu_);
  seeded_ = true;
  pthread_cond_broadcast(&seeded_cv_);
}

Monitor::Proc* Monitor::Insert(int32_t tgid, Proc&& p) {
  if (table_.size() >= opts_.table_max && table_.find(tgid) == table_.end()) {
    Sweep();
    if (table_.size() >= opts_.table_max) {
      std::lock_guard<std::mutex> lk(mu_);
      stats_.table_full++;
      return nullptr;
    }
  }
  Proc& slot = table_[tgid];
  slot = std::move(p);
  return &slot;
}

// Forgets processes whose exit we never saw (lost events). A gone process whose exit waits
// for its last thread's (lost too, maybe) stays for FlushDeferred to report.
void Monitor::Sweep() {
  for (auto it = table_.begin(); it != table_.end();) {
    if (kill(it->first, 0) < 0 && errno == ESRCH) {
      if (it->second.leader_exited) {
        flush_deferred_ = true;
        ++it;
        continue;
      }
      it = table_.erase(it);
    } else {
      ++it;
    }
  }
}

// After a loss: processes whose main thread's exit waits for other threads' exits that may
// have been lost are reported now if they are gone, with the main thread's status.
void Monitor::FlushDeferred(std::vector<OutEvent>& out) {
  for (auto it = table_.begin(); it != table_.end();) {
    if (it->second.leader_exited && kill(it->first, 0) < 0 && errno == ESRCH) {
      EmitExit(it->second.leader_exit, &it->second, false, out);
      it = table_.erase(it);
    } else {
      ++it;
    }
  }
}

void Monitor::FillProcess(OutEvent& o, const Proc* p) {
  if (p == nullptr) {
    o.user = "unknown";
    o.missing |= kMissUser | kMissComm | kMissCmdline | kMissPpid;
    return;
  }
  if (p->have_uid) {
    o.uid = p->uid;
    o.user = users_.Name(p->uid);
  } else {
    o.user = "unknown";
    o.missing |= kMissUser;
  }
  o.comm = p->comm;
  if (!p->have_comm) o.missing |= kMissComm;
  o.cmdline = p->cmdline;
  if (!p->have_cmd) o.missing |= kMissCmdline;
}

void Monitor::EmitExit(const RawEvent& ev, Proc* p, bool thread, std::vector<OutEvent>& out) {
  if (!(opts_.events & kExit)) return;
  OutEvent o = Make(ev, thread ? ev.pid : ev.tgid);
  o.thread = thread;
  FillProcess(o, p);
  if (ev.has_parent && ev.ptgid > 0) {
    o.ppid = ev.ptgid;
  } else if (p != nullptr) {
    o.ppid = p->ppid;
  } else {
    o.missing |= kMissPpid;
  }
  if (ev.has_parent) o.missing &= ~kMissPpid;
  if (p != nullptr && p->start_ns != 0 && ev.ts_ns >= p->start_ns) {
    o.duration_ms = static_cast<double>((ev.ts_ns - p->start_ns) / 1000) / 1000.0;
  } else {
    o.missing |= kMissDuration;
  }
  Identify(o, ev.tgid, p, (o.missing & kMissPpid) ? 0 : o.ppid, 0);
  out.push_back(std::move(o));
}

// The part every reported event shares: kind, kernel fields, time, the process it is about.
OutEvent Monitor::Make(const RawEvent& ev, int32_t pid) const {
  OutEvent o;
  o.what = ev.what;
  o.raw = ev;
  o.time_ms = WallMs(ev.ts_ns);
  o.pid = pid;
  o.thread = ev.pid != ev.tgid;
  return o;
}

// An event about a process that changes nothing the table keeps (or only a field): what
// identifies the process comes from the table.
OutEvent Monitor::About(const RawEvent& ev) {
  OutEvent o = Make(ev, ev.tgid);
  const Proc* p = Find(ev.tgid);
  Identify(o, ev.tgid, p, p ? p->ppid : 0, 0);
  return o;
}

void Monitor::Handle(const RawEvent& ev, std::vector<OutEvent>& out, ProcInfo* pre) {
  CheckGap(ev, out);
  const bool leader = ev.pid == ev.tgid;
  const bool report = (opts_.events & ev.what) && (leader || opts_.threads);
  switch (ev.what) {
    case kFork: {
      if (!leader) {
        // A new thread in process tgid.
        Proc* p = Lookup(ev.tgid, report);
        if (p) p->threads++;
        if (report) {
          OutEvent o = Make(ev, ev.pid);
          o.ppid = ev.tgid;
          FillProcess(o, p);
          Identify(o, ev.tgid, p, p ? p->ppid : 0, 0);
          out.push_back(std::move(o));
        }
        break;
      }
      Proc* parent = Lookup(ev.ptgid, true);
      Proc child;
      if (parent) {
        child = *parent;  // a forked child runs its parent's program
      } else {
        ProcInfo info;
        if (ReadProc(ev.tgid, true, info)) {
          Redact(info.argv, opts_.redact);
          child = Learned(info);
        }
        ReadCgroupOf(ev.tgid, child);
      }
      child.from_proc = false;
      child.threads = 0;
      child.leader_exited = false;
      child.start_ns = ev.ts_ns;
      child.run_ns = ev.ts_ns;  // a new process: a run of its own, until it execs
      child.ppid = ev.ptgid;
      Proc* c = Insert(ev.tgid, std::move(child));
      if (report) {
        OutEvent o = Make(ev, ev.tgid);
        o.ppid = ev.ptgid;
        FillProcess(o, c ? c : parent);
        Identify(o, ev.tgid, c, ev.ptgid, ev.ts_ns);
        out.push_back(std::move(o));
      }
      break;
    }
    case kExec: {
      ProcInfo own;
      ProcInfo& info = pre ? *pre : own;
      Proc* p = Lookup(ev.tgid, false);
      if (!pre) {
        ReadProc(ev.tgid, true, info);
      } else if (info.gone) {
        // Reaped already: nothing more to read under this pid (or another process's).
      } else if (p && p->have_uid && p->ppid > 0) {
        // exec keeps the real uid and the parent, which we know: only the name is new.
        ReadComm(ev.tgid, info);
      } else {
        ReadStatus(ev.tgid, info);
      }
      Redact(info.argv, opts_.redact);
      if (p == nullptr) {
        Proc np;
        np.start_ns = 0;
        p = Insert(ev.tgid, std::move(np));
      }
      if (p) {
        p->leader_exited = false;  // an exec from a thread replaces the old leader
        if (info.have_status) {
          p->uid = info.uid;
          p->have_uid = true;
          p->ppid = info.ppid;
          p->comm = info.comm;
          p->have_comm = true;
        } else if (info.have_comm) {
          p->comm = info.comm;
          p->have_comm = true;
        } else {
          p->have_comm = false;
          p->comm.clear();  // not the name from before the exec
        }
        p->cmdline = info.have_argv ? JoinArgv(info.argv) : std::string();
        p->have_cmd = info.have_argv;
        p->exe = info.have_exe ? info.exe : std::string();
        p->have_exe = info.have_exe;
        p->run_ns = ev.ts_ns;  // a new program run
        p->from_proc = false;
        if (!info.gone) {
          ReadCgroupOf(ev.tgid, *p);  // where it runs now (a runtime moves it before exec)
        }
      }
      if (!report) break;
      OutEvent o = Make(ev, ev.tgid);
      if (p) {
        FillProcess(o, p);
        o.ppid = p->ppid;  // from /proc, else from the fork we saw
        if (p->ppid <= 0) o.missing |= kMissPpid;
      } else {
        o.user = info.have_status ? users_.Name(info.uid) : "unknown";
        o.uid = info.uid;
        o.comm = info.comm;
        o.ppid = info.ppid;
        o.cmdline = JoinArgv(info.argv);
        if (!info.have_status) o.missing |= kMissUser | kMissComm | kMissPpid;
        if (!info.have_argv) o.missing |= kMissCmdline;
      }
      if (info.have_argv) {
        o.argv = std::move(info.argv);
      } else {
        o.missing |= kMissArgv;
      }
      if (info.have_exe) {
        o.exe = std::move(info.exe);
      } else {
        o.missing |= kMissExe;
      }
      Identify(o, ev.tgid, p, (o.missing & kMissPpid) ? 0 : o.ppid, ev.ts_ns);
      out.push_back(std::move(o));
      break;
    }
    case kExit: {
      auto it = table_.find(ev.tgid);
      Proc* p = it == table_.end() ? nullptr : &it->second;
      if (!leader) {
        if (report) EmitExit(ev, p, true, out);
        if (p) {
          if (p->threads > 0) p->threads--;
          if (p->leader_exited && p->threads == 0) {
            // The last thread of a process whose main thread ended earlier: the process
            // ends now, with this thread's status.
            RawEvent last = ev;
            last.pid = ev.tgid;
            EmitExit(last, p, false, out);
            table_.erase(it);
          }
        }
        break;
      }
      if (p && p->threads > 0) {
        // Other threads run on (as the stream tells, however late it is read): the process
        // ends with the last of them.
        p->leader_exited = true;
        p->leader_exit = ev;
        break;
      }
      EmitExit(ev, p, false, out);
      if (p) table_.erase(it);
      break;
    }
    case kUid:
    case kGid: {
      if (ev.what == kUid && leader) {
        Proc* p = Lookup(ev.tgid, false);
        if (p) {
          p->uid = ev.a;
          p->have_uid = true;
        }
      }
      if (report) out.push_back(About(ev));
      break;
    }
    case kComm: {
      if (leader) {
        Proc* p = Lookup(ev.tgid, false);
        if (p) {
          p->comm = ev.comm;
          p->have_comm = true;
        }
      }
      if (!report) break;
      OutEvent o = About(ev);
      o.comm = ev.comm;
      out.push_back(std::move(o));
      break;
    }
    case kSid:
    case kPtrace:
    case kCoredump:
      if (report) out.push_back(About(ev));
      break;
    default:
      break;
  }
}

bool Monitor::Push(std::vector<OutEvent>& batch) {
  if (batch.empty()) return false;
  bool wake = false;
  {
    std::lock_guard<std::mutex> lk(mu_);
    for (OutEvent& o : batch) {
      if (queue_.size() >= opts_.queue_max) {
        queue_dropped_++;
        stats_.lost_queue++;
        continue;
      }
      queue_.push_back(std::move(o));
      stats_.delivered++;
    }
    stats_.table_size = table_.size();
    if (!notified_) {
      notified_ = true;
      wake = true;
    }
  }
  batch.clear();
  return wake;
}

void Monitor::Drain(std::vector<OutEvent>& out) {
  std::lock_guard<std::mutex> lk(mu_);
  notified_ = false;
  out.swap(queue_);
  queue_.clear();
  if (queue_dropped_ > 0) {
    // Everything queued came before the drop: the loss report goes last.
    OutEvent l;
    l.what = kLost;
    l.time_ms = static_cast<double>(Now(CLOCK_REALTIME) / 1000000);
    l.lost_count = queue_dropped_;
    l.lost_source = kLostQueue;
    out.push_back(std::move(l));
    queue_dropped_ = 0;
  }
}

Stats Monitor::GetStats() {
  size_t table_size;
  {
    std::lock_guard<std::mutex> lk(table_mu_);  // the size now, not as of the last batch
    table_size = table_.size();
  }
  std::lock_guard<std::mutex> lk(mu_);
  Stats s = stats_;
  s.table_size = table_size;
  return s;
}

}  // namespace pm
