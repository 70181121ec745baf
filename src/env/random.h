// Random: a seeded, deterministic pseudo-random generator (xoshiro256**, state expanded from
// the 64-bit seed with splitmix64). The same seed gives the same sequence on every platform
// and build, so a failing simulation or test reproduces from the seed it prints. Not for
// cryptography.
//
// Thread-safety: not thread-safe; give each thread (or each simulated node) its own.
#pragma once

#include <cstdint>
#include <string>

namespace cairn::env {

class Random {
 public:
  explicit Random(uint64_t seed);

  uint64_t seed() const { return seed_; }

  // Uniform over all 64-bit values.
  uint64_t Next64();
  // Uniform in [0, n). REQUIRES: n > 0.
  uint64_t Uniform(uint64_t n);
  // Uniform in [low, high]. REQUIRES: low <= high.
  uint64_t UniformRange(uint64_t low, uint64_t high);
  // True with probability p (p <= 0: never, p >= 1: always).
  bool Bernoulli(double p);
  // Uniform in [0, 1).
  double NextDouble();
  // `n` uniformly random bytes.
  std::string Bytes(size_t n);

 private:
  uint64_t seed_;
  uint64_t state_[4];
};

}  // namespace cairn::env
