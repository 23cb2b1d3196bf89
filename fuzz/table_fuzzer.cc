// libFuzzer target: the process table (pm::ProcessTable), fed a sequence of events decoded
// from the input, against a fake /proc (fuzz/fake_proc_reader.h). Pids come from a small
// range, so that they collide and are reused; processes have threads; the table is small, so
// that it fills. The first byte picks the mode:
//   0  plausible: the events the kernel would send for a model of live processes and threads
//      (forks of free pids, threads, execs, exits of a process's threads in any order), all
//      delivered;
//   1  the same, with some events lost on the way (the table is told of each loss);
//   2  anything: any kind, any pids (0, negative, unknown), any fields, any /proc.
// Checked: no crash, leak or undefined behaviour (ASan, UBSan); the table never holds more
// than table_max processes; ancestry is bounded; every event it reports has sane fields and
// can be written as its line; and, where exits are reported, a process that ends yields one
// exit event: exactly one when nothing is lost, never two. In modes 1 and 2, half the inputs
// follow init's subtree only (Options::subtree).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <iterator>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "../native/process_table.h"
#include "../native/wire.h"
#include "fake_proc_reader.h"

namespace {

using pm::OutEvent;
using pm::RawEvent;

constexpr int32_t kMaxPid = 40;  // pids 1..kMaxPid (mode 2 also uses 0 and negatives)
// TABLE_FUZZ_TRACE=1 build/fuzz/table_fuzzer CRASH_FILE: what was fed, what came out.
const bool kTrace = std::getenv("TABLE_FUZZ_TRACE") != nullptr;

#define CHECK(c)                                              \
  do {                                                        \
    if (!(c)) {                                               \
      std::fprintf(stderr, "table_fuzzer: failed: %s\n", #c); \
      std::abort();                                           \
    }                                                         \
  } while (0)

struct Bytes {
  const uint8_t* p;
  size_t n;
  bool empty() const { return n == 0; }
  uint8_t Byte() {
    if (n == 0) return 0;
    n--;
    return *p++;
  }
  uint32_t U32() {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) v = v << 8 | Byte();
    return v;
  }
};

// One live process of the model: its parent and its live threads besides the main one.
struct Process {
  int32_t parent = 1;
  std::set<int32_t> threads;
  bool leader_alive = true;
};

// Where the model's events go.
class Sink {
 public:
  virtual void Feed(const RawEvent& ev, pm::ProcInfo* pre) = 0;
  // A process starts under pid: a lifetime of its own.
  virtual void NewLife(int32_t pid) = 0;

 protected:
  ~Sink() = default;
};

// The live processes and threads as the kernel would have them (and as the fake /proc
// shows them), and the events the kernel would send for what they do next.
class Model {
 public:
  Model(Bytes& in, pm::FakeProcReader& reader, Sink& sink, const bool& junk) : in_(in), reader_(reader), sink_(sink), junk_(junk) {}

  // What one of them does next (op 0..7).
  void Act(uint8_t op) {
    switch (op) {
      case 0:
      case 1:
        return Fork();
      case 2:
        return Clone();
      case 3:
        return Exec();
      case 4:
        return ExitThread();
      case 5:
        return ExitLeader();
      case 6:
        return ExitGroup();
      default:
        return Change();
    }
  }

  // Every process ends.
  void EndAllProcesses() {
    std::vector<int32_t> live;
    for (const auto& kv : procs_) live.push_back(kv.first);
    for (int32_t tgid : live) EndAll(tgid);
  }

  uint64_t NextTs() { return ts_++; }

  void AddProc(int32_t pid, int32_t parent) {
    uint8_t b = in_.Byte();
    pm::FakeProc& p = reader_.procs[pid];
    p.argv = {"prog" + std::to_string(b % 8)};
    if (b & 8) p.argv.push_back("--password=secret");
    p.comm = "comm" + std::to_string(b % 8);
    p.exe = "/bin/prog" + std::to_string(b % 8);
    p.cgroup = b & 16 ? "/system.slice/docker-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.scope" : "/user.slice";
    p.ppid = parent;
    p.uid = b % 3 * 1000;
    p.start_ns = ts_;
    p.readable = b % 7 != 0;
    p.have_exe = b % 5 != 0;
    p.have_cgroup = b % 6 != 0;
    if (!junk_) {
      procs_[pid].parent = parent;
      sink_.NewLife(pid);
    }
  }

  // A pid no live task uses, looking from `from` on; 0 if there is none.
  int32_t FreePid(uint8_t from) {
    for (int32_t i = 0; i < kMaxPid - 1; i++) {
      int32_t pid = 2 + (from + i) % (kMaxPid - 1);
      if (procs_.count(pid) == 0 && thread_of_.count(pid) == 0 && (!junk_ || reader_.procs.count(pid) == 0)) return pid;
    }
    return 0;
  }

 private:
  // A live process, chosen by the next byte; 0 if there is none to choose from.
  int32_t PickProcess(bool leader_alive, bool not_init) {
    std::vector<int32_t> live;
    for (const auto& kv : procs_) {
      if ((!leader_alive || kv.second.leader_alive) && !(not_init && kv.first == 1)) live.push_back(kv.first);
    }
    uint8_t b = in_.Byte();
    return live.empty() ? 0 : live[b % live.size()];
  }

  RawEvent Event(uint32_t what, int32_t pid, int32_t tgid) {
    RawEvent ev;
    ev.what = what;
    ev.cpu = in_.Byte() % 4;
    ev.seq = seq_++;
    ev.ts_ns = ts_ += 1 + in_.Byte() * 1000;
    ev.pid = pid;
    ev.tgid = tgid;
    return ev;
  }

  void Fork() {
    int32_t parent = PickProcess(false, false);
    int32_t child = FreePid(in_.Byte());
    if (parent == 0 || child == 0) return;
    RawEvent ev = Event(pm::kFork, child, child);
    ev.ppid = parent;
    ev.ptgid = parent;
    sink_.NewLife(child);
    procs_[child].parent = parent;
    pm::FakeProc p = reader_.procs[parent];
    p.ppid = parent;
    p.start_ns = ev.ts_ns;
    p.readable = in_.Byte() % 4 != 0;
    reader_.procs[child] = p;
    sink_.Feed(ev, nullptr);
  }

  // A new thread in a process.
  void Clone() {
    int32_t tgid = PickProcess(false, false);
    int32_t tid = FreePid(in_.Byte());
    if (tgid == 0 || tid == 0) return;
    RawEvent ev = Event(pm::kFork, tid, tgid);
    ev.ppid = tgid;
    ev.ptgid = tgid;
    procs_[tgid].threads.insert(tid);
    thread_of_[tid] = tgid;
    sink_.Feed(ev, nullptr);
  }

  // exec ends the other threads first; the main thread runs the new program.
  void Exec() {
    int32_t tgid = PickProcess(true, false);
    if (tgid == 0) return;
    std::set<int32_t> threads = procs_[tgid].threads;
    for (int32_t tid : threads) EndThread(tgid, tid);
    uint8_t b = in_.Byte();
    pm::FakeProc& p = reader_.procs[tgid];
    p.argv = {"new" + std::to_string(b % 4), b & 4 ? "secret" : "x"};
    p.comm = "new" + std::to_string(b % 4);
    p.exe = "/bin/new" + std::to_string(b % 4);
    RawEvent ev = Event(pm::kExec, tgid, tgid);
    if (!(b & 8)) return sink_.Feed(ev, nullptr);
    pm::ProcInfo pre;  // read ahead, as the reader does: argv, exe, or the process gone
    pre.gone = b & 16;
    pre.have_argv = !pre.gone && (b & 32);
    if (pre.have_argv) pre.argv = p.argv;
    pre.have_exe = !pre.gone && (b & 64);
    if (pre.have_exe) pre.exe = p.exe;
    sink_.Feed(ev, &pre);
  }

  void ExitThread() {
    int32_t tgid = PickProcess(false, false);
    if (tgid == 0 || procs_[tgid].threads.empty()) return;
    const std::set<int32_t>& threads = procs_[tgid].threads;
    auto it = threads.begin();
    std::advance(it, in_.Byte() % threads.size());
    EndThread(tgid, *it);
  }

  void ExitLeader() {
    int32_t tgid = PickProcess(true, true);
    if (tgid != 0) EndLeader(tgid);
  }

  // exit_group(): every thread ends, the main one first or last.
  void ExitGroup() {
    int32_t tgid = PickProcess(false, true);
    if (tgid == 0) return;
    bool leader_first = in_.Byte() & 1;
    if (leader_first && procs_[tgid].leader_alive) EndLeader(tgid);
    EndAll(tgid);
  }

  // Whatever still runs of a process ends (threads first).
  void EndAll(int32_t tgid) {
    if (procs_.count(tgid) == 0) return;
    std::set<int32_t> threads = procs_[tgid].threads;
    for (int32_t tid : threads) EndThread(tgid, tid);
    if (procs_.count(tgid) && procs_[tgid].leader_alive) EndLeader(tgid);
  }

  void EndThread(int32_t tgid, int32_t tid) {
    RawEvent ev = ExitEvent(tid, tgid);
    procs_[tgid].threads.erase(tid);
    thread_of_.erase(tid);
    Ended(tgid);
    sink_.Feed(ev, nullptr);
  }

  void EndLeader(int32_t tgid) {
    RawEvent ev = ExitEvent(tgid, tgid);
    procs_[tgid].leader_alive = false;
    Ended(tgid);
    sink_.Feed(ev, nullptr);
  }

  RawEvent ExitEvent(int32_t pid, int32_t tgid) {
    RawEvent ev = Event(pm::kExit, pid, tgid);
    uint8_t b = in_.Byte();
    ev.a = b % 4 << 8;
    ev.b = 17;
    ev.has_parent = b & 4;
    if (ev.has_parent) ev.ppid = ev.ptgid = procs_[tgid].parent;
    return ev;
  }

  // The process is gone once its main thread and every other one have ended.
  void Ended(int32_t tgid) {
    const Process& p = procs_[tgid];
    if (p.leader_alive || !p.threads.empty()) return;
    procs_.erase(tgid);
    reader_.procs.erase(tgid);
  }

  void Change() {
    static const uint32_t kKinds[] = {pm::kUid, pm::kGid, pm::kSid, pm::kPtrace, pm::kComm, pm::kCoredump};
    uint32_t what = kKinds[in_.Byte() % 6];
    int32_t tgid = PickProcess(false, false);
    if (tgid == 0) return;
    int32_t pid = tgid;
    const std::set<int32_t>& threads = procs_[tgid].threads;
    if (!threads.empty() && (in_.Byte() & 1)) pid = *threads.begin();
    RawEvent ev = Event(what, pid, tgid);
    ev.a = in_.Byte() % 3 * 1000;
    ev.b = ev.a;
    for (size_t i = 0; i < 16 && (in_.Byte() & 3); i++) ev.comm[i] = static_cast<char>(in_.Byte() | 1);
    sink_.Feed(ev, nullptr);
  }

  Bytes& in_;
  pm::FakeProcReader& reader_;
  Sink& sink_;
  const bool& junk_;
  std::map<int32_t, Process> procs_;      // the live processes
  std::map<int32_t, int32_t> thread_of_;  // live non-leader threads: tid -> tgid
  uint64_t ts_ = 1000000000;
  uint32_t seq_ = 0;
};

class Scenario : public Sink {
 public:
  explicit Scenario(Bytes in) : in_(in), table_(reader_), model_(in_, reader_, *this, junk_) {}

  void Play() {
    int mode = in_.Byte() % 3;
    strict_ = mode == 0;
    lossy_ = mode == 1;
    junk_ = mode == 2;
    Configure();
    Populate();
    while (!in_.empty()) {
      if (junk_) {
        Junk();
      } else {
        uint8_t op = in_.Byte() % 10;
        if (op < 8) {
          model_.Act(op);
        } else if (op == 8) {
          BatchEnd();
        } else {
          Look();
        }
      }
    }
    Finish();
  }

 private:
  void Configure() {
    uint8_t flags = in_.Byte();
    opts_.events = in_.U32() & pm::kAllEvents;
    if (flags & 1) opts_.events |= pm::kExit;
    opts_.threads = flags & 2;
    opts_.cgroups = flags & 4;
    opts_.seed = flags & 8;
    if (flags & 16) opts_.redact = {"secret"};
    // Init's subtree, in the modes that are not strict (not every exit is reported then:
    // those of processes running before, unseeded; of children a full table could not keep).
    if ((flags & 32) && !strict_) opts_.subtree = {1};
    opts_.table_max = 1 + in_.Byte() % 32;
    opts_.ancestor_depth = in_.Byte() % 6 - 1;
    opts_.ancestor_events = in_.U32() & pm::kAllEvents;
    table_.Reset(opts_, "0123abcd");
    table_.SetClockOffset(1700000000000000000LL);
  }

  // The processes running before the events start: init and a few more, learned if asked.
  void Populate() {
    model_.AddProc(1, 0);
    for (int n = in_.Byte() % 6; n > 0; n--) {
      int32_t pid = model_.FreePid(in_.Byte());
      if (pid == 0) break;
      model_.AddProc(pid, junk_ ? static_cast<int32_t>(in_.Byte() % kMaxPid) : 1);
    }
    if (junk_) {
      for (int32_t pid = -2; pid <= kMaxPid; pid++) {
        if (in_.Byte() % 4 == 0) model_.AddProc(pid, pid - 1);
      }
    }
    if (!opts_.subtree.empty() && !opts_.seed) table_.Learn(1);
    if (!opts_.seed) return;
    for (const auto& kv : reader_.procs) {
      if (!table_.Learn(kv.first)) break;
      CHECK(table_.size() <= opts_.table_max);
    }
  }

  // The end of a batch: the reader flushes the exits held back when a loss may have hidden
  // the last thread's.
  void BatchEnd() {
    if (!lost_ && !table_.flush_due()) return;
    out_.clear();
    table_.FlushDeferred(out_);
    lost_ = false;
    Check();
  }

  // snapshot() and ancestry(), as JS asks for them.
  void Look() {
    std::vector<pm::ProcRecord> recs;
    table_.Snapshot(recs);
    CHECK(recs.size() == table_.size());
    std::vector<pm::ProcRecord> chain;
    table_.Ancestry(static_cast<int32_t>(in_.Byte() % (kMaxPid + 4)) - 2, chain);
    CHECK(chain.size() <= table_.size() + 1);
  }

  void Junk() {
    RawEvent ev;
    ev.what = in_.Byte() & 0x80 ? in_.U32() : 1u << (in_.Byte() % 32);
    ev.cpu = in_.Byte();
    ev.seq = in_.U32();
    ev.ts_ns = in_.Byte() & 1 ? model_.NextTs() : static_cast<uint64_t>(in_.U32()) << 16;
    ev.pid = static_cast<int32_t>(in_.Byte() % (kMaxPid + 4)) - 2;
    ev.tgid = in_.Byte() & 1 ? ev.pid : static_cast<int32_t>(in_.Byte() % (kMaxPid + 4)) - 2;
    ev.ppid = static_cast<int32_t>(in_.Byte() % (kMaxPid + 4)) - 2;
    ev.ptgid = in_.Byte() & 1 ? ev.ppid : static_cast<int32_t>(in_.U32());
    ev.a = in_.U32();
    ev.b = in_.U32();
    ev.has_parent = in_.Byte() & 1;
    for (size_t i = 0; i < 16 && (in_.Byte() & 1); i++) ev.comm[i] = static_cast<char>(in_.Byte());
    uint8_t b = in_.Byte();
    if (b & 1) {
      int32_t pid = static_cast<int32_t>(in_.Byte() % (kMaxPid + 4)) - 2;
      if (b & 2) {
        reader_.procs.erase(pid);
      } else {
        model_.AddProc(pid, ev.ppid);
      }
    }
    if (b & 4) table_.NoteLoss();
    if (b & 8) BatchEnd();
    if (b & 16) Look();
    pm::ProcInfo pre;
    pre.gone = b & 32;
    pre.have_argv = b & 64;
    if (pre.have_argv) pre.argv = {"junk", "secret"};
    Feed(ev, b & 128 ? &pre : nullptr);
  }

  void NewLife(int32_t pid) override {
    if (lives_.count(pid)) CheckExits(pid);
    lives_.insert(pid);
    exits_[pid] = 0;
  }

  // One lifetime of pid is over: it was reported ended once (never more than once).
  void CheckExits(int32_t pid) {
    if (!(opts_.events & pm::kExit)) return;
    CHECK(exits_[pid] <= 1);
    if (strict_) CHECK(exits_[pid] == 1);
  }

  void Feed(const RawEvent& ev, pm::ProcInfo* pre) override {
    if (lossy_ && in_.Byte() % 8 == 0) {
      table_.NoteLoss();  // lost on the way
      lost_ = true;
      return;
    }
    out_.clear();
    if (kTrace) {
      std::fprintf(stderr, "feed what=%x pid=%d tgid=%d ppid=%d ptgid=%d pre=%d\n", ev.what, ev.pid, ev.tgid, ev.ppid, ev.ptgid,
                   pre != nullptr);
    }
    table_.Handle(ev, out_, pre);
    Check();
  }

  void Check() {
    if (kTrace) {
      for (const OutEvent& o : out_) std::fprintf(stderr, "  out what=%x pid=%d thread=%d\n", o.what, o.pid, o.thread);
      std::fprintf(stderr, "  mode strict=%d lossy=%d junk=%d size=%zu max=%zu threads=%d\n", strict_, lossy_, junk_, table_.size(),
                   opts_.table_max, opts_.threads);
    }
    CHECK(table_.size() <= opts_.table_max);
    for (const OutEvent& o : out_) {
      CHECK(o.what != 0 && (o.what & pm::kAllEvents) == o.what && (o.what & (o.what - 1)) == 0);
      CHECK(opts_.events & o.what);
      CHECK(o.exec_id.empty() || o.exec_id.compare(0, 9, "0123abcd:") == 0);
      CHECK(o.missing < (1u << pm::kMissingNames));
      CHECK(o.ancestors.empty() || static_cast<int>(o.ancestors.size()) <= opts_.ancestor_depth);
      for (const std::string& arg : o.argv) CHECK(opts_.redact.empty() || arg.find("secret") == std::string::npos);
      if (o.what == pm::kExit && !o.thread && !junk_) CHECK(++exits_[o.pid] <= 1);
    }
    std::string text;
    std::vector<int32_t> meta;
    pm::AppendBatch(text, meta, out_);
    CHECK(meta.size() == out_.size() * 3);
    CHECK(out_.empty() || text.back() == '\n');
  }

  // Every process ends; once all are gone, whatever was held back is reported.
  void Finish() {
    if (!junk_) {
      lossy_ = false;  // nothing more is lost (the checks stay those of the mode)
      model_.EndAllProcesses();
    }
    reader_.procs.clear();
    out_.clear();
    table_.FlushDeferred(out_);
    Check();
    if (!junk_) {
      for (int32_t pid : lives_) CheckExits(pid);
    }
    Look();
  }

  Bytes in_;
  bool strict_ = false;  // mode 0: every exit of a process is reported exactly once
  bool lossy_ = false;   // mode 1: events are lost on the way
  bool junk_ = false;    // mode 2: anything goes
  pm::Options opts_;
  pm::FakeProcReader reader_;
  pm::ProcessTable table_;
  Model model_;
  std::map<int32_t, Process> procs_;      // the model's live processes
  std::map<int32_t, int32_t> thread_of_;  // live non-leader threads: tid -> tgid
  std::set<int32_t> lives_;               // pids that have had a process (mode 0, 1)
  std::map<int32_t, int> exits_;          // process exits reported in pid's current lifetime
  std::vector<OutEvent> out_;
  bool lost_ = false;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Scenario(Bytes{data, size}).Play();
  return 0;
}
