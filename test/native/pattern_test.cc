// Unit tests of the filters' patterns (native/pattern.h): globs, regular expressions as
// JavaScript reads them, what is refused and why, and the linear time that no pattern can
// break. Built and run by test/filter.test.js; prints "ok - NAME" or "not ok - NAME: line N".
#include "../../native/pattern.h"

#include <string>

#include "unit.h"

namespace {

bool M(const std::string& pattern, const std::string& text) {
  pm::Pattern p;
  std::string err;
  if (!p.Compile(pattern, &err)) return false;
  return p.Match(text);
}

std::string Refused(const std::string& pattern) {
  pm::Pattern p;
  std::string err;
  return p.Compile(pattern, &err) ? std::string() : err;
}

void Globs() {
  EXPECT(M("sshd", "sshd") && !M("sshd", "sshd2") && !M("sshd", "xsshd"));
  EXPECT(M("*", "") && M("*", "/usr/bin/x"));
  EXPECT(M("/usr/*", "/usr/bin/python3") && !M("/usr/*", "/opt/usr/x"));
  EXPECT(M("py?hon*", "python3.11") && !M("py?hon*", "pyhon"));
  EXPECT(M("[a-c]x", "bx") && !M("[a-c]x", "dx") && M("[!a-c]x", "dx") && M("[^a-c]x", "dx") && !M("[!a-c]x", "ax"));
  EXPECT(M("[]]", "]") && M("a\\*", "a*") && !M("a\\*", "ab"));
  EXPECT(M("--password=*", "--password=hunter2"));
  EXPECT(M("*.service", "nginx.service") && !M("*.service", "nginx.service.d"));
}

void RegularExpressions() {
  EXPECT(M("/ssh/", "/usr/sbin/sshd") && !M("/^ssh/", "/usr/sbin/sshd") && M("/sshd$/", "/usr/sbin/sshd"));
  EXPECT(M("/^(python|node)[0-9.]*$/", "python3.11") && M("/^(python|node)[0-9.]*$/", "node") && !M("/^(python|node)[0-9.]*$/", "nodejs"));
  EXPECT(M("/a{2,3}b/", "xaab") && !M("/^a{2,3}b/", "ab") && !M("/^a{2,3}b$/", "aaaab") && M("/^a{2,}b$/", "aaaaab") &&
         M("/^a{2}$/", "aa"));
  EXPECT(M("/\\d+\\.\\d+/", "v1.22") && !M("/\\d+\\.\\d+/", "v1x22") && M("/\\w\\s\\W/", "a -"));
  EXPECT(M("/[^/]+\\.sh$/", "/tmp/run.sh") && M("/(?:ab)+c/", "ababc") && M("/colou?r/", "color") && M("/a+?b/", "aab"));
  EXPECT(M("/SSH/i", "sshd") && !M("/SSH/", "sshd") && M("/[a-c]/i", "B"));
  EXPECT(M("//", "anything") && M("/a{/", "a{") && M("/x{,2}/", "x{,2}") && M("/./", "\xc3\xa9"));
  EXPECT(M("/a|b|c/", "c") && M("/^(a|)$/", "") && M("/(a*)*b/", "aab"));
}

void RefusedWithAReason() {
  EXPECT(Refused("/(?=a)/").find("lookaround") != std::string::npos);
  EXPECT(Refused("/(a)\\1/").find("\\1 is not supported") != std::string::npos);
  EXPECT(Refused("/a**/").find("nothing to repeat") != std::string::npos);
  EXPECT(Refused("/*a/").find("nothing to repeat") != std::string::npos);
  EXPECT(Refused("/(ab/") == "missing ')'");
  EXPECT(Refused("/ab)/") == "unmatched ')'");
  EXPECT(Refused("/[ab/") == "missing ']'");
  EXPECT(Refused("[ab") == "missing ']'");
  EXPECT(Refused("/a{3,2}/").find("n < m") != std::string::npos);
  EXPECT(Refused("/a{1001}/").find("over 1000") != std::string::npos);
  EXPECT(Refused("/[z-a]/").find("out of order") != std::string::npos);
  EXPECT(Refused("/\\q/").find("unknown escape") != std::string::npos);
  EXPECT(Refused("/a\\/").find("end with") != std::string::npos);
  EXPECT(Refused(std::string(1025, 'a')).find("longer than 1024") != std::string::npos);
  EXPECT(Refused("/(a{100}){100}/").find("too large") != std::string::npos);
  std::string deep = "/" + std::string(100, '(') + "a" + std::string(100, ')') + "/";
  EXPECT(Refused(deep).find("nested deeper") != std::string::npos);
}

// The patterns that take a backtracking engine exponential time, on the texts that make them
// do so: here each is one pass over the text.
void LinearTimeWhateverThePattern() {
  // (A backtracking engine would not finish these in a lifetime: the test's own time limit
  // is what catches one; no figure is asserted here.)
  std::string as(100000, 'a');
  EXPECT(!M("/^(a+)+$/", as + "!"));
  EXPECT(!M("/^(a|aa)*b$/", as));
  EXPECT(!M("/(a*)*c/", as));
  EXPECT(!M("*a*a*a*a*a*a*b", as));
}

void PlainTextsAsTheNfaWould() {
  // A plain text found whole, at the start, at the end or anywhere is matched without the NFA:
  // each verdict is the one the NFA gives for the same pattern written so it cannot take the
  // short way ("[x]" for the first byte x).
  const std::string texts[] = {"", "a", "ab", "abc", "xabc", "abcx", "xabcx", "ababc", "ABC", "/usr/bin/python3"};
  const std::pair<std::string, std::string> same[] = {{"abc", "[a]bc"},
                                                      {"abc*", "[a]bc*"},
                                                      {"*abc", "*[a]bc"},
                                                      {"*abc*", "*[a]bc*"},
                                                      {"/abc/", "/[a]bc/"},
                                                      {"a", "[a]"},
                                                      {"/usr/bin/*", "[/]usr/bin/*"},
                                                      {"*python3", "*[p]ython3"}};
  for (const auto& p : same) {
    for (const std::string& t : texts) EXPECT(M(p.first, t) == M(p.second, t));
  }
  EXPECT(M("*", "") && M("**", "anything") && !M("abc", "ab") && !M("*abc", "bc") && M("/bc/", "abcd") && !M("/bc/", "b"));
}

const unit::Case kCases[] = {
    {"globs: the whole text; * ? [a-z] [!a-z] and escapes", Globs},
    {"regular expressions: found anywhere, as RegExp.test; anchors, groups, sets, repeats, /i", RegularExpressions},
    {"refused with a reason: lookaround, backreferences, bad syntax, too long, too large, too deep", RefusedWithAReason},
    {"linear time: (a+)+, (a|aa)*, (a*)*, many stars, on 100,000 bytes", LinearTimeWhateverThePattern},
    {"plain texts (x, x*, *x, *x*, /x/) matched without the NFA, as the NFA would", PlainTextsAsTheNfaWould},
};

}  // namespace

int main() { return unit::RunCases(kCases); }
