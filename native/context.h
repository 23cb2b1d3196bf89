// A process's context beyond its uid (Context, events.h): login identity, controlling
// terminal, namespaces, chosen environment variables; read through its ProcDir at exec, and
// the pure parsers that turn /proc's text into them (unit-tested and fuzzed).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "events.h"
#include "proc_dir.h"

namespace pm {

// The Missing bits (kMissAuid ... kMissEnv) of the fields that `groups` (ContextGroup) and a
// non-empty env list ask for.
uint32_t ContextWanted(uint32_t groups, bool env);

// Reads what `groups` and `env` ask for of process pid through dir into ctx, setting ctx.have
// for each field read; nspid comes from /proc/PID/status (ParseStatus), not from here.
void ReadContext(int32_t pid, uint32_t groups, const std::vector<std::string>& env, ProcDir& dir, Context& ctx);

// Pure parts, bytes in, values out.
// A decimal id as /proc/PID/loginuid and sessionid hold it ("1000", "4294967295").
bool ParseId(const char* text, size_t len, uint32_t* out);
// A namespace link's inode number: "pid:[4026531836]".
bool ParseNsLink(const std::string& link, uint64_t* ino);
// The pid in the process's own namespace: the last number of status's "NSpid:" line.
bool ParseNspid(const char* text, size_t len, int32_t* nspid);
// The controlling terminal's device number (stat's tty_nr, field 7; 0: none).
bool ParseStatTty(const char* text, size_t len, uint32_t* dev);
// The values of `names` in environ's text (NAME=value, NUL-separated), in the order of names;
// a name given twice counts once, a name the process lacks is left out.
void ParseEnviron(const char* text, size_t len, const std::vector<std::string>& names,
                  std::vector<std::pair<std::string, std::string>>& out);
// The name of a terminal by its device number, where the kernel's numbering alone tells it:
// "pts/3" (Unix98 ptys), "tty1", "ttyS0", "console"; "" for others.
std::string TtyNameOf(uint32_t dev);
// The DEVNAME= of a device's uevent text (/sys/dev/char/M:N/uevent): its name under /dev.
std::string ParseDevName(const char* text, size_t len);
// "MAJOR:MINOR" of a device number as tty_nr encodes it.
std::string TtyNumberText(uint32_t dev);

// Terminal names by device number: TtyNameOf, else the device's name under /dev as sysfs has
// it ("ttyUSB0", "hvc0"), else "MAJOR:MINOR". Cached; not thread-safe, like UserCache.
class TtyNames {
 public:
  const std::string& Name(uint32_t dev);

 private:
  std::unordered_map<uint32_t, std::string> names_;
};

}  // namespace pm
