#include "exit_cost.h"

#include <poll.h>
#include <time.h>

namespace pm {
namespace {

int64_t MonoNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000LL + ts.tv_nsec;
}

}  // namespace

uint8_t ExitCost::Start(uint8_t mode) {
  Stop();
  mode_ = mode;
  source_ = kCostNone;
  reason_.clear();
  from_taskstats = from_proc = unknown = dropped = malformed = waited = 0;
  if (mode == kCostOff) return source_;
  source_ = kCostProc;
  if (mode == kCostProcOnly) {
    reason_ = "asked for";
  } else if (socket_.Open(&reason_)) {
    source_ = kCostTaskstats;
    lost_ns_ = MonoNs();  // the records of threads that ended before are not ours
  }
  return source_;
}

void ExitCost::Stop() {
  socket_.Close();
  pending_.clear();
  order_.clear();
  lost_ns_ = -1;
}

void ExitCost::Drain(int64_t now_ns) {
  if (socket_.fd() < 0) return;
  records_.clear();
  bool overflow = false;
  uint64_t bad = 0;
  socket_.Receive(records_, &overflow, &bad);
  if (overflow) {
    // Some tasks' records are lost: any process running now may lack some.
    dropped++;
    lost_ns_ = now_ns;
  }
  if (bad) malformed += bad;
  for (const TaskstatsRecord& r : records_) Add(r, now_ns);
  Expire(now_ns);
}

void ExitCost::Add(const TaskstatsRecord& r, int64_t now_ns) {
  if (r.group || r.tgid <= 0) return;  // a group's record has none of the fields; no tgid: whose?
  auto it = pending_.find(r.tgid);
  if (it == pending_.end()) {
    while (pending_.size() >= kMaxPending && !order_.empty()) {
      auto old = order_.front();
      order_.pop_front();
      auto o = pending_.find(old.first);
      if (o != pending_.end() && o->second.first_ns == old.second) {  // else a stale entry of a tgid taken
        pending_.erase(o);
        lost_ns_ = now_ns;
      }
    }
    it = pending_.emplace(r.tgid, Pending()).first;
    it->second.first_ns = now_ns;
    it->second.sum = r.cost;
    it->second.foreign = r.foreign;
    order_.emplace_back(r.tgid, now_ns);
    return;
  }
  it->second.foreign = it->second.foreign || r.foreign;
  // Threads add up; the peak of the memory they share is the largest any saw.
  Cost& s = it->second.sum;
  for (int f = 0; f < kCostFields; f++) {
    CostField field = static_cast<CostField>(f);
    if (!r.cost.Has(field)) {
      s.have &= static_cast<uint8_t>(~(1u << f));  // one thread's share unknown: the sum is too
    } else if (field == kCostMaxRss) {
      if (r.cost.v[f] > s.v[f]) s.v[f] = r.cost.v[f];
    } else {
      s.v[f] += r.cost.v[f];
    }
  }
}

void ExitCost::Expire(int64_t now_ns) {
  while (!order_.empty()) {
    auto it = pending_.find(order_.front().first);
    if (it != pending_.end() && it->second.first_ns != order_.front().second) {
      order_.pop_front();  // a stale entry of a tgid taken and added again
      continue;
    }
    if (it == pending_.end()) {
      order_.pop_front();
      continue;
    }
    if (now_ns - it->second.first_ns < kMaxAgeNs) break;
    lost_ns_ = now_ns;
    pending_.erase(it);
    order_.pop_front();
  }
  if (order_.size() > 4 * kMaxPending) {  // taken entries leave stale ones behind: compact
    std::deque<std::pair<int32_t, int64_t>> keep;
    for (const auto& o : order_) {
      auto it = pending_.find(o.first);
      if (it != pending_.end() && it->second.first_ns == o.second) keep.push_back(o);
    }
    order_.swap(keep);
  }
}

void ExitCost::Forget(std::vector<int32_t>& tgids) {
  // Their records were queued before their exit events: the chunk's Drain has read them.
  for (int32_t tgid : tgids) pending_.erase(tgid);
  tgids.clear();
}

bool ExitCost::Take(int32_t tgid, Cost& out, bool single_threaded, int64_t start_ns) {
  auto it = pending_.find(tgid);
  if (it == pending_.end()) return false;
  out = it->second.sum;
  // Whole only if no record was lost while it ran, none is older than the process (a
  // previous process's of the same pid), and its threads' records could all be told apart.
  bool partial = start_ns <= lost_ns_ || it->second.first_ns < start_ns || (it->second.foreign && !single_threaded);
  pending_.erase(it);
  if (partial) out.have = 0;  // some of its threads' records were lost or expired
  return !partial;
}

void ExitCost::Fill(OutEvent& e, bool record_ok) {
  Cost c;
  // The process's start by the kernel's monotonic clock, as the records' times (0: unknown).
  int64_t start_ns = 0;
  if (e.duration_ms >= 0 && !(e.missing & kMissDuration)) {
    start_ns = static_cast<int64_t>(e.raw.ts_ns) - static_cast<int64_t>(e.duration_ms * 1e6) - 1000000;
  }
  if (record_ok && Take(e.pid, c, e.single_threaded, start_ns)) {
    c.source = kCostTaskstats;
    from_taskstats++;
  } else {
    c = Cost();
    c.source = kCostProc;
    if (reader_.CostOf(e.pid, c)) {
      // /proc/PID/status counts the main thread's switches only, not the dead threads'.
      if (!e.single_threaded) c.have &= static_cast<uint8_t>(~((1u << kCostVoluntary) | (1u << kCostInvoluntary)));
      from_proc++;
    } else {
      c.have = 0;
      unknown++;
    }
    c.source = kCostProc;
  }
  e.cost = c;
  for (int f = 0; f < kCostFields; f++) {
    if (!c.Has(static_cast<CostField>(f))) e.missing |= kMissCostFirst << f;
  }
}

void ExitCost::Attach(std::vector<OutEvent>& out, size_t from) {
  if (source_ == kCostNone) return;
  bool slept = false;
  for (size_t i = from; i < out.size(); i++) {
    OutEvent& e = out[i];
    if (e.what != kExit || e.thread || e.cost.source != kCostNone) continue;
    if (source_ == kCostTaskstats) {
      // Its tasks' records, the last one too, were queued before this event and read by the
      // Drain that followed the read of its chunk.
      if (pending_.find(e.pid) == pending_.end()) {
        // Read before its record was queued (the kernel queues that first): wait, once per batch.
        waited++;
        pollfd p{socket_.fd(), POLLIN, 0};
        if (!slept && poll(&p, 1, kWaitMs) > 0) Drain(MonoNs());
        slept = true;
      }
    }
    Fill(e, source_ == kCostTaskstats);
  }
}

}  // namespace pm
