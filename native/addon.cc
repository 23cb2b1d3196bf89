// Node-API binding: the Connector class (one Monitor each) and the pure parse() for tests.
// No C++ exceptions cross the boundary (NAPI_DISABLE_CPP_EXCEPTIONS): errors are thrown
// as JS errors and every method returns right after.
#include <napi.h>

#include <cstdio>
#include <ctime>
#include <memory>
#include <vector>

#include "monitor.h"
#include "parser.h"

namespace {

using pm::OutEvent;

const char* KindName(uint32_t what) {
  switch (what) {
    case pm::kFork: return "fork";
    case pm::kExec: return "exec";
    case pm::kExit: return "exit";
    case pm::kUid: return "uid";
    case pm::kGid: return "gid";
    case pm::kSid: return "sid";
    case pm::kPtrace: return "ptrace";
    case pm::kComm: return "comm";
    case pm::kCoredump: return "coredump";
    case pm::kNone: return "none";
    case pm::kLost: return "lost";
    default: return "unknown";
  }
}

const char* SignalName(int sig) {
  static const char* const kNames[] = {
      nullptr,   "SIGHUP",  "SIGINT",    "SIGQUIT", "SIGILL",    "SIGTRAP", "SIGABRT",
      "SIGBUS",  "SIGFPE",  "SIGKILL",   "SIGUSR1", "SIGSEGV",   "SIGUSR2", "SIGPIPE",
      "SIGALRM", "SIGTERM", "SIGSTKFLT", "SIGCHLD", "SIGCONT",   "SIGSTOP", "SIGTSTP",
      "SIGTTIN", "SIGTTOU", "SIGURG",    "SIGXCPU", "SIGXFSZ",   "SIGVTALRM", "SIGPROF",
      "SIGWINCH", "SIGIO",  "SIGPWR",    "SIGSYS"};
  if (sig > 0 && sig < static_cast<int>(sizeof kNames / sizeof kNames[0])) return kNames[sig];
  return nullptr;
}

Napi::Value SignalValue(Napi::Env env, int sig) {
  const char* n = SignalName(sig);
  if (n) return Napi::String::New(env, n);
  char buf[24];
  std::snprintf(buf, sizeof buf, "SIGRT%d", sig);
  return Napi::String::New(env, buf);
}

Napi::String TimeString(Napi::Env env, double ms) {
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
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, msec);
  return Napi::String::New(env, buf);
}

// True if s is well-formed UTF-8 (no overlong forms, surrogates or code points past
// U+10FFFF): exactly the strings a JS string carries without replacement characters.
bool ValidUtf8(const std::string& s) {
  const unsigned char* p = reinterpret_cast<const unsigned char*>(s.data());
  const unsigned char* end = p + s.size();
  while (p < end) {
    unsigned c = *p;
    if (c < 0x80) {
      p++;
      continue;
    }
    size_t n;
    unsigned lo = 0x80, hi = 0xbf;  // bounds of the second byte
    if (c >= 0xc2 && c <= 0xdf) {
      n = 1;
    } else if (c >= 0xe0 && c <= 0xef) {
      n = 2;
      if (c == 0xe0) lo = 0xa0;
      if (c == 0xed) hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      n = 3;
      if (c == 0xf0) lo = 0x90;
      if (c == 0xf4) hi = 0x8f;
    } else {
      return false;
    }
    if (static_cast<size_t>(end - p) <= n) return false;
    if (p[1] < lo || p[1] > hi) return false;
    for (size_t i = 2; i <= n; i++) {
      if ((p[i] & 0xc0) != 0x80) return false;
    }
    p += n + 1;
  }
  return true;
}

std::string Base64(const std::string& s) {
  static const char kDigits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((s.size() + 2) / 3 * 4);
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
  return out;
}

Napi::Value Missing(Napi::Env env, uint32_t m) {
  static const char* const kNames[pm::kMissingNames] = {
      "argv", "cmdline", "comm", "exe", "user", "ppid", "duration_ms", "exec_id",
      "parent_exec_id", "ancestors", "cgroup"};
  Napi::Array a = Napi::Array::New(env);
  uint32_t n = 0;
  for (uint32_t i = 0; i < pm::kMissingNames; i++) {
    if (m & (1u << i)) a.Set(n++, Napi::String::New(env, kNames[i]));
  }
  return a;
}

// What identifies the process an event is about: its run, its parent's, where it runs,
// and (where asked for) its ancestors.
void SetIdentity(Napi::Env env, Napi::Object o, const OutEvent& e) {
  if (!e.exec_id.empty()) o.Set("exec_id", e.exec_id);
  if (!e.parent_exec_id.empty()) o.Set("parent_exec_id", e.parent_exec_id);
  if (e.with_cgroup && !(e.missing & pm::kMissCgroup)) {
    o.Set("cgroup", e.cgroup);
    if (!e.container_id.empty()) o.Set("container_id", e.container_id);
  }
  if (e.learned) o.Set("learned", true);
  if (e.with_ancestors) {
    Napi::Array arr = Napi::Array::New(env, e.ancestors.size());
    for (size_t i = 0; i < e.ancestors.size(); i++) {
      const pm::Ancestor& an = e.ancestors[i];
      Napi::Object x = Napi::Object::New(env);
      x.Set("pid", an.pid);
      if (!an.exec_id.empty()) x.Set("exec_id", an.exec_id);
      x.Set("comm", an.comm);
      if (an.have_exe) x.Set("exe", an.exe);
      arr.Set(static_cast<uint32_t>(i), x);
    }
    o.Set("ancestors", arr);
  }
}

// A process of the table (snapshot(), ancestry()).
Napi::Object RecordToJs(Napi::Env env, const pm::ProcRecord& r) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("pid", r.pid);
  o.Set("ppid", r.ppid);
  if (!r.exec_id.empty()) o.Set("exec_id", r.exec_id);
  if (!r.parent_exec_id.empty()) o.Set("parent_exec_id", r.parent_exec_id);
  o.Set("comm", r.have_comm ? Napi::Value(Napi::String::New(env, r.comm)) : env.Null());
  o.Set("exe", r.have_exe ? Napi::Value(Napi::String::New(env, r.exe)) : env.Null());
  o.Set("cmdline", r.have_cmd ? Napi::Value(Napi::String::New(env, r.cmdline)) : env.Null());
  o.Set("user", r.have_uid ? Napi::Value(Napi::String::New(env, r.user)) : env.Null());
  o.Set("uid", r.have_uid ? Napi::Value(Napi::Number::New(env, r.uid)) : env.Null());
  o.Set("start_time", r.start_ms >= 0 ? Napi::Value(TimeString(env, r.start_ms)) : env.Null());
  o.Set("exec_time", r.exec_ms >= 0 ? Napi::Value(TimeString(env, r.exec_ms)) : env.Null());
  if (r.have_cgroup) {
    o.Set("cgroup", r.cgroup);
    if (!r.container_id.empty()) o.Set("container_id", r.container_id);
  }
  o.Set("threads", r.threads);
  o.Set("learned", r.learned);
  return o;
}

// Builds the event object with its fields in wire order ("event" first, seed fields next).
Napi::Object ToJs(Napi::Env env, const OutEvent& e) {
  Napi::Object o = Napi::Object::New(env);
  const pm::RawEvent& r = e.raw;
  o.Set("event", KindName(e.what));
  switch (e.what) {
    case pm::kFork:
      o.Set("child_pid", e.pid);
      o.Set("parent_pid", e.ppid);
      o.Set("time", TimeString(env, e.time_ms));
      o.Set("user", e.user);
      o.Set("uid", e.uid);
      o.Set("comm", e.comm);
      o.Set("cmdline", e.cmdline);
      if (e.thread) {
        o.Set("thread", true);
        o.Set("child_tgid", r.tgid);
      }
      break;
    case pm::kExec: {
      o.Set("pid", e.pid);
      o.Set("user", e.user);
      o.Set("cmdline", e.cmdline);
      o.Set("time", TimeString(env, e.time_ms));
      o.Set("ppid", e.ppid);
      o.Set("uid", e.uid);
      Napi::Array argv = Napi::Array::New(env, e.argv.size());
      for (size_t i = 0; i < e.argv.size(); i++) {
        argv.Set(static_cast<uint32_t>(i), Napi::String::New(env, e.argv[i]));
      }
      o.Set("argv", argv);
      // A JS string cannot hold bytes that are not UTF-8: the exact bytes of every
      // argument then go along too, base64-encoded.
      bool exact = true;
      for (const std::string& a : e.argv) exact = exact && ValidUtf8(a);
      if (!exact) {
        Napi::Array raw = Napi::Array::New(env, e.argv.size());
        for (size_t i = 0; i < e.argv.size(); i++) raw.Set(static_cast<uint32_t>(i), Base64(e.argv[i]));
        o.Set("argv_base64", raw);
      }
      o.Set("comm", e.comm);
      o.Set("exe", e.exe);
      break;
    }
    case pm::kExit: {
      uint32_t status = r.a;
      o.Set("pid", e.pid);
      o.Set("exit_code", status);
      o.Set("user", e.user);
      o.Set("time", TimeString(env, e.time_ms));
      int sig = status & 0x7f;
      if (sig == 0) {
        o.Set("code", (status >> 8) & 0xff);
        o.Set("signal", env.Null());
      } else {
        o.Set("code", env.Null());
        o.Set("signal", SignalValue(env, sig));
      }
      o.Set("core", (status & 0x80) != 0);
      o.Set("comm", e.comm);
      o.Set("cmdline", e.cmdline);
      o.Set("ppid", e.ppid);
      if (e.duration_ms >= 0) {
        o.Set("duration_ms", e.duration_ms);
      } else {
        o.Set("duration_ms", env.Null());
      }
      if (e.thread) {
        o.Set("thread", true);
        o.Set("tgid", r.tgid);
      }
      break;
    }
    case pm::kUid:
    case pm::kGid:
      o.Set("pid", e.pid);
      o.Set("time", TimeString(env, e.time_ms));
      o.Set(e.what == pm::kUid ? "ruid" : "rgid", r.a);
      o.Set(e.what == pm::kUid ? "euid" : "egid", r.b);
      break;
    case pm::kSid:
      o.Set("pid", e.pid);
      o.Set("time", TimeString(env, e.time_ms));
      break;
    case pm::kPtrace:
      o.Set("pid", e.pid);
      o.Set("time", TimeString(env, e.time_ms));
      o.Set("tracer_pid", r.ptgid);
      o.Set("tracer_tid", r.ppid);
      o.Set("attach", r.ptgid != 0);
      break;
    case pm::kComm:
      o.Set("pid", e.pid);
      o.Set("time", TimeString(env, e.time_ms));
      o.Set("comm", e.comm);
      break;
    case pm::kCoredump:
      o.Set("pid", e.pid);
      o.Set("time", TimeString(env, e.time_ms));
      if (r.has_parent) o.Set("parent_pid", r.ptgid);
      break;
    case pm::kLost:
      o.Set("time", TimeString(env, e.time_ms));
      o.Set("count", static_cast<double>(e.lost_count));
      o.Set("source", e.lost_source == pm::kLostQueue ? "queue" : "kernel");
      break;
    default:
      break;
  }
  if (e.thread && e.what != pm::kFork && e.what != pm::kExit) {
    o.Set("thread", true);
    o.Set("tid", r.pid);
  }
  if (e.what != pm::kLost) SetIdentity(env, o, e);
  if (e.missing) o.Set("missing", Missing(env, e.missing));
  return o;
}

class Connector;
struct Gate;
void CallJs(Napi::Env env, Napi::Function, Gate* gate, void*);
using Tsfn = Napi::TypedThreadSafeFunction<Gate, void, CallJs>;

// What the reader thread and the thread-safe function share with a Connector. It outlives
// both: the TSFN's finalizer holds a reference, so a TSFN closed by environment teardown
// before our cleanup hook runs (or finalized after the Connector was collected) never
// touches freed memory.
struct Gate {
  std::mutex mu;
  Tsfn tsfn;
  bool live = false;           // the reader thread may wake JS
  Connector* owner = nullptr;  // cleared when the Connector goes away (JS thread only)
};

void FinalizeTsfn(Napi::Env, std::shared_ptr<Gate>* ref, Gate*) {
  {
    std::lock_guard<std::mutex> lk((*ref)->mu);
    (*ref)->live = false;
    (*ref)->tsfn = Tsfn();
  }
  delete ref;
}

class Connector : public Napi::ObjectWrap<Connector> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "Connector",
                       {InstanceMethod<&Connector::Start>("start"),
                        InstanceMethod<&Connector::Stop>("stop"),
                        InstanceMethod<&Connector::Ref>("ref"),
                        InstanceMethod<&Connector::Unref>("unref"),
                        InstanceMethod<&Connector::GetStats>("stats"),
                        InstanceMethod<&Connector::Snapshot>("snapshot"),
                        InstanceMethod<&Connector::Ancestry>("ancestry"),
                        InstanceMethod<&Connector::InjectFault>("injectFault")});
  }

  // new Connector(onBatch: (events: object[]) => void)
  explicit Connector(const Napi::CallbackInfo& info)
      : Napi::ObjectWrap<Connector>(info), monitor_([this] { Notify(); }) {
    if (info.Length() < 1 || !info[0].IsFunction()) {
      Napi::TypeError::New(info.Env(), "Connector needs a callback").ThrowAsJavaScriptException();
      return;
    }
    callback_ = Napi::Persistent(info[0].As<Napi::Function>());
    gate_->owner = this;
    env_ = info.Env();
    napi_add_env_cleanup_hook(env_, &Connector::Cleanup, this);
    hooked_ = true;
  }

  ~Connector() override {
    Shutdown();
    gate_->owner = nullptr;
    if (hooked_) napi_remove_env_cleanup_hook(env_, &Connector::Cleanup, this);
  }

 private:
  static void Cleanup(void* arg) {
    Connector* self = static_cast<Connector*>(arg);
    self->hooked_ = false;
    self->Shutdown();
  }

  // Stops the thread and releases the thread-safe function without calling into JS.
  void Shutdown() {
    {
      std::lock_guard<std::mutex> lk(gate_->mu);
      gate_->live = false;  // the reader thread no longer wakes JS
    }
    monitor_.Stop();
    std::lock_guard<std::mutex> lk(gate_->mu);
    if (gate_->tsfn) {
      gate_->tsfn.Release();
      gate_->tsfn = Tsfn();
    }
  }

  void Notify() {
    std::lock_guard<std::mutex> lk(gate_->mu);
    if (gate_->live && gate_->tsfn) gate_->tsfn.NonBlockingCall();
  }

  Napi::Array TakeBatch(Napi::Env env) {
    batch_.clear();
    monitor_.Drain(batch_);
    Napi::Array arr = Napi::Array::New(env, batch_.size());
    for (size_t i = 0; i < batch_.size(); i++) arr.Set(static_cast<uint32_t>(i), ToJs(env, batch_[i]));
    batch_.clear();
    return arr;
  }

  friend void CallJs(Napi::Env env, Napi::Function, Gate* gate, void*);

  // False while the environment is being torn down (JS may not run then, and every
  // node-addon-api call that could run JS would fail fatally).
  static bool CanRunJs(napi_env env) {
    napi_value obj, v;
    if (napi_create_object(env, &obj) != napi_ok || napi_get_boolean(env, true, &v) != napi_ok) {
      return false;
    }
    return napi_set_named_property(env, obj, "probe", v) == napi_ok;
  }

  void Deliver(Napi::Env env) {
    Napi::HandleScope scope(env);
    if (!CanRunJs(env)) return;
    Napi::Array arr = TakeBatch(env);
    std::string fatal = monitor_.TakeFatal();
    if (arr.Length() == 0 && fatal.empty()) return;
    // Raw call: while the environment is being torn down JS cannot run and the call fails;
    // nothing may be thrown then. The JS callback makes a listener's exception uncaught
    // itself (Node-API only warns of one). The second argument says why the reader stopped
    // on its own, after the events it read before.
    napi_value argv[2] = {arr, fatal.empty() ? env.Undefined() : Napi::String::New(env, fatal)};
    napi_value result;
    napi_call_function(env, Value(), callback_.Value(), 2, argv, &result);
  }

  // injectFault(why): test hook; the reader stops as if reading had failed.
  Napi::Value InjectFault(const Napi::CallbackInfo& info) {
    monitor_.InjectFault(info.Length() > 0 && info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "");
    return info.Env().Undefined();
  }

  static bool Bool(Napi::Object o, const char* k, bool def) {
    Napi::Value v = o.Get(k);
    return v.IsBoolean() ? v.As<Napi::Boolean>().Value() : def;
  }
  static double Num(Napi::Object o, const char* k, double def) {
    Napi::Value v = o.Get(k);
    return v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : def;
  }

  // start({ events: number (mask), threads, rcvbuf, kernelFilter, queueMax, tableMax, ackTimeout })
  Napi::Value Start(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (monitor_.running()) return env.Undefined();
    pm::Options opts;
    if (info.Length() > 0 && info[0].IsObject()) {
      Napi::Object o = info[0].As<Napi::Object>();
      opts.events = static_cast<uint32_t>(Num(o, "events", opts.events));
      opts.threads = Bool(o, "threads", opts.threads);
      opts.rcvbuf = static_cast<int>(Num(o, "rcvbuf", opts.rcvbuf));
      opts.kernel_filter = Bool(o, "kernelFilter", opts.kernel_filter);
      opts.queue_max = static_cast<size_t>(Num(o, "queueMax", static_cast<double>(opts.queue_max)));
      opts.table_max = static_cast<size_t>(Num(o, "tableMax", static_cast<double>(opts.table_max)));
      opts.ack_timeout_ms = static_cast<int>(Num(o, "ackTimeout", opts.ack_timeout_ms));
      opts.nice = static_cast<int>(Num(o, "nice", opts.nice));
      opts.seed = Bool(o, "seed", opts.seed);
      opts.batch_interval_us = static_cast<int>(Num(o, "batchInterval", opts.batch_interval_us / 1000.0) * 1000);
      opts.ancestor_events = static_cast<uint32_t>(Num(o, "ancestorEvents", opts.ancestor_events));
      opts.ancestor_depth = static_cast<int>(Num(o, "ancestorDepth", opts.ancestor_depth));
      opts.cgroups = Bool(o, "cgroups", opts.cgroups);
    }
    {
      std::lock_guard<std::mutex> lk(gate_->mu);
      gate_->tsfn = Tsfn::New(env, "procmonitor", 0, 1, gate_.get(), FinalizeTsfn,
                              new std::shared_ptr<Gate>(gate_));
      if (!referenced_) gate_->tsfn.Unref(env);
      gate_->live = true;
    }
    pm::StartError err;
    bool ok = monitor_.Start(opts, &err);
    if (ok && !pinned_) {
      // A running connector is not garbage, whether or not JS still holds it (like a
      // listening server): its listeners must keep getting events.
      Napi::ObjectWrap<Connector>::Ref();
      pinned_ = true;
    }
    if (!ok) {
      Shutdown();
      Napi::Error e = Napi::Error::New(env, err.message);
      e.Set("code", err.code);
      e.ThrowAsJavaScriptException();
      return env.Undefined();
    }
    return env.Undefined();
  }

  // stop(): events that were still queued are returned, not lost.
  Napi::Value Stop(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    {
      std::lock_guard<std::mutex> lk(gate_->mu);
      gate_->live = false;
    }
    monitor_.Stop();
    Napi::Array rest = TakeBatch(env);
    Shutdown();
    if (pinned_) {
      pinned_ = false;
      Napi::ObjectWrap<Connector>::Unref();
    }
    return rest;
  }

  Napi::Value Ref(const Napi::CallbackInfo& info) {
    std::lock_guard<std::mutex> lk(gate_->mu);
    referenced_ = true;
    if (gate_->tsfn) gate_->tsfn.Ref(info.Env());
    return info.Env().Undefined();
  }

  Napi::Value Unref(const Napi::CallbackInfo& info) {
    std::lock_guard<std::mutex> lk(gate_->mu);
    referenced_ = false;
    if (gate_->tsfn) gate_->tsfn.Unref(info.Env());
    return info.Env().Undefined();
  }

  Napi::Value GetStats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    pm::Stats s = monitor_.GetStats();
    Napi::Object o = Napi::Object::New(env);
    o.Set("received", static_cast<double>(s.received));
    o.Set("delivered", static_cast<double>(s.delivered));
    o.Set("lostKernel", static_cast<double>(s.lost_kernel));
    o.Set("lostQueue", static_cast<double>(s.lost_queue));
    o.Set("enobufs", static_cast<double>(s.enobufs));
    o.Set("malformed", static_cast<double>(s.malformed));
    o.Set("tableSize", static_cast<double>(s.table_size));
    o.Set("tableFull", static_cast<double>(s.table_full));
    o.Set("rcvbuf", s.rcvbuf);
    o.Set("rcvbufForced", s.rcvbuf_forced);
    o.Set("kernelFilter", s.kernel_filter);
    o.Set("nice", s.nice);
    return o;
  }

  // snapshot(): every process of the live table.
  Napi::Value Snapshot(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::vector<pm::ProcRecord> recs;
    monitor_.Snapshot(recs);
    Napi::Array arr = Napi::Array::New(env, recs.size());
    for (size_t i = 0; i < recs.size(); i++) arr.Set(static_cast<uint32_t>(i), RecordToJs(env, recs[i]));
    return arr;
  }

  // ancestry(pid): the process and its ancestors, nearest first; null if pid is unknown.
  Napi::Value Ancestry(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsNumber()) {
      Napi::TypeError::New(env, "ancestry(pid) needs a pid").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    std::vector<pm::ProcRecord> recs;
    if (!monitor_.Ancestry(info[0].As<Napi::Number>().Int32Value(), recs)) return env.Null();
    Napi::Array arr = Napi::Array::New(env, recs.size());
    for (size_t i = 0; i < recs.size(); i++) arr.Set(static_cast<uint32_t>(i), RecordToJs(env, recs[i]));
    return arr;
  }

  std::shared_ptr<Gate> gate_ = std::make_shared<Gate>();  // declared first: outlives monitor_
  pm::Monitor monitor_;
  Napi::FunctionReference callback_;
  napi_env env_ = nullptr;
  bool hooked_ = false;
  bool pinned_ = false;  // a strong reference to the wrapper while running
  bool referenced_ = true;
  std::vector<OutEvent> batch_;
};

// Runs on the JS thread for each wake-up of the reader thread: one call carries every
// event queued since the last one.
void CallJs(Napi::Env env, Napi::Function, Gate* gate, void*) {
  if (env == nullptr || gate == nullptr || gate->owner == nullptr) return;
  gate->owner->Deliver(env);
}

// parse(buf: Buffer): the raw events in one datagram, for tests and fuzzing from JS.
Napi::Value Parse(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsBuffer()) {
    Napi::TypeError::New(env, "parse(buffer) needs a Buffer").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Buffer<uint8_t> b = info[0].As<Napi::Buffer<uint8_t>>();
  std::vector<pm::RawEvent> evs;
  pm::ParseStats st;
  pm::ParseDatagram(b.Data(), b.Length(), evs, st);
  Napi::Array arr = Napi::Array::New(env, evs.size());
  for (size_t i = 0; i < evs.size(); i++) {
    const pm::RawEvent& r = evs[i];
    Napi::Object o = Napi::Object::New(env);
    o.Set("what", KindName(r.what));
    o.Set("cpu", r.cpu);
    o.Set("timestampNs", Napi::BigInt::New(env, static_cast<uint64_t>(r.ts_ns)));
    o.Set("seq", r.seq);
    o.Set("ack", r.ack);
    o.Set("pid", r.pid);
    o.Set("tgid", r.tgid);
    o.Set("ppid", r.ppid);
    o.Set("ptgid", r.ptgid);
    o.Set("a", r.a);
    o.Set("b", r.b);
    o.Set("hasParent", r.has_parent);
    o.Set("comm", r.comm);
    arr.Set(static_cast<uint32_t>(i), o);
  }
  Napi::Object res = Napi::Object::New(env);
  res.Set("events", arr);
  Napi::Object s = Napi::Object::New(env);
  s.Set("messages", st.messages);
  s.Set("malformed", st.malformed);
  s.Set("foreign", st.foreign);
  s.Set("unknown", st.unknown);
  s.Set("errors", st.errors);
  s.Set("overrun", st.overrun);
  res.Set("stats", s);
  return res;
}

// buildRequest(op, withMask, mask, seq, portid): the subscription datagram, for tests.
Napi::Value BuildRequest(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 6) {
    Napi::TypeError::New(env, "buildRequest(op, withMask, mask, seq, ack, portid)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  uint8_t buf[64];
  size_t n = pm::BuildMcastRequest(buf, sizeof buf, info[0].ToNumber().Uint32Value(),
                                   info[1].ToBoolean().Value(), info[2].ToNumber().Uint32Value(),
                                   info[3].ToNumber().Uint32Value(), info[4].ToNumber().Uint32Value(),
                                   info[5].ToNumber().Uint32Value());
  return Napi::Buffer<uint8_t>::Copy(env, buf, n);
}

// cgroup(text): the path picked out of /proc/PID/cgroup text and its container id, for tests.
Napi::Value Cgroup(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) {
    Napi::TypeError::New(env, "cgroup(text) needs a string").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  std::string text = info[0].As<Napi::String>().Utf8Value();
  std::string path;
  if (!pm::ParseCgroup(text.data(), text.size(), path)) return env.Null();
  Napi::Object o = Napi::Object::New(env);
  o.Set("cgroup", path);
  std::string id = pm::ContainerIdOf(path);
  o.Set("container_id", id.empty() ? env.Null() : Napi::Value(Napi::String::New(env, id)));
  return o;
}

class Addon : public Napi::Addon<Addon> {
 public:
  Addon(Napi::Env env, Napi::Object exports) {
    DefineAddon(exports, {InstanceValue("Connector", Connector::Init(env), napi_enumerable),
                          InstanceMethod<&Addon::ParseM>("parse", napi_enumerable),
                          InstanceMethod<&Addon::BuildM>("buildRequest", napi_enumerable),
                          InstanceMethod<&Addon::CgroupM>("cgroup", napi_enumerable)});
  }

 private:
  Napi::Value ParseM(const Napi::CallbackInfo& info) { return Parse(info); }
  Napi::Value BuildM(const Napi::CallbackInfo& info) { return BuildRequest(info); }
  Napi::Value CgroupM(const Napi::CallbackInfo& info) { return Cgroup(info); }
};

}  // namespace

NODE_API_ADDON(Addon)
