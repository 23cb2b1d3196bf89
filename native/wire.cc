#include "wire.h"

#include <cmath>
#include <cstdio>
#include <ctime>

#include "wire_fields.h"

namespace pm {
namespace {

// Length of the UTF-8 sequence at p (at most n bytes), or, with *ok false, of its maximal
// invalid subpart (at least 1): the bytes one U+FFFD stands for (WHATWG decoding).
size_t Utf8Seq(const unsigned char* p, size_t n, bool* ok) {
  unsigned c = p[0];
  size_t need;
  unsigned lo = 0x80, hi = 0xbf;  // bounds of the second byte
  if (c >= 0xc2 && c <= 0xdf) {
    need = 1;
  } else if (c >= 0xe0 && c <= 0xef) {
    need = 2;
    if (c == 0xe0) lo = 0xa0;
    if (c == 0xed) hi = 0x9f;  // no surrogates
  } else if (c >= 0xf0 && c <= 0xf4) {
    need = 3;
    if (c == 0xf0) lo = 0x90;  // no overlong forms
    if (c == 0xf4) hi = 0x8f;  // nothing past U+10FFFF
  } else {
    *ok = false;
    return 1;
  }
  for (size_t i = 1; i <= need; i++) {
    if (i >= n || p[i] < lo || p[i] > hi) {
      *ok = false;
      return i;
    }
    lo = 0x80;
    hi = 0xbf;
  }
  *ok = true;
  return need + 1;
}

// Appends the UTF-8 sequence at p, or U+FFFD for its maximal invalid subpart; returns the
// bytes of p it stood for.
size_t AppendUtf8Seq(std::string& out, const unsigned char* p, size_t n) {
  bool ok;
  size_t len = Utf8Seq(p, n, &ok);
  if (ok) {
    out.append(reinterpret_cast<const char*>(p), len);
  } else {
    out += "\xef\xbf\xbd";  // U+FFFD
  }
  return len;
}

void AppendBase64(std::string& out, const std::string& s) {
  static const char kDigits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  out.push_back('"');
  size_t i = 0;
  for (; i + 2 < s.size(); i += 3) {
    uint32_t v = (uint32_t(uint8_t(s[i])) << 16) | (uint32_t(uint8_t(s[i + 1])) << 8) | uint8_t(s[i + 2]);
    out.push_back(kDigits[v >> 18]);
    out.push_back(kDigits[(v >> 12) & 63]);
    out.push_back(kDigits[(v >> 6) & 63]);
    out.push_back(kDigits[v & 63]);
  }
  if (i < s.size()) {
    uint32_t v = uint32_t(uint8_t(s[i])) << 16;
    if (i + 1 < s.size()) v |= uint32_t(uint8_t(s[i + 1])) << 8;
    out.push_back(kDigits[v >> 18]);
    out.push_back(kDigits[(v >> 12) & 63]);
    out.push_back(i + 1 < s.size() ? kDigits[(v >> 6) & 63] : '=');
    out.push_back('=');
  }
  out.push_back('"');
}

void AppendStrings(std::string& out, const char* key, const std::vector<std::string>& v, bool base64) {
  AppendKey(out, key);
  out.push_back('[');
  for (size_t i = 0; i < v.size(); i++) {
    if (i) out.push_back(',');
    if (base64) {
      AppendBase64(out, v[i]);
    } else {
      AppendJsonString(out, v[i]);
    }
  }
  out.push_back(']');
}

}  // namespace

const char* KindName(uint32_t what) {
  switch (what) {
    case kFork:
      return "fork";
    case kExec:
      return "exec";
    case kExit:
      return "exit";
    case kUid:
      return "uid";
    case kGid:
      return "gid";
    case kSid:
      return "sid";
    case kPtrace:
      return "ptrace";
    case kComm:
      return "comm";
    case kCoredump:
      return "coredump";
    case kNone:
      return "none";
    case kLost:
      return "lost";
    default:
      return "unknown";
  }
}

uint32_t KindNamed(const std::string& name) {
  for (uint32_t k : {uint32_t{kFork}, uint32_t{kExec}, uint32_t{kExit}, uint32_t{kUid}, uint32_t{kGid}, uint32_t{kSid}, uint32_t{kPtrace},
                     uint32_t{kComm}, uint32_t{kCoredump}, kLost}) {
    if (name == KindName(k)) return k;
  }
  return 0;
}

bool ValidUtf8(const char* s, size_t n) {
  const unsigned char* p = reinterpret_cast<const unsigned char*>(s);
  size_t i = 0;
  while (i < n) {
    if (p[i] < 0x80) {
      i++;
      continue;
    }
    bool ok;
    i += Utf8Seq(p + i, n - i, &ok);
    if (!ok) return false;
  }
  return true;
}

std::string ShownUtf8(const char* s, size_t n) {
  const unsigned char* p = reinterpret_cast<const unsigned char*>(s);
  std::string out;
  out.reserve(n);
  size_t i = 0;
  while (i < n) {
    if (p[i] < 0x80) {
      out.push_back(s[i++]);
    } else {
      i += AppendUtf8Seq(out, p + i, n - i);
    }
  }
  return out;
}

void AppendJsonString(std::string& out, const char* s, size_t n) {
  const unsigned char* p = reinterpret_cast<const unsigned char*>(s);
  out.push_back('"');
  size_t i = 0;
  while (i < n) {
    // A run that needs nothing done goes in at once.
    size_t j = i;
    while (j < n && p[j] >= 0x20 && p[j] < 0x80 && p[j] != '"' && p[j] != '\\') j++;
    out.append(s + i, j - i);
    i = j;
    if (i >= n) break;
    unsigned c = p[i];
    if (c >= 0x80) {
      i += AppendUtf8Seq(out, p + i, n - i);
      continue;
    }
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default: {
        char buf[8];
        std::snprintf(buf, sizeof buf, "\\u%04x", c);
        out += buf;
      }
    }
    i++;
  }
  out.push_back('"');
}

std::string TimeText(double ms) {
  int64_t t = static_cast<int64_t>(ms);
  time_t secs = static_cast<time_t>(t / 1000);
  int msec = static_cast<int>(t % 1000);
  if (msec < 0) {
    msec += 1000;
    secs -= 1;
  }
  struct tm tm;
  gmtime_r(&secs, &tm);
  char buf[64];
  int n = std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                        tm.tm_min, tm.tm_sec, msec);
  return std::string(buf, static_cast<size_t>(n));
}

std::string SignalName(int sig) {
  static const char* const kNames[] = {nullptr,     "SIGHUP",  "SIGINT",    "SIGQUIT", "SIGILL",   "SIGTRAP", "SIGABRT", "SIGBUS",
                                       "SIGFPE",    "SIGKILL", "SIGUSR1",   "SIGSEGV", "SIGUSR2",  "SIGPIPE", "SIGALRM", "SIGTERM",
                                       "SIGSTKFLT", "SIGCHLD", "SIGCONT",   "SIGSTOP", "SIGTSTP",  "SIGTTIN", "SIGTTOU", "SIGURG",
                                       "SIGXCPU",   "SIGXFSZ", "SIGVTALRM", "SIGPROF", "SIGWINCH", "SIGIO",   "SIGPWR",  "SIGSYS"};
  if (sig > 0 && sig < static_cast<int>(sizeof kNames / sizeof kNames[0])) return kNames[sig];
  return "SIGRT" + std::to_string(sig);
}

void AppendEventLine(std::string& out, const OutEvent& e) {
  const RawEvent& r = e.raw;
  out += "{\"event\":\"";
  out += KindName(e.what);
  out.push_back('"');
  auto time = [&] {
    AppendKey(out, "time");
    out.push_back('"');
    out += TimeText(e.time_ms);
    out.push_back('"');
  };
  // uid is null where the user is not known, rather than 0 (root).
  auto uid = [&] {
    AppendKey(out, "uid");
    if (e.missing & kMissUser) {
      out += "null";
    } else {
      AppendUint(out, e.uid);
    }
  };
  auto num = [&](const char* key, int64_t v) {
    AppendKey(out, key);
    AppendInt(out, v);
  };
  switch (e.what) {
    case kFork:
      num("child_pid", e.pid);
      num("parent_pid", e.ppid);
      time();
      AppendStr(out, "user", e.user);
      uid();
      AppendStr(out, "comm", e.comm);
      AppendStr(out, "cmdline", e.cmdline);
      AppendStr(out, "exe", e.exe);
      if (e.thread) {
        out += ",\"thread\":true";
        num("child_tgid", r.tgid);
      }
      break;
    case kExec: {
      num("pid", e.pid);
      AppendStr(out, "user", e.user);
      AppendStr(out, "cmdline", e.cmdline);
      time();
      num("ppid", e.ppid);
      uid();
      AppendStrings(out, "argv", e.argv, false);
      // A JS string cannot hold bytes that are not UTF-8: the exact bytes of every
      // argument then go along too, base64-encoded.
      bool exact = true;
      for (const std::string& a : e.argv) exact = exact && ValidUtf8(a.data(), a.size());
      if (!exact) AppendStrings(out, "argv_base64", e.argv, true);
      AppendStr(out, "comm", e.comm);
      AppendStr(out, "exe", e.exe);
      break;
    }
    case kExit: {
      uint32_t status = r.a;
      num("pid", e.pid);
      num("exit_code", status);
      AppendStr(out, "user", e.user);
      time();
      int sig = status & 0x7f;
      if (sig == 0) {
        num("code", (status >> 8) & 0xff);
        out += ",\"signal\":null";
      } else {
        out += ",\"code\":null";
        AppendStr(out, "signal", SignalName(sig));
      }
      out += (status & 0x80) ? ",\"core\":true" : ",\"core\":false";
      AppendStr(out, "comm", e.comm);
      AppendStr(out, "cmdline", e.cmdline);
      AppendStr(out, "exe", e.exe);
      num("ppid", e.ppid);
      uid();
      AppendKey(out, "duration_ms");
      if (e.duration_ms >= 0) {
        AppendMs(out, e.duration_ms);
      } else {
        out += "null";
      }
      if (e.thread) {
        out += ",\"thread\":true";
        num("tgid", r.tgid);
      }
      if (e.cost.source != kCostNone) AppendCost(out, e.cost);
      break;
    }
    case kUid:
    case kGid:
      num("pid", e.pid);
      time();
      num(e.what == kUid ? "ruid" : "rgid", r.a);
      num(e.what == kUid ? "euid" : "egid", r.b);
      break;
    case kSid:
      num("pid", e.pid);
      time();
      break;
    case kPtrace:
      num("pid", e.pid);
      time();
      num("tracer_pid", r.ptgid);
      num("tracer_tid", r.ppid);
      out += r.ptgid != 0 ? ",\"attach\":true" : ",\"attach\":false";
      break;
    case kComm:
      num("pid", e.pid);
      time();
      AppendStr(out, "comm", e.comm);
      break;
    case kCoredump:
      num("pid", e.pid);
      time();
      if (r.has_parent) num("parent_pid", r.ptgid);
      break;
    case kLost:
      time();
      AppendKey(out, "count");
      AppendUint(out, e.lost_count);
      AppendStr(out, "source", e.lost_source == kLostQueue ? "queue" : "kernel");
      break;
    default:
      break;
  }
  if (e.what != kFork && e.what != kExec && e.what != kExit && e.what != kLost) {
    // Who the process is and what it runs, as for the others.
    AppendStr(out, "user", e.user);
    uid();
    if (e.what != kComm) AppendStr(out, "comm", e.comm);
    AppendStr(out, "cmdline", e.cmdline);
    AppendStr(out, "exe", e.exe);
  }
  if (e.thread && e.what != kFork && e.what != kExit) {
    out += ",\"thread\":true";
    num("tid", r.pid);
  }
  if (e.what != kLost) AppendIdentity(out, e);
  if (e.missing) AppendMissing(out, e.missing);
  out += "}\n";
}

void AppendBatch(std::string& text, std::vector<int32_t>& meta, const std::vector<OutEvent>& events) {
  for (const OutEvent& e : events) {
    AppendEventLine(text, e);
    meta.push_back(static_cast<int32_t>(text.size()));
    meta.push_back(static_cast<int32_t>(e.what));
    bool user = e.what != kLost && !(e.missing & kMissUser);
    meta.push_back(user ? static_cast<int32_t>(e.uid & 0x7fffffffu) : -1);
  }
}

}  // namespace pm
