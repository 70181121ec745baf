// history_check: re-checks a history saved with WriteHistoryFile (history.h).
//
//   history_check [--time-budget-ms=N] [--explanation-ops-max=N] FILE
//
// Prints the verdict, the explanation and statistics. Exit status: 0 linearizable,
// 1 not linearizable, 2 unknown (search budget exceeded), 3 bad usage, unreadable file or
// invalid history.
#include <charconv>
#include <cstdio>
#include <string>
#include <string_view>

#include "tests/checker/checker.h"
#include "tests/checker/history.h"

namespace {

constexpr int kExitLinearizable = 0;
constexpr int kExitNotLinearizable = 1;
constexpr int kExitUnknown = 2;
constexpr int kExitError = 3;

bool ParseFlag(std::string_view arg, std::string_view name, int64_t* value) {
  if (arg.substr(0, name.size()) != name) return false;
  std::string_view digits = arg.substr(name.size());
  auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), *value);
  return error == std::errc() && end == digits.data() + digits.size() && *value > 0;
}

int Usage() {
  std::fprintf(stderr,
               "usage: history_check [--time-budget-ms=N] [--explanation-ops-max=N] FILE\n");
  return kExitError;
}

}  // namespace

int main(int argc, char** argv) {
  cairn::checker::CheckOptions options;
  std::string path;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    int64_t value = 0;
    if (ParseFlag(arg, "--time-budget-ms=", &value)) {
      options.time_budget_ms = value;
    } else if (ParseFlag(arg, "--explanation-ops-max=", &value)) {
      options.explanation_ops_max = static_cast<int>(value);
    } else if (!arg.empty() && arg[0] != '-' && path.empty()) {
      path = arg;
    } else {
      return Usage();
    }
  }
  if (path.empty()) return Usage();
  cairn::Result<cairn::checker::History> history = cairn::checker::ReadHistoryFile(path);
  if (!history.ok()) {
    std::fprintf(stderr, "history_check: %s\n", history.status().ToString().c_str());
    return kExitError;
  }
  cairn::checker::CheckResult result = cairn::checker::Check(*history, options);
  std::printf("%s\n", result.ToString().c_str());
  switch (result.verdict) {
    case cairn::checker::Verdict::kLinearizable:
      return kExitLinearizable;
    case cairn::checker::Verdict::kNotLinearizable:
      return kExitNotLinearizable;
    case cairn::checker::Verdict::kTimedOut:
      return kExitUnknown;
    case cairn::checker::Verdict::kInvalidHistory:
      return kExitError;
  }
  return kExitError;
}
