// Metrics: a small Prometheus-style registry — counters, gauges read at scrape time, and
// histograms with fixed buckets — rendered in Prometheus' text exposition format 0.0.4.
//
// Hot paths: Counter::Inc and Histogram::Observe are a few relaxed atomic operations. The
// Get*/AddGauge calls take the registry's mutex: callers look a series up once and keep the
// pointer, which stays valid as long as the registry.
//
// Thread-safety: everything is thread-safe. Gauge functions run on the thread calling
// Render and must stay callable until the last Render.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace cairn::metrics {

// Label name/value pairs, in the order rendered.
using Labels = std::vector<std::pair<std::string, std::string>>;

class Counter {
 public:
  void Inc(uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

class Histogram {
 public:
  // `bounds`: the buckets' upper bounds, ascending; +Inf is implicit.
  explicit Histogram(std::vector<double> bounds);
  void Observe(double value);

  struct Snapshot {
    std::vector<uint64_t> cumulative;  // per bound, then +Inf (== count)
    uint64_t count = 0;
    double sum = 0;
  };
  Snapshot Take() const;
  const std::vector<double>& bounds() const { return bounds_; }

 private:
  const std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;  // bounds_.size() + 1, not cumulative
  std::atomic<double> sum_{0};
};

// start, start*factor, ... (count bounds).
std::vector<double> ExponentialBuckets(double start, double factor, int count);
// Prometheus' default buckets, 5 ms to 10 s.
std::vector<double> DefaultSecondsBuckets();

class Registry {
 public:
  // Get-or-create. A name keeps the type and help of its first registration; asking for it
  // with another type returns a series that is never rendered (a programming error).
  Counter* GetCounter(std::string_view name, std::string_view help, const Labels& labels = {});
  Histogram* GetHistogram(std::string_view name, std::string_view help,
                          const std::vector<double>& bounds, const Labels& labels = {});
  // A gauge whose value `read` returns at each Render. Replaces an earlier one of the same
  // name and labels.
  void AddGauge(std::string_view name, std::string_view help, std::function<double()> read,
                const Labels& labels = {});

  // Every family sorted by name, with # HELP and # TYPE lines.
  std::string Render() const;

 private:
  enum class Type { kCounter, kGauge, kHistogram };
  struct Series {
    Labels labels;
    std::unique_ptr<Counter> counter;
    std::unique_ptr<Histogram> histogram;
    std::function<double()> gauge;
  };
  struct Family {
    Type type;
    std::string help;
    std::map<std::string, Series> series;  // by rendered labels
  };
  Series* GetSeries(std::string_view name, std::string_view help, Type type,
                    const Labels& labels);  // REQUIRES: mutex_ held; nullptr on type clash

  mutable std::mutex mutex_;
  std::map<std::string, Family, std::less<>> families_;
  std::vector<std::unique_ptr<Series>> orphans_;  // type clashes, kept alive, not rendered
};

// A value as Prometheus prints it: shortest round-trip form, +Inf, -Inf, NaN.
std::string FormatValue(double value);

}  // namespace cairn::metrics
