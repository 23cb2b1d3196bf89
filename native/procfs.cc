#include "procfs.h"

#include <dirent.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace pm {
namespace {

// Value of "Key:\t..." in status text, or nullptr.
const char* Field(const char* text, size_t len, const char* key, size_t* vlen) {
  size_t klen = std::strlen(key);
  const char* p = text;
  const char* end = text + len;
  while (p < end) {
    const char* nl = static_cast<const char*>(memchr(p, '\n', end - p));
    const char* le = nl ? nl : end;
    if (static_cast<size_t>(le - p) > klen && std::memcmp(p, key, klen) == 0 && p[klen] == ':') {
      const char* v = p + klen + 1;
      while (v < le && (*v == '\t' || *v == ' ')) v++;
      *vlen = le - v;
      return v;
    }
    if (nl == nullptr) break;  // never step past the end
    p = nl + 1;
  }
  return nullptr;
}

// status escapes '\n' as "\\n" and '\\' as "\\\\" in Name.
std::string Unescape(const char* v, size_t n) {
  std::string s;
  s.reserve(n);
  for (size_t i = 0; i < n; i++) {
    if (v[i] == '\\' && i + 1 < n) {
      if (v[i + 1] == 'n') {
        s.push_back('\n');
        i++;
        continue;
      }
      if (v[i + 1] == '\\') {
        s.push_back('\\');
        i++;
        continue;
      }
    }
    s.push_back(v[i]);
  }
  return s;
}

}  // namespace

bool ParseStatus(const char* text, size_t len, ProcInfo& out) {
  size_t n = 0;
  const char* v = Field(text, len, "Name", &n);
  if (v == nullptr) return false;
  out.comm = Unescape(v, n);
  v = Field(text, len, "PPid", &n);
  if (v == nullptr) return false;
  out.ppid = static_cast<int32_t>(std::strtol(std::string(v, n).c_str(), nullptr, 10));
  v = Field(text, len, "Uid", &n);
  if (v == nullptr) return false;
  std::string ids(v, n);
  char* rest = nullptr;
  out.uid = static_cast<uint32_t>(std::strtoul(ids.c_str(), &rest, 10));
  out.euid = static_cast<uint32_t>(std::strtoul(rest, nullptr, 10));
  if (ParseNspid(text, len, &out.ctx.nspid)) out.ctx.have |= kMissNspid;
  out.have_status = true;
  return true;
}

bool ReadArgv(int32_t pid, ProcInfo& out) {
  std::string buf;
  ssize_t n = out.dir.Read(pid, "cmdline", buf, 1 << 20);
  if (n < 0) {
    out.gone = errno == ENOENT || errno == ESRCH;
    return false;
  }
  // A process that has exited but not been reaped (a zombie) reads as empty: that is
  // "no argv", not an empty argv.
  if (n > 0) {
    out.argv.clear();
    size_t start = 0;
    for (size_t i = 0; i < buf.size(); i++) {
      if (buf[i] == '\0') {
        out.argv.emplace_back(buf, start, i - start);
        start = i + 1;
      }
    }
    if (start < buf.size()) out.argv.emplace_back(buf, start, buf.size() - start);
    out.have_argv = true;
  }
  return true;
}

void ReadExe(int32_t pid, ProcInfo& out) {
  out.have_exe = out.dir.Link(pid, "exe", out.exe);
  if (!out.have_exe) out.exe_errno = errno;
}

void ReadCwd(int32_t pid, ProcInfo& out) { out.have_cwd = out.dir.Link(pid, "cwd", out.cwd); }

bool ReadStatus(int32_t pid, ProcInfo& out) {
  std::string buf;
  ssize_t n = out.dir.Read(pid, "status", buf, 1 << 16);
  return n > 0 && ParseStatus(buf.data(), buf.size(), out);
}

bool ReadComm(int32_t pid, ProcInfo& out) {
  std::string buf;
  if (out.dir.Read(pid, "comm", buf, 64) <= 0) return false;
  if (!buf.empty() && buf.back() == '\n') buf.pop_back();
  out.comm = buf;
  out.have_comm = true;
  return true;
}

bool ReadProc(int32_t pid, const Options& o, ProcInfo& out) {
  if (!ReadArgv(pid, out)) return false;
  ReadExe(pid, out);
  if (o.cwd) ReadCwd(pid, out);
  ReadContext(pid, o.context, o.env, out.dir, out.ctx);
  ReadStatus(pid, out);
  return out.have_status || out.have_argv;
}

// Field `want` (1-based, as in proc(5)) of /proc/PID/stat: comm may hold anything, so fields
// count from the last ')'. Numbers only; false if absent or not a number.
bool ParseStatField(const char* text, size_t len, int want, uint64_t* out) {
  const char* end = text + len;
  const char* p = nullptr;
  for (const char* q = text; q < end; q++) {
    if (*q == ')') p = q;
  }
  if (p == nullptr || want < 3) return false;
  p++;
  int field = 2;  // after ')' come fields 3, 4, ...
  while (p < end && field < want) {
    if (*p == ' ') field++;
    p++;
  }
  if (field != want || p >= end || *p < '0' || *p > '9') return false;
  uint64_t v = 0;
  int digits = 0;
  while (p < end && *p >= '0' && *p <= '9' && digits++ < 19) v = v * 10 + static_cast<uint64_t>(*p++ - '0');
  *out = v;
  return true;
}

namespace {

// The number after "Key:" in /proc/PID/status or "key: " in /proc/PID/io, at a line start.
bool KeyNumber(const char* text, size_t len, const char* key, uint64_t* out) {
  size_t k = std::strlen(key);
  for (size_t i = 0; i + k < len; i++) {
    if ((i == 0 || text[i - 1] == '\n') && std::memcmp(text + i, key, k) == 0 && text[i + k] == ':') {
      size_t j = i + k + 1;
      while (j < len && (text[j] == ' ' || text[j] == '\t')) j++;
      if (j >= len || text[j] < '0' || text[j] > '9') return false;
      uint64_t v = 0;
      int digits = 0;
      while (j < len && text[j] >= '0' && text[j] <= '9' && digits++ < 19) v = v * 10 + static_cast<uint64_t>(text[j++] - '0');
      *out = v;
      return true;
    }
  }
  return false;
}

}  // namespace

bool ParseStatStart(const char* text, size_t len, uint64_t* ticks) { return ParseStatField(text, len, 22, ticks); }

bool ParseStatPpid(const char* text, size_t len, int32_t* ppid) {
  uint64_t v = 0;
  if (!ParseStatField(text, len, 4, &v) || v > INT32_MAX) return false;
  *ppid = static_cast<int32_t>(v);
  return true;
}

bool ParseCostStat(const char* text, size_t len, long hz, Cost& out) {
  // Only a zombie is the process that exited: anything else under its pid is another one.
  const char* close = nullptr;
  for (const char* q = text; q < text + len; q++) {
    if (*q == ')') close = q;
  }
  if (close == nullptr || close + 2 >= text + len || close[2] != 'Z' || hz <= 0) return false;
  uint64_t ticks = 0;
  const uint64_t us_per_tick = 1000000ull / static_cast<uint64_t>(hz);
  if (ParseStatField(text, len, 14, &ticks)) out.Set(kCostUser, ticks * us_per_tick);
  if (ParseStatField(text, len, 15, &ticks)) out.Set(kCostSystem, ticks * us_per_tick);
  return true;
}

void ParseCostStatus(const char* text, size_t len, Cost& out) {
  uint64_t v = 0;
  if (KeyNumber(text, len, "VmHWM", &v)) out.Set(kCostMaxRss, v);  // gone with the mm
  if (KeyNumber(text, len, "voluntary_ctxt_switches", &v)) out.Set(kCostVoluntary, v);
  if (KeyNumber(text, len, "nonvoluntary_ctxt_switches", &v)) out.Set(kCostInvoluntary, v);
}

void ParseCostIo(const char* text, size_t len, Cost& out) {
  uint64_t v = 0;
  if (KeyNumber(text, len, "read_bytes", &v)) out.Set(kCostRead, v);
  if (KeyNumber(text, len, "write_bytes", &v)) out.Set(kCostWrite, v);
}

bool ReadCost(int32_t pid, Cost& out) {
  ProcDir dir;  // (every read is the zombie's, or fails once it is reaped)
  std::string buf;
  if (dir.Read(pid, "stat", buf, 1 << 14) <= 0 || !ParseCostStat(buf.data(), buf.size(), sysconf(_SC_CLK_TCK), out)) {
    return false;
  }
  if (dir.Read(pid, "status", buf, 1 << 16) > 0) ParseCostStatus(buf.data(), buf.size(), out);
  if (dir.Read(pid, "io", buf, 1 << 12) > 0) ParseCostIo(buf.data(), buf.size(), out);
  // Read last: still a zombie (not reaped while read), what was read above was its end.
  return dir.Read(pid, "stat", buf, 1 << 14) > 0 && ParseCostStat(buf.data(), buf.size(), sysconf(_SC_CLK_TCK), out);
}

uint64_t ReadStartNs(int32_t pid) {
  std::string buf;
  uint64_t ticks = 0;
  if (ReadProcFile(pid, "stat", buf, 1 << 14) <= 0 || !ParseStatStart(buf.data(), buf.size(), &ticks)) return 0;
  long hz = sysconf(_SC_CLK_TCK);
  return hz > 0 ? ticks * (1000000000ull / static_cast<uint64_t>(hz)) : 0;
}

bool ParseCgroup(const char* text, size_t len, std::string& out) {
  // Lines "ID:CONTROLLERS:PATH". Prefer "0::PATH" (v2), then "N:name=systemd:PATH".
  const char* p = text;
  const char* end = text + len;
  int best = 0;  // 3: v2, 2: systemd, 1: other
  while (p < end) {
    const char* nl = static_cast<const char*>(memchr(p, '\n', end - p));
    const char* le = nl ? nl : end;
    const char* c1 = static_cast<const char*>(memchr(p, ':', le - p));
    const char* c2 = c1 ? static_cast<const char*>(memchr(c1 + 1, ':', le - c1 - 1)) : nullptr;
    if (c2 != nullptr && c2 + 1 < le && c2[1] == '/') {
      int rank = 1;
      if (c1 - p == 1 && *p == '0' && c2 == c1 + 1) {
        rank = 3;
      } else if (static_cast<size_t>(c2 - c1 - 1) == 12 && std::memcmp(c1 + 1, "name=systemd", 12) == 0) {
        rank = 2;
      }
      if (rank > best) {
        best = rank;
        out.assign(c2 + 1, le);
      }
    }
    if (nl == nullptr) break;
    p = nl + 1;
  }
  return best > 0;
}

bool ReadCgroup(int32_t pid, std::string& out) {
  std::string buf;
  if (ReadProcFile(pid, "cgroup", buf, 1 << 16) <= 0) return false;
  return ParseCgroup(buf.data(), buf.size(), out);
}

namespace {
bool IsHex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }
bool StartsWith(const std::string& s, size_t at, const char* prefix) {
  size_t n = std::strlen(prefix);
  return s.compare(at, n, prefix) == 0;
}
}  // namespace

std::string ContainerIdOf(const std::string& cgroup) {
  // The last path component that is, or names, a 64-hex-digit id:
  //   docker-ID.scope, cri-containerd-ID.scope, crio-ID.scope, libpod-ID.scope (systemd)
  //   /docker/ID, /kubepods/.../podUID/ID, /libpod_parent/libpod-ID, /default/ID (cgroupfs)
  // Conmon's own scope (libpod-conmon-ID.scope) is Podman's monitor, not the container.
  static const char* const kPrefixes[] = {"docker-", "cri-containerd-", "crio-", "libpod-", "containerd-", ""};
  std::string found;
  size_t start = 0;
  while (start < cgroup.size()) {
    size_t slash = cgroup.find('/', start);
    size_t end = slash == std::string::npos ? cgroup.size() : slash;
    size_t len = end - start;
    if (len >= 64) {
      for (const char* prefix : kPrefixes) {
        size_t pl = std::strlen(prefix);
        if (!StartsWith(cgroup, start, prefix)) continue;
        size_t rest = len - pl;
        bool scope = rest == 70 && cgroup.compare(start + pl + 64, 6, ".scope") == 0;
        if (rest != 64 && !scope) continue;
        bool hex = true;
        for (size_t i = 0; i < 64 && hex; i++) hex = IsHex(cgroup[start + pl + i]);
        if (hex) {
          found = cgroup.substr(start + pl, 64);
          break;
        }
      }
    }
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  return found;
}

std::vector<int32_t> ListPids() {
  std::vector<int32_t> pids;
  DIR* d = opendir("/proc");
  if (d == nullptr) return pids;
  while (struct dirent* e = readdir(d)) {
    char* endp = nullptr;
    long v = std::strtol(e->d_name, &endp, 10);
    if (endp != e->d_name && *endp == '\0' && v > 0) pids.push_back(static_cast<int32_t>(v));
  }
  closedir(d);
  return pids;
}

std::vector<int32_t> SubtreeOf(const std::vector<int32_t>& roots, const std::vector<std::pair<int32_t, int32_t>>& parents) {
  using Pair = std::pair<int32_t, int32_t>;
  std::vector<int32_t> pids;    // every process, sorted: a pid's index marks it listed
  std::vector<Pair> by_parent;  // (ppid, pid), sorted: each process's children are a range
  for (const Pair& pp : parents) {
    pids.push_back(pp.first);
    by_parent.emplace_back(pp.second, pp.first);
  }
  std::sort(pids.begin(), pids.end());
  pids.erase(std::unique(pids.begin(), pids.end()), pids.end());
  std::sort(by_parent.begin(), by_parent.end());
  std::vector<char> listed(pids.size(), 0);
  std::vector<int32_t> out;
  auto add = [&](int32_t pid) {
    auto it = std::lower_bound(pids.begin(), pids.end(), pid);
    if (it == pids.end() || *it != pid || listed[it - pids.begin()]) return;
    listed[it - pids.begin()] = 1;
    out.push_back(pid);
  };
  for (int32_t r : roots) add(r);
  // Breadth first: each generation after its parents. Each pid once, whatever the parents
  // read at different moments say (a pid reused meanwhile could make a loop).
  for (size_t i = 0; i < out.size(); i++) {
    auto first = std::lower_bound(by_parent.begin(), by_parent.end(), Pair(out[i], INT32_MIN));
    for (auto it = first; it != by_parent.end() && it->first == out[i]; ++it) add(it->second);
  }
  return out;
}

std::vector<int32_t> ListSubtree(const std::vector<int32_t>& roots) {
  std::vector<std::pair<int32_t, int32_t>> parents;
  std::string buf;
  for (int32_t pid : ListPids()) {
    int32_t ppid = 0;
    if (ReadProcFile(pid, "stat", buf, 1 << 14) > 0 && ParseStatPpid(buf.data(), buf.size(), &ppid)) parents.emplace_back(pid, ppid);
  }
  return SubtreeOf(roots, parents);
}

std::string JoinArgv(const std::vector<std::string>& argv) {
  std::string s;
  for (size_t i = 0; i < argv.size(); i++) {
    if (i) s.push_back(' ');
    s += argv[i];
  }
  return s;
}

const std::string& UserCache::Name(uint32_t uid) {
  auto it = names_.find(uid);
  if (it != names_.end()) return it->second;
  // Bounded: a process whose login uid is unset may set it to any number, once.
  if (names_.size() >= kMax) names_.clear();
  struct passwd pw;
  struct passwd* res = nullptr;
  std::string buf(16384, '\0');
  std::string name;
  int rc;
  while ((rc = getpwuid_r(uid, &pw, &buf[0], buf.size(), &res)) == ERANGE && buf.size() < (1u << 20)) {
    buf.resize(buf.size() * 2);
  }
  if (rc == 0 && res != nullptr && res->pw_name != nullptr) {
    name = res->pw_name;
  } else {
    name = "unknown";
  }
  return names_.emplace(uid, std::move(name)).first->second;
}

std::string ProcReader::TtyName(uint32_t dev) {
  std::string name = TtyNameOf(dev);
  return name.empty() ? TtyNumberText(dev) : name;
}

bool SystemProcReader::Gone(int32_t pid) { return kill(pid, 0) < 0 && errno == ESRCH; }

}  // namespace pm
