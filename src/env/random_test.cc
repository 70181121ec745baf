#include "src/env/random.h"

#include <gtest/gtest.h>

#include <array>
#include <set>

namespace cairn::env {
namespace {

TEST(RandomTest, SameSeedSameSequence) {
  Random a(7), b(7), c(8);
  bool differs = false;
  for (int i = 0; i < 100; ++i) {
    uint64_t x = a.Next64();
    EXPECT_EQ(x, b.Next64());
    differs |= x != c.Next64();
  }
  EXPECT_TRUE(differs);
  EXPECT_EQ(a.seed(), 7u);
  EXPECT_EQ(Random(0).Bytes(16), Random(0).Bytes(16));
}

TEST(RandomTest, UniformStaysInRangeAndIsBalanced) {
  Random random(1);
  std::array<int, 10> counts{};
  constexpr int kSamples = 100000;
  for (int i = 0; i < kSamples; ++i) {
    uint64_t x = random.Uniform(10);
    ASSERT_LT(x, 10u);
    ++counts[x];
  }
  for (int count : counts) {
    EXPECT_GT(count, kSamples / 10 * 0.95);
    EXPECT_LT(count, kSamples / 10 * 1.05);
  }
  EXPECT_EQ(random.Uniform(1), 0u);
  for (int i = 0; i < 1000; ++i) {
    uint64_t x = random.UniformRange(5, 7);
    EXPECT_GE(x, 5u);
    EXPECT_LE(x, 7u);
  }
}

TEST(RandomTest, BernoulliAndDouble) {
  Random random(2);
  int hits = 0;
  for (int i = 0; i < 100000; ++i) {
    EXPECT_FALSE(random.Bernoulli(0));
    EXPECT_TRUE(random.Bernoulli(1));
    hits += random.Bernoulli(0.25);
    double d = random.NextDouble();
    EXPECT_GE(d, 0.0);
    EXPECT_LT(d, 1.0);
  }
  EXPECT_GT(hits, 24000);
  EXPECT_LT(hits, 26000);
}

TEST(RandomTest, BytesHaveRequestedLengthAndVary) {
  Random random(3);
  EXPECT_EQ(random.Bytes(0).size(), 0u);
  std::string bytes = random.Bytes(1001);
  EXPECT_EQ(bytes.size(), 1001u);
  std::set<char> distinct(bytes.begin(), bytes.end());
  EXPECT_GT(distinct.size(), 200u);
}

}  // namespace
}  // namespace cairn::env
