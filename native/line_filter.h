// A stream's own filter, run on its lines: a client's request (match, exclude, subtree), or
// connector.events({filter}). The same EventFilter the reader runs (filter.h), on what each
// line says (line_reader.h: the lines say everything a filter asks), and a subtree followed
// through the fork lines it sees from its start. Pure.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <unordered_set>
#include <vector>

#include "filter.h"
#include "line_reader.h"

namespace pm {

class LineFilter {
 public:
  // Processes followed at most (those of a subtree still running); beyond, new ones are not.
  static constexpr size_t kMaxFollowed = 65536;

  // The rules, and (non-empty: a subtree) the processes followed from the start: the roots
  // and those of their descendants that run. False with why in `error` if a rule is not valid.
  bool Compile(const std::vector<FilterRule>& rules, const std::vector<int32_t>& followed, std::string* error);
  // Whether a line goes out. A loss report always does; a line that is not an event never.
  // Followed: a child of a followed process is (by its fork line, else its exec or exit line's
  // ppid), and its exit ends it.
  bool Keep(const char* p, size_t n);
  size_t followed() const { return tree_.size(); }

 private:
  bool Follow(const OutEvent& e);

  EventFilter filter_;
  bool scoped_ = false;
  std::unordered_set<int32_t> tree_;    // followed now
  std::unordered_set<int32_t> pinned_;  // followed from the start, until their exit
  LineEvent line_;                      // (reused: its strings keep their capacity)
};

}  // namespace pm
