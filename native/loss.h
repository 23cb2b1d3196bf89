// Counting the events the kernel dropped: by the socket's own drop counter after an overflow
// (ENOBUFS), and by the gaps in each CPU's sequence numbers. Each loss becomes a "lost"
// event where it happened in the stream.
#pragma once

#include <cstdint>
#include <vector>

#include "events.h"
#include "netlink.h"
#include "parser.h"

namespace pm {

class LossTracker {
 public:
  explicit LossTracker(const ConnectorSocket& socket) : socket_(socket) {}

  // A new socket. `filtered`: the kernel filters events, so filtered-out events leave seq
  // gaps too and the gaps say nothing.
  void Reset(bool filtered);
  // The socket overflowed (ENOBUFS): its drop counter is read once it has been drained.
  void Overflow() { overflow_ = true; }
  // The socket has been drained: after an overflow, reports what its drop counter grew by.
  // Returns the number of events reported lost (appended to out as one event).
  uint64_t Drained(std::vector<OutEvent>& out) { return overflow_ ? FlushDrops(out) : 0; }
  // Looks at an event's sequence number (before it is handled): a gap is a loss, beyond
  // the socket's drops already reported. `time_ms`: the event's wall-clock time. Returns the
  // number of events reported lost.
  uint64_t Check(const RawEvent& ev, double time_ms, std::vector<OutEvent>& out);

 private:
  uint64_t FlushDrops(std::vector<OutEvent>& out);

  const ConnectorSocket& socket_;
  bool filtered_ = false;
  std::vector<uint32_t> last_seq_;
  std::vector<uint8_t> seen_cpu_;
  bool overflow_ = false;      // ENOBUFS seen; the socket's drop count not yet read
  uint32_t drops_seen_ = 0;    // the socket's drop counter when last read (SO_MEMINFO)
  uint64_t drops_credit_ = 0;  // socket drops reported whose seq gaps have not shown yet
};

}  // namespace pm
