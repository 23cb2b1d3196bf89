// Unit tests of the event filter (native/filter.h) on events as the table makes them: each
// key, AND across keys and OR within one, exclude, fields an event cannot tell, bad rules.
// Built and run by test/filter.test.js; prints "ok - NAME" or "not ok - NAME: line N".
#include "../../native/filter.h"

#include <string>
#include <vector>

#include "unit.h"

namespace {

using pm::FilterRule;
using pm::OutEvent;

OutEvent Exec(const std::string& comm, const std::string& cmdline, uint32_t uid, const std::string& user) {
  OutEvent e;
  e.what = pm::kExec;
  e.pid = 100;
  e.comm = comm;
  e.cmdline = cmdline;
  e.exe = "/usr/bin/" + comm;
  e.uid = uid;
  e.user = user;
  e.cwd = "/home/alice/src";
  e.have_cwd = true;
  e.cgroup = "/system.slice/docker-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.scope";
  e.container_id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
  e.ctx.auid = 1000;
  e.ctx.have = pm::kMissAuid;
  e.login_user = "alice";
  return e;
}

OutEvent Exit(uint32_t status) {
  OutEvent e = Exec("make", "make -j2", 0, "root");
  e.what = pm::kExit;
  e.raw.a = status;
  return e;
}

bool Admits(const std::vector<FilterRule>& rules, const OutEvent& e) {
  pm::EventFilter f;
  std::string err;
  if (!f.Compile(rules, &err)) return false;
  return f.Admit(e);
}

std::string Error(const std::vector<FilterRule>& rules) {
  pm::EventFilter f;
  std::string err;
  return f.Compile(rules, &err) ? std::string() : err;
}

FilterRule M(const std::string& k, const std::string& v) { return {false, k, v}; }
FilterRule X(const std::string& k, const std::string& v) { return {true, k, v}; }

void EachKey() {
  OutEvent e = Exec("python3", "python3 -m http.server --password=x", 0, "root");
  EXPECT(Admits({}, e));
  EXPECT(Admits({M("event", "exec")}, e) && !Admits({M("event", "exit")}, e));
  EXPECT(Admits({M("user", "root")}, e) && !Admits({M("user", "alice")}, e));
  EXPECT(Admits({M("uid", "0")}, e) && !Admits({M("uid", "1000")}, e));
  EXPECT(Admits({M("login_user", "alice")}, e) && Admits({M("auid", "1000")}, e) && !Admits({M("auid", "0")}, e));
  EXPECT(Admits({M("comm", "python*")}, e) && !Admits({M("comm", "python")}, e));
  EXPECT(Admits({M("exe", "/usr/bin/*")}, e) && !Admits({M("exe", "/opt/*")}, e));
  EXPECT(Admits({M("argv", "/--password=/")}, e) && Admits({M("argv", "*http.server*")}, e) && !Admits({M("argv", "/--token/")}, e));
  EXPECT(Admits({M("cwd", "/home/*")}, e) && !Admits({M("cwd", "/tmp")}, e));
  EXPECT(Admits({M("container", "0123456789ab")}, e) && !Admits({M("container", "fedcba")}, e));
  EXPECT(Admits({M("cgroup", "/system.slice")}, e) && !Admits({M("cgroup", "/system.sli")}, e) && !Admits({M("cgroup", "/user.slice")}, e));
  EXPECT(Admits({M("cgroup", "/system.slice/docker-*")}, e));
  EXPECT(Admits({M("failed", "true")}, Exit(768)) && Admits({M("failed", "true")}, Exit(9)) && !Admits({M("failed", "true")}, Exit(0)));
  EXPECT(Admits({M("failed", "false")}, Exit(0)) && !Admits({M("failed", "false")}, Exit(256)));
  EXPECT(!Admits({M("failed", "true")}, e));  // an exec has no outcome
}

void AndAcrossKeysOrWithinOne() {
  OutEvent e = Exec("ssh", "ssh host", 1000, "alice");
  EXPECT(Admits({M("comm", "ssh"), M("comm", "scp")}, e));
  EXPECT(!Admits({M("comm", "sftp"), M("comm", "scp")}, e));
  EXPECT(Admits({M("comm", "ssh"), M("user", "alice")}, e));
  EXPECT(!Admits({M("comm", "ssh"), M("user", "root")}, e));
  // exclude: dropped when it matches all of its keys.
  EXPECT(!Admits({X("comm", "ssh")}, e) && Admits({X("comm", "scp")}, e));
  EXPECT(!Admits({X("comm", "ssh"), X("user", "alice")}, e) && Admits({X("comm", "ssh"), X("user", "root")}, e));
  EXPECT(!Admits({M("user", "alice"), X("argv", "*host*")}, e));
}

void WhatAnEventCannotTell() {
  OutEvent e = Exec("ls", "ls", 0, "unknown");
  e.missing = pm::kMissUser | pm::kMissCmdline;
  e.ctx.have = 0;
  e.have_cwd = false;
  e.container_id.clear();
  e.cgroup.clear();
  // A key the event cannot tell matches none of its values, even "*".
  for (const char* k : {"user", "argv", "login_user", "cwd", "container", "cgroup"}) EXPECT(!Admits({M(k, "*")}, e));
  EXPECT(!Admits({M("uid", "0")}, e) && !Admits({M("auid", "1000")}, e));
  // A login uid unset (4294967295): no login user.
  OutEvent d = Exec("cron", "cron", 0, "root");
  d.ctx.auid = pm::kNoId;
  EXPECT(!Admits({M("login_user", "*")}, d));
  // Loss reports always pass.
  OutEvent lost;
  lost.what = pm::kLost;
  EXPECT(Admits({M("comm", "nothing"), X("event", "exec")}, lost));
}

void BadRulesNamed() {
  EXPECT(Error({M("colour", "red")}).find("match colour=red: unknown key") == 0);
  EXPECT(Error({M("event", "spawn")}).find("not an event kind") != std::string::npos);
  EXPECT(Error({M("uid", "-1")}).find("not a uid") != std::string::npos);
  EXPECT(Error({M("uid", "4294967295")}).find("not a uid") != std::string::npos);
  EXPECT(Error({M("failed", "yes")}).find("true or false") != std::string::npos);
  EXPECT(Error({X("argv", "/(a)\\1/")}).find("exclude argv=/(a)\\1/: \\1 is not supported") == 0);
}

const unit::Case kCases[] = {
    {"each key: event, user, uid, login_user, auid, comm, exe, argv, cwd, container, cgroup, failed", EachKey},
    {"AND across keys, OR within one; exclude drops what matches all of its keys", AndAcrossKeysOrWithinOne},
    {"what an event cannot tell matches nothing; loss reports always pass", WhatAnEventCannotTell},
    {"bad rules: named, with why", BadRulesNamed},
};

}  // namespace

int main() { return unit::RunCases(kCases); }
