// Node-API binding, part two: the LineFilter object (line_filter.h), a stream's own filter run
// on its lines. addon.cc assembles the exports; no C++ exception crosses the boundary.
#include "addon_lines.h"

#include <napi.h>

#include <string>
#include <vector>

#include "line_filter.h"

namespace pm_addon {
namespace {

// new LineFilter(rules: string[] ([side, key, value] flattened), followed: number[]): a
// TypeError naming the rule at fault if one is not valid.
// keep(buf: Buffer, ends: Uint32Array): a Uint8Array, 1 for each line of buf that goes out.
class LineFilterObject : public Napi::ObjectWrap<LineFilterObject> {
 public:
  explicit LineFilterObject(const Napi::CallbackInfo& info) : Napi::ObjectWrap<LineFilterObject>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[0].IsArray() || !info[1].IsArray()) {
      Napi::TypeError::New(env, "new LineFilter(rules, followed) needs two arrays").ThrowAsJavaScriptException();
      return;
    }
    Napi::Array rules = info[0].As<Napi::Array>();
    Napi::Array followed = info[1].As<Napi::Array>();
    // (An element read may throw: a getter, a Proxy. Then the exception stands, and we return.)
    std::vector<std::string> texts;
    for (uint32_t i = 0; i < rules.Length(); i++) {
      Napi::Value v = rules.Get(i);
      if (env.IsExceptionPending()) return;
      if (!v.IsString()) {
        Napi::TypeError::New(env, "LineFilter: rules are strings").ThrowAsJavaScriptException();
        return;
      }
      texts.push_back(v.As<Napi::String>().Utf8Value());
    }
    std::vector<pm::FilterRule> rs;
    for (size_t i = 0; i + 2 < texts.size(); i += 3) rs.push_back(pm::FilterRule{texts[i] == "exclude", texts[i + 1], texts[i + 2]});
    std::vector<int32_t> pids;
    for (uint32_t i = 0; i < followed.Length(); i++) {
      Napi::Value v = followed.Get(i);
      if (env.IsExceptionPending()) return;
      if (v.IsNumber()) pids.push_back(v.As<Napi::Number>().Int32Value());
    }
    std::string why;
    if (!filter_.Compile(rs, pids, &why)) Napi::TypeError::New(env, why).ThrowAsJavaScriptException();
  }

  static Napi::Function Init(Napi::Env env) { return DefineClass(env, "LineFilter", {InstanceMethod<&LineFilterObject::Keep>("keep")}); }

 private:
  Napi::Value Keep(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[0].IsBuffer() || !info[1].IsTypedArray() ||
        info[1].As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array) {
      Napi::TypeError::New(env, "keep(buf, ends) needs a Buffer and a Uint32Array").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    Napi::Buffer<char> buf = info[0].As<Napi::Buffer<char>>();
    Napi::Uint32Array ends = info[1].As<Napi::Uint32Array>();
    const size_t n = ends.ElementLength();
    // Checked whole before any line is offered: the filter's subtree changes with each.
    for (size_t i = 0, start = 0; i < n; start = ends[i++]) {
      if (ends[i] < start || ends[i] > buf.Length()) {
        Napi::RangeError::New(env, "keep: a line ends outside the buffer").ThrowAsJavaScriptException();
        return env.Undefined();
      }
    }
    Napi::Uint8Array out = Napi::Uint8Array::New(env, n);
    if (env.IsExceptionPending()) return env.Undefined();
    for (size_t i = 0, start = 0; i < n; start = ends[i++]) out[i] = filter_.Keep(buf.Data() + start, ends[i] - start) ? 1 : 0;
    return out;
  }

  pm::LineFilter filter_;
};

}  // namespace

Napi::Function LineFilterClass(Napi::Env env) { return LineFilterObject::Init(env); }

}  // namespace pm_addon
