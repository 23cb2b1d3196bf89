#include "pattern_parse.h"

#include <algorithm>

#include "pattern.h"

namespace pm {
namespace {

using Set = std::bitset<256>;

using Node = PatternNode;

Set Range(int lo, int hi) {
  Set s;
  for (int c = lo; c <= hi; c++) s.set(static_cast<size_t>(c));
  return s;
}

// The one member of a set of one, else -1. (Not bitset::count(): on x86-64 it needs libgcc_s's
// __popcountdi2, which the prebuilds must not.)
int SingleOf(const Set& s) {
  int found = -1;
  for (size_t i = 0; i < 256; i++) {
    if (!s[i]) continue;
    if (found >= 0) return -1;
    found = static_cast<int>(i);
  }
  return found;
}

Set Digits() { return Range('0', '9'); }
Set Word() { return Range('0', '9') | Range('A', 'Z') | Range('a', 'z') | Range('_', '_'); }
Set Space() { return Range('\t', '\r') | Range(' ', ' '); }

// Text to tree: the glob or the regular expression, checked.
class PatternParser {
 public:
  explicit PatternParser(std::string* error) : error_(error) {}

  // The tree's root, or -1 (error set).
  int Parse(const std::string& text) {
    if (text.size() > Pattern::kMaxText) return Fail("longer than " + std::to_string(Pattern::kMaxText) + " bytes"), -1;
    int root;
    if (text.size() >= 2 && text[0] == '/' &&
        (text.back() == '/' || (text.size() >= 3 && text[text.size() - 2] == '/' && text.back() == 'i'))) {
      fold_ = text.back() == 'i';
      s_ = text.substr(1, text.size() - (fold_ ? 3 : 2));
      root = Alt(0);
      if (root >= 0 && at_ < s_.size()) return Fail(s_[at_] == ')' ? "unmatched ')'" : "unexpected '" + std::string(1, s_[at_]) + "'"), -1;
    } else {
      s_ = text;
      root = Glob();
    }
    return root;
  }
  const std::vector<Node>& nodes() const { return nodes_; }

 private:
  bool Fail(const std::string& why) {
    if (error_ != nullptr && error_->empty()) *error_ = why;
    return false;
  }
  int Add(Node n) {
    nodes_.push_back(std::move(n));
    return static_cast<int>(nodes_.size()) - 1;
  }
  int Lit(Set s) {
    if (fold_) {
      for (int c = 'a'; c <= 'z'; c++) {
        if (s[static_cast<size_t>(c)] || s[static_cast<size_t>(c - 32)]) s.set(static_cast<size_t>(c)).set(static_cast<size_t>(c - 32));
      }
    }
    Node n{Node::kSet, s, {}, 0, 0};
    return Add(n);
  }
  bool More() const { return at_ < s_.size(); }
  unsigned char Peek() const { return static_cast<unsigned char>(s_[at_]); }

  // glob: the whole text, between ^ and $.
  int Glob() {
    Node cat{Node::kCat, {}, {}, 0, 0};
    cat.kids.push_back(Add({Node::kBol, {}, {}, 0, 0}));
    while (More()) {
      unsigned char c = Peek();
      at_++;
      if (c == '*') {
        cat.kids.push_back(Add({Node::kRepeat, {}, {Lit(Set().set())}, 0, -1}));
      } else if (c == '?') {
        cat.kids.push_back(Lit(Set().set()));
      } else if (c == '[') {
        Set set;
        if (!Class(&set, true)) return -1;
        cat.kids.push_back(Lit(set));
      } else if (c == '\\' && More()) {
        cat.kids.push_back(Lit(Set().set(Peek())));
        at_++;
      } else {
        cat.kids.push_back(Lit(Set().set(c)));
      }
    }
    cat.kids.push_back(Add({Node::kEol, {}, {}, 0, 0}));
    return Add(cat);
  }

  int Alt(int depth) {
    if (depth > Pattern::kMaxDepth) return Fail("groups nested deeper than " + std::to_string(Pattern::kMaxDepth)), -1;
    Node alt{Node::kAlt, {}, {}, 0, 0};
    for (;;) {
      int c = Cat(depth);
      if (c < 0) return -1;
      alt.kids.push_back(c);
      if (!More() || Peek() != '|') break;
      at_++;
    }
    return alt.kids.size() == 1 ? alt.kids[0] : Add(alt);
  }

  int Cat(int depth) {
    Node cat{Node::kCat, {}, {}, 0, 0};
    while (More() && Peek() != '|' && Peek() != ')') {
      int a = Atom(depth);
      if (a < 0) return -1;
      a = Quantified(a);
      if (a < 0) return -1;
      cat.kids.push_back(a);
    }
    return Add(cat);
  }

  // The quantifiers after an atom, if any.
  int Quantified(int atom) {
    if (!More()) return atom;
    int min, max;
    unsigned char c = Peek();
    if (c == '*') {
      min = 0, max = -1;
    } else if (c == '+') {
      min = 1, max = -1;
    } else if (c == '?') {
      min = 0, max = 1;
    } else if (c == '{') {
      if (!Bounds(&min, &max)) return error_->empty() ? atom : -1;  // (a literal '{' follows)
      at_--;                                                        // (Bounds stopped after '}': the common step below passes it again)
    } else {
      return atom;
    }
    at_++;
    if (More() && Peek() == '?') at_++;  // lazy: the same verdict
    if (More() && (Peek() == '*' || Peek() == '+' || Peek() == '?' || (Peek() == '{' && LooksLikeBounds()))) {
      return Fail("nothing to repeat at '" + std::string(1, s_[at_]) + "'"), -1;
    }
    if (nodes_[static_cast<size_t>(atom)].kind == Node::kBol || nodes_[static_cast<size_t>(atom)].kind == Node::kEol) {
      return Fail("nothing to repeat: an anchor"), -1;
    }
    return Add({Node::kRepeat, {}, {atom}, min, max});
  }

  bool LooksLikeBounds() {
    size_t save = at_;
    int a, b;
    bool ok = Bounds(&a, &b);
    at_ = save;
    return ok || !error_->empty();
  }

  // {m}, {m,}, {m,n} at at_: true with at_ past it; else false and at_ unchanged (a literal
  // "{", as in JavaScript), or false with an error for bounds out of range.
  bool Bounds(int* min, int* max) {
    size_t i = at_ + 1;
    auto number = [&](int* v) {
      size_t from = i;
      long x = 0;
      while (i < s_.size() && s_[i] >= '0' && s_[i] <= '9' && x <= Pattern::kMaxRepeat) x = x * 10 + (s_[i++] - '0');
      *v = static_cast<int>(std::min<long>(x, Pattern::kMaxRepeat + 1));
      return i > from;
    };
    if (!number(min)) return false;
    *max = *min;
    if (i < s_.size() && s_[i] == ',') {
      i++;
      if (!number(max)) *max = -1;
    }
    if (i >= s_.size() || s_[i] != '}') return false;
    if (*min > Pattern::kMaxRepeat || *max > Pattern::kMaxRepeat) return Fail("a repeat count over " + std::to_string(Pattern::kMaxRepeat));
    if (*max != -1 && *max < *min) return Fail("{m,n} with n < m");
    at_ = i + 1;
    return true;
  }

  int Atom(int depth) {
    unsigned char c = Peek();
    at_++;
    switch (c) {
      case '(': {
        if (More() && Peek() == '?') {
          if (at_ + 1 < s_.size() && s_[at_ + 1] == ':') {
            at_ += 2;
          } else {
            return Fail("lookaround and named groups are not supported"), -1;
          }
        }
        int inner = Alt(depth + 1);
        if (inner < 0) return -1;
        if (!More() || Peek() != ')') return Fail("missing ')'"), -1;
        at_++;
        return inner;
      }
      case '[': {
        Set set;
        if (!Class(&set, false)) return -1;
        return Lit(set);
      }
      case '.':
        return Lit(~Set().set('\n').set('\r'));
      case '^':
        return Add({Node::kBol, {}, {}, 0, 0});
      case '$':
        return Add({Node::kEol, {}, {}, 0, 0});
      case '*':
      case '+':
      case '?':
        return Fail(std::string("nothing to repeat at '") + static_cast<char>(c) + "'"), -1;
      case '{': {
        int a, b;
        size_t save = --at_;
        if (Bounds(&a, &b)) return Fail("nothing to repeat at '{'"), -1;
        if (!error_->empty()) return -1;
        at_ = save + 1;
        return Lit(Set().set('{'));
      }
      case '\\': {
        Set set;
        if (!Escape(&set)) return -1;
        return Lit(set);
      }
      default:
        return Lit(Set().set(c));
    }
  }

  // After a backslash: its set. Backreferences (\1) and word boundaries (\b) are refused.
  bool Escape(Set* set) {
    if (!More()) return Fail("a pattern may not end with '\\'");
    unsigned char c = Peek();
    at_++;
    switch (c) {
      case 'd':
        *set = Digits();
        return true;
      case 'D':
        *set = ~Digits();
        return true;
      case 'w':
        *set = Word();
        return true;
      case 'W':
        *set = ~Word();
        return true;
      case 's':
        *set = Space();
        return true;
      case 'S':
        *set = ~Space();
        return true;
      case 't':
        set->set('\t');
        return true;
      case 'n':
        set->set('\n');
        return true;
      case 'r':
        set->set('\r');
        return true;
      default:
        break;
    }
    if ((c >= '1' && c <= '9') || c == 'b' || c == 'B' || c == 'k')
      return Fail(std::string("\\") + static_cast<char>(c) + " is not supported");
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
      return Fail(std::string("unknown escape \\") + static_cast<char>(c));
    set->set(c);  // escaped punctuation: itself
    return true;
  }

  // A set after '[' up to its ']': ranges, escapes (regex), negation by '^' (and '!' in a glob).
  bool Class(Set* set, bool glob) {
    bool neg = false;
    if (More() && (Peek() == '^' || (glob && Peek() == '!'))) {
      neg = true;
      at_++;
    }
    bool first = true;
    for (;;) {
      if (!More()) return Fail("missing ']'");
      unsigned char c = Peek();
      at_++;
      if (c == ']' && !first) break;
      first = false;
      Set one;
      int lo = c;
      if (c == '\\' && More()) {
        if (glob) {
          lo = Peek();
          at_++;
        } else {
          if (!Escape(&one)) return false;
          lo = SingleOf(one);
        }
      }
      if (lo >= 0 && at_ + 1 < s_.size() && s_[at_] == '-' && s_[at_ + 1] != ']') {
        at_++;
        int hi = static_cast<unsigned char>(s_[at_++]);
        if (hi == '\\' && More()) hi = static_cast<unsigned char>(s_[at_++]);
        if (hi < lo) return Fail("a range out of order in [...]");
        *set |= Range(lo, hi);
      } else {
        *set |= lo >= 0 ? Set().set(static_cast<size_t>(lo)) : one;
      }
    }
    if (neg) *set = ~*set;
    return true;
  }

  std::string* error_;
  std::string s_;
  size_t at_ = 0;
  bool fold_ = false;
  std::vector<Node> nodes_;
};

}  // namespace

int ParsePattern(const std::string& text, std::vector<PatternNode>& nodes, std::string* error) {
  PatternParser parser(error);
  int root = parser.Parse(text);
  nodes = parser.nodes();
  return root;
}

}  // namespace pm
