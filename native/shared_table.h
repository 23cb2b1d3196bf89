// The process table as the reader thread and the JS thread share it: the table, the lock that
// guards it (and the user-name cache of the real ProcReader it reads /proc with), and the scan
// of /proc at start, which snapshot() and ancestry() wait for.
#pragma once

#include <pthread.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "events.h"
#include "process_table.h"
#include "procfs.h"

namespace pm {

class SharedTable {
 public:
  SharedTable() = default;
  ~SharedTable() { pthread_cond_destroy(&seeded_cv_); }
  SharedTable(const SharedTable&) = delete;
  SharedTable& operator=(const SharedTable&) = delete;

  // Empties the table (before the reader thread starts); the scan at start is to come if
  // opts.seed says so, or opts.subtree names roots to learn.
  void Reset(const Options& opts, std::string boot);
  bool NeedsSeed() const { return seed_ || !subtree_.empty(); }
  // The table's lock: the reader holds it while it feeds the table a batch.
  std::unique_lock<std::mutex> Lock() { return std::unique_lock<std::mutex>(mu_); }
  // The table: with the lock held. The thread that feeds it may also read size() and
  // flush_due() without it (only that thread changes them) and set the clock offset.
  ProcessTable& table() { return table_; }

  // The scan at start (reader thread): learns every process already running (with a subtree,
  // its roots, and their descendants if seeding), so that their exits say what exited; the
  // lock is taken per process, events are handled between. Ends
  // early when `stop` is set or the table is full; the scan is over then all the same.
  void Seed(const std::atomic<bool>& stop);
  // Every process, once the scan at start is over (JS thread; empty unless `running`).
  void Snapshot(std::vector<ProcRecord>& out, const std::atomic<bool>& running);
  // A process and its ancestors, nearest first, up to init; false if pid is unknown.
  bool Ancestry(int32_t pid, std::vector<ProcRecord>& out, const std::atomic<bool>& running);
  // Lineage::FollowedExecs (reader thread: without the lock, as the table's only writer).
  void FollowedExecs(const std::vector<RawEvent>& raw, std::vector<char>& in) { table_.lineage().FollowedExecs(raw, in); }
  // The table's size now, and the processes it could not remember.
  void Sizes(uint64_t* size, uint64_t* full);

 private:
  // Waits for the scan at start to be over (or the reader to be stopped).
  void WaitSeeded(std::unique_lock<std::mutex>& lk, const std::atomic<bool>& running);

  std::mutex mu_;
  SystemProcReader proc_;
  ProcessTable table_{proc_};
  // pthread's own condition variable: std::condition_variable::wait needs GLIBCXX_3.4.30
  // (libstdc++ of GCC 12) in a prebuild that must load with older ones.
  pthread_cond_t seeded_cv_ = PTHREAD_COND_INITIALIZER;
  bool seeded_ = false;  // the scan of /proc at start is over
  bool seed_ = true;
  std::vector<int32_t> subtree_;
};

}  // namespace pm
