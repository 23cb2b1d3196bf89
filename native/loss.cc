#include "loss.h"

#include <time.h>

namespace pm {
namespace {

constexpr uint32_t kMaxCpus = 8192;  // sanity bound for the per-CPU sequence table

void EmitLost(uint64_t count, double time_ms, std::vector<OutEvent>& out) {
  OutEvent o;
  o.what = kLost;
  o.time_ms = time_ms;
  o.lost_count = count;
  o.lost_source = kLostKernel;
  out.push_back(std::move(o));
}

}  // namespace

void LossTracker::Reset(bool filtered) {
  filtered_ = filtered;
  last_seq_.clear();
  seen_cpu_.clear();
  overflow_ = false;
  drops_seen_ = 0;
  drops_credit_ = 0;
}

// A socket drop (the receive buffer was full) is counted by the kernel exactly, whatever
// the filter: read that count. A per-CPU seq gap is also a loss where no event is filtered
// out; the drops already reported account for the first such gaps, only the rest is new.
//
// The drop counter is read once the socket has been drained after an ENOBUFS: until then
// the kernel may still be dropping (the socket stays congested until its queue is empty),
// and everything read before came before the drops, so the report stands where the loss
// happened.
uint64_t LossTracker::FlushDrops(std::vector<OutEvent>& out) {
  overflow_ = false;
  uint32_t drops = 0;
  if (!socket_.Drops(&drops)) return 0;
  uint32_t delta = drops - drops_seen_;
  drops_seen_ = drops;
  if (delta == 0) return 0;
  drops_credit_ += delta;
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  EmitLost(delta, static_cast<double>((static_cast<int64_t>(ts.tv_sec) * 1000000000LL + ts.tv_nsec) / 1000000), out);
  return delta;
}

uint64_t LossTracker::Check(const RawEvent& ev, double time_ms, std::vector<OutEvent>& out) {
  if (ev.cpu >= kMaxCpus) return 0;
  if (ev.cpu >= last_seq_.size()) {
    last_seq_.resize(ev.cpu + 1, 0);
    seen_cpu_.resize(ev.cpu + 1, 0);
  }
  uint32_t c = ev.cpu;
  uint64_t lost = 0;
  if (seen_cpu_[c] && !filtered_) {
    uint32_t gap = ev.seq - last_seq_[c] - 1;
    if (gap != 0 && gap < 0x80000000u) {
      // An event after the drops arrived before the socket looked drained: count them now.
      if (overflow_) lost += FlushDrops(out);
      uint64_t known = drops_credit_ < gap ? drops_credit_ : gap;
      drops_credit_ -= known;
      if (gap > known) {
        EmitLost(gap - known, time_ms, out);
        lost += gap - known;
      }
    }
  }
  seen_cpu_[c] = 1;
  last_seq_[c] = ev.seq;
  return lost;
}

}  // namespace pm
