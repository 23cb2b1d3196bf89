// A ProcReader without /proc, for running the process table pure: what each pid "has in
// /proc" is whatever the test or fuzzer put in `procs`. A pid that is not there is gone
// (kill() would fail with ESRCH); one there but not `readable` is a process whose /proc
// files cannot be read (a zombie, another user's). Used by fuzz/table_fuzzer.cc and
// test/native/table_test.cc.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "../native/procfs.h"

namespace pm {

struct FakeProc {
  std::vector<std::string> argv;
  std::string comm, exe, cgroup, cwd;
  int32_t ppid = 0;
  uint32_t uid = 0;
  uint64_t start_ns = 0;
  bool readable = true;
  bool have_exe = true;
  bool have_cwd = true;
  bool have_cgroup = true;
  // No login uid, no session, no terminal, the namespaces of 1, nspid its pid: all readable.
  pm::Context ctx = [] {
    pm::Context c;
    c.pidns = 4026531836;
    c.mntns = 4026531832;
    c.netns = 4026531833;
    c.have = pm::kCtxAll;
    return c;
  }();
};

class FakeProcReader : public ProcReader {
 public:
  std::map<int32_t, FakeProc> procs;
  unsigned reads = 0;  // calls that read "/proc"

  bool Read(int32_t pid, const Options& o, ProcInfo& out) override {
    const FakeProc* p = Readable(pid);
    if (p == nullptr) {
      out.gone = procs.count(pid) == 0;
      return false;
    }
    out.argv = p->argv;
    out.have_argv = true;
    if (p->have_exe) {
      out.exe = p->exe;
      out.have_exe = true;
    }
    if (o.cwd && p->have_cwd) {
      out.cwd = p->cwd;
      out.have_cwd = true;
    }
    out.ctx = p->ctx;
    out.ctx.have &= ContextWanted(o.context, !o.env.empty()) & ~kMissNspid;  // (nspid: from status)
    return Status(pid, out);
  }
  void Context(int32_t pid, uint32_t groups, ProcInfo& out) override {
    const FakeProc* p = Readable(pid);
    if (p == nullptr) return;
    pm::Context c = p->ctx;
    c.have &= ContextWanted(groups, false) & ~kMissNspid;
    out.ctx = c;  // (a fresh ProcInfo's)
  }
  bool Status(int32_t pid, ProcInfo& out) override {
    const FakeProc* p = Readable(pid);
    if (p == nullptr) return false;
    out.comm = p->comm;
    out.ppid = p->ppid;
    out.uid = p->uid;
    out.euid = p->uid;
    if (p->ctx.Has(kMissNspid)) {
      out.ctx.nspid = p->ctx.nspid != 0 ? p->ctx.nspid : pid;
      out.ctx.have |= kMissNspid;
    }
    out.have_status = true;
    return true;
  }
  bool Comm(int32_t pid, ProcInfo& out) override {
    const FakeProc* p = Readable(pid);
    if (p == nullptr) return false;
    out.comm = p->comm;
    out.have_comm = true;
    return true;
  }
  uint64_t StartNs(int32_t pid) override {
    const FakeProc* p = Readable(pid);
    return p == nullptr ? 0 : p->start_ns;
  }
  bool Cgroup(int32_t pid, std::string& out) override {
    const FakeProc* p = Readable(pid);
    if (p == nullptr || !p->have_cgroup) return false;
    out = p->cgroup;
    return true;
  }
  bool Gone(int32_t pid) override { return procs.count(pid) == 0; }
  const std::string& UserName(uint32_t uid) override {
    auto it = users_.find(uid);
    if (it == users_.end()) it = users_.emplace(uid, uid == 0 ? std::string("root") : "user" + std::to_string(uid)).first;
    return it->second;
  }

 private:
  const FakeProc* Readable(int32_t pid) {
    reads++;
    auto it = procs.find(pid);
    return it == procs.end() || !it->second.readable ? nullptr : &it->second;
  }

  std::map<uint32_t, std::string> users_;
};

}  // namespace pm
