// The wire format: an event as its NDJSON line, written in C++ so that no JS object has to
// be built (and serialised again) for an event that only goes out as bytes. Pure: strings
// in, bytes out; the same bytes JSON.stringify gives for the event object JS parses from it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "events.h"

namespace pm {

// Appends `s` as a JSON string literal, quotes included, escaped as JSON.stringify does.
// Bytes that are not UTF-8 become U+FFFD, one per maximal invalid subsequence, as a JS
// string decoded from them (TextDecoder, Buffer#toString) has it.
void AppendJsonString(std::string& out, const char* s, size_t n);
inline void AppendJsonString(std::string& out, const std::string& s) { AppendJsonString(out, s.data(), s.size()); }

// True if s is well-formed UTF-8: a JS string carries it without replacement characters.
bool ValidUtf8(const char* s, size_t n);
// s as its line shows it: each maximal invalid subsequence replaced by U+FFFD (as
// AppendJsonString writes it), so that what is matched on a line matches on the event too.
std::string ShownUtf8(const char* s, size_t n);

// Milliseconds since the epoch as RFC 3339 UTC with milliseconds: "2026-11-27T08:01:49.123Z".
std::string TimeText(double ms);

// The name of an event kind ("fork", ..., "lost"; "none" for an acknowledgement).
const char* KindName(uint32_t what);
// The kind of a name KindName gives (an event's or "lost"); 0 for any other.
uint32_t KindNamed(const std::string& name);

// The name of signal `sig` ("SIGKILL", "SIGRT34").
std::string SignalName(int sig);

// Appends the event's line, "\n"-terminated, fields in wire order ("event" first).
void AppendEventLine(std::string& out, const OutEvent& e);

// Appends the events' lines to `text` and, per line, three numbers to `meta`: the offset of its
// end in `text`, the kernel's kind bit (kLost: -1) and the uid of its process (-1: none or
// unknown), for JS to route lines without parsing them.
void AppendBatch(std::string& text, std::vector<int32_t>& meta, const std::vector<OutEvent>& events);

}  // namespace pm
