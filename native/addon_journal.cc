// Node-API binding, part three: the JournalSocket object (journal_socket.h), journald's
// native protocol socket, which Node.js cannot open (it has no Unix datagram sockets).
// addon.cc assembles the exports; no C++ exception crosses the boundary.
#include "addon_journal.h"

#include <napi.h>

#include <cstring>
#include <string>

#include "journal_socket.h"

namespace pm_addon {
namespace {

// new JournalSocket(): an Error (with .errno) if no socket can be made.
// send(path: string, entry: Buffer): 0, or the errno of the failure (never throws for one).
// close(): closes it; also done at the environment's teardown and when it is collected.
class JournalSocketObject : public Napi::ObjectWrap<JournalSocketObject> {
 public:
  explicit JournalSocketObject(const Napi::CallbackInfo& info) : Napi::ObjectWrap<JournalSocketObject>(info) {
    Napi::Env env = info.Env();
    int err = sock_.Open();
    if (err != 0) {
      Napi::Error e = Napi::Error::New(env, std::string("cannot make a datagram socket: ") + std::strerror(err));
      e.Set("errno", Napi::Number::New(env, err));
      e.ThrowAsJavaScriptException();
      return;
    }
    env_ = env;
    napi_add_env_cleanup_hook(env_, &JournalSocketObject::Cleanup, this);
    hooked_ = true;
  }

  ~JournalSocketObject() override {
    if (hooked_) napi_remove_env_cleanup_hook(env_, &JournalSocketObject::Cleanup, this);
  }

  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "JournalSocket",
                       {InstanceMethod<&JournalSocketObject::Send>("send"), InstanceMethod<&JournalSocketObject::CloseIt>("close")});
  }

 private:
  static void Cleanup(void* arg) {
    JournalSocketObject* self = static_cast<JournalSocketObject*>(arg);
    self->hooked_ = false;
    self->sock_.Close();
  }

  Napi::Value Send(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[0].IsString() || !info[1].IsBuffer()) {
      Napi::TypeError::New(env, "send(path, entry) needs a string and a Buffer").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    std::string path = info[0].As<Napi::String>().Utf8Value();
    Napi::Buffer<uint8_t> buf = info[1].As<Napi::Buffer<uint8_t>>();
    return Napi::Number::New(env, sock_.Send(path, buf.Data(), buf.Length()));
  }

  Napi::Value CloseIt(const Napi::CallbackInfo& info) {
    sock_.Close();
    return info.Env().Undefined();
  }

  pm::JournalSocket sock_;
  napi_env env_ = nullptr;
  bool hooked_ = false;
};

}  // namespace

Napi::Function JournalSocketClass(Napi::Env env) { return JournalSocketObject::Init(env); }

}  // namespace pm_addon
