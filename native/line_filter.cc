#include "line_filter.h"

namespace pm {

bool LineFilter::Compile(const std::vector<FilterRule>& rules, const std::vector<int32_t>& followed, std::string* error) {
  if (!filter_.Compile(rules, error)) return false;
  scoped_ = !followed.empty();
  tree_.clear();
  pinned_.clear();
  for (int32_t pid : followed) {
    if (tree_.size() >= kMaxFollowed) break;
    tree_.insert(pid);
    pinned_.insert(pid);
  }
  return true;
}

bool LineFilter::Keep(const char* p, size_t n) {
  if (!ReadEventLine(p, n, line_)) return false;
  const OutEvent& e = line_.e;
  if (e.what == kLost) return true;
  if (e.what == 0) return false;
  if (scoped_ && !Follow(e)) return false;
  return filter_.Admit(e);
}

// Whether the line's process is followed, the tree told what the line tells: a process whose
// parent is followed is (its fork; or its exec or exit, where the stream has no forks); a new
// process under a followed pid whose parent is not is another process (the exit of the one
// followed was lost), unless it is one of those followed from the start (their forks may come
// after the filter was made); an exit ends it.
bool LineFilter::Follow(const OutEvent& e) {
  const int32_t pid = line_.tgid;
  const bool followed = tree_.count(pid) != 0;
  if (!e.thread && line_.parent_tgid > 0 && tree_.count(line_.parent_tgid) != 0) {
    if (!followed && tree_.size() < kMaxFollowed) tree_.insert(pid);
  } else if (e.what == kFork && !e.thread && followed && pinned_.count(pid) == 0) {
    tree_.erase(pid);
  }
  const bool in = tree_.count(pid) != 0;
  if (e.what == kExit && !e.thread) {
    tree_.erase(pid);
    pinned_.erase(pid);
  }
  return in;
}

}  // namespace pm
