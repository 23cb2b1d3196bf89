// The process table's keeping of each process's context (Context, events.h): what a fork
// inherits, what an exec's read replaces, how a context is shown on an event, and the fields a
// filter may ask of an event that its line does not show.
#include "process_context.h"

namespace pm {

void MergeContext(Context& ctx, const Context& read, bool exec) {
  if (read.Has(kMissAuid)) ctx.auid = read.auid;
  if (read.Has(kMissSessionid)) ctx.sessionid = read.sessionid;
  if (read.Has(kMissTty)) ctx.tty = read.tty;
  if (read.Has(kMissPidns)) ctx.pidns = read.pidns;
  if (read.Has(kMissMntns)) ctx.mntns = read.mntns;
  if (read.Has(kMissNetns)) ctx.netns = read.netns;
  if (read.Has(kMissNspid)) ctx.nspid = read.nspid;
  if (exec) {
    // Between a fork and its exec is where a process changes them (setsid, setns, unshare,
    // pam_loginuid): what was not read at the exec is not known. (Its pid stays its own.)
    ctx.env = read.env;
    ctx.have &= kMissNspid;
  }
  ctx.have |= read.have;
}

// A new process has its parent's context, but a pid of its own in its namespace, and maybe
// new namespaces (clone with CLONE_NEWPID, CLONE_NEWNS, ...): read where they are asked for.
void ForkContext(ProcReader& reader, const Options& opts, int32_t tgid, Context& ctx) {
  ctx.have &= ~kMissNspid;
  if (!(opts.context & kCtxNs)) return;
  ProcInfo info;
  reader.Context(tgid, kCtxNs, info);
  reader.Status(tgid, info);
  ctx.have &= ~(kMissPidns | kMissMntns | kMissNetns);
  MergeContext(ctx, info.ctx, false);
}

// Never written out: the wire writes a field only where the event's kind and the options say so
// (user and uid on fork, exec and exit; exe on exec; cwd, cgroup and the context as asked).
void FilterFields(ProcReader& reader, OutEvent& o, const ProcEntry* p) {
  if (p == nullptr) return;
  if (o.what != kFork && o.what != kExec && o.what != kExit) {
    if (p->have_uid) {
      o.uid = p->uid;
      o.user = reader.UserName(p->uid);
    }
    if (p->have_comm) o.comm = p->comm;
    if (p->have_cmd) o.cmdline = p->cmdline;
  }
  if (o.what != kExec && p->have_exe) o.exe = p->exe;
  if (!o.with_cwd && p->have_cwd) {
    o.cwd = p->cwd;
    o.have_cwd = true;
  }
  if (!o.with_cgroup && p->have_cgroup) {
    o.cgroup = p->cgroup;
    o.container_id = p->container_id;
  }
  if (o.with_ctx == 0) {
    o.ctx = p->ctx;
    ShowContext(reader, o.ctx, o.login_user);
  }
}

void ShowContext(ProcReader& reader, Context& c, std::string& login_user) {
  if (c.Has(kMissAuid) && c.auid != kNoId) login_user = reader.UserName(c.auid);
  if (c.Has(kMissTty) && c.tty != 0) c.tty_name = reader.TtyName(c.tty);
}

}  // namespace pm
