// MemberIdentity: the cluster and member ids every etcd response header carries.
//
// A single-node cairnd computes them deterministically from --name and
// --initial-cluster-token (a 64-bit FNV-1a hash of each), so they are stable across
// restarts without extra state, and two differently named members differ. The Raft issue
// replaces this with ids recorded in the membership state.
//
// Thread-safety: immutable after construction.
#pragma once

#include <cstdint>
#include <string_view>

#include "etcdserverpb/rpc.pb.h"

namespace cairn::server {

class MemberIdentity {
 public:
  MemberIdentity(std::string_view name, std::string_view cluster_token);

  uint64_t cluster_id() const { return cluster_id_; }
  uint64_t member_id() const { return member_id_; }

  // Sets cluster_id, member_id and raft_term (1: a single voter that never held an election),
  // keeping the revision the state machine set.
  void FillHeader(etcdserverpb::ResponseHeader* header) const;

  static constexpr uint64_t kRaftTerm = 1;

 private:
  uint64_t cluster_id_;
  uint64_t member_id_;
};

}  // namespace cairn::server
