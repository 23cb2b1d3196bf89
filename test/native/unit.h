// The C++ unit tests' harness (test/native/*_test.cc, run by test/native-unit.js): EXPECT
// records a case's first failure; RunCases prints `ok - NAME` or `not ok - NAME: line N: EXPR`
// per case and gives the exit status.
#pragma once

#include <cstdio>
#include <string>

namespace unit {

inline int failures_in_case = 0;
inline std::string first_failure;

struct Case {
  const char* name;
  void (*fn)();
};

template <size_t N>
int RunCases(const Case (&cases)[N]) {
  int failed = 0;
  for (const Case& c : cases) {
    failures_in_case = 0;
    c.fn();
    if (failures_in_case == 0) {
      std::printf("ok - %s\n", c.name);
    } else {
      std::printf("not ok - %s: line %s\n", c.name, first_failure.c_str());
      failed++;
    }
  }
  return failed == 0 ? 0 : 1;
}

}  // namespace unit

#define EXPECT(c)                                                                                          \
  do {                                                                                                     \
    if (!(c) && unit::failures_in_case++ == 0) unit::first_failure = std::to_string(__LINE__) + ": " + #c; \
  } while (0)
