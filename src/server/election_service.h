// ElectionService: etcd's Election gRPC service (/v3electionpb.Election/*) on gRPC's callback
// API, with the semantics of etcd's server-side clientv3/concurrency Election:
//
//   Campaign(name, lease, value) ─▶ Txn{if create_revision(name/<lease hex>) == 0: put value
//       with the lease, else get it and put the value} ─▶ PrefixWaiter: wait until no key
//       under name/ was created before ours ─▶ LeaderKey{name, key, rev, lease}.
//       A cancelled campaign resigns (deletes its key).
//   Proclaim(leader, value) ─▶ Txn{if create_revision(key) == rev: put value} or
//       "election: not leader".
//   Leader(name) ─▶ the key under name/ with the lowest create_revision, or
//       "election: no leader".
//   Observe(name) ─▶ server stream: the leader's kv each time the leader or its value changes
//       (checked on the PrefixWaiter after each applied batch; a change and its undo within
//       one batch are not seen).
//   Resign(leader) ─▶ Txn{if create_revision(key) == rev: delete key}.
//
// Differences from etcd: re-campaigning with an existing key always re-puts the value (etcd
// only when it differs); lease 0 uses key name/0 without a lease.
//
// Thread-safety: handlers run on gRPC's callback threads; waits on the PrefixWaiter's thread.
// The Node, the identity and the waiter must outlive the grpc::Server serving this service.
#pragma once

#include "src/node/node.h"
#include "src/server/member_identity.h"
#include "src/server/prefix_waiter.h"
#include "v3electionpb/v3election.grpc.pb.h"

namespace cairn::server {

class ElectionService final : public v3electionpb::Election::CallbackService {
 public:
  ElectionService(node::Node* node, const MemberIdentity* identity, PrefixWaiter* waiter)
      : node_(node), identity_(identity), waiter_(waiter) {}

  grpc::ServerUnaryReactor* Campaign(grpc::CallbackServerContext* context,
                                     const v3electionpb::CampaignRequest* request,
                                     v3electionpb::CampaignResponse* response) override;
  grpc::ServerUnaryReactor* Proclaim(grpc::CallbackServerContext* context,
                                     const v3electionpb::ProclaimRequest* request,
                                     v3electionpb::ProclaimResponse* response) override;
  grpc::ServerUnaryReactor* Leader(grpc::CallbackServerContext* context,
                                   const v3electionpb::LeaderRequest* request,
                                   v3electionpb::LeaderResponse* response) override;
  grpc::ServerWriteReactor<v3electionpb::LeaderResponse>* Observe(
      grpc::CallbackServerContext* context, const v3electionpb::LeaderRequest* request) override;
  grpc::ServerUnaryReactor* Resign(grpc::CallbackServerContext* context,
                                   const v3electionpb::ResignRequest* request,
                                   v3electionpb::ResignResponse* response) override;

 private:
  class ObserveReactor;

  node::Node* const node_;
  const MemberIdentity* const identity_;
  PrefixWaiter* const waiter_;
};

}  // namespace cairn::server
