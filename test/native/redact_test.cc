// Unit tests of the secrets kept out of events (native/redact.h): literal secrets, patterns,
// and the defaults on the command lines that carry secrets in practice. Built and run by
// test/redact.test.js; prints "ok - NAME" or "not ok - NAME: line N".
#include "../../native/redact.h"

#include <string>
#include <utility>
#include <vector>

#include "unit.h"

namespace {

using Args = std::vector<std::string>;

Args Run(Args argv, const std::vector<std::string>& patterns, bool defaults, const std::vector<std::string>& secrets = {}) {
  pm::Redactor r;
  std::string err;
  if (!r.Reset(secrets, patterns, defaults, &err)) return {"error: " + err};
  r.Apply(argv);
  return argv;
}

void LiteralSecrets() {
  EXPECT(Run({"app", "--key", "s3cret", "x=s3cret;s3cret"}, {}, false, {"s3cret"}) == Args({"app", "--key", "*****", "x=*****;*****"}));
}

void PatternsHideTheValue() {
  EXPECT(Run({"app", "--db-pass=hunter2", "--db-host=x"}, {"--db-pass=*"}, false) == Args({"app", "--db-pass=***", "--db-host=x"}));
  EXPECT(Run({"app", "sk_live_abc123"}, {"/^sk_live_/"}, false) == Args({"app", "***"}));
  EXPECT(Run({"app", "--db-pass=hunter2"}, {}, false) == Args({"app", "--db-pass=hunter2"}));  // nothing asked, nothing hidden
  EXPECT(Run({"x"}, {"/(?=a)/"}, false)[0].find("error: redact /(?=a)/: lookaround") == 0);
}

void DefaultsOnRealCommandLines() {
  EXPECT(Run({"app", "--password=hunter2", "--token", "abc", "--verbose"}, {}, true) ==
         Args({"app", "--password=***", "--token", "***", "--verbose"}));
  EXPECT(Run({"psql", "--db-password=x", "--API-KEY=k", "--no-password-prompt"}, {}, true) ==
         Args({"psql", "--db-password=***", "--API-KEY=***", "--no-password-prompt"}));
  EXPECT(Run({"/usr/bin/mysql", "-uroot", "-phunter2", "-P3306", "db"}, {}, true) ==
         Args({"/usr/bin/mysql", "-uroot", "-p***", "-P3306", "db"}));
  EXPECT(Run({"grep", "-pattern"}, {}, true) == Args({"grep", "-pattern"}));  // -p... is a password to the MySQL clients only
  EXPECT(Run({"curl", "-H", "Authorization: Bearer eyJhbGciOi", "https://x"}, {}, true) ==
         Args({"curl", "-H", "Authorization: ***", "https://x"}));
  EXPECT(Run({"env", "AWS_SECRET_ACCESS_KEY=wJalr", "GITHUB_TOKEN=ghp_x", "HOME=/root", "cmd"}, {}, true) ==
         Args({"env", "AWS_SECRET_ACCESS_KEY=***", "GITHUB_TOKEN=***", "HOME=/root", "cmd"}));
  EXPECT(Run({"git", "clone", "https://alice:hunter2@example.com/r.git"}, {}, true) ==
         Args({"git", "clone", "https://alice:***@example.com/r.git"}));
  EXPECT(Run({"psql", "postgres://u:p@w@db:5432/x?sslmode=require"}, {}, true) ==
         Args({"psql", "postgres://u:***@db:5432/x?sslmode=require"}));
  EXPECT(Run({"ssh", "user@host", "ls", "a=b"}, {}, true) == Args({"ssh", "user@host", "ls", "a=b"}));  // nothing that is not one
  EXPECT(pm::HideUrlPassword("http://host:8080/path") == "http://host:8080/path");
  EXPECT(Run({"app", "--password"}, {}, true) == Args({"app", "--password"}));  // a flag at the end has no value to hide
  // A shell's command string is one argument: from its first '=' on, hidden.
  EXPECT(Run({"sh", "-c", "deploy --token=abc --verbose"}, {}, true) == Args({"sh", "-c", "deploy --token=***"}));
  EXPECT(Run({"sh", "-c", "GITHUB_TOKEN=x make"}, {}, true) == Args({"sh", "-c", "GITHUB_TOKEN=***"}));
}

void EnvironmentValues() {
  pm::Redactor r;
  std::string err;
  EXPECT(r.Reset({"lit"}, {"CI_*"}, true, &err));
  std::vector<std::pair<std::string, std::string>> env = {
      {"CI_JOB_TOKEN", "x"}, {"DB_PASSWORD", "y"}, {"PATH", "/bin"}, {"DATABASE_URL", "postgres://u:pw@h/db"}, {"NOTE", "a lit b"}};
  r.ApplyEnv(env);
  EXPECT(env[0].second == "***" && env[1].second == "***" && env[2].second == "/bin");
  EXPECT(env[3].second == "postgres://u:***@h/db" && env[4].second == "a ***** b");
}

const unit::Case kCases[] = {
    {"literal secrets: every occurrence, in every argument", LiteralSecrets},
    {"patterns: the value after '=' hidden, or the whole argument; a bad one refused by name", PatternsHideTheValue},
    {"defaults: --password=, --token VALUE, mysql -p, Authorization:, secret assignments, URL passwords", DefaultsOnRealCommandLines},
    {"environment values: by the same rules, NAME=value", EnvironmentValues},
};

}  // namespace

int main() { return unit::RunCases(kCases); }
