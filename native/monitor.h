// The proc connector reader: socket, subscription, reader thread, enrichment, queue.
// Knows nothing of Node-API; one Monitor per ProcConnector, no shared state.
#pragma once

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
  uint64_t lost_count = 0;
  uint8_t lost_source = kLostKernel;
};

struct Options {
  uint32_t events = kFork | kExec | kExit;  // what to report
  bool threads = false;                      // report non-leader threads too
  int rcvbuf = 8 << 20;                      // socket receive buffer, bytes (0: leave as is)
  bool kernel_filter = true;                 // use the Linux 6.6+ event filter when it helps
  size_t queue_max = 65536;                  // events buffered for JS at most
  size_t table_max = 65536;                  // processes remembered at most
  int ack_timeout_ms = 1000;                 // wait for the kernel's acknowledgement
  int nice = -10;                            // reader thread's nice value, where permitted
  bool seed = true;                          // learn the running processes from /proc at start
  int batch_interval_us = 1000;              // wake JS at most this often (0: for every read)
};

struct Stats {
  uint64_t received = 0;      // proc events read from the socket
  uint64_t delivered = 0;     // events queued for JS
  uint64_t lost_kernel = 0;   // events the kernel dropped (seq gaps, ENOBUFS estimate)
  uint64_t lost_queue = 0;    // events dropped because JS fell behind
  uint64_t enobufs = 0;       // ENOBUFS errors from the socket
  uint64_t malformed = 0;     // unusable netlink messages
  uint64_t table_size = 0;
  uint64_t table_full = 0;    // processes not remembered because the table was full
  int rcvbuf = 0;             // receive buffer the kernel granted
  bool rcvbuf_forced = false; // SO_RCVBUFFORCE worked
  bool kernel_filter = false; // the kernel filters for us
  int nice = 0;               // the reader thread's nice value in effect
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
  Stats GetStats();

 private:
  struct Proc {
    uint64_t start_ns = 0;  // kernel time of the fork (0: unknown)
    int32_t ppid = 0;
    uint32_t uid = 0;
    bool have_uid = false;
    bool have_cmd = false;
    bool have_comm = false;
    std::string comm, cmdline;
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
  void FillProcess(OutEvent& o, const Proc* p);
  double WallMs(uint64_t ts_ns) const;
  // Queues a batch for JS; true if JS must be woken for it.
  bool Push(std::vector<OutEvent>& batch);
  void Close();

  std::function<void()> notify_;
  Options opts_;
  uint32_t want_ = 0;          // events the kernel must send us (requested + bookkeeping)
  bool filter_active_ = false; // kernel filter on: filtered-out events leave seq gaps too
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
  std::vector<uint8_t> rbuf_;  // recvmmsg buffers
  std::vector<ProcInfo> execs_;  // /proc read ahead for the execs of a batch
  std::vector<uint32_t> last_seq_;
  std::vector<uint8_t> seen_cpu_;
  bool overflow_ = false;      // ENOBUFS seen; the socket's drop count not yet read
  uint32_t drops_seen_ = 0;    // the socket's drop counter when last read (SO_MEMINFO)
  uint64_t drops_credit_ = 0;  // socket drops reported whose seq gaps have not shown yet
  std::unordered_map<int32_t, Proc> table_;
  UserCache users_;

  // shared with the JS thread
  std::mutex mu_;
  std::vector<OutEvent> queue_;
  uint64_t queue_dropped_ = 0;
  bool notified_ = false;
  Stats stats_;
};

}  // namespace pm
