#include "line_reader.h"

#include <climits>
#include <cstring>

#include "wire.h"
#include "wire_fields.h"

namespace pm {
namespace {

// The members a filter reads (the text ones first, in the order of Member's texts).
enum Field : uint8_t {
  kUser,
  kComm,
  kExe,
  kCmdline,
  kCwd,
  kCgroup,
  kContainerId,
  kLoginUser,
  kEvent,
  kThread,
  kMissing,
  kPid,  // the numbers, from here (pids first, in the order of Reader::pids)
  kChildPid,
  kChildTgid,
  kTgid,
  kParentPid,
  kPpid,
  kUid,
  kAuid,
  kExitCode,
  kOther
};

Field FieldNamed(const std::string& k) {
  struct Name {
    const char* text;
    size_t size;
  };
#define PM_NAME(s) \
  { s, sizeof(s) - 1 }
  static const Name kNames[] = {PM_NAME("user"),      PM_NAME("comm"),       PM_NAME("exe"),          PM_NAME("cmdline"),
                                PM_NAME("cwd"),       PM_NAME("cgroup"),     PM_NAME("container_id"), PM_NAME("login_user"),
                                PM_NAME("event"),     PM_NAME("thread"),     PM_NAME("missing"),      PM_NAME("pid"),
                                PM_NAME("child_pid"), PM_NAME("child_tgid"), PM_NAME("tgid"),         PM_NAME("parent_pid"),
                                PM_NAME("ppid"),      PM_NAME("uid"),        PM_NAME("auid"),         PM_NAME("exit_code")};
#undef PM_NAME
  static_assert(sizeof kNames / sizeof kNames[0] == kOther, "a name per field");
  for (uint8_t i = 0; i < kOther; i++) {
    if (k.size() == kNames[i].size && std::memcmp(k.data(), kNames[i].text, k.size()) == 0) return static_cast<Field>(i);
  }
  return kOther;
}

// The JSON grammar (RFC 8259) over one object, keeping some of its members.
class Reader {
 public:
  Reader(const char* p, size_t n) : p_(p), end_(p + n) {}

  int32_t pids[6] = {0, 0, 0, 0, 0, 0};  // pid, child_pid, child_tgid, tgid, parent_pid, ppid
  bool uid_seen = false;                 // a uid (not null)
  bool cmdline_seen = false;

  bool Line(LineEvent& out) {
    Ws();
    if (!Eat('{')) return false;
    Ws();
    if (!Eat('}')) {
      for (;;) {
        Ws();
        if (!String(&key_)) return false;
        Ws();
        if (!Eat(':')) return false;
        Ws();
        if (!Member(FieldNamed(key_), out)) return false;
        Ws();
        if (Eat('}')) break;
        if (!Eat(',')) return false;
      }
    }
    Ws();
    return p_ == end_;
  }

 private:
  bool Eat(char c) {
    if (p_ == end_ || *p_ != c) return false;
    p_++;
    return true;
  }
  void Ws() {
    while (p_ != end_ && (*p_ == ' ' || *p_ == '\t' || *p_ == '\n' || *p_ == '\r')) p_++;
  }
  bool Word(const char* w) {
    for (; *w; w++) {
      if (!Eat(*w)) return false;
    }
    return true;
  }

  // A member: the keys a filter reads are taken, the rest skipped.
  bool Member(Field f, LineEvent& out) {
    OutEvent& e = out.e;
    std::string* const texts[] = {&e.user, &e.comm, &e.exe, &e.cmdline, &e.cwd, &e.cgroup, &e.container_id, &e.login_user};
    const bool quoted = p_ != end_ && *p_ == '"';
    if (f <= kLoginUser && quoted) {
      if (!String(texts[f])) return false;
      if (f == kCwd) e.have_cwd = true;
      if (f == kCmdline) cmdline_seen = true;
      return true;
    }
    if (f == kEvent && quoted) {
      if (!String(&key_)) return false;
      e.what = KindNamed(key_);
      return true;
    }
    if (f == kThread && p_ != end_ && *p_ == 't') return e.thread = Word("true");
    if (f == kMissing && p_ != end_ && *p_ == '[') return Missing(e.missing);
    if (f < kPid || p_ == end_ || !(*p_ == '-' || (*p_ >= '0' && *p_ <= '9'))) return Skip(1);
    int64_t v = 0;
    bool integer = false;
    if (!Number(&v, &integer)) return false;
    if (!integer) return true;  // (not one of ours: the field tells nothing)
    const uint32_t id = v >= 0 && v < kNoId ? static_cast<uint32_t>(v) : kNoId;
    const int32_t pid = v > 0 && v <= INT32_MAX ? static_cast<int32_t>(v) : 0;
    if (f <= kPpid) pids[f - kPid] = pid;
    if (f == kUid) {
      e.uid = id;
      uid_seen = id != kNoId;
    }
    if (f == kAuid && id != kNoId) {
      e.ctx.auid = id;
      e.ctx.have |= kMissAuid;
    }
    if (f == kExitCode) e.raw.a = static_cast<uint32_t>(v);
    return true;
  }

  bool Missing(uint32_t& bits) {
    Eat('[');
    Ws();
    if (Eat(']')) return true;
    for (;;) {
      Ws();
      if (!String(&key_)) return false;
      bits |= MissingBit(key_);
      Ws();
      if (Eat(']')) return true;
      if (!Eat(',')) return false;
    }
  }

  // Any value, its contents not kept (depth: how deep it is nested).
  bool Skip(int depth) {
    if (depth > kMaxLineDepth || p_ == end_) return false;
    const char c = *p_;
    if (c == '"') return String(nullptr);
    if (c == 't') return Word("true");
    if (c == 'f') return Word("false");
    if (c == 'n') return Word("null");
    if (c == '-' || (c >= '0' && c <= '9')) {
      int64_t v = 0;
      bool integer = false;
      return Number(&v, &integer);
    }
    if (c != '[' && c != '{') return false;
    const bool object = c == '{';
    const char close = object ? '}' : ']';
    p_++;
    Ws();
    if (Eat(close)) return true;
    for (;;) {
      Ws();
      if (object) {
        if (!String(nullptr)) return false;
        Ws();
        if (!Eat(':')) return false;
        Ws();
      }
      if (!Skip(depth + 1)) return false;
      Ws();
      if (Eat(close)) return true;
      if (!Eat(',')) return false;
    }
  }

  // A number; *integer when it has no fraction or exponent and fits (then in *v).
  bool Number(int64_t* v, bool* integer) {
    const bool neg = Eat('-');
    if (p_ == end_ || *p_ < '0' || *p_ > '9') return false;
    bool fits = true;
    uint64_t u = 0;
    if (*p_ == '0') {
      p_++;
    } else {
      while (p_ != end_ && *p_ >= '0' && *p_ <= '9') {
        if (u > (static_cast<uint64_t>(INT64_MAX) - 9) / 10) fits = false;
        if (fits) u = u * 10 + static_cast<uint64_t>(*p_ - '0');
        p_++;
      }
    }
    bool whole = true;
    if (Eat('.')) {
      whole = false;
      if (!Digits()) return false;
    }
    if (p_ != end_ && (*p_ == 'e' || *p_ == 'E')) {
      whole = false;
      p_++;
      if (!Eat('+')) Eat('-');
      if (!Digits()) return false;
    }
    *integer = whole && fits;
    if (*integer) *v = neg ? -static_cast<int64_t>(u) : static_cast<int64_t>(u);
    return true;
  }
  bool Digits() {
    const char* from = p_;
    while (p_ != end_ && *p_ >= '0' && *p_ <= '9') p_++;
    return p_ != from;
  }

  static int Hex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }
  bool Hex4(uint32_t* cp) {
    if (end_ - p_ < 4) return false;
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
      int h = Hex(p_[i]);
      if (h < 0) return false;
      v = v << 4 | static_cast<uint32_t>(h);
    }
    p_ += 4;
    *cp = v;
    return true;
  }
  static void Utf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
      out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      out.push_back(static_cast<char>(0xc0 | cp >> 6));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
    } else if (cp < 0x10000) {
      out.push_back(static_cast<char>(0xe0 | cp >> 12));
      out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
    } else {
      out.push_back(static_cast<char>(0xf0 | cp >> 18));
      out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3f)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
    }
  }

  // A string, decoded into *out (nullptr: skipped). A lone surrogate becomes U+FFFD, as
  // JSON.parse then TextEncoder would make it.
  bool String(std::string* out) {
    if (!Eat('"')) return false;
    if (out) out->clear();
    for (;;) {
      // A run that needs no decoding, at once.
      const char* run = p_;
      while (p_ != end_ && *p_ != '"' && *p_ != '\\' && static_cast<unsigned char>(*p_) >= 0x20) p_++;
      if (out) out->append(run, static_cast<size_t>(p_ - run));
      if (p_ == end_) return false;
      const char c = *p_++;
      if (c == '"') return true;
      if (c != '\\') return false;  // (a control character)
      if (p_ == end_) return false;
      const char esc = *p_++;
      uint32_t cp = 0;
      switch (esc) {
        case '"':
        case '\\':
        case '/':
          cp = static_cast<unsigned char>(esc);
          break;
        case 'b':
          cp = '\b';
          break;
        case 'f':
          cp = '\f';
          break;
        case 'n':
          cp = '\n';
          break;
        case 'r':
          cp = '\r';
          break;
        case 't':
          cp = '\t';
          break;
        case 'u':
          if (!Hex4(&cp)) return false;
          if (cp >= 0xd800 && cp < 0xdc00) {
            uint32_t lo = 0;
            const char* save = p_;
            if (end_ - p_ >= 6 && p_[0] == '\\' && p_[1] == 'u' && (p_ += 2, Hex4(&lo)) && lo >= 0xdc00 && lo < 0xe000) {
              cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            } else {
              p_ = save;
              cp = 0xfffd;
            }
          } else if (cp >= 0xdc00 && cp < 0xe000) {
            cp = 0xfffd;
          }
          break;
        default:
          return false;
      }
      if (out) Utf8(*out, cp);
    }
  }

  const char* p_;
  const char* end_;
  std::string key_;  // (a member's key, an event name, a missing field's name)
};

// Empties `out` for the next line; its strings keep their capacity.
void Reset(LineEvent& out) {
  OutEvent& e = out.e;
  for (std::string* s : {&e.user, &e.comm, &e.exe, &e.cmdline, &e.cwd, &e.cgroup, &e.container_id, &e.login_user}) s->clear();
  e.what = 0;
  e.thread = false;
  e.uid = 0;
  e.missing = 0;
  e.have_cwd = false;
  e.ctx.auid = kNoId;
  e.ctx.have = 0;
  e.raw.a = 0;
  out.tgid = 0;
  out.parent_tgid = 0;
}

}  // namespace

bool ReadEventLine(const char* p, size_t n, LineEvent& out) {
  Reset(out);
  if (n > kMaxLineBytes) return false;
  Reader r(p, n);
  if (!r.Line(out)) return false;
  OutEvent& e = out.e;
  if (!r.uid_seen) e.missing |= kMissUser;         // (null, or none: who it is is not known)
  if (!r.cmdline_seen) e.missing |= kMissCmdline;  // (none: its command line is not known)
  if (e.what == kFork) {
    out.tgid = e.thread ? r.pids[2] : r.pids[1];
    out.parent_tgid = r.pids[4];
  } else {
    out.tgid = e.what == kExit && e.thread ? r.pids[3] : r.pids[0];
    out.parent_tgid = r.pids[5];  // (exec and exit: ppid)
  }
  return true;
}

}  // namespace pm
