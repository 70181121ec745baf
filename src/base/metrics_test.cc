#include "src/base/metrics.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace cairn::metrics {
namespace {

TEST(MetricsTest, CounterRendersWithHelpTypeAndEscapedLabels) {
  Registry registry;
  Counter* c = registry.GetCounter("requests_total", "Requests.\nServed", {{"method", "a\"b\\c"}});
  c->Inc();
  c->Inc(2);
  EXPECT_EQ(registry.GetCounter("requests_total", "ignored", {{"method", "a\"b\\c"}}), c);
  EXPECT_EQ(registry.Render(),
            "# HELP requests_total Requests.\\nServed\n"
            "# TYPE requests_total counter\n"
            "requests_total{method=\"a\\\"b\\\\c\"} 3\n");
}

TEST(MetricsTest, GaugeReadsAtRender) {
  Registry registry;
  double value = 1.5;
  registry.AddGauge("g", "A gauge.", [&value] { return value; });
  EXPECT_NE(registry.Render().find("\ng 1.5\n"), std::string::npos);
  value = 42;
  EXPECT_NE(registry.Render().find("\ng 42\n"), std::string::npos);
}

TEST(MetricsTest, HistogramBucketsAreCumulativeAndInclusive) {
  Registry registry;
  Histogram* h = registry.GetHistogram("lat_seconds", "Latency.", {0.1, 1}, {{"m", "x"}});
  h->Observe(0.05);
  h->Observe(0.1);  // le="0.1" includes the bound
  h->Observe(0.5);
  h->Observe(7);
  EXPECT_EQ(registry.Render(),
            "# HELP lat_seconds Latency.\n"
            "# TYPE lat_seconds histogram\n"
            "lat_seconds_bucket{m=\"x\",le=\"0.1\"} 2\n"
            "lat_seconds_bucket{m=\"x\",le=\"1\"} 3\n"
            "lat_seconds_bucket{m=\"x\",le=\"+Inf\"} 4\n"
            "lat_seconds_sum{m=\"x\"} 7.65\n"
            "lat_seconds_count{m=\"x\"} 4\n");
}

TEST(MetricsTest, TypeClashIsNotRendered) {
  Registry registry;
  registry.GetCounter("x", "X.")->Inc();
  registry.GetHistogram("x", "X.", {1})->Observe(1);
  EXPECT_EQ(registry.Render(), "# HELP x X.\n# TYPE x counter\nx 1\n");
}

TEST(MetricsTest, ConcurrentUpdatesAreCounted) {
  Registry registry;
  Counter* c = registry.GetCounter("c", "C.");
  Histogram* h = registry.GetHistogram("h", "H.", ExponentialBuckets(1, 2, 4));
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) {
        c->Inc();
        h->Observe(i % 10);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(c->Value(), 40000u);
  EXPECT_EQ(h->Take().count, 40000u);
  EXPECT_EQ(h->Take().cumulative.back(), 40000u);
}

TEST(MetricsTest, FormatValue) {
  EXPECT_EQ(FormatValue(0.005), "0.005");
  EXPECT_EQ(FormatValue(1e20), "1e+20");
  EXPECT_EQ(FormatValue(1.0 / 0.0), "+Inf");
}

}  // namespace
}  // namespace cairn::metrics
