// The wire format's parts (wire.h's AppendEventLine assembles them): numbers, keys, and the
// fields an event shares with a record of the table (identity, context, cost, missing).
// Pure, like wire.h.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "events.h"

namespace pm {

// ,"key":
void AppendKey(std::string& out, const char* key);
void AppendInt(std::string& out, int64_t v);
void AppendUint(std::string& out, uint64_t v);
// A duration in milliseconds with microseconds, as JS prints the double.
void AppendMs(std::string& out, double ms);
// ,"key":"v"
void AppendStr(std::string& out, const char* key, const std::string& v);

// "cost":{...}: the fields known, times in ms; the rest are named in missing.
void AppendCost(std::string& out, const Cost& c);
// "missing":[...]: the names of the bits of m.
void AppendMissing(std::string& out, uint32_t m);
// The bit of a name in "missing" (0: not one).
uint32_t MissingBit(const std::string& name);
// The context's fields of `with` (Missing bits) that were read: "auid" and "login_user"
// (absent when the login uid is unset), "sessionid" (absent when unset), "tty" (null: none),
// "pidns", "mntns", "netns", "nspid", "env" ({NAME: value}).
void AppendContext(std::string& out, const Context& c, uint32_t with, const std::string& login_user);
// What identifies the process an event is about: its run, its parent's, where it runs, its
// context, and (where asked for) its ancestors.
void AppendIdentity(std::string& out, const OutEvent& e);

// The records as a JSON array: the objects snapshot() and ancestry() return.
void AppendRecords(std::string& out, const std::vector<ProcRecord>& recs);

}  // namespace pm
