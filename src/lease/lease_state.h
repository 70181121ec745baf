// LeaseState: etcd's lease state machine (the persistent half of etcd's lessor) over the
// kLease engine family. Layout: src/lease/lease_format.h and docs/formats/lease.md.
//
// Apply holds no clock: a lease is (id, granted TTL, last checkpointed remaining TTL) and the
// set of keys attached to it. Deadlines live in the server's LeaseManager, which proposes
// revokes when they pass and checkpoints remaining TTLs (time enters only as commands).
//
// Writes: the applier calls Apply* on its thread with the batch it shares with KvState. As
// the mvcc::LeaseIndex given to KvState, it keeps the attachment index in the same batch
// whenever a Put or a delete changes a key's lease. Nothing is kept in memory, so a rolled
// back command leaves no trace.
// Reads: Get, List and Keys read the engine's latest written state; thread-safe.
//
// The engine and the KvState must outlive the LeaseState.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "etcdserverpb/rpc.pb.h"
#include "mvccpb/kv.pb.h"
#include "src/base/result.h"
#include "src/lease/lease_format.h"
#include "src/mvcc/kv_state.h"
#include "src/mvcc/lease_index.h"
#include "src/storage/engine.h"

namespace cairn::lease {

struct LeaseInfo {
  int64_t id = 0;
  int64_t ttl_seconds = 0;
  int64_t remaining_ttl_seconds = 0;  // 0: never checkpointed
};

class LeaseState final : public mvcc::LeaseIndex {
 public:
  LeaseState(storage::Engine* engine, mvcc::KvState* kv) : engine_(engine), kv_(kv) {}
  LeaseState(const LeaseState&) = delete;
  LeaseState& operator=(const LeaseState&) = delete;

  // ---- Apply (one thread) ----

  // Errors: ErrLeaseNotFound (ID 0: the proposer must choose), ErrLeaseTtlTooLarge,
  // ErrLeaseExists.
  Status ApplyGrant(storage::WriteBatch* batch, const etcdserverpb::LeaseGrantRequest& req,
                    etcdserverpb::LeaseGrantResponse* resp);
  // Deletes every attached key at one revision (none when no key is attached), then the
  // lease. `events` receives the deletions as KvState's do. Errors: ErrLeaseNotFound.
  Status ApplyRevoke(storage::WriteBatch* batch, const etcdserverpb::LeaseRevokeRequest& req,
                     etcdserverpb::LeaseRevokeResponse* resp,
                     std::vector<mvccpb::Event>* events = nullptr);
  // Records remaining TTLs; leases that no longer exist are skipped (etcd does the same).
  Status ApplyCheckpoint(storage::WriteBatch* batch,
                         const etcdserverpb::LeaseCheckpointRequest& req,
                         etcdserverpb::LeaseCheckpointResponse* resp);

  // mvcc::LeaseIndex.
  Result<bool> Exists(storage::WriteBatch* batch, int64_t lease) override;
  void Attach(storage::WriteBatch* batch, int64_t lease, std::string_view key) override;
  void Detach(storage::WriteBatch* batch, int64_t lease, std::string_view key) override;

  // ---- Reads (thread-safe, latest written state) ----

  Result<std::optional<LeaseInfo>> Get(int64_t id) const;
  // Every lease, by ascending id.
  Result<std::vector<LeaseInfo>> List() const;
  // The keys attached to `id`, in key order.
  Result<std::vector<std::string>> Keys(int64_t id) const;

 private:
  storage::Engine* const engine_;
  mvcc::KvState* const kv_;
};

}  // namespace cairn::lease
