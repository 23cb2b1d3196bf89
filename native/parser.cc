#include "parser.h"

#include <cstring>

namespace pm {
namespace {

constexpr uint16_t kNlmsgNoop = 1;
constexpr uint16_t kNlmsgError = 2;
constexpr uint16_t kNlmsgDone = 3;
constexpr uint16_t kNlmsgOverrun = 4;

inline uint32_t U32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline uint16_t U16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline int32_t I32(const uint8_t* p) { return static_cast<int32_t>(U32(p)); }
inline size_t Align4(size_t n) { return (n + 3) & ~static_cast<size_t>(3); }

// Minimum union size the kernel must have sent for each kind.
size_t MinBody(uint32_t what) {
  switch (what) {
    case kNone:
      return 4;
    case kFork:
      return 16;
    case kExec:
      return 8;
    case kUid:
    case kGid:
      return 16;
    case kSid:
      return 8;
    case kPtrace:
      return 16;
    case kComm:
      return 24;
    case kCoredump:
      return 8;
    case kExit:
      return 16;
    default:
      return 0;
  }
}

// Decodes one proc_event of `len` bytes. Returns false if it is unusable.
bool DecodeProcEvent(const uint8_t* p, size_t len, uint32_t seq, uint32_t ack, RawEvent& ev, ParseStats& stats) {
  if (len < kProcEvHdrLen) {
    stats.malformed++;
    return false;
  }
  ev.what = U32(p);
  ev.cpu = U32(p + 4);
  std::memcpy(&ev.ts_ns, p + 8, sizeof ev.ts_ns);  // unaligned in the datagram
  ev.seq = seq;
  ev.ack = ack;
  size_t need = MinBody(ev.what);
  if (need == 0) {
    stats.unknown++;
    return false;
  }
  const uint8_t* b = p + kProcEvHdrLen;
  size_t blen = len - kProcEvHdrLen;
  if (blen < need) {
    stats.malformed++;
    return false;
  }
  switch (ev.what) {
    case kNone:
      ev.a = U32(b);
      break;
    case kFork:
      ev.ppid = I32(b);
      ev.ptgid = I32(b + 4);
      ev.pid = I32(b + 8);
      ev.tgid = I32(b + 12);
      ev.has_parent = true;
      break;
    case kExec:
    case kSid:
      ev.pid = I32(b);
      ev.tgid = I32(b + 4);
      break;
    case kUid:
    case kGid:
      ev.pid = I32(b);
      ev.tgid = I32(b + 4);
      ev.a = U32(b + 8);
      ev.b = U32(b + 12);
      break;
    case kPtrace:
      ev.pid = I32(b);
      ev.tgid = I32(b + 4);
      ev.ppid = I32(b + 8);
      ev.ptgid = I32(b + 12);
      ev.has_parent = true;
      break;
    case kComm: {
      ev.pid = I32(b);
      ev.tgid = I32(b + 4);
      std::memcpy(ev.comm, b + 8, 16);
      ev.comm[16] = 0;
      break;
    }
    case kCoredump:
      ev.pid = I32(b);
      ev.tgid = I32(b + 4);
      if (blen >= 16) {
        ev.ppid = I32(b + 8);
        ev.ptgid = I32(b + 12);
        ev.has_parent = true;
      }
      break;
    case kExit:
      ev.pid = I32(b);
      ev.tgid = I32(b + 4);
      ev.a = U32(b + 8);
      ev.b = U32(b + 12);
      if (blen >= 24) {
        ev.ppid = I32(b + 16);
        ev.ptgid = I32(b + 20);
        ev.has_parent = true;
      }
      break;
  }
  return true;
}

}  // namespace

size_t ParseDatagram(const uint8_t* data, size_t len, std::vector<RawEvent>& out, ParseStats& stats) {
  size_t added = 0;
  size_t off = 0;
  while (data != nullptr && len - off >= kNlHdrLen) {
    const uint8_t* h = data + off;
    uint32_t nl_len = U32(h);
    uint16_t nl_type = U16(h + 4);
    stats.messages++;
    if (nl_len < kNlHdrLen || nl_len > len - off) {
      stats.malformed++;
      break;  // the rest of the buffer cannot be framed
    }
    const uint8_t* payload = h + kNlHdrLen;
    size_t plen = nl_len - kNlHdrLen;
    if (nl_type == kNlmsgError) {
      stats.errors++;
    } else if (nl_type == kNlmsgOverrun) {
      stats.overrun = true;
    } else if (nl_type == kNlmsgNoop) {
      // nothing
    } else if (nl_type != kNlmsgDone && nl_type < 16) {
      stats.malformed++;  // other reserved control types
    } else if (plen < kCnMsgLen) {
      stats.malformed++;
    } else {
      uint32_t idx = U32(payload);
      uint32_t val = U32(payload + 4);
      uint32_t seq = U32(payload + 8);
      uint32_t ack = U32(payload + 12);
      uint16_t cn_len = U16(payload + 16);
      if (idx != kCnIdxProc || val != kCnValProc) {
        stats.foreign++;
      } else if (cn_len > plen - kCnMsgLen) {
        stats.malformed++;
      } else {
        RawEvent ev;
        if (DecodeProcEvent(payload + kCnMsgLen, cn_len, seq, ack, ev, stats)) {
          out.push_back(ev);
          added++;
        }
      }
    }
    size_t step = Align4(nl_len);
    if (step > len - off) break;
    off += step;
  }
  return added;
}

size_t BuildMcastRequest(uint8_t* buf, size_t cap, uint32_t op, bool with_mask, uint32_t mask, uint32_t seq, uint32_t ack,
                         uint32_t portid) {
  const uint16_t body = with_mask ? 8 : 4;
  const size_t total = kNlHdrLen + kCnMsgLen + body;
  if (buf == nullptr || cap < total) return 0;
  std::memset(buf, 0, total);
  uint32_t nl_len = static_cast<uint32_t>(total);
  uint16_t nl_type = kNlmsgDone;
  std::memcpy(buf, &nl_len, 4);
  std::memcpy(buf + 4, &nl_type, 2);
  std::memcpy(buf + 8, &seq, 4);
  std::memcpy(buf + 12, &portid, 4);
  uint8_t* cn = buf + kNlHdrLen;
  uint32_t idx = kCnIdxProc, val = kCnValProc;
  std::memcpy(cn, &idx, 4);
  std::memcpy(cn + 4, &val, 4);
  std::memcpy(cn + 8, &seq, 4);
  std::memcpy(cn + 12, &ack, 4);
  std::memcpy(cn + 16, &body, 2);
  std::memcpy(cn + kCnMsgLen, &op, 4);
  if (with_mask) std::memcpy(cn + kCnMsgLen + 4, &mask, 4);
  return total;
}

}  // namespace pm
