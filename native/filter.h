// Which events go out (Options.filter): terms on what an event says of its process, compiled
// once, checked by the reader for each event before it is queued for JS, so that an event
// filtered out costs no serialising, no JS and no output. Pure.
//
// match: every key given must match (AND), each by any of its values (OR); exclude: an event
// that matches all of its keys the same way is dropped. A key the event cannot tell (a field
// missing, an exit's outcome on a fork) matches none of its values. Loss reports always go out.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "events.h"
#include "pattern.h"

namespace pm {

class EventFilter {
 public:
  // Compiles the rules; false with why in `error` (naming the rule) if one is not valid.
  bool Compile(const std::vector<FilterRule>& rules, std::string* error);
  bool active() const { return !match_.empty() || !exclude_.empty(); }
  bool Admit(const OutEvent& e) const;

 private:
  enum Key : uint8_t { kEvent, kUser, kUid, kLoginUser, kAuid, kComm, kExe, kArgv, kCwd, kContainer, kCgroup, kFailed };
  struct Term {
    Key key;
    uint32_t kinds = 0;                 // kEvent
    std::vector<uint32_t> numbers;      // kUid, kAuid
    std::vector<Pattern> patterns;      // the text keys
    std::vector<std::string> prefixes;  // kContainer, kCgroup: plain values also match as prefixes
    int failed = -1;                    // kFailed: 1 true, 0 false
  };
  static bool Passes(const Term& t, const OutEvent& e);
  static bool All(const std::vector<Term>& terms, const OutEvent& e);
  bool Add(const FilterRule& r, std::string* error);

  std::vector<Term> match_, exclude_;
};

}  // namespace pm
