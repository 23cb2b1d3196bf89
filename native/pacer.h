// How often the reader thread wakes JS: at most once per interval. Events read meanwhile (at
// once, for /proc's sake) wait in the queue and go over together, which saves a wake-up and a
// write per client for each of them. And, where asked (Options.read_interval_us), how long the
// reader leaves the socket alone after a read in a burst (one that came within the rest of the
// previous read): events arriving meanwhile wait in the socket and are read together, so that a
// burst wakes the reader at most once per rest, while a lone event costs one wake-up, not a
// second one at the rest's end. Pure: the caller passes the time (CLOCK_MONOTONIC, ns).
#pragma once

#include <time.h>

#include <algorithm>
#include <cstdint>

namespace pm {

class Pacer {
 public:
  explicit Pacer(int64_t interval_ns, int64_t rest_ns = 0) : interval_(interval_ns), rest_(rest_ns) {}

  // After a read of the socket: in a burst (a read within one rest of the previous read, or of
  // the end of the rest after it), the socket is left alone for the rest (none without one).
  void Read(int64_t now) {
    int64_t since = now - (rest_until_ > last_read_ ? rest_until_ : last_read_);
    rest_until_ = rest_ > 0 && since < rest_ ? now + rest_ : 0;
    last_read_ = now;
  }
  // Whether the socket is left alone now.
  bool Resting(int64_t now) const { return now < rest_until_; }

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
  // wake-up is due and it is not resting, else until the interval since the last wake-up or
  // the rest is over, whichever comes first (ts filled in).
  const timespec* Timeout(int64_t now, timespec* ts) const {
    int64_t left = -1;
    if (due_) left = std::max<int64_t>(0, last_wake_ + interval_ - now);
    if (Resting(now) && (left < 0 || rest_until_ - now < left)) left = rest_until_ - now;
    if (left < 0) return nullptr;
    ts->tv_sec = static_cast<time_t>(left / 1000000000);
    ts->tv_nsec = static_cast<long>(left % 1000000000);
    return ts;
  }

 private:
  int64_t interval_;
  int64_t rest_;
  int64_t rest_until_ = 0;
  int64_t last_read_ = INT64_MIN / 2;  // none yet: the first read is no burst
  int64_t last_wake_ = 0;
  bool due_ = false;
};

}  // namespace pm
