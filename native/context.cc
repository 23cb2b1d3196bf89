#include "context.h"

#include <cstring>
#include <string>

#include "procfs.h"

namespace pm {
namespace {

constexpr size_t kEnvironMax = 1 << 20;  // read of /proc/PID/environ, bytes at most
constexpr size_t kEnvValueMax = 4096;    // a value reported, bytes at most
constexpr size_t kTtyNamesMax = 4096;    // terminals remembered at most

unsigned Major(uint32_t dev) { return (dev >> 8) & 0xfff; }
unsigned Minor(uint32_t dev) { return (dev & 0xff) | ((dev >> 12) & 0xfff00); }

// The name under /dev of the character device with this number, as the kernel's device model
// has it (/sys/dev/char/MAJOR:MINOR/uevent); "" if it has none.
std::string DevName(uint32_t dev) {
  std::string path = "/sys/dev/char/" + TtyNumberText(dev) + "/uevent";
  std::string buf;
  if (ReadKernelFile(path.c_str(), buf, 4096) <= 0) return std::string();
  return ParseDevName(buf.data(), buf.size());
}

}  // namespace

uint32_t ContextWanted(uint32_t groups, bool env) {
  uint32_t w = 0;
  if (groups & kCtxLogin) w |= kMissAuid | kMissSessionid;
  if (groups & kCtxTty) w |= kMissTty;
  if (groups & kCtxNs) w |= kMissPidns | kMissMntns | kMissNetns | kMissNspid;
  if (env) w |= kMissEnv;
  return w;
}

bool ParseId(const char* text, size_t len, uint32_t* out) {
  uint64_t v = 0;
  size_t i = 0;
  for (; i < len && text[i] >= '0' && text[i] <= '9'; i++) {
    v = v * 10 + static_cast<uint64_t>(text[i] - '0');
    if (v > 0xffffffffu) return false;
  }
  if (i == 0 || (i < len && text[i] != '\n')) return false;
  *out = static_cast<uint32_t>(v);
  return true;
}

bool ParseNsLink(const std::string& link, uint64_t* ino) {
  size_t open = link.find(":[");
  if (open == std::string::npos || link.size() < open + 4 || link.back() != ']') return false;
  uint64_t v = 0;
  for (size_t i = open + 2; i + 1 < link.size(); i++) {
    char c = link[i];
    if (c < '0' || c > '9' || v > (UINT64_MAX - 9) / 10) return false;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  *ino = v;
  return true;
}

bool ParseNspid(const char* text, size_t len, int32_t* nspid) {
  const char* end = text + len;
  for (const char* p = text; p < end;) {
    const char* nl = static_cast<const char*>(memchr(p, '\n', static_cast<size_t>(end - p)));
    const char* le = nl ? nl : end;
    if (le - p > 6 && std::memcmp(p, "NSpid:", 6) == 0) {
      int64_t last = -1, v = -1;
      for (const char* q = p + 6; q <= le; q++) {
        if (q < le && *q >= '0' && *q <= '9') {
          v = (v < 0 ? 0 : v) * 10 + (*q - '0');
          if (v > INT32_MAX) return false;
        } else if (q == le || *q == '\t' || *q == ' ') {
          if (v >= 0) last = v;
          v = -1;
        } else {
          return false;
        }
      }
      if (last < 0) return false;
      *nspid = static_cast<int32_t>(last);
      return true;
    }
    if (nl == nullptr) break;
    p = nl + 1;
  }
  return false;
}

bool ParseStatTty(const char* text, size_t len, uint32_t* dev) {
  uint64_t v = 0;
  if (!ParseStatField(text, len, 7, &v) || v > 0xffffffffu) return false;
  *dev = static_cast<uint32_t>(v);
  return true;
}

void ParseEnviron(const char* text, size_t len, const std::vector<std::string>& names,
                  std::vector<std::pair<std::string, std::string>>& out) {
  out.clear();
  std::vector<const char*> at(names.size(), nullptr);
  std::vector<size_t> vlen(names.size(), 0);
  // One hash lookup per entry, however many names: a crafted environment of many tiny entries
  // costs its length, not its length times the names.
  std::unordered_map<std::string, size_t> index;
  for (size_t j = 0; j < names.size(); j++) index.emplace(names[j], j);
  std::string name;
  for (size_t i = 0; i < len;) {
    const char* s = text + i;
    const char* z = static_cast<const char*>(memchr(s, '\0', len - i));
    size_t n = z ? static_cast<size_t>(z - s) : len - i;
    const char* eq = static_cast<const char*>(memchr(s, '=', n));
    if (eq != nullptr) {
      name.assign(s, static_cast<size_t>(eq - s));
      auto it = index.find(name);
      // The first definition is the one getenv() returns.
      if (it != index.end() && at[it->second] == nullptr) {
        at[it->second] = eq + 1;
        vlen[it->second] = n - name.size() - 1;
      }
    }
    i += n + 1;
  }
  for (size_t j = 0; j < names.size(); j++) {
    bool dup = false;
    for (size_t k = 0; k < j; k++) dup = dup || names[k] == names[j];
    if (at[j] != nullptr && !dup) out.emplace_back(names[j], std::string(at[j], vlen[j]));
  }
}

std::string TtyNameOf(uint32_t dev) {
  unsigned major = Major(dev), minor = Minor(dev);
  if (major >= 136 && major <= 143) return "pts/" + std::to_string((major - 136) * 256 + minor);
  if (major == 4 && minor < 64) return "tty" + std::to_string(minor);
  if (major == 4) return "ttyS" + std::to_string(minor - 64);
  if (major == 5 && minor == 1) return "console";
  return std::string();
}

std::string ParseDevName(const char* text, size_t len) {
  const char* end = text + len;
  for (const char* p = text; p < end;) {
    const char* nl = static_cast<const char*>(memchr(p, '\n', static_cast<size_t>(end - p)));
    const char* le = nl ? nl : end;
    if (le - p > 8 && std::memcmp(p, "DEVNAME=", 8) == 0) return std::string(p + 8, le);
    if (nl == nullptr) break;
    p = nl + 1;
  }
  return std::string();
}

std::string TtyNumberText(uint32_t dev) { return std::to_string(Major(dev)) + ":" + std::to_string(Minor(dev)); }

const std::string& TtyNames::Name(uint32_t dev) {
  auto it = names_.find(dev);
  if (it != names_.end()) return it->second;
  if (names_.size() >= kTtyNamesMax) names_.clear();
  std::string name = TtyNameOf(dev);
  if (name.empty()) name = DevName(dev);
  if (name.empty()) name = TtyNumberText(dev);
  return names_.emplace(dev, std::move(name)).first->second;
}

void ReadContext(int32_t pid, uint32_t groups, const std::vector<std::string>& env, ProcDir& dir, Context& ctx) {
  std::string buf;
  if (groups & kCtxLogin) {
    if (dir.Read(pid, "loginuid", buf, 32) > 0 && ParseId(buf.data(), buf.size(), &ctx.auid)) ctx.have |= kMissAuid;
    if (dir.Read(pid, "sessionid", buf, 32) > 0 && ParseId(buf.data(), buf.size(), &ctx.sessionid)) ctx.have |= kMissSessionid;
  }
  if (groups & kCtxTty) {
    if (dir.Read(pid, "stat", buf, 1 << 12) > 0 && ParseStatTty(buf.data(), buf.size(), &ctx.tty)) ctx.have |= kMissTty;
  }
  if (groups & kCtxNs) {
    static const char* const kLinks[3] = {"ns/pid", "ns/mnt", "ns/net"};
    uint64_t* const inos[3] = {&ctx.pidns, &ctx.mntns, &ctx.netns};
    const uint32_t bits[3] = {kMissPidns, kMissMntns, kMissNetns};
    for (int i = 0; i < 3; i++) {
      if (dir.Link(pid, kLinks[i], buf) && ParseNsLink(buf, inos[i])) ctx.have |= bits[i];
    }
  }
  if (!env.empty()) {
    // Not permitted (another user's, for a reader not root): -1. Empty: a zombie's (its
    // memory is gone; its cmdline reads empty too), or an empty environment (env -i).
    // Cut at the bound, or a value over kEnvValueMax: not known whole, so not reported (a
    // process orders its own environment: padding must not hide a variable).
    ssize_t n = dir.Read(pid, "environ", buf, kEnvironMax);
    std::string probe;
    if ((n > 0 && static_cast<size_t>(n) < kEnvironMax) || (n == 0 && dir.Read(pid, "cmdline", probe, 1) > 0)) {
      ParseEnviron(buf.data(), buf.size(), env, ctx.env);
      bool whole = true;
      for (const auto& kv : ctx.env) whole = whole && kv.second.size() <= kEnvValueMax;
      if (whole) {
        ctx.have |= kMissEnv;
      } else {
        ctx.env.clear();
      }
    }
  }
}

}  // namespace pm
