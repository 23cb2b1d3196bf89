// libFuzzer target: pm::ParseDatagram over raw netlink datagrams (and BuildMcastRequest).
// Built with -fsanitize=fuzzer,address,undefined by scripts/fuzz.sh. The input is one
// recv() worth of bytes, exactly as the kernel (or anything else) could hand it to us.
// Beyond "no crash, no out-of-bounds read", it checks what the parser promises.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "../native/parser.h"

namespace {

void Check(bool ok) {
  if (!ok) std::abort();
}

constexpr uint32_t kKnown[] = {pm::kNone, pm::kFork,   pm::kExec, pm::kUid,      pm::kGid,
                               pm::kSid,  pm::kPtrace, pm::kComm, pm::kCoredump, pm::kExit};

bool Known(uint32_t what) {
  for (uint32_t k : kKnown) {
    if (k == what) return true;
  }
  return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // libFuzzer's buffer is exactly `size` bytes on the heap: ASan sees any read past it.
  std::vector<pm::RawEvent> out;
  out.emplace_back();  // events are appended, never overwritten
  out.back().pid = 4242;
  pm::ParseStats st;
  size_t n = pm::ParseDatagram(data, size, out, st);
  Check(out.size() == n + 1);
  Check(out.front().pid == 4242);
  // Every message needs at least a netlink header.
  Check(st.messages <= size / pm::kNlHdrLen);
  // Each message yields at most one event, or is counted as skipped.
  Check(n <= st.messages);
  // Each message is exactly one of: an event, malformed, foreign, unknown, an error, or
  // a control message (overrun, noop) that yields nothing.
  Check(n + st.malformed + st.foreign + st.unknown + st.errors <= st.messages);
  for (size_t i = 1; i < out.size(); i++) {
    const pm::RawEvent& e = out[i];
    Check(Known(e.what));
    Check(e.comm[16] == 0);
    Check(std::strlen(e.comm) <= 16);
    if (e.what != pm::kComm) Check(e.comm[0] == 0);
    if (e.what != pm::kFork && e.what != pm::kPtrace && e.what != pm::kCoredump && e.what != pm::kExit) {
      Check(!e.has_parent);
    }
  }
  // Deterministic: the same bytes parse the same way.
  std::vector<pm::RawEvent> again;
  pm::ParseStats st2;
  Check(pm::ParseDatagram(data, size, again, st2) == n);
  Check(st2.messages == st.messages && st2.malformed == st.malformed && st2.foreign == st.foreign && st2.unknown == st.unknown &&
        st2.errors == st.errors && st2.overrun == st.overrun);
  for (size_t i = 0; i < n; i++) {
    const pm::RawEvent& x = again[i];
    const pm::RawEvent& y = out[i + 1];
    Check(x.what == y.what && x.cpu == y.cpu && x.ts_ns == y.ts_ns && x.seq == y.seq && x.ack == y.ack && x.pid == y.pid &&
          x.tgid == y.tgid && x.ppid == y.ppid && x.ptgid == y.ptgid && x.a == y.a && x.b == y.b && x.has_parent == y.has_parent &&
          std::memcmp(x.comm, y.comm, sizeof x.comm) == 0);
  }
  // Every prefix parses without reading past its end (truncated datagrams).
  if (size <= 256) {
    for (size_t cut = 0; cut < size; cut += 1 + size / 16) {
      std::unique_ptr<uint8_t[]> copy(new uint8_t[cut ? cut : 1]);
      if (cut) std::memcpy(copy.get(), data, cut);
      std::vector<pm::RawEvent> part;
      pm::ParseStats ps;
      pm::ParseDatagram(cut ? copy.get() : nullptr, cut, part, ps);
    }
  }

  // The subscription request: never writes past `cap`, and always frames as one message.
  if (size >= 17) {
    uint32_t op, mask, seq, ack, portid;
    std::memcpy(&op, data, 4);
    std::memcpy(&mask, data + 4, 4);
    std::memcpy(&seq, data + 8, 4);
    std::memcpy(&ack, data + 12, 4);
    portid = seq ^ ack;
    bool with_mask = data[16] & 1;
    size_t cap = data[16] >> 1;  // 0..127
    std::unique_ptr<uint8_t[]> buf(new uint8_t[cap ? cap : 1]);
    size_t w = pm::BuildMcastRequest(cap ? buf.get() : nullptr, cap, op, with_mask, mask, seq, ack, portid);
    size_t total = pm::kNlHdrLen + pm::kCnMsgLen + (with_mask ? 8 : 4);
    Check(w == (cap >= total ? total : 0));
    if (w) {
      std::vector<pm::RawEvent> evs;
      pm::ParseStats rs;
      pm::ParseDatagram(buf.get(), w, evs, rs);
      Check(rs.messages == 1 && rs.foreign == 0 && rs.errors == 0);
      uint32_t nl_len;
      std::memcpy(&nl_len, buf.get(), 4);
      Check(nl_len == w);
    }
  }
  return 0;
}
