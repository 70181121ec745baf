// MaintenanceService: the part of etcd's Maintenance gRPC service cairnd serves so far —
// Status (etcdctl endpoint status), HashKV, and Defragment (answered successfully: RocksDB
// reclaims space by compaction, there is nothing to defragment). Alarm, Hash, Snapshot and
// MoveLeader answer UNIMPLEMENTED until they are added.
//
// Thread-safety: handlers run on gRPC's callback threads, concurrently; each reads the
// Node's thread-safe accessors and finishes before returning. The Node and the identity
// must outlive the grpc::Server serving this service.
#pragma once

#include <cstdint>

#include "etcdserverpb/rpc.grpc.pb.h"
#include "src/node/node.h"
#include "src/server/member_identity.h"

namespace cairn::server {

class MaintenanceService final : public etcdserverpb::Maintenance::CallbackService {
 public:
  // The etcd API version Status reports: clients compare it with the features they use.
  static constexpr const char* kEtcdVersion = "3.5.0";
  // etcd's default --quota-backend-bytes, reported when none was given.
  static constexpr int64_t kQuotaBackendBytesDefault = 2ll << 30;

  MaintenanceService(node::Node* node, const MemberIdentity* identity, int64_t quota_backend_bytes);

  grpc::ServerUnaryReactor* Status(grpc::CallbackServerContext* context,
                                   const etcdserverpb::StatusRequest* request,
                                   etcdserverpb::StatusResponse* response) override;
  grpc::ServerUnaryReactor* HashKV(grpc::CallbackServerContext* context,
                                   const etcdserverpb::HashKVRequest* request,
                                   etcdserverpb::HashKVResponse* response) override;
  grpc::ServerUnaryReactor* Defragment(grpc::CallbackServerContext* context,
                                       const etcdserverpb::DefragmentRequest* request,
                                       etcdserverpb::DefragmentResponse* response) override;

 private:
  node::Node* const node_;
  const MemberIdentity* const identity_;
  const int64_t quota_backend_bytes_;
};

}  // namespace cairn::server
