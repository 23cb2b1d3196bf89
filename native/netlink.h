// The proc connector's netlink socket: opening and binding it, the subscription (and the
// kernel's event filter of Linux 6.6+), reading datagrams in batches, the socket's drop
// counter. No thread and no event handling of its own: Monitor drives it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "parser.h"

namespace pm {

struct StartError {
  std::string code;     // ENOACK, EPERM, EPROTONOSUPPORT, ...
  std::string message;  // one clear sentence, names the remedy
};

class ConnectorSocket {
 public:
  static constexpr unsigned kBatch = 64;  // datagrams per Receive (recvmmsg)

  ConnectorSocket() = default;
  ~ConnectorSocket() { Close(); }
  ConnectorSocket(const ConnectorSocket&) = delete;
  ConnectorSocket& operator=(const ConnectorSocket&) = delete;

  // Opens the socket (non-blocking), asks for a receive buffer of `rcvbuf` bytes (0: leave it)
  // and binds it to the proc connector's group. `granted`: the buffer the kernel gave;
  // `forced`: SO_RCVBUFFORCE worked.
  bool Open(int rcvbuf, int* granted, bool* forced, StartError* err);
  // Subscribes to the events in `want`, with the kernel's own filter where it has one and
  // `kernel_filter` allows it (*filtered says whether it does). Events read while waiting for
  // the acknowledgement are appended to `early`; *overflow is set if the socket overflowed.
  bool Subscribe(uint32_t want, bool kernel_filter, int ack_timeout_ms, std::vector<RawEvent>& early, bool* overflow, bool* filtered,
                 StartError* err);
  // Asks the kernel to stop sending events (IGNORE).
  void Unsubscribe();
  // Reads up to kBatch datagrams without waiting and parses the kernel's into `raw`
  // (appended). Returns the number of datagrams read, or -1 with errno set (EAGAIN: none).
  int Receive(std::vector<RawEvent>& raw, ParseStats& ps);
  // The socket's count of datagrams it dropped (SO_MEMINFO); false if the kernel does not say.
  bool Drops(uint32_t* count) const;
  void Close();
  int fd() const { return fd_; }

 private:
  // Sends LISTEN (once, or again on overflow) and waits for the kernel's acknowledgement.
  bool Listen(bool with_mask, uint32_t mask, int timeout_ms, std::vector<RawEvent>& early, bool* overflow, StartError* err,
              bool* timed_out);
  // Whether one datagram acknowledges a request from first_ack to ack; fails the subscription
  // (false, *err set) if the kernel refused it.
  bool Acknowledged(std::vector<RawEvent>& early, uint32_t first_ack, uint32_t ack, bool* matched, StartError* err);
  bool SendOp(uint32_t op, bool with_mask, uint32_t mask);

  int fd_ = -1;
  uint32_t portid_ = 0;
  uint32_t seq_base_ = 0;
  uint32_t ack_base_ = 0;
  std::vector<RawEvent> scratch_;  // what one datagram held, while subscribing
  std::vector<uint8_t> rbuf_;      // recvmmsg buffers
};

}  // namespace pm
