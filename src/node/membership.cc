#include "src/node/membership.h"

#include <cinttypes>
#include <cstdio>

namespace cairn::node {
namespace {

std::string HexId(uint64_t id) {
  char buffer[17];
  std::snprintf(buffer, sizeof(buffer), "%016" PRIx64, id);
  return buffer;
}

// [prefix, prefix with its last byte raised): every key starting with prefix.
std::string PrefixEnd(std::string_view prefix) {
  std::string end(prefix);
  end.back() = static_cast<char>(end.back() + 1);
  return end;
}

template <typename Fn>
Status ScanPrefix(storage::Engine* engine, std::string_view prefix, Fn fn) {
  const std::string upper = PrefixEnd(prefix);  // outlives the iterator, as bounds must
  storage::ReadOptions options;
  options.lower_bound = prefix;
  options.upper_bound = upper;
  auto it = engine->NewIterator(options, storage::Family::kMeta);
  for (it->Seek(prefix); it->Valid(); it->Next()) CAIRN_RETURN_IF_ERROR(fn(it->key(), it->value()));
  return it->status();
}

}  // namespace

std::string MemberKey(uint64_t id) { return std::string(kMemberKeyPrefix) + HexId(id); }

Result<std::unique_ptr<Membership>> Membership::Open(storage::Engine* engine) {
  std::unique_ptr<Membership> membership(new Membership(engine));
  CAIRN_RETURN_IF_ERROR(membership->Load());
  return membership;
}

Status Membership::Load() {
  std::map<uint64_t, command::Member> members;
  std::set<uint64_t> removed;
  CAIRN_RETURN_IF_ERROR(
      ScanPrefix(engine_, kMemberKeyPrefix, [&](std::string_view key, std::string_view value) {
        command::Member member;
        if (!member.ParseFromArray(value.data(), static_cast<int>(value.size())) ||
            member.id() == raft::kNoNode || key != MemberKey(member.id())) {
          return Status::Corruption("malformed member record " + std::string(key));
        }
        members.emplace(member.id(), std::move(member));
        return Status::Ok();
      }));
  CAIRN_RETURN_IF_ERROR(
      ScanPrefix(engine_, kRemovedMemberKeyPrefix, [&](std::string_view key, std::string_view) {
        std::string hex(key.substr(kRemovedMemberKeyPrefix.size()));
        removed.insert(std::strtoull(hex.c_str(), nullptr, 16));
        return Status::Ok();
      }));
  std::lock_guard lock(mutex_);
  members_ = std::move(members);
  removed_ = std::move(removed);
  generation_.fetch_add(1, std::memory_order_acq_rel);
  return Status::Ok();
}

void Membership::Write(storage::WriteBatch* batch, const command::Member& member) {
  batch->Put(storage::Family::kMeta, MemberKey(member.id()), member.SerializeAsString());
}

Status Membership::Bootstrap(const std::vector<command::Member>& members) {
  CAIRN_CHECK(Empty());
  auto batch = engine_->NewWriteBatch();
  for (const command::Member& member : members) Write(batch.get(), member);
  CAIRN_RETURN_IF_ERROR(engine_->Write(batch.get()));
  return Load();
}

Status Membership::ApplyConfigChange(storage::WriteBatch* batch, const raft::ConfigChange& change,
                                     const command::Member& described) {
  std::lock_guard lock(mutex_);
  auto existing = members_.find(change.node_id);
  switch (change.type) {
    case raft::ConfigChangeType::kAddVoter:
    case raft::ConfigChangeType::kAddLearner: {
      const bool learner = change.type == raft::ConfigChangeType::kAddLearner;
      if (removed_.contains(change.node_id)) {
        return Status::FailedPrecondition("etcdserver: ID removed");
      }
      command::Member member;
      if (existing != members_.end()) {
        // Only a learner's promotion changes an existing member (no demotion, as in etcd).
        if (learner || !existing->second.is_learner()) {
          return Status::FailedPrecondition("etcdserver: ID exists");
        }
        member = existing->second;  // keep name and URLs
      } else {
        member = described;
        member.set_id(change.node_id);
      }
      member.set_is_learner(learner);
      Write(batch, member);
      members_[change.node_id] = std::move(member);
      generation_.fetch_add(1, std::memory_order_acq_rel);
      return Status::Ok();
    }
    case raft::ConfigChangeType::kRemoveNode:
      if (existing == members_.end()) {
        return Status::FailedPrecondition("etcdserver: member not found");
      }
      if (!existing->second.is_learner() && VoterCountLocked() == 1) {
        return Status::FailedPrecondition("cairn: cannot remove the last voting member");
      }
      batch->Delete(storage::Family::kMeta, MemberKey(change.node_id));
      batch->Put(storage::Family::kMeta,
                 std::string(kRemovedMemberKeyPrefix) + HexId(change.node_id), "");
      members_.erase(existing);
      removed_.insert(change.node_id);
      generation_.fetch_add(1, std::memory_order_acq_rel);
      return Status::Ok();
  }
  return Status::InvalidArgument("unknown configuration change type");
}

Status Membership::ApplyAttributes(storage::WriteBatch* batch, const command::Member& attributes) {
  std::lock_guard lock(mutex_);
  auto existing = members_.find(attributes.id());
  if (existing == members_.end()) return Status::FailedPrecondition("etcdserver: member not found");
  command::Member& member = existing->second;
  member.set_name(attributes.name());
  member.mutable_client_urls()->CopyFrom(attributes.client_urls());
  Write(batch, member);
  generation_.fetch_add(1, std::memory_order_acq_rel);
  return Status::Ok();
}

size_t Membership::VoterCountLocked() const {
  size_t voters = 0;
  for (const auto& [id, member] : members_) voters += member.is_learner() ? 0 : 1;
  return voters;
}

Status Membership::ApplyPeerUrls(storage::WriteBatch* batch, const command::Member& update) {
  std::lock_guard lock(mutex_);
  auto existing = members_.find(update.id());
  if (existing == members_.end()) return Status::NotFound("etcdserver: member not found");
  existing->second.mutable_peer_urls()->CopyFrom(update.peer_urls());
  Write(batch, existing->second);
  generation_.fetch_add(1, std::memory_order_acq_rel);
  return Status::Ok();
}

bool Membership::Empty() const {
  std::lock_guard lock(mutex_);
  return members_.empty();
}

raft::ConfigState Membership::Config() const {
  std::lock_guard lock(mutex_);
  raft::ConfigState config;
  for (const auto& [id, member] : members_) {
    (member.is_learner() ? config.learners : config.voters).push_back(id);
  }
  return config;
}

std::vector<command::Member> Membership::List() const {
  std::lock_guard lock(mutex_);
  std::vector<command::Member> list;
  for (const auto& [id, member] : members_) list.push_back(member);
  return list;
}

bool Membership::Get(uint64_t id, command::Member* member) const {
  std::lock_guard lock(mutex_);
  auto it = members_.find(id);
  if (it == members_.end()) return false;
  *member = it->second;
  return true;
}

bool Membership::WasRemoved(uint64_t id) const {
  std::lock_guard lock(mutex_);
  return removed_.contains(id);
}

}  // namespace cairn::node
