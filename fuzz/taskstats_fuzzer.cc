// libFuzzer target: pm::ParseTaskstats (the kernel's taskstats exit datagrams, generic
// netlink) and pm::ParseTaskstatsStruct, and what ExitCost makes of the records (Add, Take:
// the bounded map of records waiting for their exit events). The kernel writes these
// datagrams, but the parser must hold for any bytes: no read outside the buffer, no crash,
// no record without a pid, a map that stays bounded. Seeds: real datagrams
// (fuzz/capture-taskstats.py) in fuzz/corpus/taskstats/.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "../native/exit_cost.h"
#include "../native/taskstats.h"
#include "fake_proc_reader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // The family id is the kernel's choice: take it from the first message, as if it matched.
  uint16_t family = 0;
  if (size >= 6) std::memcpy(&family, data + 4, 2);
  std::vector<pm::TaskstatsRecord> recs;
  pm::ParseTaskstats(data, size, family, recs);
  pm::FakeProcReader reader;
  pm::ExitCost cost(reader);
  int64_t now = 0;
  for (const pm::TaskstatsRecord& r : recs) {
    if (r.pid <= 0 || r.version == 0 || r.cost.source != pm::kCostTaskstats) std::abort();
    if (r.group && r.tgid != r.pid) std::abort();
    if (r.cost.have >> pm::kCostFields) std::abort();
    cost.Add(r, now);
    now += 1000000000;  // a second apart: some expire
  }
  if (cost.pending() > pm::ExitCost::kMaxPending) std::abort();
  for (const pm::TaskstatsRecord& r : recs) {
    pm::Cost c;
    if (cost.Take(r.tgid, c) && c.source != pm::kCostTaskstats) std::abort();
  }
  // The struct alone, at every length the input gives.
  pm::TaskstatsRecord one;
  one.pid = 1;
  if (pm::ParseTaskstatsStruct(data, size, one) && one.version == 0) std::abort();
  return 0;
}
