#include "handoff.h"

#include <time.h>

#include <utility>

namespace pm {

bool Handoff::Reset(size_t queue_max, const std::vector<FilterRule>& filter, std::string* why) {
  std::lock_guard<std::mutex> lk(mu_);
  queue_max_ = queue_max;
  filtered_ = 0;
  queue_.clear();
  queue_dropped_ = 0;
  delivered_ = 0;
  lost_ = 0;
  notified_ = false;
  fatal_.clear();
  return filter_.Compile(filter, why);
}

bool Handoff::Push(std::vector<OutEvent>& batch) {
  if (batch.empty()) return false;
  bool wake = false;
  {
    std::lock_guard<std::mutex> lk(mu_);
    size_t admitted = 0;
    for (OutEvent& o : batch) {
      if (!filter_.Admit(o)) {
        filtered_++;
        continue;
      }
      admitted++;
      if (queue_.size() >= queue_max_) {
        queue_dropped_++;
        lost_++;
        continue;
      }
      queue_.push_back(std::move(o));
      delivered_++;
    }
    if (!notified_ && admitted > 0) {  // (nothing for JS: no wake-up)
      notified_ = true;
      wake = true;
    }
  }
  batch.clear();
  return wake;
}

void Handoff::Drain(std::vector<OutEvent>& out) {
  std::lock_guard<std::mutex> lk(mu_);
  notified_ = false;
  out.swap(queue_);
  queue_.clear();
  if (queue_dropped_ > 0) {
    // Everything queued came before the drop: the loss report goes last.
    timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    OutEvent l;
    l.what = kLost;
    l.time_ms = static_cast<double>((static_cast<int64_t>(ts.tv_sec) * 1000000000LL + ts.tv_nsec) / 1000000);
    l.lost_count = queue_dropped_;
    l.lost_source = kLostQueue;
    out.push_back(std::move(l));
    queue_dropped_ = 0;
  }
}

void Handoff::Counts(uint64_t* delivered, uint64_t* dropped, uint64_t* filtered) {
  std::lock_guard<std::mutex> lk(mu_);
  *delivered = delivered_;
  *dropped = lost_;
  *filtered = filtered_;
}

void Handoff::SetFatal(const std::string& why) {
  std::lock_guard<std::mutex> lk(mu_);
  fatal_ = why;
}

std::string Handoff::TakeFatal() {
  std::lock_guard<std::mutex> lk(mu_);
  std::string why;
  why.swap(fatal_);
  return why;
}

}  // namespace pm
