#include "taskstats.h"

#include <linux/genetlink.h>
#include <linux/netlink.h>
#include <linux/taskstats.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace pm {
namespace {

// Offsets in struct taskstats (linux/taskstats.h, every version since 1; the struct only
// grows at its end). A field is used only if the kernel's struct is long enough to hold it.
constexpr size_t kOffPid = 128;         // __u32 ac_pid (the task's own pid namespace)
constexpr size_t kOffUtime = 152;       // __u64 ac_utime, us
constexpr size_t kOffStime = 160;       // __u64 ac_stime, us
constexpr size_t kOffHiwaterRss = 200;  // __u64 hiwater_rss, KiB
constexpr size_t kOffReadBytes = 248;   // __u64 read_bytes
constexpr size_t kOffWriteBytes = 256;  // __u64 write_bytes
constexpr size_t kOffNvcsw = 272;       // __u64 nvcsw
constexpr size_t kOffNivcsw = 280;      // __u64 nivcsw
constexpr size_t kOffTgid = 368;        // __u32 ac_tgid (version 12 on)

bool U64(const uint8_t* p, size_t len, size_t off, uint64_t* v) {
  if (off > len || len - off < 8) return false;
  std::memcpy(v, p + off, 8);
  return true;
}
bool U32(const uint8_t* p, size_t len, size_t off, uint32_t* v) {
  if (off > len || len - off < 4) return false;
  std::memcpy(v, p + off, 4);
  return true;
}

// Walks the attributes in [p, p + len): calls f(type, payload, payload length) for each
// well-formed one; false if one is malformed (the walk stops there).
template <typename F>
bool Attrs(const uint8_t* p, size_t len, F f) {
  size_t off = 0;
  while (len - off >= NLA_HDRLEN) {
    nlattr a;
    std::memcpy(&a, p + off, sizeof a);
    if (a.nla_len < NLA_HDRLEN || a.nla_len > len - off) return false;
    f(static_cast<uint16_t>(a.nla_type & NLA_TYPE_MASK), p + off + NLA_HDRLEN, static_cast<size_t>(a.nla_len - NLA_HDRLEN));
    size_t step = NLA_ALIGN(static_cast<size_t>(a.nla_len));
    if (step > len - off) break;
    off += step;
  }
  return true;
}

}  // namespace

bool ParseTaskstatsStruct(const uint8_t* p, size_t len, TaskstatsRecord& out) {
  if (len < 2) return false;
  std::memcpy(&out.version, p, 2);
  if (out.version == 0) return false;
  Cost& c = out.cost;
  c.source = kCostTaskstats;
  static const struct {
    size_t off;
    CostField field;
  } kFields[] = {{kOffUtime, kCostUser},       {kOffStime, kCostSystem},    {kOffHiwaterRss, kCostMaxRss}, {kOffReadBytes, kCostRead},
                 {kOffWriteBytes, kCostWrite}, {kOffNvcsw, kCostVoluntary}, {kOffNivcsw, kCostInvoluntary}};
  for (const auto& f : kFields) {
    uint64_t v = 0;
    if (U64(p, len, f.off, &v)) c.Set(f.field, v);
  }
  // ac_pid and ac_tgid are in the exiting task's pid namespace; the record's pid is in the
  // initial one. Where they agree the namespaces do, and ac_tgid is the tgid we know.
  uint32_t ac_pid = 0, ac_tgid = 0;
  if (U32(p, len, kOffPid, &ac_pid)) out.foreign = static_cast<int32_t>(ac_pid) != out.pid;
  if (U32(p, len, kOffPid, &ac_pid) && U32(p, len, kOffTgid, &ac_tgid) && ac_tgid != 0) {
    if (static_cast<int32_t>(ac_pid) == out.pid) {
      out.tgid = static_cast<int32_t>(ac_tgid);
    } else if (ac_pid == ac_tgid) {
      out.tgid = out.pid;  // the leader, whatever its namespace
    }
  }
  return true;
}

size_t ParseTaskstats(const uint8_t* buf, size_t len, uint16_t family, std::vector<TaskstatsRecord>& out) {
  size_t bad = 0;
  size_t off = 0;
  while (len - off >= NLMSG_HDRLEN) {
    nlmsghdr h;
    std::memcpy(&h, buf + off, sizeof h);
    if (h.nlmsg_len < NLMSG_HDRLEN || h.nlmsg_len > len - off) return bad + 1;
    const uint8_t* body = buf + off + NLMSG_HDRLEN;
    size_t blen = h.nlmsg_len - NLMSG_HDRLEN;
    if (h.nlmsg_type == family && blen >= GENL_HDRLEN) {
      genlmsghdr g;
      std::memcpy(&g, body, sizeof g);
      if (g.cmd == TASKSTATS_CMD_NEW) {
        bool ok = Attrs(body + GENL_HDRLEN, blen - GENL_HDRLEN, [&](uint16_t type, const uint8_t* p, size_t n) {
          if (type != TASKSTATS_TYPE_AGGR_PID && type != TASKSTATS_TYPE_AGGR_TGID) return;
          TaskstatsRecord r;
          r.group = type == TASKSTATS_TYPE_AGGR_TGID;
          const uint8_t* stats = nullptr;
          size_t slen = 0;
          bool inner = Attrs(p, n, [&](uint16_t t, const uint8_t* q, size_t m) {
            uint32_t id = 0;
            if ((t == TASKSTATS_TYPE_PID || t == TASKSTATS_TYPE_TGID) && U32(q, m, 0, &id)) r.pid = static_cast<int32_t>(id);
            if (t == TASKSTATS_TYPE_STATS) stats = q, slen = m;
          });
          if (!inner || r.pid <= 0 || stats == nullptr || !ParseTaskstatsStruct(stats, slen, r)) {
            bad++;
            return;
          }
          if (r.group) r.tgid = r.pid;
          out.push_back(r);
        });
        if (!ok) bad++;
      }
    } else if (h.nlmsg_type != NLMSG_NOOP && h.nlmsg_type != NLMSG_DONE && h.nlmsg_type != NLMSG_ERROR) {
      bad++;
    }
    size_t step = NLMSG_ALIGN(static_cast<size_t>(h.nlmsg_len));
    if (step > len - off) break;
    off += step;
  }
  return bad;
}

bool TaskstatsSocket::Request(uint16_t type, uint8_t cmd, uint16_t attr, const std::string& value, std::vector<uint8_t>* reply, int* err) {
  uint8_t msg[256] = {};
  size_t alen = NLA_HDRLEN + value.size() + 1;
  size_t total = NLMSG_HDRLEN + GENL_HDRLEN + NLA_ALIGN(alen);
  if (total > sizeof msg) {
    *err = EINVAL;
    return false;
  }
  nlmsghdr h{};
  h.nlmsg_len = static_cast<uint32_t>(total);
  h.nlmsg_type = type;
  h.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
  h.nlmsg_seq = ++seq_;
  genlmsghdr g{};
  g.cmd = cmd;
  g.version = 1;
  nlattr a{};
  a.nla_len = static_cast<uint16_t>(alen);
  a.nla_type = attr;
  std::memcpy(msg, &h, sizeof h);
  std::memcpy(msg + NLMSG_HDRLEN, &g, sizeof g);
  std::memcpy(msg + NLMSG_HDRLEN + GENL_HDRLEN, &a, sizeof a);
  std::memcpy(msg + NLMSG_HDRLEN + GENL_HDRLEN + NLA_HDRLEN, value.c_str(), value.size() + 1);
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (sendto(fd_, msg, total, 0, reinterpret_cast<sockaddr*>(&kernel), sizeof kernel) < 0) {
    *err = errno;
    return false;
  }
  // The answer (if any) and the acknowledgement, within a second.
  for (int rounds = 0; rounds < 16; rounds++) {
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, 1000) <= 0) {
      *err = ETIMEDOUT;
      return false;
    }
    buf_.resize(1 << 16);
    ssize_t n = recv(fd_, buf_.data(), buf_.size(), MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      *err = errno;
      return false;
    }
    size_t off = 0, len = static_cast<size_t>(n);
    while (len - off >= NLMSG_HDRLEN) {
      nlmsghdr r;
      std::memcpy(&r, buf_.data() + off, sizeof r);
      if (r.nlmsg_len < NLMSG_HDRLEN || r.nlmsg_len > len - off) break;
      if (r.nlmsg_seq == seq_) {
        if (r.nlmsg_type == NLMSG_ERROR && r.nlmsg_len >= NLMSG_HDRLEN + sizeof(int)) {
          int e = 0;
          std::memcpy(&e, buf_.data() + off + NLMSG_HDRLEN, sizeof e);
          *err = -e;
          return e == 0;
        }
        if (reply != nullptr) reply->assign(buf_.data() + off, buf_.data() + off + r.nlmsg_len);
      }
      off += NLMSG_ALIGN(static_cast<size_t>(r.nlmsg_len));
    }
  }
  *err = ETIMEDOUT;
  return false;
}

bool TaskstatsSocket::Open(std::string* why) {
  Close();
  fd_ = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_GENERIC);
  if (fd_ < 0) {
    *why = std::string("socket(NETLINK_GENERIC): ") + std::strerror(errno);
    return false;
  }
  int size = 4 << 20;
  if (setsockopt(fd_, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) < 0) {
    setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
  }
  sockaddr_nl me{};
  me.nl_family = AF_NETLINK;
  int err = 0;
  std::vector<uint8_t> reply;
  if (bind(fd_, reinterpret_cast<sockaddr*>(&me), sizeof me) < 0 ||
      !Request(GENL_ID_CTRL, CTRL_CMD_GETFAMILY, CTRL_ATTR_FAMILY_NAME, TASKSTATS_GENL_NAME, &reply, &err)) {
    *why = std::string("the TASKSTATS family: ") + std::strerror(err != 0 ? err : errno);
    Close();
    return false;
  }
  if (reply.size() > NLMSG_HDRLEN + GENL_HDRLEN) {
    Attrs(reply.data() + NLMSG_HDRLEN + GENL_HDRLEN, reply.size() - NLMSG_HDRLEN - GENL_HDRLEN,
          [&](uint16_t t, const uint8_t* p, size_t n) {
            if (t == CTRL_ATTR_FAMILY_ID && n >= 2) std::memcpy(&family_, p, 2);
          });
  }
  // Every possible CPU, as the kernel lists them (a subset of cpu_possible_mask is required;
  // the kernel takes 100 characters at most, TASKSTATS_CPUMASK_MAXLEN).
  cpus_.clear();
  FILE* f = std::fopen("/sys/devices/system/cpu/possible", "re");
  if (f != nullptr) {
    char line[128] = {};
    if (std::fgets(line, sizeof line, f) != nullptr) cpus_ = line;
    std::fclose(f);
  }
  while (!cpus_.empty() && (cpus_.back() == '\n' || cpus_.back() == ' ')) cpus_.pop_back();
  if (family_ == 0 || cpus_.empty() || cpus_.size() >= 100) {
    *why = family_ == 0 ? "the TASKSTATS family has no id" : "the possible CPUs cannot be listed";
    Close();
    return false;
  }
  if (!Request(family_, TASKSTATS_CMD_GET, TASKSTATS_CMD_ATTR_REGISTER_CPUMASK, cpus_, nullptr, &err)) {
    *why = std::string("registering for exit statistics: ") + std::strerror(err);
    cpus_.clear();
    Close();
    return false;
  }
  return true;
}

bool TaskstatsSocket::Receive(std::vector<TaskstatsRecord>& out, bool* dropped, uint64_t* malformed) {
  buf_.resize(1 << 16);
  for (;;) {
    ssize_t n = recv(fd_, buf_.data(), buf_.size(), MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == ENOBUFS) {
        *dropped = true;
        continue;
      }
      return errno == EAGAIN || errno == EWOULDBLOCK;
    }
    *malformed += ParseTaskstats(buf_.data(), static_cast<size_t>(n), family_, out);
  }
}

void TaskstatsSocket::Close() {
  if (fd_ < 0) return;
  if (!cpus_.empty()) {
    int err = 0;
    Request(family_, TASKSTATS_CMD_GET, TASKSTATS_CMD_ATTR_DEREGISTER_CPUMASK, cpus_, nullptr, &err);
  }
  close(fd_);
  fd_ = -1;
  family_ = 0;
  cpus_.clear();
}

}  // namespace pm
