// Differential test: the same seeded random requests against a real etcd 3.4 (Debian's
// /usr/bin/etcd, the reference) and a real cairnd, compared field by field. See
// tests/diff/README.md for what is compared, what is normalized and why, and how to replay.
//
// Usage: cairn_diff_test --cairnd PATH [--etcd PATH] [--seed N] [--seeds N] [--ops N]
//        [--verbose] [--keep]
// Environment (overridden by flags): CAIRN_DIFF_SEED_START, CAIRN_DIFF_SEEDS, CAIRN_DIFF_OPS.
// Exit status: 0 all seeds agree, 1 a difference (or a server failed), 2 usage, 77 no etcd.
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>
#include <thread>

#include "tests/diff/diff_runner.h"

namespace {

uint64_t EnvOr(const char* name, uint64_t fallback) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? std::strtoull(value, nullptr, 10) : fallback;
}

int Usage() {
  std::cerr << "usage: cairn_diff_test --cairnd PATH [--etcd PATH] [--seed N] [--seeds N]"
               " [--ops N] [--verbose] [--keep]\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  cairn::diff::RunOptions options;
  options.self = argv[0];
  options.seed_start = EnvOr("CAIRN_DIFF_SEED_START", options.seed_start);
  options.seeds = static_cast<int>(EnvOr("CAIRN_DIFF_SEEDS", options.seeds));
  options.ops = static_cast<int>(EnvOr("CAIRN_DIFF_OPS", options.ops));
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    bool has_value = i + 1 < argc;
    if (arg == "--cairnd" && has_value) {
      options.cairnd = argv[++i];
    } else if (arg == "--etcd" && has_value) {
      options.etcd = argv[++i];
    } else if (arg == "--seed" && has_value) {
      options.seed_start = std::strtoull(argv[++i], nullptr, 10);
      options.seeds = 1;
    } else if (arg == "--seeds" && has_value) {
      options.seeds = std::atoi(argv[++i]);
    } else if (arg == "--ops" && has_value) {
      options.ops = std::atoi(argv[++i]);
    } else if (arg == "--verbose") {
      options.verbose = true;
    } else if (arg == "--keep") {
      options.keep_data = true;
    } else {
      return Usage();
    }
  }
  if (options.cairnd.empty() || options.seeds < 1 || options.ops < 1) return Usage();
  if (access(options.etcd.c_str(), X_OK) != 0) {
    std::cout << "SKIP: " << options.etcd
              << " is not installed (etcd-server; scripts/install-deps.sh installs it)\n";
    return 77;
  }
  return cairn::diff::RunSeeds(options);
}
