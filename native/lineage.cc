#include "lineage.h"

#include <utility>

namespace pm {

bool Lineage::Admit(const RawEvent& ev) {
  if (!scoped_) return true;
  const bool new_process = ev.what == kFork && ev.pid == ev.tgid;
  if (store_.Find(new_process ? ev.ptgid : ev.tgid) != nullptr) return true;
  if (new_process) store_.entries().erase(ev.tgid);
  return false;
}

void Lineage::FollowedExecs(const std::vector<RawEvent>& raw, std::vector<char>& in) const {
  in.clear();
  if (!scoped_) {
    for (const RawEvent& ev : raw) {
      if (ev.what == kExec) in.push_back(1);
    }
    return;
  }
  // Forked earlier in the batch: followed or not (a pid reused by a stranger is not), latest last.
  std::vector<std::pair<int32_t, bool>> forked;
  auto known = [&](int32_t pid) {
    for (auto it = forked.rbegin(); it != forked.rend(); ++it) {
      if (it->first == pid) return it->second;
    }
    return store_.Find(pid) != nullptr;
  };
  for (const RawEvent& ev : raw) {
    if (ev.what == kExec) in.push_back(known(ev.tgid));
    if (ev.what == kFork && ev.pid == ev.tgid) forked.emplace_back(ev.tgid, known(ev.ptgid));
  }
}

}  // namespace pm
