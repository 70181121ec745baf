#include "src/storage/narrow_flush_merge.h"

#include <pthread.h>
#include <rocksdb/comparator.h>
#include <rocksdb/options.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>

#include "src/base/check.h"
#include "src/base/logging.h"

namespace cairn::storage::internal {

namespace {

// Merges per look at a family at most: a flush adds one file per family, so more than a few
// qualify only after files another compaction held are released.
constexpr int kMaxMergesPerLook = 16;

thread_local bool in_narrow_merge = false;

bool RangesOverlap(const rocksdb::SstFileMetaData& a, const rocksdb::SstFileMetaData& b,
                   const rocksdb::Comparator& comparator) {
  return comparator.Compare(a.smallestkey, b.largestkey) <= 0 &&
         comparator.Compare(b.smallestkey, a.largestkey) <= 0;
}

}  // namespace

bool InNarrowMerge() { return in_narrow_merge; }

std::optional<NarrowMerge> PickNarrowL0File(const rocksdb::ColumnFamilyMetaData& metadata,
                                            const rocksdb::Comparator& comparator) {
  if (metadata.levels.size() < 2 || metadata.levels[0].files.empty()) return std::nullopt;
  const std::vector<rocksdb::SstFileMetaData>& l0 = metadata.levels[0].files;
  size_t base = metadata.levels.size() - 1;
  for (size_t level = 1; level < metadata.levels.size(); ++level) {
    if (!metadata.levels[level].files.empty()) {
      base = level;
      break;
    }
  }
  // Only the oldest L0 file: DB::CompactFiles adds every L0 file older than its input to
  // the merge, so merging a newer one would take the older ones (and the base-level files
  // they overlap) with it.
  const rocksdb::SstFileMetaData* oldest = &l0[0];
  for (const rocksdb::SstFileMetaData& file : l0) {
    if (file.largest_seqno < oldest->largest_seqno) oldest = &file;
  }
  if (oldest->being_compacted) return std::nullopt;
  for (const rocksdb::SstFileMetaData& other : l0) {
    if (&other != oldest && RangesOverlap(*oldest, other, comparator)) return std::nullopt;
  }
  uint64_t base_overlap_bytes = 0;
  for (const rocksdb::SstFileMetaData& other : metadata.levels[base].files) {
    if (!RangesOverlap(*oldest, other, comparator)) continue;
    if (other.being_compacted) return std::nullopt;
    base_overlap_bytes += other.size;
  }
  if (base_overlap_bytes * kNarrowMergeOverlapDivisor > oldest->size) return std::nullopt;
  return NarrowMerge{oldest->name, static_cast<int>(base)};
}

NarrowFlushMerger::~NarrowFlushMerger() { Stop(); }

void NarrowFlushMerger::Start(rocksdb::DB* db,
                              const std::vector<rocksdb::ColumnFamilyHandle*>& handles) {
  std::lock_guard lock(mutex_);
  CAIRN_CHECK_MSG(db_ == nullptr, "NarrowFlushMerger started twice");
  db_ = db;
  for (rocksdb::ColumnFamilyHandle* handle : handles) handles_[handle->GetID()] = handle;
  running_ = true;
  thread_ = std::thread([this] { Loop(); });
}

void NarrowFlushMerger::Stop() {
  {
    std::lock_guard lock(mutex_);
    running_ = false;
    pending_.clear();
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void NarrowFlushMerger::OnFlushCompleted(rocksdb::DB* /*db*/, const rocksdb::FlushJobInfo& info) {
  Enqueue(info.cf_id);
}

void NarrowFlushMerger::OnCompactionCompleted(rocksdb::DB* /*db*/,
                                              const rocksdb::CompactionJobInfo& info) {
  Enqueue(info.cf_id);
}

void NarrowFlushMerger::Enqueue(uint32_t family) {
  {
    std::lock_guard lock(mutex_);
    if (!running_ || !handles_.contains(family)) return;
    if (std::find(pending_.begin(), pending_.end(), family) != pending_.end()) return;
    pending_.push_back(family);
  }
  wake_.notify_one();
}

bool NarrowFlushMerger::Idle() const {
  std::lock_guard lock(mutex_);
  return pending_.empty() && !working_;
}

NarrowFlushMerger::Stats NarrowFlushMerger::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

void NarrowFlushMerger::Loop() {
  pthread_setname_np(pthread_self(), "cairn-l0merge");
  // The lowest CPU priority, as RocksDB's own compaction threads (RocksDbEngine lowers them):
  // a merge must not take the core an acknowledgment waits for.
  (void)setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), 19);
  std::unique_lock lock(mutex_);
  while (true) {
    wake_.wait(lock, [this] { return !running_ || !pending_.empty(); });
    if (!running_) return;
    const uint32_t family = pending_.front();
    pending_.erase(pending_.begin());
    rocksdb::ColumnFamilyHandle* handle = handles_.at(family);
    working_ = true;
    lock.unlock();
    MergeNarrowFiles(handle);
    lock.lock();
    working_ = false;
    ++stats_.families_examined;
  }
}

void NarrowFlushMerger::MergeNarrowFiles(rocksdb::ColumnFamilyHandle* handle) {
  rocksdb::CompactionOptions options;
  // The family's own compression for the output level (CompactFiles defaults to Snappy).
  options.compression = rocksdb::kDisableCompressionOption;
  for (int merges = 0; merges < kMaxMergesPerLook; ++merges) {
    {
      std::lock_guard lock(mutex_);
      if (!running_) return;
    }
    rocksdb::ColumnFamilyMetaData metadata;
    db_->GetColumnFamilyMetaData(handle, &metadata);
    std::optional<NarrowMerge> pick = PickNarrowL0File(metadata, *handle->GetComparator());
    if (!pick.has_value()) return;
    uint64_t size = 0;
    for (const rocksdb::SstFileMetaData& file : metadata.levels[0].files) {
      if (file.name == pick->file) size = file.size;
    }
    in_narrow_merge = true;
    rocksdb::Status status = db_->CompactFiles(options, handle, {pick->file}, pick->output_level);
    in_narrow_merge = false;
    std::lock_guard lock(mutex_);
    if (!status.ok()) {
      // Most often another compaction took the file or its neighbours meanwhile; that
      // compaction moves it down instead.
      ++stats_.merges_failed;
      log::Get("storage")->debug("merging {} of {} into L{}: {}", pick->file, handle->GetName(),
                                 pick->output_level, status.ToString());
      return;
    }
    ++stats_.files_merged;
    stats_.bytes_merged += size;
  }
}

}  // namespace cairn::storage::internal
