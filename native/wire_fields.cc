#include "wire_fields.h"

#include <cmath>
#include <cstdio>

#include "wire.h"

namespace pm {

void AppendKey(std::string& out, const char* key) {
  out += ",\"";
  out += key;
  out += "\":";
}

void AppendInt(std::string& out, int64_t v) {
  char buf[24];
  int n = std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(v));
  out.append(buf, static_cast<size_t>(n));
}

void AppendUint(std::string& out, uint64_t v) {
  char buf[24];
  int n = std::snprintf(buf, sizeof buf, "%llu", static_cast<unsigned long long>(v));
  out.append(buf, static_cast<size_t>(n));
}

// A duration in milliseconds with microseconds (what the reader computes): the shortest form
// that reads back as the same double, as JS prints it ("12.5", "3", "0.001").
void AppendMs(std::string& out, double ms) {
  if (!(ms >= 0) || ms >= 1e12) {  // not produced by the reader; printed plainly
    char buf[40];
    int n = std::snprintf(buf, sizeof buf, "%.0f", std::isfinite(ms) ? ms : 0.0);
    out.append(buf, static_cast<size_t>(n));
    return;
  }
  int64_t us = static_cast<int64_t>(ms * 1000 + 0.5);  // ms >= 0 here; no libm (llround)
  AppendInt(out, us / 1000);
  int frac = static_cast<int>(us % 1000);
  if (frac == 0) return;
  char buf[8];
  std::snprintf(buf, sizeof buf, ".%03d", frac);
  size_t len = 4;
  while (buf[len - 1] == '0') len--;
  out.append(buf, len);
}

void AppendStr(std::string& out, const char* key, const std::string& v) {
  AppendKey(out, key);
  AppendJsonString(out, v);
}

// "cost":{...}: the fields known, times in ms; the rest are named in missing.
void AppendCost(std::string& out, const Cost& c) {
  static const char* const kKeys[kCostFields] = {
      "user_ms", "system_ms", "max_rss_kb", "read_bytes", "write_bytes", "voluntary_ctxt_switches", "involuntary_ctxt_switches"};
  out += ",\"cost\":{";
  for (int f = 0; f < kCostFields; f++) {
    if (!c.Has(static_cast<CostField>(f))) continue;
    out.push_back('"');
    out += kKeys[f];
    out += "\":";
    if (f == kCostUser || f == kCostSystem) {
      AppendMs(out, static_cast<double>(c.v[f]) / 1000.0);
    } else {
      AppendUint(out, c.v[f]);
    }
    out.push_back(',');
  }
  out += c.source == kCostTaskstats ? "\"source\":\"taskstats\"}" : "\"source\":\"proc\"}";
}

namespace {
const char* const kMissNames[kMissingNames] = {"argv",
                                               "cmdline",
                                               "comm",
                                               "exe",
                                               "user",
                                               "ppid",
                                               "duration_ms",
                                               "exec_id",
                                               "parent_exec_id",
                                               "ancestors",
                                               "cgroup",
                                               "cost.user_ms",
                                               "cost.system_ms",
                                               "cost.max_rss_kb",
                                               "cost.read_bytes",
                                               "cost.write_bytes",
                                               "cost.voluntary_ctxt_switches",
                                               "cost.involuntary_ctxt_switches",
                                               "cwd",
                                               "auid",
                                               "sessionid",
                                               "tty",
                                               "pidns",
                                               "mntns",
                                               "netns",
                                               "nspid",
                                               "env"};
}  // namespace

uint32_t MissingBit(const std::string& name) {
  for (uint32_t i = 0; i < kMissingNames; i++) {
    if (name == kMissNames[i]) return 1u << i;
  }
  return 0;
}

void AppendMissing(std::string& out, uint32_t m) {
  AppendKey(out, "missing");
  out.push_back('[');
  bool first = true;
  for (uint32_t i = 0; i < kMissingNames; i++) {
    if (!(m & (1u << i))) continue;
    if (!first) out.push_back(',');
    first = false;
    out.push_back('"');
    out += kMissNames[i];
    out.push_back('"');
  }
  out.push_back(']');
}

// What identifies the process an event is about: its run, its parent's, where it runs,
// and (where asked for) its ancestors.
void AppendIdentity(std::string& out, const OutEvent& e) {
  if (!e.exec_id.empty()) AppendStr(out, "exec_id", e.exec_id);
  if (!e.parent_exec_id.empty()) AppendStr(out, "parent_exec_id", e.parent_exec_id);
  if (e.with_cgroup && !(e.missing & kMissCgroup)) {
    AppendStr(out, "cgroup", e.cgroup);
    if (!e.container_id.empty()) AppendStr(out, "container_id", e.container_id);
  }
  if (e.with_cwd && e.have_cwd) AppendStr(out, "cwd", e.cwd);
  AppendContext(out, e.ctx, e.with_ctx, e.login_user);
  if (e.learned) out += ",\"learned\":true";
  if (e.with_ancestors) {
    AppendKey(out, "ancestors");
    out.push_back('[');
    for (size_t i = 0; i < e.ancestors.size(); i++) {
      const Ancestor& an = e.ancestors[i];
      out += i ? ",{\"pid\":" : "{\"pid\":";
      AppendInt(out, an.pid);
      if (!an.exec_id.empty()) AppendStr(out, "exec_id", an.exec_id);
      AppendStr(out, "comm", an.comm);
      if (an.have_exe) AppendStr(out, "exe", an.exe);
      out.push_back('}');
    }
    out.push_back(']');
  }
}

void AppendContext(std::string& out, const Context& c, uint32_t with, const std::string& login_user) {
  uint32_t show = with & c.have;
  if ((show & kMissAuid) && c.auid != kNoId) {
    AppendKey(out, "auid");
    AppendUint(out, c.auid);
    AppendStr(out, "login_user", login_user);
  }
  if ((show & kMissSessionid) && c.sessionid != kNoId) {
    AppendKey(out, "sessionid");
    AppendUint(out, c.sessionid);
  }
  if (show & kMissTty) {
    if (c.tty == 0) {
      out += ",\"tty\":null";
    } else {
      AppendStr(out, "tty", c.tty_name);
    }
  }
  static const char* const kNs[3] = {"pidns", "mntns", "netns"};
  const uint64_t ns[3] = {c.pidns, c.mntns, c.netns};
  const uint32_t bits[3] = {kMissPidns, kMissMntns, kMissNetns};
  for (int i = 0; i < 3; i++) {
    if (!(show & bits[i])) continue;
    AppendKey(out, kNs[i]);
    AppendUint(out, ns[i]);
  }
  if (show & kMissNspid) {
    AppendKey(out, "nspid");
    AppendInt(out, c.nspid);
  }
  if (show & kMissEnv) {
    AppendKey(out, "env");
    out.push_back('{');
    for (size_t i = 0; i < c.env.size(); i++) {
      if (i) out.push_back(',');
      AppendJsonString(out, c.env[i].first);
      out.push_back(':');
      AppendJsonString(out, c.env[i].second);
    }
    out.push_back('}');
  }
}

namespace {

void AppendNullable(std::string& out, const char* key, bool have, const std::string& v) {
  if (have) {
    AppendStr(out, key, v);
  } else {
    AppendKey(out, key);
    out += "null";
  }
}

void AppendRecord(std::string& out, const ProcRecord& r) {
  out += "{\"pid\":";
  AppendInt(out, r.pid);
  AppendKey(out, "ppid");
  AppendInt(out, r.ppid);
  if (!r.exec_id.empty()) AppendStr(out, "exec_id", r.exec_id);
  if (!r.parent_exec_id.empty()) AppendStr(out, "parent_exec_id", r.parent_exec_id);
  AppendNullable(out, "comm", r.have_comm, r.comm);
  AppendNullable(out, "exe", r.have_exe, r.exe);
  AppendNullable(out, "cmdline", r.have_cmd, r.cmdline);
  AppendNullable(out, "user", r.have_uid, r.user);
  AppendKey(out, "uid");
  if (r.have_uid) {
    AppendUint(out, r.uid);
  } else {
    out += "null";
  }
  AppendNullable(out, "start_time", r.start_ms >= 0, r.start_ms >= 0 ? TimeText(r.start_ms) : std::string());
  AppendNullable(out, "exec_time", r.exec_ms >= 0, r.exec_ms >= 0 ? TimeText(r.exec_ms) : std::string());
  if (r.have_cgroup) {
    AppendStr(out, "cgroup", r.cgroup);
    if (!r.container_id.empty()) AppendStr(out, "container_id", r.container_id);
  }
  if (r.have_cwd) AppendStr(out, "cwd", r.cwd);
  AppendContext(out, r.ctx, r.with_ctx, r.login_user);
  AppendKey(out, "threads");
  AppendUint(out, r.threads);
  out += r.learned ? ",\"learned\":true}" : ",\"learned\":false}";
}

}  // namespace

void AppendRecords(std::string& out, const std::vector<ProcRecord>& recs) {
  out.push_back('[');
  for (size_t i = 0; i < recs.size(); i++) {
    if (i) out.push_back(',');
    AppendRecord(out, recs[i]);
  }
  out.push_back(']');
}

}  // namespace pm
