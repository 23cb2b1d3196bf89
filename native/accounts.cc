#include "accounts.h"

#include <grp.h>
#include <pwd.h>
#include <sys/socket.h>

#include <cerrno>
#include <vector>

namespace pm {

namespace {

// Runs a reentrant lookup with a buffer grown on ERANGE (at most 1 MiB).
template <typename Rec, typename Fn>
int Lookup(Fn fn, Rec* rec, Rec** res) {
  std::vector<char> buf(4096);
  int rc;
  while ((rc = fn(rec, buf.data(), buf.size(), res)) == ERANGE && buf.size() < (1u << 20)) buf.resize(buf.size() * 2);
  return rc;
}

}  // namespace

int LookupId(IdDb db, const std::string& name, uint32_t* id) {
  if (name.empty() || name.find('\0') != std::string::npos) return ENOENT;
  if (db == IdDb::kUser) {
    passwd pw{};
    passwd* res = nullptr;
    int rc = Lookup<passwd>([&](passwd* r, char* b, size_t n, passwd** out) { return getpwnam_r(name.c_str(), r, b, n, out); }, &pw, &res);
    if (res) *id = pw.pw_uid;
    return res ? 0 : (rc == 0 ? ENOENT : rc);
  }
  group gr{};
  group* res = nullptr;
  int rc = Lookup<group>([&](group* r, char* b, size_t n, group** out) { return getgrnam_r(name.c_str(), r, b, n, out); }, &gr, &res);
  if (res) *id = gr.gr_gid;
  return res ? 0 : (rc == 0 ? ENOENT : rc);
}

int ReadPeerCred(int fd, PeerCred* out) {
  ucred c{};
  socklen_t len = sizeof c;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &c, &len) != 0) return errno;
  out->pid = c.pid;
  out->uid = c.uid;
  out->gid = c.gid;
  return 0;
}

}  // namespace pm
