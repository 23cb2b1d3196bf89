#include "monitor.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

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

}  // namespace

Monitor::Monitor(std::function<void()> notify) : notify_(std::move(notify)) {}

Monitor::~Monitor() {
  Stop();
  pthread_cond_destroy(&seeded_cv_);
}

bool Monitor::Start(const Options& opts, StartError* err) {
  if (running_) return true;
  opts_ = opts;
  stop_ = false;
  early_.clear();
  lost_ = false;
  read_errno_ = 0;
  {
    std::lock_guard<std::mutex> lk(mu_);
    fatal_.clear();
    injected_.clear();
  }
  std::string boot = ReadBootId();
  {
    std::lock_guard<std::mutex> lk(table_mu_);
    table_.Reset(opts, std::move(boot));
    seeded_ = !opts.seed;
  }
  {
    std::lock_guard<std::mutex> lk(mu_);
    queue_.clear();
    queue_dropped_ = 0;
    notified_ = false;
    stats_ = Stats();
  }
  // Bookkeeping: the process table (exec ids, ancestry, what exited, snapshot()) follows
  // fork, exec, exit and comm whatever is reported, and uid changes (setuid() and friends)
  // so that exec and exit know the user without reading /proc/PID/status.
  const uint32_t want = (opts.events & kAllEvents) | kFork | kExec | kExit | kComm | kUid;
  Stats st;
  if (!socket_.Open(opts.rcvbuf, &st.rcvbuf, &st.rcvbuf_forced, err)) return false;
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
  table_.SetClockOffset(Now(CLOCK_REALTIME) - Now(CLOCK_MONOTONIC));
  running_ = true;
  thread_ = std::thread([this] { Run(); });
  return true;
}

void Monitor::Close() {
  socket_.Close();
  if (wake_fd_ >= 0) close(wake_fd_);
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
  socket_.Unsubscribe();
  Close();
  running_ = false;
}

void Monitor::Run() {
  std::vector<OutEvent> batch;
  Begin(batch);
  Pacer pacer(static_cast<int64_t>(opts_.batch_interval_us) * 1000);
  if (pacer.Wake(Push(batch), Now(CLOCK_MONOTONIC))) notify_();
  pollfd fds[2] = {{socket_.fd(), POLLIN, 0}, {wake_fd_, POLLIN, 0}};
  while (!stop_) {
    timespec ts;
    int r = ppoll(fds, 2, pacer.Timeout(Now(CLOCK_MONOTONIC), &ts), nullptr);
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
    if (r > 0 && fds[0].revents && !Step(batch, &more)) break;
    if (pacer.Wake(more, Now(CLOCK_MONOTONIC))) notify_();
  }
}

void Monitor::Begin(std::vector<OutEvent>& batch) {
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
  {
    std::lock_guard<std::mutex> lk(table_mu_);
    for (RawEvent& ev : early_) Feed(ev, batch, nullptr);
  }
  early_.clear();
}

bool Monitor::Step(std::vector<OutEvent>& batch, bool* more) {
  table_.SetClockOffset(Now(CLOCK_REALTIME) - Now(CLOCK_MONOTONIC));
  batch.clear();
  ReadBatch(batch);
  // Only this thread changes flush_due(): it may look without the lock.
  if (lost_ || table_.flush_due()) {
    std::lock_guard<std::mutex> lk(table_mu_);
    table_.FlushDeferred(batch);
    lost_ = false;
  }
  *more = Push(batch);
  if (read_errno_ != 0) {
    notify_();  // what was read before the failure goes first
    Fail(std::string("reading the netlink socket failed: ") + std::strerror(read_errno_));
    return false;
  }
  return true;
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
    ReadAhead();
    uint64_t received = 0;
    size_t k = 0;
    {
      std::lock_guard<std::mutex> lk(table_mu_);
      for (const RawEvent& ev : raw_) {
        if (ev.what != kNone) received++;
        // Acknowledgements are handled too: they use up sequence numbers.
        Feed(ev, out, ev.what == kExec ? &execs_[k++] : nullptr);
      }
    }
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

// A short-lived process may be gone a moment after its exec: read what it loses first
// (argv, then exe) for every exec of the batch before anything else.
void Monitor::ReadAhead() {
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
}

void Monitor::Feed(const RawEvent& ev, std::vector<OutEvent>& out, ProcInfo* pre) {
  Lost(loss_.Check(ev, table_.WallMs(ev.ts_ns), out));
  table_.Handle(ev, out, pre);
}

void Monitor::Lost(uint64_t count) {
  if (count == 0) return;
  lost_ = true;  // a thread's exit may be among the lost
  std::lock_guard<std::mutex> lk(mu_);
  stats_.lost_kernel += count;
}

// Learns every process already running, so that their exits say what exited. Runs after
// the subscription: a process that starts meanwhile is seen by its events as well.
void Monitor::Seed() {
  for (int32_t pid : ListPids()) {
    if (stop_) break;
    std::lock_guard<std::mutex> lk(table_mu_);  // per process: events are handled between
    if (!table_.Learn(pid)) break;
  }
  std::lock_guard<std::mutex> lk(table_mu_);
  seeded_ = true;
  pthread_cond_broadcast(&seeded_cv_);
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
  table_.Snapshot(out);
}

bool Monitor::Ancestry(int32_t pid, std::vector<ProcRecord>& out) {
  std::unique_lock<std::mutex> lk(table_mu_);
  out.clear();
  if (!running_) return false;
  WaitSeeded(lk);
  table_.Ancestry(pid, out);
  return !out.empty();
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
    stats_.table_size = table_.size();  // this (the feeding) thread's own count
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
  uint64_t table_full;
  {
    std::lock_guard<std::mutex> lk(table_mu_);  // the size now, not as of the last batch
    table_size = table_.size();
    table_full = table_.full_count();
  }
  std::lock_guard<std::mutex> lk(mu_);
  Stats s = stats_;
  s.table_size = table_size;
  s.table_full = table_full;
  return s;
}

}  // namespace pm
