// The process table's storage: one entry per live process (thread group), bounded, learned
// from /proc where the events did not tell, and how an entry is shown (exec ids, user and
// ancestors on an event, records for snapshot() and ancestry()). ProcessTable (process_table.h) keeps it up to date from the
// events. Not thread-safe, like ProcessTable.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "events.h"
#include "parser.h"
#include "procfs.h"
#include "redact.h"

namespace pm {

// One process as the table keeps it.
struct ProcEntry {
  uint64_t start_ns = 0;  // kernel time of the fork (0: unknown)
  uint64_t run_ns = 0;    // kernel time its current program started: fork, exec (0: unknown)
  int32_t ppid = 0;
  uint32_t uid = 0;
  bool have_uid = false;
  bool have_cmd = false;
  bool have_comm = false;
  bool have_exe = false;
  bool have_cgroup = false;
  bool have_cwd = false;
  std::string comm, cmdline, exe, cgroup, cwd;
  std::string container_id;    // of the cgroup, found when it is read
  Context ctx;                 // inherited at fork, read again at exec
  uint32_t threads = 0;        // live non-leader threads we saw start
  bool leader_exited = false;  // main thread gone, others still running
  bool from_proc = false;      // learned from /proc (running before we started)
  bool had_threads = false;    // another thread was seen start (history unknown if from_proc)
  RawEvent leader_exit;

  void AddThread() {
    threads++;
    had_threads = true;
  }
  // A forked child's own: no threads yet, its main thread alive, seen from its fork.
  void NewProcess() {
    threads = 0;
    had_threads = false;
    leader_exited = false;
    from_proc = false;
  }
  // A uid change, a new name, or setsid() (which leaves it without a terminal).
  void Change(const RawEvent& ev);
  // The program an exec started, as /proc told it: command line, exe, working directory, and
  // the context read (MergeContext).
  void TakeProgram(const ProcInfo& info);
};

class ProcStore {
 public:
  using Map = std::unordered_map<int32_t, ProcEntry>;

  explicit ProcStore(ProcReader& reader) : reader_(reader) {}
  ProcStore(const ProcStore&) = delete;
  ProcStore& operator=(const ProcStore&) = delete;

  // Forgets every process; takes the options, and the exec ids' prefix (the boot id's first
  // 8 hex digits).
  void Reset(const Options& opts, std::string boot);
  void SetClockOffset(int64_t ns) { clock_offset_ns_.store(ns, std::memory_order_relaxed); }
  // Wall-clock milliseconds of a kernel timestamp.
  double WallMs(uint64_t ts_ns) const;

  ProcEntry* Find(int32_t pid);
  const ProcEntry* Find(int32_t pid) const;
  // The entry of tgid; one learned from /proc if there is none and `learn` says so.
  ProcEntry* Lookup(int32_t tgid, bool learn);
  // Stores p as tgid's entry. When the table is full, first forgets processes that are gone;
  // nullptr (and counted) if it is full still.
  ProcEntry* Insert(int32_t tgid, ProcEntry&& p);
  // The scan at start: false, and nothing learned, when the table is full.
  bool Learn(int32_t pid);
  // What /proc says of a process, as an entry.
  static ProcEntry Learned(const ProcInfo& info);
  // Hides the secrets in what /proc said of a process (Options.redact...), before it is kept.
  void Redact(ProcInfo& info) const {
    redactor_.Apply(info.argv);
    redactor_.ApplyEnv(info.ctx.env);
  }
  // Reads the cgroup of pid into p (when cgroups are asked for).
  void ReadCgroupOf(int32_t pid, ProcEntry& p);
  Map& entries() { return table_; }

  // boot:pid:start of the run.
  std::string ExecId(int32_t pid, uint64_t run_ns) const;
  // The exec id of pid's current run, "" if the table does not know it.
  std::string RunOf(int32_t pid) const;
  // The process's user, name and command line on an event about it (p: nullptr if unknown).
  void FillProcess(OutEvent& o, const ProcEntry* p);
  // exec_id, parent_exec_id, cgroup and (where asked for) ancestors of an event about pid.
  void Identify(OutEvent& o, int32_t pid, const ProcEntry* p, int32_t ppid, uint64_t run_ns);
  void Snapshot(std::vector<ProcRecord>& out);
  void Ancestry(int32_t pid, std::vector<ProcRecord>& out);

  size_t size() const { return table_.size(); }
  uint64_t full_count() const { return full_count_; }
  // A process whose exit waits for its threads' was found gone (or a loss was noted).
  bool flush_due() const { return flush_due_; }
  void set_flush_due(bool due) { flush_due_ = due; }

 private:
  void Sweep();
  void Record(int32_t pid, const ProcEntry& p, ProcRecord& r);
  void AddAncestors(OutEvent& o, int32_t ppid) const;

  ProcReader& reader_;
  Options opts_;
  uint32_t wanted_ = 0;  // the context's fields asked for (ContextWanted)
  Redactor redactor_;
  std::string boot_ = "00000000";
  std::atomic<int64_t> clock_offset_ns_{0};
  Map table_;
  uint64_t full_count_ = 0;
  bool flush_due_ = false;  // a loss (or a full table): deferred exits may be due
};

}  // namespace pm
