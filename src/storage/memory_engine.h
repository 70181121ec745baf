// MemoryEngine: an in-memory Engine for unit tests and deterministic simulation.
//
// Each family is a persistent (immutable, path-copying) balanced search tree: a write
// builds a new root in O(log n) and shares every untouched node with the old one. So a
// snapshot, an iterator or the durable image is just a set of roots, taken in O(1), and
// nothing a reader holds ever changes under it.
//
// Crash model (mirrors RocksDbEngine with its WAL disabled and atomic_flush on):
// Write() makes a batch visible; Flush() makes every batch written before it durable.
// SimulateCrash() reverts the engine to the state of the last durable point, losing
// every batch written after it, whole batches only. CompactRange() flushes first, like
// RocksDB's manual compaction, so it is also a durable point, and what the compaction
// filter drops is dropped durably.
//
// Compaction filter: runs only in CompactRange() (there is no background compaction), as a
// full compaction over exactly [begin, end), on the latest state. Snapshots and iterators
// taken earlier keep seeing the dropped entries.
//
// Keys are ordered bytewise (unsigned), like RocksDB's default comparator.
//
// As with RocksDbEngine: Write() leaves the batch as it was (Clear() it to reuse it); Get
// accepts a null `value` to test for presence only.
//
// Thread-safety: as Engine. Readers never wait for a batch being applied; writers are
// serialized.
#pragma once

#include <array>
#include <memory>
#include <mutex>
#include <shared_mutex>

#include "src/storage/engine.h"

namespace cairn::storage {

namespace memory_internal {
struct Node;
// One family's contents: an immutable tree; copying it is O(1). Defined in the .cc file.
struct Tree {
  std::shared_ptr<const Node> root;
  friend bool operator==(const Tree&, const Tree&) = default;
};
struct State {
  std::array<Tree, kFamilyCount> trees;
  // Sum of key and value sizes over all families.
  uint64_t size_bytes = 0;
};
}  // namespace memory_internal

class MemoryEngine final : public Engine {
 public:
  // options.path and the RocksDB sizes are ignored; the compaction filter factory is used.
  explicit MemoryEngine(const EngineOptions& options = {});
  ~MemoryEngine() override;
  MemoryEngine(const MemoryEngine&) = delete;
  MemoryEngine& operator=(const MemoryEngine&) = delete;

  Result<bool> Get(const ReadOptions& options, Family family, std::string_view key,
                   std::string* value) override;
  std::unique_ptr<Iterator> NewIterator(const ReadOptions& options, Family family) override;
  std::shared_ptr<const Snapshot> GetSnapshot() override;

  std::unique_ptr<WriteBatch> NewWriteBatch() override;
  Status Write(WriteBatch* batch) override;
  Status Flush() override;

  Status CompactRange(Family family, std::string_view begin, std::string_view end) override;
  // Sum of the key and value sizes of every live entry.
  uint64_t ApproximateSizeBytes() override;

  // Simulation: loses everything written since the last durable point (Flush or
  // CompactRange), as a process crash or power loss would with RocksDB. Existing snapshots
  // and iterators keep their view. Safe to call concurrently with readers.
  void SimulateCrash();

 private:
  friend class MemoryWriteBatch;

  // The tree a read should use: the snapshot's if any, else the current one.
  memory_internal::Tree TreeFor(const ReadOptions& options, Family family) const;
  memory_internal::Tree CurrentTree(Family family) const;

  const std::shared_ptr<CompactionFilterFactory> compaction_filter_factory_;

  // Serializes writers (Write, CompactRange's drop step, SimulateCrash) so that a writer can
  // build new trees without holding state_mutex_; readers take state_mutex_ only to read
  // the roots.
  std::mutex write_mutex_;
  mutable std::shared_mutex state_mutex_;
  memory_internal::State current_;  // GUARDED_BY(state_mutex_)
  memory_internal::State durable_;  // GUARDED_BY(state_mutex_)
};

}  // namespace cairn::storage
