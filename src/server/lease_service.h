// LeaseService: etcd's Lease gRPC service (/etcdserverpb.Lease/*) on gRPC's callback API.
//
//   LeaseGrant, LeaseRevoke ─▶ LeaseManager ─▶ Node::Propose ─▶ (apply thread) Finish
//   LeaseKeepAlive (bidi stream) ─▶ LeaseManager::Renew, in memory (not logged, as etcd)
//   LeaseTimeToLive, LeaseLeases ─▶ the lease state + the manager's deadlines
//
// etcd's answers for a missing lease: Revoke fails NotFound "etcdserver: requested lease not
// found"; KeepAlive answers TTL 0 on the stream; TimeToLive answers TTL -1 (no error).
//
// Thread-safety: handlers run on gRPC's callback threads. The Node, the manager and the
// identity must outlive the grpc::Server serving this service.
#pragma once

#include "etcdserverpb/rpc.grpc.pb.h"
#include "src/node/node.h"
#include "src/server/lease_manager.h"
#include "src/server/member_identity.h"

namespace cairn::server {

class LeaseService final : public etcdserverpb::Lease::CallbackService {
 public:
  LeaseService(node::Node* node, LeaseManager* manager, const MemberIdentity* identity)
      : node_(node), manager_(manager), identity_(identity) {}

  grpc::ServerUnaryReactor* LeaseGrant(grpc::CallbackServerContext* context,
                                       const etcdserverpb::LeaseGrantRequest* request,
                                       etcdserverpb::LeaseGrantResponse* response) override;
  grpc::ServerUnaryReactor* LeaseRevoke(grpc::CallbackServerContext* context,
                                        const etcdserverpb::LeaseRevokeRequest* request,
                                        etcdserverpb::LeaseRevokeResponse* response) override;
  grpc::ServerBidiReactor<etcdserverpb::LeaseKeepAliveRequest,
                          etcdserverpb::LeaseKeepAliveResponse>*
  LeaseKeepAlive(grpc::CallbackServerContext* context) override;
  grpc::ServerUnaryReactor* LeaseTimeToLive(
      grpc::CallbackServerContext* context, const etcdserverpb::LeaseTimeToLiveRequest* request,
      etcdserverpb::LeaseTimeToLiveResponse* response) override;
  grpc::ServerUnaryReactor* LeaseLeases(grpc::CallbackServerContext* context,
                                        const etcdserverpb::LeaseLeasesRequest* request,
                                        etcdserverpb::LeaseLeasesResponse* response) override;

 private:
  void FillHeader(etcdserverpb::ResponseHeader* header) const;

  node::Node* const node_;
  LeaseManager* const manager_;
  const MemberIdentity* const identity_;
};

}  // namespace cairn::server
