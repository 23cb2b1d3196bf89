#include "line_filter.h"

namespace pm {

bool LineFilter::Compile(const std::vector<FilterRule>& rules, const std::vector<int32_t>& followed, std::string* error) {
  if (!filter_.Compile(rules, error)) return false;
  scoped_ = !followed.empty();
  tree_.clear();
  for (int32_t pid : followed) {
    if (tree_.size() < kMaxFollowed) tree_.insert(pid);
  }
  return true;
}

bool LineFilter::Keep(const char* p, size_t n) {
  if (!ReadEventLine(p, n, line_)) return false;
  const OutEvent& e = line_.e;
  if (e.what == kLost) return true;
  if (e.what == 0) return false;
  if (scoped_) {
    const bool fork = e.what == kFork && !e.thread;
    if (fork && tree_.count(line_.parent_tgid) == 0) {
      tree_.erase(line_.tgid);  // (a new process under the pid of one whose exit was lost)
    } else if (fork && tree_.size() < kMaxFollowed) {
      tree_.insert(line_.tgid);
    }
    if (tree_.count(line_.tgid) == 0) return false;
    if (e.what == kExit && !e.thread) tree_.erase(line_.tgid);
  }
  return filter_.Admit(e);
}

}  // namespace pm
