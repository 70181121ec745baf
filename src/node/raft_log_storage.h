// RaftLogStorage: the Raft core's durable log (raft::Storage) on the node's WAL, plus the
// writes the node makes after each Ready: entries (replacing a conflicting suffix), the
// fdatasync that makes them durable, and the hard state file (raft_log_format.h).
//
// Index layout: the WAL index is the Raft index. Entries up to compacted_index are treated
// as compacted: the WAL may still hold some of them, but the core never reads below
// FirstIndex() = compacted_index + 1. When the WAL's first entry is F > 1, compacted_index is
// F itself (its term is known from the WAL, which is what the core needs at the boundary);
// the node only drops WAL prefixes up to an index it has applied, so F <= applied.
//
// State-machine snapshots are the node's business: GetSnapshot() asks the snapshot source the
// node installed (SetSnapshotSource), which answers with a prepared snapshot or an empty one
// while it produces one in the background (raft treats that as temporarily unavailable and
// retries). After a follower installed a snapshot at (index, term), ResetToSnapshot restarts
// the log there: the WAL holds one placeholder entry at `index` with `term` (never applied:
// it is the compacted boundary, so FirstIndex() = index + 1 and Term(index) = term, also
// after a restart).
//
// Recent entries are cached in memory (bounded by bytes) so that replication to followers
// and applying committed entries do not read the WAL back from disk.
//
// Thread-safety: not thread-safe. The node's raft loop is the only user.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "src/base/result.h"
#include "src/env/file_system.h"
#include "src/raft/storage.h"
#include "src/wal/wal.h"

namespace cairn::node {

class RaftLogStorage final : public raft::Storage {
 public:
  struct Options {
    // Most bytes of recent entries kept in memory. Default: 64 MiB.
    uint64_t cache_bytes_max = 64ull << 20;
  };

  // Scans the WAL's entries for their terms and reads the hard state in `raft_dir` (created
  // if missing). `config` is the membership the state machine holds at `applied_index`;
  // the initial hard state's commit is raised to `applied_index` (applied entries are
  // committed; the commit index itself is not persisted on every change).
  // Corruption when the log does not reach applied_index or an entry does not decode.
  static Result<std::unique_ptr<RaftLogStorage>> Open(wal::Wal* wal, env::FileSystem* fs,
                                                      std::string raft_dir,
                                                      raft::ConfigState config,
                                                      uint64_t applied_index, Options options);
  RaftLogStorage(const RaftLogStorage&) = delete;
  RaftLogStorage& operator=(const RaftLogStorage&) = delete;

  // raft::Storage
  raft::HardState InitialHardState() const override { return initial_hard_state_; }
  raft::ConfigState InitialConfigState() const override { return initial_config_; }
  Result<std::vector<raft::Entry>> Entries(uint64_t low, uint64_t high,
                                           uint64_t size_bytes_max) const override;
  Result<uint64_t> Term(uint64_t index) const override;
  uint64_t FirstIndex() const override { return compacted_index_ + 1; }
  uint64_t LastIndex() const override { return last_index_; }
  raft::Snapshot GetSnapshot() const override {
    return snapshot_source_ ? snapshot_source_() : raft::Snapshot{};
  }
  // Where GetSnapshot() gets the snapshot to send (called on the raft thread).
  void SetSnapshotSource(std::function<raft::Snapshot()> source) {
    snapshot_source_ = std::move(source);
  }

  // Discards the whole log and restarts it after a snapshot of the state machine at
  // (index, term) (see above); durable on return. REQUIRES: index >= 2 (index 1 could not be
  // told apart from a log that starts at 1).
  Status ResetToSnapshot(uint64_t index, uint64_t term);
  // The WAL part of ResetToSnapshot, for redoing an interrupted install at open, before a
  // RaftLogStorage exists. Idempotent.
  static Status ResetWalToSnapshot(wal::Wal* wal, uint64_t index, uint64_t term);

  // Appends `entries` (dropping any existing entries from entries[0].index on) without
  // syncing. REQUIRES: FirstIndex() <= entries[0].index <= LastIndex() + 1; contiguous.
  Status Append(const std::vector<raft::Entry>& entries);
  // Makes appended entries durable (fdatasync).
  Status Sync() { return wal_->Sync(); }
  // Durably records term and vote when they differ from what the file holds; a change of
  // the commit index alone is not written (see Open).
  Status SaveHardState(const raft::HardState& hard_state);
  // Compacts the log up to `index` (the entry at `index` stays as the boundary: FirstIndex()
  // becomes index + 1) and drops the WAL segments whose entries are all below it.
  // REQUIRES: index <= the node's applied index.
  Status CompactTo(uint64_t index);
  // Drops the cached entries up to `index`; Entries reads them from the WAL from then on.
  // For entries no member will read again soon: a sole member's applied entries.
  void ReleaseCacheThrough(uint64_t index);
  // Bytes of the entries cached in memory (raft::Entry::SizeBytes), at most cache_bytes_max.
  uint64_t cached_bytes() const { return cache_bytes_; }

  // Bootstrap of a new cluster member: writes `entries` (the initial configuration changes,
  // right after LastIndex()) and the hard state, durably. REQUIRES: the log is empty.
  Status Bootstrap(const std::vector<raft::Entry>& entries, const raft::HardState& hard_state);
  // Bootstrap syncs its entries, then writes the hard state: a crash between the two leaves a
  // log of term-1 configuration changes and no hard state, from which no member could ever
  // campaign. When the log is exactly that (from index 1, every entry a term-1 configuration
  // change, hard state never written), this writes the hard state Bootstrap would have written
  // and returns true; otherwise it changes nothing and returns false. Call it at open, for a
  // member that bootstraps (not one that joins an existing cluster) with an empty membership.
  Result<bool> FinishInterruptedBootstrap();

 private:
  RaftLogStorage(wal::Wal* wal, env::FileSystem* fs, std::string raft_dir, Options options)
      : wal_(wal), fs_(fs), raft_dir_(std::move(raft_dir)), options_(options) {}
  Status LoadTerms();
  void RecordTerm(uint64_t index, uint64_t term);
  void TruncateTermsAfter(uint64_t last_index_kept);
  void CacheAppend(const std::vector<raft::Entry>& entries);

  wal::Wal* const wal_;
  env::FileSystem* const fs_;
  const std::string raft_dir_;
  const Options options_;
  raft::HardState initial_hard_state_;
  raft::HardState saved_hard_state_;  // what the file holds
  raft::ConfigState initial_config_;
  uint64_t compacted_index_ = 0;
  uint64_t compacted_term_ = 0;
  uint64_t last_index_ = 0;
  // (first index, term) of each run of equal terms, ascending; covers compacted_index_ ..
  // last_index_.
  std::vector<std::pair<uint64_t, uint64_t>> term_runs_;
  // Entries cache_.front().index .. last_index_ (possibly empty), at most cache_bytes_max.
  std::deque<raft::Entry> cache_;
  uint64_t cache_bytes_ = 0;
  std::function<raft::Snapshot()> snapshot_source_;
};

}  // namespace cairn::node
