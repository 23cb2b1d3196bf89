// How often the reader thread wakes JS: at most once per interval. Events read meanwhile (at
// once, for /proc's sake) wait in the queue and go over together, which saves a wake-up and a
// write per client for each of them. Pure: the caller passes the time (CLOCK_MONOTONIC, ns).
#pragma once

#include <time.h>

#include <cstdint>

namespace pm {

class Pacer {
 public:
  explicit Pacer(int64_t interval_ns) : interval_(interval_ns) {}

  // After a read: `more` says JS has new events to be woken for. True if JS must be woken
  // now (then it counts as woken at `now`); else a wake-up stays due, if one was.
  bool Wake(bool more, int64_t now) {
    due_ = due_ || more;
    if (!due_ || now - last_wake_ < interval_) return false;
    last_wake_ = now;
    due_ = false;
    return true;
  }

  // How long the reader may sleep in ppoll(): nullptr (until something happens) when no
  // wake-up is due, else until the interval since the last one is over (ts filled in).
  const timespec* Timeout(int64_t now, timespec* ts) const {
    if (!due_) return nullptr;
    int64_t left = last_wake_ + interval_ - now;
    if (left < 0) left = 0;
    ts->tv_sec = static_cast<time_t>(left / 1000000000);
    ts->tv_nsec = static_cast<long>(left % 1000000000);
    return ts;
  }

 private:
  int64_t interval_;
  int64_t last_wake_ = 0;
  bool due_ = false;
};

}  // namespace pm
