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

// Whether [smallest, largest] and the file's key range share a key.
bool RangesOverlap(const std::string& smallest, const std::string& largest,
                   const rocksdb::SstFileMetaData& file, const rocksdb::Comparator& comparator) {
  return comparator.Compare(smallest, file.largestkey) <= 0 &&
         comparator.Compare(file.smallestkey, largest) <= 0;
}

}  // namespace

bool InNarrowMerge() { return in_narrow_merge; }

std::optional<NarrowMerge> PickNarrowL0Files(const rocksdb::ColumnFamilyMetaData& metadata,
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
  // The oldest L0 files, oldest first. Only a group of the oldest: DB::CompactFiles adds
  // every L0 file older than its inputs, so merging a newer file would take the older ones
  // (and the base-level files they overlap) along.
  std::vector<const rocksdb::SstFileMetaData*> by_age;
  for (const rocksdb::SstFileMetaData& file : l0) by_age.push_back(&file);
  std::sort(by_age.begin(), by_age.end(),
            [](const rocksdb::SstFileMetaData* a, const rocksdb::SstFileMetaData* b) {
              return a->largest_seqno < b->largest_seqno;
            });
  // The smallest group of the oldest files whose key range overlaps no other L0 file. Keys
  // written in order by many clients at once straggle over a flush's boundary, so two
  // consecutive files often share a few keys.
  std::string smallest = by_age[0]->smallestkey;
  std::string largest = by_age[0]->largestkey;
  uint64_t group_bytes = 0;
  for (size_t count = 1; count <= std::min(kNarrowMergeFilesMax, by_age.size()); ++count) {
    const rocksdb::SstFileMetaData& newest = *by_age[count - 1];
    if (newest.being_compacted) return std::nullopt;
    if (comparator.Compare(newest.smallestkey, smallest) < 0) smallest = newest.smallestkey;
    if (comparator.Compare(newest.largestkey, largest) > 0) largest = newest.largestkey;
    group_bytes += newest.size;
    bool overlaps_newer = false;
    for (size_t other = count; other < by_age.size(); ++other) {
      if (RangesOverlap(smallest, largest, *by_age[other], comparator)) {
        overlaps_newer = true;
        break;
      }
    }
    if (overlaps_newer) continue;  // take the next file too
    NarrowMerge merge;
    uint64_t base_overlap_bytes = 0;
    for (const rocksdb::SstFileMetaData& file : metadata.levels[base].files) {
      if (!RangesOverlap(smallest, largest, file, comparator)) continue;
      if (file.being_compacted) return std::nullopt;
      // The base file holding the group's smallest key and ending inside the group: the last
      // merge's output, which the group's stragglers fall into. At most one file qualifies
      // (a level's files do not overlap).
      const bool boundary = comparator.Compare(file.smallestkey, smallest) <= 0 &&
                            comparator.Compare(file.largestkey, largest) < 0;
      if (boundary && file.size <= group_bytes) {
        merge.base_file = file.name;
        continue;
      }
      base_overlap_bytes += file.size;
    }
    if (base_overlap_bytes * kNarrowMergeOverlapDivisor > group_bytes) return std::nullopt;
    for (size_t i = 0; i < count; ++i) merge.files.push_back(by_age[i]->name);
    merge.output_level = static_cast<int>(base);
    merge.bytes = group_bytes;
    return merge;
  }
  return std::nullopt;
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
  // Output files of at most this size, so that the base level's last file, which the next
  // merge may rewrite (the boundary file), stays small.
  options.output_file_size_limit = kNarrowMergeOutputFileBytes;
  for (int merges = 0; merges < kMaxMergesPerLook; ++merges) {
    {
      std::lock_guard lock(mutex_);
      if (!running_) return;
    }
    rocksdb::ColumnFamilyMetaData metadata;
    db_->GetColumnFamilyMetaData(handle, &metadata);
    std::optional<NarrowMerge> pick = PickNarrowL0Files(metadata, *handle->GetComparator());
    if (!pick.has_value()) return;
    std::vector<std::string> inputs = pick->files;
    if (!pick->base_file.empty()) inputs.push_back(pick->base_file);
    in_narrow_merge = true;
    rocksdb::Status status = db_->CompactFiles(options, handle, inputs, pick->output_level);
    in_narrow_merge = false;
    std::lock_guard lock(mutex_);
    if (!status.ok()) {
      // Most often another compaction took the file or its neighbours meanwhile; that
      // compaction moves it down instead.
      ++stats_.merges_failed;
      log::Get("storage")->debug("merging {} L0 files of {} into L{}: {}", pick->files.size(),
                                 handle->GetName(), pick->output_level, status.ToString());
      return;
    }
    stats_.files_merged += pick->files.size();
    stats_.bytes_merged += pick->bytes;
  }
}

}  // namespace cairn::storage::internal
