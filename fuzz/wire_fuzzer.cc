// libFuzzer target: the wire writer, pm::AppendJsonString and pm::AppendEventLine, and the
// line reader that runs clients' filters on its lines (pm::ReadEventLine, pm::LineFilter).
// Every string of an event comes from a process (argv, comm, exe, cgroup: any bytes), so for
// any input the line must be one line of valid UTF-8 JSON with nothing unescaped, and a string
// that was valid UTF-8 must read back exactly, by the line reader too. The input itself, read
// as a line (a client's or a file's bytes are anything), must never crash it.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include "../native/line_filter.h"
#include "../native/wire.h"

namespace {

void Check(bool ok) {
  if (!ok) std::abort();
}

// Reads back a JSON string literal as AppendJsonString writes them (its escapes only).
std::string Unescape(const std::string& lit) {
  Check(lit.size() >= 2 && lit.front() == '"' && lit.back() == '"');
  std::string out;
  for (size_t i = 1; i + 1 < lit.size(); i++) {
    char c = lit[i];
    Check(c != '"' && static_cast<unsigned char>(c) >= 0x20);
    if (c != '\\') {
      out.push_back(c);
      continue;
    }
    Check(i + 2 < lit.size());
    char e = lit[++i];
    switch (e) {
      case '"':
        out.push_back('"');
        break;
      case '\\':
        out.push_back('\\');
        break;
      case 'b':
        out.push_back('\b');
        break;
      case 'f':
        out.push_back('\f');
        break;
      case 'n':
        out.push_back('\n');
        break;
      case 'r':
        out.push_back('\r');
        break;
      case 't':
        out.push_back('\t');
        break;
      case 'u': {
        Check(i + 4 < lit.size());
        out.push_back(static_cast<char>(std::strtol(lit.substr(i + 1, 4).c_str(), nullptr, 16)));
        i += 4;
        break;
      }
      default:
        Check(false);
    }
  }
  return out;
}

// Splits the input into strings at 0xfe bytes (any other byte, NUL included, stays).
std::string Take(const uint8_t*& p, const uint8_t* end) {
  const uint8_t* q = p;
  while (q < end && *q != 0xfe) q++;
  std::string s(reinterpret_cast<const char*>(p), q - p);
  p = q < end ? q + 1 : q;
  return s;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const char* text = reinterpret_cast<const char*>(data);
  std::string lit;
  pm::AppendJsonString(lit, text, size);
  Check(pm::ValidUtf8(lit.data(), lit.size()));
  std::string back = Unescape(lit);
  if (pm::ValidUtf8(text, size)) Check(back == std::string(text, size));

  // An event of every kind from the same bytes.
  static const uint32_t kKinds[] = {pm::kFork, pm::kExec,   pm::kExit, pm::kUid,      pm::kGid,
                                    pm::kSid,  pm::kPtrace, pm::kComm, pm::kCoredump, pm::kLost};
  const uint8_t* p = data;
  const uint8_t* end = data + size;
  pm::OutEvent e;
  e.what = kKinds[size ? data[0] % 10 : 0];
  e.thread = size > 1 && (data[1] & 1);
  e.with_ancestors = size > 1 && (data[1] & 2);
  e.with_cgroup = size > 1 && (data[1] & 4);
  e.learned = size > 1 && (data[1] & 8);
  e.missing = size > 2 ? data[2] * 9u : 0;
  e.raw.a = size > 3 ? data[3] * 0x01010101u : 0;
  e.duration_ms = size > 4 ? (data[4] - 8) * 1234.567 : -1;
  e.time_ms = size > 5 ? data[5] * 1e10 : 0;
  e.lost_count = size > 6 ? data[6] * 0x0101010101010101ull : 0;
  if (size > 7 && (data[7] & 0x80)) {  // a cost: some fields, from either source
    e.cost.source = (data[7] & 0x40) ? pm::kCostTaskstats : pm::kCostProc;
    for (int f = 0; f < pm::kCostFields; f++) {
      if (data[7] & (1u << f)) e.cost.Set(static_cast<pm::CostField>(f), e.lost_count * static_cast<uint64_t>(f + 1));
    }
  }
  e.user = Take(p, end);
  e.comm = Take(p, end);
  e.cmdline = Take(p, end);
  e.exe = Take(p, end);
  e.cgroup = Take(p, end);
  e.container_id = Take(p, end);
  e.exec_id = Take(p, end);
  for (int i = 0; i < 4 && p < end; i++) e.argv.push_back(Take(p, end));
  for (int i = 0; i < 3 && p < end; i++) {
    pm::Ancestor a;
    a.pid = i;
    a.comm = Take(p, end);
    a.exe = Take(p, end);
    a.have_exe = !a.exe.empty();
    e.ancestors.push_back(a);
  }
  std::string line;
  pm::AppendEventLine(line, e);
  Check(pm::ValidUtf8(line.data(), line.size()));
  Check(line.size() >= 3 && line.compare(0, 10, "{\"event\":\"") == 0);
  Check(line[line.size() - 2] == '}' && line.back() == '\n');
  for (size_t i = 0; i + 1 < line.size(); i++) Check(static_cast<unsigned char>(line[i]) >= 0x20);

  // The line reads back: its kind, and each string the line carries that was valid UTF-8.
  pm::LineEvent read_back;
  Check(pm::ReadEventLine(line.data(), line.size(), read_back));
  Check(read_back.e.what == e.what);
  if (e.what != pm::kLost) {
    for (const auto& f : {std::make_pair(&e.user, &read_back.e.user), std::make_pair(&e.comm, &read_back.e.comm),
                          std::make_pair(&e.cmdline, &read_back.e.cmdline), std::make_pair(&e.exe, &read_back.e.exe)}) {
      if (pm::ValidUtf8(f.first->data(), f.first->size())) Check(*f.first == *f.second);
    }
  }
  // Any bytes as a line, through a filter with a subtree: no crash, no leak, nothing kept that
  // is not an event.
  pm::LineFilter filter;
  std::string why;
  Check(filter.Compile({pm::FilterRule{false, "argv", "*a*"}}, {1}, &why));
  pm::LineEvent any;
  const bool read = pm::ReadEventLine(text, size, any);
  if (filter.Keep(text, size)) Check(read && any.e.what != 0);
  return 0;
}
