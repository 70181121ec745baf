#include "src/mvcc/kv_txn.h"

#include <string>

#include "src/base/check.h"
#include "src/mvcc/errors.h"
#include "src/mvcc/mvcc_format.h"

namespace cairn::mvcc::internal {
namespace {

using etcdserverpb::RequestOp;
using storage::Family;

// DeleteRange collects at most this many keys per iterator pass, so that deleting a huge
// range does not hold every key in memory before writing (prev_kv responses still do).
constexpr size_t kDeleteChunkKeys = 1024;

const auto& ChosenOps(const etcdserverpb::TxnRequest& req, bool succeeded) {
  return succeeded ? req.success() : req.failure();
}

}  // namespace

void CommandExecutor::AddEvent(mvccpb::Event::EventType type, mvccpb::KeyValue kv,
                               std::optional<mvccpb::KeyValue> prev, bool repeated_key) {
  if (events_ == nullptr) return;
  // etcd's watch reads an event's prev_kv at the event's revision - 1: the key as it was
  // before this command, also when the command changed it twice (put, then delete); and a
  // create event (a put with create_revision == mod_revision) never has one (IsCreateEvent).
  // For a key changed before, that is the prev_kv of the key's first event in this command:
  // the first change saw the key as it was before the command, and a first change that
  // created the key found it absent.
  if (repeated_key) {
    prev.reset();
    for (size_t i = command_events_begin_; i < events_->size(); ++i) {
      const mvccpb::Event& earlier = (*events_)[i];
      if (earlier.kv().key() != kv.key()) continue;
      if (earlier.has_prev_kv()) prev = earlier.prev_kv();
      break;
    }
  }
  const bool create = type == mvccpb::Event::PUT && kv.create_revision() == kv.mod_revision();
  mvccpb::Event& event = events_->emplace_back();
  event.set_type(type);
  *event.mutable_kv() = std::move(kv);
  if (prev && !create) *event.mutable_prev_kv() = std::move(*prev);
}

Status CommandExecutor::Put(const etcdserverpb::PutRequest& req, etcdserverpb::PutResponse* resp) {
  CAIRN_CHECK(batch_ != nullptr);
  std::string buffer;
  format::RecordView old;
  // etcd's applyPut looks the lease up before the key (a txn's puts were checked before
  // any op ran, in CheckPuts' order).
  if (leases_ != nullptr && !req.ignore_lease() && req.lease() != 0) {
    CAIRN_ASSIGN_OR_RETURN(bool lease_exists, leases_->Exists(batch_, req.lease()));
    if (!lease_exists) return ErrLeaseNotFound();
  }
  CAIRN_ASSIGN_OR_RETURN(bool found, GetLatest(view_, req.key(), &buffer, &old));
  if ((req.ignore_value() || req.ignore_lease()) && !found) return ErrKeyNotFound();

  const int64_t revision = begin_revision_ + 1;
  format::RecordView record;
  record.create_revision = found ? old.create_revision : revision;
  record.mod_revision = revision;
  record.version = found ? old.version + 1 : 1;
  record.lease = req.ignore_lease() ? old.lease : req.lease();
  record.value = req.ignore_value() ? old.value : std::string_view(req.value());

  std::optional<mvccpb::KeyValue> prev;
  if (found && (req.prev_kv() || events_ != nullptr)) FillKeyValue(req.key(), old, &prev.emplace());
  if (req.prev_kv() && found) *resp->mutable_prev_kv() = *prev;
  resp->mutable_header()->set_revision(revision);

  std::string latest;
  format::AppendLatestRecord(&latest, record);
  std::string history;
  format::AppendHistoryPut(&history, changes_, record);
  mvccpb::KeyValue kv;
  if (events_ != nullptr) FillKeyValue(req.key(), record, &kv);
  // Read back from latest_ (BatchView), so RocksDB need not index it until an iterator
  // reads kv_latest through the batch.
  CAIRN_CHECK(latest_ != nullptr);
  batch_->PutSeldomRead(Family::kKvLatest, req.key(), latest);
  latest_->Write(req.key(), &latest);
  const int64_t old_lease = found ? old.lease : 0;
  if (leases_ != nullptr && old_lease != record.lease) {
    if (old_lease != 0) leases_->Detach(batch_, old_lease, req.key());
    if (record.lease != 0) leases_->Attach(batch_, record.lease, req.key());
  }
  bool repeated_key = false;
  CAIRN_RETURN_IF_ERROR(WriteHistory(req.key(), revision, history, &repeated_key));
  if (events_ != nullptr) {
    AddEvent(mvccpb::Event::PUT, std::move(kv), std::move(prev), repeated_key);
  }
  ++changes_;
  if (!found) {
    ++key_delta_;
    if (key_count_changes_ != nullptr) key_count_changes_->push_back({req.key(), +1});
  }
  return Status::Ok();
}

Status CommandExecutor::WriteHistory(std::string_view user_key, int64_t revision,
                                     std::string_view value, bool* repeated_key) {
  const std::string key = format::HistoryKey(user_key, revision);
  // Most commands change one key: remember the first without a set node (a write's hot path).
  bool earlier_change = false;
  if (changes_ == 0) {
    first_history_key_.assign(user_key);
  } else {
    earlier_change = user_key == first_history_key_ || !history_written_.emplace(user_key).second;
  }
  *repeated_key = earlier_change;
  if (!earlier_change) {
    batch_->PutSeldomRead(Family::kKvHistory, key, value);
    return Status::Ok();
  }
  // etcd gives each change its own sub-revision and a watch replays all of them: keep the
  // earlier change(s) of this revision with the new one.
  std::string earlier;
  CAIRN_ASSIGN_OR_RETURN(bool found, batch_->Get(Family::kKvHistory, key, &earlier));
  CAIRN_CHECK(found);
  std::string compound;
  format::AppendHistoryCompound(&compound, earlier, value);
  batch_->Put(Family::kKvHistory, key, compound);
  return Status::Ok();
}

Status CommandExecutor::DeleteRange(const etcdserverpb::DeleteRangeRequest& req,
                                    etcdserverpb::DeleteRangeResponse* resp) {
  CAIRN_CHECK(batch_ != nullptr);
  const int64_t revision = begin_revision_ + 1;
  KeyRange range = KeyRange::From(req.key(), req.range_end());
  std::string start(req.key());
  int64_t deleted = 0;
  std::string tombstone;
  while (true) {
    // Collect a chunk first: an iterator must not live across writes to its batch.
    std::vector<mvccpb::KeyValue> chunk;
    range.key = start;
    CAIRN_RETURN_IF_ERROR(
        VisitLatest(view_, range, [&](std::string_view key, const format::RecordView& record) {
          FillKeyValue(key, record, &chunk.emplace_back());
          return chunk.size() < kDeleteChunkKeys;
        }));
    if (!chunk.empty()) start = chunk.back().key();
    for (mvccpb::KeyValue& kv : chunk) {
      tombstone.clear();
      format::AppendHistoryTombstone(&tombstone, changes_);
      CAIRN_CHECK(latest_ != nullptr);
      batch_->Delete(Family::kKvLatest, kv.key());
      latest_->Write(kv.key(), nullptr);
      if (leases_ != nullptr && kv.lease() != 0) leases_->Detach(batch_, kv.lease(), kv.key());
      bool repeated_key = false;
      CAIRN_RETURN_IF_ERROR(WriteHistory(kv.key(), revision, tombstone, &repeated_key));
      ++changes_;
      --key_delta_;
      if (key_count_changes_ != nullptr) key_count_changes_->push_back({kv.key(), -1});
      ++deleted;
      if (events_ != nullptr) {
        mvccpb::KeyValue deleted_kv;
        deleted_kv.set_key(kv.key());
        deleted_kv.set_mod_revision(revision);
        AddEvent(mvccpb::Event::DELETE, std::move(deleted_kv),
                 req.prev_kv() ? std::optional(kv) : std::optional(std::move(kv)), repeated_key);
      }
      if (req.prev_kv()) *resp->add_prev_kvs() = std::move(kv);
    }
    if (chunk.size() < kDeleteChunkKeys || range.kind == KeyRange::Kind::kSingle) break;
    // Deleted keys are gone from the batch view; continue after the last one.
    start.push_back('\0');
  }
  resp->set_deleted(deleted);
  // storeTxnWrite.DeleteRange: the new revision once this command changed anything.
  resp->mutable_header()->set_revision(changes_ > 0 ? revision : begin_revision_);
  return Status::Ok();
}

Status CommandExecutor::Range(const etcdserverpb::RangeRequest& req,
                              etcdserverpb::RangeResponse* resp) {
  int64_t read_revision = 0;
  CAIRN_RETURN_IF_ERROR(ExecuteRange(view_, req, ReadRevision(), compacted_, resp, &read_revision));
  if (read_revision < min_read_revision_) min_read_revision_ = read_revision;
  return Status::Ok();
}

Status CommandExecutor::ComputePath(const etcdserverpb::TxnRequest& req, std::vector<bool>* path) {
  bool succeeded = true;
  for (const auto& compare : req.compare()) {
    CAIRN_ASSIGN_OR_RETURN(bool holds, EvaluateCompare(view_, compare));
    if (!holds) {
      succeeded = false;
      break;
    }
  }
  path->push_back(succeeded);
  for (const auto& op : ChosenOps(req, succeeded)) {
    if (op.request_case() == RequestOp::kRequestTxn) {
      CAIRN_RETURN_IF_ERROR(ComputePath(op.request_txn(), path));
    }
  }
  return Status::Ok();
}

// etcd's checkRequestPut, op by op: ignore_value / ignore_lease need the key to exist
// before the txn, then the lease must exist.
Status CommandExecutor::CheckPuts(const etcdserverpb::TxnRequest& req,
                                  const std::vector<bool>& path, size_t* index) {
  CAIRN_CHECK(*index < path.size());
  bool succeeded = path[(*index)++];
  for (const auto& op : ChosenOps(req, succeeded)) {
    if (op.request_case() == RequestOp::kRequestTxn) {
      CAIRN_RETURN_IF_ERROR(CheckPuts(op.request_txn(), path, index));
      continue;
    }
    if (op.request_case() != RequestOp::kRequestPut) continue;
    const auto& put = op.request_put();
    if (put.ignore_value() || put.ignore_lease()) {
      std::string buffer;
      format::RecordView record;
      CAIRN_ASSIGN_OR_RETURN(bool found, GetLatest(view_, put.key(), &buffer, &record));
      if (!found) return ErrKeyNotFound();
    }
    if (leases_ != nullptr && put.lease() != 0) {
      CAIRN_ASSIGN_OR_RETURN(bool lease_exists, leases_->Exists(batch_, put.lease()));
      if (!lease_exists) return ErrLeaseNotFound();
    }
  }
  return Status::Ok();
}

// etcd's checkRange: against the revisions before the txn (0 is always fine; note that a
// negative revision below the compacted revision fails here, as in etcd).
Status CommandExecutor::CheckRanges(const etcdserverpb::TxnRequest& req,
                                    const std::vector<bool>& path, size_t* index) {
  CAIRN_CHECK(*index < path.size());
  bool succeeded = path[(*index)++];
  for (const auto& op : ChosenOps(req, succeeded)) {
    if (op.request_case() == RequestOp::kRequestTxn) {
      CAIRN_RETURN_IF_ERROR(CheckRanges(op.request_txn(), path, index));
      continue;
    }
    if (op.request_case() != RequestOp::kRequestRange) continue;
    int64_t revision = op.request_range().revision();
    if (revision == 0) continue;
    if (revision > begin_revision_) return ErrFutureRev();
    if (revision < compacted_) return ErrCompacted();
  }
  return Status::Ok();
}

Status CommandExecutor::ExecuteOps(const etcdserverpb::TxnRequest& req,
                                   const std::vector<bool>& path, size_t* index,
                                   etcdserverpb::TxnResponse* resp) {
  CAIRN_CHECK(*index < path.size());
  bool succeeded = path[(*index)++];
  resp->set_succeeded(succeeded);
  resp->mutable_header();  // etcd sends nested txn headers present but empty
  for (const auto& op : ChosenOps(req, succeeded)) {
    etcdserverpb::ResponseOp* response = resp->add_responses();
    switch (op.request_case()) {
      case RequestOp::kRequestRange:
        CAIRN_RETURN_IF_ERROR(Range(op.request_range(), response->mutable_response_range()));
        break;
      case RequestOp::kRequestPut:
        CAIRN_RETURN_IF_ERROR(Put(op.request_put(), response->mutable_response_put()));
        break;
      case RequestOp::kRequestDeleteRange:
        CAIRN_RETURN_IF_ERROR(
            DeleteRange(op.request_delete_range(), response->mutable_response_delete_range()));
        break;
      case RequestOp::kRequestTxn:
        CAIRN_RETURN_IF_ERROR(
            ExecuteOps(op.request_txn(), path, index, response->mutable_response_txn()));
        break;
      case RequestOp::REQUEST_NOT_SET:
        break;  // rejected by validation; etcd leaves the response op empty
    }
  }
  return Status::Ok();
}

Status CommandExecutor::Txn(const etcdserverpb::TxnRequest& req, bool write_txn,
                            etcdserverpb::TxnResponse* resp) {
  CAIRN_CHECK(changes_ == 0);
  std::vector<bool> path;
  CAIRN_RETURN_IF_ERROR(ComputePath(req, &path));
  size_t index = 0;
  if (write_txn) {
    CAIRN_RETURN_IF_ERROR(CheckPuts(req, path, &index));
    CAIRN_CHECK(index == path.size());
  }
  index = 0;
  CAIRN_RETURN_IF_ERROR(CheckRanges(req, path, &index));
  CAIRN_CHECK(index == path.size());
  index = 0;
  CAIRN_RETURN_IF_ERROR(ExecuteOps(req, path, &index, resp));
  CAIRN_CHECK(index == path.size());
  return Status::Ok();
}

}  // namespace cairn::mvcc::internal
