// Unit tests of the event filter (native/filter.h) on events as the table makes them: each
// key, AND across keys and OR within one, exclude, fields an event cannot tell, bad rules;
// and of the same filter run on the event's line (native/line_filter.h), which must keep
// exactly the lines of the events the reader's filter admits: every case checks both. The
// line reader (native/line_reader.h) on JSON it must read and JSON it must refuse; a subtree
// followed through fork lines.
// Built and run by test/filter.test.js; prints "ok - NAME" or "not ok - NAME: line N".
#include "../../native/filter.h"

#include <string>
#include <vector>

#include "../../native/line_filter.h"
#include "../../native/wire.h"
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
  e.with_cwd = true;
  e.with_cgroup = true;
  e.with_ctx = pm::kMissAuid;
  return e;
}

OutEvent Exit(uint32_t status) {
  OutEvent e = Exec("make", "make -j2", 0, "root");
  e.what = pm::kExit;
  e.raw.a = status;
  return e;
}

std::string Line(const OutEvent& e) {
  std::string line;
  pm::AppendEventLine(line, e);
  return line;
}

// Whether the reader's filter admits e; its line must be kept by the same rules, or not.
bool Admits(const std::vector<FilterRule>& rules, const OutEvent& e) {
  pm::EventFilter f;
  pm::LineFilter lf;
  std::string err;
  if (!f.Compile(rules, &err) || !lf.Compile(rules, {}, &err)) return false;
  const std::string line = Line(e);
  const bool admitted = f.Admit(e);
  EXPECT(lf.Keep(line.data(), line.size()) == admitted);
  return admitted;
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

void TextAsTheLineShowsIt() {
  // Bytes that are not UTF-8 show as U+FFFD on the line: the reader matches them so too.
  OutEvent e = Exec("x", "x", 0, "root");
  e.exe = "/srv/caf\xe9/bin/x";
  e.comm = "\xff\xfe";
  // (Patterns match bytes: U+FFFD is three, so "?" is not one of them, on the line as here.)
  EXPECT(Admits({M("exe", "/srv/caf\xef\xbf\xbd/bin/*")}, e) && !Admits({M("exe", "/srv/caf?/bin/*")}, e));
  EXPECT(!Admits({X("comm", "\xef\xbf\xbd\xef\xbf\xbd")}, e) && Admits({X("comm", "??")}, e));
  e.cgroup = "/a\xff/b";
  EXPECT(Admits({M("cgroup", "/a\xef\xbf\xbd")}, e));
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

bool Reads(const std::string& text, pm::LineEvent& out) { return pm::ReadEventLine(text.data(), text.size(), out); }

void LinesRead() {
  pm::LineEvent l;
  // What the server holds: a seq added, and fields no filter reads, nested, skipped.
  EXPECT(
      Reads("{\"event\":\"exec\",\"pid\":42,\"user\":\"r\\u00e9my\",\"uid\":1000,\"argv\":[\"a\",\"b\"],\"env\":{\"A\":\"x\"},"
            "\"ancestors\":[{\"pid\":1,\"comm\":\"init\"}],\"duration_ms\":1.5e3,\"cmdline\":\"a \\\"b\\\"\",\"seq\":7}\n",
            l));
  EXPECT(l.e.what == pm::kExec && l.tgid == 42 && l.e.uid == 1000 && !(l.e.missing & pm::kMissUser));
  EXPECT(l.e.user == "r\xc3\xa9my" && l.e.cmdline == "a \"b\"");
  // Surrogate pairs; a lone surrogate is U+FFFD; the last of a repeated key counts.
  EXPECT(Reads("{\"event\":\"exit\",\"comm\":\"\\ud83d\\ude00\\ud800x\",\"pid\":1,\"pid\":2, \"exit_code\" : 256 }", l));
  EXPECT(l.e.comm == "\xf0\x9f\x98\x80\xef\xbf\xbdx" && l.tgid == 2 && l.e.raw.a == 256 && l.e.what == pm::kExit);
  // Forks: the child's process (a thread's: its process), the parent.
  EXPECT(Reads("{\"event\":\"fork\",\"child_pid\":11,\"parent_pid\":10}", l) && l.tgid == 11 && l.parent_tgid == 10);
  EXPECT(Reads("{\"event\":\"fork\",\"child_pid\":12,\"parent_pid\":10,\"thread\":true,\"child_tgid\":10}", l) && l.tgid == 10 &&
         l.e.thread);
  // No uid (null, none) and no cmdline: not known, so no rule on them matches.
  EXPECT(Reads("{\"event\":\"uid\",\"pid\":3,\"uid\":null}", l) && (l.e.missing & pm::kMissUser) && (l.e.missing & pm::kMissCmdline));
  EXPECT(Reads("{\"event\":\"exec\",\"missing\":[\"argv\",\"cwd\",\"no-such\"]}", l) && (l.e.missing & pm::kMissArgv) &&
         (l.e.missing & pm::kMissCwd));
  EXPECT(Reads("{}", l) && l.e.what == 0);
  // Not one JSON object: refused.
  for (const char* bad : {"", "[]", "{", "{\"a\":}", "{\"a\":1,}", "{\"a\":01}", "{\"a\":\"\\x\"}", "{\"a\":\"\x01\"}", "{\"a\":1} x",
                          "{\"a\":tru}", "{\"a\":\"\\u12\"}", "{\"a\":-}", "{\"a\":1.}", "{a:1}", "{\"a\":[1 2]}"}) {
    EXPECT(!Reads(bad, l));
  }
  // Nesting is bounded; a number too big for an id tells nothing.
  EXPECT(Reads("{\"a\":" + std::string(60, '[') + std::string(60, ']') + "}", l));
  EXPECT(!Reads("{\"a\":" + std::string(100, '[') + std::string(100, ']') + "}", l));
  EXPECT(Reads("{\"event\":\"exec\",\"uid\":99999999999999999999999}", l) && (l.e.missing & pm::kMissUser));
}

bool Keeps(pm::LineFilter& f, const std::string& line) { return f.Keep(line.data(), line.size()); }

void SubtreeFollowedThroughForks() {
  pm::LineFilter f;
  std::string err;
  EXPECT(f.Compile({M("event", "fork"), M("event", "exec"), M("event", "exit")}, {100}, &err));
  EXPECT(Keeps(f, "{\"event\":\"exec\",\"pid\":100}") && !Keeps(f, "{\"event\":\"exec\",\"pid\":200}"));
  EXPECT(Keeps(f, "{\"event\":\"fork\",\"child_pid\":101,\"parent_pid\":100}"));
  EXPECT(Keeps(f, "{\"event\":\"fork\",\"child_pid\":102,\"parent_pid\":101}") && f.followed() == 3);
  EXPECT(!Keeps(f, "{\"event\":\"fork\",\"child_pid\":201,\"parent_pid\":200}"));
  // Its exit ends it: its pid, reused by a stranger, is not followed.
  EXPECT(Keeps(f, "{\"event\":\"exit\",\"pid\":102,\"exit_code\":0}") && f.followed() == 2);
  EXPECT(!Keeps(f, "{\"event\":\"exec\",\"pid\":102}"));
  // A new process under a followed pid whose exit was lost: not followed either.
  EXPECT(!Keeps(f, "{\"event\":\"fork\",\"child_pid\":101,\"parent_pid\":300}") && f.followed() == 1);
  // Those followed from the start stay followed when their own fork line comes after the
  // filter was made (lines reach a filter later than the table that named them).
  EXPECT(Keeps(f, "{\"event\":\"fork\",\"child_pid\":100,\"parent_pid\":50}") && f.followed() == 1);
  // Without fork lines (a stream of exec and exit only), a child is known by its ppid.
  EXPECT(Keeps(f, "{\"event\":\"exec\",\"pid\":103,\"ppid\":100}") && f.followed() == 2);
  EXPECT(Keeps(f, "{\"event\":\"exit\",\"pid\":104,\"ppid\":103,\"exit_code\":0}") && f.followed() == 2);
  // Loss reports always; lines that are not events never; the filter's own rules still apply.
  EXPECT(Keeps(f, "{\"event\":\"lost\",\"count\":3}") && !Keeps(f, "not json") && !Keeps(f, "{\"event\":\"comm\",\"pid\":100}"));
  // Bounded: beyond kMaxFollowed processes, new ones are not followed.
  pm::LineFilter big;
  EXPECT(big.Compile({}, {1}, &err));
  for (int i = 2; i < static_cast<int>(pm::LineFilter::kMaxFollowed) + 10; i++) {
    const std::string fork = "{\"event\":\"fork\",\"child_pid\":" + std::to_string(i) + ",\"parent_pid\":1}";
    Keeps(big, fork);
  }
  EXPECT(big.followed() == pm::LineFilter::kMaxFollowed);
  EXPECT(!f.Compile({M("colour", "red")}, {}, &err) && err.find("unknown key") != std::string::npos);
}

const unit::Case kCases[] = {
    {"each key: event, user, uid, login_user, auid, comm, exe, argv, cwd, container, cgroup, failed", EachKey},
    {"text as the line shows it: bytes that are not UTF-8 match as U+FFFD", TextAsTheLineShowsIt},
    {"AND across keys, OR within one; exclude drops what matches all of its keys", AndAcrossKeysOrWithinOne},
    {"what an event cannot tell matches nothing; loss reports always pass", WhatAnEventCannotTell},
    {"bad rules: named, with why", BadRulesNamed},
    {"lines read back: what a filter reads, JSON's escapes, nesting skipped and bounded, bad JSON refused", LinesRead},
    {"a subtree on lines: followed through forks, ended by exits, bounded", SubtreeFollowedThroughForks},
};

}  // namespace

int main() { return unit::RunCases(kCases); }
