#include "pattern.h"

#include <algorithm>
#include <cstring>

#include "pattern_parse.h"

namespace pm {

// Tree to program: the Thompson NFA Pattern::Match runs.
class PatternCompiler {
 public:
  PatternCompiler(Pattern& p, std::string* error) : p_(p), error_(error) {}

  bool Run(const std::string& text) {
    int root = ParsePattern(text, nodes_, error_);
    if (root < 0) return false;
    if (!Emit(root)) return false;
    p_.prog_.push_back({Pattern::kMatch});
    return true;
  }

 private:
  bool Fail(const std::string& why) {
    if (error_->empty()) *error_ = why;
    return false;
  }

  bool Room(size_t more) {
    if (p_.prog_.size() + more <= Pattern::kMaxProgram) return true;
    return Fail("too large once compiled (over " + std::to_string(Pattern::kMaxProgram) + " steps): fewer or smaller repeats");
  }

  bool Emit(int index) {
    const PatternNode n = nodes_[static_cast<size_t>(index)];
    auto& prog = p_.prog_;
    switch (n.kind) {
      case PatternNode::kSet:
        if (!Room(1)) return false;
        p_.sets_.push_back(n.set);
        prog.push_back({Pattern::kSet, static_cast<int>(p_.sets_.size()) - 1, 0});
        return true;
      case PatternNode::kBol:
      case PatternNode::kEol:
        if (!Room(1)) return false;
        prog.push_back({n.kind == PatternNode::kBol ? Pattern::kBol : Pattern::kEol});
        return true;
      case PatternNode::kCat:
        for (int k : n.kids) {
          if (!Emit(k)) return false;
        }
        return true;
      case PatternNode::kAlt: {
        std::vector<size_t> jumps;
        for (size_t i = 0; i + 1 < n.kids.size(); i++) {
          if (!Room(1)) return false;
          size_t split = prog.size();
          prog.push_back({Pattern::kSplit, static_cast<int>(split) + 1, 0});
          if (!Emit(n.kids[i]) || !Room(1)) return false;
          jumps.push_back(prog.size());
          prog.push_back({Pattern::kJmp});
          prog[split].y = static_cast<int>(prog.size());
        }
        if (!Emit(n.kids.back())) return false;
        for (size_t j : jumps) prog[j].x = static_cast<int>(prog.size());
        return true;
      }
      case PatternNode::kRepeat: {
        int kid = n.kids[0];
        for (int i = 0; i < n.min; i++) {
          if (!Emit(kid)) return false;
        }
        if (n.max == -1) {
          if (!Room(1)) return false;
          size_t loop = prog.size();
          prog.push_back({Pattern::kSplit, static_cast<int>(loop) + 1, 0});
          if (!Emit(kid) || !Room(1)) return false;
          prog.push_back({Pattern::kJmp, static_cast<int>(loop), 0});
          prog[loop].y = static_cast<int>(prog.size());
          return true;
        }
        std::vector<size_t> splits;
        for (int i = n.min; i < n.max; i++) {
          if (!Room(1)) return false;
          splits.push_back(prog.size());
          prog.push_back({Pattern::kSplit, static_cast<int>(prog.size()) + 1, 0});
          if (!Emit(kid)) return false;
        }
        for (size_t s : splits) prog[s].y = static_cast<int>(prog.size());
        return true;
      }
    }
    return false;
  }

  Pattern& p_;
  std::string* error_;
  std::vector<PatternNode> nodes_;
};

bool Pattern::Compile(const std::string& text, std::string* error) {
  std::string why;
  source_ = text;
  prog_.clear();
  sets_.clear();
  PatternCompiler c(*this, &why);
  if (!c.Run(text)) {
    prog_.clear();
    sets_.clear();
    if (error != nullptr) *error = why.empty() ? "not a pattern" : why;
    return false;
  }
  mark_.assign(prog_.size(), 0);
  gen_ = 0;
  FindShape(text);
  return true;
}

void Pattern::FindShape(const std::string& text) {
  shape_ = kNfa;
  literal_.clear();
  if (text.size() >= 2 && text[0] == '/' && text.back() == '/') {
    const std::string body = text.substr(1, text.size() - 2);
    if (!body.empty() && body.find_first_of(".[]()*+?{}|^$\\/") == std::string::npos) {
      shape_ = kAnywhere;
      literal_ = body;
    }
    return;
  }
  if (!text.empty() && text[0] == '/' && text.size() >= 3 && text.compare(text.size() - 2, 2, "/i") == 0) return;  // (case-blind)
  const bool lead = !text.empty() && text[0] == '*';
  const bool trail = text.size() > (lead ? 1u : 0u) && text.back() == '*';
  const std::string body = text.substr(lead ? 1 : 0, text.size() - (lead ? 1 : 0) - (trail ? 1 : 0));
  if (body.find_first_of("*?[\\") != std::string::npos) return;
  shape_ = lead && trail ? kAnywhere : lead ? kEnd : trail ? kStart : kWhole;
  literal_ = body;
}

// Adds the thread at pc, following jumps, splits and anchors at pos, to the list of those
// that read the next byte. True if one reaches the match.
bool Pattern::AddThread(std::vector<int>& list, int pc, size_t pos, size_t n) const {
  stack_.clear();
  stack_.push_back(pc);
  while (!stack_.empty()) {
    int at = stack_.back();
    stack_.pop_back();
    if (mark_[static_cast<size_t>(at)] == gen_) continue;
    mark_[static_cast<size_t>(at)] = gen_;
    const Inst& in = prog_[static_cast<size_t>(at)];
    switch (in.op) {
      case kMatch:
        return true;
      case kJmp:
        stack_.push_back(in.x);
        break;
      case kSplit:
        stack_.push_back(in.y);
        stack_.push_back(in.x);
        break;
      case kBol:
        if (pos == 0) stack_.push_back(at + 1);
        break;
      case kEol:
        if (pos == n) stack_.push_back(at + 1);
        break;
      case kSet:
        list.push_back(at);
        break;
    }
  }
  return false;
}

bool Pattern::Match(const char* s, size_t n) const {
  if (prog_.empty()) return false;
  const size_t k = literal_.size();
  switch (shape_) {
    case kWhole:
      return n == k && (k == 0 || std::memcmp(s, literal_.data(), k) == 0);
    case kStart:
      return n >= k && (k == 0 || std::memcmp(s, literal_.data(), k) == 0);
    case kEnd:
      return n >= k && (k == 0 || std::memcmp(s + n - k, literal_.data(), k) == 0);
    case kAnywhere:
      return k == 0 || (n >= k && std::search(s, s + n, literal_.begin(), literal_.end()) != s + n);
    case kNfa:
      break;
  }
  clist_.clear();
  if (++gen_ == 0) {
    std::fill(mark_.begin(), mark_.end(), 0);
    gen_ = 1;
  }
  if (AddThread(clist_, 0, 0, n)) return true;
  for (size_t pos = 0; pos < n; pos++) {
    if (++gen_ == 0) {
      std::fill(mark_.begin(), mark_.end(), 0);
      gen_ = 1;
    }
    nlist_.clear();
    size_t c = static_cast<unsigned char>(s[pos]);
    for (int pc : clist_) {
      const Inst& in = prog_[static_cast<size_t>(pc)];
      if (sets_[static_cast<size_t>(in.x)][c] && AddThread(nlist_, pc + 1, pos + 1, n)) return true;
    }
    // Found anywhere: a new attempt starts at each byte (an anchored one dies at once).
    if (AddThread(nlist_, 0, pos + 1, n)) return true;
    clist_.swap(nlist_);
  }
  return false;
}

}  // namespace pm
