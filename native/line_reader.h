// An event line read back: a client's filter (line_filter.h) runs on the lines the server
// holds, which say everything a filter asks of an event (wire.h writes them so). Reads one
// JSON object and keeps the fields a filter and a subtree look at. Pure: bytes in, struct out;
// bounded (nesting, size), never more than one pass over the bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "events.h"

namespace pm {

// What a line says of its event, for EventFilter::Admit and a subtree.
struct LineEvent {
  OutEvent e;               // what, thread, user, uid, comm, exe, cmdline, cwd, cgroup, container, auid, exit status, missing
  int32_t tgid = 0;         // the process the event is about (fork: the child's)
  int32_t parent_tgid = 0;  // its parent (fork: parent_pid; exec and exit: ppid; else 0)
};

// Beyond the longest line the wire writes (1 MiB of argv escaped six-fold, cmdline, env).
constexpr size_t kMaxLineBytes = 64u << 20;
constexpr int kMaxLineDepth = 64;

// Reads a line (without or with its trailing "\n"). False if it is not one JSON object
// (within kMaxLineBytes and kMaxLineDepth); unknown keys are skipped.
bool ReadEventLine(const char* p, size_t n, LineEvent& out);

}  // namespace pm
