// What the reader reports and how it is configured: the types the process table, the
// monitor, the wire writer and the addon share. Plain data, no behaviour.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "parser.h"

namespace pm {

constexpr uint32_t kLost = 0xffffffffu;  // OutEvent.what for a loss report

enum LostSource : uint8_t { kLostKernel = 0, kLostQueue = 1 };

// Bits of OutEvent.missing: fields that could not be learned.
enum Missing : uint32_t {
  kMissArgv = 1u << 0,
  kMissCmdline = 1u << 1,
  kMissComm = 1u << 2,
  kMissExe = 1u << 3,
  kMissUser = 1u << 4,
  kMissPpid = 1u << 5,
  kMissDuration = 1u << 6,
  kMissExecId = 1u << 7,
  kMissParentExecId = 1u << 8,
  kMissAncestors = 1u << 9,  // the chain breaks before init: a parent is unknown
  kMissCgroup = 1u << 10,
  kMissCostFirst = 1u << 11,  // cost.FIELD: kMissCostFirst << CostField (7 fields)
  kMissCwd = 1u << 18,
  kMissAuid = 1u << 19,  // and login_user
  kMissSessionid = 1u << 20,
  kMissTty = 1u << 21,
  kMissPidns = 1u << 22,
  kMissMntns = 1u << 23,
  kMissNetns = 1u << 24,
  kMissNspid = 1u << 25,
  kMissEnv = 1u << 26,
};
constexpr uint32_t kMissingNames = 27;

// What else is read of a process at its exec (Options.context): groups of Context's fields.
enum ContextGroup : uint32_t {
  kCtxLogin = 1u << 0,  // auid (and its login_user), sessionid: /proc/PID/loginuid, sessionid
  kCtxTty = 1u << 1,    // the controlling terminal: /proc/PID/stat
  kCtxNs = 1u << 2,     // pid, mount and network namespaces (/proc/PID/ns), nspid (status)
};
constexpr uint32_t kNoId = 0xffffffffu;  // loginuid and sessionid when unset

// Who the process is beyond its uid, and where: each field is either read (its bit in
// `have`, Missing's bit order from kMissAuid) or not. Inherited at fork, read again at exec.
struct Context {
  uint32_t auid = kNoId;                                 // the login uid (audit): a human's, kept across su and sudo
  uint32_t sessionid = kNoId;                            // the audit session
  uint32_t tty = 0;                                      // the controlling terminal's device number (0: none)
  std::string tty_name;                                  // its name, "pts/3" ("" for none)
  uint64_t pidns = 0, mntns = 0, netns = 0;              // namespaces' inode numbers
  int32_t nspid = 0;                                     // the pid in its own pid namespace
  std::vector<std::pair<std::string, std::string>> env;  // Options.env's names it has, in that order
  uint32_t have = 0;                                     // Missing bits (kMissAuid ... kMissEnv) of the fields read
  bool Has(uint32_t miss_bit) const { return (have & miss_bit) != 0; }
};
constexpr uint32_t kCtxAll = kMissAuid | kMissSessionid | kMissTty | kMissPidns | kMissMntns | kMissNetns | kMissNspid | kMissEnv;

// What a process cost, on its exit event (Options.cost): each field known or not, never
// guessed. Times in microseconds here, milliseconds on the wire.
enum CostField : uint8_t {
  kCostUser = 0,  // user CPU time, us
  kCostSystem,    // system CPU time, us
  kCostMaxRss,    // peak resident set, KiB
  kCostRead,      // bytes read from storage
  kCostWrite,     // bytes written to storage
  kCostVoluntary,
  kCostInvoluntary,
  kCostFields
};
enum CostSource : uint8_t { kCostNone = 0, kCostTaskstats = 1, kCostProc = 2 };
// Options.cost: off, taskstats where the kernel allows it (else /proc), /proc only.
enum CostMode : uint8_t { kCostOff = 0, kCostAuto = 1, kCostProcOnly = 2 };

struct Cost {
  uint64_t v[kCostFields] = {};
  uint8_t have = 0;  // bit per CostField
  uint8_t source = kCostNone;
  void Set(CostField f, uint64_t x) {
    v[f] = x;
    have |= static_cast<uint8_t>(1u << f);
  }
  bool Has(CostField f) const { return (have >> f) & 1u; }
};

// One process as the table knows it: an ancestor on an event, or a snapshot entry.
struct ProcRecord {
  int32_t pid = 0;
  int32_t ppid = 0;
  std::string exec_id, parent_exec_id;
  std::string comm, exe, cmdline, user, cgroup, container_id, cwd;
  uint32_t uid = 0;
  bool have_uid = false, have_comm = false, have_exe = false, have_cmd = false;
  bool have_cgroup = false, have_cwd = false;
  bool learned = false;  // running before the connector started: learned from /proc
  Context ctx;
  uint32_t with_ctx = 0;   // Missing bits of the context's fields asked for
  std::string login_user;  // the user name of ctx.auid
  double start_ms = -1;    // wall-clock time the process started (-1: unknown)
  double exec_ms = -1;     // wall-clock time its current program started
  uint32_t threads = 0;    // live threads besides the main one, as far as seen
};

// An ancestor on an event: what identifies it.
struct Ancestor {
  int32_t pid = 0;
  std::string exec_id, comm, exe;
  bool have_exe = false;
};

struct OutEvent {
  uint32_t what = 0;
  double time_ms = 0;  // wall-clock time of the kernel's timestamp
  RawEvent raw;
  bool thread = false;
  int32_t pid = 0;   // process (tgid) the event is about (fork: the child)
  int32_t ppid = 0;  // parent process (fork: parent tgid)
  uint32_t uid = 0;
  std::string user, comm, cmdline, exe;
  std::vector<std::string> argv;
  double duration_ms = -1;
  uint32_t missing = 0;
  std::string exec_id, parent_exec_id;  // this program run, and its parent's
  std::vector<Ancestor> ancestors;
  bool with_ancestors = false;
  std::string cgroup, container_id;
  bool with_cgroup = false;
  std::string cwd;  // exec and exit with Options.cwd: the working directory at its last exec
  bool with_cwd = false, have_cwd = false;
  Context ctx;             // fork, exec and exit: the fields Options.context and env ask for
  uint32_t with_ctx = 0;   // Missing bits of the fields asked for
  std::string login_user;  // the user name of ctx.auid
  bool learned = false;
  uint64_t lost_count = 0;
  uint8_t lost_source = kLostKernel;
  Cost cost;                     // process exits with Options.cost (source kCostNone: none)
  bool single_threaded = false;  // no other thread of the process was ever seen (it was seen from its fork)
};

// One term of Options.filter (filter.h): "match" or "exclude" KEY=VALUE.
struct FilterRule {
  bool exclude = false;
  std::string key, value;
};

struct Options {
  uint32_t events = kFork | kExec | kExit;   // what to report
  bool threads = false;                      // report non-leader threads too
  int rcvbuf = 8 << 20;                      // socket receive buffer, bytes (0: leave as is)
  bool kernel_filter = true;                 // use the Linux 6.6+ event filter when it helps
  size_t queue_max = 65536;                  // events buffered for JS at most
  size_t table_max = 65536;                  // processes remembered at most
  int ack_timeout_ms = 1000;                 // wait for the kernel's acknowledgement
  int nice = -10;                            // reader thread's nice value, where permitted
  bool seed = true;                          // learn the running processes from /proc at start
  int batch_interval_us = 1000;              // wake JS at most this often (0: for every read)
  int read_interval_us = 0;                  // read the socket at most this often (0: as events come)
  uint32_t ancestor_events = kExec;          // events that carry their ancestors
  int ancestor_depth = 16;                   // ancestors listed at most
  bool cgroups = true;                       // cgroup and container id on events
  bool cwd = true;                           // working directory (at exec) on exec and exit events
  uint32_t context = kCtxLogin | kCtxTty;    // what else is read at exec (ContextGroup)
  std::vector<std::string> env;              // environment variables read at exec (where permitted)
  std::vector<std::string> redact;           // secrets shown as "*****" wherever argv holds them
  std::vector<std::string> redact_patterns;  // arguments whose value shows as "***" (redact.h)
  bool redact_defaults = false;              // the secrets command lines carry in practice
  std::vector<FilterRule> filter;            // which events go out (EventFilter); empty: all
  uint8_t cost = kCostOff;                   // what a process cost, on its exit (CostMode)
  // Only these processes and their descendants (by fork lineage) are followed: nothing of the
  // rest of the host is read, kept or reported. Empty: the whole host.
  std::vector<int32_t> subtree;
};

}  // namespace pm
