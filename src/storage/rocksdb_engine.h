// RocksDbEngine: the production Engine, one RocksDB database with one column family per
// storage::Family (named by FamilyName), created on open when missing.
//
// Durability: writes skip RocksDB's WAL (Cairn's own WAL is the durable log) and
// atomic_flush is on, so RocksDB persists every family at the same batch boundary: Flush()
// (or an automatic flush, or closing the engine) persists all families atomically, and after
// a crash the database holds exactly the batches written before one such boundary.
// CompactRange() flushes first, so it is a durable point too. See docs/formats/storage.md.
//
// Compaction filter: the factory from EngineOptions runs in every compaction of every
// family (background ones included), never in flushes. full_compaction is true when RocksDB
// compacts every file of the family, and, during CompactRange(), when a compaction holds
// every version of the range's keys that is older than the newest one it holds (checked
// against the files' sequence numbers; conservative). Such a filter is shown only the keys
// in [begin, end). CompactRange() makes sure one full pass over the range happened when
// the range has data in files (it retries once if a background compaction moved the range
// under it). The factory may be called from several background threads at once; each
// filter it creates is used by one thread (max_subcompactions is 1, so one filter sees a
// whole compaction in key order). Snapshots do not protect entries from the filter (a
// RocksDB rule): a snapshot may stop seeing an entry that the filter dropped.
//
// Thread-safety: as Engine. Closing (destroying the engine) flushes; snapshots and iterators
// must be gone by then.
#pragma once

#include <memory>

#include "src/base/result.h"
#include "src/storage/engine.h"

namespace cairn::storage {

class RocksDbEngine {
 public:
  // Opens (creating if missing) the database at options.path.
  // Errors: InvalidArgument for an empty path; IoError / Corruption from RocksDB.
  static Result<std::unique_ptr<Engine>> Open(const EngineOptions& options);

  RocksDbEngine() = delete;
};

}  // namespace cairn::storage
