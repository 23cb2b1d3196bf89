// The process table's keeping of each process's context (Context, events.h): what a fork
// inherits, what an exec's read replaces, how a context is shown on an event.
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

void ShowContext(ProcReader& reader, Context& c, std::string& login_user) {
  if (c.Has(kMissAuid) && c.auid != kNoId) login_user = reader.UserName(c.auid);
  if (c.Has(kMissTty) && c.tty != 0) c.tty_name = reader.TtyName(c.tty);
}

}  // namespace pm
