// Unit tests of a process's context (native/context.h): the pure parsers on /proc's text, the
// terminal names, and the table's keeping of the context (read at exec, inherited at fork,
// carried to exit) with its wire form, against a fake /proc. No kernel, no Node. Built and run
// by test/context.test.js; prints "ok - NAME" or "not ok - NAME: LINE: EXPRESSION" per case.
#include "../../native/context.h"

#include <unistd.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "../../native/procfs.h"
#include "../../native/wire.h"
#include "../../native/wire_fields.h"
#include "table_harness.h"
#include "unit.h"

namespace {

using pm::OutEvent;
using table_harness::AllEvents;
using table_harness::Harness;

bool Has(const std::string& line, const std::string& part) { return line.find(part) != std::string::npos; }

std::string Line(const OutEvent& e) {
  std::string s;
  pm::AppendEventLine(s, e);
  return s;
}

// tty_nr as the kernel encodes a device number (new_encode_dev).
uint32_t TtyNr(unsigned major, unsigned minor) { return (minor & 0xff) | (major << 8) | ((minor & ~0xffu) << 12); }

void IdsOfLoginuidAndSessionid() {
  uint32_t v = 0;
  EXPECT(pm::ParseId("1000", 4, &v) && v == 1000);
  EXPECT(pm::ParseId("4294967295", 10, &v) && v == pm::kNoId);
  EXPECT(pm::ParseId("7\n", 2, &v) && v == 7);
  EXPECT(!pm::ParseId("4294967296", 10, &v));
  EXPECT(!pm::ParseId("", 0, &v) && !pm::ParseId("-1", 2, &v) && !pm::ParseId("12x", 3, &v));
}

void NamespaceLinks() {
  uint64_t ino = 0;
  EXPECT(pm::ParseNsLink("pid:[4026531836]", &ino) && ino == 4026531836u);
  EXPECT(pm::ParseNsLink("mnt:[1]", &ino) && ino == 1);
  EXPECT(!pm::ParseNsLink("pid:[]", &ino) && !pm::ParseNsLink("pid:[12", &ino) && !pm::ParseNsLink("pid:[1a]", &ino));
  EXPECT(!pm::ParseNsLink("", &ino) && !pm::ParseNsLink("pid:[99999999999999999999999]", &ino));
}

void NspidIsTheInnermost() {
  int32_t n = 0;
  const char one[] = "Name:\tsh\nNSpid:\t4242\nNSpgid:\t4242\n";
  EXPECT(pm::ParseNspid(one, sizeof one - 1, &n) && n == 4242);
  const char nested[] = "Name:\tsh\nNSpid:\t31337\t12\t1\nNSpgid:\t1\n";
  EXPECT(pm::ParseNspid(nested, sizeof nested - 1, &n) && n == 1);
  const char last[] = "NSpid:\t9\t3";  // no newline at the end
  EXPECT(pm::ParseNspid(last, sizeof last - 1, &n) && n == 3);
  const char none[] = "Name:\tsh\nNSpgid:\t1\n";
  EXPECT(!pm::ParseNspid(none, sizeof none - 1, &n));
  const char bad[] = "NSpid:\t1x\n";
  EXPECT(!pm::ParseNspid(bad, sizeof bad - 1, &n));
  // Status parsing takes it along.
  const char status[] = "Name:\tsh\nPPid:\t1\nUid:\t0\t0\t0\t0\nNSpid:\t77\t5\n";
  pm::ProcInfo info;
  EXPECT(pm::ParseStatus(status, sizeof status - 1, info) && info.ctx.nspid == 5 && info.ctx.Has(pm::kMissNspid));
}

void TerminalFromStat() {
  uint32_t dev = 1;
  // A name with ") " and spaces cannot shift the fields: they count from the last ')'.
  std::string stat = "4242 (a) b (c) S 1 4242 4242 " + std::to_string(TtyNr(136, 3)) + " 4242 4194304 0 0";
  EXPECT(pm::ParseStatTty(stat.data(), stat.size(), &dev) && dev == TtyNr(136, 3));
  const char none[] = "1 (init) S 0 1 1 0 -1 4194560";
  EXPECT(pm::ParseStatTty(none, sizeof none - 1, &dev) && dev == 0);
  EXPECT(pm::TtyNameOf(TtyNr(136, 3)) == "pts/3");
  EXPECT(pm::TtyNameOf(TtyNr(136, 300)) == "pts/300");  // a minor past 255
  EXPECT(pm::TtyNameOf(TtyNr(4, 1)) == "tty1");
  EXPECT(pm::TtyNameOf(TtyNr(4, 64)) == "ttyS0");
  EXPECT(pm::TtyNameOf(TtyNr(5, 1)) == "console");
  EXPECT(pm::TtyNameOf(TtyNr(188, 0)).empty());
  EXPECT(pm::TtyNumberText(TtyNr(188, 300)) == "188:300");
  const char uevent[] = "MAJOR=188\nMINOR=0\nDEVNAME=ttyUSB0\n";
  EXPECT(pm::ParseDevName(uevent, sizeof uevent - 1) == "ttyUSB0");
  EXPECT(pm::ParseDevName("MAJOR=1", 7).empty());
  // Others by their name in sysfs (1:3 is /dev/null on every Linux), else the number.
  pm::TtyNames names;
  if (access("/sys/dev/char/1:3/uevent", R_OK) == 0) EXPECT(names.Name(TtyNr(1, 3)) == "null");  // (where sysfs is)
  EXPECT(names.Name(TtyNr(136, 7)) == "pts/7");
  EXPECT(names.Name(TtyNr(4000, 1)) == "4000:1");
}

void EnvironmentByName() {
  const char env[] = "PATH=/usr/bin\0HOME=/root\0EMPTY=\0PATH=/second\0NOEQUALS\0LANG=C.UTF-8";
  std::vector<std::pair<std::string, std::string>> out;
  pm::ParseEnviron(env, sizeof env - 1, {"LANG", "PATH", "EMPTY", "MISSING", "PATH", "NOEQUALS"}, out);
  // Asked order; the first definition (getenv's); a name twice counts once; absent left out.
  EXPECT(out.size() == 3);
  EXPECT(out[0].first == "LANG" && out[0].second == "C.UTF-8");
  EXPECT(out[1].first == "PATH" && out[1].second == "/usr/bin");
  EXPECT(out[2].first == "EMPTY" && out[2].second.empty());
  pm::ParseEnviron("", 0, {"PATH"}, out);
  EXPECT(out.empty());
}

// A shell logged in as 1000 (session 3) on pts/3, forking and exec'ing.
pm::FakeProc& LoggedIn(Harness& h, int32_t pid, int32_t ppid, const std::string& comm) {
  pm::FakeProc& p = h.Add(pid, ppid, comm, {comm}, 1000);
  p.ctx.auid = 1000;
  p.ctx.sessionid = 3;
  p.ctx.tty = TtyNr(136, 3);
  return p;
}

void ContextReadAtExecInheritedAtForkCarriedToExit() {
  Harness h;
  LoggedIn(h, 100, 1, "bash");
  h.Fork(100, 200);
  LoggedIn(h, 200, 100, "sudo");
  std::vector<OutEvent> e = h.Feed(h.Ev(pm::kExec, 200, 200));
  EXPECT(e.size() == 1 && (e[0].missing & pm::kCtxAll) == 0);
  EXPECT(e[0].with_ctx == (pm::kMissAuid | pm::kMissSessionid | pm::kMissTty));
  EXPECT(e[0].ctx.auid == 1000 && e[0].login_user == "user1000" && e[0].ctx.sessionid == 3 && e[0].ctx.tty_name == "pts/3");
  std::string line = Line(e[0]);
  EXPECT(Has(line, ",\"auid\":1000,\"login_user\":\"user1000\",\"sessionid\":3,\"tty\":\"pts/3\""));
  EXPECT(!Has(line, "pidns") && !Has(line, "\"env\""));
  // sudo forks a root child: the login identity stays (the uid is another matter).
  auto& f = h.Fork(200, 201);
  EXPECT(f.size() == 1 && f[0].ctx.auid == 1000 && f[0].ctx.tty_name == "pts/3" && (f[0].missing & pm::kCtxAll) == 0);
  auto& x0 = h.Exit(201, 201, 0);  // (a fork that never exec'd: its parent's, carried to its exit)
  EXPECT(x0[0].ctx.auid == 1000 && Has(Line(x0[0]), "\"tty\":\"pts/3\""));
  // Gone before its exec could be read: not known, for the time between a fork and an exec is
  // where a process changes them (pam_loginuid, setsid, setns).
  h.Fork(200, 202);
  h.reader.procs.erase(202);
  std::vector<OutEvent> gone = h.Feed(h.Ev(pm::kExec, 202, 202));
  EXPECT((gone[0].missing & pm::kCtxAll) == (pm::kMissAuid | pm::kMissSessionid | pm::kMissTty));
  EXPECT((h.Exit(202, 202, 0)[0].missing & pm::kCtxAll) == (pm::kMissAuid | pm::kMissSessionid | pm::kMissTty));
  // setsid() leaves a process without a terminal: its later events say so.
  h.Fork(200, 203);
  pm::RawEvent sid = h.Ev(pm::kSid, 203, 203);
  h.Feed(sid);
  auto& s = h.Exit(203, 203, 0);
  EXPECT(Has(Line(s[0]), ",\"tty\":null") && s[0].ctx.auid == 1000);
  // A daemon: no login uid, no session, no terminal: absent, null, and nothing missing.
  h.Fork(1, 300);
  h.Add(300, 1, "cron", {"cron"}, 0);
  std::vector<OutEvent> d = h.Feed(h.Ev(pm::kExec, 300, 300));
  line = Line(d[0]);
  EXPECT(!Has(line, "auid") && !Has(line, "login_user") && !Has(line, "sessionid") && Has(line, ",\"tty\":null") &&
         (d[0].missing & pm::kCtxAll) == 0);
  // Unreadable at exec, known from nowhere: named missing, at the exec and the exit.
  h.Fork(1, 400);
  h.Add(400, 1, "x", {"x"}, 0).ctx.have = 0;
  h.table.Reset(h.opts, table_harness::kBoot);  // (forget 400's fork: nothing inherited)
  std::vector<OutEvent> u = h.Feed(h.Ev(pm::kExec, 400, 400));
  EXPECT((u[0].missing & pm::kCtxAll) == (pm::kMissAuid | pm::kMissSessionid | pm::kMissTty));
  EXPECT(Has(Line(u[0]), "\"auid\",\"sessionid\",\"tty\"]"));
  EXPECT((h.Exit(400, 400, 0)[0].missing & pm::kCtxAll) == (pm::kMissAuid | pm::kMissSessionid | pm::kMissTty));
}

void GroupsOffReadAndSayNothing() {
  pm::Options o = AllEvents();
  o.context = 0;
  Harness h(o);
  h.Fork(100, 200);
  std::vector<OutEvent> e = h.Feed(h.Ev(pm::kExec, 200, 200));
  std::string line = Line(e[0]);
  EXPECT(e[0].with_ctx == 0 && !Has(line, "tty") && !Has(line, "auid") && (e[0].missing & pm::kCtxAll) == 0);
}

void NamespacesAndNspidAtForkAndExec() {
  pm::Options o = AllEvents();
  o.context = pm::kCtxNs;
  Harness h(o);
  // A container's init: new pid and mount namespaces, pid 1 inside.
  h.Fork(100, 500);
  pm::FakeProc& c = h.Add(500, 100, "sh", {"sh"}, 0);
  c.ctx.pidns = 4026532000;
  c.ctx.mntns = 4026532001;
  c.ctx.nspid = 1;
  std::vector<OutEvent> e = h.Feed(h.Ev(pm::kExec, 500, 500));
  std::string line = Line(e[0]);
  EXPECT(Has(line, ",\"pidns\":4026532000,\"mntns\":4026532001,\"netns\":4026531833,\"nspid\":1"));
  EXPECT(!Has(line, "tty") && !Has(line, "auid") && (e[0].missing & pm::kCtxAll) == 0);
  // Its child: the namespaces inherited, read again at the fork, a pid of its own inside.
  pm::FakeProc& k = h.Add(501, 500, "sh", {"sh"}, 0);
  k.ctx = c.ctx;
  k.ctx.nspid = 2;
  auto& f = h.Fork(500, 501);
  EXPECT(f[0].ctx.pidns == 4026532000u && f[0].ctx.nspid == 2 && (f[0].missing & pm::kCtxAll) == 0);
  // A child gone before its fork could be read: its namespaces unknown, its nspid too.
  auto& g = h.Fork(500, 502);
  EXPECT((g[0].missing & pm::kCtxAll) == (pm::kMissPidns | pm::kMissMntns | pm::kMissNetns | pm::kMissNspid));
}

void EnvironmentAskedFor() {
  pm::Options o = AllEvents();
  o.context = 0;
  o.env = {"CI_JOB_ID"};
  Harness h(o);
  h.Fork(100, 200);
  pm::FakeProc& p = h.Add(200, 100, "make", {"make"}, 1000);
  p.ctx.env = {{"CI_JOB_ID", "42"}};
  std::vector<OutEvent> e = h.Feed(h.Ev(pm::kExec, 200, 200));
  EXPECT(Has(Line(e[0]), ",\"env\":{\"CI_JOB_ID\":\"42\"}"));
  // Inherited at fork; at an exec not read, the new program's is unknown: missing, not the old.
  auto& f = h.Fork(200, 201);
  EXPECT(Has(Line(f[0]), ",\"env\":{\"CI_JOB_ID\":\"42\"}"));
  h.reader.procs.erase(201);
  std::vector<OutEvent> g = h.Feed(h.Ev(pm::kExec, 201, 201));
  EXPECT((g[0].missing & pm::kMissEnv) && !Has(Line(g[0]), "\"env\":"));
}

void RecordsCarryTheContext() {
  Harness h;
  LoggedIn(h, 100, 1, "bash");
  h.Fork(100, 200);
  LoggedIn(h, 200, 100, "vim");
  h.Feed(h.Ev(pm::kExec, 200, 200));
  std::vector<pm::ProcRecord> recs;
  h.table.Ancestry(200, recs);
  std::string text;
  pm::AppendRecords(text, recs);
  EXPECT(text.rfind("[{\"pid\":200,\"ppid\":100,", 0) == 0);
  EXPECT(Has(text,
             "\"cwd\":\"/home/u200\",\"auid\":1000,\"login_user\":\"user1000\",\"sessionid\":3,\"tty\":\"pts/"
             "3\",\"threads\":0,\"learned\":false}"));
  EXPECT(text.back() == ']');
}

std::string Upper(std::string s) {
  for (char& c : s) c = static_cast<char>(c >= 'a' && c <= 'z' ? c - 32 : c);
  return s;
}

// The cgroup path and the container id of each runtime's layout (recorded /proc/PID/cgroup).
void ContainerIdsOfTheRuntimes() {
  const std::string id = std::string("0123456789abcdef") + "0123456789abcdef" + "0123456789abcdef" + "0123456789abcdef";
  struct Case {
    std::string text;
    std::string cgroup;  // "?": not checked
    std::string container;
  };
  const std::string none;
  const Case cases[] = {
      // Docker, systemd driver (cgroup v2) and cgroupfs driver
      {std::string("0::/system.slice/docker-") + id + std::string(".scope\n"),
       std::string("/system.slice/docker-") + id + std::string(".scope"), id},
      {std::string("0::/docker/") + id + std::string("\n"), std::string("/docker/") + id, id},
      // Docker in Docker: the innermost container
      {std::string("0::/docker/") + std::string(64, 'f') + std::string("/docker/") + id + std::string("\n"), "?", id},
      // containerd under Kubernetes, systemd and cgroupfs drivers
      {std::string(
           "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1f2e3d4c_5b6a_7980_a1b2_c3d4e5f60718.slice/cri-containerd-") +
           id + std::string(".scope\n"),
       "?", id},
      {std::string("0::/kubepods/besteffort/pod1f2e3d4c-5b6a-7980-a1b2-c3d4e5f60718/") + id + std::string("\n"), "?", id},
      // CRI-O
      {std::string("0::/kubepods.slice/kubepods-pod1.slice/crio-") + id + std::string(".scope\n"), "?", id},
      // Podman, rootful and rootless; conmon's own scope is not the container
      {std::string("0::/machine.slice/libpod-") + id + std::string(".scope\n"), "?", id},
      {std::string("0::/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-") + id + std::string(".scope/container\n"), "?",
       id},
      {std::string("0::/machine.slice/libpod-conmon-") + id + std::string(".scope\n"), "?", none},
      // containerd (nerdctl), cgroupfs: namespace/id
      {std::string("0::/default/") + id + std::string("\n"), "?", id},
      // Hybrid hierarchy: the unified line wins over v1 controllers
      {std::string("12:memory:/docker/") + std::string(64, 'e') +
           std::string("\n1:name=systemd:/init.scope\n0::/system.slice/sshd.service\n"),
       std::string("/system.slice/sshd.service"), none},
      // v1 only: the systemd line
      {std::string("4:memory:/x\n1:name=systemd:/system.slice/docker-") + id + std::string(".scope\n"),
       std::string("/system.slice/docker-") + id + std::string(".scope"), id},
      // Not containers
      {std::string("0::/\n"), std::string("/"), none},
      {std::string("0::/user.slice/user-0.slice/session-1.scope\n"), "?", none},
      {std::string("0::/system.slice/docker-") + id.substr(1) + std::string(".scope\n"), "?", none},
      {std::string("0::/system.slice/docker-") + Upper(id) + std::string(".scope\n"), "?", none},
  };
  for (const Case& c : cases) {
    std::string path;
    EXPECT(pm::ParseCgroup(c.text.data(), c.text.size(), path));
    if (c.cgroup != "?") EXPECT(path == c.cgroup);
    EXPECT(pm::ContainerIdOf(path) == c.container);
  }
  std::string path;
  EXPECT(!pm::ParseCgroup("", 0, path));
  EXPECT(!pm::ParseCgroup("garbage without colons", 22, path));
  EXPECT(!pm::ParseCgroup("1:2\n::\n0::relative\n", 19, path));
}

const unit::Case kCases[] = {
    {"loginuid and sessionid: decimal ids, 4294967295 unset, garbage refused", IdsOfLoginuidAndSessionid},
    {"namespace links: the inode number of \"pid:[N]\"", NamespaceLinks},
    {"NSpid: the innermost pid, from status", NspidIsTheInnermost},
    {"tty: stat's tty_nr after the name; names by the kernel's numbering, /dev, else MAJOR:MINOR", TerminalFromStat},
    {"environ: the names asked for, in that order, getenv's definition", EnvironmentByName},
    {"context: read at exec, inherited at fork, carried to exit; unset absent; unreadable missing",
     ContextReadAtExecInheritedAtForkCarriedToExit},
    {"context groups off: nothing read, nothing said", GroupsOffReadAndSayNothing},
    {"namespaces: read at exec and at fork, nspid the process's own", NamespacesAndNspidAtForkAndExec},
    {"env: the variables asked for; an exec not read does not keep the old program's", EnvironmentAskedFor},
    {"snapshot and ancestry records carry the context", RecordsCarryTheContext},
    {"cgroup and container id of each runtime's layout, from recorded /proc/PID/cgroup contents", ContainerIdsOfTheRuntimes},
};

}  // namespace

int main() { return unit::RunCases(kCases); }
