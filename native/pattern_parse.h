// A pattern's text to a tree (pattern.h says what a pattern is): the parser, checked, with
// the reason for a refusal. Pattern::Compile turns the tree into the program it runs. Pure.
#pragma once

#include <bitset>
#include <string>
#include <vector>

namespace pm {

struct PatternNode {
  enum Kind : unsigned char { kSet, kCat, kAlt, kRepeat, kBol, kEol } kind;
  std::bitset<256> set;
  std::vector<int> kids;
  int min = 0, max = 0;  // kRepeat: max -1 for no bound
};

// The tree of `text` into nodes; its root's index, or -1 with why in *error.
int ParsePattern(const std::string& text, std::vector<PatternNode>& nodes, std::string* error);

}  // namespace pm
