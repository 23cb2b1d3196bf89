// The proc connector reader: socket, subscription, reader thread, enrichment, queue.
// Knows nothing of Node-API; one Monitor per ProcConnector, no shared state.
#pragma once

#include <pthread.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "parser.h"
#include "procfs.h"

namespace pm {

constexpr uint32_t kLost = 0xffffffffu;  // OutEvent.what for a loss report

enum LostSource : uint8_t { kLostKernel = 0, kLostQueue = 1 };

// Bits of OutEvent.missing: fields that could not be learned.
enum Missing : uint32_t {
  kMissArgv = 1u << 0,
  kMissCmdline = 1u << 1,
  kMissComm = 1u << 2,
  kMissExe = 1u << 3,
  kMissUser = 1u << 4,
  kMissPpid = 1u << 5,
  kMissDuration = 1u << 6,
  kMissExecId = 1u << 7,
  kMissParentExecId = 1u << 8,
  kMissAncestors = 1u << 9,  // the chain breaks before init: a parent is unknown
  kMissCgroup = 1u << 10,
};
constexpr uint32_t kMissingNames = 11;

// One process as the table knows it: an ancestor on an event, or a snapshot entry.
struct ProcRecord {
  int32_t pid = 0;
  int32_t ppid = 0;
  std::string exec_id, parent_exec_id;
  std::string comm, exe, cmdline, user, cgroup, container_id;
  uint32_t uid = 0;
  bool have_uid = false, have_comm = false, have_exe = false, have_cmd = false;
  bool have_cgroup = false;
  bool learned = false;  // running before the connector started: learned from /proc
  double start_ms = -1;  // wall-clock time the process started (-1: unknown)
  double exec_ms = -1;   // wall-clock time its current program started
  uint32_t threads = 0;  // live threads besides the main one, as far as seen
};

// An ancestor on an event: what identifies it.
struct Ancestor {
  int32_t pid = 0;
  std::string exec_id, comm, exe;
  bool have_exe = false;
};

struct OutEvent {
  uint32_t what = 0;
  double time_ms = 0;  // wall-clock time of the kernel's timestamp
  RawEvent raw;
  bool thread = false;
  int32_t pid = 0;   // process (tgid) the event is about (fork: the child)
  int32_t ppid = 0;  // parent process (fork: parent tgid)
  uint32_t uid = 0;
  std::string user, comm, cmdline, exe;
  std::vector<std::string> argv;
  double duration_ms = -1;
  uint32_t missing = 0;
  std::string exec_id, parent_exec_id;  // this program run, and its parent's
  std::vector<Ancestor> ancestors;
  bool with_ancestors = false;
  std::string cgroup, container_id;
  bool with_cgroup = false;
  bool learned = false;
  uint64_t lost_count = 0;
  uint8_t lost_source = kLostKernel;
};

struct Options {
  uint32_t events = kFork | kExec | kExit;  // what to report
  bool threads = false;                     // report non-leader threads too
  int rcvbuf = 8 << 20;                     // socket receive buffer, bytes (0: leave as is)
  bool kernel_filter = true;                // use the Linux 6.6+ event filter when it helps
  size_t queue_max = 65536;                 // events buffered for JS at most
  size_t table_max = 65536;                 // processes remembered at most
  int ack_timeout_ms = 1000;                // wait for the kernel's acknowledgement
  int nice = -10;                           // reader thread's nice value, where permitted
  bool seed = true;                         // learn the running processes from /proc at start
  int batch_interval_us = 1000;             // wake JS at most this often (0: for every read)
  uint32_t ancestor_events = kExec;         // events that carry their ancestors
  int ancestor_depth = 16;                  // ancestors listed at most
  bool cgroups = true;                      // cgroup and container id on events
  std::vector<std::string> redact;          // secrets shown as "*****" wherever argv holds them
};

struct Stats {
  uint64_t received = 0;     // proc events read from the socket
  uint64_t delivered = 0;    // events queued for JS
  uint64_t lost_kernel = 0;  // events the kernel dropped (seq gaps, ENOBUFS estimate)
  uint64_t lost_queue = 0;   // events dropped because JS fell behind
  uint64_t enobufs = 0;      // ENOBUFS errors from the socket
  uint64_t malformed = 0;    // unusable netlink messages
  uint64_t table_size = 0;
  uint64_t table_full = 0;     // processes not remembered because the table was full
  int rcvbuf = 0;              // receive buffer the kernel granted
  bool rcvbuf_forced = false;  // SO_RCVBUFFORCE worked
  bool kernel_filter = false;  // the kernel filters for us
  int nice = 0;                // the reader thread's nice value in effect
};

struct StartError {
  std::string code;     // ENOACK, EPERM, EPROTONOSUPPORT, ...
  std::string message;  // one clear sentence, names the remedy
};

class Monitor {
 public:
  explicit Monitor(std::function<void()> notify);
  ~Monitor();
  Monitor(const Monitor&) = delete;
  Monitor& operator=(const Monitor&) = delete;

  bool Start(const Options& opts, StartError* err);
  // Stops the thread, unsubscribes, closes. Safe to call many times and from cleanup hooks.
  void Stop();
  bool running() const { return running_; }

  // Takes every queued event (JS thread).
  void Drain(std::vector<OutEvent>& out);
  // Why the reader thread stopped on its own (a read or poll failure), once; "" if it did not.
  std::string TakeFatal();
  // Test hook: the reader stops as if reading had failed with `why`.
  void InjectFault(const std::string& why);
  Stats GetStats();
  // The live process table (JS thread; empty when not running).
  void Snapshot(std::vector<ProcRecord>& out);
  // A process and its ancestors, nearest first, up to init; false if pid is unknown.
  bool Ancestry(int32_t pid, std::vector<ProcRecord>& out);

 private:
  struct Proc {
    uint64_t start_ns = 0;  // kernel time of the fork (0: unknown)
    uint64_t run_ns = 0;    // kernel time its current program started: fork, exec (0: unknown)
    int32_t ppid = 0;
    uint32_t uid = 0;
    bool have_uid = false;
    bool have_cmd = false;
    bool have_comm = false;
    bool have_exe = false;
    bool have_cgroup = false;
    std::string comm, cmdline, exe, cgroup;
    std::string container_id;    // of the cgroup, found when it is read
    uint32_t threads = 0;        // live non-leader threads we saw start
    bool leader_exited = false;  // main thread gone, others still running
    bool from_proc = false;      // learned from /proc (running before we started)
    RawEvent leader_exit;
  };

  bool Subscribe(bool with_mask, uint32_t mask, int timeout_ms, StartError* err, bool* timed_out);
  bool SendOp(uint32_t op, bool with_mask, uint32_t mask, uint32_t seq, uint32_t ack);
  void Run();
  void ReadBatch(std::vector<OutEvent>& out);
  void Handle(const RawEvent& ev, std::vector<OutEvent>& out, ProcInfo* pre);
  void CheckGap(const RawEvent& ev, std::vector<OutEvent>& out);
  void FlushDrops(std::vector<OutEvent>& out);
  void EmitLost(uint64_t count, double time_ms, std::vector<OutEvent>& out);
  OutEvent Make(const RawEvent& ev, int32_t pid) const;
  void EmitExit(const RawEvent& ev, Proc* p, bool thread, std::vector<OutEvent>& out);
  Proc* Lookup(int32_t tgid, bool learn);
  Proc* Insert(int32_t tgid, Proc&& p);
  static Proc Learned(const ProcInfo& info);
  void Seed();
  void Sweep();
  void FlushDeferred(std::vector<OutEvent>& out);
  void FillProcess(OutEvent& o, const Proc* p);
  // exec_id, parent_exec_id, cgroup and (where asked for) ancestors of an event about pid.
  void Identify(OutEvent& o, int32_t pid, const Proc* p, int32_t ppid, uint64_t run_ns);
  std::string ExecId(int32_t pid, uint64_t run_ns) const;
  // The exec id of pid's current run, "" if the table does not know it.
  std::string RunOf(int32_t pid) const;
  const Proc* Find(int32_t pid) const;
  OutEvent About(const RawEvent& ev);
  void Record(int32_t pid, const Proc& p, ProcRecord& r);
  void ReadCgroupOf(int32_t pid, Proc& p);
  void WaitSeeded(std::unique_lock<std::mutex>& lk);
  double WallMs(uint64_t ts_ns) const;
  // Queues a batch for JS; true if JS must be woken for it.
  bool Push(std::vector<OutEvent>& batch);
  void Close();
  // The reader cannot go on: records why and wakes JS to report it.
  void Fail(const std::string& why);

  std::function<void()> notify_;
  Options opts_;
  uint32_t want_ = 0;           // events the kernel must send us (requested + bookkeeping)
  bool filter_active_ = false;  // kernel filter on: filtered-out events leave seq gaps too
  bool with_mask_ = false;
  int fd_ = -1;
  int wake_fd_ = -1;
  uint32_t portid_ = 0;
  uint32_t seq_base_ = 0;
  uint32_t ack_base_ = 0;
  std::thread thread_;
  std::atomic<bool> running_{false};
  std::atomic<bool> stop_{false};
  int64_t clock_offset_ns_ = 0;  // realtime - monotonic

  // reader-thread state
  std::vector<RawEvent> early_;  // events read while waiting for the acknowledgement
  std::vector<RawEvent> raw_;
  std::vector<uint8_t> rbuf_;    // recvmmsg buffers
  std::vector<ProcInfo> execs_;  // /proc read ahead for the execs of a batch
  std::vector<uint32_t> last_seq_;
  std::vector<uint8_t> seen_cpu_;
  bool overflow_ = false;                    // ENOBUFS seen; the socket's drop count not yet read
  bool flush_deferred_ = false;              // a loss (or a full table): deferred exits may be due
  int read_errno_ = 0;                       // recvmmsg failed for good (not EAGAIN, EINTR or ENOBUFS)
  uint32_t drops_seen_ = 0;                  // the socket's drop counter when last read (SO_MEMINFO)
  uint64_t drops_credit_ = 0;                // socket drops reported whose seq gaps have not shown yet
  std::unordered_map<int32_t, Proc> table_;  // guarded by table_mu_
  UserCache users_;                          // guarded by table_mu_
  std::mutex table_mu_;                      // the reader holds it while it handles a batch; JS for a snapshot
  // pthread's own condition variable: std::condition_variable::wait needs GLIBCXX_3.4.30
  // (libstdc++ of GCC 12) in a prebuild that must load with older ones.
  pthread_cond_t seeded_cv_ = PTHREAD_COND_INITIALIZER;
  bool seeded_ = false;  // the scan of /proc at start is over (guarded by table_mu_)
  std::string boot_;     // the boot id's first 8 hex digits, the prefix of every exec_id

  // shared with the JS thread
  std::mutex mu_;
  std::vector<OutEvent> queue_;
  uint64_t queue_dropped_ = 0;
  bool notified_ = false;
  Stats stats_;
  std::string fatal_;     // why the reader stopped on its own
  std::string injected_;  // InjectFault's reason, taken by the reader
};

}  // namespace pm
