#include "tools/cairn-bench/histogram.h"

#include <algorithm>
#include <bit>
#include <cmath>

#include "src/base/check.h"

namespace cairn::bench {

size_t Histogram::BucketIndex(uint64_t value) {
  value = std::min(value, (uint64_t{1} << kValueBitsMax) - 1);
  if (value < kSubBucketCount) return static_cast<size_t>(value);
  const int msb = 63 - std::countl_zero(value);  // >= kSubBucketBits
  const int shift = msb - kSubBucketBits;
  const uint64_t sub = (value >> shift) - kSubBucketCount;  // [0, kSubBucketCount)
  return static_cast<size_t>(kSubBucketCount + shift * kSubBucketCount + sub);
}

uint64_t Histogram::BucketLow(size_t index) {
  if (index < kSubBucketCount) return index;
  const uint64_t shift = (index - kSubBucketCount) / kSubBucketCount;
  const uint64_t sub = (index - kSubBucketCount) % kSubBucketCount;
  return (kSubBucketCount + sub) << shift;
}

uint64_t Histogram::BucketHigh(size_t index) {
  if (index < kSubBucketCount) return index;
  const uint64_t shift = (index - kSubBucketCount) / kSubBucketCount;
  return BucketLow(index) + (uint64_t{1} << shift) - 1;
}

void Histogram::Record(uint64_t value) {
  const size_t index = BucketIndex(value);
  CAIRN_CHECK(index < kBucketCount);
  ++buckets_[index];
  ++count_;
  sum_ += value;
  min_ = std::min(min_, value);
  max_ = std::max(max_, value);
}

void Histogram::Merge(const Histogram& other) {
  for (size_t i = 0; i < kBucketCount; ++i) buckets_[i] += other.buckets_[i];
  count_ += other.count_;
  sum_ += other.sum_;
  min_ = std::min(min_, other.min_);
  max_ = std::max(max_, other.max_);
}

uint64_t Histogram::Percentile(double q) const {
  if (count_ == 0) return 0;
  q = std::clamp(q, 0.0, 1.0);
  const uint64_t rank =
      std::max<uint64_t>(1, static_cast<uint64_t>(std::ceil(q * static_cast<double>(count_))));
  uint64_t seen = 0;
  for (size_t i = 0; i < kBucketCount; ++i) {
    seen += buckets_[i];
    if (seen >= rank) {
      const uint64_t middle = BucketLow(i) + (BucketHigh(i) - BucketLow(i)) / 2;
      return std::clamp(middle, min(), max_);
    }
  }
  return max_;
}

}  // namespace cairn::bench
