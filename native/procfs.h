// Reading what /proc knows of a process, and user names. Plain functions and a cache;
// the caller owns every object (no global state).
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "context.h"
#include "events.h"
#include "proc_dir.h"

namespace pm {

struct ProcInfo {
  bool have_argv = false;
  bool have_status = false;
  bool have_exe = false;
  bool have_comm = false;  // comm alone (ReadComm), without the rest of status
  bool have_cwd = false;
  std::vector<std::string> argv;
  std::string comm;
  std::string exe;
  std::string cwd;  // the working directory (readlink of /proc/PID/cwd)
  int32_t ppid = 0;
  uint32_t uid = 0;  // real uid
  uint32_t euid = 0;
  int exe_errno = 0;  // why exe is missing (EACCES: not ours, ENOENT: gone or kernel thread)
  // /proc/PID was gone when argv was read: the process has been reaped, and whatever else
  // is read under its pid now is nothing, or another process that reused the pid. Also set,
  // before any read, for an exec superseded in its batch (a later exec, or a new process under
  // its pid): /proc would show the later one.
  bool gone = false;
  Context ctx;  // login identity, tty, namespaces, environment (Options.context, Options.env)
  ProcDir dir;  // every read of this process goes through it (ReadArgv opens it)
};

// Reads argv (/proc/PID/cmdline), exe and cwd (readlink), the context (ReadContext) and
// comm/ppid/uid/nspid (/proc/PID/status), in that order: what a process loses first when it
// exits first; cwd and the context as `o` asks. Returns false if the process is already gone.
bool ReadProc(int32_t pid, const Options& o, ProcInfo& out);

// Start time of a process in nanoseconds since boot (/proc/PID/stat), 0 if unknown.
uint64_t ReadStartNs(int32_t pid);

// Field `want` (1-based, as in proc(5)) of the text of /proc/PID/stat, a number (pure).
bool ParseStatField(const char* text, size_t len, int want, uint64_t* out);
// Parses the text of /proc/PID/stat for the start time in clock ticks (pure; for tests).
bool ParseStatStart(const char* text, size_t len, uint64_t* ticks);

// What a zombie cost (the process's exit event was read, its parent has not reaped it):
// /proc/PID/stat (utime, stime), /status (VmHWM, context switches), /io (read_bytes,
// write_bytes); what cannot be read is left unset. False, nothing learned, unless /proc/PID
// is a zombie both before and after the reads (else it is not, or no longer, that process).
bool ReadCost(int32_t pid, Cost& out);
// The pure parts (for tests and fuzzing). ParseCostStat is false unless the state is 'Z'.
bool ParseCostStat(const char* text, size_t len, long hz, Cost& out);
void ParseCostStatus(const char* text, size_t len, Cost& out);
void ParseCostIo(const char* text, size_t len, Cost& out);

// The pids of every process in /proc.
std::vector<int32_t> ListPids();
// `roots` (those running) and every process now descending from one of them, by the parent
// each names in /proc/PID/stat: parents before their children.
std::vector<int32_t> ListSubtree(const std::vector<int32_t>& roots);
// The pure part: the same of (pid, ppid) pairs (for tests). A root not among them is left out.
std::vector<int32_t> SubtreeOf(const std::vector<int32_t>& roots, const std::vector<std::pair<int32_t, int32_t>>& parents);
// Parses the text of /proc/PID/stat for the parent's pid (pure; for tests).
bool ParseStatPpid(const char* text, size_t len, int32_t* ppid);

// The three parts on their own. ReadArgv returns false if the process is gone (and sets
// `gone` when /proc/PID itself is).
bool ReadArgv(int32_t pid, ProcInfo& out);
void ReadExe(int32_t pid, ProcInfo& out);
void ReadCwd(int32_t pid, ProcInfo& out);
bool ReadStatus(int32_t pid, ProcInfo& out);
// /proc/PID/comm alone: much cheaper than status when uid and parent are known already.
bool ReadComm(int32_t pid, ProcInfo& out);

// The cgroup of a process (/proc/PID/cgroup): the unified (v2) path, else the systemd one,
// else the first. Returns false if it cannot be read.
bool ReadCgroup(int32_t pid, std::string& out);

// Picks the path out of the text of /proc/PID/cgroup (pure; for tests and fuzzing).
bool ParseCgroup(const char* text, size_t len, std::string& out);

// The container a cgroup path belongs to, by the layouts of Docker, containerd, CRI-O,
// Podman and Kubernetes (systemd and cgroupfs drivers): the 64-hex-digit id, or "".
std::string ContainerIdOf(const std::string& cgroup);

// argv joined by single spaces, no trailing space.
std::string JoinArgv(const std::vector<std::string>& argv);

// Parses the text of /proc/PID/status (pure; exposed for tests).
bool ParseStatus(const char* text, size_t len, ProcInfo& out);

// uid -> user name from the system's user database, cached (at most kMax). Not thread-safe:
// one per reader. The name returned is good until the next call.
class UserCache {
 public:
  static constexpr size_t kMax = 4096;
  const std::string& Name(uint32_t uid);

 private:
  std::unordered_map<uint32_t, std::string> names_;
};

// What the process table learns from outside its events: /proc, whether a pid is still in
// use, user names. An interface so that the table can be run against a fake (unit tests,
// fuzzing) and stays pure there. Not thread-safe, like UserCache.
class ProcReader {
 public:
  virtual ~ProcReader() = default;
  // As ReadProc, ReadStatus, ReadComm, ReadStartNs and ReadCgroup.
  virtual bool Read(int32_t pid, const Options& o, ProcInfo& out) = 0;
  virtual bool Status(int32_t pid, ProcInfo& out) = 0;
  virtual bool Comm(int32_t pid, ProcInfo& out) = 0;
  virtual uint64_t StartNs(int32_t pid) = 0;
  virtual bool Cgroup(int32_t pid, std::string& out) = 0;
  // True if no process (thread group) has this pid any more: kill(pid, 0) fails with ESRCH.
  virtual bool Gone(int32_t pid) = 0;
  // The user name of uid (UserCache::Name).
  virtual const std::string& UserName(uint32_t uid) = 0;
  // As ReadCost (not pure virtual: the table never asks, only ExitCost does).
  virtual bool CostOf(int32_t /*pid*/, Cost& /*out*/) { return false; }
  // As ReadContext of `groups` alone, without the environment (a forked child's namespaces).
  virtual void Context(int32_t /*pid*/, uint32_t /*groups*/, ProcInfo& /*out*/) {}
  // The name of a terminal (TtyNames::Name; here TtyNameOf, else "MAJOR:MINOR").
  virtual std::string TtyName(uint32_t dev);
};

// The real one: the functions above and a UserCache.
class SystemProcReader : public ProcReader {
 public:
  bool Read(int32_t pid, const Options& o, ProcInfo& out) override { return ReadProc(pid, o, out); }
  bool Status(int32_t pid, ProcInfo& out) override { return ReadStatus(pid, out); }
  bool Comm(int32_t pid, ProcInfo& out) override { return ReadComm(pid, out); }
  uint64_t StartNs(int32_t pid) override { return ReadStartNs(pid); }
  bool Cgroup(int32_t pid, std::string& out) override { return ReadCgroup(pid, out); }
  bool Gone(int32_t pid) override;
  const std::string& UserName(uint32_t uid) override { return users_.Name(uid); }
  bool CostOf(int32_t pid, Cost& out) override { return ReadCost(pid, out); }
  void Context(int32_t pid, uint32_t groups, ProcInfo& out) override { ReadContext(pid, groups, {}, out.dir, out.ctx); }
  std::string TtyName(uint32_t dev) override { return ttys_.Name(dev); }

 private:
  UserCache users_;
  TtyNames ttys_;
};

}  // namespace pm
