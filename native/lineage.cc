#include "lineage.h"

#include <algorithm>

namespace pm {

bool Lineage::Follows(const RawEvent& ev) const {
  if (!scoped_) return true;
  const bool new_process = ev.what == kFork && ev.pid == ev.tgid;
  return store_.Find(new_process ? ev.ptgid : ev.tgid) != nullptr;
}

void Lineage::FollowedExecs(const std::vector<RawEvent>& raw, std::vector<char>& in) const {
  in.clear();
  std::vector<int32_t> born;  // forked earlier in the batch by a process followed
  auto known = [&](int32_t pid) { return store_.Find(pid) != nullptr || std::find(born.begin(), born.end(), pid) != born.end(); };
  for (const RawEvent& ev : raw) {
    if (ev.what == kExec) in.push_back(!scoped_ || known(ev.tgid));
    if (ev.what == kFork && ev.pid == ev.tgid && scoped_ && known(ev.ptgid)) born.push_back(ev.tgid);
  }
}

}  // namespace pm
