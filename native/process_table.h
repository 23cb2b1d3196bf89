// The process table: what the proc connector's events tell of every live process (its
// program run and exec id, parent, user, name, command line, cgroup, threads), so that an
// event can say who it is about and an exit what exited. Fed the parsed events (RawEvent)
// one at a time, it appends the events to report (OutEvent).
//
// No lock of its own and not thread-safe: the caller serializes every call (Monitor holds
// its table lock around them, the reader thread feeding it and the JS thread reading
// snapshots). Everything it learns from outside the events (/proc, whether a pid is still
// in use, user names) goes through the ProcReader it is given: with a fake one it is pure
// (test/native/table_test.cc, fuzz/table_fuzzer.cc).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "events.h"
#include "lineage.h"
#include "parser.h"
#include "process_store.h"
#include "procfs.h"

namespace pm {

class ProcessTable {
 public:
  explicit ProcessTable(ProcReader& reader) : reader_(reader), store_(reader) {}
  ProcessTable(const ProcessTable&) = delete;
  ProcessTable& operator=(const ProcessTable&) = delete;

  // Forgets every process and the count of those not remembered. `boot` (the boot id's first
  // 8 hex digits) prefixes every exec id.
  void Reset(const Options& opts, std::string boot) {
    opts_ = opts;
    store_.Reset(opts, std::move(boot));
    lineage_.Reset(opts.subtree);
  }
  // realtime - monotonic, in ns: how kernel timestamps become wall-clock times. May be set
  // at any time (an atomic), by the thread that feeds the table.
  void SetClockOffset(int64_t ns) { store_.SetClockOffset(ns); }
  // Wall-clock milliseconds of a kernel timestamp.
  double WallMs(uint64_t ts_ns) const { return store_.WallMs(ts_ns); }

  // One event (acknowledgements too: nothing reported). `pre`: /proc read ahead for an exec
  // (nullptr: the table reads it now). False: not about a process followed (a subtree): ignored.
  bool Handle(const RawEvent& ev, std::vector<OutEvent>& out, ProcInfo* pre);
  const Lineage& lineage() const { return lineage_; }  // which processes it follows
  // Learns a process that was running before the events started (the scan of /proc at
  // start). False, and nothing learned, when the table is full.
  bool Learn(int32_t pid) { return store_.Learn(pid); }
  // Events were lost: a thread's exit may be among them, so the exits held back for threads
  // are looked at again (FlushDeferred).
  void NoteLoss() { store_.set_flush_due(true); }
  // A loss was noted, or a process whose exit is held back was found gone, since the last
  // FlushDeferred. Only Handle, Learn, NoteLoss and FlushDeferred change it: the thread that
  // calls them may read it without the caller's lock.
  bool flush_due() const { return store_.flush_due(); }
  // Reports (and forgets) every process whose main thread's exit waits for other threads'
  // exits, and which is gone: with the main thread's status.
  void FlushDeferred(std::vector<OutEvent>& out);

  // Every process (appended to out).
  void Snapshot(std::vector<ProcRecord>& out) { store_.Snapshot(out); }
  // A process and its ancestors, nearest first, up to init (appended to out).
  void Ancestry(int32_t pid, std::vector<ProcRecord>& out) { store_.Ancestry(pid, out); }
  size_t size() const { return store_.size(); }
  // Processes not remembered because the table was full, since Reset.
  uint64_t full_count() const { return store_.full_count(); }

 private:
  void OnThreadFork(const RawEvent& ev, bool report, std::vector<OutEvent>& out);
  void OnFork(const RawEvent& ev, bool report, std::vector<OutEvent>& out);
  void OnExec(const RawEvent& ev, bool report, std::vector<OutEvent>& out, ProcInfo* pre);
  void ReadExec(int32_t tgid, const ProcEntry* p, ProcInfo* pre, ProcInfo& info);
  void LearnExec(const RawEvent& ev, ProcEntry& p, const ProcInfo& info);
  void ReportExec(const RawEvent& ev, const ProcEntry* p, ProcInfo& info, std::vector<OutEvent>& out);
  void OnExit(const RawEvent& ev, bool leader, bool report, std::vector<OutEvent>& out);
  void OnChange(const RawEvent& ev, bool leader, bool report, std::vector<OutEvent>& out);
  OutEvent Make(const RawEvent& ev, int32_t pid) const;
  OutEvent About(const RawEvent& ev);
  void EmitExit(const RawEvent& ev, ProcEntry* p, bool thread, std::vector<OutEvent>& out);

  ProcReader& reader_;
  ProcStore store_;
  Lineage lineage_{store_};
  Options opts_;
};

}  // namespace pm
