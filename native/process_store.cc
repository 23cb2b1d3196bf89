#include "process_store.h"

#include <cstdio>
#include <utility>

#include "process_context.h"

namespace pm {

void ProcStore::Reset(const Options& opts, std::string boot) {
  opts_ = opts;
  wanted_ = ContextWanted(opts.context, !opts.env.empty());
  std::string why;  // (the patterns were checked before: lib/connector-options.ts)
  redactor_.Reset(opts.redact, opts.redact_patterns, opts.redact_defaults, &why);
  boot_ = std::move(boot);
  table_.clear();
  full_count_ = 0;
  flush_due_ = false;
}

double ProcStore::WallMs(uint64_t ts_ns) const {
  return static_cast<double>((static_cast<int64_t>(ts_ns) + clock_offset_ns_.load(std::memory_order_relaxed)) / 1000000);
}

ProcEntry* ProcStore::Lookup(int32_t tgid, bool learn) {
  auto it = table_.find(tgid);
  if (it != table_.end()) return &it->second;
  if (!learn || tgid <= 0) return nullptr;
  // A process that was running before we started: learn it from /proc.
  ProcInfo info;
  if (!reader_.Read(tgid, opts_, info)) return nullptr;
  Redact(info);
  ProcEntry p = Learned(info);
  p.start_ns = reader_.StartNs(tgid);
  p.run_ns = p.start_ns;  // when it last exec'd is not known: its start stands for it
  ReadCgroupOf(tgid, p);
  return Insert(tgid, std::move(p));
}

bool ProcStore::Learn(int32_t pid) {
  if (table_.size() >= opts_.table_max) return false;
  Lookup(pid, true);
  return true;
}

ProcEntry* ProcStore::Insert(int32_t tgid, ProcEntry&& p) {
  if (table_.size() >= opts_.table_max && table_.find(tgid) == table_.end()) {
    Sweep();
    if (table_.size() >= opts_.table_max) {
      full_count_++;
      return nullptr;
    }
  }
  ProcEntry& slot = table_[tgid];
  slot = std::move(p);
  return &slot;
}

// What /proc says of a process, as a table entry.
ProcEntry ProcStore::Learned(const ProcInfo& info) {
  ProcEntry p;
  p.ppid = info.ppid;
  p.uid = info.uid;
  p.have_uid = info.have_status;
  p.comm = info.comm;
  p.have_comm = info.have_status;
  p.TakeProgram(info);
  p.from_proc = true;
  return p;
}

void ProcEntry::Change(const RawEvent& ev) {
  if (ev.what == kUid) {
    uid = ev.a;
    have_uid = true;
  } else if (ev.what == kComm) {
    comm = ev.comm;
    have_comm = true;
  } else if (ev.what == kSid) {
    ctx.tty = 0;
  }
}

void ProcEntry::TakeProgram(const ProcInfo& info) {
  cmdline = info.have_argv ? JoinArgv(info.argv) : std::string();
  have_cmd = info.have_argv;
  exe = info.have_exe ? info.exe : std::string();
  have_exe = info.have_exe;
  cwd = info.have_cwd ? info.cwd : std::string();
  have_cwd = info.have_cwd;
  MergeContext(ctx, info.ctx, true);
}

// Forgets processes whose exit we never saw (lost events). A gone process whose exit waits
// for its last thread's (lost too, maybe) stays for FlushDeferred to report.
void ProcStore::Sweep() {
  for (auto it = table_.begin(); it != table_.end();) {
    if (reader_.Gone(it->first)) {
      if (it->second.leader_exited) {
        flush_due_ = true;
        ++it;
        continue;
      }
      it = table_.erase(it);
    } else {
      ++it;
    }
  }
}

// boot:pid:start of the run in ns of the kernel's monotonic clock. Unique within a boot
// (one pid cannot start two runs in the same nanosecond), and the boot prefix keeps ids
// of different boots apart.
std::string ProcStore::ExecId(int32_t pid, uint64_t run_ns) const {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%s:%d:%llu", boot_.c_str(), pid, static_cast<unsigned long long>(run_ns));
  return buf;
}

std::string ProcStore::RunOf(int32_t pid) const {
  const ProcEntry* p = pid > 0 ? Find(pid) : nullptr;
  return p != nullptr && p->run_ns != 0 ? ExecId(pid, p->run_ns) : std::string();
}

const ProcEntry* ProcStore::Find(int32_t pid) const {
  auto it = table_.find(pid);
  return it == table_.end() ? nullptr : &it->second;
}

ProcEntry* ProcStore::Find(int32_t pid) {
  auto it = table_.find(pid);
  return it == table_.end() ? nullptr : &it->second;
}

void ProcStore::Record(int32_t pid, const ProcEntry& p, ProcRecord& r) {
  r.pid = pid;
  r.ppid = p.ppid;
  if (p.run_ns != 0) r.exec_id = ExecId(pid, p.run_ns);
  r.parent_exec_id = RunOf(p.ppid);
  r.comm = p.comm;
  r.have_comm = p.have_comm;
  r.exe = p.exe;
  r.have_exe = p.have_exe;
  r.cmdline = p.cmdline;
  r.have_cmd = p.have_cmd;
  r.uid = p.uid;
  r.have_uid = p.have_uid;
  if (p.have_uid) r.user = reader_.UserName(p.uid);
  r.cgroup = p.cgroup;
  r.have_cgroup = p.have_cgroup;
  r.cwd = p.cwd;
  r.have_cwd = p.have_cwd;
  r.container_id = p.container_id;
  r.ctx = p.ctx;
  r.with_ctx = wanted_;
  ShowContext(reader_, r.ctx, r.login_user);
  r.learned = p.from_proc;
  r.start_ms = p.start_ns != 0 ? WallMs(p.start_ns) : -1;
  r.exec_ms = p.run_ns != 0 ? WallMs(p.run_ns) : -1;
  r.threads = p.threads;
}

void ProcStore::Snapshot(std::vector<ProcRecord>& out) {
  out.reserve(out.size() + table_.size());
  for (const auto& kv : table_) {
    out.emplace_back();
    Record(kv.first, kv.second, out.back());
  }
}

void ProcStore::Ancestry(int32_t pid, std::vector<ProcRecord>& out) {
  int32_t next = pid;
  // Bounded: a chain longer than the table is a loop (a stale entry), not ancestry.
  for (size_t depth = 0; next > 0 && depth <= table_.size(); depth++) {
    const ProcEntry* p = Find(next);
    if (p == nullptr) break;
    out.emplace_back();
    Record(next, *p, out.back());
    if (next == 1) break;
    next = p->ppid;
  }
}

void ProcStore::ReadCgroupOf(int32_t pid, ProcEntry& p) {
  if (!opts_.cgroups) return;
  p.have_cgroup = reader_.Cgroup(pid, p.cgroup);
  if (!p.have_cgroup) p.cgroup.clear();
  p.container_id = p.have_cgroup ? ContainerIdOf(p.cgroup) : std::string();  // once per read
}

void ProcStore::FillProcess(OutEvent& o, const ProcEntry* p) {
  if (p == nullptr) {
    o.user = "unknown";
    o.missing |= kMissUser | kMissComm | kMissCmdline | kMissPpid;
    return;
  }
  if (p->have_uid) {
    o.uid = p->uid;
    o.user = reader_.UserName(p->uid);
  } else {
    o.user = "unknown";
    o.missing |= kMissUser;
  }
  o.comm = p->comm;
  if (!p->have_comm) o.missing |= kMissComm;
  o.cmdline = p->cmdline;
  if (!p->have_cmd) o.missing |= kMissCmdline;
  o.single_threaded = !p->had_threads && !p->from_proc;
}

void ProcStore::Identify(OutEvent& o, int32_t pid, const ProcEntry* p, int32_t ppid, uint64_t run_ns) {
  if (p != nullptr && p->run_ns != 0) run_ns = p->run_ns;
  if (run_ns != 0) {
    o.exec_id = ExecId(pid, run_ns);
  } else {
    o.missing |= kMissExecId;
  }
  if (p != nullptr) o.learned = p->from_proc;
  o.parent_exec_id = RunOf(ppid);
  if (o.parent_exec_id.empty() && ppid != 0) o.missing |= kMissParentExecId;  // pid 0: the kernel
  // Every event says what is known of its process (so a filter, here or on a client's line,
  // reads it from the event itself): its program, where it ran it, its context, its cgroup.
  if (o.what != kExec) {
    if (p != nullptr && p->have_exe) {
      o.exe = p->exe;
    } else {
      o.missing |= kMissExe;
    }
  }
  if (opts_.cwd) {
    o.with_cwd = true;
    if (p != nullptr && p->have_cwd) {
      o.cwd = p->cwd;
      o.have_cwd = true;
    }
    if (!o.have_cwd) o.missing |= kMissCwd;
  }
  if (wanted_ != 0) {
    o.with_ctx = wanted_;
    if (p != nullptr) o.ctx = p->ctx;  // (else what ReportExec read)
    o.missing |= wanted_ & ~o.ctx.have;
    ShowContext(reader_, o.ctx, o.login_user);
  }
  if (opts_.cgroups) {
    o.with_cgroup = true;
    if (p != nullptr && p->have_cgroup) {
      o.cgroup = p->cgroup;
      o.container_id = p->container_id;
    } else {
      o.missing |= kMissCgroup;
    }
  }
  if (opts_.ancestor_depth <= 0 || !(opts_.ancestor_events & o.what)) return;
  o.with_ancestors = true;
  AddAncestors(o, ppid);
}

void ProcStore::AddAncestors(OutEvent& o, int32_t ppid) const {
  int32_t next = ppid;
  for (int depth = 0; depth < opts_.ancestor_depth; depth++) {
    if (next <= 0) break;  // above init (or kthreadd): the top
    const ProcEntry* a = Find(next);
    if (a == nullptr) {
      o.missing |= kMissAncestors;
      break;
    }
    Ancestor anc;
    anc.pid = next;
    if (a->run_ns != 0) anc.exec_id = ExecId(next, a->run_ns);
    anc.comm = a->comm;
    anc.exe = a->exe;
    anc.have_exe = a->have_exe;
    o.ancestors.push_back(std::move(anc));
    if (next == 1) break;
    next = a->ppid;
  }
}

}  // namespace pm
