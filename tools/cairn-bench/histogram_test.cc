#include "tools/cairn-bench/histogram.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

namespace cairn::bench {
namespace {

TEST(HistogramTest, BucketsCoverEveryValueOnceAndInOrder) {
  for (size_t i = 1; i < Histogram::kBucketCount; ++i) {
    ASSERT_EQ(Histogram::BucketLow(i), Histogram::BucketHigh(i - 1) + 1) << i;
  }
  for (uint64_t value : {0ull, 1ull, 127ull, 128ull, 129ull, 255ull, 256ull, 1000ull, 123456789ull,
                         (1ull << 40) - 1}) {
    const size_t index = Histogram::BucketIndex(value);
    EXPECT_LE(Histogram::BucketLow(index), value);
    EXPECT_GE(Histogram::BucketHigh(index), value);
  }
  EXPECT_EQ(Histogram::BucketIndex(1ull << 50), Histogram::kBucketCount - 1);  // clamped
}

TEST(HistogramTest, SmallValuesAreExact) {
  Histogram h;
  for (uint64_t v = 1; v <= 100; ++v) h.Record(v);
  EXPECT_EQ(h.count(), 100u);
  EXPECT_EQ(h.min(), 1u);
  EXPECT_EQ(h.max(), 100u);
  EXPECT_DOUBLE_EQ(h.Mean(), 50.5);
  EXPECT_EQ(h.Percentile(0.5), 50u);
  EXPECT_EQ(h.Percentile(0.9), 90u);
  EXPECT_EQ(h.Percentile(0.99), 99u);
  EXPECT_EQ(h.Percentile(1.0), 100u);
}

// Percentiles of random latencies are within the bucket resolution (1/128) of the exact
// order statistic.
TEST(HistogramTest, PercentilesMatchSortedSamples) {
  std::mt19937_64 rng(42);
  std::lognormal_distribution<double> latency_ns(std::log(500000.0), 1.0);
  std::vector<uint64_t> samples(200000);
  Histogram a, b;
  for (size_t i = 0; i < samples.size(); ++i) {
    samples[i] = static_cast<uint64_t>(latency_ns(rng));
    (i % 2 ? a : b).Record(samples[i]);
  }
  a.Merge(b);
  std::sort(samples.begin(), samples.end());
  EXPECT_EQ(a.count(), samples.size());
  EXPECT_EQ(a.min(), samples.front());
  EXPECT_EQ(a.max(), samples.back());
  for (double q : {0.5, 0.9, 0.99, 0.999}) {
    const auto rank = static_cast<size_t>(std::ceil(q * samples.size()));
    const double exact = static_cast<double>(samples[rank - 1]);
    EXPECT_NEAR(static_cast<double>(a.Percentile(q)), exact, exact / 128.0) << q;
  }
}

TEST(HistogramTest, EmptyIsZero) {
  Histogram h;
  EXPECT_EQ(h.Percentile(0.99), 0u);
  EXPECT_EQ(h.min(), 0u);
  EXPECT_EQ(h.Mean(), 0.0);
}

}  // namespace
}  // namespace cairn::bench
