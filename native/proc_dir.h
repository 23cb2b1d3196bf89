// Reading /proc files. ProcDir: one process's /proc directory, opened once (O_PATH) and
// read relative to it, so that every file read through it is that process's, never a later
// one's under a reused pid (the directory stays bound to the process it was opened for: once
// that is reaped, reads through it fail), and no read looks up /proc/PID again.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace pm {

class ProcDir {
 public:
  ProcDir() = default;
  ~ProcDir() { Close(); }
  ProcDir(ProcDir&& o) noexcept : fd_(o.fd_), pid_(o.pid_) { o.fd_ = -1; }
  ProcDir& operator=(ProcDir&& o) noexcept;
  ProcDir(const ProcDir&) = delete;
  ProcDir& operator=(const ProcDir&) = delete;

  // Reads the whole small file /proc/PID/LEAF into buf, at most `limit` bytes. Opens
  // /proc/PID on first use (again if asked for another pid). Bytes read, or -1 (errno set:
  // ENOENT or ESRCH when the process is gone).
  ssize_t Read(int32_t pid, const char* leaf, std::string& buf, size_t limit);
  // The target of the link /proc/PID/LEAF; false (errno set) when it cannot be read, or is
  // longer than PATH_MAX (it would be cut: a wrong path is worse than none).
  bool Link(int32_t pid, const char* leaf, std::string& out);
  void Close();

 private:
  bool Open(int32_t pid);
  int fd_ = -1;
  int32_t pid_ = 0;
};

// /proc/PID/LEAF read by its path, for a single read (ProcDir for several of one process).
ssize_t ReadProcFile(int32_t pid, const char* leaf, std::string& buf, size_t limit);
// Any small file of the kernel's (/sys, /proc) read whole, as ProcDir::Read.
ssize_t ReadKernelFile(const char* path, std::string& buf, size_t limit);

}  // namespace pm
