// Engine: the ordered key-value storage under Cairn's state machines.
//
// Data is split into fixed families (one RocksDB column family each). Writes go through a
// WriteBatch that is applied atomically across families; the batch can also be read
// ("read your own writes"), which the applier needs because it applies many commands into
// one batch and a later command must see an earlier one's changes.
//
// Durability contract: Write() makes a batch visible, not durable. Flush() makes every
// batch written before it durable, atomically across families: after a crash, the engine
// holds exactly the batches written before some Flush() (or automatic flush) boundary,
// never part of a batch. Cairn's own WAL (src/wal) is the durable record of commands; after
// a crash the node replays the log from the applied index the engine persisted.
//
// Implementations: RocksDbEngine (storage/rocksdb_engine.h) and MemoryEngine
// (storage/memory_engine.h, for simulation; it models the same crash semantics).
//
// Thread-safety: Engine methods are thread-safe. WriteBatch, Iterator and Snapshot objects
// are used by one thread at a time. Iterators and snapshots must be destroyed before the
// engine.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "src/base/result.h"
#include "src/base/status.h"

namespace cairn::storage {

// The families every engine holds. Values are stable: they name RocksDB column families.
enum class Family : uint8_t {
  kMeta = 0,       // applied index, revisions, format version: written with the state
  kKvLatest = 1,   // user key -> current record (live keys only)
  kKvHistory = 2,  // encoded(user key) + revision -> record or tombstone
  kLease = 3,      // leases and the keys attached to them (docs/formats/lease.md)
  kEvents = 4,     // event store: streams, events, indexes (docs/formats/events.md)
  kEventIds = 5,   // event store: event id -> its place (idempotent appends; point reads)
};
inline constexpr int kFamilyCount = 6;
std::string_view FamilyName(Family family);

// A consistent point-in-time view of the whole engine.
class Snapshot {
 public:
  virtual ~Snapshot() = default;
};

struct ReadOptions {
  // Read as of this snapshot; nullptr reads the latest written state.
  const Snapshot* snapshot = nullptr;
  // Iterators only: keys outside [lower_bound, upper_bound) are never returned. Empty means
  // unbounded. The referenced bytes must outlive the iterator.
  std::string_view lower_bound;
  std::string_view upper_bound;
  // Iterators only: false for scans that should not evict hot blocks from the cache.
  bool fill_cache = true;
};

class Iterator {
 public:
  virtual ~Iterator() = default;
  virtual bool Valid() const = 0;
  virtual void SeekToFirst() = 0;
  virtual void SeekToLast() = 0;
  // Positions at the first key >= target.
  virtual void Seek(std::string_view target) = 0;
  // Positions at the last key <= target.
  virtual void SeekForPrev(std::string_view target) = 0;
  virtual void Next() = 0;
  virtual void Prev() = 0;
  // REQUIRES: Valid(). The views stay valid until the iterator moves.
  virtual std::string_view key() const = 0;
  virtual std::string_view value() const = 0;
  // Not OK if an I/O error or corruption stopped the iteration.
  virtual Status status() const = 0;
};

// An atomic group of writes that can also be read before it is written.
class WriteBatch {
 public:
  virtual ~WriteBatch() = default;
  virtual void Put(Family family, std::string_view key, std::string_view value) = 0;
  virtual void Delete(Family family, std::string_view key) = 0;
  // A Put that Get and NewIterator of this batch may not see: for keys nothing reads before
  // the batch is written, each written once per batch. Cheaper: RocksDB does not index it.
  virtual void PutUnread(Family family, std::string_view key, std::string_view value) {
    Put(family, key, value);
  }
  // A Put whose key is seldom read back through this batch (each history record of a
  // command; a kv_latest record, which the apply thread reads back from its own map): Get and
  // NewIterator still see it. Cheaper when nothing reads its family before the batch is
  // written: RocksDB indexes it only when the family is next read through the batch,
  // re-indexing the whole batch then; after that read, the family's writes are indexed as
  // they come, so a batch re-indexes at most once per family.
  virtual void PutSeldomRead(Family family, std::string_view key, std::string_view value) {
    Put(family, key, value);
  }
  // Reads `key` as the engine would after this batch were written: batch first, then the
  // engine's latest state. Returns true and fills *value if found.
  virtual Result<bool> Get(Family family, std::string_view key, std::string* value) = 0;
  // Iterates the engine's latest state with this batch's writes merged on top.
  // The iterator must be destroyed before the batch is modified or written.
  virtual std::unique_ptr<Iterator> NewIterator(Family family, const ReadOptions& options) = 0;
  // Save points nest; RollbackToSavePoint undoes every write since the matching save point
  // (used so that a command that fails mid-apply leaves nothing behind).
  virtual void SetSavePoint() = 0;
  virtual Status RollbackToSavePoint() = 0;
  virtual void PopSavePoint() = 0;
  virtual size_t Count() const = 0;
  virtual size_t ByteSize() const = 0;
  virtual void Clear() = 0;
};

// Decides, during background compaction of one family, which entries to drop. One filter
// instance sees the entries of one compaction in key order; it may keep state across calls.
// It sees only the files being compacted, so it must drop an entry only when that entry is
// unreachable whatever other files hold.
class CompactionFilter {
 public:
  virtual ~CompactionFilter() = default;
  virtual bool ShouldDrop(std::string_view key, std::string_view value) = 0;
};

class CompactionFilterFactory {
 public:
  virtual ~CompactionFilterFactory() = default;
  // Returns nullptr when nothing in `family` can be dropped. `full_compaction` is true when
  // the compaction covers every file of the family.
  virtual std::unique_ptr<CompactionFilter> Create(Family family, bool full_compaction) = 0;
};

// Replaces the whole contents of an engine (every family) with records given in order, so
// that a large replacement need not be held in memory (a follower installing a snapshot).
// Nothing is visible until Commit, which makes the new contents visible atomically (readers
// see the old contents or the new ones, never a mix) and durable. Destroyed without a
// successful Commit, it changes nothing and removes its temporary files. The engine must not
// be written between NewContentsReplacement and Commit.
class ContentsReplacement {
 public:
  virtual ~ContentsReplacement() = default;
  // REQUIRES: (family, key) strictly increasing from call to call.
  virtual Status Add(Family family, std::string_view key, std::string_view value) = 0;
  virtual Status Commit() = 0;
};

// RocksDB: whole-file read-ahead of a table file that point reads keep finding missing from
// the page cache (src/storage/file_read_ahead.h, docs/decisions.md). MemoryEngine ignores it.
struct ReadAheadOptions {
  // Default: true.
  bool enabled = true;
  // A read of a table file, inside a point read, that takes at least this long counts as a
  // read from the disk (one from the page cache takes a few microseconds). Default: 40.
  uint32_t slow_read_micros = 40;
  // Reads from the disk of one file within one second that make it read ahead. Default: 16.
  uint32_t slow_reads_per_second = 16;
  // Read ahead only while the database's table files together take at most this many bytes.
  // Default: 0, meaning half of the memory the kernel reports available at the time.
  uint64_t memory_budget_bytes = 0;
};

struct EngineOptions {
  // Created if missing. Default: empty (required for RocksDB; ignored by MemoryEngine).
  std::string path;
  // Default: nullptr (nothing is ever filtered).
  std::shared_ptr<CompactionFilterFactory> compaction_filter_factory;
  // RocksDB block cache. Default: 256 MiB.
  size_t block_cache_bytes = 256ull << 20;
  // RocksDB memtable size per family. Default: 64 MiB.
  size_t write_buffer_bytes = 64ull << 20;
  // Per family: key tags (first bytes) whose keys are mostly written in increasing order
  // within a tag (an append's event, $all and index keys). The memtable keeps one insert
  // position per tag and starts the next insert there (RocksDB's insert hints), which makes
  // such inserts nearly O(1). Default: none.
  std::array<std::string, kFamilyCount> sequential_key_tags;
  // Per family: non-zero for a family whose keys are random (event ids) and, while in the
  // memtable, only read by point lookups; every key is at least this many bytes. RocksDB
  // keeps its memtable in a hash table of the keys' first `point_lookup_key_bytes` bytes, so
  // an insert costs O(1) instead of a skip-list search whose every level misses the cache.
  // Iterators still return the family in key order (at the cost of sorting the memtable
  // when one is created: snapshots and checks, not request paths). Default: 0 (a skip list).
  std::array<size_t, kFamilyCount> point_lookup_key_bytes{};
  // Per family: true for a family whose keys are written in random order (user keys).
  // Write() inserts a batch's records of such a family in key order, each insert starting
  // from the previous one's position (RocksDB's insert hints), so the N random keys of a
  // batch cost N short walks between neighbours instead of N skip-list searches from the top,
  // whose lower levels miss the cache. Default: false (records go in the order written).
  std::array<bool, kFamilyCount> sorted_batch_writes{};
  // Per family: true for a family read by iterators, not by point lookups (history records).
  // Its memtable and SST files keep no Bloom filter: a filter serves only point lookups of
  // absent keys, and adding a key to the memtable's costs each insert a cache miss. Point
  // lookups still work, without the shortcut. Default: false (filters kept).
  std::array<bool, kFamilyCount> scanned_only{};
  // RocksDB: helper threads for MultiGet. When some of the keys' blocks are not in the block
  // cache, MultiGet splits those keys between the calling thread and the helpers, so that
  // their reads from the files overlap; the rest are answered from the cache on the calling
  // thread. Default: 0 (every read on the calling thread). MemoryEngine ignores it.
  size_t read_threads = 0;
  // Default: ReadAheadOptions's defaults (on).
  ReadAheadOptions read_ahead;
  // RocksDB: the oldest flushed L0 files (one, or up to 4 whose ranges overlap) are merged
  // into the base level at once when they overlap no other L0 file and little of the base
  // level (keys written in order, as by a bulk load), instead
  // of waiting in L0 for RocksDB's merge of 8 files, which a later file of random keys makes
  // a merge of them all with the whole base level (src/storage/narrow_flush_merge.h).
  // Default: true. MemoryEngine ignores it.
  bool merge_narrow_flushes = true;
};

// What an engine reports about itself; totals since it was opened.
struct EngineStats {
  // Table files the kernel was asked to read whole (ReadAheadOptions), and their bytes.
  uint64_t files_read_ahead = 0;
  uint64_t bytes_read_ahead = 0;
  // Flushed L0 files merged into the base level at once (EngineOptions::merge_narrow_flushes),
  // and their bytes.
  uint64_t narrow_flushes_merged = 0;
  uint64_t narrow_flush_bytes_merged = 0;
};

class Engine {
 public:
  virtual ~Engine() = default;

  virtual Result<bool> Get(const ReadOptions& options, Family family, std::string_view key,
                           std::string* value) = 0;
  // Point reads of many keys of one family: (*values)[i] is keys[i]'s value, or nullopt when
  // absent. The default reads them one by one; RocksDB looks them up as one batch (sorted,
  // sharing index and filter lookups), or as several at once (EngineOptions::read_threads).
  // Without a snapshot the keys are not read at one point in time: a write made during the
  // call may be seen for some keys and not for others.
  virtual Status MultiGet(const ReadOptions& options, Family family,
                          std::span<const std::string_view> keys,
                          std::vector<std::optional<std::string>>* values);
  virtual std::unique_ptr<Iterator> NewIterator(const ReadOptions& options, Family family) = 0;
  virtual std::shared_ptr<const Snapshot> GetSnapshot() = 0;

  virtual std::unique_ptr<WriteBatch> NewWriteBatch() = 0;
  // Applies the batch atomically. Visible to readers when this returns; durable after the
  // next Flush(). REQUIRES: the batch came from this engine's NewWriteBatch().
  virtual Status Write(WriteBatch* batch) = 0;
  // Makes everything written so far durable, atomically across families.
  virtual Status Flush() = 0;

  // Compacts [begin, end) of a family (empty = unbounded), running the compaction filter
  // over it as a full compaction. Blocks until done; writes proceed meanwhile.
  virtual Status CompactRange(Family family, std::string_view begin, std::string_view end) = 0;
  // Bytes the engine occupies on disk (or in memory for MemoryEngine), approximately.
  virtual uint64_t ApproximateSizeBytes() = 0;
  // The default reports zeros (an engine without files).
  virtual EngineStats Stats() { return {}; }
  // A replacement of the whole contents (ContentsReplacement). Temporary files, if any, are
  // named `temporary_file_prefix` + a suffix (their directory must exist). The default holds
  // the replacement in one write batch (deletes of every key, then the new records) written
  // and flushed by Commit: its memory grows with the contents. RocksDbEngine writes one SST
  // file per family (a range deletion of the family's old keys plus the new records) and
  // ingests them all in one atomic ingestion: its memory is RocksDB's SST writer buffers.
  virtual Result<std::unique_ptr<ContentsReplacement>> NewContentsReplacement(
      const std::string& temporary_file_prefix);
};

}  // namespace cairn::storage
