// ClusterService: etcd's Cluster gRPC service over the replicated membership
// (src/node/membership.h). Changes are Raft configuration changes, one at a time:
//   MemberList     every member: id, name, peer and client URLs (names and client URLs appear
//                  once the member has started and published them), learner flag.
//   MemberAdd      a voter or a learner with new peer URLs; the id is chosen here. A voter is
//                  refused, as etcd's strict reconfiguration check does, when the started
//                  voters would not make a quorum of the larger cluster ("re-configuration
//                  failed due to not enough started members").
//   MemberRemove   refused by the same check when the remaining started voters would not make
//                  a quorum; unknown ids: "member not found".
//   MemberUpdate   a member's peer URLs.
//   MemberPromote  a learner becomes a voter; voters: "can only promote a learner member".
// Headers carry cluster id, member id and raft term but no revision, as etcd's.
//
// Thread-safety: handlers run concurrently; state lives in the node.
#pragma once

#include <string>
#include <vector>

#include "etcdserverpb/rpc.grpc.pb.h"
#include "src/node/node.h"
#include "src/server/member_identity.h"

namespace cairn::server {

class ClusterService final : public etcdserverpb::Cluster::CallbackService {
 public:
  ClusterService(node::Node* node, const MemberIdentity* identity);

  grpc::ServerUnaryReactor* MemberAdd(grpc::CallbackServerContext* context,
                                      const etcdserverpb::MemberAddRequest* request,
                                      etcdserverpb::MemberAddResponse* response) override;
  grpc::ServerUnaryReactor* MemberRemove(grpc::CallbackServerContext* context,
                                         const etcdserverpb::MemberRemoveRequest* request,
                                         etcdserverpb::MemberRemoveResponse* response) override;
  grpc::ServerUnaryReactor* MemberUpdate(grpc::CallbackServerContext* context,
                                         const etcdserverpb::MemberUpdateRequest* request,
                                         etcdserverpb::MemberUpdateResponse* response) override;
  grpc::ServerUnaryReactor* MemberList(grpc::CallbackServerContext* context,
                                       const etcdserverpb::MemberListRequest* request,
                                       etcdserverpb::MemberListResponse* response) override;
  grpc::ServerUnaryReactor* MemberPromote(grpc::CallbackServerContext* context,
                                          const etcdserverpb::MemberPromoteRequest* request,
                                          etcdserverpb::MemberPromoteResponse* response) override;

  // etcd's view of a member.
  static etcdserverpb::Member ToEtcd(const command::Member& member);

 private:
  grpc::ServerUnaryReactor* Answer(grpc::CallbackServerContext* context,
                                   const grpc::Status& status);
  void FillHeader(etcdserverpb::ResponseHeader* header) const;
  // Proposes the change and finishes `reactor` with the member list after it.
  template <typename Response>
  void ProposeChange(grpc::ServerUnaryReactor* reactor, raft::ConfigChangeType type,
                     command::Member member, Response* response);

  node::Node* const node_;
  const MemberIdentity* const identity_;
};

}  // namespace cairn::server
