// The account database and socket peers: names to ids (getpwnam_r/getgrnam_r, which may ask
// NSS: LDAP, sssd; so callers run them off the JS thread) and who is at the other end of a
// Unix socket (SO_PEERCRED). Plain functions, no state.
#pragma once

#include <cstdint>
#include <string>

namespace pm {

enum class IdDb { kUser, kGroup };

// The id of a user or group name. Returns 0 when found, ENOENT when there is no such name,
// else the errno of the lookup (EIO, ...).
int LookupId(IdDb db, const std::string& name, uint32_t* id);

struct PeerCred {
  int32_t pid = 0;
  uint32_t uid = 0;
  uint32_t gid = 0;
};

// The credentials of a connected Unix socket's peer. Returns 0 or the errno.
int ReadPeerCred(int fd, PeerCred* out);

}  // namespace pm
