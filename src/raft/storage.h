// Storage: the raft core's read-only view of what the caller has made durable (entries,
// hard state, the latest snapshot), in the style of etcd's raft.Storage. The caller writes
// to it after persisting a Ready; the core only reads.
//
// MemoryStorage is an in-memory implementation for tests and the simulation; the node's
// WAL-backed storage implements the same interface.
//
// Index layout: entries up to compacted_index are gone (their last term is remembered);
// entries compacted_index+1 .. LastIndex() are held. FirstIndex() is compacted_index + 1;
// Term() answers for compacted_index .. LastIndex(). The latest snapshot is at an index
// >= compacted_index (a snapshot is taken first, the log compacted up to it later).
//
// Thread-safety: MemoryStorage is not thread-safe; the raft core and the caller use it from
// one thread (the node's raft loop).
#pragma once

#include <cstdint>
#include <vector>

#include "src/base/result.h"
#include "src/raft/types.h"

namespace cairn::raft {

// Error codes returned by Storage: the requested index is below FirstIndex() - 1
// (compacted into the snapshot) or above LastIndex() (unavailable).
bool IsCompacted(const Status& status);
bool IsUnavailable(const Status& status);
Status CompactedError();
Status UnavailableError();

class Storage {
 public:
  virtual ~Storage() = default;

  virtual HardState InitialHardState() const = 0;
  virtual ConfigState InitialConfigState() const = 0;
  // Entries [low, high), stopping once their total size passes size_bytes_max (at least
  // one entry is returned if any is in range).
  // REQUIRES: low <= high.
  virtual Result<std::vector<Entry>> Entries(uint64_t low, uint64_t high,
                                             uint64_t size_bytes_max) const = 0;
  virtual Result<uint64_t> Term(uint64_t index) const = 0;
  virtual uint64_t FirstIndex() const = 0;
  virtual uint64_t LastIndex() const = 0;
  virtual Snapshot GetSnapshot() const = 0;
};

class MemoryStorage final : public Storage {
 public:
  MemoryStorage();
  MemoryStorage(const MemoryStorage&) = default;
  MemoryStorage& operator=(const MemoryStorage&) = default;

  HardState InitialHardState() const override { return hard_state_; }
  ConfigState InitialConfigState() const override { return snapshot_.metadata.config; }
  Result<std::vector<Entry>> Entries(uint64_t low, uint64_t high,
                                     uint64_t size_bytes_max) const override;
  Result<uint64_t> Term(uint64_t index) const override;
  uint64_t FirstIndex() const override { return compacted_index_ + 1; }
  uint64_t LastIndex() const override { return compacted_index_ + entries_.size(); }
  Snapshot GetSnapshot() const override { return snapshot_; }

  // Writers, called by the owner after persisting a Ready.
  void SetHardState(const HardState& hard_state) { hard_state_ = hard_state; }
  // Appends entries, truncating any existing entries at and after entries[0].index.
  // REQUIRES: entries are contiguous; FirstIndex() <= entries[0].index <= LastIndex() + 1.
  void Append(const std::vector<Entry>& entries);
  // Replaces the log with the snapshot. Returns false (no change) if it is not newer.
  bool ApplySnapshot(const Snapshot& snapshot);
  // Records a snapshot of the caller's state machine at `index` (already applied); the
  // entries stay until Compact.
  // REQUIRES: snapshot index < index <= LastIndex().
  void CreateSnapshot(uint64_t index, const ConfigState& config, std::string data);
  // Discards entries up to and including `index`.
  // REQUIRES: compacted index <= index <= snapshot index.
  void Compact(uint64_t index);
  // Sets the initial membership for a fresh cluster (before anything is written).
  void SetInitialConfig(const ConfigState& config) { snapshot_.metadata.config = config; }

 private:
  HardState hard_state_;
  Snapshot snapshot_;
  uint64_t compacted_index_ = 0;
  uint64_t compacted_term_ = 0;
  // entries_[i] has index compacted_index_ + 1 + i.
  std::vector<Entry> entries_;
};

}  // namespace cairn::raft
