// NarrowFlushMerger: moves a freshly flushed L0 file into the base level at once when the merge
// costs little more than the file itself (EngineOptions::merge_narrow_flushes, RocksDbEngine).
//
// Why: RocksDB merges L0 into the base level when L0 holds level0_file_num_compaction_trigger
// files (8 here), and each such merge starts from the oldest L0 file plus every L0 file that
// overlaps it. A sequential load (keys written in order) flushes files that overlap nothing,
// so each merge takes one file or two (keys straggle over a flush's boundary), and L0 stays
// one or two files short of the trigger for the whole
// load: 7 files of 27 MiB after loading 10M keys. The first flush of random keys afterwards
// overlaps all of them and the whole base level, so the first writes after a load pay for
// merging the load's last 7 files together with the base level: 1.7M records per family, 1.4 s
// of CPU each (docs/benchmarks.md, session 23). Those files could have gone down one by one,
// at the cost of writing each once, when they were flushed.
//
// How: after each flush and each compaction the helper thread (`cairn-l0merge`, at the lowest
// CPU priority) looks at the family's oldest L0 files: the oldest alone, or with the next
// ones, up to kNarrowMergeFilesMax, when their key ranges overlap (keys written in order by many
// clients straggle over a flush's boundary). When such a group overlaps no other L0 file, and
// its key range overlaps base-level files of at most 1/kNarrowMergeOverlapDivisor of its size,
// none of them being compacted, the thread merges it into the base level (DB::CompactFiles) and
// looks again. One base file does not count towards that 1/8, and joins the merge: the
// boundary file, which holds the group's smallest key and ends inside the group, when it is no
// larger than the group. It is the previous merge's last output file, which the group's
// stragglers fall into; without it, a load by many clients stopped being merged once a flush's
// stragglers reached the base level (session 24). The merges write files of at most
// kNarrowMergeOutputFileBytes, so the boundary file stays small. Only the oldest files:
// CompactFiles adds every older L0 file to a merge. A file of random keys overlaps the whole base
// level and stays in L0 for RocksDB's own merges, and so do the files flushed after it.
//
// Thread-safety: the On* callbacks are called by RocksDB's background threads; the rest by the
// engine, which calls Start after opening the database and Stop before closing it.
#pragma once

#include <rocksdb/db.h>
#include <rocksdb/listener.h>
#include <rocksdb/metadata.h>

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace cairn::storage::internal {

// A flushed file is merged at once only when the base-level files it overlaps hold at most
// 1/8 of its bytes, not counting a boundary file (see above): the merge then writes at most 1.125
// times the file, or 2.125 times with a boundary file.
constexpr uint64_t kNarrowMergeOverlapDivisor = 8;

// The merges' output files hold at most this many bytes, so the base level's last file, which
// the next merge's stragglers fall into, stays smaller than a flush (64 MiB write buffers give
// L0 files of about 28 MiB).
constexpr uint64_t kNarrowMergeOutputFileBytes = 16ull << 20;

// A merge takes at most this many of the oldest L0 files.
constexpr size_t kNarrowMergeFilesMax = 4;

struct NarrowMerge {
  std::vector<std::string> files;  // SstFileMetaData::name of the L0 files, oldest first
  std::string base_file;           // the boundary file in the base level, if any (else empty)
  int output_level = 0;
  uint64_t bytes = 0;  // the L0 files' sizes
};

// The smallest group of the oldest L0 files of `metadata` (at most kNarrowMergeFilesMax)
// that can be merged into the base level cheaply (see the file comment), and the base level:
// the first level below L0 that holds files, or the last level when none does. Nothing
// otherwise.
std::optional<NarrowMerge> PickNarrowL0Files(const rocksdb::ColumnFamilyMetaData& metadata,
                                             const rocksdb::Comparator& comparator);

// True on the calling thread while it runs one of NarrowFlushMerger's merges: DB::CompactFiles
// runs the compaction, and creates its compaction filter, on the calling thread. Such a merge
// is manual to RocksDB, but not part of an Engine::CompactRange.
bool InNarrowMerge();

class NarrowFlushMerger final : public rocksdb::EventListener {
 public:
  struct Stats {
    uint64_t families_examined = 0;  // looks at a family after a flush or a compaction
    uint64_t files_merged = 0;       // L0 files merged into the base level
    uint64_t bytes_merged = 0;       // their sizes
    uint64_t merges_failed = 0;      // CompactFiles errors (a file taken by another compaction)
  };

  NarrowFlushMerger() = default;
  // Stops the helper thread.
  ~NarrowFlushMerger() override;
  NarrowFlushMerger(const NarrowFlushMerger&) = delete;
  NarrowFlushMerger& operator=(const NarrowFlushMerger&) = delete;

  // Starts the helper thread, which merges the families in `handles` after their flushes;
  // flushes before Start (the database's recovery) are ignored. REQUIRES: called once.
  void Start(rocksdb::DB* db, const std::vector<rocksdb::ColumnFamilyHandle*>& handles);
  // Stops the helper thread; a merge it is running finishes first. Flushes after Stop are
  // ignored. Call before destroying the handles or closing the database.
  void Stop();

  // A flush adds an L0 file; a compaction may free the oldest L0 file or the base-level files
  // it overlaps. Either has the family looked at again.
  void OnFlushCompleted(rocksdb::DB* db, const rocksdb::FlushJobInfo& info) override;
  void OnCompactionCompleted(rocksdb::DB* db, const rocksdb::CompactionJobInfo& info) override;

  Stats stats() const;
  // Whether no family waits to be looked at and none is being looked at.
  bool Idle() const;

 private:
  void Enqueue(uint32_t family);
  void Loop();
  // Merges the family's qualifying L0 files, one at a time.
  void MergeNarrowFiles(rocksdb::ColumnFamilyHandle* handle);

  rocksdb::DB* db_ = nullptr;  // set by Start
  // By column family id; set by Start, read by the helper thread only afterwards.
  std::unordered_map<uint32_t, rocksdb::ColumnFamilyHandle*> handles_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::vector<uint32_t> pending_;  // guarded by mutex_: families flushed, each at most once
  bool running_ = false;           // guarded by mutex_: between Start and Stop
  bool working_ = false;           // guarded by mutex_: a family is being looked at
  Stats stats_;                    // guarded by mutex_
  std::thread thread_;
};

}  // namespace cairn::storage::internal
