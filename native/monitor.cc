#include "monitor.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "pacer.h"

namespace pm {
namespace {

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

// Wakes the reader thread from its poll (an eventfd).
void Poke(int fd) {
  uint64_t one = 1;
  ssize_t w = write(fd, &one, sizeof one);
  (void)w;
}

// Sets the calling thread's nice value (0: leave it); returns the one in effect.
int Renice(int nice) {
  pid_t tid = static_cast<pid_t>(syscall(SYS_gettid));
  if (nice != 0) setpriority(PRIO_PROCESS, static_cast<id_t>(tid), nice);
  errno = 0;
  int now = getpriority(PRIO_PROCESS, static_cast<id_t>(tid));
  return errno == 0 ? now : 0;
}

// An exec followed in the same batch by another exec of its process (setpriv, su, env and
// sudo exec again at once) or by a new process under its pid: /proc shows that later program
// or process, never this one, so nothing is read for it (it counts as gone).
void MarkSuperseded(const std::vector<RawEvent>& raw, std::vector<ProcInfo>& execs) {
  std::vector<int32_t> later;  // pids exec'd or forked after the event looked at (a batch is small)
  size_t k = execs.size();
  for (auto it = raw.rbegin(); it != raw.rend(); ++it) {
    const RawEvent& ev = *it;
    const bool exec = ev.what == kExec;
    if (!exec && !(ev.what == kFork && ev.pid == ev.tgid)) continue;
    const bool seen = std::find(later.begin(), later.end(), ev.tgid) != later.end();
    if (exec && seen) execs[k - 1].gone = true;
    if (exec) k--;
    if (!seen) later.push_back(ev.tgid);
  }
}

// A short-lived process may be gone a moment after its exec: read what it loses first
// (argv, then exe, cwd and the context) for every exec of the batch followed (`in`, one per exec) before
// anything else.
void ReadAhead(const std::vector<RawEvent>& raw, const std::vector<char>& in, std::vector<ProcInfo>& execs, const Options& o) {
  execs.clear();
  execs.resize(in.size());
  MarkSuperseded(raw, execs);
  size_t k = 0;
  for (const RawEvent& ev : raw) {
    if (ev.what == kExec && in[k++] && !execs[k - 1].gone) ReadArgv(ev.tgid, execs[k - 1]);
  }
  k = 0;
  for (const RawEvent& ev : raw) {
    if (ev.what != kExec) continue;
    ProcInfo& info = execs[k];
    if (!in[k++] || info.gone) continue;
    ReadExe(ev.tgid, info);  // the table keeps it too
    if (o.cwd) ReadCwd(ev.tgid, info);
    ReadContext(ev.tgid, o.context, o.env, info.dir, info.ctx);
  }
}

// Calls feed() with `slice` holding each read's worth of `all` (kBatch events) in turn: a
// read's execs hold their /proc directories and argv at once, a read's worth at a time.
template <typename F>
void InSlices(const std::vector<RawEvent>& all, std::vector<RawEvent>& slice, F feed) {
  for (size_t i = 0; i < all.size(); i += ConnectorSocket::kBatch) {
    slice.assign(all.begin() + i, all.begin() + std::min(all.size(), i + ConnectorSocket::kBatch));
    feed();
  }
}

}  // namespace

Monitor::Monitor(std::function<void()> notify) : notify_(std::move(notify)) {}

Monitor::~Monitor() { Stop(); }

bool Monitor::Start(const Options& opts, StartError* err) {
  if (running_) return true;
  opts_ = opts;
  stop_ = false;
  early_.clear();
  lost_ = false;
  read_errno_ = 0;
  {
    std::lock_guard<std::mutex> lk(mu_);
    injected_.clear();
  }
  std::string boot = ReadBootId();
  shared_.Reset(opts, std::move(boot));
  std::string why;
  if (!handoff_.Reset(opts.queue_max, opts.filter, &why)) {
    *err = StartError{"EINVAL", "filter: " + why};
    return false;
  }
  // Bookkeeping: the process table (exec ids, ancestry, what exited, snapshot()) follows
  // fork, exec, exit and comm whatever is reported, and uid changes (setuid() and friends)
  // so that exec and exit know the user without reading /proc/PID/status.
  const uint32_t want = (opts.events & kAllEvents) | kFork | kExec | kExit | kComm | kUid | ((opts.context & kCtxTty) ? kSid : 0u);
  Stats st;
  // Registered for taskstats first: every exit the connector reports has its record.
  st.cost_source = cost_.Start((opts.events & kExit) ? opts.cost : static_cast<uint8_t>(kCostOff));
  st.cost_reason = cost_.reason();
  if (!socket_.Open(opts.rcvbuf, &st.rcvbuf, &st.rcvbuf_forced, err)) {
    cost_.Stop();
    return false;
  }
  bool overflow = false;
  if (!socket_.Subscribe(want, opts.kernel_filter, opts.ack_timeout_ms, early_, &overflow, &st.kernel_filter, err)) {
    Close();
    return false;
  }
  loss_.Reset(st.kernel_filter);  // a new socket; with the kernel's filter, gaps say nothing
  if (overflow) loss_.Overflow();
  {
    std::lock_guard<std::mutex> lk(mu_);
    stats_ = st;
  }
  wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd_ < 0) {
    *err = StartError{"ESOCKET", std::string("eventfd: ") + std::strerror(errno)};
    socket_.Unsubscribe();
    Close();
    return false;
  }
  shared_.table().SetClockOffset(Now(CLOCK_REALTIME) - Now(CLOCK_MONOTONIC));
  running_ = true;
  thread_ = std::thread([this] { Run(); });
  return true;
}

void Monitor::Close() {
  socket_.Close();
  cost_.Stop();
  if (wake_fd_ >= 0) close(wake_fd_);
  wake_fd_ = -1;
}

void Monitor::Stop() {
  if (!running_) return;
  stop_ = true;
  Poke(wake_fd_);
  if (thread_.joinable()) thread_.join();
  // Everything already in the socket still counts: read it before unsubscribing.
  std::vector<OutEvent> rest;
  ReadBatch(rest);
  handoff_.Push(rest);
  socket_.Unsubscribe();
  Close();
  running_ = false;
}

void Monitor::Run() {
  std::vector<OutEvent> batch;
  Begin(batch);
  Pacer pacer(static_cast<int64_t>(opts_.batch_interval_us) * 1000, static_cast<int64_t>(opts_.read_interval_us) * 1000);
  if (pacer.Wake(handoff_.Push(batch), Now(CLOCK_MONOTONIC))) notify_();
  pollfd fds[2] = {{wake_fd_, POLLIN, 0}, {socket_.fd(), POLLIN, 0}};
  while (!stop_) {
    timespec ts;
    int64_t now = Now(CLOCK_MONOTONIC);
    fds[1].revents = 0;  // the socket is left out of the poll while it rests
    int r = ppoll(fds, pacer.Resting(now) ? 1 : 2, pacer.Timeout(now, &ts), nullptr);
    if (r < 0) {
      if (errno == EINTR) continue;
      Fail(std::string("poll on the netlink socket failed: ") + std::strerror(errno));
      break;
    }
    if (stop_) break;
    if (fds[0].revents) {
      std::string why;
      {
        std::lock_guard<std::mutex> lk(mu_);
        why.swap(injected_);
      }
      if (!why.empty()) Fail(why);
      break;
    }
    if (fds[1].revents & POLLNVAL) {
      Fail("the netlink socket was closed under the reader");
      break;
    }
    bool more = false;
    if (fds[1].revents && !Step(batch, &more)) break;
    if (fds[1].revents) pacer.Read(Now(CLOCK_MONOTONIC));  // a rest begins (if any)
    if (pacer.Wake(more, Now(CLOCK_MONOTONIC))) notify_();
  }
}

void Monitor::Begin(std::vector<OutEvent>& batch) {
  // A short-lived process must still be in /proc when its exec is read: the reader wakes ahead
  // of ordinary work where the system lets it (CAP_SYS_NICE); idle, it sleeps in poll().
  prctl(PR_SET_NAME, "procmon-reader", 0, 0, 0);  // this thread's name (old-glibc safe)
  {
    std::lock_guard<std::mutex> lk(mu_);
    stats_.nice = Renice(opts_.nice);
  }
  if (shared_.NeedsSeed()) shared_.Seed(stop_);  // takes the table lock per process
  InSlices(early_, raw_, [&] { FeedBatch(raw_, batch); });
  early_.clear();
  cost_.Drain(Now(CLOCK_MONOTONIC));
  cost_.Attach(batch, 0);
  cost_.Forget(ignored_);
}

bool Monitor::Step(std::vector<OutEvent>& batch, bool* more) {
  shared_.table().SetClockOffset(Now(CLOCK_REALTIME) - Now(CLOCK_MONOTONIC));
  batch.clear();
  ReadBatch(batch);
  // Only this thread changes flush_due(): it may look without the lock.
  if (lost_ || shared_.table().flush_due()) {
    size_t from = batch.size();
    {
      auto lk = shared_.Lock();
      shared_.table().FlushDeferred(batch);
    }
    cost_.Attach(batch, from);  // (their records were read with their chunks)
    lost_ = false;
  }
  *more = handoff_.Push(batch);
  if (read_errno_ != 0) {
    notify_();  // what was read before the failure goes first
    Fail(std::string("reading the netlink socket failed: ") + std::strerror(read_errno_));
    return false;
  }
  return true;
}

void Monitor::Fail(const std::string& why) {
  handoff_.SetFatal(why);
  notify_();
}

void Monitor::InjectFault(const std::string& why) {
  if (!running_ || wake_fd_ < 0) return;
  {
    std::lock_guard<std::mutex> lk(mu_);
    injected_ = why.empty() ? std::string("injected fault") : why;
  }
  Poke(wake_fd_);
}

// Reads every datagram waiting in the socket, a batch per syscall.
void Monitor::ReadBatch(std::vector<OutEvent>& out) {
  for (;;) {
    ParseStats ps;
    raw_.clear();
    int n = socket_.Receive(raw_, ps);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == ENOBUFS) {
        // The kernel dropped events: the socket buffer was full.
        std::lock_guard<std::mutex> lk(mu_);
        stats_.enobufs++;
        loss_.Overflow();
        continue;
      }
      if (errno != EAGAIN && errno != EWOULDBLOCK) read_errno_ = errno;
      Lost(loss_.Drained(out));
      return;  // EAGAIN: drained
    }
    size_t from = out.size();
    uint64_t received = FeedBatch(raw_, out);
    // Not polled (one wake-up per exit): every record precedes its exit event (exit_cost.h).
    cost_.Drain(Now(CLOCK_MONOTONIC));
    cost_.Attach(out, from);  // the zombies' /proc, before they are reaped
    cost_.Forget(ignored_);
    {
      std::lock_guard<std::mutex> lk(mu_);
      stats_.received += received;
      stats_.malformed += ps.malformed;
    }
    if (static_cast<unsigned>(n) < ConnectorSocket::kBatch) {
      Lost(loss_.Drained(out));
      return;
    }
  }
}

// The events of one read, in order, each exec with what /proc said of it read ahead; the
// exits of processes not followed go to ignored_. Returns how many were kernel events.
uint64_t Monitor::FeedBatch(const std::vector<RawEvent>& raw, std::vector<OutEvent>& out) {
  shared_.FollowedExecs(raw, followed_);
  ReadAhead(raw, followed_, execs_, opts_);
  ProcessTable& table = shared_.table();
  uint64_t received = 0;
  size_t k = 0;
  {
    auto lk = shared_.Lock();
    for (const RawEvent& ev : raw) {
      if (ev.what != kNone) received++;
      // Acknowledgements are handled too: they use up sequence numbers.
      Lost(loss_.Check(ev, table.WallMs(ev.ts_ns), out));
      if (!table.Handle(ev, out, ev.what == kExec ? &execs_[k++] : nullptr) && ev.what == kExit && ev.pid == ev.tgid)
        ignored_.push_back(ev.tgid);
    }
  }
  execs_.clear();  // (closes their /proc directories)
  return received;
}

void Monitor::Lost(uint64_t count) {
  if (count == 0) return;
  lost_ = true;  // a thread's exit may be among the lost
  std::lock_guard<std::mutex> lk(mu_);
  stats_.lost_kernel += count;
}

Stats Monitor::GetStats() {
  Stats s;
  {
    std::lock_guard<std::mutex> lk(mu_);
    s = stats_;
  }
  handoff_.Counts(&s.delivered, &s.lost_queue, &s.filtered);
  s.cost_taskstats = cost_.from_taskstats;
  s.cost_proc = cost_.from_proc;
  s.cost_unknown = cost_.unknown;
  s.cost_dropped = cost_.dropped;
  s.cost_waited = cost_.waited;
  shared_.Sizes(&s.table_size, &s.table_full);  // the size now, not as of the last batch
  return s;
}

}  // namespace pm
