// Node-API binding: the Connector class (one Monitor each) and the pure parse() for tests.
// No C++ exceptions cross the boundary (NAPI_DISABLE_CPP_EXCEPTIONS): errors are thrown
// as JS errors and every method returns right after.
#include <napi.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <utility>
#include <vector>

#include "accounts.h"
#include "addon_journal.h"
#include "addon_lines.h"
#include "filter.h"
#include "monitor.h"
#include "parser.h"
#include "wire.h"
#include "wire_fields.h"

namespace {

using pm::OutEvent;

// What an entry point checks an argument with (Napi::Value::IsNumber, ...).
using ArgCheck = bool (Napi::Value::*)() const;

// True if the call has at least `count` arguments (and as many as `checks`), the first ones
// passing `checks` in order; else throws a TypeError saying `usage` and returns false, and
// the entry point returns at once.
bool RequireArgs(const Napi::CallbackInfo& info, const char* usage, std::initializer_list<ArgCheck> checks, size_t count = 0) {
  bool ok = info.Length() >= count && info.Length() >= checks.size();
  size_t i = 0;
  for (ArgCheck is : checks) ok = ok && (info[i++].*is)();
  if (!ok) Napi::TypeError::New(info.Env(), usage).ThrowAsJavaScriptException();
  return ok;
}

std::string Str(const Napi::Value& v) { return v.As<Napi::String>().Utf8Value(); }

// Number properties, in this order.
void SetNumbers(Napi::Object o, std::initializer_list<std::pair<const char*, double>> props) {
  for (const auto& p : props) o.Set(p.first, p.second);
}

// Processes of the table (snapshot(), ancestry()) as the JSON text of their array.
Napi::String RecordsToJs(Napi::Env env, const std::vector<pm::ProcRecord>& recs) {
  std::string text;
  pm::AppendRecords(text, recs);
  return Napi::String::New(env, text);
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
    return DefineClass(
        env, "Connector",
        {InstanceMethod<&Connector::Start>("start"), InstanceMethod<&Connector::Stop>("stop"), InstanceMethod<&Connector::Ref>("ref"),
         InstanceMethod<&Connector::Unref>("unref"), InstanceMethod<&Connector::GetStats>("stats"),
         InstanceMethod<&Connector::Snapshot>("snapshot"), InstanceMethod<&Connector::Ancestry>("ancestry"),
         InstanceMethod<&Connector::InjectFault>("injectFault"), InstanceMethod<&Connector::Flush>("flush")});
  }

  // new Connector(onBatch: (events: object[]) => void)
  explicit Connector(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Connector>(info), monitor_([this] { Notify(); }) {
    if (!RequireArgs(info, "Connector needs a callback", {&Napi::Value::IsFunction})) return;
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

  // The queued events as their NDJSON lines (one Buffer) and what routes them (pm::AppendBatch).
  struct Lines {
    Napi::Value buf;
    Napi::Value meta;
    size_t count = 0;
    bool ok = true;  // false: JS values could not be made (the environment is going away)
  };
  Lines TakeBatch(Napi::Env env) {
    batch_.clear();
    monitor_.Drain(batch_);
    text_.clear();
    meta_.clear();
    pm::AppendBatch(text_, meta_, batch_);
    Lines l;
    l.count = batch_.size();
    batch_.clear();
    // Raw calls: while a worker is being terminated they fail, and node-addon-api's own
    // would then abort the process making an error it cannot make either. Such a batch is
    // dropped with its environment.
    napi_value buf, ab, meta;
    void* data = nullptr;
    void* copied = nullptr;
    if (napi_create_buffer_copy(env, text_.size(), text_.data(), &copied, &buf) != napi_ok ||
        napi_create_arraybuffer(env, meta_.size() * sizeof(int32_t), &data, &ab) != napi_ok ||
        napi_create_typedarray(env, napi_int32_array, meta_.size(), ab, 0, &meta) != napi_ok) {
      l.count = 0;
      l.ok = false;
      l.buf = env.Undefined();
      l.meta = env.Undefined();
      return l;
    }
    if (!meta_.empty()) std::memcpy(data, meta_.data(), meta_.size() * sizeof(int32_t));
    l.buf = Napi::Value(env, buf);
    l.meta = Napi::Value(env, meta);
    return l;
  }

  friend void CallJs(Napi::Env env, Napi::Function, Gate* gate, void*);

  // False while the environment is being torn down (JS may not run then, and every
  // node-addon-api call that could run JS would fail fatally).
  static bool CanRunJs(napi_env env) {
    napi_value obj, v;
    return napi_create_object(env, &obj) == napi_ok && napi_get_boolean(env, true, &v) == napi_ok &&
           napi_set_named_property(env, obj, "probe", v) == napi_ok;
  }

  void Deliver(Napi::Env env) {
    Napi::HandleScope scope(env);
    if (!CanRunJs(env)) return;
    Lines l = TakeBatch(env);
    std::string fatal = monitor_.TakeFatal();
    if (!l.ok || (l.count == 0 && fatal.empty())) return;
    napi_value why = env.Undefined();
    if (!fatal.empty() && napi_create_string_utf8(env, fatal.data(), fatal.size(), &why) != napi_ok) return;
    // Raw call: while the environment is being torn down JS cannot run and the call fails;
    // nothing may be thrown then. The JS callback makes a listener's exception uncaught
    // itself (Node-API only warns of one). The last argument says why the reader stopped on
    // its own, after the events it read before.
    napi_value argv[3] = {l.buf, l.meta, why};
    napi_value result;
    napi_call_function(env, Value(), callback_.Value(), 3, argv, &result);
  }

  // flush(): the events queued so far, to the callback now rather than at the next wake-up.
  Napi::Value Flush(const Napi::CallbackInfo& info) {
    Deliver(info.Env());
    return info.Env().Undefined();
  }

  // injectFault(why): test hook; the reader stops as if reading had failed.
  Napi::Value InjectFault(const Napi::CallbackInfo& info) {
    monitor_.InjectFault(info.Length() > 0 && info[0].IsString() ? Str(info[0]) : "");
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
  // The first `max` items of the array o[k] (none if it is not one).
  static std::vector<Napi::Value> Items(Napi::Object o, const char* k, uint32_t max) {
    std::vector<Napi::Value> items;
    Napi::Value v = o.Get(k);
    for (uint32_t i = 0; v.IsArray() && i < v.As<Napi::Array>().Length() && i < max; i++) items.push_back(v.As<Napi::Array>().Get(i));
    return items;
  }

  // The strings among the first `max` items of o[k].
  static std::vector<std::string> Strs(Napi::Object o, const char* k, uint32_t max) {
    std::vector<std::string> out;
    for (Napi::Value v : Items(o, k, max)) {
      if (v.IsString()) out.push_back(Str(v));
    }
    return out;
  }

  // start(NativeStartOptions of lib/native.ts)
  Napi::Value Start(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (monitor_.running()) return env.Undefined();
    pm::Options opts;
    if (info.Length() > 0 && info[0].IsObject()) {
      Napi::Object o = info[0].As<Napi::Object>();
      opts.events = static_cast<uint32_t>(Num(o, "events", opts.events));
      opts.rcvbuf = static_cast<int>(Num(o, "rcvbuf", opts.rcvbuf));
      opts.queue_max = static_cast<size_t>(Num(o, "queueMax", static_cast<double>(opts.queue_max)));
      opts.table_max = static_cast<size_t>(Num(o, "tableMax", static_cast<double>(opts.table_max)));
      opts.ack_timeout_ms = static_cast<int>(Num(o, "ackTimeout", opts.ack_timeout_ms));
      opts.nice = static_cast<int>(Num(o, "nice", opts.nice));
      opts.batch_interval_us = static_cast<int>(Num(o, "batchInterval", opts.batch_interval_us / 1000.0) * 1000);
      opts.read_interval_us = static_cast<int>(Num(o, "readInterval", 0) * 1000);
      opts.ancestor_events = static_cast<uint32_t>(Num(o, "ancestorEvents", opts.ancestor_events));
      opts.ancestor_depth = static_cast<int>(Num(o, "ancestorDepth", opts.ancestor_depth));
      for (auto b : {std::pair<const char*, bool*>{"threads", &opts.threads},
                     {"kernelFilter", &opts.kernel_filter},
                     {"seed", &opts.seed},
                     {"cgroups", &opts.cgroups},
                     {"cwd", &opts.cwd},
                     {"redactDefaults", &opts.redact_defaults}}) {
        *b.second = Bool(o, b.first, *b.second);
      }
      opts.cost = static_cast<uint8_t>(Num(o, "cost", 0));                    // CostMode: 0 off, 1 taskstats else /proc, 2 /proc
      opts.context = static_cast<uint32_t>(Num(o, "context", opts.context));  // ContextGroup bits
      opts.env = Strs(o, "env", 64);
      opts.redact = Strs(o, "redact", 64);
      opts.redact_patterns = Strs(o, "redactPatterns", 64);
      std::vector<std::string> f = Strs(o, "filter", 3 * 1024);  // [side, key, value, side, ...]
      for (size_t i = 0; i + 2 < f.size(); i += 3) opts.filter.push_back({f[i] == "exclude", f[i + 1], f[i + 2]});
      for (Napi::Value v : Items(o, "subtree", 1024)) {
        if (v.IsNumber()) opts.subtree.push_back(v.As<Napi::Number>().Int32Value());
      }
    }
    {
      std::lock_guard<std::mutex> lk(gate_->mu);
      gate_->tsfn = Tsfn::New(env, "procmonitor", 0, 1, gate_.get(), FinalizeTsfn, new std::shared_ptr<Gate>(gate_));
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
    }
    return env.Undefined();
  }

  // stop(): events that were still queued are returned ([buf, meta] as for the callback), not lost.
  Napi::Value Stop(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    {
      std::lock_guard<std::mutex> lk(gate_->mu);
      gate_->live = false;
    }
    monitor_.Stop();
    Lines l = TakeBatch(env);
    Napi::Array rest = Napi::Array::New(env, 2);
    rest.Set(0u, l.buf);
    rest.Set(1u, l.meta);
    Shutdown();
    if (pinned_) {
      pinned_ = false;
      Napi::ObjectWrap<Connector>::Unref();
    }
    return rest;
  }

  Napi::Value Ref(const Napi::CallbackInfo& info) { return Reference(info.Env(), true); }
  Napi::Value Unref(const Napi::CallbackInfo& info) { return Reference(info.Env(), false); }
  // Whether the thread-safe function keeps the event loop alive (ref(), unref()).
  Napi::Value Reference(Napi::Env env, bool on) {
    std::lock_guard<std::mutex> lk(gate_->mu);
    referenced_ = on;
    if (gate_->tsfn && on) gate_->tsfn.Ref(env);
    if (gate_->tsfn && !on) gate_->tsfn.Unref(env);
    return env.Undefined();
  }

  Napi::Value GetStats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    pm::Stats s = monitor_.GetStats();
    Napi::Object o = Napi::Object::New(env);
    for (const auto& n : s.Numbers()) o.Set(n.first, n.second);
    o.Set("rcvbufForced", s.rcvbuf_forced);
    o.Set("kernelFilter", s.kernel_filter);
    o.Set("costSource", s.CostSourceName());
    o.Set("costReason", s.cost_reason);
    return o;
  }

  // snapshot(): every process of the live table.
  Napi::Value Snapshot(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::vector<pm::ProcRecord> recs;
    monitor_.Snapshot(recs);
    return RecordsToJs(env, recs);
  }

  // ancestry(pid): the process and its ancestors, nearest first; null if pid is unknown.
  Napi::Value Ancestry(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!RequireArgs(info, "ancestry(pid) needs a pid", {&Napi::Value::IsNumber})) return env.Undefined();
    std::vector<pm::ProcRecord> recs;
    if (!monitor_.Ancestry(info[0].As<Napi::Number>().Int32Value(), recs)) return env.Null();
    return RecordsToJs(env, recs);
  }

  std::shared_ptr<Gate> gate_ = std::make_shared<Gate>();  // declared first: outlives monitor_
  pm::Monitor monitor_;
  Napi::FunctionReference callback_;
  napi_env env_ = nullptr;
  bool hooked_ = false;
  bool pinned_ = false;  // a strong reference to the wrapper while running
  bool referenced_ = true;
  std::vector<OutEvent> batch_;
  std::string text_;           // TakeBatch's lines
  std::vector<int32_t> meta_;  // and what routes them
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
  if (!RequireArgs(info, "parse(buffer) needs a Buffer", {&Napi::Value::IsBuffer})) return env.Undefined();
  Napi::Buffer<uint8_t> b = info[0].As<Napi::Buffer<uint8_t>>();
  std::vector<pm::RawEvent> evs;
  pm::ParseStats st;
  pm::ParseDatagram(b.Data(), b.Length(), evs, st);
  Napi::Array arr = Napi::Array::New(env, evs.size());
  for (size_t i = 0; i < evs.size(); i++) {
    const pm::RawEvent& r = evs[i];
    Napi::Object o = Napi::Object::New(env);
    o.Set("what", pm::KindName(r.what));
    o.Set("cpu", r.cpu);
    o.Set("timestampNs", Napi::BigInt::New(env, static_cast<uint64_t>(r.ts_ns)));
    SetNumbers(
        o,
        {{"seq", r.seq}, {"ack", r.ack}, {"pid", r.pid}, {"tgid", r.tgid}, {"ppid", r.ppid}, {"ptgid", r.ptgid}, {"a", r.a}, {"b", r.b}});
    o.Set("hasParent", r.has_parent);
    o.Set("comm", r.comm);
    arr.Set(static_cast<uint32_t>(i), o);
  }
  Napi::Object res = Napi::Object::New(env);
  res.Set("events", arr);
  Napi::Object s = Napi::Object::New(env);
  SetNumbers(
      s, {{"messages", st.messages}, {"malformed", st.malformed}, {"foreign", st.foreign}, {"unknown", st.unknown}, {"errors", st.errors}});
  s.Set("overrun", st.overrun);
  res.Set("stats", s);
  return res;
}

// buildRequest(op, withMask, mask, seq, portid): the subscription datagram, for tests.
Napi::Value BuildRequest(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!RequireArgs(info, "buildRequest(op, withMask, mask, seq, ack, portid)", {}, 6)) return env.Undefined();
  uint8_t buf[64];
  size_t n = pm::BuildMcastRequest(buf, sizeof buf, info[0].ToNumber().Uint32Value(), info[1].ToBoolean().Value(),
                                   info[2].ToNumber().Uint32Value(), info[3].ToNumber().Uint32Value(), info[4].ToNumber().Uint32Value(),
                                   info[5].ToNumber().Uint32Value());
  return Napi::Buffer<uint8_t>::Copy(env, buf, n);
}

// filterError(side, key, value): why the filter rule is not valid (filter.h), or null.
Napi::Value FilterError(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const ArgCheck str = &Napi::Value::IsString;
  if (!RequireArgs(info, "filterError(side, key, value) needs three strings", {str, str, str})) return env.Undefined();
  pm::FilterRule r{Str(info[0]) == "exclude", Str(info[1]), Str(info[2])};
  pm::EventFilter f;
  std::string why;
  return f.Compile({r}, &why) ? env.Null() : Napi::Value(Napi::String::New(env, why));
}

// lookupId(db, name): a Promise of the uid ("passwd") or gid ("group") of a name, or null when
// there is none. The lookup may ask NSS (LDAP, sssd): it runs on the libuv thread pool.
class LookupWorker : public Napi::AsyncWorker {
 public:
  LookupWorker(Napi::Env env, pm::IdDb db, std::string name)
      : Napi::AsyncWorker(env, "procmonitor:lookupId"), deferred_(Napi::Promise::Deferred::New(env)), db_(db), name_(std::move(name)) {}
  Napi::Promise Promise() { return deferred_.Promise(); }

 protected:
  void Execute() override { rc_ = pm::LookupId(db_, name_, &id_); }
  void OnOK() override {
    Napi::Env env = Env();
    if (rc_ == 0) return deferred_.Resolve(Napi::Number::New(env, id_));
    if (rc_ == ENOENT || rc_ == ESRCH || rc_ == EBADF || rc_ == EPERM) return deferred_.Resolve(env.Null());
    Napi::Error err = Napi::Error::New(env, std::string("looking up \"") + name_ + "\": " + strerror(rc_));
    deferred_.Reject(err.Value());
  }

 private:
  Napi::Promise::Deferred deferred_;
  pm::IdDb db_;
  std::string name_;
  uint32_t id_ = 0;
  int rc_ = 0;
};

Napi::Value LookupId(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!RequireArgs(info, "lookupId(\"passwd\" | \"group\", name)", {&Napi::Value::IsString, &Napi::Value::IsString})) {
    return env.Undefined();
  }
  std::string db = Str(info[0]);
  if (db != "passwd" && db != "group") {
    Napi::TypeError::New(env, "lookupId: the database is \"passwd\" or \"group\"").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  auto* w = new LookupWorker(env, db == "passwd" ? pm::IdDb::kUser : pm::IdDb::kGroup, Str(info[1]));
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

// peerCred(fd): { pid, uid, gid } of a connected Unix socket's peer, or null if unknown.
Napi::Value PeerCredOf(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!RequireArgs(info, "peerCred(fd) needs a file descriptor", {&Napi::Value::IsNumber})) return env.Undefined();
  pm::PeerCred c;
  if (pm::ReadPeerCred(info[0].As<Napi::Number>().Int32Value(), &c) != 0) return env.Null();
  Napi::Object o = Napi::Object::New(env);
  SetNumbers(o, {{"pid", c.pid}, {"uid", c.uid}, {"gid", c.gid}});
  return o;
}

class Addon : public Napi::Addon<Addon> {
 public:
  Addon(Napi::Env env, Napi::Object exports) {
    // Each function a read-only, enumerable property of the exports, named as it is called.
    auto fn = [&](const char* name, Napi::Function::Callback cb) {
      return InstanceValue(name, Napi::Function::New(env, cb, name), napi_enumerable);
    };
    DefineAddon(exports, {InstanceValue("Connector", Connector::Init(env), napi_enumerable), fn("parse", Parse),
                          fn("buildRequest", BuildRequest), fn("lookupId", LookupId), fn("peerCred", PeerCredOf),
                          fn("filterError", FilterError), InstanceValue("LineFilter", pm_addon::LineFilterClass(env), napi_enumerable),
                          InstanceValue("JournalSocket", pm_addon::JournalSocketClass(env), napi_enumerable)});
  }
};

}  // namespace

NODE_API_ADDON(Addon)
