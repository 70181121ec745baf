// What the Raft-core and the node-level simulations share (tests/sim/README.md): the trace
// hash that SameSeedSameTrace compares, and the seed plumbing of their tests (which seeds to
// run, and the seed to print when a CAIRN_CHECK aborts the process mid-seed).
#pragma once

#include <unistd.h>

#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace cairn::sim_support {

// Folds `value` into `hash` (splitmix64's finalizer over a boost-style combine).
inline uint64_t Mix(uint64_t hash, uint64_t value) {
  uint64_t z = hash ^ (value + 0x9e3779b97f4a7c15ULL + (hash << 6) + (hash >> 2));
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// FNV-1a over `bytes`.
inline uint64_t HashBytes(std::string_view bytes) {
  uint64_t hash = 0xcbf29ce484222325ULL;
  for (char c : bytes) {
    hash ^= static_cast<uint8_t>(c);
    hash *= 0x100000001b3ULL;
  }
  return hash;
}

// The environment variable `name` as a number, or `fallback` when unset.
inline uint64_t EnvOr(const char* name, uint64_t fallback) {
  const char* value = std::getenv(name);
  return value == nullptr ? fallback : std::strtoull(value, nullptr, 10);
}

// The seed being run and what runs it, printed if the process aborts.
inline volatile uint64_t current_seed = 0;
inline const char* current_simulation = "simulation";

inline void PrintSeedOnAbort(int signal) {
  char buffer[160];
  int length =
      std::snprintf(buffer, sizeof(buffer), "\n%s aborted; replay with CAIRN_SIM_SEED=%llu\n",
                    current_simulation, static_cast<unsigned long long>(current_seed));
  if (length > 0) (void)!write(2, buffer, static_cast<size_t>(length));
  std::signal(signal, SIG_DFL);
  std::raise(signal);
}

// From now on an abort prints "<simulation> aborted; replay with CAIRN_SIM_SEED=<seed>".
inline void ReportSeedOnAbort(const char* simulation) {
  current_simulation = simulation;
  std::signal(SIGABRT, PrintSeedOnAbort);
}

}  // namespace cairn::sim_support
