#include "src/env/random.h"

#include "src/base/check.h"

namespace cairn::env {
namespace {

uint64_t SplitMix64(uint64_t* state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

uint64_t RotateLeft(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

}  // namespace

Random::Random(uint64_t seed) : seed_(seed) {
  uint64_t s = seed;
  for (uint64_t& word : state_) word = SplitMix64(&s);
}

uint64_t Random::Next64() {
  const uint64_t result = RotateLeft(state_[1] * 5, 7) * 9;
  const uint64_t t = state_[1] << 17;
  state_[2] ^= state_[0];
  state_[3] ^= state_[1];
  state_[1] ^= state_[2];
  state_[0] ^= state_[3];
  state_[2] ^= t;
  state_[3] = RotateLeft(state_[3], 45);
  return result;
}

uint64_t Random::Uniform(uint64_t n) {
  CAIRN_CHECK(n > 0);
  // Rejection sampling: discard the top partial range so every value is equally likely.
  const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  uint64_t x;
  do {
    x = Next64();
  } while (x >= limit);
  return x % n;
}

uint64_t Random::UniformRange(uint64_t low, uint64_t high) {
  CAIRN_CHECK(low <= high);
  if (low == 0 && high == UINT64_MAX) return Next64();
  return low + Uniform(high - low + 1);
}

double Random::NextDouble() {
  // 53 random bits: every representable multiple of 2^-53 in [0, 1).
  return static_cast<double>(Next64() >> 11) * 0x1.0p-53;
}

bool Random::Bernoulli(double p) {
  if (p <= 0) return false;
  if (p >= 1) return true;
  return NextDouble() < p;
}

std::string Random::Bytes(size_t n) {
  std::string out(n, '\0');
  size_t i = 0;
  while (i < n) {
    uint64_t word = Next64();
    for (int b = 0; b < 8 && i < n; ++b, ++i) out[i] = static_cast<char>((word >> (8 * b)) & 0xff);
  }
  return out;
}

}  // namespace cairn::env
