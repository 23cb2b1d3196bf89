// Unit tests of the exit cost's pure parts: the taskstats parser (native/taskstats.h) on real
// datagrams (fuzz/corpus/taskstats/, captured by fuzz/capture-taskstats.py) and crafted ones,
// ExitCost's map of records (native/exit_cost.h), the /proc cost parsers (native/procfs.h)
// and the cost on the wire (native/wire.h). No kernel, no Node. Built and run by
// test/taskstats.test.js; prints "ok - NAME" or "not ok - NAME: line LINE: EXPRESSION" per case.
#include "../../native/taskstats.h"

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "../../fuzz/fake_proc_reader.h"
#include "../../native/exit_cost.h"
#include "../../native/wire.h"
#include "unit.h"

namespace {

std::vector<uint8_t> Load(const char* name) {
  std::ifstream f(std::string("fuzz/corpus/taskstats/") + name, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

uint16_t FamilyOf(const std::vector<uint8_t>& d) {
  uint16_t f = 0;
  if (d.size() >= 6) std::memcpy(&f, d.data() + 4, 2);
  return f;
}

// One datagram: nlmsghdr, genlmsghdr (TASKSTATS_CMD_NEW), AGGR_PID { PID, STATS (len bytes) }.
std::vector<uint8_t> Craft(uint16_t family, uint32_t pid, size_t len, uint16_t version) {
  std::vector<uint8_t> stats(len, 0);
  auto put64 = [&](size_t off, uint64_t v) {
    if (off + 8 <= len) std::memcpy(&stats[off], &v, 8);
  };
  auto put32 = [&](size_t off, uint32_t v) {
    if (off + 4 <= len) std::memcpy(&stats[off], &v, 4);
  };
  if (len >= 2) std::memcpy(&stats[0], &version, 2);
  put32(128, pid);      // ac_pid
  put64(152, 250000);   // ac_utime, us
  put64(160, 12000);    // ac_stime
  put64(200, 51200);    // hiwater_rss, KiB
  put64(248, 4096);     // read_bytes
  put64(256, 1048576);  // write_bytes
  put64(272, 7);        // nvcsw
  put64(280, 3);        // nivcsw
  put32(368, pid);      // ac_tgid
  std::vector<uint8_t> inner;
  auto attr = [](std::vector<uint8_t>& out, uint16_t type, const void* p, size_t n) {
    uint16_t l = static_cast<uint16_t>(4 + n);
    out.insert(out.end(), reinterpret_cast<uint8_t*>(&l), reinterpret_cast<uint8_t*>(&l) + 2);
    out.insert(out.end(), reinterpret_cast<uint8_t*>(&type), reinterpret_cast<uint8_t*>(&type) + 2);
    out.insert(out.end(), static_cast<const uint8_t*>(p), static_cast<const uint8_t*>(p) + n);
    while (out.size() % 4) out.push_back(0);
  };
  attr(inner, 1, &pid, 4);  // TASKSTATS_TYPE_PID
  attr(inner, 3, stats.data(), stats.size());
  std::vector<uint8_t> body = {2, 1, 0, 0};            // TASKSTATS_CMD_NEW, version 1
  attr(body, 4 | 0x8000, inner.data(), inner.size());  // AGGR_PID, nested flag
  uint32_t total = static_cast<uint32_t>(16 + body.size());
  std::vector<uint8_t> msg(16, 0);
  std::memcpy(&msg[0], &total, 4);
  std::memcpy(&msg[4], &family, 2);
  msg.insert(msg.end(), body.begin(), body.end());
  return msg;
}

void RealSingleTaskRecord() {
  std::vector<uint8_t> d = Load("pid-0000");
  EXPECT(!d.empty());
  std::vector<pm::TaskstatsRecord> recs;
  EXPECT(pm::ParseTaskstats(d.data(), d.size(), FamilyOf(d), recs) == 0);
  EXPECT(recs.size() == 1);
  if (recs.size() != 1) return;
  EXPECT(recs[0].pid > 0 && !recs[0].group);
  EXPECT(recs[0].tgid == recs[0].pid);  // single-threaded, no pid namespace in the way
  EXPECT(recs[0].version >= 10);
  EXPECT(recs[0].cost.have == (1u << pm::kCostFields) - 1);
  EXPECT(recs[0].cost.source == pm::kCostTaskstats);
  // Another family id: none of ours.
  recs.clear();
  EXPECT(pm::ParseTaskstats(d.data(), d.size(), static_cast<uint16_t>(FamilyOf(d) + 1), recs) > 0);
  EXPECT(recs.empty());
}

void RealThreadGroupRecord() {
  std::vector<uint8_t> d = Load("tgid-0003");
  std::vector<pm::TaskstatsRecord> recs;
  EXPECT(pm::ParseTaskstats(d.data(), d.size(), FamilyOf(d), recs) == 0);
  EXPECT(recs.size() == 2);
  if (recs.size() != 2) return;
  EXPECT(!recs[0].group && recs[1].group);
  EXPECT(recs[1].tgid == recs[1].pid && recs[0].tgid == recs[1].pid);
}

void CraftedFieldsByLength() {
  std::vector<pm::TaskstatsRecord> recs;
  std::vector<uint8_t> full = Craft(31, 4242, 416, 13);
  EXPECT(pm::ParseTaskstats(full.data(), full.size(), 31, recs) == 0 && recs.size() == 1);
  if (recs.size() != 1) return;
  const pm::Cost& c = recs[0].cost;
  EXPECT(c.v[pm::kCostUser] == 250000 && c.v[pm::kCostSystem] == 12000 && c.v[pm::kCostMaxRss] == 51200);
  EXPECT(c.v[pm::kCostRead] == 4096 && c.v[pm::kCostWrite] == 1048576);
  EXPECT(c.v[pm::kCostVoluntary] == 7 && c.v[pm::kCostInvoluntary] == 3);
  EXPECT(recs[0].tgid == 4242);
  // An old, short struct: only the fields wholly inside it.
  recs.clear();
  std::vector<uint8_t> old = Craft(31, 4242, 204, 3);
  EXPECT(pm::ParseTaskstats(old.data(), old.size(), 31, recs) == 0 && recs.size() == 1);
  if (recs.size() != 1) return;
  EXPECT(recs[0].cost.Has(pm::kCostUser) && recs[0].cost.Has(pm::kCostSystem));
  EXPECT(!recs[0].cost.Has(pm::kCostMaxRss) && !recs[0].cost.Has(pm::kCostWrite));
  EXPECT(recs[0].tgid == 0);  // no ac_tgid: whose thread is unknown
}

void MalformedNeverRead() {
  std::vector<uint8_t> m = Craft(31, 7, 416, 13);
  std::vector<pm::TaskstatsRecord> recs;
  for (size_t cut = 0; cut < m.size(); cut++) pm::ParseTaskstats(m.data(), cut, 31, recs);
  EXPECT(recs.empty());  // a record only from a whole message
  std::vector<uint8_t> v0 = Craft(31, 7, 416, 0);
  EXPECT(pm::ParseTaskstats(v0.data(), v0.size(), 31, recs) == 1 && recs.empty());  // version 0
  std::vector<uint8_t> bad = m;
  uint32_t huge = 100000;
  std::memcpy(&bad[0], &huge, 4);
  EXPECT(pm::ParseTaskstats(bad.data(), bad.size(), 31, recs) == 1 && recs.empty());
}

pm::TaskstatsRecord Rec(int32_t pid, int32_t tgid, uint64_t user, uint64_t rss) {
  pm::TaskstatsRecord r;
  r.pid = pid;
  r.tgid = tgid;
  r.version = 16;
  r.cost.source = pm::kCostTaskstats;
  for (int f = 0; f < pm::kCostFields; f++) r.cost.Set(static_cast<pm::CostField>(f), 1);
  r.cost.Set(pm::kCostUser, user);
  r.cost.Set(pm::kCostMaxRss, rss);
  return r;
}

void ThreadsAddUp() {
  pm::FakeProcReader reader;
  pm::ExitCost cost(reader);
  cost.Add(Rec(501, 500, 1000, 300), 0);
  cost.Add(Rec(500, 500, 2000, 200), 0);
  pm::TaskstatsRecord group = Rec(500, 500, 99999, 99999);
  group.group = true;
  cost.Add(group, 0);  // the group's record holds none of the fields: ignored
  pm::Cost c;
  EXPECT(cost.Take(500, c));
  EXPECT(c.v[pm::kCostUser] == 3000 && c.v[pm::kCostMaxRss] == 300 && c.v[pm::kCostVoluntary] == 2);
  EXPECT(!cost.Take(500, c));  // taken once
  // A thread whose record lacks a field: the sum lacks it too.
  pm::TaskstatsRecord partial = Rec(601, 600, 5, 5);
  partial.cost.have &= static_cast<uint8_t>(~(1u << pm::kCostWrite));
  cost.Add(Rec(600, 600, 5, 5), 0);
  cost.Add(partial, 0);
  EXPECT(cost.Take(600, c) && !c.Has(pm::kCostWrite) && c.Has(pm::kCostRead));
  // In another pid namespace: only a process seen single-threaded is whole.
  pm::TaskstatsRecord foreign = Rec(700, 700, 5, 5);
  foreign.foreign = true;
  cost.Add(foreign, 0);
  EXPECT(!cost.Take(700, c, false));
  cost.Add(foreign, 0);
  EXPECT(cost.Take(700, c, true) && c.v[pm::kCostUser] == 5);
}

void MapIsBounded() {
  pm::FakeProcReader reader;
  pm::ExitCost cost(reader);
  const int32_t n = static_cast<int32_t>(pm::ExitCost::kMaxPending) + 100;
  for (int32_t i = 1; i <= n; i++) cost.Add(Rec(i, i, 1, 1), i);
  EXPECT(cost.pending() == pm::ExitCost::kMaxPending);
  pm::Cost c;
  EXPECT(!cost.Take(1, c));  // the oldest went
  // Records went up to time n (the clock is the records' here): a process that started
  // before is not whole, one that started after is.
  EXPECT(!cost.Take(n - 1, c, true, 5));
  cost.Add(Rec(n + 5, n + 5, 1, 1), n + 100);
  EXPECT(cost.Take(n + 5, c, true, n + 50));
  // Taken and added again: its first place in line is stale; the size bound evicts the
  // oldest entry that is still there, not the new one.
  pm::ExitCost again(reader);
  again.Add(Rec(9, 9, 1, 1), 1);
  EXPECT(again.Take(9, c));
  for (int32_t i = 100; i < 100 + static_cast<int32_t>(pm::ExitCost::kMaxPending) - 1; i++) again.Add(Rec(i, i, 1, 1), 2);
  again.Add(Rec(9, 9, 2, 2), 3);
  again.Add(Rec(50, 50, 1, 1), 4);
  EXPECT(again.pending() == pm::ExitCost::kMaxPending);
  c = pm::Cost();
  again.Take(9, c, true, 3);  // not whole (it started before a record was evicted), but found
  EXPECT(c.v[pm::kCostUser] == 2 && c.have == 0);
  EXPECT(!again.Take(100, c));
  // A record read before the process started was another process's of the same pid.
  cost.Add(Rec(5, 5, 1, 1), 1000);
  EXPECT(!cost.Take(5, c, true, 2000));
}

void RecordsOfProcessesNotFollowedGo() {
  pm::FakeProcReader reader;
  pm::ExitCost cost(reader);
  cost.Add(Rec(501, 500, 1, 1), 10);
  cost.Add(Rec(500, 500, 1, 1), 10);
  cost.Add(Rec(600, 600, 7, 7), 10);
  std::vector<int32_t> gone = {500, 999};  // 999: no record, nothing to drop
  cost.Forget(gone);
  EXPECT(cost.pending() == 1 && gone.empty());
  pm::Cost c;
  EXPECT(cost.Take(600, c, true, 5) && c.v[pm::kCostUser] == 7);  // whole: nothing was lost
  EXPECT(!cost.Take(500, c));
}

// A fake /proc whose zombies have a cost.
struct CostReader : pm::FakeProcReader {
  bool CostOf(int32_t pid, pm::Cost& out) override {
    if (pid != 77) return false;
    out.Set(pm::kCostUser, 20000);
    out.Set(pm::kCostSystem, 10000);
    out.Set(pm::kCostWrite, 1 << 20);
    out.Set(pm::kCostVoluntary, 4);
    out.Set(pm::kCostInvoluntary, 2);
    return true;
  }
};

void ProcFallbackMarksWhatItCannotKnow() {
  CostReader reader;
  pm::ExitCost cost(reader);
  EXPECT(cost.Start(pm::kCostProcOnly) == pm::kCostProc);
  std::vector<pm::OutEvent> out(3);
  for (pm::OutEvent& e : out) e.what = pm::kExit;
  out[0].pid = 77;
  out[0].single_threaded = true;
  out[1].pid = 77;  // threads were seen (or not known): /status's switches are the main thread's
  out[2].pid = 78;  // reaped already
  cost.Attach(out, 0);
  EXPECT(out[0].cost.source == pm::kCostProc && out[0].cost.Has(pm::kCostVoluntary));
  EXPECT(out[0].missing == ((pm::kMissCostFirst << pm::kCostMaxRss) | (pm::kMissCostFirst << pm::kCostRead)));
  EXPECT(!out[1].cost.Has(pm::kCostVoluntary) && (out[1].missing & (pm::kMissCostFirst << pm::kCostInvoluntary)));
  EXPECT(out[2].cost.have == 0 && out[2].missing == ((1u << pm::kCostFields) - 1) * pm::kMissCostFirst);
  EXPECT(cost.from_proc == 2 && cost.unknown == 1);
  std::string line;
  pm::AppendEventLine(line, out[0]);
  EXPECT(line.find(",\"cost\":{\"user_ms\":20,\"system_ms\":10,\"write_bytes\":1048576,\"voluntary_ctxt_switches\":4,"
                   "\"involuntary_ctxt_switches\":2,\"source\":\"proc\"}") != std::string::npos);
  EXPECT(line.find("\"missing\":[\"cost.max_rss_kb\",\"cost.read_bytes\"]") != std::string::npos);
  cost.Stop();
}

void ProcTextParsers() {
  const char zombie[] = "77 (a) b) Z 1 77 77 0 -1 4194316 100 0 0 0 25 3 0 0 20 0 1 0 500 0 0";
  pm::Cost c;
  EXPECT(pm::ParseCostStat(zombie, sizeof zombie - 1, 100, c));
  EXPECT(c.v[pm::kCostUser] == 250000 && c.v[pm::kCostSystem] == 30000);
  const char live[] = "77 (a) S 1 77 77 0 -1 4194316 100 0 0 0 25 3 0 0 20 0 1 0 500 0 0";
  pm::Cost d;
  EXPECT(!pm::ParseCostStat(live, sizeof live - 1, 100, d) && d.have == 0);
  const char status[] = "Name:\tx\nVmHWM:\t  51200 kB\nvoluntary_ctxt_switches:\t9\nnonvoluntary_ctxt_switches:\t1\n";
  pm::Cost s;
  pm::ParseCostStatus(status, sizeof status - 1, s);
  EXPECT(s.v[pm::kCostMaxRss] == 51200 && s.v[pm::kCostVoluntary] == 9 && s.v[pm::kCostInvoluntary] == 1);
  const char zstatus[] = "Name:\tx\nState:\tZ (zombie)\nvoluntary_ctxt_switches:\t9\n";
  pm::Cost z;
  pm::ParseCostStatus(zstatus, sizeof zstatus - 1, z);
  EXPECT(!z.Has(pm::kCostMaxRss) && !z.Has(pm::kCostInvoluntary));
  const char io[] = "rchar: 10\nwchar: 20\nsyscr: 1\nsyscw: 1\nread_bytes: 4096\nwrite_bytes: 1048576\ncancelled_write_bytes: 0\n";
  pm::Cost i;
  pm::ParseCostIo(io, sizeof io - 1, i);
  EXPECT(i.v[pm::kCostRead] == 4096 && i.v[pm::kCostWrite] == 1048576);
}

const unit::Case kCases[] = {
    {"taskstats: a real single-threaded exit record, every field; another family's is not read", RealSingleTaskRecord},
    {"taskstats: a real thread group's exit, its last task's record and the group's", RealThreadGroupRecord},
    {"taskstats: fields by offset, only those the struct is long enough to hold", CraftedFieldsByLength},
    {"taskstats: truncated and malformed messages give no record and are counted", MalformedNeverRead},
    {"exit cost: threads add up, peak RSS the largest, a field one lacks is lacking; other pid namespaces", ThreadsAddUp},
    {"exit cost: the map of waiting records is bounded; an evicted process's cost is not claimed", MapIsBounded},
    {"exit cost from /proc: what it cannot know is missing, never guessed; the wire line", ProcFallbackMarksWhatItCannotKnow},
    {"exit cost: the records of processes not followed (a subtree) are dropped, not counted as lost", RecordsOfProcessesNotFollowedGo},
    {"/proc cost parsers: stat (zombies only), status, io", ProcTextParsers},
};

}  // namespace

int main() { return unit::RunCases(kCases); }
