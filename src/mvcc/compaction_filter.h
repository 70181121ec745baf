// HistoryCompactionFilterFactory: drops kv_history entries that no read at or above the
// compacted revision can reach, lazily, during the storage engine's compactions. A
// Compaction request only records the compacted revision (no stall); the space comes back
// as compactions run (or at once with KvState::CompactPhysically).
//
// Rule, for compacted revision R (entries of one user key arrive newest first):
//   - entries with main revision > R are kept;
//   - the first entry <= R of a user key seen in THIS compaction is kept if it is a put,
//     and a tombstone is kept too unless the compaction is full;
//   - every later (older) entry <= R of the same user key in this compaction is dropped.
// Why this is safe whatever other files hold (the filter sees only the compaction's input):
// a read at revision r >= R takes the newest entry <= r, so an entry older than another
// entry <= R of its key is never returned, provided the newer one stays. A put that is the
// newest <= R in some compaction is only ever dropped in favour of a still newer entry <= R.
// A tombstone shadows older puts that may sit in files outside a partial compaction; it is
// dropped only in a full compaction, where every entry of its key is in the input and every
// older entry goes with it, so nothing can resurface.
// Requires (storage contract): a full compaction's input holds every entry of each user key
// it contains, so ranges given to Engine::CompactRange on kv_history must not split the
// entries of one user key (KvState::CompactPhysically compacts the whole family).
// Reads below R fail with ErrCompacted whatever is physically left; HashKV hashes the logical
// view, so dropped-or-not never shows.
//
// Thread-safety: the factory is thread-safe (the engine calls Create from background
// threads); each filter is used by one thread. The compacted revision only grows.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "src/mvcc/mvcc_format.h"
#include "src/storage/engine.h"

namespace cairn::mvcc {

class HistoryCompactionFilterFactory final : public storage::CompactionFilterFactory {
 public:
  HistoryCompactionFilterFactory() = default;
  HistoryCompactionFilterFactory(const HistoryCompactionFilterFactory&) = delete;
  HistoryCompactionFilterFactory& operator=(const HistoryCompactionFilterFactory&) = delete;

  // Returns nullptr for families other than kv_history and while nothing is compacted.
  std::unique_ptr<storage::CompactionFilter> Create(storage::Family family,
                                                    bool full_compaction) override;

  // Raises the compacted revision (lower values are ignored). KvState calls it after the
  // batch recording the compaction is written, and on Open.
  void SetCompactedRevision(int64_t revision);
  int64_t CompactedRevision() const { return compacted_revision_.load(); }

 private:
  std::atomic<int64_t> compacted_revision_{format::kNeverCompacted};
};

// Exposed for tests: the filter for one compaction at compacted revision `compacted`.
std::unique_ptr<storage::CompactionFilter> NewHistoryCompactionFilter(int64_t compacted,
                                                                      bool full_compaction);

}  // namespace cairn::mvcc
