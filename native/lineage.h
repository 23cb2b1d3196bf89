// Which processes the table follows (Options::subtree): with no subtree, every one; with one,
// its roots and what they fork, by fork lineage: a process is followed while the table holds
// it, and a child is followed when the process that forked it is. Decided from the events and
// the table alone, before anything is read from /proc.
#pragma once

#include <cstdint>
#include <vector>

#include "events.h"
#include "parser.h"
#include "process_store.h"

namespace pm {

class Lineage {
 public:
  explicit Lineage(ProcStore& store) : store_(store) {}
  void Reset(const std::vector<int32_t>& subtree) { scoped_ = !subtree.empty(); }
  bool scoped() const { return scoped_; }

  // Whether the event is about a process followed (a fork: whether its parent is). A stranger's
  // child makes the table forget an entry under its pid: a process gone, its exit lost.
  bool Admit(const RawEvent& ev);
  // For each exec of a batch, in order, whether its process is followed as of the batch's
  // forks before it: whether its /proc is worth reading ahead (`in` gets one entry per exec).
  // Reads the table without its lock: only the reader thread, which calls it, changes it.
  void FollowedExecs(const std::vector<RawEvent>& raw, std::vector<char>& in) const;

 private:
  ProcStore& store_;
  bool scoped_ = false;
};

}  // namespace pm
