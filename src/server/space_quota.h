// SpaceQuota: etcd's backend quota (--quota-backend-bytes). Before a write is logged, this
// member estimates whether the database would outgrow the quota; if so it raises the NOSPACE
// alarm (an ALARM ACTIVATE command, so every member caps writes from the same log index on)
// and refuses the write with "etcdserver: mvcc: database space exceeded". While the alarm is
// active, the applier refuses Put, Txn with writes and LeaseGrant; deletes, compaction and
// Defragment (a full engine compaction here) free space, and `etcdctl alarm disarm` lifts it.
//
// The estimate is etcd's: database size + per-request cost (key + value + 256 bytes per put,
// the larger branch of a txn, 64 bytes per lease grant). The database size is the engine's
// live SST files plus memtables, sampled at most every kSizeSampleMs, plus the costs of the
// writes admitted since the sample (so the quota holds however fast writes arrive between two
// samples).
//
// Thread-safety: Admit is thread-safe (it runs on gRPC threads via Node::Propose).
#pragma once

#include <atomic>
#include <cstdint>

#include "cairn/command.pb.h"
#include "src/base/status.h"
#include "src/node/node.h"

namespace cairn::server {

class SpaceQuota {
 public:
  // quota_bytes < 0 disables the quota; 0 means etcd's default of 2 GiB.
  SpaceQuota(node::Node* node, uint64_t member_id, int64_t quota_bytes);

  static constexpr int64_t kDefaultQuotaBytes = 2ll << 30;
  // etcd's maximum: larger values are clamped with a warning, as etcd does.
  static constexpr int64_t kMaxQuotaBytes = 8ll << 30;
  static constexpr int64_t kSizeSampleMs = 100;

  Status Admit(const command::Command& command);
  // The quota in bytes (0 when disabled).
  int64_t quota_bytes() const { return quota_bytes_ < 0 ? 0 : quota_bytes_; }
  // What a command adds to the database by etcd's estimate; 0 for commands the quota does
  // not cap.
  static int64_t CostBytes(const command::Command& command);

 private:
  int64_t SizeBytes();

  node::Node* const node_;
  const uint64_t member_id_;
  const int64_t quota_bytes_;
  std::atomic<int64_t> size_bytes_{0};
  std::atomic<int64_t> admitted_since_sample_bytes_{0};
  std::atomic<int64_t> size_sampled_ms_{-kSizeSampleMs};
  std::atomic<bool> alarm_proposed_{false};
};

}  // namespace cairn::server
