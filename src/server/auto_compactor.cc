#include "src/server/auto_compactor.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <future>

#include "src/base/logging.h"
#include "src/server/duration.h"

namespace cairn::server {
namespace {

constexpr int64_t kHourMs = 60 * 60 * 1000;
constexpr int64_t kPeriodicSamplesPerWindow = 10;  // etcd's retryDivisor

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

bool AllDigits(const std::string& text) {
  return !text.empty() &&
         std::all_of(text.begin(), text.end(), [](unsigned char c) { return std::isdigit(c); });
}

}  // namespace

Result<AutoCompactionOptions> AutoCompactionOptions::Parse(const std::string& mode,
                                                           const std::string& retention) {
  AutoCompactionOptions options;
  if (mode == "periodic") {
    options.mode = Mode::kPeriodic;
    if (AllDigits(retention)) {
      options.retention = std::stoll(retention) * kHourMs;
    } else {
      options.retention = ParseDurationMs(retention);
      if (options.retention < 0) {
        return Status::InvalidArgument(
            "--auto-compaction-retention: not a number of hours or a "
            "duration: " +
            retention);
      }
    }
  } else if (mode == "revision") {
    options.mode = Mode::kRevision;
    if (!AllDigits(retention)) {
      return Status::InvalidArgument(
          "--auto-compaction-retention: revision mode takes a number of revisions, got " +
          retention);
    }
    options.retention = std::stoll(retention);
  } else {
    return Status::InvalidArgument("--auto-compaction-mode must be periodic or revision, got " +
                                   mode);
  }
  return options;
}

AutoCompactor::AutoCompactor(node::Node* node, AutoCompactionOptions options)
    : node_(node), options_(options) {}

AutoCompactor::~AutoCompactor() { Stop(); }

void AutoCompactor::Start() {
  if (options_.retention <= 0) return;
  thread_ = std::thread([this] { Run(); });
}

void AutoCompactor::Stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  stop_signal_.notify_all();
  if (thread_.joinable()) thread_.join();
}

int64_t AutoCompactor::compactions() const {
  std::lock_guard lock(mutex_);
  return compactions_;
}

int64_t AutoCompactor::last_compacted_revision() const {
  std::lock_guard lock(mutex_);
  return last_compacted_;
}

bool AutoCompactor::Sleep(int64_t ms) {
  std::unique_lock lock(mutex_);
  stop_signal_.wait_for(lock, std::chrono::milliseconds(ms), [this] { return stopping_; });
  return !stopping_;
}

bool AutoCompactor::Compact(int64_t revision) {
  if (revision <= node_->kv()->CompactedRevision()) return true;
  command::Command command;
  command.mutable_compaction()->set_revision(revision);
  std::promise<Status> applied;
  node_->Propose(std::move(command), [&applied](const Status& status, command::CommandResult&&) {
    applied.set_value(status);
  });
  const Status status = applied.get_future().get();
  auto logger = log::Get("compactor");
  if (!status.ok() && status.code() != StatusCode::kOutOfRange) {
    logger->warn("auto compaction to revision {} failed: {}", revision, status.ToString());
    return false;
  }
  logger->info("auto compaction to revision {} ({} mode)", revision,
               options_.mode == AutoCompactionOptions::Mode::kPeriodic ? "periodic" : "revision");
  std::lock_guard lock(mutex_);
  ++compactions_;
  last_compacted_ = std::max(last_compacted_, revision);
  return true;
}

void AutoCompactor::Run() {
  if (options_.mode == AutoCompactionOptions::Mode::kRevision) {
    int64_t last_target = 0;
    while (Sleep(options_.revision_check_interval_ms)) {
      const int64_t target = node_->kv()->CurrentRevision() - options_.retention;
      if (target <= 0 || target == last_target) continue;
      if (Compact(target)) last_target = target;
    }
    return;
  }
  // Periodic: samples[0] is the revision of one window ago once the deque is full.
  const int64_t compact_interval_ms = std::min(options_.retention, kHourMs);
  const int64_t sample_interval_ms =
      std::max<int64_t>(1, compact_interval_ms / kPeriodicSamplesPerWindow);
  const size_t samples_max = static_cast<size_t>(options_.retention / sample_interval_ms) + 1;
  std::deque<int64_t> samples;
  int64_t last_compaction_ms = NowMs();
  bool last_succeeded = true;
  while (true) {
    samples.push_back(node_->kv()->CurrentRevision());
    if (samples.size() > samples_max) samples.pop_front();
    if (!Sleep(sample_interval_ms)) return;
    if (samples.size() < samples_max) continue;  // less than one window observed
    if (last_succeeded && NowMs() - last_compaction_ms < compact_interval_ms) continue;
    last_succeeded = Compact(samples.front());
    last_compaction_ms = NowMs();
  }
}

}  // namespace cairn::server
