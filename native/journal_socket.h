// A datagram socket to journald's native protocol socket (/run/systemd/journal/socket): one
// entry per datagram, or, for an entry too large for one, a sealed memfd passed along
// (journald's own way, as sd_journal_sendv does). Never blocks: a full queue is EAGAIN.
// No Node-API here (the binding is addon_journal.cc).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace pm {

class JournalSocket {
 public:
  JournalSocket() = default;
  ~JournalSocket() { Close(); }
  JournalSocket(const JournalSocket&) = delete;
  JournalSocket& operator=(const JournalSocket&) = delete;

  // Opens the socket (unconnected, non-blocking): 0, or an errno.
  int Open();
  // Sends one entry (native protocol bytes) to the socket at `path`: 0, or an errno
  // (EAGAIN: journald's queue is full; ENOENT/ECONNREFUSED: nobody listens there; EMSGSIZE
  // or ENOSYS: too large, and no memfd to send it in).
  int Send(const std::string& path, const uint8_t* data, size_t len);
  void Close();
  bool IsOpen() const { return fd_ >= 0; }

 private:
  int SendMemfd(const void* addr, unsigned addrlen, const uint8_t* data, size_t len);
  int fd_ = -1;
};

}  // namespace pm
