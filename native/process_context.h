// The process table's keeping of each process's context: see process_context.cc.
#pragma once

#include <cstdint>
#include <string>

#include "events.h"
#include "process_store.h"
#include "procfs.h"

namespace pm {

// Takes the context's fields `read` has into ctx; at a fork the others keep what the process
// had; at an exec (`exec`) they are no longer known, but nspid (the process's for its life).
void MergeContext(Context& ctx, const Context& read, bool exec);
// A forked child's context: its parent's (ctx), but a pid of its own in its namespace, and
// the namespaces read again where they are asked for (clone may have made new ones).
void ForkContext(ProcReader& reader, const Options& opts, int32_t tgid, Context& ctx);
// The names of a context's login uid and terminal, for showing it.
void ShowContext(ProcReader& reader, Context& c, std::string& login_user);

}  // namespace pm
