#include "filter.h"

#include <cstring>

#include "wire.h"

namespace pm {
namespace {

struct KeyName {
  const char* name;
  uint8_t key;
};

// (In the order of EventFilter::Key.)
const KeyName kKeys[] = {{"event", 0}, {"user", 1}, {"uid", 2}, {"login_user", 3}, {"auid", 4},    {"comm", 5},
                         {"exe", 6},   {"argv", 7}, {"cwd", 8}, {"container", 9},  {"cgroup", 10}, {"failed", 11}};

bool Number(const std::string& s, uint32_t* out) {
  if (s.empty() || s.size() > 10) return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  if (v >= kNoId) return false;
  *out = static_cast<uint32_t>(v);
  return true;
}

// A value with nothing of a pattern in it: a container id or a cgroup path given plainly.
bool Plain(const std::string& s) {
  return s.find_first_of("*?[\\") == std::string::npos && !(s.size() >= 2 && s[0] == '/' && s.back() == '/');
}

bool AnyNumber(const std::vector<uint32_t>& ns, uint32_t n) {
  for (uint32_t x : ns) {
    if (x == n) return true;
  }
  return false;
}

// Text is matched as the event's line shows it (bytes that are not UTF-8 read as U+FFFD), so
// that a filter run on the lines (line_filter.h) keeps the same events.
bool AnyPattern(const std::vector<Pattern>& ps, const std::string& text) {
  if (!ValidUtf8(text.data(), text.size())) return AnyPattern(ps, ShownUtf8(text.data(), text.size()));
  for (const Pattern& p : ps) {
    if (p.Match(text)) return true;
  }
  return false;
}

}  // namespace

bool EventFilter::Compile(const std::vector<FilterRule>& rules, std::string* error) {
  match_.clear();
  exclude_.clear();
  for (const FilterRule& r : rules) {
    if (!Add(r, error)) {
      match_.clear();
      exclude_.clear();
      return false;
    }
  }
  return true;
}

bool EventFilter::Add(const FilterRule& r, std::string* error) {
  const std::string where = std::string(r.exclude ? "exclude " : "match ") + r.key + "=" + r.value + ": ";
  int key = -1;
  for (const KeyName& k : kKeys) {
    if (r.key == k.name) key = k.key;
  }
  if (key < 0) {
    *error = where + "unknown key (event, user, uid, login_user, auid, comm, exe, argv, cwd, container, cgroup, failed)";
    return false;
  }
  std::vector<Term>& side = r.exclude ? exclude_ : match_;
  Term* t = nullptr;
  for (Term& x : side) {
    if (x.key == key) t = &x;  // OR within a key
  }
  if (t == nullptr) {
    side.push_back(Term());
    t = &side.back();
    t->key = static_cast<Key>(key);
  }
  switch (t->key) {
    case kEvent: {
      uint32_t kind = KindNamed(r.value);
      if (kind == 0 || kind == kLost)
        return *error = where + "not an event kind (fork, exec, exit, uid, gid, sid, ptrace, comm, coredump)", false;
      t->kinds |= kind;
      return true;
    }
    case kUid:
    case kAuid: {
      uint32_t n = 0;
      if (!Number(r.value, &n)) return *error = where + "not a uid (0 to 4294967294)", false;
      t->numbers.push_back(n);
      return true;
    }
    case kFailed:
      if (r.value != "true" && r.value != "false") return *error = where + "must be true or false", false;
      if (t->failed >= 0 && t->failed != (r.value == "true")) t->failed = 2;  // either: any exit
      if (t->failed < 0) t->failed = r.value == "true";
      return true;
    default:
      break;
  }
  Pattern p;
  std::string why;
  if (!p.Compile(r.value, &why)) return *error = where + why, false;
  if ((t->key == kContainer || t->key == kCgroup) && Plain(r.value)) t->prefixes.push_back(r.value);
  t->patterns.push_back(std::move(p));
  return true;
}

bool EventFilter::Passes(const Term& t, const OutEvent& e) {
  switch (t.key) {
    case kEvent:
      return (t.kinds & e.what) != 0;
    case kUid:
      return !(e.missing & kMissUser) && !e.user.empty() && AnyNumber(t.numbers, e.uid);  // (empty: not known)
    case kAuid:
      return e.ctx.Has(kMissAuid) && e.ctx.auid != kNoId && AnyNumber(t.numbers, e.ctx.auid);
    case kUser:
      return !(e.missing & kMissUser) && !e.user.empty() && AnyPattern(t.patterns, e.user);
    case kLoginUser:
      return e.ctx.Has(kMissAuid) && e.ctx.auid != kNoId && AnyPattern(t.patterns, e.login_user);
    case kComm:
      return !(e.missing & kMissComm) && !e.comm.empty() && AnyPattern(t.patterns, e.comm);
    case kExe:
      return !e.exe.empty() && AnyPattern(t.patterns, e.exe);
    case kArgv:
      return !(e.missing & (kMissCmdline | kMissArgv)) && AnyPattern(t.patterns, e.cmdline);
    case kCwd:
      return e.have_cwd && AnyPattern(t.patterns, e.cwd);
    case kContainer:
    case kCgroup: {
      const std::string& raw = t.key == kContainer ? e.container_id : e.cgroup;
      if (raw.empty()) return false;
      std::string shown;  // (as the line shows it: see AnyPattern)
      const std::string& v = ValidUtf8(raw.data(), raw.size()) ? raw : (shown = ShownUtf8(raw.data(), raw.size()));
      for (const std::string& pre : t.prefixes) {
        // A container id by any prefix (docker ps shows 12 digits); a cgroup and those below it.
        if (v.compare(0, pre.size(), pre) == 0 &&
            (t.key == kContainer || v.size() == pre.size() || v[pre.size()] == '/' || pre.back() == '/')) {
          return true;
        }
      }
      return AnyPattern(t.patterns, v);
    }
    case kFailed: {
      if (e.what != kExit || e.thread) return false;
      bool failed = e.raw.a != 0;  // a non-zero status, or a signal
      return t.failed == 2 || failed == (t.failed == 1);
    }
  }
  return false;
}

bool EventFilter::All(const std::vector<Term>& terms, const OutEvent& e) {
  for (const Term& t : terms) {
    if (!Passes(t, e)) return false;
  }
  return true;
}

bool EventFilter::Admit(const OutEvent& e) const {
  if (e.what == kLost) return true;
  if (!All(match_, e)) return false;
  return exclude_.empty() || !All(exclude_, e);
}

}  // namespace pm
