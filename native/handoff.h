// What the reader thread hands over to the JS thread: the queued events (bounded: what does
// not fit is dropped, counted and reported as one "lost" event), whether JS has been woken
// for them, and why the reader stopped on its own. Thread-safe: one lock of its own.
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "events.h"
#include "filter.h"

namespace pm {

class Handoff {
 public:
  // Empties the queue, forgets the counts and the reason; at most queue_max events queued,
  // those the filter admits. False, with why, if the filter's rules are not valid.
  bool Reset(size_t queue_max, const std::vector<FilterRule>& filter, std::string* why);
  // Queues the batch's events the filter admits (and empties it); true if JS must be woken
  // for them: it has not been since it last drained the queue.
  bool Push(std::vector<OutEvent>& batch);
  // Takes every queued event (JS thread); a loss report goes last if events were dropped.
  void Drain(std::vector<OutEvent>& out);
  // Events queued, dropped (the queue full) and filtered out since Reset.
  void Counts(uint64_t* delivered, uint64_t* dropped, uint64_t* filtered);
  // Why the reader stopped on its own; TakeFatal returns it once ("" if there is none).
  void SetFatal(const std::string& why);
  std::string TakeFatal();

 private:
  std::mutex mu_;
  size_t queue_max_ = 0;
  std::vector<OutEvent> queue_;
  uint64_t queue_dropped_ = 0;  // dropped since the last Drain
  uint64_t delivered_ = 0;
  uint64_t lost_ = 0;  // dropped since Reset
  uint64_t filtered_ = 0;
  EventFilter filter_;  // (the reader thread's alone: Push is called there, or once it is joined)
  bool notified_ = false;
  std::string fatal_;
};

}  // namespace pm
