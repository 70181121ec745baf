// MaintenanceService: etcd's Maintenance gRPC service.
//   Status      etcdctl endpoint status; errors lists the active alarms as etcd does.
//   Alarm       GET answers the active alarms; ACTIVATE/DEACTIVATE go through the log.
//   Hash        crc32c of the replicated state (node::HashState); HashKV as etcd's.
//   Snapshot    streams a Cairn snapshot (src/node/snapshot.h) in 32 KiB chunks with
//               remaining_bytes, like etcd; `cairnctl snapshot restore` makes a data dir of it.
//   Defragment  a full engine compaction (flush, then compact every family) — what reclaims
//               space in RocksDB — run on the background worker; answered when done.
//   MoveLeader  the single voter is the leader: moving to itself succeeds, to anyone else
//               fails with etcd's "bad leader transferee" (the Raft issue makes it real).
//
// Thread-safety: handlers run on gRPC's callback threads, concurrently. The Node, identity,
// quota and worker must outlive the grpc::Server serving this service.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

#include "etcdserverpb/rpc.grpc.pb.h"
#include "src/node/node.h"
#include "src/server/background_worker.h"
#include "src/server/member_identity.h"
#include "src/server/space_quota.h"

namespace cairn::server {

class MaintenanceService final : public etcdserverpb::Maintenance::CallbackService {
 public:
  // The etcd API version Status reports: clients compare it with the features they use.
  static constexpr const char* kEtcdVersion = "3.5.0";
  // etcd's snapshot chunk size.
  static constexpr size_t kSnapshotChunkBytes = 32 * 1024;

  // Snapshots are staged in `snapshot_dir` (created; leftovers deleted) while they stream.
  MaintenanceService(node::Node* node, const MemberIdentity* identity, const SpaceQuota* quota,
                     BackgroundWorker* worker, std::string snapshot_dir);

  grpc::ServerUnaryReactor* Alarm(grpc::CallbackServerContext* context,
                                  const etcdserverpb::AlarmRequest* request,
                                  etcdserverpb::AlarmResponse* response) override;
  grpc::ServerUnaryReactor* Status(grpc::CallbackServerContext* context,
                                   const etcdserverpb::StatusRequest* request,
                                   etcdserverpb::StatusResponse* response) override;
  grpc::ServerUnaryReactor* Defragment(grpc::CallbackServerContext* context,
                                       const etcdserverpb::DefragmentRequest* request,
                                       etcdserverpb::DefragmentResponse* response) override;
  grpc::ServerUnaryReactor* Hash(grpc::CallbackServerContext* context,
                                 const etcdserverpb::HashRequest* request,
                                 etcdserverpb::HashResponse* response) override;
  grpc::ServerUnaryReactor* HashKV(grpc::CallbackServerContext* context,
                                   const etcdserverpb::HashKVRequest* request,
                                   etcdserverpb::HashKVResponse* response) override;
  grpc::ServerWriteReactor<etcdserverpb::SnapshotResponse>* Snapshot(
      grpc::CallbackServerContext* context, const etcdserverpb::SnapshotRequest* request) override;
  grpc::ServerUnaryReactor* MoveLeader(grpc::CallbackServerContext* context,
                                       const etcdserverpb::MoveLeaderRequest* request,
                                       etcdserverpb::MoveLeaderResponse* response) override;

 private:
  class SnapshotReactor;
  void FillHeader(etcdserverpb::ResponseHeader* header) const;

  node::Node* const node_;
  const MemberIdentity* const identity_;
  const SpaceQuota* const quota_;
  BackgroundWorker* const worker_;
  const std::string snapshot_dir_;
  std::atomic<uint64_t> snapshots_started_{0};
};

}  // namespace cairn::server
