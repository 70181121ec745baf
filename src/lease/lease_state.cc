#include "src/lease/lease_state.h"

#include <algorithm>
#include <string>

#include "src/base/check.h"
#include "src/lease/errors.h"

namespace cairn::lease {
namespace {

using storage::Family;

Status CorruptRecord(int64_t id) {
  return Status::Corruption("lease: undecodable record of lease " + std::to_string(id));
}

// The upper bound of a prefix scan: the prefix with its last byte incremented (lease
// prefixes end in a big-endian id, so some byte below 0xff exists unless the id is all ones).
std::string PrefixEnd(std::string prefix) {
  while (!prefix.empty() && static_cast<uint8_t>(prefix.back()) == 0xff) prefix.pop_back();
  if (!prefix.empty()) prefix.back() = static_cast<char>(static_cast<uint8_t>(prefix.back()) + 1);
  return prefix;
}

}  // namespace

Status LeaseState::ApplyGrant(storage::WriteBatch* batch,
                              const etcdserverpb::LeaseGrantRequest& req,
                              etcdserverpb::LeaseGrantResponse* resp) {
  resp->Clear();
  if (req.id() == 0) return ErrLeaseNotFound();  // etcd's lessor.Grant on NoLease
  if (req.ttl() > kTtlSecondsMax) return ErrLeaseTtlTooLarge();
  CAIRN_ASSIGN_OR_RETURN(bool exists, Exists(batch, req.id()));
  if (exists) return ErrLeaseExists();
  format::LeaseRecord record;
  record.ttl_seconds = req.ttl();
  batch->Put(Family::kLease, format::LeaseKey(req.id()), format::EncodeRecord(record));
  resp->set_id(req.id());
  resp->set_ttl(req.ttl());
  resp->mutable_header()->set_revision(kv_->PendingRevision());
  return Status::Ok();
}

Status LeaseState::ApplyRevoke(storage::WriteBatch* batch,
                               const etcdserverpb::LeaseRevokeRequest& req,
                               etcdserverpb::LeaseRevokeResponse* resp,
                               std::vector<mvccpb::Event>* events) {
  resp->Clear();
  CAIRN_ASSIGN_OR_RETURN(bool exists, Exists(batch, req.id()));
  if (!exists) return ErrLeaseNotFound();
  // Every attached key is read before any is deleted: an iterator must not live across
  // writes to its batch. etcd holds them all in memory too (lease.Keys()).
  std::vector<std::string> attachment_keys;
  std::vector<std::string> keys;
  {
    const std::string prefix = format::AttachmentPrefix(req.id());
    const std::string end = PrefixEnd(prefix);
    storage::ReadOptions options;
    options.lower_bound = prefix;
    options.upper_bound = end;
    std::unique_ptr<storage::Iterator> it = batch->NewIterator(Family::kLease, options);
    for (it->Seek(prefix); it->Valid(); it->Next()) {
      attachment_keys.emplace_back(it->key());
      keys.emplace_back(it->key().substr(prefix.size()));
    }
    CAIRN_RETURN_IF_ERROR(it->status());
  }
  batch->SetSavePoint();
  etcdserverpb::DeleteRangeResponse deleted;
  Status status = kv_->ApplyDeleteKeys(batch, keys, &deleted, events);
  if (!status.ok()) {
    CAIRN_CHECK_OK(batch->RollbackToSavePoint());
    return status;
  }
  batch->PopSavePoint();
  // Deletes detached the keys already; these also drop entries of keys that vanished some
  // other way (none should), so a revoked lease leaves nothing behind.
  for (const std::string& key : attachment_keys) batch->Delete(Family::kLease, key);
  batch->Delete(Family::kLease, format::LeaseKey(req.id()));
  resp->mutable_header()->set_revision(kv_->PendingRevision());
  return Status::Ok();
}

Status LeaseState::ApplyCheckpoint(storage::WriteBatch* batch,
                                   const etcdserverpb::LeaseCheckpointRequest& req,
                                   etcdserverpb::LeaseCheckpointResponse* resp) {
  resp->Clear();
  for (const auto& checkpoint : req.checkpoints()) {
    const std::string key = format::LeaseKey(checkpoint.id());
    std::string value;
    CAIRN_ASSIGN_OR_RETURN(bool found, batch->Get(Family::kLease, key, &value));
    if (!found) continue;
    format::LeaseRecord record;
    if (!format::DecodeRecord(value, &record)) return CorruptRecord(checkpoint.id());
    record.remaining_ttl_seconds =
        std::clamp<int64_t>(checkpoint.remaining_ttl(), 0, record.ttl_seconds);
    batch->Put(Family::kLease, key, format::EncodeRecord(record));
  }
  resp->mutable_header()->set_revision(kv_->PendingRevision());
  return Status::Ok();
}

Result<bool> LeaseState::Exists(storage::WriteBatch* batch, int64_t lease) {
  std::string value;
  return batch->Get(Family::kLease, format::LeaseKey(lease), &value);
}

void LeaseState::Attach(storage::WriteBatch* batch, int64_t lease, std::string_view key) {
  batch->Put(Family::kLease, format::AttachmentKey(lease, key), "");
}

void LeaseState::Detach(storage::WriteBatch* batch, int64_t lease, std::string_view key) {
  batch->Delete(Family::kLease, format::AttachmentKey(lease, key));
}

Result<std::optional<LeaseInfo>> LeaseState::Get(int64_t id) const {
  std::string value;
  CAIRN_ASSIGN_OR_RETURN(bool found, engine_->Get(storage::ReadOptions{}, Family::kLease,
                                                  format::LeaseKey(id), &value));
  if (!found) return std::optional<LeaseInfo>();
  format::LeaseRecord record;
  if (!format::DecodeRecord(value, &record)) return CorruptRecord(id);
  return std::optional<LeaseInfo>(LeaseInfo{id, record.ttl_seconds, record.remaining_ttl_seconds});
}

Result<std::vector<LeaseInfo>> LeaseState::List() const {
  const std::string prefix(1, format::kLeasePrefix);
  const std::string end = PrefixEnd(prefix);
  storage::ReadOptions options;
  options.lower_bound = prefix;
  options.upper_bound = end;
  std::unique_ptr<storage::Iterator> it = engine_->NewIterator(options, Family::kLease);
  std::vector<LeaseInfo> leases;
  for (it->Seek(prefix); it->Valid(); it->Next()) {
    int64_t id = 0;
    format::LeaseRecord record;
    if (!format::DecodeLeaseKey(it->key(), &id)) {
      return Status::Corruption("lease: undecodable lease key");
    }
    if (!format::DecodeRecord(it->value(), &record)) return CorruptRecord(id);
    leases.push_back({id, record.ttl_seconds, record.remaining_ttl_seconds});
  }
  CAIRN_RETURN_IF_ERROR(it->status());
  std::sort(leases.begin(), leases.end(),
            [](const LeaseInfo& a, const LeaseInfo& b) { return a.id < b.id; });
  return leases;
}

Result<std::vector<std::string>> LeaseState::Keys(int64_t id) const {
  const std::string prefix = format::AttachmentPrefix(id);
  const std::string end = PrefixEnd(prefix);
  storage::ReadOptions options;
  options.lower_bound = prefix;
  options.upper_bound = end;
  std::unique_ptr<storage::Iterator> it = engine_->NewIterator(options, Family::kLease);
  std::vector<std::string> keys;
  for (it->Seek(prefix); it->Valid(); it->Next())
    keys.emplace_back(it->key().substr(prefix.size()));
  CAIRN_RETURN_IF_ERROR(it->status());
  return keys;
}

}  // namespace cairn::lease
