// Pure parser: raw netlink datagrams from the proc connector in, event structs out.
// No I/O, no allocation beyond the output vector, never reads past `len`.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace pm {

// Event kinds, as the kernel numbers them (linux/cn_proc.h). Bits, so they double as masks.
enum EventKind : uint32_t {
  kNone = 0x00000000,
  kFork = 0x00000001,
  kExec = 0x00000002,
  kUid = 0x00000004,
  kGid = 0x00000040,
  kSid = 0x00000080,
  kPtrace = 0x00000100,
  kComm = 0x00000200,
  kNonzeroExit = 0x20000000,  // Linux 6.6+ filter bit, never an event kind
  kCoredump = 0x40000000,
  kExit = 0x80000000,
};
constexpr uint32_t kAllEvents = kFork | kExec | kUid | kGid | kSid | kPtrace | kComm | kCoredump | kExit;

// Wire constants (linux/connector.h, linux/netlink.h); defined here because the
// build machine's headers may be older than the running kernel.
constexpr uint32_t kCnIdxProc = 1;
constexpr uint32_t kCnValProc = 1;
constexpr uint32_t kMcastListen = 1;
constexpr uint32_t kMcastIgnore = 2;
constexpr size_t kNlHdrLen = 16;      // sizeof(struct nlmsghdr)
constexpr size_t kCnMsgLen = 20;      // sizeof(struct cn_msg)
constexpr size_t kProcEvHdrLen = 16;  // what, cpu, timestamp_ns

// One decoded proc connector message. Field use depends on `what`:
//   fork:     pid/tgid = child, ppid/ptgid = parent
//   exec, sid: pid/tgid
//   uid, gid: pid/tgid, a = real id, b = effective id
//   ptrace:   pid/tgid, ppid/ptgid = tracer (0 on detach)
//   comm:     pid/tgid, comm
//   coredump: pid/tgid, ppid/ptgid = parent (0 when the kernel's message is short)
//   exit:     pid/tgid, a = exit_code (raw wait status), b = exit_signal,
//             ppid/ptgid = parent (has_parent false on kernels that do not send it)
//   none:     an acknowledgement: a = error number
struct RawEvent {
  uint32_t what = 0;
  uint32_t cpu = 0;
  uint64_t ts_ns = 0;  // kernel monotonic time of the event
  uint32_t seq = 0;    // cn_msg.seq: per-CPU event counter (request seq for an ack)
  uint32_t ack = 0;    // cn_msg.ack
  int32_t pid = 0;
  int32_t tgid = 0;
  int32_t ppid = 0;
  int32_t ptgid = 0;
  uint32_t a = 0;
  uint32_t b = 0;
  bool has_parent = false;
  char comm[17] = {0};
};

struct ParseStats {
  uint32_t messages = 0;   // netlink messages looked at
  uint32_t malformed = 0;  // messages that were too short or inconsistent (skipped)
  uint32_t foreign = 0;    // connector messages of another connector index (skipped)
  uint32_t unknown = 0;    // proc events of a kind this parser does not know (skipped)
  uint32_t errors = 0;     // NLMSG_ERROR messages
  bool overrun = false;    // NLMSG_OVERRUN seen
};

// Parses one datagram (one recv()) into `out`. Returns the number of events appended.
size_t ParseDatagram(const uint8_t* data, size_t len, std::vector<RawEvent>& out, ParseStats& stats);

// Builds the subscription request (nlmsghdr + cn_msg + op [+ event mask]) into `buf`.
// With `with_mask` the 8-byte struct proc_input of Linux 6.6+ is sent, else the 4-byte op.
// Returns the number of bytes written (0 if `cap` is too small).
size_t BuildMcastRequest(uint8_t* buf, size_t cap, uint32_t op, bool with_mask, uint32_t mask, uint32_t seq, uint32_t ack, uint32_t portid);

}  // namespace pm
