// LeaseManager: the time-keeping half of etcd's lessor, on the proposing side of the log.
//
// The lease state machine (src/lease) holds no clock. This class keeps each lease's deadline
// in memory, from an injected env::Clock, and turns time into commands:
//   - a lease whose deadline passed is revoked by proposing lease_revoke, by the Raft leader
//     only; the revoke deletes its keys at one revision when applied;
//   - KeepAlive only moves the deadline in memory (etcd does not log keep-alives);
//   - every checkpoint_interval_ms the remaining TTLs are proposed as lease_checkpoint
//     commands (etcd 3.4's lease checkpoints), and once more on Stop, so a restart resumes
//     each lease from its checkpointed remaining TTL instead of the full TTL. A keep-alive of
//     a checkpointed lease proposes remaining 0 (= full TTL) so a crash cannot shorten it.
// On Start the deadlines are rebuilt from the state: now + remaining TTL (or TTL).
//
// Thread-safety: every public method is thread-safe. Node callbacks (apply thread) only
// update the map under mutex_. The Node must outlive the manager; call Stop before closing it.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "etcdserverpb/rpc.pb.h"
#include "src/base/result.h"
#include "src/env/clock.h"
#include "src/env/random.h"
#include "src/node/node.h"

namespace cairn::server {

struct LeaseManagerOptions {
  // Granted TTLs are raised to this. etcd's minLeaseTTL = ceil(3/2 * election ticks * heartbeat)
  // = ceil(15 * 100 ms) = 2 s with its default --heartbeat-interval 100 and
  // --election-timeout 1000. Default: 2.
  int64_t ttl_seconds_min = 2;
  // How often deadlines are checked; an expired lease is revoked within about this long.
  // Default: 250.
  uint64_t tick_ms = 250;
  // How often remaining TTLs are checkpointed (etcd: 5 min; shorter here so that a kill -9
  // extends a lease by at most this much). 0 = only on Stop. Default: 5000.
  uint64_t checkpoint_interval_ms = 5000;
  // Leases per lease_checkpoint command (etcd's maxLeaseCheckpointBatchSize). Default: 1000.
  size_t checkpoint_batch_leases_max = 1000;
  // Most expiry revokes in flight at once (etcd revokes at most 1000 leases/s). Default: 1000.
  size_t revokes_in_flight_max = 1000;
  // How long Stop waits for its final checkpoint to apply. Default: 5000.
  uint64_t stop_checkpoint_wait_ms = 5000;
};

class LeaseManager {
 public:
  template <typename Response>
  using Done = std::function<void(const Status& status, Response&& response)>;

  // `clock` must outlive the manager; nullptr = the system clock.
  LeaseManager(node::Node* node, env::Clock* clock, const LeaseManagerOptions& options = {});
  ~LeaseManager();
  LeaseManager(const LeaseManager&) = delete;
  LeaseManager& operator=(const LeaseManager&) = delete;

  // Loads the leases from the state and, when `run_ticker`, starts the thread that calls
  // Tick every tick_ms (tests pass false and call Tick themselves).
  Status Start(bool run_ticker = true);
  // Stops the ticker, then proposes a final checkpoint and waits for it. Idempotent.
  void Stop();

  // Chooses an ID when req.ID is 0, raises the TTL to the minimum, proposes the grant.
  // `done` runs once (apply thread, or here when refused).
  void Grant(etcdserverpb::LeaseGrantRequest req, Done<etcdserverpb::LeaseGrantResponse> done);
  void Revoke(int64_t id, Done<etcdserverpb::LeaseRevokeResponse> done);
  // Moves the deadline to now + TTL and returns the TTL. Errors: NotFound (unknown lease or
  // one being revoked).
  Result<int64_t> Renew(int64_t id);
  // Renew on this member, for renewals forwarded by followers (Unavailable when this member
  // no longer leads).
  Result<int64_t> RenewHere(int64_t id);
  // How a follower renews at the leader (a blocking call with a deadline). Default: none =
  // renew here. REQUIRES: set before Start.
  void set_renew_forwarder(std::function<Result<int64_t>(int64_t id)> forwarder) {
    renew_forwarder_ = std::move(forwarder);
  }
  // Whole seconds left (etcd truncates), or nullopt for an unknown lease.
  std::optional<int64_t> RemainingSeconds(int64_t id);
  size_t Count();
  // Orders `ids` by deadline, soonest first (etcd's LeaseLeases order: lessor.Leases() sorts
  // by remaining time); IDs without a deadline go last, in their given order.
  void SortByExpiry(std::vector<int64_t>* ids);

  // Proposes revokes for expired leases and, when due, checkpoints.
  void Tick();
  // Proposes checkpoints of every lease's remaining TTL now.
  void Checkpoint();

 private:
  struct Entry {
    uint64_t deadline_nanos = 0;
    int64_t ttl_seconds = 0;
    bool revoking = false;
    bool checkpointed = false;  // a remaining TTL > 0 is recorded in the state
  };

  // Replaces the deadlines with now + the remaining (or full) TTL of every lease in the state;
  // with keep_known, leases already in the map keep theirs (and vanished ones are dropped).
  Result<size_t> Rebuild(bool keep_known = false);
  static constexpr uint64_t kReconcileIntervalNanos = 1'000'000'000;
  void OnRevoked(int64_t id, const Status& status);
  void TickerLoop();
  uint64_t DeadlineAfter(int64_t seconds);

  node::Node* const node_;
  env::Clock* const clock_;
  const LeaseManagerOptions options_;

  std::mutex mutex_;
  std::condition_variable stop_wanted_;
  std::map<int64_t, Entry> leases_;     // GUARDED_BY(mutex_)
  env::Random random_;                  // GUARDED_BY(mutex_)
  size_t revokes_in_flight_ = 0;        // GUARDED_BY(mutex_)
  uint64_t last_checkpoint_nanos_ = 0;  // GUARDED_BY(mutex_)
  bool stopping_ = false;               // GUARDED_BY(mutex_)
  bool stopped_ = false;
  // Tick only: whether this member led at the last tick. Starts true: Start rebuilt already.
  bool leading_ = true;
  uint64_t last_reconcile_nanos_ = 0;  // GUARDED_BY(mutex_)
  std::atomic<bool> reconcile_wanted_{false};
  std::function<Result<int64_t>(int64_t id)> renew_forwarder_;
  std::thread ticker_;
};

}  // namespace cairn::server
