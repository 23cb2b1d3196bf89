// A filter's pattern (a glob, or a regular expression between slashes), compiled once and
// matched in time linear in the text: a Thompson NFA run breadth-first, without backtracking,
// so that no pattern, however written, can make a match slow. Pure: bytes in, a verdict out.
//
// - A glob matches the whole text: "*" any run of bytes, "?" one byte, "[a-z]" and "[!a-z]"
//   (or "[^a-z]") a set, "\x" x itself.
// - "/RE/" (or "/RE/i", ASCII letters of either case) is found anywhere in the text, as
//   JavaScript's RegExp.test() finds it: . [...] [^...] \d \w \s \D \W \S \t \n and escaped
//   punctuation, ^ $ (of the whole text), ( ) (?: ) |, and * + ? {m} {m,} {m,n} (a trailing
//   "?" for laziness is taken: it cannot change whether there is a match). Lookaround and
//   backreferences are refused: no linear-time engine can run them.
//
// Bytes, not characters: "." and "?" are one byte of UTF-8.
#pragma once

#include <bitset>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace pm {

class Pattern {
 public:
  static constexpr size_t kMaxText = 1024;     // a pattern's bytes at most
  static constexpr size_t kMaxProgram = 2048;  // its compiled instructions at most
  static constexpr int kMaxRepeat = 1000;      // {m,n}: m and n at most
  static constexpr int kMaxDepth = 64;         // groups within groups at most

  // Compiles `text`; false, with why in `error` (and nothing matched), if it is not a pattern.
  bool Compile(const std::string& text, std::string* error);
  // Whether the text matches: for a glob the whole of it, for a regular expression any part.
  bool Match(const char* s, size_t n) const;
  bool Match(const std::string& s) const { return Match(s.data(), s.size()); }
  const std::string& source() const { return source_; }

 private:
  enum Op : uint8_t { kSet, kSplit, kJmp, kBol, kEol, kMatch };
  struct Inst {
    Op op;
    int x = 0, y = 0;  // kSet: the set's index; kSplit: both ways; kJmp: where
  };
  friend class PatternCompiler;

  // A pattern that is a plain text found whole, at the start, at the end or anywhere (the
  // globs "x", "x*", "*x", "*x*" and the regular expression "/x/"): matched as such, not by
  // the NFA (same verdict, a fraction of the time).
  enum Shape : uint8_t { kNfa, kWhole, kStart, kEnd, kAnywhere };
  Shape shape_ = kNfa;
  std::string literal_;
  void FindShape(const std::string& text);

  std::string source_;
  std::vector<Inst> prog_;
  std::vector<std::bitset<256>> sets_;
  // The matcher's work lists, reused (a Pattern is matched by one thread at a time).
  mutable std::vector<int> clist_, nlist_, stack_;
  mutable std::vector<uint32_t> mark_;
  mutable uint32_t gen_ = 0;
  bool AddThread(std::vector<int>& list, int pc, size_t pos, size_t n) const;
};

}  // namespace pm
