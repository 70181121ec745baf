#include "src/mvcc/kv_state.h"

#include <algorithm>
#include <string>
#include <utility>

#include "src/base/check.h"
#include "src/base/coding.h"
#include "src/base/crc32c.h"
#include "src/mvcc/errors.h"
#include "src/mvcc/kv_read.h"
#include "src/mvcc/kv_txn.h"
#include "src/mvcc/mvcc_format.h"

namespace cairn::mvcc {
namespace {

using storage::Family;

// HashKV retries when a compaction newer than its snapshot raced with it.
constexpr int kHashAttemptsMax = 8;

Status ReadMetaRevision(internal::View* view, std::string_view key, int64_t default_value,
                        int64_t* revision) {
  std::string value;
  CAIRN_ASSIGN_OR_RETURN(bool found, view->Get(Family::kMeta, key, &value));
  if (!found) {
    *revision = default_value;
    return Status::Ok();
  }
  if (!format::DecodeMetaRevision(value, revision)) {
    return Status::Corruption("mvcc: undecodable meta value of " + std::string(key));
  }
  return Status::Ok();
}

// Appends one logical history entry to the hash in a canonical form (independent of the
// record encoding, so a format change does not change hashes).
void HashEntry(std::string_view escaped_key, int64_t main, const format::HistoryRecordView& record,
               std::string* scratch, uint32_t* crc) {
  scratch->clear();
  scratch->append(escaped_key);
  coding::PutFixed64(scratch, static_cast<uint64_t>(main));
  coding::PutFixed64(scratch, static_cast<uint64_t>(record.sub_revision));
  scratch->push_back(static_cast<char>(record.kind));
  if (record.kind == format::HistoryKind::kPut) {
    coding::PutFixed64(scratch, static_cast<uint64_t>(record.create_revision));
    coding::PutFixed64(scratch, static_cast<uint64_t>(record.version));
    coding::PutFixed64(scratch, static_cast<uint64_t>(record.lease));
    coding::PutFixed64(scratch, record.value.size());
  }
  *crc = crc32c::Extend(*crc, scratch->data(), scratch->size());
  if (record.kind == format::HistoryKind::kPut) {
    *crc = crc32c::Extend(*crc, record.value.data(), record.value.size());
  }
}

// The logical history at `revision` given compacted revision `compacted`: per user key, the
// entries in (compacted, revision], plus the newest entry <= compacted when it is a put.
Result<uint32_t> HashHistory(internal::View* view, int64_t compacted, int64_t revision) {
  storage::ReadOptions options;
  options.fill_cache = false;
  std::unique_ptr<storage::Iterator> it = view->NewIterator(Family::kKvHistory, options);
  uint32_t crc = 0;
  std::string previous_key;
  bool key_done = false;
  std::string scratch;
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    std::string_view escaped_key;
    int64_t main = 0;
    if (!format::SplitHistoryKey(it->key(), &escaped_key, &main)) {
      return Status::Corruption("mvcc: undecodable kv_history key");
    }
    if (escaped_key != previous_key) {
      previous_key.assign(escaped_key);
      key_done = false;
    }
    if (key_done || main > revision) continue;
    format::HistoryRecordView record;
    if (!format::DecodeHistoryRecord(it->value(), &record)) {
      return Status::Corruption("mvcc: undecodable kv_history entry");
    }
    if (main <= compacted) {
      key_done = true;  // the newest entry <= compacted; older ones are not logical history
      if (record.kind == format::HistoryKind::kTombstone) continue;
    }
    HashEntry(escaped_key, main, record, &scratch, &crc);
  }
  CAIRN_RETURN_IF_ERROR(it->status());
  return crc;
}

}  // namespace

KvState::KvState(storage::Engine* engine, std::shared_ptr<HistoryCompactionFilterFactory> filter,
                 const Revisions& revisions, const KvStateOptions& options)
    : engine_(engine),
      filter_(std::move(filter)),
      pending_(revisions),
      written_(revisions),
      key_count_blocks_(options.key_count_block_keys),
      cache_(options.latest_cache_bytes),
      published_current_(revisions.current),
      published_compacted_(revisions.compacted),
      published_key_count_(revisions.key_count) {}

Result<KvState::Revisions> KvState::LoadRevisions(storage::Engine* engine) {
  std::shared_ptr<const storage::Snapshot> snapshot = engine->GetSnapshot();
  internal::SnapshotView view(engine, snapshot.get());
  std::string version;
  CAIRN_ASSIGN_OR_RETURN(bool has_version,
                         view.Get(Family::kMeta, format::kMetaFormatVersionKey, &version));
  if (has_version &&
      (version.size() != 1 || static_cast<uint8_t>(version[0]) != format::kFormatVersion)) {
    return Status::FailedPrecondition("mvcc: unsupported kv format version (this binary reads " +
                                      std::to_string(format::kFormatVersion) + ")");
  }
  Revisions revisions;
  CAIRN_RETURN_IF_ERROR(ReadMetaRevision(&view, format::kMetaCurrentRevisionKey,
                                         format::kInitialRevision, &revisions.current));
  CAIRN_RETURN_IF_ERROR(ReadMetaRevision(&view, format::kMetaCompactedRevisionKey,
                                         format::kNeverCompacted, &revisions.compacted));
  revisions.format_version_written = has_version;
  std::string key_count;
  CAIRN_ASSIGN_OR_RETURN(bool has_key_count,
                         view.Get(Family::kMeta, format::kMetaKeyCountKey, &key_count));
  if (has_key_count) {
    if (!format::DecodeMetaRevision(key_count, &revisions.key_count) || revisions.key_count < 0) {
      return Status::Corruption("mvcc: bad meta key count");
    }
  } else {
    // Written before the count was kept: count the live keys once.
    storage::ReadOptions options;
    options.snapshot = snapshot.get();
    options.fill_cache = false;
    auto it = engine->NewIterator(options, Family::kKvLatest);
    for (it->SeekToFirst(); it->Valid(); it->Next()) ++revisions.key_count;
    CAIRN_RETURN_IF_ERROR(it->status());
  }
  if (revisions.current < format::kInitialRevision ||
      revisions.compacted < format::kNeverCompacted || revisions.compacted > revisions.current) {
    return Status::Corruption("mvcc: inconsistent meta revisions: current " +
                              std::to_string(revisions.current) + ", compacted " +
                              std::to_string(revisions.compacted));
  }
  return revisions;
}

Result<std::unique_ptr<KvState>> KvState::Open(
    storage::Engine* engine, std::shared_ptr<HistoryCompactionFilterFactory> filter,
    const KvStateOptions& options) {
  CAIRN_CHECK(engine != nullptr && filter != nullptr);
  CAIRN_ASSIGN_OR_RETURN(Revisions revisions, LoadRevisions(engine));
  filter->SetCompactedRevision(revisions.compacted);
  std::unique_ptr<KvState> kv(new KvState(engine, std::move(filter), revisions, options));
  CAIRN_RETURN_IF_ERROR(kv->key_count_blocks_.Load(engine, revisions.key_count));
  return kv;
}

Status KvState::Reload() {
  CAIRN_CHECK(!batch_latest_.HasWrites());
  CAIRN_ASSIGN_OR_RETURN(Revisions revisions, LoadRevisions(engine_));
  CAIRN_RETURN_IF_ERROR(key_count_blocks_.Load(engine_, revisions.key_count));
  filter_->SetCompactedRevision(revisions.compacted);
  batch_latest_.Clear();
  cache_.BeginPublish();
  cache_.Clear(revisions.current);
  pending_ = revisions;
  written_ = revisions;
  published_current_.store(revisions.current, std::memory_order_release);
  published_compacted_.store(revisions.compacted, std::memory_order_release);
  published_key_count_.store(revisions.key_count, std::memory_order_release);
  cache_.EndPublish();
  return Status::Ok();
}

Status KvState::ReadRevisions(const storage::Snapshot* snapshot, Revisions* revisions) const {
  internal::SnapshotView view(engine_, snapshot);
  CAIRN_RETURN_IF_ERROR(ReadMetaRevision(&view, format::kMetaCurrentRevisionKey,
                                         format::kInitialRevision, &revisions->current));
  return ReadMetaRevision(&view, format::kMetaCompactedRevisionKey, format::kNeverCompacted,
                          &revisions->compacted);
}

bool KvState::CachedPointRange(const etcdserverpb::RangeRequest& req,
                               etcdserverpb::RangeResponse* resp, Status* status) const {
  if (!cache_.enabled() || !req.range_end().empty() || req.revision() > 0 ||
      req.min_mod_revision() != 0 || req.max_mod_revision() != 0 ||
      req.min_create_revision() != 0 || req.max_create_revision() != 0 || req.key().empty() ||
      !etcdserverpb::RangeRequest::SortOrder_IsValid(req.sort_order()) ||
      !etcdserverpb::RangeRequest::SortTarget_IsValid(req.sort_target())) {
    return false;  // the general path owns every other case, and its errors
  }
  std::string record;
  LatestCache::Lookup lookup = LatestCache::Lookup::kMiss;
  int64_t revision = 0;
  constexpr int kAttemptsMax = 3;
  for (int attempt = 0; attempt < kAttemptsMax; ++attempt) {
    const uint64_t sequence = cache_.ReadBegin();
    revision = published_current_.load(std::memory_order_acquire);
    lookup = cache_.Get(req.key(), &record);
    if (lookup == LatestCache::Lookup::kMiss) break;
    if (cache_.ReadValidate(sequence)) break;
    lookup = LatestCache::Lookup::kMiss;  // a publish overlapped: the pair may be torn
  }
  format::RecordView decoded;
  bool decodes = false;
  if (lookup == LatestCache::Lookup::kPresent) {
    decodes = format::DecodeLatestRecord(record, &decoded);
    if (decodes && decoded.mod_revision > revision) {
      lookup = LatestCache::Lookup::kMiss;  // warmed from a batch not published yet (WarmLatest)
    }
  }
  if (lookup == LatestCache::Lookup::kMiss) {
    // One snapshot gives the record and the revision it belongs to; remember it.
    std::shared_ptr<const storage::Snapshot> snapshot = engine_->GetSnapshot();
    Revisions revisions;
    *status = ReadRevisions(snapshot.get(), &revisions);
    if (!status->ok()) return true;
    internal::SnapshotView view(engine_, snapshot.get(), /*key_count_blocks=*/true);
    Result<bool> found = view.Get(Family::kKvLatest, req.key(), &record);
    if (!found.ok()) {
      *status = found.status();
      return true;
    }
    // A snapshot may hold a batch written but not yet published: its records name their
    // revision (checked above), an absence does not, and must not be served with the
    // published revision.
    if (*found || revisions.current <= published_current_.load(std::memory_order_acquire)) {
      cache_.Fill(req.key(), *found ? &record : nullptr, revisions.current);
    }
    lookup = *found ? LatestCache::Lookup::kPresent : LatestCache::Lookup::kAbsent;
    revision = revisions.current;
    if (*found) decodes = format::DecodeLatestRecord(record, &decoded);
  }
  resp->mutable_header()->set_revision(revision);
  if (lookup == LatestCache::Lookup::kAbsent) {
    *status = Status::Ok();
    return true;
  }
  if (!decodes) {
    resp->Clear();
    *status = Status::Corruption("mvcc: undecodable kv_latest record");
    return true;
  }
  resp->set_count(1);
  if (!req.count_only()) {
    mvccpb::KeyValue* kv = resp->add_kvs();
    internal::FillKeyValue(req.key(), decoded, kv);
    if (req.keys_only()) kv->clear_value();
  }
  *status = Status::Ok();
  return true;
}

Status KvState::Range(const etcdserverpb::RangeRequest& req,
                      etcdserverpb::RangeResponse* resp) const {
  resp->Clear();
  Status cached;
  if (CachedPointRange(req, resp, &cached)) return cached;
  std::shared_ptr<const storage::Snapshot> snapshot = engine_->GetSnapshot();
  Revisions revisions;
  CAIRN_RETURN_IF_ERROR(ReadRevisions(snapshot.get(), &revisions));
  internal::SnapshotView view(engine_, snapshot.get(), /*key_count_blocks=*/true);
  int64_t read_revision = 0;
  CAIRN_RETURN_IF_ERROR(internal::ExecuteRange(&view, req, revisions.current, revisions.compacted,
                                               resp, &read_revision));
  // A compaction written after the snapshot may have dropped history entries this read used.
  // A read at the snapshot's current revision used kv_latest, which compaction never touches
  // (regression: such reads failed as "compacted" when a reader's snapshot fell behind).
  if (read_revision < revisions.current && read_revision < filter_->CompactedRevision()) {
    resp->Clear();
    return ErrCompacted();
  }
  return Status::Ok();
}

Status KvState::ReadOnlyTxn(const etcdserverpb::TxnRequest& req,
                            etcdserverpb::TxnResponse* resp) const {
  resp->Clear();
  if (!IsTxnReadOnly(req)) {
    return Status::InvalidArgument("cairn: ReadOnlyTxn needs a txn whose ops are all ranges");
  }
  CAIRN_RETURN_IF_ERROR(ValidateTxnStructure(req));
  std::shared_ptr<const storage::Snapshot> snapshot = engine_->GetSnapshot();
  Revisions revisions;
  CAIRN_RETURN_IF_ERROR(ReadRevisions(snapshot.get(), &revisions));
  internal::SnapshotView view(engine_, snapshot.get(), /*key_count_blocks=*/true);
  internal::CommandExecutor executor(&view, nullptr, revisions.current, revisions.compacted,
                                     nullptr);
  Status status = executor.Txn(req, /*write_txn=*/false, resp);
  if (status.ok() && executor.min_read_revision() < revisions.current &&
      executor.min_read_revision() < filter_->CompactedRevision()) {
    status = ErrCompacted();
  }
  if (!status.ok()) {
    resp->Clear();
    return status;
  }
  resp->mutable_header()->set_revision(revisions.current);
  return Status::Ok();
}

Status KvState::HashKV(int64_t revision, etcdserverpb::HashKVResponse* resp) const {
  resp->Clear();
  for (int attempt = 0; attempt < kHashAttemptsMax; ++attempt) {
    std::shared_ptr<const storage::Snapshot> snapshot = engine_->GetSnapshot();
    Revisions revisions;
    CAIRN_RETURN_IF_ERROR(ReadRevisions(snapshot.get(), &revisions));
    // etcd's hashByRev, in its order.
    if (revision > 0 && revision < revisions.compacted) return ErrCompacted();
    if (revision > 0 && revision > revisions.current) return ErrFutureRev();
    int64_t hash_revision = revision == 0 ? revisions.current : revision;
    internal::SnapshotView view(engine_, snapshot.get(), /*key_count_blocks=*/true);
    CAIRN_ASSIGN_OR_RETURN(uint32_t hash, HashHistory(&view, revisions.compacted, hash_revision));
    // Entries the filter dropped under a compaction newer than the snapshot would change the
    // hash: take a newer snapshot.
    if (filter_->CompactedRevision() > revisions.compacted) continue;
    resp->mutable_header()->set_revision(revisions.current);
    resp->set_hash(hash);
    resp->set_compact_revision(revisions.compacted);
    resp->set_hash_revision(hash_revision);
    return Status::Ok();
  }
  return Status::Aborted("mvcc: HashKV kept racing with compactions; retry");
}

void KvState::FinishBatch(storage::WriteBatch* batch) {
  if (!batch_needs_meta_) return;
  batch_needs_meta_ = false;
  if (pending_.key_count != written_.key_count) {
    batch->Put(Family::kMeta, format::kMetaKeyCountKey,
               format::EncodeMetaRevision(pending_.key_count));
  }
  if (pending_.current != written_.current) {
    batch->Put(Family::kMeta, format::kMetaCurrentRevisionKey,
               format::EncodeMetaRevision(pending_.current));
  }
  if (pending_.compacted != written_.compacted) {
    batch->Put(Family::kMeta, format::kMetaCompactedRevisionKey,
               format::EncodeMetaRevision(pending_.compacted));
  }
  if (!written_.format_version_written) {
    batch->Put(Family::kMeta, format::kMetaFormatVersionKey,
               std::string(1, static_cast<char>(format::kFormatVersion)));
    pending_.format_version_written = true;
  }
  key_count_blocks_.FinishBatch(batch);
}

// The common frame of every write command: run it through an executor on the batch under a
// save point; on error roll the batch back and leave no trace; on success advance the
// pending revision (when something changed) and keep its cache changes and events.
template <typename Response, typename Execute>
Status KvState::ApplyWrite(storage::WriteBatch* batch, Response* resp,
                           std::vector<mvccpb::Event>* events, Execute execute,
                           bool always_new_revision) {
  std::vector<mvccpb::Event> command_events;
  internal::BatchView view(batch, engine_, &batch_latest_, &cache_);
  internal::CommandExecutor executor(&view, batch, pending_.current, pending_.compacted,
                                     events != nullptr ? &command_events : nullptr);
  executor.set_batch_latest(&batch_latest_);
  std::vector<internal::KeyCountChange> key_count_changes;
  executor.set_key_count_changes(&key_count_changes);
  executor.set_lease_index(leases_);
  batch->SetSavePoint();
  Status status = execute(executor);
  if (status.ok()) status = key_count_blocks_.Apply(&view, key_count_changes);
  if (!status.ok()) {
    CAIRN_CHECK_OK(batch->RollbackToSavePoint());
    batch_latest_.RollbackCommand();
    resp->Clear();
    return status;
  }
  Revisions next = pending_;
  if (executor.changes() > 0 || always_new_revision) {
    next.current = pending_.current + 1;
    next.key_count = pending_.key_count + executor.key_delta();
    CAIRN_CHECK(next.key_count >= 0);
    batch_needs_meta_ = true;
  }
  batch->PopSavePoint();
  batch_latest_.CommitCommand();
  pending_ = next;
  if (events != nullptr) {
    for (auto& event : command_events) events->push_back(std::move(event));
  }
  return Status::Ok();
}

Status KvState::ApplyPut(storage::WriteBatch* batch, const etcdserverpb::PutRequest& req,
                         etcdserverpb::PutResponse* resp, std::vector<mvccpb::Event>* events) {
  resp->Clear();
  // The option-independent checks again: a command must not corrupt state however it got here.
  if (req.key().empty()) return ErrEmptyKey();
  if (req.ignore_value() && !req.value().empty()) return ErrValueProvided();
  if (req.ignore_lease() && req.lease() != 0) return ErrLeaseProvided();
  return ApplyWrite(batch, resp, events,
                    [&](internal::CommandExecutor& executor) { return executor.Put(req, resp); });
}

Status KvState::ApplyDeleteRange(storage::WriteBatch* batch,
                                 const etcdserverpb::DeleteRangeRequest& req,
                                 etcdserverpb::DeleteRangeResponse* resp,
                                 std::vector<mvccpb::Event>* events) {
  resp->Clear();
  if (req.key().empty()) return ErrEmptyKey();
  return ApplyWrite(batch, resp, events, [&](internal::CommandExecutor& executor) {
    return executor.DeleteRange(req, resp);
  });
}

Status KvState::ApplyDeleteKeys(storage::WriteBatch* batch, const std::vector<std::string>& keys,
                                etcdserverpb::DeleteRangeResponse* resp,
                                std::vector<mvccpb::Event>* events) {
  resp->Clear();
  CAIRN_RETURN_IF_ERROR(ApplyWrite(batch, resp, events, [&](internal::CommandExecutor& executor) {
    int64_t deleted = 0;
    for (const std::string& key : keys) {
      if (key.empty()) continue;
      etcdserverpb::DeleteRangeRequest req;
      req.set_key(key);
      etcdserverpb::DeleteRangeResponse one;
      CAIRN_RETURN_IF_ERROR(executor.DeleteRange(req, &one));
      deleted += one.deleted();
    }
    resp->set_deleted(deleted);
    return Status::Ok();
  }));
  resp->mutable_header()->set_revision(pending_.current);
  return Status::Ok();
}

Status KvState::ApplyTxn(storage::WriteBatch* batch, const etcdserverpb::TxnRequest& req,
                         etcdserverpb::TxnResponse* resp, std::vector<mvccpb::Event>* events) {
  resp->Clear();
  CAIRN_RETURN_IF_ERROR(ValidateTxnStructure(req));
  CAIRN_RETURN_IF_ERROR(ApplyWrite(batch, resp, events, [&](internal::CommandExecutor& executor) {
    return executor.Txn(req, /*write_txn=*/!IsTxnReadOnly(req), resp);
  }));
  resp->mutable_header()->set_revision(pending_.current);
  return Status::Ok();
}

Status KvState::ApplyTxnAtNewRevision(storage::WriteBatch* batch,
                                      const etcdserverpb::TxnRequest& req,
                                      etcdserverpb::TxnResponse* resp,
                                      std::vector<mvccpb::Event>* events) {
  resp->Clear();
  CAIRN_CHECK(req.compare_size() == 0 && req.failure_size() == 0);
  CAIRN_RETURN_IF_ERROR(ValidateTxnStructure(req));
  CAIRN_RETURN_IF_ERROR(ApplyWrite(
      batch, resp, events,
      [&](internal::CommandExecutor& executor) {
        return executor.Txn(req, /*write_txn=*/true, resp);
      },
      /*always_new_revision=*/true));
  resp->mutable_header()->set_revision(pending_.current);
  return Status::Ok();
}

Status KvState::ApplyCompaction(storage::WriteBatch* batch,
                                const etcdserverpb::CompactionRequest& req,
                                etcdserverpb::CompactionResponse* resp) {
  resp->Clear();
  // etcd's updateCompactRev, in its order.
  if (req.revision() <= pending_.compacted) return ErrCompacted();
  if (req.revision() > pending_.current) return ErrFutureRev();
  Revisions next = pending_;
  next.compacted = req.revision();
  batch_needs_meta_ = true;
  pending_ = next;
  resp->mutable_header()->set_revision(pending_.current);
  return Status::Ok();
}

Status KvState::PrefetchLatest(std::span<const std::string_view> keys) {
  std::vector<std::string_view> wanted;
  for (std::string_view key : keys) {
    if (!key.empty() && !batch_latest_.Knows(key)) wanted.push_back(key);
  }
  std::sort(wanted.begin(), wanted.end());
  wanted.erase(std::unique(wanted.begin(), wanted.end()), wanted.end());
  std::vector<std::string_view> missed;
  cache_.GetMany(wanted, [&](size_t i, LatestCache::Lookup lookup, std::string_view record) {
    switch (lookup) {
      case LatestCache::Lookup::kPresent:
        batch_latest_.AddReadAhead(wanted[i], record);
        break;
      case LatestCache::Lookup::kAbsent:
        batch_latest_.AddReadAhead(wanted[i], std::nullopt);
        break;
      case LatestCache::Lookup::kMiss:
        missed.push_back(wanted[i]);
        break;
    }
  });
  if (missed.empty()) return Status::Ok();
  std::sort(missed.begin(), missed.end());  // GetMany visits in its own order
  std::vector<std::optional<std::string>> records;
  // What the batch has not written yet is the engine's (nothing else writes it).
  CAIRN_RETURN_IF_ERROR(
      engine_->MultiGet(storage::ReadOptions(), Family::kKvLatest, missed, &records));
  for (size_t i = 0; i < missed.size(); ++i) {
    batch_latest_.AddReadAhead(
        missed[i], records[i] ? std::optional<std::string_view>(*records[i]) : std::nullopt);
  }
  return Status::Ok();
}

Status KvState::WarmLatest(std::span<const std::string_view> keys, size_t* warmed_count) {
  if (warmed_count != nullptr) *warmed_count = 0;
  if (!cache_.enabled()) return Status::Ok();
  std::vector<std::string_view> missed;
  cache_.GetMany(keys, [&](size_t i, LatestCache::Lookup lookup, std::string_view /*record*/) {
    if (lookup == LatestCache::Lookup::kMiss && !keys[i].empty()) missed.push_back(keys[i]);
  });
  if (missed.empty()) return Status::Ok();
  std::sort(missed.begin(), missed.end());
  missed.erase(std::unique(missed.begin(), missed.end()), missed.end());
  // The engine holds this revision's state or a newer one (the apply thread writes a batch
  // before publishing its revision); Fill drops what an eviction since may have made stale,
  // and never replaces the apply thread's own entries. No snapshot: releasing one costs
  // compactions (docs/formats/storage.md, Reads).
  const int64_t revision = published_current_.load(std::memory_order_acquire);
  std::vector<std::optional<std::string>> records;
  CAIRN_RETURN_IF_ERROR(
      engine_->MultiGet(storage::ReadOptions(), Family::kKvLatest, missed, &records));
  for (size_t i = 0; i < missed.size(); ++i) {
    // Only records: one written after `revision` and not yet published shows its own
    // mod_revision (CachedPointRange does not serve it), an absence would not.
    if (records[i]) cache_.Fill(missed[i], &*records[i], revision);
  }
  if (warmed_count != nullptr) {
    *warmed_count = static_cast<size_t>(
        std::count_if(records.begin(), records.end(), [](const auto& r) { return r.has_value(); }));
  }
  return Status::Ok();
}

void KvState::OnBatchWritten() {
  CAIRN_CHECK_MSG(!batch_needs_meta_, "mvcc: a batch was written without KvState::FinishBatch");
  written_ = pending_;
  // The cache and the revision change together inside the publish window, so a reader sees
  // either the old pair or the new one (latest_cache.h).
  cache_.BeginPublish();
  if (cache_.enabled()) {
    batch_latest_.ForEachWritten([&](std::string_view key, const std::string* record) {
      if (record == nullptr) {
        cache_.MarkAbsent(key, written_.current);
      } else {
        cache_.Update(key, *record, written_.current);
      }
    });
  }
  batch_latest_.Clear();
  key_count_blocks_.OnBatchWritten();
  published_key_count_.store(written_.key_count);
  published_current_.store(written_.current);
  cache_.EndPublish();
  published_compacted_.store(written_.compacted);
  filter_->SetCompactedRevision(written_.compacted);
}

void KvState::OnBatchAborted() {
  batch_latest_.Clear();
  batch_needs_meta_ = false;
  pending_ = written_;
  key_count_blocks_.OnBatchAborted();
}

Status KvState::CompactPhysically() { return engine_->CompactRange(Family::kKvHistory, "", ""); }

}  // namespace cairn::mvcc
