// KvState: etcd v3's revisioned key-value state machine (mvcc + the KV part of etcd's
// applier) over a storage::Engine. Layout and encodings: src/mvcc/mvcc_format.h and
// docs/formats/mvcc.md.
//
// Writes: the applier thread calls Apply* for each committed command, adding the command's
// writes to one WriteBatch shared by many commands; each Apply* reads through that batch, so
// it sees the commands before it. Before engine->Write(batch) it calls FinishBatch (the meta
// keys, once per batch); after it, OnBatchWritten (or OnBatchAborted if the write failed). A
// failing Apply* leaves the batch exactly as it was and changes nothing in memory, so a bad command
// can never half-apply. Reads: Range, HashKV and ReadOnlyTxn each read one engine snapshot, so the
// data and the header revision come from the same point; they run concurrently with apply. There is
// no in-memory index of keys: current reads go to kv_latest, historical reads seek kv_history, so
// the data set is not bounded by RAM (the apply thread's key count blocks hold one entry per ~512
// keys).
//
// Responses carry header.revision only; the server fills cluster and member ids.
//
// Thread-safety: Range, HashKV, ReadOnlyTxn, CurrentRevision, CompactedRevision and
// CompactPhysically are thread-safe. Apply*, OnBatchWritten and OnBatchAborted must be called
// from one thread at a time (the applier). The engine and the filter factory must outlive
// the KvState.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "etcdserverpb/rpc.pb.h"
#include "mvccpb/kv.pb.h"
#include "src/base/result.h"
#include "src/base/status.h"
#include "src/mvcc/batch_latest.h"
#include "src/mvcc/compaction_filter.h"
#include "src/mvcc/key_count_blocks.h"
#include "src/mvcc/kv_txn.h"
#include "src/mvcc/latest_cache.h"
#include "src/mvcc/lease_index.h"
#include "src/mvcc/validation.h"
#include "src/storage/engine.h"

namespace cairn::mvcc {

struct KvStateOptions {
  // Bytes of the cache of hot keys' current records (latest_cache.h) that serves point reads
  // at the current revision; 0 disables it. Default: 64 MiB.
  size_t latest_cache_bytes = 64ull << 20;
  // Target keys per key count block (key_count_blocks.h): a count walks at most about
  // 4 x this many keys at its edges plus one entry per block in between. Default: 512.
  int64_t key_count_block_keys = 512;
};

class KvState {
 public:
  // Loads the revisions from the meta family (a fresh engine starts at revision 1, never
  // compacted) and sets the filter's compacted revision. `filter` must be the factory given
  // to the engine in EngineOptions. Errors: FailedPrecondition for an unknown format
  // version, Corruption for undecodable meta values, engine errors.
  static Result<std::unique_ptr<KvState>> Open(
      storage::Engine* engine, std::shared_ptr<HistoryCompactionFilterFactory> filter,
      const KvStateOptions& options = {});

  KvState(const KvState&) = delete;
  KvState& operator=(const KvState&) = delete;

  // ---- Reads (thread-safe; one engine snapshot each) ----

  // etcd's Range. Errors: ErrFutureRev, ErrCompacted, ErrInvalidSortOption, engine errors.
  Status Range(const etcdserverpb::RangeRequest& req, etcdserverpb::RangeResponse* resp) const;
  // A read-only txn (IsTxnReadOnly) served without the log, as etcd does: compares and
  // ranges at the snapshot. REQUIRES: IsTxnReadOnly(req) (else InvalidArgument).
  Status ReadOnlyTxn(const etcdserverpb::TxnRequest& req, etcdserverpb::TxnResponse* resp) const;
  // Hash of the logical history at `revision` (0 = current): identical on every replica
  // that applied the same commands, whatever compactions physically dropped. Errors:
  // ErrCompacted (0 < revision < compacted), ErrFutureRev (revision > current).
  Status HashKV(int64_t revision, etcdserverpb::HashKVResponse* resp) const;
  // The revision of the last written batch (published by OnBatchWritten).
  int64_t CurrentRevision() const { return published_current_.load(); }
  // The compacted revision of the last written batch; -1 (etcd's value) before any
  // compaction, 0 after Compact(0).
  int64_t CompactedRevision() const { return published_compacted_.load(); }
  // Live keys at CurrentRevision() (etcd_debugging_mvcc_keys_total).
  int64_t KeyCount() const { return published_key_count_.load(); }

  // ---- Apply (one thread) ----
  // Each adds the command's writes to `batch` (kv_latest, kv_history; the "kv/" meta keys
  // come once per batch from FinishBatch) and fills the response; `events`, when given, receives
  // the command's changes in order (PUT: the new kv; DELETE: key + mod_revision = deletion
  // revision; prev_kv set whenever the key existed before, the server strips it for watchers that
  // did not ask). On error, nothing is added to batch, events or memory.

  // Errors: ErrEmptyKey, ErrKeyNotFound (ignore_value / ignore_lease on a missing key).
  Status ApplyPut(storage::WriteBatch* batch, const etcdserverpb::PutRequest& req,
                  etcdserverpb::PutResponse* resp, std::vector<mvccpb::Event>* events = nullptr);
  // Errors: ErrEmptyKey.
  Status ApplyDeleteRange(storage::WriteBatch* batch, const etcdserverpb::DeleteRangeRequest& req,
                          etcdserverpb::DeleteRangeResponse* resp,
                          std::vector<mvccpb::Event>* events = nullptr);
  // Errors: the structural errors of ValidateTxnStructure; ErrKeyNotFound, ErrFutureRev,
  // ErrCompacted from etcd's apply-time checks of the chosen branch.
  Status ApplyTxn(storage::WriteBatch* batch, const etcdserverpb::TxnRequest& req,
                  etcdserverpb::TxnResponse* resp, std::vector<mvccpb::Event>* events = nullptr);
  // ApplyTxn for a write that always takes a new revision, even when `req` (no compares,
  // success ops only) changes no key: an event-store write and its transactional outbox.
  // Errors: as ApplyTxn.
  Status ApplyTxnAtNewRevision(storage::WriteBatch* batch, const etcdserverpb::TxnRequest& req,
                               etcdserverpb::TxnResponse* resp,
                               std::vector<mvccpb::Event>* events = nullptr);
  // Deletes the existing ones of `keys` at ONE new revision (none when none exists), like a
  // txn of single-key deletes without its op limit: a lease revoke. Errors: engine errors.
  Status ApplyDeleteKeys(storage::WriteBatch* batch, const std::vector<std::string>& keys,
                         etcdserverpb::DeleteRangeResponse* resp,
                         std::vector<mvccpb::Event>* events = nullptr);
  // Records the compacted revision. Errors: ErrCompacted (revision <= compacted),
  // ErrFutureRev (revision > current).
  Status ApplyCompaction(storage::WriteBatch* batch, const etcdserverpb::CompactionRequest& req,
                         etcdserverpb::CompactionResponse* resp);

  // Puts with a lease check it exists and attachments are reported to `leases` (the lease
  // state machine). nullptr (the default) = leases are plain numbers. Set before any apply.
  void set_lease_index(LeaseIndex* leases) { leases_ = leases; }
  // Apply thread only: the revision including the commands added to the unwritten batch.
  int64_t PendingRevision() const { return pending_.current; }

  // Optional, before a batch's first Apply*: reads the current records of `keys` (the
  // kv_latest keys its commands will read first: a put's key, a txn's compared and written
  // keys), from the cache of hot keys or, for the others, from the engine in one batched
  // lookup, which costs less than reading them one by one. The batch's commands then find
  // them in memory. Forgotten at OnBatchWritten and OnBatchAborted. Errors: engine errors
  // (the commands then read the keys the cache missed themselves).
  Status PrefetchLatest(std::span<const std::string_view> keys);

  // Any thread, best effort: reads the current records of `keys` that the cache of hot keys
  // lacks from the engine and fills the cache with them (LatestCache::Fill, at the revision
  // published before the read, so that a record a later batch replaced, or one an eviction
  // may have hidden, is never cached). The node calls it with the keys of commands it
  // proposes, which are read from the disk while their log entries are made durable; the
  // apply thread's PrefetchLatest then finds them in memory. Changes nothing a read or an
  // apply observes. *warmed (when given) is set to the number of distinct keys the cache
  // lacked and the engine held: the records read for the cache. A key the engine lacks is
  // not counted: its absence is not cached (it would not name its revision), so warming it
  // does nothing. Errors: engine errors (the cache is then left as it was).
  Status WarmLatest(std::span<const std::string_view> keys, size_t* warmed = nullptr);

  // Adds the batch's meta writes: the revisions, key count and key count blocks as the
  // batch's last command left them, once per batch rather than once per command (each
  // version of a meta key is a memtable insert). Call after the last Apply* of the batch and
  // before engine->Write(batch); OnBatchWritten checks that it was.
  void FinishBatch(storage::WriteBatch* batch);
  // After engine->Write(batch) succeeded: publishes the batch's revisions to readers and the
  // compacted revision to the compaction filter.
  void OnBatchWritten();
  // engine->Write(batch) failed (or the batch was dropped): forgets the batch's changes.
  void OnBatchAborted();

  // Re-reads the revisions from the engine after its contents were replaced wholesale (a
  // Raft snapshot install) and drops the cache. Apply thread only, with no batch pending.
  // Errors: as Open.
  Status Reload();

  // Compacts kv_history now so that the compaction filter drops everything obsolete (for
  // CompactionRequest.physical). Slow; call it off the apply thread.
  Status CompactPhysically();

 private:
  struct Revisions {
    int64_t current = 0;
    int64_t compacted = 0;
    int64_t key_count = 0;
    bool format_version_written = false;
  };

  KvState(storage::Engine* engine, std::shared_ptr<HistoryCompactionFilterFactory> filter,
          const Revisions& revisions, const KvStateOptions& options);

  // Point read at the current revision through the cache of hot keys. Returns false when
  // the request is not such a read (the caller takes the general path).
  bool CachedPointRange(const etcdserverpb::RangeRequest& req, etcdserverpb::RangeResponse* resp,
                        Status* status) const;
  template <typename Response, typename Execute>
  Status ApplyWrite(storage::WriteBatch* batch, Response* resp, std::vector<mvccpb::Event>* events,
                    Execute execute, bool always_new_revision = false);

  // The revisions and key count stored in the engine (Open and Reload).
  static Result<Revisions> LoadRevisions(storage::Engine* engine);
  // Reads the meta revisions of a snapshot.
  Status ReadRevisions(const storage::Snapshot* snapshot, Revisions* revisions) const;

  storage::Engine* const engine_;
  const std::shared_ptr<HistoryCompactionFilterFactory> filter_;

  // Apply thread only: the state including every command added to the unwritten batch, and
  // the state of the last written batch.
  Revisions pending_;
  Revisions written_;
  // Apply thread only: a command changed pending_ since the last FinishBatch.
  bool batch_needs_meta_ = false;

  // Apply thread only: the unwritten batch's kv_latest writes (published to the cache
  // together with the revision in OnBatchWritten) and PrefetchLatest's records.
  internal::BatchLatest batch_latest_;
  // Apply thread only: the key count blocks, including the unwritten batch's commands.
  internal::KeyCountBlocks key_count_blocks_;
  mutable LatestCache cache_;
  LeaseIndex* leases_ = nullptr;

  std::atomic<int64_t> published_current_;
  std::atomic<int64_t> published_compacted_;
  std::atomic<int64_t> published_key_count_;
};

}  // namespace cairn::mvcc
