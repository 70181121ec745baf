// Membership: the replicated member list — who votes, who learns, and each member's name and
// URLs — kept in the meta family as "cluster/member/<16 hex digits of the id>" → Member
// (proto/cairn/command.proto). It changes only by applying Raft configuration changes and
// member_attributes commands, in the same engine batch as the applied index, so every
// replica that applied index i holds the same list; the Raft core's membership on restart
// is Config() as of the persisted applied index.
//
// Removed members are remembered ("cluster/removed/<id>") so that a removed member cannot
// be added again under the same id (etcd's rule).
//
// Thread-safety: Apply* run on the apply thread; the readers may be called from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "cairn/command.pb.h"
#include "src/base/result.h"
#include "src/raft/types.h"
#include "src/storage/engine.h"

namespace cairn::node {

inline constexpr std::string_view kMemberKeyPrefix = "cluster/member/";
inline constexpr std::string_view kRemovedMemberKeyPrefix = "cluster/removed/";

class Membership {
 public:
  static Result<std::unique_ptr<Membership>> Open(storage::Engine* engine);
  Membership(const Membership&) = delete;
  Membership& operator=(const Membership&) = delete;

  // Writes the members of a new cluster (before anything is applied). REQUIRES: Empty().
  Status Bootstrap(const std::vector<command::Member>& members);

  // Applies a committed configuration change whose context describes the member
  // (ConfigChangeContext). Changes that do not fit the list (adding an existing voter,
  // removing a non-member) change nothing and return FailedPrecondition; Raft ignores them
  // the same way on every replica.
  Status ApplyConfigChange(storage::WriteBatch* batch, const raft::ConfigChange& change,
                           const command::Member& member);
  // Updates a current member's name and client URLs.
  Status ApplyAttributes(storage::WriteBatch* batch, const command::Member& attributes);
  // Updates a current member's peer URLs (MemberUpdate).
  Status ApplyPeerUrls(storage::WriteBatch* batch, const command::Member& update);

  // Bumped by every change; readers compare it to notice one.
  uint64_t generation() const { return generation_.load(std::memory_order_acquire); }

  bool Empty() const;
  raft::ConfigState Config() const;
  std::vector<command::Member> List() const;  // ordered by id
  bool Get(uint64_t id, command::Member* member) const;
  bool WasRemoved(uint64_t id) const;
  // Re-reads the list after the engine's contents were replaced (a Raft snapshot install);
  // bumps generation(). Apply thread only (or with the apply thread idle).
  Status Reload() { return Load(); }

 private:
  explicit Membership(storage::Engine* engine) : engine_(engine) {}
  Status Load();
  void Write(storage::WriteBatch* batch, const command::Member& member);
  size_t VoterCountLocked() const;  // REQUIRES: mutex_ held

  storage::Engine* const engine_;
  mutable std::mutex mutex_;
  std::map<uint64_t, command::Member> members_;  // GUARDED_BY(mutex_)
  std::set<uint64_t> removed_;                   // GUARDED_BY(mutex_)
  std::atomic<uint64_t> generation_{0};
};

std::string MemberKey(uint64_t id);

}  // namespace cairn::node
