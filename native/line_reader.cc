#include "line_reader.h"

#include <climits>

#include "wire.h"
#include "wire_fields.h"

namespace pm {
namespace {

// The JSON grammar (RFC 8259) over one object, keeping some of its members.
class Reader {
 public:
  Reader(const char* p, size_t n) : p_(p), end_(p + n) {}

  int32_t pids[4] = {0, 0, 0, 0};  // pid, child_pid, child_tgid, tgid
  bool uid_seen = false;           // a uid (not null)

  bool Line(LineEvent& out) {
    Ws();
    if (!Eat('{')) return false;
    Ws();
    if (!Eat('}')) {
      for (;;) {
        std::string key;
        Ws();
        if (!String(&key)) return false;
        Ws();
        if (!Eat(':')) return false;
        Ws();
        if (!Member(key, out)) return false;
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
  bool Member(const std::string& key, LineEvent& out) {
    OutEvent& e = out.e;
    std::string* text = nullptr;
    if (key == "user") text = &e.user;
    if (key == "comm") text = &e.comm;
    if (key == "exe") text = &e.exe;
    if (key == "cmdline") text = &e.cmdline;
    if (key == "cwd") text = &e.cwd;
    if (key == "cgroup") text = &e.cgroup;
    if (key == "container_id") text = &e.container_id;
    if (key == "login_user") text = &e.login_user;
    if (text != nullptr && p_ != end_ && *p_ == '"') {
      if (!String(text)) return false;
      if (key == "cwd") e.have_cwd = true;
      if (key == "cmdline") e.missing &= ~kMissCmdline;
      return true;
    }
    if (key == "event" && p_ != end_ && *p_ == '"') {
      std::string name;
      if (!String(&name)) return false;
      e.what = KindNamed(name);
      return true;
    }
    if (key == "thread" && p_ != end_ && *p_ == 't') return e.thread = Word("true");
    if (key == "missing" && p_ != end_ && *p_ == '[') return Missing(e.missing);
    static const char* const kNumbers[] = {"pid", "child_pid", "child_tgid", "tgid", "parent_pid", "uid", "auid", "exit_code"};
    int which = -1;
    for (int i = 0; i < 8; i++) {
      if (key == kNumbers[i]) which = i;
    }
    if (which < 0 || p_ == end_ || !(*p_ == '-' || (*p_ >= '0' && *p_ <= '9'))) return Skip(1);
    int64_t v = 0;
    bool integer = false;
    if (!Number(&v, &integer)) return false;
    if (!integer) return true;  // (not one of ours: the field tells nothing)
    const uint32_t id = v >= 0 && v < kNoId ? static_cast<uint32_t>(v) : kNoId;
    const int32_t pid = v > 0 && v <= INT32_MAX ? static_cast<int32_t>(v) : 0;
    if (which < 4) pids[which] = pid;
    if (which == 4) out.parent_tgid = pid;
    if (which == 5) {
      e.uid = id;
      uid_seen = id != kNoId;
    }
    if (which == 6 && id != kNoId) {
      e.ctx.auid = id;
      e.ctx.have |= kMissAuid;
    }
    if (which == 7) e.raw.a = static_cast<uint32_t>(v);
    return true;
  }

  bool Missing(uint32_t& bits) {
    Eat('[');
    Ws();
    if (Eat(']')) return true;
    for (;;) {
      std::string name;
      Ws();
      if (!String(&name)) return false;
      bits |= MissingBit(name);
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
      if (p_ == end_) return false;
      const char c = *p_++;
      if (c == '"') return true;
      if (static_cast<unsigned char>(c) < 0x20) return false;
      if (c != '\\') {
        if (out) out->push_back(c);
        continue;
      }
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
};

}  // namespace

bool ReadEventLine(const char* p, size_t n, LineEvent& out) {
  out = LineEvent();
  if (n > kMaxLineBytes) return false;
  out.e.missing = kMissCmdline;  // (until the line shows one)
  Reader r(p, n);
  if (!r.Line(out)) return false;
  OutEvent& e = out.e;
  if (!r.uid_seen) e.missing |= kMissUser;  // (null, or none: who it is is not known)
  if (e.what == kFork) {
    out.tgid = e.thread ? r.pids[2] : r.pids[1];
  } else if (e.what == kExit && e.thread) {
    out.tgid = r.pids[3];
  } else {
    out.tgid = r.pids[0];
  }
  return true;
}

}  // namespace pm
