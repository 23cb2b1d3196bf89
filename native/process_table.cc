#include "process_table.h"

#include <utility>

#include "process_context.h"

namespace pm {

bool ProcessTable::Handle(const RawEvent& ev, std::vector<OutEvent>& out, ProcInfo* pre) {
  if (!lineage_.Admit(ev)) return false;
  const bool leader = ev.pid == ev.tgid;
  const bool report = (opts_.events & ev.what) && (leader || opts_.threads);
  switch (ev.what) {
    case kFork:
      if (leader) {
        OnFork(ev, report, out);
      } else {
        OnThreadFork(ev, report, out);
      }
      break;
    case kExec:
      OnExec(ev, report, out, pre);
      break;
    case kExit:
      OnExit(ev, leader, report, out);
      break;
    case kUid:
    case kGid:
    case kComm:
    case kSid:
    case kPtrace:
    case kCoredump:
      OnChange(ev, leader, report, out);
      break;
    default:
      break;
  }
  return true;
}

// A new thread in process tgid.
void ProcessTable::OnThreadFork(const RawEvent& ev, bool report, std::vector<OutEvent>& out) {
  ProcEntry* p = store_.Lookup(ev.tgid, report);
  if (p) p->AddThread();
  if (!report) return;
  OutEvent o = Make(ev, ev.pid);
  o.ppid = ev.tgid;
  store_.FillProcess(o, p);
  store_.Identify(o, ev.tgid, p, p ? p->ppid : 0, 0);
  out.push_back(std::move(o));
}

void ProcessTable::OnFork(const RawEvent& ev, bool report, std::vector<OutEvent>& out) {
  ProcEntry* parent = store_.Lookup(ev.ptgid, true);
  ProcEntry child;
  if (parent) {
    child = *parent;  // a forked child runs its parent's program
  } else {
    ProcInfo info;
    if (reader_.Read(ev.tgid, opts_, info)) {
      store_.Redact(info);
      child = ProcStore::Learned(info);
    }
    store_.ReadCgroupOf(ev.tgid, child);
  }
  child.NewProcess();
  ForkContext(reader_, opts_, ev.tgid, child.ctx);
  child.start_ns = ev.ts_ns;
  child.run_ns = ev.ts_ns;  // a new process: a run of its own, until it execs
  child.ppid = ev.ptgid;
  ProcEntry* c = store_.Insert(ev.tgid, std::move(child));
  if (!report) return;
  OutEvent o = Make(ev, ev.tgid);
  o.ppid = ev.ptgid;
  store_.FillProcess(o, c ? c : parent);
  store_.Identify(o, ev.tgid, c, ev.ptgid, ev.ts_ns);
  out.push_back(std::move(o));
}

void ProcessTable::OnExec(const RawEvent& ev, bool report, std::vector<OutEvent>& out, ProcInfo* pre) {
  ProcInfo own;
  ProcInfo& info = pre ? *pre : own;
  ProcEntry* p = store_.Lookup(ev.tgid, false);
  ReadExec(ev.tgid, p, pre, info);
  store_.Redact(info);
  if (p == nullptr) {
    ProcEntry np;
    np.start_ns = 0;
    p = store_.Insert(ev.tgid, std::move(np));
  }
  if (p) LearnExec(ev, *p, info);
  if (report) ReportExec(ev, p, info, out);
}

// What /proc says of an exec's process, beyond what was read ahead (`pre`).
void ProcessTable::ReadExec(int32_t tgid, const ProcEntry* p, ProcInfo* pre, ProcInfo& info) {
  if (!pre) {
    reader_.Read(tgid, opts_, info);
  } else if (info.gone) {
    // Reaped already: nothing more to read under this pid (or another process's).
  } else if (p && p->have_uid && p->ppid > 0 && (!(opts_.context & kCtxNs) || p->ctx.Has(kMissNspid))) {
    // exec keeps the real uid and the parent, which we know: only the name is new.
    reader_.Comm(tgid, info);
  } else {
    reader_.Status(tgid, info);
  }
}

void ProcessTable::LearnExec(const RawEvent& ev, ProcEntry& p, const ProcInfo& info) {
  p.leader_exited = false;  // an exec from a thread replaces the old leader
  if (info.have_status) {
    p.uid = info.uid;
    p.have_uid = true;
    p.ppid = info.ppid;
    p.comm = info.comm;
    p.have_comm = true;
  } else if (info.have_comm) {
    p.comm = info.comm;
    p.have_comm = true;
  } else {
    p.have_comm = false;
    p.comm.clear();  // not the name from before the exec
  }
  p.TakeProgram(info);
  p.run_ns = ev.ts_ns;  // a new program run
  p.from_proc = false;
  if (!info.gone) {
    store_.ReadCgroupOf(ev.tgid, p);  // where it runs now (a runtime moves it before exec)
  }
}

void ProcessTable::ReportExec(const RawEvent& ev, const ProcEntry* p, ProcInfo& info, std::vector<OutEvent>& out) {
  OutEvent o = Make(ev, ev.tgid);
  if (p) {
    store_.FillProcess(o, p);
    o.ppid = p->ppid;  // from /proc, else from the fork we saw
    if (p->ppid <= 0) o.missing |= kMissPpid;
  } else {
    o.user = info.have_status ? reader_.UserName(info.uid) : "unknown";
    o.uid = info.uid;
    o.comm = info.comm;
    o.ppid = info.ppid;
    o.cmdline = JoinArgv(info.argv);
    o.cwd = info.cwd;  // (Identify takes it and the context from the table where it has the process)
    o.have_cwd = info.have_cwd;
    o.ctx = info.ctx;
    if (!info.have_status) o.missing |= kMissUser | kMissComm | kMissPpid;
    if (!info.have_argv) o.missing |= kMissCmdline;
  }
  if (info.have_argv) {
    o.argv = std::move(info.argv);
  } else {
    o.missing |= kMissArgv;
  }
  if (info.have_exe) {
    o.exe = std::move(info.exe);
  } else {
    o.missing |= kMissExe;
  }
  store_.Identify(o, ev.tgid, p, (o.missing & kMissPpid) ? 0 : o.ppid, ev.ts_ns);
  out.push_back(std::move(o));
}

void ProcessTable::OnExit(const RawEvent& ev, bool leader, bool report, std::vector<OutEvent>& out) {
  ProcEntry* p = store_.Find(ev.tgid);
  if (!leader) {
    if (report) EmitExit(ev, p, true, out);
    if (p) {
      if (p->threads > 0) p->threads--;
      if (p->leader_exited && p->threads == 0) {
        // The last thread of a process whose main thread ended earlier: the process
        // ends now, with this thread's status.
        RawEvent last = ev;
        last.pid = ev.tgid;
        EmitExit(last, p, false, out);
        store_.entries().erase(ev.tgid);
      }
    }
    return;
  }
  if (p && p->threads > 0) {
    // Other threads run on (as the stream tells, however late it is read): the process
    // ends with the last of them.
    p->leader_exited = true;
    p->leader_exit = ev;
    return;
  }
  EmitExit(ev, p, false, out);
  if (p) store_.entries().erase(ev.tgid);
}

// uid, gid, comm, sid, ptrace, coredump: the table keeps the user and the name, and (setsid()
// leaves the process without one) the terminal.
void ProcessTable::OnChange(const RawEvent& ev, bool leader, bool report, std::vector<OutEvent>& out) {
  if (leader && (ev.what == kUid || ev.what == kComm || ev.what == kSid)) {
    ProcEntry* p = store_.Lookup(ev.tgid, false);
    if (p) p->Change(ev);
  }
  if (!report) return;
  OutEvent o = About(ev);
  if (ev.what == kComm) o.comm = ev.comm;
  out.push_back(std::move(o));
}

// The part every reported event shares: kind, kernel fields, time, the process it is about.
OutEvent ProcessTable::Make(const RawEvent& ev, int32_t pid) const {
  OutEvent o;
  o.what = ev.what;
  o.raw = ev;
  o.time_ms = store_.WallMs(ev.ts_ns);
  o.pid = pid;
  o.thread = ev.pid != ev.tgid;
  return o;
}

// An event about a process that changes nothing the table keeps (or only a field): who the
// process is and what it runs come from the table.
OutEvent ProcessTable::About(const RawEvent& ev) {
  OutEvent o = Make(ev, ev.tgid);
  const ProcEntry* p = store_.Find(ev.tgid);
  store_.FillProcess(o, p);
  if (p == nullptr) o.missing &= ~kMissPpid;  // (no ppid on these lines)
  store_.Identify(o, ev.tgid, p, p ? p->ppid : 0, 0);
  return o;
}

void ProcessTable::EmitExit(const RawEvent& ev, ProcEntry* p, bool thread, std::vector<OutEvent>& out) {
  if (!(opts_.events & kExit)) return;
  OutEvent o = Make(ev, thread ? ev.pid : ev.tgid);
  o.thread = thread;
  store_.FillProcess(o, p);
  if (ev.has_parent && ev.ptgid > 0) {
    o.ppid = ev.ptgid;
  } else if (p != nullptr) {
    o.ppid = p->ppid;
  } else {
    o.missing |= kMissPpid;
  }
  if (ev.has_parent) o.missing &= ~kMissPpid;
  if (p != nullptr && p->start_ns != 0 && ev.ts_ns >= p->start_ns) {
    o.duration_ms = static_cast<double>((ev.ts_ns - p->start_ns) / 1000) / 1000.0;
  } else {
    o.missing |= kMissDuration;
  }
  store_.Identify(o, ev.tgid, p, (o.missing & kMissPpid) ? 0 : o.ppid, 0);
  out.push_back(std::move(o));
}

void ProcessTable::FlushDeferred(std::vector<OutEvent>& out) {
  store_.set_flush_due(false);
  ProcStore::Map& table = store_.entries();
  for (auto it = table.begin(); it != table.end();) {
    if (it->second.leader_exited && reader_.Gone(it->first)) {
      EmitExit(it->second.leader_exit, &it->second, false, out);
      it = table.erase(it);
    } else {
      ++it;
    }
  }
}

}  // namespace pm
