// The proc connector reader: the reader thread, which reads the socket (netlink.h), counts
// losses (loss.h), feeds the process table (process_table.h) and hands the events to JS
// through a queue (handoff.h). Knows nothing of Node-API; one Monitor per ProcConnector, no shared state.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "events.h"
#include "exit_cost.h"
#include "handoff.h"
#include "loss.h"
#include "netlink.h"
#include "parser.h"
#include "process_table.h"
#include "procfs.h"
#include "shared_table.h"

namespace pm {

struct Stats {
  uint64_t received = 0;     // proc events read from the socket
  uint64_t delivered = 0;    // events queued for JS
  uint64_t lost_kernel = 0;  // events the kernel dropped (seq gaps, ENOBUFS estimate)
  uint64_t lost_queue = 0;   // events dropped because JS fell behind
  uint64_t filtered = 0;     // events the filter (Options.filter) kept from JS
  uint64_t enobufs = 0;      // ENOBUFS errors from the socket
  uint64_t malformed = 0;    // unusable netlink messages
  uint64_t table_size = 0;
  uint64_t table_full = 0;          // processes not remembered because the table was full
  int rcvbuf = 0;                   // receive buffer the kernel granted
  bool rcvbuf_forced = false;       // SO_RCVBUFFORCE worked
  bool kernel_filter = false;       // the kernel filters for us
  int nice = 0;                     // the reader thread's nice value in effect
  uint8_t cost_source = kCostNone;  // where exit costs come from (Options.cost)
  std::string cost_reason;          // why not taskstats, when /proc is used
  uint64_t cost_taskstats = 0, cost_proc = 0, cost_unknown = 0, cost_dropped = 0;
  uint64_t cost_waited = 0;  // exits read before their taskstats record was queued

  // The counters by their names in stats(), in that order.
  std::vector<std::pair<const char*, double>> Numbers() const {
    auto d = [](uint64_t v) { return static_cast<double>(v); };
    return {{"received", d(received)},           {"delivered", d(delivered)},
            {"lostKernel", d(lost_kernel)},      {"lostQueue", d(lost_queue)},
            {"filtered", d(filtered)},           {"enobufs", d(enobufs)},
            {"malformed", d(malformed)},         {"tableSize", d(table_size)},
            {"tableFull", d(table_full)},        {"rcvbuf", static_cast<double>(rcvbuf)},
            {"nice", static_cast<double>(nice)}, {"costTaskstats", d(cost_taskstats)},
            {"costProc", d(cost_proc)},          {"costUnknown", d(cost_unknown)},
            {"costDropped", d(cost_dropped)},    {"costWaited", d(cost_waited)}};
  }
  const char* CostSourceName() const { return cost_source == kCostTaskstats ? "taskstats" : cost_source == kCostProc ? "proc" : "none"; }
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
  void Drain(std::vector<OutEvent>& out) { handoff_.Drain(out); }
  // Why the reader thread stopped on its own (a read or poll failure), once; "" if it did not.
  std::string TakeFatal() { return handoff_.TakeFatal(); }
  // Test hook: the reader stops as if reading had failed with `why`.
  void InjectFault(const std::string& why);
  Stats GetStats();
  // The live process table (JS thread; empty when not running).
  void Snapshot(std::vector<ProcRecord>& out) { shared_.Snapshot(out, running_); }
  // A process and its ancestors, nearest first, up to init; false if pid is unknown.
  bool Ancestry(int32_t pid, std::vector<ProcRecord>& out) { return shared_.Ancestry(pid, out, running_); }

 private:
  void Run();
  // Renices and names the reader thread, scans /proc, handles what came with the subscription.
  void Begin(std::vector<OutEvent>& batch);
  // One wake-up of the reader: false when it must stop.
  bool Step(std::vector<OutEvent>& batch, bool* more);
  void ReadBatch(std::vector<OutEvent>& out);
  // One read's events into the table, in order, each seq checked for a loss (FeedBatch in monitor.cc).
  uint64_t FeedBatch(const std::vector<RawEvent>& raw, std::vector<OutEvent>& out);
  // `count` events were lost (0: none).
  void Lost(uint64_t count);
  void Close();
  // The reader cannot go on: records why and wakes JS to report it.
  void Fail(const std::string& why);

  std::function<void()> notify_;
  Options opts_;
  ConnectorSocket socket_;
  int wake_fd_ = -1;
  std::thread thread_;
  std::atomic<bool> running_{false};
  std::atomic<bool> stop_{false};

  // reader-thread state
  std::vector<RawEvent> early_;  // events read while waiting for the acknowledgement
  std::vector<RawEvent> raw_;
  std::vector<ProcInfo> execs_;   // /proc read ahead for the execs of a batch
  std::vector<char> followed_;    // which of them are of processes followed (Options::subtree)
  std::vector<int32_t> ignored_;  // exits of processes not followed (ExitCost::Forget)
  LossTracker loss_{socket_};
  bool lost_ = false;   // events were lost: deferred exits may be due
  int read_errno_ = 0;  // recvmmsg failed for good (not EAGAIN, EINTR or ENOBUFS)
  // shared with the JS thread
  SharedTable shared_;  // the process table and its lock
  SystemProcReader cost_reader_;
  ExitCost cost_{cost_reader_};  // reader thread (and Start, Stop)
  Handoff handoff_;              // the events for JS, and why the reader stopped
  std::mutex mu_;
  Stats stats_;           // but delivered, lost_queue, filtered, table_size and table_full (GetStats)
  std::string injected_;  // InjectFault's reason, taken by the reader
};

}  // namespace pm
