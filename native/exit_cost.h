// What each process cost, put on its exit event (Options.cost): from the kernel's taskstats
// exit records where it allows them (TaskstatsSocket), else from /proc of the zombie
// (ProcReader::CostOf). Used by the reader thread only; its counters may be read by others.
//
// Order (Linux 6.18, and since taskstats exists): do_exit() calls taskstats_exit(), which
// queues the task's record on the taskstats socket, before exit_notify() and
// proc_exit_connector() queue the exit event on the connector's: once an exit event has
// been read, its task's record is already waiting. The two sockets are read separately, so
// records wait for their exit events in a map bounded in size and age; an exit read with no
// record (read before the kernel queued it) waits for it, once per batch, a short bounded time.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "events.h"
#include "procfs.h"
#include "taskstats.h"

namespace pm {

class ExitCost {
 public:
  static constexpr size_t kMaxPending = 8192;        // thread groups with records waiting
  static constexpr int64_t kMaxAgeNs = 60000000000;  // a record waits this long at most
  static constexpr int kWaitMs = 2;                  // for a record not read yet, per batch

  explicit ExitCost(ProcReader& reader) : reader_(reader) {}
  ExitCost(const ExitCost&) = delete;
  ExitCost& operator=(const ExitCost&) = delete;

  // mode: CostMode. Opens taskstats for kCostAuto where permitted (else /proc is used; why
  // is kept in reason()). Returns the source in effect (kCostNone when off).
  uint8_t Start(uint8_t mode);
  void Stop();
  uint8_t source() const { return source_; }
  const std::string& reason() const { return reason_; }

  // Reads the taskstats socket (without waiting); `now_ns`: CLOCK_MONOTONIC. The reader calls
  // it once per chunk read from the connector's socket, before Attach and Forget: every
  // record is followed there by its task's exit event, so the chunk's exits' records are in.
  void Drain(int64_t now_ns);
  // Puts a cost on every process exit in out[from..].
  void Attach(std::vector<OutEvent>& out, size_t from);
  // Drops the records of processes whose exits were read but are not followed (a subtree),
  // so that they never fill the map and pass for lost records of followed ones; empties tgids.
  void Forget(std::vector<int32_t>& tgids);

  // Pure parts, for tests: a task's record in; the cost of a process that started at
  // start_ns (CLOCK_MONOTONIC; 0: unknown) out. False when no record waits, or when it may
  // lack some threads' records: records were lost (socket overflow, eviction) since it
  // started, or the ids were another pid namespace's and it was not `single_threaded`.
  void Add(const TaskstatsRecord& r, int64_t now_ns);
  bool Take(int32_t tgid, Cost& out, bool single_threaded = false, int64_t start_ns = 0);
  size_t pending() const { return pending_.size(); }

  // Counters (any thread).
  std::atomic<uint64_t> from_taskstats{0};  // exits given a taskstats cost
  std::atomic<uint64_t> from_proc{0};       // exits given a /proc cost
  std::atomic<uint64_t> unknown{0};         // exits whose cost could not be learned at all
  std::atomic<uint64_t> dropped{0};         // taskstats socket overflows (ENOBUFS)
  std::atomic<uint64_t> malformed{0};       // unusable taskstats messages
  std::atomic<uint64_t> waited{0};          // exits read before their record was queued

 private:
  struct Pending {
    Cost sum;
    int64_t first_ns = 0;
    bool foreign = false;
  };
  void Expire(int64_t now_ns);
  void Fill(OutEvent& e, bool record_ok);

  ProcReader& reader_;
  TaskstatsSocket socket_;
  uint8_t mode_ = kCostOff;
  uint8_t source_ = kCostNone;
  std::string reason_;
  std::unordered_map<int32_t, Pending> pending_;
  std::deque<std::pair<int32_t, int64_t>> order_;  // (tgid, first_ns), oldest first
  int64_t lost_ns_ = -1;                           // when records were last lost: processes started before may lack some
  std::vector<TaskstatsRecord> records_;
};

}  // namespace pm
