// Runs seeds of the differential test: per seed a fresh etcd and a fresh cairnd, the same
// generated requests to both, every answer compared (response_compare.h), watch streams
// collected and compared whole.
#pragma once

#include <cstdint>
#include <string>

namespace cairn::diff {

struct RunOptions {
  std::string cairnd;
  std::string self = "cairn_diff_test";  // this binary, for the replay command
  std::string etcd = "/usr/bin/etcd";
  // Default: the CI run, 24 seeds of 250 steps (fixed, so CI is reproducible).
  uint64_t seed_start = 1;
  int seeds = 24;
  int ops = 250;
  bool verbose = false;    // print every step's request and etcd's answer
  bool keep_data = false;  // keep data dirs and logs even when a seed passes
};

// Returns the process exit status: 0 when every seed agreed, 1 otherwise.
int RunSeeds(const RunOptions& options);

}  // namespace cairn::diff
