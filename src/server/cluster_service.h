// ClusterService: etcd's Cluster gRPC service for a single-member cluster.
//   MemberList     the member: id, name, advertised peer and client URLs.
//   MemberAdd      a voter: etcd's own answer for a one-member cluster under its default
//                  strict reconfiguration check ("re-configuration failed due to not enough
//                  started members": the new member would be needed for quorum before it
//                  started). A learner: refused until Raft replication exists (issue 4).
//   MemberRemove   the member itself: the same etcd error (no quorum would remain);
//                  unknown ids: "member not found".
//   MemberUpdate   the member itself with its current peer URLs succeeds; other peer URLs are
//                  refused until Raft replication stores membership in the log.
//   MemberPromote  the member is a voter: "can only promote a learner member".
// Headers carry cluster id, member id and raft term but no revision, as etcd's.
//
// Thread-safety: stateless after construction; handlers run concurrently.
#pragma once

#include <string>
#include <vector>

#include "etcdserverpb/rpc.grpc.pb.h"
#include "src/server/member_identity.h"

namespace cairn::server {

class ClusterService final : public etcdserverpb::Cluster::CallbackService {
 public:
  ClusterService(const MemberIdentity* identity, std::string name,
                 std::vector<std::string> peer_urls, std::vector<std::string> client_urls);

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

 private:
  grpc::ServerUnaryReactor* Answer(grpc::CallbackServerContext* context,
                                   const grpc::Status& status);
  void FillHeader(etcdserverpb::ResponseHeader* header) const;

  const MemberIdentity* const identity_;
  etcdserverpb::Member self_;
};

}  // namespace cairn::server
