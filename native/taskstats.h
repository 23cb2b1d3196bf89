// The kernel's taskstats interface (generic netlink family "TASKSTATS"): what each task
// cost, sent by the kernel as it exits (do_exit -> taskstats_exit) to the sockets registered
// for the CPU it ran on. ParseTaskstats is pure (bytes in, records out; test/native/
// taskstats_test.cc, fuzz/taskstats_fuzzer.cc); TaskstatsSocket opens, registers and reads.
// Registering needs CAP_NET_ADMIN.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "events.h"

namespace pm {

// One task's exit statistics (TASKSTATS_TYPE_AGGR_PID), or a thread group's
// (TASKSTATS_TYPE_AGGR_TGID: at exit it holds delay accounting only, none of Cost's fields).
struct TaskstatsRecord {
  int32_t pid = 0;   // the task (TASKSTATS_TYPE_PID) or thread group (TGID), init namespace
  int32_t tgid = 0;  // a task's thread group, 0 where the struct does not say it in pid's namespace
  bool group = false;
  bool foreign = false;  // the task's pid namespace is not the initial one (ac_pid != pid)
  uint16_t version = 0;  // struct taskstats' version
  Cost cost;             // the fields the struct was long enough to hold (source kCostTaskstats)
};

// Parses the netlink messages in buf (one datagram) of the family with id `family`: appends
// a record per AGGR_PID / AGGR_TGID. Returns the number of messages or attributes it could
// not use (0: all well). Never reads outside buf.
size_t ParseTaskstats(const uint8_t* buf, size_t len, uint16_t family, std::vector<TaskstatsRecord>& out);

// Parses a struct taskstats of `len` bytes (the attribute's payload): only fields that lie
// wholly inside it are set.
bool ParseTaskstatsStruct(const uint8_t* p, size_t len, TaskstatsRecord& out);

class TaskstatsSocket {
 public:
  TaskstatsSocket() = default;
  ~TaskstatsSocket() { Close(); }
  TaskstatsSocket(const TaskstatsSocket&) = delete;
  TaskstatsSocket& operator=(const TaskstatsSocket&) = delete;

  // Resolves the family, registers for exits on every possible CPU (non-blocking after).
  // False, with *why ("EPERM: ...", "ENOENT: ..."), where the kernel refuses or lacks it.
  bool Open(std::string* why);
  // Reads every datagram waiting; records appended. Returns false on ENOBUFS (the kernel
  // dropped some: *dropped set) or another error; true when drained.
  bool Receive(std::vector<TaskstatsRecord>& out, bool* dropped, uint64_t* malformed);
  // Deregisters and closes.
  void Close();
  int fd() const { return fd_; }

 private:
  bool Request(uint16_t type, uint8_t cmd, uint16_t attr, const std::string& value, std::vector<uint8_t>* reply, int* err);

  int fd_ = -1;
  uint16_t family_ = 0;
  uint32_t seq_ = 0;
  std::string cpus_;
  std::vector<uint8_t> buf_;
};

}  // namespace pm
