#include "redact.h"

namespace pm {
namespace {

const char kHidden[] = "***";

// What follows the first '=' hidden (all of it, when there is none).
void HideValue(std::string& arg) {
  size_t eq = arg.find('=');
  arg = eq == std::string::npos ? std::string(kHidden) : arg.substr(0, eq + 1) + kHidden;
}

bool IsMysql(const std::string& argv0) {
  size_t slash = argv0.rfind('/');
  std::string base = slash == std::string::npos ? argv0 : argv0.substr(slash + 1);
  return base == "mysql" || base == "mysqldump" || base == "mysqladmin" || base == "mysqlimport" || base == "mysqlshow" ||
         base == "mysqlcheck" || base == "mariadb" || base == "mariadb-dump" || base == "mariadb-admin";
}

// Every occurrence of each literal secret becomes "*****".
void HideSecrets(const std::vector<std::string>& secrets, std::string& s) {
  for (const std::string& secret : secrets) {
    for (size_t at = s.find(secret); at != std::string::npos; at = s.find(secret, at + 5)) s.replace(at, secret.size(), "*****");
  }
}

}  // namespace

std::string HideUrlPassword(const std::string& arg) {
  // scheme://user:password@host: the password, up to the last '@' before the path.
  size_t scheme = arg.find("://");
  if (scheme == std::string::npos) return arg;
  size_t start = scheme + 3;
  size_t end = arg.find_first_of("/?#", start);
  if (end == std::string::npos) end = arg.size();
  size_t at = arg.rfind('@', end);
  if (at == std::string::npos || at < start) return arg;
  size_t colon = arg.find(':', start);
  if (colon == std::string::npos || colon > at) return arg;
  return arg.substr(0, colon + 1) + kHidden + arg.substr(at);
}

bool Redactor::Reset(const std::vector<std::string>& secrets, const std::vector<std::string>& patterns, bool defaults, std::string* error) {
  secrets_.clear();
  for (const std::string& s : secrets) {
    if (!s.empty()) secrets_.push_back(s);
  }
  patterns_.clear();
  for (const std::string& text : patterns) {
    Pattern p;
    std::string why;
    if (!p.Compile(text, &why)) {
      *error = "redact " + text + ": " + why;
      patterns_.clear();
      return false;
    }
    patterns_.push_back(std::move(p));
  }
  defaults_ = defaults;
  const char* kWord = "(password|passwd|pwd|pass|secret|token|api[-_]?key|access[-_]?key|private[-_]?key|credentials?|auth)";
  std::string why;
  // (Found at the start of a word too: a shell's `sh -c "deploy --token=X"` is one argument, all
  // of it after its first '=' hidden then.)
  bool ok =
      flag_value_.Compile(std::string("/(^|\\s)--?[a-z0-9_.-]*") + kWord + "=/i", &why) &&
      flag_alone_.Compile(std::string("/^--?[a-z0-9_.-]*") + kWord + "$/i", &why) &&
      assignment_.Compile(
          "/(^|\\s)[A-Za-z0-9_]*(SECRET|TOKEN|PASSWORD|PASSWD|API_KEY|ACCESS_KEY|PRIVATE_KEY|CREDENTIALS|AUTH)[A-Za-z0-9_]*=/i", &why) &&
      header_.Compile("/^(proxy-)?authorization:/i", &why) && mysql_.Compile("/^-p./", &why);
  if (!ok) *error = "the defaults: " + why;  // (they are this file's: a test compiles them)
  return ok;
}

bool Redactor::Secret(const std::string& arg) const {
  for (const Pattern& p : patterns_) {
    if (p.Match(arg)) return true;
  }
  return defaults_ && (flag_value_.Match(arg) || assignment_.Match(arg));
}

void Redactor::Apply(std::vector<std::string>& argv) const {
  bool next = false;  // the previous argument was --password alone: this is its value
  for (size_t i = 0; i < argv.size(); i++) {
    std::string& a = argv[i];
    if (next) {
      a = kHidden;
      next = false;
      continue;
    }
    if (Secret(a)) {
      HideValue(a);
    } else if (defaults_) {
      if (flag_alone_.Match(a)) {
        next = true;
      } else if (header_.Match(a)) {
        a = a.substr(0, a.find(':') + 1) + " " + kHidden;
      } else if (i > 0 && mysql_.Match(a) && IsMysql(argv[0])) {
        a = std::string("-p") + kHidden;
      } else {
        a = HideUrlPassword(a);
      }
    }
  }
  for (std::string& a : argv) HideSecrets(secrets_, a);
}

void Redactor::ApplyEnv(std::vector<std::pair<std::string, std::string>>& env) const {
  for (auto& kv : env) {
    std::string assignment = kv.first + "=" + kv.second;
    if (Secret(assignment)) {
      kv.second = kHidden;
    } else if (defaults_) {
      kv.second = HideUrlPassword(kv.second);
    }
    HideSecrets(secrets_, kv.second);
  }
}

}  // namespace pm
