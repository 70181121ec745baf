#include "src/server/lease_manager.h"

#include <algorithm>
#include <chrono>
#include <future>
#include <vector>

#include "src/base/logging.h"
#include "src/lease/errors.h"

namespace cairn::server {
namespace {

constexpr uint64_t kNanosPerSecond = 1'000'000'000;
constexpr uint64_t kNanosPerMs = 1'000'000;

std::shared_ptr<spdlog::logger> Logger() {
  static auto logger = log::Get("lease");
  return logger;
}

}  // namespace

LeaseManager::LeaseManager(node::Node* node, env::Clock* clock, const LeaseManagerOptions& options)
    : node_(node),
      clock_(clock != nullptr ? clock : env::SystemClock::Default()),
      options_(options),
      random_(clock_->WallMicros() ^ clock_->NowNanos()) {}

LeaseManager::~LeaseManager() { Stop(); }

uint64_t LeaseManager::DeadlineAfter(int64_t seconds) {
  const uint64_t span = static_cast<uint64_t>(std::max<int64_t>(seconds, 0));
  // Saturate: TTLs reach 9e9 s, which overflows nanoseconds.
  const uint64_t limit = (UINT64_MAX - clock_->NowNanos()) / kNanosPerSecond;
  return clock_->NowNanos() + std::min(span, limit) * kNanosPerSecond;
}

Status LeaseManager::Start(bool run_ticker) {
  CAIRN_ASSIGN_OR_RETURN(size_t restored, Rebuild());
  if (restored > 0) Logger()->info("restored {} leases", restored);
  if (run_ticker) ticker_ = std::thread([this] { TickerLoop(); });
  return Status::Ok();
}

Result<size_t> LeaseManager::Rebuild(bool keep_known) {
  CAIRN_ASSIGN_OR_RETURN(std::vector<lease::LeaseInfo> leases, node_->leases()->List());
  {
    std::lock_guard lock(mutex_);
    std::map<int64_t, Entry> known;
    if (keep_known) known.swap(leases_);
    leases_.clear();
    for (const lease::LeaseInfo& info : leases) {
      if (auto it = known.find(info.id); it != known.end()) {
        leases_[info.id] = it->second;  // keeps its deadline and in-flight revoke
        continue;
      }
      Entry entry;
      entry.ttl_seconds = info.ttl_seconds;
      const bool resumed = info.remaining_ttl_seconds > 0;
      entry.deadline_nanos = DeadlineAfter(resumed ? info.remaining_ttl_seconds : info.ttl_seconds);
      entry.checkpointed = resumed;
      leases_[info.id] = entry;
    }
    if (!keep_known) last_checkpoint_nanos_ = clock_->NowNanos();
    last_reconcile_nanos_ = clock_->NowNanos();
  }
  return leases.size();
}

void LeaseManager::Stop() {
  {
    std::lock_guard lock(mutex_);
    if (stopped_) return;
    stopped_ = true;
    stopping_ = true;
  }
  stop_wanted_.notify_all();
  if (ticker_.joinable()) ticker_.join();
  // A final checkpoint, so that a graceful restart resumes every remaining TTL.
  std::vector<std::future<void>> applied;
  etcdserverpb::LeaseCheckpointRequest req;
  auto propose = [&] {
    auto promise = std::make_shared<std::promise<void>>();
    applied.push_back(promise->get_future());
    command::Command command;
    *command.mutable_lease_checkpoint() = std::move(req);
    req.Clear();
    node_->Propose(std::move(command),
                   [promise](const Status&, command::CommandResult&&) { promise->set_value(); });
  };
  {
    std::lock_guard lock(mutex_);
    const uint64_t now = clock_->NowNanos();
    for (const auto& [id, entry] : leases_) {
      auto* checkpoint = req.add_checkpoints();
      checkpoint->set_id(id);
      const uint64_t left = entry.deadline_nanos > now ? entry.deadline_nanos - now : 0;
      // Round up: a lease with 0.5 s left resumes with 1 s, never with "no checkpoint".
      checkpoint->set_remaining_ttl(std::max<int64_t>(
          1, static_cast<int64_t>((left + kNanosPerSecond - 1) / kNanosPerSecond)));
      if (static_cast<size_t>(req.checkpoints_size()) >= options_.checkpoint_batch_leases_max) {
        propose();
      }
    }
  }
  if (req.checkpoints_size() > 0) propose();
  const auto wait_until = std::chrono::steady_clock::now() +
                          std::chrono::milliseconds(options_.stop_checkpoint_wait_ms);
  for (auto& future : applied) {
    if (future.wait_until(wait_until) != std::future_status::ready) {
      Logger()->warn("the final lease checkpoint did not apply in time");
      break;
    }
  }
}

void LeaseManager::Grant(etcdserverpb::LeaseGrantRequest req,
                         Done<etcdserverpb::LeaseGrantResponse> done) {
  if (req.ttl() > lease::kTtlSecondsMax) {
    done(lease::ErrLeaseTtlTooLarge(), {});
    return;
  }
  req.set_ttl(std::max(req.ttl(), options_.ttl_seconds_min));
  if (req.id() == 0) {
    std::lock_guard lock(mutex_);
    // etcd draws IDs from its request id generator, positive 63-bit; any unused one works.
    int64_t id = 0;
    while (id == 0 || leases_.contains(id)) {
      id = static_cast<int64_t>(random_.Next64() & ((uint64_t{1} << 63) - 1));
    }
    req.set_id(id);
  }
  command::Command command;
  *command.mutable_lease_grant() = req;
  node_->Propose(std::move(command), [this, done = std::move(done)](
                                         const Status& status, command::CommandResult&& result) {
    if (status.ok()) {
      const etcdserverpb::LeaseGrantResponse& granted = result.lease_grant();
      std::lock_guard lock(mutex_);
      Entry entry;
      entry.ttl_seconds = granted.ttl();
      entry.deadline_nanos = DeadlineAfter(granted.ttl());
      leases_[granted.id()] = entry;
    }
    done(status, std::move(*result.mutable_lease_grant()));
  });
}

void LeaseManager::Revoke(int64_t id, Done<etcdserverpb::LeaseRevokeResponse> done) {
  command::Command command;
  command.mutable_lease_revoke()->set_id(id);
  node_->Propose(std::move(command), [this, id, done = std::move(done)](
                                         const Status& status, command::CommandResult&& result) {
    if (status.ok()) {
      std::lock_guard lock(mutex_);
      leases_.erase(id);
    }
    done(status, std::move(*result.mutable_lease_revoke()));
  });
}

Result<int64_t> LeaseManager::Renew(int64_t id) {
  // Only the leader keeps deadlines that count (etcd forwards keep-alives to the leader).
  if (renew_forwarder_ && !node_->IsLeader()) return renew_forwarder_(id);
  return RenewHere(id);
}

Result<int64_t> LeaseManager::RenewHere(int64_t id) {
  if (node_->LeaderId() != node_->member_id()) {
    // A forwarded renewal that reached a member which lost the lead: the follower retries.
    if (renew_forwarder_) return Status::Unavailable("etcdserver: not leader");
  }
  {
    // A lease granted through another member that this leader has not merged yet.
    std::lock_guard lock(mutex_);
    if (!leases_.contains(id)) reconcile_wanted_ = true;
  }
  if (reconcile_wanted_.exchange(false)) (void)Rebuild(/*keep_known=*/true);
  bool clear_checkpoint = false;
  int64_t ttl = 0;
  {
    std::lock_guard lock(mutex_);
    auto it = leases_.find(id);
    if (it == leases_.end() || it->second.revoking) return lease::ErrLeaseNotFound();
    it->second.deadline_nanos = DeadlineAfter(it->second.ttl_seconds);
    clear_checkpoint = it->second.checkpointed && !stopping_;
    it->second.checkpointed = false;
    ttl = it->second.ttl_seconds;
  }
  if (clear_checkpoint) {
    // The recorded remaining TTL is now too short: record "full TTL" (0), as etcd 3.5 does.
    command::Command command;
    auto* checkpoint = command.mutable_lease_checkpoint()->add_checkpoints();
    checkpoint->set_id(id);
    checkpoint->set_remaining_ttl(0);
    node_->Propose(std::move(command), [](const Status&, command::CommandResult&&) {});
  }
  return ttl;
}

std::optional<int64_t> LeaseManager::RemainingSeconds(int64_t id) {
  std::lock_guard lock(mutex_);
  auto it = leases_.find(id);
  if (it == leases_.end()) return std::nullopt;
  const uint64_t now = clock_->NowNanos();
  const uint64_t left = it->second.deadline_nanos > now ? it->second.deadline_nanos - now : 0;
  return static_cast<int64_t>(left / kNanosPerSecond);
}

void LeaseManager::SortByExpiry(std::vector<int64_t>* ids) {
  std::lock_guard lock(mutex_);
  auto deadline = [&](int64_t id) {
    auto it = leases_.find(id);
    return it == leases_.end() ? UINT64_MAX : it->second.deadline_nanos;
  };
  std::stable_sort(ids->begin(), ids->end(),
                   [&](int64_t a, int64_t b) { return deadline(a) < deadline(b); });
}

size_t LeaseManager::Count() {
  std::lock_guard lock(mutex_);
  return leases_.size();
}

void LeaseManager::Tick() {
  // Only the leader expires leases (etcd's lessor promotion): a member that becomes leader
  // rebuilds every deadline from the replicated state, as a restart does, so leases granted
  // through other members are included and none expires early because of the change.
  if (!node_->IsLeader()) {
    leading_ = false;
    return;
  }
  // Leases granted through other members reach this map only through the state: merge them
  // in about once a second (those this member knows keep their deadlines).
  bool reconcile = false;
  {
    std::lock_guard lock(mutex_);
    reconcile = clock_->NowNanos() - last_reconcile_nanos_ >= kReconcileIntervalNanos;
  }
  if (leading_ && reconcile) {
    Result<size_t> merged = Rebuild(/*keep_known=*/true);
    if (!merged.ok()) Logger()->warn("merging leases: {}", merged.status().ToString());
  }
  if (!leading_) {
    leading_ = true;
    Result<size_t> rebuilt = Rebuild();
    if (!rebuilt.ok()) {
      Logger()->warn("rebuilding lease deadlines: {}", rebuilt.status().ToString());
      leading_ = false;
      return;
    }
  }
  std::vector<int64_t> expired;
  bool checkpoint_due = false;
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    const uint64_t now = clock_->NowNanos();
    // A full scan per tick: O(leases) in memory, cheap next to the revokes it triggers.
    for (auto& [id, entry] : leases_) {
      if (revokes_in_flight_ >= options_.revokes_in_flight_max) break;
      if (entry.revoking || entry.deadline_nanos > now) continue;
      entry.revoking = true;
      ++revokes_in_flight_;
      expired.push_back(id);
    }
    checkpoint_due = options_.checkpoint_interval_ms > 0 &&
                     now - last_checkpoint_nanos_ >= options_.checkpoint_interval_ms * kNanosPerMs;
  }
  for (int64_t id : expired) {
    command::Command command;
    command.mutable_lease_revoke()->set_id(id);
    node_->Propose(std::move(command), [this, id](const Status& status, command::CommandResult&&) {
      OnRevoked(id, status);
    });
  }
  if (checkpoint_due) Checkpoint();
}

void LeaseManager::OnRevoked(int64_t id, const Status& status) {
  std::lock_guard lock(mutex_);
  --revokes_in_flight_;
  auto it = leases_.find(id);
  if (it == leases_.end()) return;
  if (status.ok() || status.code() == StatusCode::kNotFound) {
    leases_.erase(it);
  } else {
    it->second.revoking = false;  // retried on a later tick
    Logger()->warn("revoking expired lease {:x}: {}", id, status.ToString());
  }
}

void LeaseManager::Checkpoint() {
  std::vector<etcdserverpb::LeaseCheckpointRequest> requests;
  {
    std::lock_guard lock(mutex_);
    const uint64_t now = clock_->NowNanos();
    last_checkpoint_nanos_ = now;
    for (auto& [id, entry] : leases_) {
      if (entry.revoking) continue;
      if (requests.empty() || static_cast<size_t>(requests.back().checkpoints_size()) >=
                                  options_.checkpoint_batch_leases_max) {
        requests.emplace_back();
      }
      const uint64_t left = entry.deadline_nanos > now ? entry.deadline_nanos - now : 0;
      auto* checkpoint = requests.back().add_checkpoints();
      checkpoint->set_id(id);
      checkpoint->set_remaining_ttl(std::max<int64_t>(
          1, static_cast<int64_t>((left + kNanosPerSecond - 1) / kNanosPerSecond)));
      entry.checkpointed = true;
    }
  }
  for (auto& req : requests) {
    command::Command command;
    *command.mutable_lease_checkpoint() = std::move(req);
    node_->Propose(std::move(command), [](const Status&, command::CommandResult&&) {});
  }
}

void LeaseManager::TickerLoop() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    stop_wanted_.wait_for(lock, std::chrono::milliseconds(options_.tick_ms));
    if (stopping_) break;
    lock.unlock();
    Tick();
    lock.lock();
  }
}

}  // namespace cairn::server
