// Unit tests of the process table (native/process_table.h) and the reader's pacing
// (native/pacer.h), fed sequences of events against a fake /proc (fuzz/fake_proc_reader.h):
// no kernel, no Node. Built and run by test/process-table.test.js, which makes each case a
// node:test subtest; prints "ok - NAME" or "not ok - NAME: LINE: EXPRESSION" per case and
// exits 1 if any failed.
#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "../../fuzz/fake_proc_reader.h"
#include "../../native/pacer.h"
#include "../../native/process_table.h"
#include "../../native/wire.h"
#include "table_harness.h"
#include "unit.h"

namespace {

using pm::OutEvent;
using pm::RawEvent;
using table_harness::AllEvents;
using table_harness::Harness;
using table_harness::Id;
using table_harness::kBoot;
using table_harness::kT0;

void ForkInheritsTheParentsProgram() {
  Harness h;
  auto& out = h.Fork(100, 200);
  EXPECT(out.size() == 1);
  const OutEvent& f = out[0];
  EXPECT(f.what == pm::kFork && f.pid == 200 && f.ppid == 100 && !f.thread);
  EXPECT(f.exec_id == Id(200, h.ts));
  EXPECT(f.parent_exec_id == Id(100, 1000));  // learned: its start stands for its exec
  EXPECT(f.comm == "bash" && f.cmdline == "bash -l" && f.user == "user1000" && f.uid == 1000);
  EXPECT(f.missing == 0);
  EXPECT(f.with_cgroup && f.cgroup == "/user.slice/user-1000.slice");
  EXPECT(h.table.size() == 2);  // the shell, learned, and its child
}

void ExecReadsProcAndStartsARun() {
  Harness h;
  h.table.Learn(1);
  h.Fork(100, 200);
  uint64_t forked = h.ts;
  h.Add(200, 100, "ls", {"ls", "-la"}, 1000);
  auto& out = h.Feed(h.Ev(pm::kExec, 200, 200));
  uint64_t execd = h.ts;
  EXPECT(out.size() == 1);
  const OutEvent& e = out[0];
  EXPECT(e.what == pm::kExec && e.pid == 200 && e.ppid == 100);
  EXPECT(e.argv == std::vector<std::string>({"ls", "-la"}) && e.cmdline == "ls -la" && e.exe == "/usr/bin/ls");
  EXPECT(e.comm == "ls" && e.user == "user1000");
  EXPECT(e.exec_id == Id(200, execd) && e.parent_exec_id == Id(100, 1000));
  EXPECT(e.with_ancestors && e.ancestors.size() == 2 && e.ancestors[0].pid == 100 && e.ancestors[1].pid == 1);
  auto& x = h.Exit(200, 200, 0);
  EXPECT(x.size() == 1 && x[0].what == pm::kExit && x[0].comm == "ls" && x[0].exec_id == Id(200, execd));
  EXPECT(x[0].duration_ms == static_cast<double>((h.ts - forked) / 1000) / 1000.0);
  EXPECT(h.table.size() == 2);  // init and the shell: the exit forgot it
}

void ExitWaitsForTheLastThread() {
  Harness h;
  h.Fork(100, 200);
  h.Thread(200, 201);
  h.Thread(200, 202);
  EXPECT(h.Exit(200, 200, 0).empty());  // the main thread: the process runs on
  EXPECT(h.Exit(201, 200, 0).empty());
  auto& out = h.Exit(202, 200, 3 << 8);
  EXPECT(out.size() == 1);
  EXPECT(out[0].pid == 200 && !out[0].thread && out[0].raw.a == (3u << 8));  // the last thread's status
  EXPECT(h.table.size() == 1);
}

void ThreadsReportedWhenAskedFor() {
  pm::Options o = AllEvents();
  o.threads = true;
  Harness h(o);
  h.Fork(100, 200);
  auto& t = h.Thread(200, 201);
  EXPECT(t.size() == 1 && t[0].thread && t[0].pid == 201 && t[0].ppid == 200);
  EXPECT(h.Exit(200, 200, 0).empty());
  auto& out = h.Exit(201, 200, 0);
  EXPECT(out.size() == 2);
  EXPECT(out[0].thread && out[0].pid == 201);
  EXPECT(!out[1].thread && out[1].pid == 200);
}

void DeferredExitFlushedOnceGone() {
  Harness h;
  h.Fork(100, 200);
  h.Thread(200, 201);
  h.Exit(200, 200, 5 << 8);
  h.out.clear();
  h.table.NoteLoss();  // the thread's exit was lost
  EXPECT(h.table.flush_due());
  h.reader.procs[200];  // still running: nothing yet
  h.table.FlushDeferred(h.out);
  EXPECT(h.out.empty() && !h.table.flush_due());
  h.reader.procs.erase(200);  // gone
  h.table.FlushDeferred(h.out);
  EXPECT(h.out.size() == 1 && h.out[0].pid == 200 && h.out[0].raw.a == (5u << 8));
  EXPECT(h.table.size() == 1);
}

void UnknownProcessExit() {
  Harness h;
  RawEvent ev = h.Ev(pm::kExit, 300, 300);
  ev.has_parent = true;
  ev.ppid = ev.ptgid = 100;
  auto& out = h.Feed(ev);
  EXPECT(out.size() == 1 && out[0].user == "unknown" && out[0].ppid == 100);
  EXPECT(out[0].missing & pm::kMissUser);
  EXPECT(out[0].missing & pm::kMissDuration);
  EXPECT(!(out[0].missing & pm::kMissPpid));
  EXPECT(h.table.size() == 0);
}

void SeededAndLearnedProcesses() {
  Harness h;
  EXPECT(h.table.Learn(1) && h.table.Learn(100));
  auto recs = h.Snapshot();
  EXPECT(recs.size() == 2);
  for (const auto& r : recs) EXPECT(r.learned && r.have_comm && r.have_exe && r.start_ms >= 0);
  h.Fork(100, 200);
  std::vector<pm::ProcRecord> chain;
  h.table.Ancestry(200, chain);
  EXPECT(chain.size() == 3 && chain[0].pid == 200 && chain[1].pid == 100 && chain[2].pid == 1);
  EXPECT(!chain[0].learned && chain[0].threads == 0);
  chain.clear();
  h.table.Ancestry(999, chain);
  EXPECT(chain.empty());
}

void AncestorChainBreaksAtAnUnknownParent() {
  Harness h;
  h.reader.procs[100].ppid = 50;  // 50 is not in /proc
  h.Fork(100, 200);
  auto& out = h.Feed(h.Ev(pm::kExec, 200, 200));
  EXPECT(out.size() == 1 && out[0].ancestors.size() == 1 && out[0].ancestors[0].pid == 100);
  EXPECT(out[0].missing & pm::kMissAncestors);
}

void FullTableCountsAndSweeps() {
  pm::Options o = AllEvents();
  o.table_max = 2;
  Harness h(o);
  h.Fork(100, 200);  // 100 learned, 200 inserted: the table is full
  h.reader.procs[200];
  auto& out = h.Fork(100, 201);
  EXPECT(h.table.size() == 2 && h.table.full_count() == 1);
  EXPECT(out.size() == 1 && out[0].exec_id == Id(201, h.ts));  // reported, not remembered
  EXPECT(out[0].missing & pm::kMissCgroup);
  h.reader.procs.erase(200);  // 200 ended unseen: the next insert sweeps it out
  h.Fork(100, 202);
  EXPECT(h.table.size() == 2 && h.table.full_count() == 1);
  std::vector<pm::ProcRecord> chain;
  h.table.Ancestry(202, chain);
  EXPECT(chain.size() == 2);
}

void UidAndCommChangeTheTable() {
  Harness h;
  h.Fork(100, 200);
  RawEvent uid = h.Ev(pm::kUid, 200, 200);
  uid.a = uid.b = 0;
  auto& u = h.Feed(uid);
  EXPECT(u.size() == 1 && u[0].exec_id == Id(200, h.ts - 1000000));
  RawEvent comm = h.Ev(pm::kComm, 200, 200);
  std::snprintf(comm.comm, sizeof comm.comm, "worker");
  auto& c = h.Feed(comm);
  EXPECT(c.size() == 1 && c[0].comm == "worker");
  auto& x = h.Exit(200, 200, 0);
  EXPECT(x.size() == 1 && x[0].user == "root" && x[0].uid == 0 && x[0].comm == "worker");
}

void ExecOfAProcessAlreadyGone() {
  Harness h;
  h.Fork(100, 200);
  pm::ProcInfo pre;
  pre.gone = true;
  unsigned reads = h.reader.reads;
  auto& out = h.Feed(h.Ev(pm::kExec, 200, 200), &pre);
  EXPECT(h.reader.reads == reads);  // nothing more read under a reaped pid
  EXPECT(out.size() == 1);
  EXPECT(out[0].comm.empty() && (out[0].missing & pm::kMissComm));  // not the name from before
  EXPECT((out[0].missing & pm::kMissArgv) && (out[0].missing & pm::kMissExe));
  EXPECT(out[0].user == "user1000");  // exec keeps the user
}

void CwdReadAtExecInheritedAtForkCarriedToExit() {
  Harness h;
  h.Fork(100, 200);
  h.Add(200, 100, "make", {"make", "-j2"}, 1000).cwd = "/src/proj";
  std::vector<OutEvent> e = h.Feed(h.Ev(pm::kExec, 200, 200));  // (a copy: Feed reuses its vector)
  EXPECT(e.size() == 1 && e[0].with_cwd && e[0].have_cwd && e[0].cwd == "/src/proj" && !(e[0].missing & pm::kMissCwd));
  // Its child runs make until it execs: the table's cwd is inherited, shown on its fork, and
  // carried to an exit that comes before any exec.
  auto& f = h.Fork(200, 201);
  EXPECT(f.size() == 1 && f[0].with_cwd && f[0].cwd == "/src/proj" && !(f[0].missing & pm::kMissCwd));
  auto& x = h.Exit(201, 201, 0);
  EXPECT(x.size() == 1 && x[0].with_cwd && x[0].cwd == "/src/proj");
  // A chdir() shows at the next exec only: what /proc says then.
  h.Fork(200, 202);
  h.Add(202, 200, "cc", {"cc", "-c", "a.c"}, 1000).cwd = "/src/proj/sub";
  EXPECT(h.Feed(h.Ev(pm::kExec, 202, 202))[0].cwd == "/src/proj/sub");
  EXPECT(h.Exit(202, 202, 0)[0].cwd == "/src/proj/sub");
  // Unreadable at exec: absent and named missing, at the exec and at the exit.
  h.Fork(200, 203);
  h.Add(203, 200, "ls", {"ls"}, 1000).have_cwd = false;
  std::vector<OutEvent> u = h.Feed(h.Ev(pm::kExec, 203, 203));
  EXPECT(u[0].with_cwd && !u[0].have_cwd && (u[0].missing & pm::kMissCwd));
  EXPECT(h.Exit(203, 203, 0)[0].missing & pm::kMissCwd);
  // The snapshot has it.
  bool found = false;
  for (const auto& r : h.Snapshot()) found = found || (r.pid == 200 && r.have_cwd && r.cwd == "/src/proj");
  EXPECT(found);
  // On the wire: "cwd" on exec and exit; "cwd" in missing where it could not be read.
  std::string line;
  pm::AppendEventLine(line, e[0]);
  EXPECT(line.find(",\"cwd\":\"/src/proj\"") != std::string::npos);
  line.clear();
  pm::AppendEventLine(line, u[0]);
  EXPECT(line.find("\"cwd\":") == std::string::npos && line.find("\"cwd\"]}") != std::string::npos);  // the last of missing
}

void CwdOffReadsNothing() {
  pm::Options o = AllEvents();
  o.cwd = false;
  Harness h(o);
  h.Fork(100, 200);
  h.Add(200, 100, "ls", {"ls"}, 1000);
  auto& e = h.Feed(h.Ev(pm::kExec, 200, 200));
  EXPECT(e.size() == 1 && !e[0].with_cwd && !(e[0].missing & pm::kMissCwd));
  std::string line;
  pm::AppendEventLine(line, e[0]);
  EXPECT(line.find("cwd") == std::string::npos);
  EXPECT(!h.Exit(200, 200, 0)[0].with_cwd);
  for (const auto& r : h.Snapshot()) EXPECT(!r.have_cwd);
}

void SecretsRedacted() {
  pm::Options o = AllEvents();
  o.redact = {"hunter2"};
  Harness h(o);
  h.Fork(100, 200);
  h.Add(200, 100, "mysql", {"mysql", "--password=hunter2"}, 1000);
  auto& out = h.Feed(h.Ev(pm::kExec, 200, 200));
  EXPECT(out.size() == 1 && out[0].argv[1] == "--password=*****" && out[0].cmdline == "mysql --password=*****");
}

void UnreportedKindsStillKeepTheTable() {
  pm::Options o;
  o.events = pm::kExec;
  Harness h(o);
  EXPECT(h.Fork(100, 200).empty());
  EXPECT(h.table.size() == 2);
  EXPECT(h.Exit(200, 200, 0).empty());
  EXPECT(h.table.size() == 1);
}

pm::RawEvent ForkEv(Harness& h, int32_t parent, int32_t child) {
  pm::RawEvent ev = h.Ev(pm::kFork, child, child);
  ev.ppid = ev.ptgid = parent;
  return ev;
}

void SubtreeFollowsForkLineageAndReadsNothingElse() {
  pm::Options o = AllEvents();
  o.subtree = {100};
  Harness h(o);
  h.Add(300, 1, "cron", {"cron"}, 0);
  EXPECT(h.table.Learn(100) && h.table.size() == 1);  // the root, as the scan at start learns it
  unsigned reads = h.reader.reads;
  // The rest of the host: nothing read, kept or reported.
  EXPECT(h.Fork(300, 301).empty() && h.Feed(h.Ev(pm::kExec, 301, 301)).empty() && h.Exit(301, 301, 0).empty());
  EXPECT(h.Fork(1, 302).empty() && h.Thread(300, 303).empty());
  EXPECT(h.reader.reads == reads && h.table.size() == 1);
  // The root's children and theirs, after their parent is gone (a double fork).
  EXPECT(h.Fork(100, 200).size() == 1);
  EXPECT(h.Fork(200, 201).size() == 1);
  EXPECT(h.Exit(200, 200, 0).size() == 1);
  h.Add(201, 1, "daemon", {"daemon", "-f"}, 1000);
  auto& e = h.Feed(h.Ev(pm::kExec, 201, 201));
  EXPECT(e.size() == 1 && e[0].argv == std::vector<std::string>({"daemon", "-f"}) && e[0].ppid == 1);
  EXPECT(h.table.size() == 2);
  // Once a member exits, its pid is a stranger's again.
  EXPECT(h.Exit(201, 201, 0).size() == 1 && h.Fork(1, 201).empty());
  // A member whose exit was lost: a stranger's child under its pid is not taken for it.
  EXPECT(h.Fork(100, 220).size() == 1 && h.table.size() == 2);
  EXPECT(h.Fork(300, 220).empty() && h.table.size() == 1);
  h.Add(220, 300, "intruder", {"intruder"}, 0);
  EXPECT(h.Feed(h.Ev(pm::kExec, 220, 220)).empty() && h.Fork(220, 221).empty());
  // Which execs of a batch to read ahead: the batch's own forks count.
  std::vector<pm::RawEvent> raw = {
      ForkEv(h, 100, 210),       h.Ev(pm::kExec, 210, 210), h.Ev(pm::kExec, 300, 300), ForkEv(h, 300, 211),
      h.Ev(pm::kExec, 211, 211), ForkEv(h, 300, 100),       h.Ev(pm::kExec, 100, 100)};  // the root's pid reused by a stranger's child
  std::vector<char> in;
  h.table.lineage().FollowedExecs(raw, in);
  EXPECT(in == std::vector<char>({1, 0, 0, 0}));
  Harness all;  // without a subtree, every exec
  all.table.lineage().FollowedExecs(raw, in);
  EXPECT(in == std::vector<char>({1, 1, 1, 1}));
}

void SubtreeOfTheParentsInProc() {
  std::vector<std::pair<int32_t, int32_t>> parents = {{1, 0}, {50, 1}, {60, 50}, {61, 60}, {70, 1}, {62, 50}, {80, 61}};
  EXPECT(pm::SubtreeOf({50}, parents) == std::vector<int32_t>({50, 60, 62, 61, 80}));  // parents before children
  EXPECT(pm::SubtreeOf({61, 70, 61}, parents) == std::vector<int32_t>({61, 70, 80}));
  EXPECT(pm::SubtreeOf({99}, parents).empty());  // not running
  // Nested roots: each process once, the deepest reached.
  EXPECT(pm::SubtreeOf({1, 60}, parents) == std::vector<int32_t>({1, 60, 50, 70, 61, 62, 80}));
  // Parents read at different moments may loop (a pid reused meanwhile): each once, it ends.
  EXPECT(pm::SubtreeOf({5}, {{5, 6}, {6, 5}, {7, 6}}) == std::vector<int32_t>({5, 6, 7}));
  int32_t ppid = 0;
  const char stat[] = "4242 (a) b) 4) S 17 4242 4242 0 -1";
  EXPECT(pm::ParseStatPpid(stat, sizeof stat - 1, &ppid) && ppid == 17);
  EXPECT(!pm::ParseStatPpid(stat, 12, &ppid));
}

void PacerWakesAtMostOncePerInterval() {
  pm::Pacer p(1000000);  // 1 ms
  timespec ts;
  EXPECT(p.Timeout(0, &ts) == nullptr);
  EXPECT(p.Wake(true, 5000000));   // the first wake-up at once
  EXPECT(!p.Wake(true, 5400000));  // 0.4 ms later: held back
  const timespec* t = p.Timeout(5400000, &ts);
  EXPECT(t != nullptr && t->tv_sec == 0 && t->tv_nsec == 600000);
  EXPECT(!p.Wake(false, 5900000));  // still due, not yet
  EXPECT(p.Wake(false, 6000000));   // the interval is over
  EXPECT(p.Timeout(6000000, &ts) == nullptr);
  pm::Pacer every(0);  // no interval: every read wakes
  EXPECT(every.Wake(true, 1) && every.Wake(true, 1) && !every.Wake(false, 2));
}

void PacerRestsTheSocketAfterARead() {
  timespec ts;
  pm::Pacer none(1000000);  // no rest: the socket is never left out
  none.Read(5000000);
  none.Read(5000001);
  EXPECT(!none.Resting(5000001));
  EXPECT(none.Timeout(5000001, &ts) == nullptr);
  pm::Pacer p(10000000, 2000000);  // JS at most every 10 ms; the socket rests 2 ms in a burst
  p.Read(10000000);
  EXPECT(!p.Resting(10000000));  // a lone read: no rest (a lone event costs one wake-up)
  p.Read(17000000);
  EXPECT(!p.Resting(17000000));  // 7 ms later: still no burst
  p.Read(18000000);              // 1 ms later: a burst
  EXPECT(p.Resting(18000000) && p.Resting(19999999) && !p.Resting(20000000));
  const timespec* t = p.Timeout(18500000, &ts);  // no wake-up due: until the rest is over
  EXPECT(t != nullptr && t->tv_sec == 0 && t->tv_nsec == 1500000);
  EXPECT(p.Wake(true, 18500000));  // JS woken now; the next one not before 28.5 ms
  p.Read(20100000);                // at the rest's end, events were waiting: the burst goes on
  EXPECT(p.Resting(22099999) && !p.Resting(22100000));
  EXPECT(!p.Wake(true, 20200000));  // due, held back
  t = p.Timeout(20200000, &ts);     // the rest (to 22.1 ms) ends first
  EXPECT(t != nullptr && t->tv_nsec == 1900000);
  t = p.Timeout(23000000, &ts);  // rested: until the wake-up due at 28.5 ms
  EXPECT(t != nullptr && t->tv_nsec == 5500000);
  EXPECT(p.Timeout(40000000, &ts)->tv_nsec == 0);  // overdue: at once
  p.Read(40000000);                                // long after the rest's end: a lone read again
  EXPECT(!p.Resting(40000000));
}

const unit::Case kCases[] = {
    {"fork: the child runs its parent's program; exec ids of the child and the parent", ForkInheritsTheParentsProgram},
    {"exec: argv, exe, comm and user from /proc, a new run; the exit carries it", ExecReadsProcAndStartsARun},
    {"a process whose main thread ends first ends with its last thread, with that thread's status", ExitWaitsForTheLastThread},
    {"threads: their forks and exits are reported when asked for, before the process's exit", ThreadsReportedWhenAskedFor},
    {"after a loss, a held-back exit is reported once the process is gone", DeferredExitFlushedOnceGone},
    {"the exit of a process the table never knew: the kernel's parent, the rest missing", UnknownProcessExit},
    {"processes learned from /proc: snapshot and ancestry", SeededAndLearnedProcesses},
    {"ancestors stop at a parent the table does not know", AncestorChainBreaksAtAnUnknownParent},
    {"a full table: counted, reported all the same; gone processes swept out for new ones", FullTableCountsAndSweeps},
    {"uid and comm events change the user and the name on later events", UidAndCommChangeTheTable},
    {"exec of a process already reaped: nothing read, no stale name", ExecOfAProcessAlreadyGone},
    {"cwd: read at exec, inherited at fork, carried to the exit; missing where unreadable", CwdReadAtExecInheritedAtForkCarriedToExit},
    {"cwd off: nothing read, nothing said", CwdOffReadsNothing},
    {"secrets in argv are redacted in argv and cmdline", SecretsRedacted},
    {"events that are not reported still keep the table", UnreportedKindsStillKeepTheTable},
    {"subtree: followed by fork lineage (a double fork too); the rest of the host neither read nor kept",
     SubtreeFollowsForkLineageAndReadsNothingElse},
    {"subtree at start: the roots running and their descendants, parents first; ppid of /proc/PID/stat", SubtreeOfTheParentsInProc},
    {"pacer: JS woken at most once per interval, ppoll's timeout until then", PacerWakesAtMostOncePerInterval},
    {"pacer: the socket left alone for the rest after a read; ppoll's timeout the earlier end", PacerRestsTheSocketAfterARead},
};

}  // namespace

int main() { return unit::RunCases(kCases); }
