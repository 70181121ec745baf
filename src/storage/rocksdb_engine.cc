#include "src/storage/rocksdb_engine.h"

#include <rocksdb/cache.h>
#include <rocksdb/compaction_filter.h>
#include <rocksdb/convenience.h>
#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/file_system.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/listener.h>
#include <rocksdb/memtablerep.h>
#include <rocksdb/metadata.h>
#include <rocksdb/options.h>
#include <rocksdb/slice.h>
#include <rocksdb/slice_transform.h>
#include <rocksdb/sst_file_writer.h>
#include <rocksdb/table.h>
#include <rocksdb/utilities/write_batch_with_index.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <functional>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "src/base/check.h"
#include "src/base/logging.h"
#include "src/storage/file_read_ahead.h"
#include "src/storage/narrow_flush_merge.h"
#include "src/storage/read_pool.h"

namespace cairn::storage {
namespace {

constexpr std::array<Family, kFamilyCount> kFamilies = {Family::kMeta,      Family::kKvLatest,
                                                        Family::kKvHistory, Family::kLease,
                                                        Family::kEvents,    Family::kEventIds};

// Hash buckets of a point-lookup family's memtable (EngineOptions::point_lookup_key_bytes):
// 2 MiB of bucket heads, zeroed when a memtable is created; a few entries per bucket for the
// ~1M keys a 64 MiB memtable holds.
constexpr size_t kPointLookupBuckets = 256 << 10;

// See CompactRange().
constexpr int kCompactRangePassesMax = 2;

// MultiGet splits its keys between the read threads (EngineOptions::read_threads) in shares
// of at least this many keys. Waking a helper costs a context switch each way; with fewer
// keys a share's reads gain less than that. With 10M keys, the first put pass after a
// cold start took 14.8 instead of 18.2 us of read-thread CPU per put (medians of three) with
// shares of at least 8 keys rather than 1 (docs/benchmarks.md, session 21).
constexpr size_t kReadShareMinKeys = 8;

// Write() sorts a batch (EngineOptions::sorted_batch_writes) from this many records: below,
// the inserts are too few and too far apart for the sort to pay.
constexpr size_t kSortedWriteMinRecords = 16;

size_t FamilyIndex(Family family) {
  size_t index = static_cast<size_t>(family);
  CAIRN_CHECK(index < kFamilyCount);
  return index;
}

std::string_view ToView(const rocksdb::Slice& slice) { return {slice.data(), slice.size()}; }
rocksdb::Slice ToSlice(std::string_view view) { return {view.data(), view.size()}; }

Status FromRocks(const rocksdb::Status& status) {
  if (status.ok()) return Status::Ok();
  if (status.IsCorruption()) return Status::Corruption(status.ToString());
  if (status.IsInvalidArgument()) return Status::InvalidArgument(status.ToString());
  return Status::IoError(status.ToString());
}

// ---------------------------------------------------------------------------------------
// Compaction filter adapter.

// One family's compaction state shared by CompactRange() and the filters RocksDB creates.
struct FamilyCompaction {
  std::mutex manual_mutex;  // held by CompactRange() for its whole run: one at a time
  std::mutex state_mutex;
  rocksdb::DB* db = nullptr;                      // GUARDED_BY(state_mutex); set after open
  rocksdb::ColumnFamilyHandle* handle = nullptr;  // GUARDED_BY(state_mutex)
  bool manual_active = false;                     // GUARDED_BY(state_mutex)
  std::string begin;                              // GUARDED_BY(state_mutex); empty = unbounded
  std::string end;                                // GUARDED_BY(state_mutex); empty = unbounded
  bool manual_full_pass = false;                  // GUARDED_BY(state_mutex)
};

bool Overlaps(const rocksdb::SstFileMetaData& file, const std::string& begin,
              const std::string& end) {
  return (end.empty() || file.smallestkey < end) && (begin.empty() || file.largestkey >= begin);
}

// Whether the running compaction that starts at `level` holds, for every key in
// [begin, end), every version older than the newest one it holds: true when each file that
// overlaps the range and is not an input of it (not a file of `level` being compacted) holds
// only newer entries. Conservative: false when unsure.
bool CompactionIsFullOverRange(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* handle, int level,
                               const std::string& begin, const std::string& end) {
  rocksdb::ColumnFamilyMetaData metadata;
  db->GetColumnFamilyMetaData(handle, &metadata);
  bool any_input = false;
  uint64_t newest_input = 0;
  for (const rocksdb::LevelMetaData& level_files : metadata.levels) {
    for (const rocksdb::SstFileMetaData& file : level_files.files) {
      if (level_files.level == level && file.being_compacted && Overlaps(file, begin, end)) {
        any_input = true;
        newest_input = std::max<uint64_t>(newest_input, file.largest_seqno);
      }
    }
  }
  if (!any_input) return false;
  for (const rocksdb::LevelMetaData& level_files : metadata.levels) {
    for (const rocksdb::SstFileMetaData& file : level_files.files) {
      if (level_files.level == level && file.being_compacted) continue;
      if (Overlaps(file, begin, end) && file.smallest_seqno <= newest_input) return false;
    }
  }
  return true;
}

// Wraps a storage::CompactionFilter. The storage filter is created at the first entry,
// where RocksDB tells the compaction's start level: a compaction is full when RocksDB says
// it covers every file, or when, during our CompactRange(), it is full over the requested
// range (see CompactionIsFullOverRange); then only keys in that range reach the filter.
class FilterAdapter final : public rocksdb::CompactionFilter {
 public:
  FilterAdapter(std::shared_ptr<storage::CompactionFilterFactory> factory, Family family,
                bool full_compaction, std::shared_ptr<FamilyCompaction> state)
      : factory_(std::move(factory)),
        family_(family),
        full_compaction_(full_compaction),
        state_(std::move(state)) {}

  bool Filter(int level, const rocksdb::Slice& key, const rocksdb::Slice& existing_value,
              std::string* new_value, bool* value_changed) const override {
    if (!created_) Create(level);
    if (filter_ == nullptr) return false;
    std::string_view view = ToView(key);
    if (restricted_ && (view < begin_ || (!end_.empty() && view >= end_))) return false;
    return filter_->ShouldDrop(view, ToView(existing_value));
  }

  const char* Name() const override { return "cairn.FilterAdapter"; }

 private:
  void Create(int level) const {
    created_ = true;
    bool full = full_compaction_;
    if (!full && state_ != nullptr) {
      std::lock_guard lock(state_->state_mutex);
      if (state_->manual_active && CompactionIsFullOverRange(state_->db, state_->handle, level,
                                                             state_->begin, state_->end)) {
        full = true;
        restricted_ = true;
        begin_ = state_->begin;
        end_ = state_->end;
      }
    }
    if (full && state_ != nullptr) {
      std::lock_guard lock(state_->state_mutex);
      if (state_->manual_active) state_->manual_full_pass = true;
    }
    filter_ = factory_->Create(family_, full);
  }

  const std::shared_ptr<storage::CompactionFilterFactory> factory_;
  const Family family_;
  const bool full_compaction_;
  const std::shared_ptr<FamilyCompaction> state_;  // nullptr unless manual
  // RocksDB calls Filter() on a const object, from one thread per filter instance.
  mutable bool created_ = false;
  mutable bool restricted_ = false;
  mutable std::string begin_;
  mutable std::string end_;
  mutable std::unique_ptr<storage::CompactionFilter> filter_;
};

class FilterFactoryAdapter final : public rocksdb::CompactionFilterFactory {
 public:
  FilterFactoryAdapter(std::shared_ptr<storage::CompactionFilterFactory> factory, Family family,
                       std::shared_ptr<FamilyCompaction> state)
      : factory_(std::move(factory)), family_(family), state_(std::move(state)) {}

  std::unique_ptr<rocksdb::CompactionFilter> CreateCompactionFilter(
      const rocksdb::CompactionFilter::Context& context) override {
    // A manual compaction is CompactRange's, unless the narrow-flush merger runs it: that
    // one is judged full only when RocksDB says so, like a background compaction.
    const bool compact_range = context.is_manual_compaction && !internal::InNarrowMerge();
    return std::make_unique<FilterAdapter>(factory_, family_, context.is_full_compaction,
                                           compact_range ? state_ : nullptr);
  }

  const char* Name() const override { return "cairn.FilterFactoryAdapter"; }

 private:
  const std::shared_ptr<storage::CompactionFilterFactory> factory_;
  const Family family_;
  const std::shared_ptr<FamilyCompaction> state_;
};

// ---------------------------------------------------------------------------------------
// Iterators, snapshots, batches.

// Wraps a RocksDB iterator (plain or batch-merged) and enforces [lower, upper) itself:
// WriteBatchWithIndex's merged iterator honors only part of the bounds in RocksDB 7.8.
// The bounds are also given to the base iterator so that it stops early.
class BoundedIterator final : public Iterator {
 public:
  // The bound slices in read_options() point into this object.
  BoundedIterator(const storage::ReadOptions& options, const rocksdb::Snapshot* snapshot)
      : lower_(options.lower_bound), upper_(options.upper_bound) {
    lower_slice_ = ToSlice(lower_);
    upper_slice_ = ToSlice(upper_);
    read_options_.snapshot = snapshot;
    read_options_.fill_cache = options.fill_cache;
    // Every iterator is a key-order scan, also over point-lookup families (prefix extractor).
    read_options_.total_order_seek = true;
    if (!lower_.empty()) read_options_.iterate_lower_bound = &lower_slice_;
    if (!upper_.empty()) read_options_.iterate_upper_bound = &upper_slice_;
  }
  // For the base iterator and the merged iterator, which keep pointers into it.
  const rocksdb::ReadOptions& read_options() const { return read_options_; }
  // Takes ownership. REQUIRES: called once, before any other method.
  void SetInner(rocksdb::Iterator* inner) { inner_.reset(inner); }

  bool Valid() const override {
    if (!inner_->Valid()) return false;
    std::string_view key = ToView(inner_->key());
    return (lower_.empty() || key >= lower_) && (upper_.empty() || key < upper_);
  }
  void SeekToFirst() override {
    if (lower_.empty()) {
      inner_->SeekToFirst();
    } else {
      inner_->Seek(lower_slice_);
    }
  }
  void SeekToLast() override {
    if (upper_.empty()) {
      inner_->SeekToLast();
    } else {
      SeekBeforeUpper();
    }
  }
  void Seek(std::string_view target) override {
    if (!lower_.empty() && target < lower_) target = lower_;
    inner_->Seek(ToSlice(target));
  }
  void SeekForPrev(std::string_view target) override {
    if (!upper_.empty() && target >= upper_) return SeekBeforeUpper();
    inner_->SeekForPrev(ToSlice(target));
  }
  void Next() override {
    CAIRN_CHECK(Valid());
    inner_->Next();
  }
  void Prev() override {
    CAIRN_CHECK(Valid());
    inner_->Prev();
  }
  std::string_view key() const override {
    CAIRN_CHECK(Valid());
    return ToView(inner_->key());
  }
  std::string_view value() const override {
    CAIRN_CHECK(Valid());
    return ToView(inner_->value());
  }
  Status status() const override { return FromRocks(inner_->status()); }

 private:
  // The last key < upper_.
  void SeekBeforeUpper() {
    inner_->SeekForPrev(upper_slice_);
    if (inner_->Valid() && ToView(inner_->key()) >= upper_) inner_->Prev();
  }

  const std::string lower_;
  const std::string upper_;
  rocksdb::Slice lower_slice_;
  rocksdb::Slice upper_slice_;
  rocksdb::ReadOptions read_options_;
  std::unique_ptr<rocksdb::Iterator> inner_;  // declared last: destroyed first
};

class RocksDbSnapshot final : public Snapshot {
 public:
  RocksDbSnapshot(rocksdb::DB* db, const rocksdb::Snapshot* snapshot)
      : db(db), snapshot(snapshot) {}
  ~RocksDbSnapshot() override { db->ReleaseSnapshot(snapshot); }
  RocksDbSnapshot(const RocksDbSnapshot&) = delete;
  RocksDbSnapshot& operator=(const RocksDbSnapshot&) = delete;

  rocksdb::DB* const db;
  const rocksdb::Snapshot* const snapshot;
};

class RocksDbEngineImpl;

// Bytes written but not yet flushed to SST files. RocksDB's memtable properties count arena
// blocks (megabytes at a time), far from the data they hold, so the engine counts what it
// writes and what each flush covered.
class UnflushedBytes final : public rocksdb::EventListener {
 public:
  void OnFlushBegin(rocksdb::DB*, const rocksdb::FlushJobInfo&) override {
    flush_mark_.store(written_.load());
  }
  void OnFlushCompleted(rocksdb::DB*, const rocksdb::FlushJobInfo&) override {
    flushed_.store(flush_mark_.load());
  }
  void AddWritten(uint64_t bytes) { written_.fetch_add(bytes, std::memory_order_relaxed); }
  uint64_t Unflushed() const {
    const uint64_t written = written_.load(std::memory_order_relaxed);
    const uint64_t flushed = flushed_.load(std::memory_order_relaxed);
    return written > flushed ? written - flushed : 0;
  }

 private:
  std::atomic<uint64_t> written_{0};
  std::atomic<uint64_t> flush_mark_{0};
  std::atomic<uint64_t> flushed_{0};
};

class RocksDbWriteBatch final : public WriteBatch {
 public:
  explicit RocksDbWriteBatch(RocksDbEngineImpl* engine);

  void Put(Family family, std::string_view key, std::string_view value) override;
  void PutUnread(Family family, std::string_view key, std::string_view value) override;
  void PutSeldomRead(Family family, std::string_view key, std::string_view value) override;
  void Delete(Family family, std::string_view key) override;
  Result<bool> Get(Family family, std::string_view key, std::string* value) override;
  std::unique_ptr<Iterator> NewIterator(Family family, const ReadOptions& options) override;
  void SetSavePoint() override { batch_.SetSavePoint(); }
  Status RollbackToSavePoint() override {
    rocksdb::Status status = batch_.RollbackToSavePoint();
    if (status.IsNotFound()) return Status::NotFound("no save point to roll back to");
    if (status.ok()) unindexed_families_ = 0;  // the rollback re-indexed what is left
    return FromRocks(status);
  }
  void PopSavePoint() override {
    rocksdb::Status status = batch_.PopSavePoint();
    CAIRN_CHECK_MSG(status.ok(), "PopSavePoint without a save point");
  }
  size_t Count() const override { return batch_.GetWriteBatch()->Count(); }
  size_t ByteSize() const override { return batch_.GetDataSize(); }
  void Clear() override {
    batch_.Clear();
    unindexed_families_ = 0;
    read_families_ = 0;
  }

  RocksDbEngineImpl* engine() const { return engine_; }
  rocksdb::WriteBatch* rep() { return batch_.GetWriteBatch(); }

 private:
  // Before a read of `family` through the batch: indexes its PutSeldomRead writes (and
  // everything else in the batch) when there are any.
  void IndexForRead(Family family);

  RocksDbEngineImpl* const engine_;
  mutable rocksdb::WriteBatchWithIndex batch_;  // mutable: GetWriteBatch() is not const
  // Bit FamilyIndex(f): the batch holds PutSeldomRead writes to f that the index lacks.
  uint32_t unindexed_families_ = 0;
  // Bit FamilyIndex(f): f was read through the batch; its PutSeldomRead writes are indexed.
  uint32_t read_families_ = 0;
};

// ---------------------------------------------------------------------------------------
// The engine.

class RocksDbEngineImpl final : public Engine {
 public:
  static Result<std::unique_ptr<Engine>> Open(const EngineOptions& options);
  ~RocksDbEngineImpl() override;
  RocksDbEngineImpl(const RocksDbEngineImpl&) = delete;
  RocksDbEngineImpl& operator=(const RocksDbEngineImpl&) = delete;

  Result<bool> Get(const ReadOptions& options, Family family, std::string_view key,
                   std::string* value) override;
  Status MultiGet(const ReadOptions& options, Family family, std::span<const std::string_view> keys,
                  std::vector<std::optional<std::string>>* values) override;
  std::unique_ptr<Iterator> NewIterator(const ReadOptions& options, Family family) override;
  std::shared_ptr<const Snapshot> GetSnapshot() override;
  std::unique_ptr<WriteBatch> NewWriteBatch() override;
  Status Write(WriteBatch* batch) override;
  Status Flush() override;
  Status CompactRange(Family family, std::string_view begin, std::string_view end) override;
  uint64_t ApproximateSizeBytes() override;
  EngineStats Stats() override;
  Result<std::unique_ptr<ContentsReplacement>> NewContentsReplacement(
      const std::string& temporary_file_prefix) override;

  rocksdb::DB* db() const { return db_; }
  rocksdb::ColumnFamilyHandle* handle(Family family) const { return handles_[FamilyIndex(family)]; }
  const rocksdb::Snapshot* RocksSnapshot(const ReadOptions& options) const;
  std::unique_ptr<Iterator> NewIteratorImpl(const ReadOptions& options, Family family,
                                            rocksdb::WriteBatchWithIndex* batch);

 private:
  RocksDbEngineImpl() = default;

  // The file system and the Env over it (EngineOptions::read_ahead), or null. The
  // destructor deletes the database in its body, before these go.
  std::shared_ptr<internal::ReadAheadFileSystem> read_ahead_;
  std::unique_ptr<rocksdb::Env> env_;
  rocksdb::DB* db_ = nullptr;
  std::array<rocksdb::ColumnFamilyHandle*, kFamilyCount> handles_{};
  std::vector<rocksdb::ColumnFamilyHandle*> other_handles_;  // default + unknown families
  std::array<std::shared_ptr<FamilyCompaction>, kFamilyCount> compaction_;
  // Writes `batch` with the records of the families in sorted_writes_ in key order. False
  // when the batch holds a record it cannot reorder; nothing is written then.
  Result<bool> WriteSorted(const rocksdb::WriteBatch& batch);

  // Reads `keys`, split between the calling thread and read_pool_, into (*values)[i] (when
  // found) and statuses[i].
  void MultiGetOnReadThreads(const rocksdb::ReadOptions& read_options,
                             rocksdb::ColumnFamilyHandle* family,
                             std::span<const rocksdb::Slice> keys,
                             std::vector<std::optional<std::string>>* values,
                             std::span<rocksdb::Status> statuses);

  rocksdb::WriteOptions write_options_;
  std::unique_ptr<internal::ReadPool> read_pool_;  // null without EngineOptions::read_threads
  std::shared_ptr<UnflushedBytes> unflushed_ = std::make_shared<UnflushedBytes>();
  // EngineOptions::merge_narrow_flushes, or null. Stopped first by the destructor.
  std::shared_ptr<internal::NarrowFlushMerger> narrow_merger_;
  // Each family's RocksDB column family id, by FamilyIndex.
  std::array<uint32_t, kFamilyCount> family_ids_{};
  // The families written in key order (EngineOptions::sorted_batch_writes).
  std::array<bool, kFamilyCount> sorted_writes_{};
  bool any_sorted_writes_ = false;
};

rocksdb::CompressionType ChooseCompression() {
  std::vector<rocksdb::CompressionType> supported = rocksdb::GetSupportedCompressions();
  for (rocksdb::CompressionType type : {rocksdb::kLZ4Compression, rocksdb::kSnappyCompression}) {
    if (std::find(supported.begin(), supported.end(), type) != supported.end()) return type;
  }
  return rocksdb::kNoCompression;
}

std::string_view CompressionName(rocksdb::CompressionType type) {
  switch (type) {
    case rocksdb::kLZ4Compression:
      return "lz4";
    case rocksdb::kSnappyCompression:
      return "snappy";
    case rocksdb::kNoCompression:
      return "none";
    default:
      return "other";
  }
}

rocksdb::DBOptions MakeDbOptions() {
  rocksdb::DBOptions options;
  options.create_if_missing = true;
  options.create_missing_column_families = true;
  // Writes skip RocksDB's WAL; atomic flush keeps every family at the same batch boundary.
  options.atomic_flush = true;
  options.avoid_flush_during_shutdown = false;
  options.max_background_jobs = 2;
  // One writer (the applier): the concurrent memtable insert buys nothing, and insert hints
  // (EngineOptions::sequential_key_tags) work only without it.
  options.allow_concurrent_memtable_write = false;
  options.bytes_per_sync = 1 << 20;  // smooth SST write-back instead of bursts at fsync
  options.keep_log_file_num = 4;     // RocksDB's info LOG files
  options.max_log_file_size = 16 << 20;
  return options;
}

// The insert-hint prefix of a key (the memtable keeps one insert position per prefix): its
// first byte, for keys whose first byte is one of `tags` (EngineOptions::sequential_key_tags);
// the empty prefix for every other key when `other_keys_hinted` (a family whose batches are
// written in key order: EngineOptions::sorted_batch_writes); otherwise no hint.
class TagPrefix final : public rocksdb::SliceTransform {
 public:
  TagPrefix(std::string tags, bool other_keys_hinted)
      : tags_(std::move(tags)), other_keys_hinted_(other_keys_hinted) {}
  const char* Name() const override { return "cairn.TagPrefix"; }
  rocksdb::Slice Transform(const rocksdb::Slice& key) const override {
    return rocksdb::Slice(key.data(), Tagged(key) ? 1 : 0);
  }
  bool InDomain(const rocksdb::Slice& key) const override {
    return other_keys_hinted_ || Tagged(key);
  }

 private:
  bool Tagged(const rocksdb::Slice& key) const {
    return !key.empty() && tags_.find(key[0]) != std::string::npos;
  }

  const std::string tags_;
  const bool other_keys_hinted_;
};

// A batch's records, collected to be written again in another order (Write()). Only puts and
// deletes of Cairn's families: any other record (which Cairn does not write) fails the
// collection, and the batch is then written as it is.
class RecordCollector final : public rocksdb::WriteBatch::Handler {
 public:
  struct Record {
    size_t family;  // FamilyIndex
    bool is_delete;
    rocksdb::Slice key;
    rocksdb::Slice value;
  };

  // family_ids: each family's RocksDB column family id, by FamilyIndex.
  explicit RecordCollector(const std::array<uint32_t, kFamilyCount>& family_ids)
      : family_ids_(family_ids) {}

  rocksdb::Status PutCF(uint32_t id, const rocksdb::Slice& key,
                        const rocksdb::Slice& value) override {
    return Add(id, false, key, value);
  }
  rocksdb::Status DeleteCF(uint32_t id, const rocksdb::Slice& key) override {
    return Add(id, true, key, rocksdb::Slice());
  }
  void LogData(const rocksdb::Slice& /*blob*/) override { unsupported_ = true; }
  bool Continue() override { return !unsupported_; }

  bool unsupported() const { return unsupported_; }
  std::vector<Record>& records() { return records_; }

 private:
  rocksdb::Status Add(uint32_t id, bool is_delete, const rocksdb::Slice& key,
                      const rocksdb::Slice& value) {
    auto family = std::find(family_ids_.begin(), family_ids_.end(), id);
    if (family == family_ids_.end()) {
      unsupported_ = true;  // not one of Cairn's families
    } else {
      records_.push_back(
          {static_cast<size_t>(family - family_ids_.begin()), is_delete, key, value});
    }
    return rocksdb::Status::OK();
  }

  const std::array<uint32_t, kFamilyCount>& family_ids_;
  std::vector<Record> records_;
  bool unsupported_ = false;
};

// scanned_only: EngineOptions::scanned_only (no Bloom filters).
rocksdb::ColumnFamilyOptions MakeFamilyOptions(const EngineOptions& engine_options,
                                               const std::shared_ptr<rocksdb::Cache>& cache,
                                               bool scanned_only = false) {
  rocksdb::BlockBasedTableOptions table;
  table.block_cache = cache;
  if (!scanned_only) table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  table.whole_key_filtering = true;
  table.cache_index_and_filter_blocks = true;
  table.cache_index_and_filter_blocks_with_high_priority = true;
  table.pin_l0_filter_and_index_blocks_in_cache = true;
  table.data_block_index_type = rocksdb::BlockBasedTableOptions::kDataBlockBinaryAndHash;
  table.optimize_filters_for_memory = true;
  table.format_version = 5;

  rocksdb::ColumnFamilyOptions options;
  options.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  options.write_buffer_size = engine_options.write_buffer_bytes;
  options.max_write_buffer_number = 4;
  // A memtable bloom for point misses.
  options.memtable_prefix_bloom_size_ratio = scanned_only ? 0 : 0.02;
  options.memtable_whole_key_filtering = !scanned_only;
  options.level_compaction_dynamic_level_bytes = true;
  // Merge L0 into the base level every 8 files instead of RocksDB's 4. A merge rewrites the
  // whole base level whatever it takes in (random keys overlap all of it), so this halves the
  // merges per write. With 10M keys, 2.4M random puts took 28 % less compaction CPU
  // (docs/benchmarks.md, session 18). Point reads probe at most 8 pinned L0 filters; the stall
  // triggers (20, 36) are unchanged.
  options.level0_file_num_compaction_trigger = 8;
  // Hot levels (recent writes, rewritten often) stay uncompressed; the rest use LZ4, cheap
  // to decompress on point reads.
  rocksdb::CompressionType cold = ChooseCompression();
  options.compression_per_level.assign(options.num_levels, cold);
  options.compression_per_level[0] = rocksdb::kNoCompression;
  options.compression_per_level[1] = rocksdb::kNoCompression;
  return options;
}

Result<std::unique_ptr<Engine>> RocksDbEngineImpl::Open(const EngineOptions& options) {
  if (options.path.empty()) return Status::InvalidArgument("RocksDbEngine: empty path");
  rocksdb::DBOptions db_options = MakeDbOptions();
  std::unique_ptr<RocksDbEngineImpl> engine(new RocksDbEngineImpl());
  db_options.listeners.push_back(engine->unflushed_);
  if (options.merge_narrow_flushes) {
    engine->narrow_merger_ = std::make_shared<internal::NarrowFlushMerger>();
    db_options.listeners.push_back(engine->narrow_merger_);
  }
  if (options.read_ahead.enabled) {
    engine->read_ahead_ = std::make_shared<internal::ReadAheadFileSystem>(
        rocksdb::FileSystem::Default(), options.path, options.read_ahead);
    engine->env_ = rocksdb::NewCompositeEnv(engine->read_ahead_);
    db_options.env = engine->env_.get();
  }
  std::shared_ptr<rocksdb::Cache> cache = rocksdb::NewLRUCache(options.block_cache_bytes);
  rocksdb::ColumnFamilyOptions base_options = MakeFamilyOptions(options, cache);

  std::vector<std::string> existing;
  rocksdb::Status listed =
      rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions(), options.path, &existing);
  if (!listed.ok()) existing.clear();  // a new database

  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  for (Family family : kFamilies) {
    size_t index = FamilyIndex(family);
    engine->compaction_[index] = std::make_shared<FamilyCompaction>();
    rocksdb::ColumnFamilyOptions family_options =
        options.scanned_only[index] ? MakeFamilyOptions(options, cache, /*scanned_only=*/true)
                                    : base_options;
    if (options.compaction_filter_factory != nullptr) {
      family_options.compaction_filter_factory = std::make_shared<FilterFactoryAdapter>(
          options.compaction_filter_factory, family, engine->compaction_[index]);
    }
    if (!options.sequential_key_tags[index].empty() || options.sorted_batch_writes[index]) {
      family_options.memtable_insert_with_hint_prefix_extractor = std::make_shared<TagPrefix>(
          options.sequential_key_tags[index], options.sorted_batch_writes[index]);
    }
    if (options.point_lookup_key_bytes[index] > 0) {
      // The hash memtable needs a prefix extractor; the whole (fixed-size) key is the prefix,
      // so SST filters stay whole-key filters.
      family_options.prefix_extractor.reset(
          rocksdb::NewFixedPrefixTransform(options.point_lookup_key_bytes[index]));
      family_options.memtable_factory.reset(
          rocksdb::NewHashLinkListRepFactory(kPointLookupBuckets));
      // The memtable bloom adds a key's prefix and, with whole-key filtering, the key again:
      // here they are the same bytes, so the prefix alone (one bloom update per insert).
      family_options.memtable_whole_key_filtering = false;
    }
    descriptors.emplace_back(std::string(FamilyName(family)), family_options);
  }
  // RocksDB requires opening every family the database has.
  descriptors.emplace_back(rocksdb::kDefaultColumnFamilyName, base_options);
  for (const std::string& name : existing) {
    auto same = [&](const rocksdb::ColumnFamilyDescriptor& d) { return d.name == name; };
    if (std::none_of(descriptors.begin(), descriptors.end(), same)) {
      descriptors.emplace_back(name, base_options);
    }
  }

  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::Status status =
      rocksdb::DB::Open(db_options, options.path, descriptors, &handles, &engine->db_);
  if (!status.ok()) return FromRocks(status).WithContext("open " + options.path);
  // Flushes and compactions run at a lower CPU priority than the applier and the request
  // threads: on a small machine they otherwise take the core an acknowledgment waits for.
  (void)db_options.env->LowerThreadPoolCPUPriority(rocksdb::Env::Priority::HIGH,
                                                   rocksdb::CpuPriority::kLow);
  (void)db_options.env->LowerThreadPoolCPUPriority(rocksdb::Env::Priority::LOW,
                                                   rocksdb::CpuPriority::kLow);
  CAIRN_CHECK(handles.size() == descriptors.size());
  for (size_t i = 0; i < handles.size(); ++i) {
    if (i < kFamilyCount) {
      engine->handles_[i] = handles[i];
      engine->family_ids_[i] = handles[i]->GetID();
      engine->sorted_writes_[i] = options.sorted_batch_writes[i];
      engine->any_sorted_writes_ |= options.sorted_batch_writes[i];
      std::lock_guard lock(engine->compaction_[i]->state_mutex);
      engine->compaction_[i]->db = engine->db_;
      engine->compaction_[i]->handle = handles[i];
    } else {
      engine->other_handles_.push_back(handles[i]);
    }
  }
  engine->write_options_.disableWAL = true;
  if (engine->narrow_merger_ != nullptr) {
    engine->narrow_merger_->Start(
        engine->db_, std::vector<rocksdb::ColumnFamilyHandle*>(engine->handles_.begin(),
                                                               engine->handles_.end()));
  }
  if (options.read_threads > 0) {
    engine->read_pool_ = std::make_unique<internal::ReadPool>(options.read_threads, "cairn-read");
  }
  log::Get("storage")->info("opened RocksDB at {} ({} families, compression {})", options.path,
                            handles.size(), CompressionName(ChooseCompression()));
  return std::unique_ptr<Engine>(std::move(engine));
}

RocksDbEngineImpl::~RocksDbEngineImpl() {
  if (db_ == nullptr) return;
  if (narrow_merger_ != nullptr) narrow_merger_->Stop();  // it uses the handles
  Status flushed = Flush();
  if (!flushed.ok()) log::Get("storage")->error("flush on close: {}", flushed.ToString());
  for (rocksdb::ColumnFamilyHandle* handle : handles_) {
    if (handle != nullptr) db_->DestroyColumnFamilyHandle(handle);
  }
  for (rocksdb::ColumnFamilyHandle* handle : other_handles_) db_->DestroyColumnFamilyHandle(handle);
  rocksdb::Status closed = db_->Close();
  if (!closed.ok()) log::Get("storage")->error("close: {}", closed.ToString());
  delete db_;
}

const rocksdb::Snapshot* RocksDbEngineImpl::RocksSnapshot(const ReadOptions& options) const {
  if (options.snapshot == nullptr) return nullptr;
  const auto* snapshot = dynamic_cast<const RocksDbSnapshot*>(options.snapshot);
  CAIRN_CHECK_MSG(snapshot != nullptr && snapshot->db == db_,
                  "snapshot does not belong to this engine");
  return snapshot->snapshot;
}

Result<bool> RocksDbEngineImpl::Get(const ReadOptions& options, Family family, std::string_view key,
                                    std::string* value) {
  rocksdb::ReadOptions read_options;
  read_options.snapshot = RocksSnapshot(options);
  rocksdb::PinnableSlice pinned;
  internal::PointReadScope point_read;
  rocksdb::Status status = db_->Get(read_options, handle(family), ToSlice(key), &pinned);
  if (status.IsNotFound()) return false;
  if (!status.ok()) return FromRocks(status);
  if (value != nullptr) value->assign(pinned.data(), pinned.size());
  return true;
}

Status RocksDbEngineImpl::MultiGet(const ReadOptions& options, Family family,
                                   std::span<const std::string_view> keys,
                                   std::vector<std::optional<std::string>>* values) {
  values->assign(keys.size(), std::nullopt);
  if (keys.empty()) return Status::Ok();
  rocksdb::ReadOptions read_options;
  read_options.snapshot = RocksSnapshot(options);
  std::vector<rocksdb::Slice> slices;
  slices.reserve(keys.size());
  for (std::string_view key : keys) slices.push_back(ToSlice(key));
  std::vector<rocksdb::Status> statuses(keys.size());
  internal::PointReadScope point_read;
  if (read_pool_ != nullptr && keys.size() >= 2 * kReadShareMinKeys) {
    // No snapshot is taken for a read without one: releasing it makes RocksDB look for
    // bottommost files whose sequence numbers it may zero, and rewrite each such file (the
    // files a sequential load moved down without rewriting them, for one).
    // Every key is split off, cached or not: first asking the block cache alone
    // (ReadOptions::read_tier = kBlockCacheTier) is not reliable, as RocksDB 7.8's MultiGet
    // then answers some keys of a snapshot read OK with an empty value (seen with a 0-byte
    // block cache).
    MultiGetOnReadThreads(read_options, handle(family), slices, values, statuses);
  } else {
    std::vector<rocksdb::PinnableSlice> pinned(keys.size());
    db_->MultiGet(read_options, handle(family), keys.size(), slices.data(), pinned.data(),
                  statuses.data());
    for (size_t i = 0; i < keys.size(); ++i) {
      if (statuses[i].ok()) (*values)[i].emplace(pinned[i].data(), pinned[i].size());
    }
  }
  for (const rocksdb::Status& status : statuses) {
    if (!status.ok() && !status.IsNotFound()) return FromRocks(status);
  }
  return Status::Ok();
}

void RocksDbEngineImpl::MultiGetOnReadThreads(const rocksdb::ReadOptions& read_options,
                                              rocksdb::ColumnFamilyHandle* family,
                                              std::span<const rocksdb::Slice> keys,
                                              std::vector<std::optional<std::string>>* values,
                                              std::span<rocksdb::Status> statuses) {
  // Each share reads and writes only its own keys' entries of `values` and `statuses`.
  auto read = [&](size_t begin, size_t end) {
    internal::PointReadScope point_read;  // on a helper thread too
    std::vector<rocksdb::PinnableSlice> found(end - begin);
    db_->MultiGet(read_options, family, end - begin, keys.data() + begin, found.data(),
                  statuses.data() + begin);
    for (size_t i = begin; i < end; ++i) {
      if (statuses[i].ok()) (*values)[i].emplace(found[i - begin].data(), found[i - begin].size());
    }
  };
  // Contiguous shares (the caller's keys are in key order, and neighbours share blocks), at
  // most one per thread, the caller's included, and at least kReadShareMinKeys keys each;
  // their sizes differ by one at most.
  const size_t shares = std::min(keys.size() / kReadShareMinKeys, read_pool_->threads() + 1);
  std::vector<std::function<void()>> pieces;
  pieces.reserve(shares);
  for (size_t share = 0; share < shares; ++share) {
    const size_t begin = keys.size() * share / shares;
    const size_t end = keys.size() * (share + 1) / shares;
    pieces.emplace_back([&read, begin, end] { read(begin, end); });
  }
  read_pool_->RunAll(pieces);
}

std::unique_ptr<Iterator> RocksDbEngineImpl::NewIteratorImpl(const ReadOptions& options,
                                                             Family family,
                                                             rocksdb::WriteBatchWithIndex* batch) {
  auto iterator = std::make_unique<BoundedIterator>(options, RocksSnapshot(options));
  rocksdb::Iterator* base = db_->NewIterator(iterator->read_options(), handle(family));
  if (batch == nullptr) {
    iterator->SetInner(base);
  } else {
    iterator->SetInner(batch->NewIteratorWithBase(handle(family), base, &iterator->read_options()));
  }
  return iterator;
}

std::unique_ptr<Iterator> RocksDbEngineImpl::NewIterator(const ReadOptions& options,
                                                         Family family) {
  return NewIteratorImpl(options, family, nullptr);
}

std::shared_ptr<const Snapshot> RocksDbEngineImpl::GetSnapshot() {
  return std::make_shared<const RocksDbSnapshot>(db_, db_->GetSnapshot());
}

std::unique_ptr<WriteBatch> RocksDbEngineImpl::NewWriteBatch() {
  return std::make_unique<RocksDbWriteBatch>(this);
}

Status RocksDbEngineImpl::Write(WriteBatch* batch) {
  auto* rocks_batch = dynamic_cast<RocksDbWriteBatch*>(batch);
  CAIRN_CHECK_MSG(rocks_batch != nullptr && rocks_batch->engine() == this,
                  "batch does not belong to this engine");
  if (rocks_batch->Count() == 0) return Status::Ok();
  unflushed_->AddWritten(rocks_batch->rep()->GetDataSize());
  if (any_sorted_writes_ && rocks_batch->Count() >= kSortedWriteMinRecords) {
    CAIRN_ASSIGN_OR_RETURN(bool written, WriteSorted(*rocks_batch->rep()));
    if (written) return Status::Ok();
  }
  return FromRocks(db_->Write(write_options_, rocks_batch->rep()));
}

Result<bool> RocksDbEngineImpl::WriteSorted(const rocksdb::WriteBatch& batch) {
  RecordCollector collector(family_ids_);
  if (!batch.Iterate(&collector).ok() || collector.unsupported()) return false;
  std::vector<RecordCollector::Record>& records = collector.records();
  // A batch is applied atomically, so only the order of one key's records matters: the sort
  // is stable, and the other families' records keep their order (they all compare equal).
  std::stable_sort(records.begin(), records.end(),
                   [this](const RecordCollector::Record& a, const RecordCollector::Record& b) {
                     const bool a_sorted = sorted_writes_[a.family];
                     const bool b_sorted = sorted_writes_[b.family];
                     if (a_sorted != b_sorted) return b_sorted;
                     if (!a_sorted) return false;
                     if (a.family != b.family) return a.family < b.family;
                     return a.key.compare(b.key) < 0;
                   });
  rocksdb::WriteBatch sorted(batch.GetDataSize());
  for (const RecordCollector::Record& record : records) {
    rocksdb::ColumnFamilyHandle* family = handles_[record.family];
    rocksdb::Status status = record.is_delete ? sorted.Delete(family, record.key)
                                              : sorted.Put(family, record.key, record.value);
    if (!status.ok()) return FromRocks(status);
  }
  CAIRN_RETURN_IF_ERROR(FromRocks(db_->Write(write_options_, &sorted)));
  return true;
}

Status RocksDbEngineImpl::Flush() {
  rocksdb::FlushOptions flush_options;
  flush_options.wait = true;
  flush_options.allow_write_stall = true;
  std::vector<rocksdb::ColumnFamilyHandle*> handles(handles_.begin(), handles_.end());
  return FromRocks(db_->Flush(flush_options, handles));
}

Status RocksDbEngineImpl::CompactRange(Family family, std::string_view begin,
                                       std::string_view end) {
  FamilyCompaction& state = *compaction_[FamilyIndex(family)];
  std::lock_guard manual_lock(state.manual_mutex);
  // Flush all families first (one atomic flush) so the filter sees the latest writes.
  CAIRN_RETURN_IF_ERROR(Flush());
  {
    std::lock_guard lock(state.state_mutex);
    state.manual_active = true;
    state.manual_full_pass = false;
    state.begin = begin;
    state.end = end;
  }
  rocksdb::CompactRangeOptions compact_options;
  compact_options.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForce;
  compact_options.exclusive_manual_compaction = false;  // background compactions go on
  rocksdb::Slice begin_slice = ToSlice(begin);
  rocksdb::Slice end_slice = ToSlice(end);
  // RocksDB plans the levels to compact when the call starts; a background compaction that
  // moves the range deeper meanwhile leaves it unfiltered. Then a second pass, over data now
  // at rest, is the full one. A range with no data in files never gets a full pass.
  rocksdb::Status status;
  bool full_pass = false;
  for (int pass = 0; pass < kCompactRangePassesMax && !full_pass && status.ok(); ++pass) {
    status =
        db_->CompactRange(compact_options, handle(family), begin.empty() ? nullptr : &begin_slice,
                          end.empty() ? nullptr : &end_slice);
    std::lock_guard lock(state.state_mutex);
    full_pass = state.manual_full_pass;
  }
  std::lock_guard lock(state.state_mutex);
  state.manual_active = false;
  return FromRocks(status);
}

EngineStats RocksDbEngineImpl::Stats() {
  EngineStats stats;
  if (read_ahead_ != nullptr) {
    const internal::ReadAheadFileSystem::Stats read_ahead = read_ahead_->stats();
    stats.files_read_ahead = read_ahead.files_read_ahead;
    stats.bytes_read_ahead = read_ahead.bytes_read_ahead;
  }
  if (narrow_merger_ != nullptr) {
    const internal::NarrowFlushMerger::Stats merged = narrow_merger_->stats();
    stats.narrow_flushes_merged = merged.files_merged;
    stats.narrow_flush_bytes_merged = merged.bytes_merged;
  }
  return stats;
}

uint64_t RocksDbEngineImpl::ApproximateSizeBytes() {
  uint64_t total = 0;
  for (rocksdb::ColumnFamilyHandle* handle : handles_) {
    uint64_t value = 0;
    if (db_->GetIntProperty(handle, "rocksdb.live-sst-files-size", &value)) total += value;
  }
  return total + unflushed_->Unflushed();
}

RocksDbWriteBatch::RocksDbWriteBatch(RocksDbEngineImpl* engine)
    : engine_(engine),
      batch_(rocksdb::BytewiseComparator(), /*reserved_bytes=*/0, /*overwrite_key=*/true) {}

void RocksDbWriteBatch::Put(Family family, std::string_view key, std::string_view value) {
  rocksdb::Status status = batch_.Put(engine_->handle(family), ToSlice(key), ToSlice(value));
  CAIRN_CHECK_MSG(status.ok(), status.ToString().c_str());
}

void RocksDbWriteBatch::PutUnread(Family family, std::string_view key, std::string_view value) {
  // Straight into the batch's records, past the index: later reads of this batch miss it
  // (a rollback to a save point re-indexes everything, which is harmless).
  rocksdb::Status status =
      batch_.GetWriteBatch()->Put(engine_->handle(family), ToSlice(key), ToSlice(value));
  CAIRN_CHECK_MSG(status.ok(), status.ToString().c_str());
}

void RocksDbWriteBatch::PutSeldomRead(Family family, std::string_view key, std::string_view value) {
  const uint32_t bit = 1u << FamilyIndex(family);
  if ((read_families_ & bit) != 0) {
    Put(family, key, value);  // read once, likely read again: no second re-index
    return;
  }
  PutUnread(family, key, value);
  unindexed_families_ |= bit;
}

void RocksDbWriteBatch::IndexForRead(Family family) {
  read_families_ |= 1u << FamilyIndex(family);
  if ((unindexed_families_ & (1u << FamilyIndex(family))) == 0) return;
  // WriteBatchWithIndex rebuilds its index from the records on a rollback: a rollback to a
  // save point taken just now changes no record and indexes them all.
  batch_.SetSavePoint();
  rocksdb::Status status = batch_.RollbackToSavePoint();
  CAIRN_CHECK_MSG(status.ok(), status.ToString().c_str());
  unindexed_families_ = 0;
}

void RocksDbWriteBatch::Delete(Family family, std::string_view key) {
  rocksdb::Status status = batch_.Delete(engine_->handle(family), ToSlice(key));
  CAIRN_CHECK_MSG(status.ok(), status.ToString().c_str());
}

Result<bool> RocksDbWriteBatch::Get(Family family, std::string_view key, std::string* value) {
  IndexForRead(family);
  rocksdb::PinnableSlice pinned;
  internal::PointReadScope point_read;
  rocksdb::Status status = batch_.GetFromBatchAndDB(engine_->db(), rocksdb::ReadOptions(),
                                                    engine_->handle(family), ToSlice(key), &pinned);
  if (status.IsNotFound()) return false;
  if (!status.ok()) return FromRocks(status);
  if (value != nullptr) value->assign(pinned.data(), pinned.size());
  return true;
}

std::unique_ptr<Iterator> RocksDbWriteBatch::NewIterator(Family family,
                                                         const ReadOptions& options) {
  IndexForRead(family);
  return engine_->NewIteratorImpl(options, family, &batch_);
}

// RocksDbEngineImpl::NewContentsReplacement: one SST file per family holding a range
// deletion of every key the family has now (from the empty key to just past its last key)
// and the new records. The files are ingested in one IngestExternalFiles call, atomic across
// families; a file's records and its range deletion get the same sequence number, and at an
// equal sequence number RocksDB lets the point keys win, so the family ends up holding
// exactly the new records.
class SstReplacement final : public ContentsReplacement {
 public:
  SstReplacement(RocksDbEngineImpl* engine, std::string temporary_file_prefix)
      : engine_(engine), prefix_(std::move(temporary_file_prefix)) {}
  ~SstReplacement() override {
    for (auto& writer : writers_) {
      if (writer != nullptr) (void)writer->Finish();  // closes the file
    }
    if (!committed_) {
      for (const std::string& path : paths_) {
        if (!path.empty()) (void)rocksdb::Env::Default()->DeleteFile(path);
      }
    }
  }
  SstReplacement(const SstReplacement&) = delete;
  SstReplacement& operator=(const SstReplacement&) = delete;

  Status Add(Family family, std::string_view key, std::string_view value) override {
    CAIRN_CHECK(!committed_);
    CAIRN_ASSIGN_OR_RETURN(rocksdb::SstFileWriter * writer, Writer(family));
    has_entries_[FamilyIndex(family)] = true;
    return FromRocks(writer->Put(ToSlice(key), ToSlice(value)));
  }

  Status Commit() override {
    CAIRN_CHECK(!committed_);
    // Families the snapshot has no records for still lose their old keys.
    for (Family family : kFamilies) CAIRN_RETURN_IF_ERROR(Writer(family).status());
    std::vector<rocksdb::IngestExternalFileArg> args;
    for (Family family : kFamilies) {
      const size_t index = FamilyIndex(family);
      std::unique_ptr<rocksdb::SstFileWriter>& writer = writers_[index];
      if (!has_entries_[index] && !deletes_[index]) {
        writer.reset();  // nothing old, nothing new: no file (an empty one is refused)
        (void)rocksdb::Env::Default()->DeleteFile(paths_[index]);
        paths_[index].clear();
        continue;
      }
      CAIRN_RETURN_IF_ERROR(FromRocks(writer->Finish()));
      writer.reset();
      rocksdb::IngestExternalFileArg arg;
      arg.column_family = engine_->handle(family);
      arg.external_files = {paths_[index]};
      arg.options.move_files = true;
      arg.options.snapshot_consistency = true;
      arg.options.allow_global_seqno = true;
      arg.options.allow_blocking_flush = true;
      args.push_back(std::move(arg));
    }
    committed_ = true;
    if (!args.empty()) {
      CAIRN_RETURN_IF_ERROR(FromRocks(engine_->db()->IngestExternalFiles(args)));
    }
    for (const std::string& path : paths_) {
      if (!path.empty()) (void)rocksdb::Env::Default()->DeleteFile(path);
    }
    return engine_->Flush();
  }

 private:
  // The family's writer, opened (with the range deletion of its current keys) on first use.
  Result<rocksdb::SstFileWriter*> Writer(Family family) {
    const size_t index = FamilyIndex(family);
    if (writers_[index] != nullptr) return writers_[index].get();
    CAIRN_CHECK_MSG(paths_[index].empty(), "records out of family order");
    rocksdb::ColumnFamilyHandle* handle = engine_->handle(family);
    const rocksdb::Options options(engine_->db()->GetDBOptions(),
                                   engine_->db()->GetOptions(handle));
    auto writer = std::make_unique<rocksdb::SstFileWriter>(rocksdb::EnvOptions(), options, handle);
    paths_[index] = prefix_ + std::string(FamilyName(family)) + ".sst";
    // A file left at that path by a crash may be a hard link to an SST file the database
    // ingested (move_files links): unlink the name rather than truncate the shared file.
    rocksdb::Status removed = rocksdb::Env::Default()->DeleteFile(paths_[index]);
    if (!removed.ok() && !removed.IsNotFound() && !removed.IsPathNotFound()) {
      return FromRocks(removed);
    }
    CAIRN_RETURN_IF_ERROR(FromRocks(writer->Open(paths_[index])));
    writers_[index] = std::move(writer);
    rocksdb::ReadOptions read_options;
    read_options.fill_cache = false;
    std::unique_ptr<rocksdb::Iterator> it(engine_->db()->NewIterator(read_options, handle));
    it->SeekToLast();
    CAIRN_RETURN_IF_ERROR(FromRocks(it->status()));
    if (it->Valid()) {
      // Every key is >= "" and < last + "\0".
      std::string end = it->key().ToString();
      end.push_back('\0');
      CAIRN_RETURN_IF_ERROR(FromRocks(writers_[index]->DeleteRange(rocksdb::Slice(), end)));
      deletes_[index] = true;
    }
    return writers_[index].get();
  }

  RocksDbEngineImpl* const engine_;
  const std::string prefix_;
  std::array<std::unique_ptr<rocksdb::SstFileWriter>, kFamilyCount> writers_;
  std::array<std::string, kFamilyCount> paths_;
  std::array<bool, kFamilyCount> deletes_{};
  std::array<bool, kFamilyCount> has_entries_{};
  bool committed_ = false;
};

Result<std::unique_ptr<ContentsReplacement>> RocksDbEngineImpl::NewContentsReplacement(
    const std::string& temporary_file_prefix) {
  return std::unique_ptr<ContentsReplacement>(
      std::make_unique<SstReplacement>(this, temporary_file_prefix));
}

}  // namespace

Result<std::unique_ptr<Engine>> RocksDbEngine::Open(const EngineOptions& options) {
  return RocksDbEngineImpl::Open(options);
}

}  // namespace cairn::storage
