// RaftLog: the core's view of the log — the caller's durable Storage plus the entries and
// snapshot not yet handed to the caller for persistence ("unstable"), and the commit and
// apply positions.
//
// Invariants (CAIRN_CHECKed): applied <= committed <= LastIndex(); committed never
// decreases; an entry at or below committed is never overwritten; terms never decrease
// along the log.
//
// Thread-safety: not thread-safe; owned by one Raft.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "src/raft/storage.h"

namespace cairn::raft {

class RaftLog {
 public:
  // `storage` must outlive the log.
  explicit RaftLog(const Storage* storage);
  RaftLog(const RaftLog&) = delete;
  RaftLog& operator=(const RaftLog&) = delete;

  uint64_t FirstIndex() const;
  uint64_t LastIndex() const;
  uint64_t LastTerm() const;
  // The term of the entry at `index`: CompactedError below FirstIndex() - 1,
  // UnavailableError above LastIndex().
  Result<uint64_t> Term(uint64_t index) const;
  // Term(index), or 0 when it is compacted or unavailable.
  uint64_t TermOrZero(uint64_t index) const;
  bool MatchTerm(uint64_t index, uint64_t term) const;
  // Whether a log ending at (last_index, last_term) is at least as up to date as this one
  // (Raft §5.4.1).
  bool IsUpToDate(uint64_t last_index, uint64_t last_term) const;

  // Follower side of AppendEntries: if (index, log_term) matches, appends `entries` (after
  // dropping any conflicting suffix), raises committed to min(commit, last new index) and
  // returns the last new index; otherwise returns nullopt and changes nothing.
  // REQUIRES: index >= committed (callers answer older messages without the log).
  std::optional<uint64_t> MaybeAppend(uint64_t index, uint64_t log_term, uint64_t commit,
                                      const std::vector<Entry>& entries);
  // Appends entries at their indexes, truncating anything after entries[0].index - 1.
  // REQUIRES: entries[0].index - 1 >= committed; entries contiguous. Returns LastIndex().
  uint64_t Append(const std::vector<Entry>& entries);
  // The largest index <= `index` whose term is <= `term` (or the first unavailable
  // position): the fast-backtracking probe (Raft thesis §5.3 optimization).
  uint64_t FindConflictByTerm(uint64_t index, uint64_t term) const;

  // Entries [low, high), bounded by size_bytes_max (at least one entry if any).
  Result<std::vector<Entry>> Slice(uint64_t low, uint64_t high, uint64_t size_bytes_max) const;
  Result<std::vector<Entry>> EntriesFrom(uint64_t low, uint64_t size_bytes_max) const;

  uint64_t committed() const { return committed_; }
  uint64_t applied() const { return applied_; }
  // Raises committed to `index` if the entry there has `term` (only current-term entries
  // commit by counting replicas, Raft §5.4.2). Returns whether committed changed.
  bool MaybeCommit(uint64_t index, uint64_t term);
  // REQUIRES: index <= LastIndex(). No-op when index <= committed.
  void CommitTo(uint64_t index);
  // REQUIRES: applied <= index <= committed.
  void AppliedTo(uint64_t index);

  // Unstable state, handed to the caller in a Ready.
  const std::vector<Entry>& UnstableEntries() const { return unstable_entries_; }
  const std::optional<Snapshot>& UnstableSnapshot() const { return unstable_snapshot_; }
  // Committed entries not yet applied, bounded by size_bytes_max.
  std::vector<Entry> NextCommittedEntries(uint64_t size_bytes_max) const;
  bool HasNextCommittedEntries() const;
  // The caller persisted entries up to (index, term): drop them from the unstable part
  // (if the entry at index still has that term; otherwise it was replaced meanwhile).
  void StableTo(uint64_t index, uint64_t term);
  void StableSnapshotTo(uint64_t index);
  // Replaces the log with `snapshot`; committed becomes its index.
  void Restore(const Snapshot& snapshot);

 private:
  const Storage* storage_;
  std::optional<Snapshot> unstable_snapshot_;
  std::vector<Entry> unstable_entries_;
  // Index of unstable_entries_[0] (or where the next unstable entry would go).
  uint64_t unstable_offset_ = 0;
  uint64_t committed_ = 0;
  uint64_t applied_ = 0;
};

}  // namespace cairn::raft
