// libFuzzer target: the /proc text parsers, pm::ParseStatus (/proc/PID/status),
// pm::ParseStatStart and ParseStatPpid (/proc/PID/stat) and the exit cost's (ParseCostStat, ParseCostStatus,
// ParseCostIo), and the context's (context.h: ParseId, ParseNsLink, ParseNspid, ParseStatTty,
// ParseEnviron, TtyNameOf) and a filter's patterns (pattern.h), fed the same bytes. The kernel writes those files,
// but a process chooses its own name (prctl/comm, any bytes but NUL, including ')' and
// newlines), so the parsers must hold for any input: no read past `len`, no crash.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "../native/context.h"
#include "../native/pattern.h"
#include "../native/procfs.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const char* text = reinterpret_cast<const char*>(data);
  uint64_t ticks = 0;
  if (pm::ParseStatStart(text, size, &ticks) && std::memchr(text, ')', size) == nullptr) {
    std::abort();  // a start time is only ever found after the comm's closing ')'
  }
  int32_t ppid = -1;
  if (pm::ParseStatPpid(text, size, &ppid) && (ppid < 0 || std::memchr(text, ')', size) == nullptr)) std::abort();
  pm::Cost cost;
  if (pm::ParseCostStat(text, size, 100, cost) && std::memchr(text, ')', size) == nullptr) std::abort();
  pm::ParseCostStatus(text, size, cost);
  pm::ParseCostIo(text, size, cost);
  if (cost.have >> pm::kCostFields) std::abort();
  uint32_t id = 0;
  if (pm::ParseId(text, size, &id) && (size == 0 || text[0] < '0' || text[0] > '9')) std::abort();
  uint64_t ino = 0;
  pm::ParseNsLink(std::string(text, size), &ino);
  int32_t nspid = -1;
  if (pm::ParseNspid(text, size, &nspid) && nspid < 0) std::abort();
  uint32_t dev = 0;
  if (pm::ParseStatTty(text, size, &dev)) {
    if (std::memchr(text, ')', size) == nullptr) std::abort();
    pm::TtyNameOf(dev);
  }
  if (pm::ParseDevName(text, size).size() > size) std::abort();
  std::vector<std::pair<std::string, std::string>> env;
  pm::ParseEnviron(text, size, {"PATH", "A", "", "PATH"}, env);
  if (env.size() > 3) std::abort();
  for (const auto& kv : env) {
    if (kv.second.size() > size) std::abort();
  }
  // A filter's pattern is untrusted too (a client's request, a file): the first half of the
  // bytes compiled, run on the second half.
  pm::Pattern pattern;
  std::string why;
  if (pattern.Compile(std::string(text, size / 2), &why)) {
    pattern.Match(text + size / 2, size - size / 2);
  } else if (why.empty()) {
    std::abort();  // a refusal always says why
  }
  pm::ProcInfo info;
  bool ok = pm::ParseStatus(text, size, info);
  if (ok != info.have_status) std::abort();
  if (!ok) return 0;
  // The Name value is at most as long as the input, escapes only shrink it.
  if (info.comm.size() > size) std::abort();
  pm::ProcInfo again;
  if (!pm::ParseStatus(text, size, again) || again.comm != info.comm || again.ppid != info.ppid || again.uid != info.uid ||
      again.euid != info.euid) {
    std::abort();
  }
  return 0;
}
