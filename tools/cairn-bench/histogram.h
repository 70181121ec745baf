// Histogram: a log-linear latency histogram (HDR-like) with exact count, sum, min and max.
//
// Values are non-negative integers (cairn-bench records nanoseconds). Values below
// kSubBucketCount are counted exactly; above, each power of two is split into
// kSubBucketCount equal buckets, so a reported percentile is within 1/kSubBucketCount
// (0.8%) of the true sample value. Memory is fixed (about 36 KiB), Record is O(1).
//
// Not thread-safe: cairn-bench keeps one per polling thread and merges them at the end.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace cairn::bench {

class Histogram {
 public:
  static constexpr int kSubBucketBits = 7;
  static constexpr uint64_t kSubBucketCount = uint64_t{1} << kSubBucketBits;
  // Values up to 2^kValueBitsMax - 1 (≈ 18 minutes in nanoseconds); larger ones are clamped.
  static constexpr int kValueBitsMax = 40;
  static constexpr size_t kBucketCount =
      kSubBucketCount + (kValueBitsMax - kSubBucketBits) * kSubBucketCount;

  void Record(uint64_t value);
  void Merge(const Histogram& other);

  uint64_t count() const { return count_; }
  uint64_t min() const { return count_ == 0 ? 0 : min_; }
  uint64_t max() const { return max_; }
  double Mean() const { return count_ == 0 ? 0.0 : static_cast<double>(sum_) / count_; }
  // The value at quantile q in [0, 1]: the bucket holding the ceil(q * count)-th smallest
  // sample, reported as the bucket's midpoint clamped to [min, max]. 0 when empty.
  uint64_t Percentile(double q) const;

  // Bucket arithmetic, public for the unit test.
  static size_t BucketIndex(uint64_t value);
  static uint64_t BucketLow(size_t index);
  static uint64_t BucketHigh(size_t index);  // inclusive

 private:
  std::array<uint64_t, kBucketCount> buckets_{};
  uint64_t count_ = 0;
  uint64_t sum_ = 0;
  uint64_t min_ = UINT64_MAX;
  uint64_t max_ = 0;
};

}  // namespace cairn::bench
