#include "src/base/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>

namespace cairn::metrics {

namespace {

std::string EscapeLabelValue(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string EscapeHelp(std::string_view help) {
  std::string out;
  for (char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

// `a="x",b="y"` (no braces).
std::string RenderLabels(const Labels& labels) {
  std::string out;
  for (const auto& [name, value] : labels) {
    if (!out.empty()) out += ',';
    out += name + "=\"" + EscapeLabelValue(value) + "\"";
  }
  return out;
}

void AppendSample(std::string* out, std::string_view name, const std::string& labels,
                  const std::string& value) {
  out->append(name);
  if (!labels.empty()) out->append("{" + labels + "}");
  out->append(" " + value + "\n");
}

}  // namespace

std::string FormatValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  char buffer[64];
  auto [end, ec] = std::to_chars(buffer, buffer + sizeof(buffer), value);
  if (ec != std::errc()) return "NaN";
  return std::string(buffer, end);
}

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), buckets_(new std::atomic<uint64_t>[bounds_.size() + 1]) {
  for (size_t i = 0; i <= bounds_.size(); ++i) buckets_[i].store(0, std::memory_order_relaxed);
}

void Histogram::Observe(double value) {
  const size_t bucket =
      std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin();  // le
  buckets_[bucket].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(value, std::memory_order_relaxed);
}

Histogram::Snapshot Histogram::Take() const {
  Snapshot snapshot;
  snapshot.cumulative.resize(bounds_.size() + 1);
  uint64_t running = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    running += buckets_[i].load(std::memory_order_relaxed);
    snapshot.cumulative[i] = running;
  }
  snapshot.count = running;
  snapshot.sum = sum_.load(std::memory_order_relaxed);
  return snapshot;
}

std::vector<double> ExponentialBuckets(double start, double factor, int count) {
  std::vector<double> bounds;
  for (int i = 0; i < count; ++i, start *= factor) bounds.push_back(start);
  return bounds;
}

std::vector<double> DefaultSecondsBuckets() {
  return {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
}

Registry::Series* Registry::GetSeries(std::string_view name, std::string_view help, Type type,
                                      const Labels& labels) {
  auto it = families_.find(name);
  if (it == families_.end()) {
    it = families_.emplace(std::string(name), Family{type, std::string(help), {}}).first;
  }
  if (it->second.type != type) {
    orphans_.push_back(std::make_unique<Series>());
    return orphans_.back().get();
  }
  Series& series = it->second.series[RenderLabels(labels)];
  series.labels = labels;
  return &series;
}

Counter* Registry::GetCounter(std::string_view name, std::string_view help, const Labels& labels) {
  std::lock_guard lock(mutex_);
  Series* series = GetSeries(name, help, Type::kCounter, labels);
  if (!series->counter) series->counter = std::make_unique<Counter>();
  return series->counter.get();
}

Histogram* Registry::GetHistogram(std::string_view name, std::string_view help,
                                  const std::vector<double>& bounds, const Labels& labels) {
  std::lock_guard lock(mutex_);
  Series* series = GetSeries(name, help, Type::kHistogram, labels);
  if (!series->histogram) series->histogram = std::make_unique<Histogram>(bounds);
  return series->histogram.get();
}

void Registry::AddGauge(std::string_view name, std::string_view help, std::function<double()> read,
                        const Labels& labels) {
  std::lock_guard lock(mutex_);
  GetSeries(name, help, Type::kGauge, labels)->gauge = std::move(read);
}

std::string Registry::Render() const {
  std::lock_guard lock(mutex_);
  std::string out;
  for (const auto& [name, family] : families_) {
    static const char* const kTypeNames[] = {"counter", "gauge", "histogram"};
    out += "# HELP " + name + " " + EscapeHelp(family.help) + "\n";
    out += "# TYPE " + name + " " + kTypeNames[static_cast<int>(family.type)] + "\n";
    for (const auto& [labels, series] : family.series) {
      switch (family.type) {
        case Type::kCounter:
          AppendSample(&out, name, labels, std::to_string(series.counter->Value()));
          break;
        case Type::kGauge:
          AppendSample(&out, name, labels, FormatValue(series.gauge ? series.gauge() : 0));
          break;
        case Type::kHistogram: {
          const Histogram::Snapshot snapshot = series.histogram->Take();
          const std::string prefix = labels.empty() ? "" : labels + ",";
          const std::vector<double>& bounds = series.histogram->bounds();
          for (size_t i = 0; i <= bounds.size(); ++i) {
            const std::string le = i < bounds.size() ? FormatValue(bounds[i]) : "+Inf";
            AppendSample(&out, name + "_bucket", prefix + "le=\"" + le + "\"",
                         std::to_string(snapshot.cumulative[i]));
          }
          AppendSample(&out, name + "_sum", labels, FormatValue(snapshot.sum));
          AppendSample(&out, name + "_count", labels, std::to_string(snapshot.count));
          break;
        }
      }
    }
  }
  return out;
}

}  // namespace cairn::metrics
