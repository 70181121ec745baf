// MemberIdentity: the cluster and member ids every etcd response header carries.
//
// Ids are computed deterministically from --name and --initial-cluster-token (a 64-bit
// FNV-1a hash of each), so they are stable across restarts without extra state, two
// differently named members differ, and the members of --initial-cluster agree on each
// other's ids. Members added later (MemberAdd) get the id the adding member chose, recorded
// in the replicated membership.
//
// Thread-safety: immutable after construction except the Raft term, which is atomic.
#pragma once

#include <atomic>
#include <cstdint>
#include <string_view>

#include "etcdserverpb/rpc.pb.h"

namespace cairn::server {

class MemberIdentity {
 public:
  MemberIdentity(std::string_view name, std::string_view cluster_token);
  // With the member id the data directory was created with (node::StoredMemberId).
  MemberIdentity(std::string_view name, std::string_view cluster_token, uint64_t member_id)
      : MemberIdentity(name, cluster_token) {
    member_id_ = member_id;
  }

  uint64_t cluster_id() const { return cluster_id_; }
  uint64_t member_id() const { return member_id_; }

  // Sets cluster_id, member_id and raft_term, keeping the revision the state machine set.
  void FillHeader(etcdserverpb::ResponseHeader* header) const;

  // The id a member named `name` gets in a cluster made with `cluster_token` (the members
  // of --initial-cluster all compute each other's ids this way).
  static uint64_t MemberIdFor(std::string_view name, std::string_view cluster_token);

  // The Raft term the headers carry; the node reports changes.
  void set_raft_term(uint64_t term) const { raft_term_.store(term, std::memory_order_relaxed); }
  uint64_t raft_term() const { return raft_term_.load(std::memory_order_relaxed); }

 private:
  uint64_t cluster_id_;
  uint64_t member_id_;
  mutable std::atomic<uint64_t> raft_term_{1};
};

}  // namespace cairn::server
