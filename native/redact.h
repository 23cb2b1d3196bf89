// Secrets kept out of every event (Options.redact, redact_patterns, redact_defaults): applied
// to each argv (and so cmdline and argv_base64) and each reported environment variable where
// they are read, before the table keeps them, so that no output, client or replay ring ever
// holds them. Pure.
//
// - A secret given literally (the daemon's own password, say) becomes "*****" wherever it
//   occurs.
// - A pattern (pattern.h: a glob, or /regex/) is matched against each argument, and each
//   NAME=value of the environment: in one that matches, what follows its first '=' becomes
//   "***" (--password=***, TOKEN=***), or all of it when it has none.
// - The defaults: arguments named like a secret (--password=, --token=, --api-key=, ...:
//   the value; --password VALUE: the next argument), "-pSECRET" to the MySQL clients,
//   Authorization: headers, NAME=value assignments whose name says secret (AWS_SECRET_ACCESS_KEY,
//   GITHUB_TOKEN, DB_PASSWORD, ...), and the password in a URL (scheme://user:***@host). The
//   first two are found at the start of any word of an argument too (a shell's command
//   string: sh -c "deploy --token=X"): all of it after its first '=' is hidden then.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "pattern.h"

namespace pm {

class Redactor {
 public:
  // False, with why (naming the pattern), if a pattern is not valid.
  bool Reset(const std::vector<std::string>& secrets, const std::vector<std::string>& patterns, bool defaults, std::string* error);
  void Apply(std::vector<std::string>& argv) const;
  void ApplyEnv(std::vector<std::pair<std::string, std::string>>& env) const;

 private:
  bool Secret(const std::string& arg) const;  // a pattern's or the defaults' whole argument
  std::vector<std::string> secrets_;
  std::vector<Pattern> patterns_;
  bool defaults_ = false;
  Pattern flag_value_, flag_alone_, assignment_, header_, mysql_;
};

// The defaults' parts, pure, for tests: the argument with its secret hidden, or unchanged.
std::string HideUrlPassword(const std::string& arg);

}  // namespace pm
