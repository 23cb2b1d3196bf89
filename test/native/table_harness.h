// The process table over a fake /proc (fuzz/fake_proc_reader.h), fed events one by one: the
// harness of test/native/table_test.cc and context_test.cc.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "../../fuzz/fake_proc_reader.h"
#include "../../native/process_table.h"

namespace table_harness {

using pm::OutEvent;
using pm::RawEvent;

inline const char kBoot[] = "0123abcd";
inline const uint64_t kT0 = 5000000000;  // 5 s after boot

inline std::string Id(int32_t pid, uint64_t ts) { return std::string(kBoot) + ":" + std::to_string(pid) + ":" + std::to_string(ts); }

// A table over a fake /proc in which init (1) and a shell (100, uid 1000) run.
inline pm::Options AllEvents() {
  pm::Options o;
  o.events = pm::kAllEvents;
  return o;
}

struct Harness {
  pm::FakeProcReader reader;
  pm::ProcessTable table{reader};
  pm::Options opts;
  std::vector<OutEvent> out;
  uint64_t ts = kT0;

  // Every kind of event is reported unless the case says otherwise.
  explicit Harness(pm::Options o = AllEvents()) : opts(std::move(o)) {
    table.Reset(opts, kBoot);
    Add(1, 0, "init", {"/sbin/init"}, 0);
    Add(100, 1, "bash", {"bash", "-l"}, 1000);
  }
  pm::FakeProc& Add(int32_t pid, int32_t ppid, const std::string& comm, std::vector<std::string> argv, uint32_t uid) {
    pm::FakeProc& p = reader.procs[pid];
    p.comm = comm;
    p.argv = std::move(argv);
    p.exe = "/usr/bin/" + comm;
    p.ppid = ppid;
    p.uid = uid;
    p.start_ns = 1000;
    p.cgroup = "/user.slice/user-1000.slice";
    p.cwd = "/home/u" + std::to_string(pid);
    return p;
  }
  RawEvent Ev(uint32_t what, int32_t pid, int32_t tgid) {
    RawEvent ev;
    ev.what = what;
    ev.ts_ns = ts += 1000000;  // 1 ms apart
    ev.pid = pid;
    ev.tgid = tgid;
    return ev;
  }
  std::vector<OutEvent>& Feed(const RawEvent& ev, pm::ProcInfo* pre = nullptr) {
    out.clear();
    table.Handle(ev, out, pre);
    return out;
  }
  std::vector<OutEvent>& Fork(int32_t parent, int32_t child) {
    RawEvent ev = Ev(pm::kFork, child, child);
    ev.ppid = ev.ptgid = parent;
    return Feed(ev);
  }
  std::vector<OutEvent>& Thread(int32_t tgid, int32_t tid) {
    RawEvent ev = Ev(pm::kFork, tid, tgid);
    ev.ppid = ev.ptgid = tgid;
    return Feed(ev);
  }
  std::vector<OutEvent>& Exit(int32_t pid, int32_t tgid, uint32_t code) {
    RawEvent ev = Ev(pm::kExit, pid, tgid);
    ev.a = code;
    return Feed(ev);
  }
  std::vector<pm::ProcRecord> Snapshot() {
    std::vector<pm::ProcRecord> recs;
    table.Snapshot(recs);
    return recs;
  }
};

}  // namespace table_harness
