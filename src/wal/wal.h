// Wal: Cairn's durable, segmented, append-only command log (the Raft log). Entries have
// consecutive indexes starting at 1 (or wherever Reset restarts the log); each is an opaque
// payload of at most limits::kWalRecordBytesMax bytes. The format is in wal_format.h and
// docs/formats/wal.md.
//
// Durability: Append makes an entry readable, Sync makes every appended entry durable
// (fdatasync, plus a directory sync when a new segment was started). TruncateSuffix, Reset
// and TruncatePrefix are durable when they return OK.
//
// Recovery (Open) reads and checks every record. A torn or partly written record at the
// tail of the last segment, with nothing valid after it, is cut off and reported in
// recovery(); any other damage (checksum mismatch, bad length or header, index gap, garbage
// after the end of a segment that is not the last) fails Open with Corruption naming the
// segment file path and byte offset. Data is never skipped silently.
//
// I/O errors: after a failed write, sync or truncation the Wal refuses further changes
// (every later Append/Sync/Truncate*/Reset returns that first error), because after a failed
// fdatasync the kernel may have dropped the unsynced pages: the only safe continuation is to
// reopen, which re-reads what actually is on disk.
//
// Thread-safety: one writer at a time (external synchronization) for Append, AppendBatch,
// Sync, TruncateSuffix, TruncatePrefix and Reset. FirstIndex, LastIndex, stats and ReadFrom
// may be called from any thread at any time, concurrently with the writer's Append and Sync:
// ReadFrom then sees entries up to the LastIndex() at its start. ReadFrom concurrent with
// TruncateSuffix, TruncatePrefix or Reset may fail (with an error, never wrong data).
//
// Ownership: the FileSystem must outlive the Wal. Destroying the Wal closes its files
// without syncing.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "src/base/result.h"
#include "src/base/status.h"
#include "src/env/file_system.h"

namespace cairn::wal {

struct WalOptions {
  // Start a new segment when the next record would not fit in this many bytes (a record
  // larger than a whole segment gets a segment of its own). Must be at least 4 KiB.
  // Default: 64 MiB.
  size_t segment_size_bytes = 64ull << 20;
  // Reserve each segment's full size when it is created (fallocate), so that appends do not
  // allocate blocks one by one. Zeros after the last record mean end of log.
  // Default: true.
  bool preallocate = true;
  // With preallocate: each segment's space is written as zeros and synced before the log
  // writes records into it, instead of being reserved with fallocate. ext4 keeps fallocate'd
  // space as unwritten extents, and an fdatasync after a write into one also commits a
  // journal transaction that marks it written; into zeros written before, fdatasync writes
  // only the data (on the development machine: p50 97 against 156 µs, 38 against 52 µs of CPU
  // per sync; bench/wal_bench.cc BM_RawWriteSync/2 against /1). A background thread prepares the
  // next segment ("next-segment.tmp") while the log fills the current one, and the log renames it
  // into place when it rotates; a segment made without one (the first, at Open or after truncation)
  // is left as soon as one is ready. Off by default: the tests and the simulation run without the
  // thread.
  bool zero_filled_segments = false;
};

struct RecoveryInfo {
  uint64_t first_index = 0, last_index = 0;  // entries found; 0, 0 when empty
  bool tail_truncated = false;               // a torn/partial tail record was cut off
  std::string truncated_segment;             // path of the segment that was cut
  uint64_t truncated_offset = 0;             // where it was cut (0: the segment was removed)
  uint64_t truncated_bytes = 0;              // non-zero bytes that were cut off
  uint64_t segments = 0;                     // segment files in the log after recovery
  uint64_t obsolete_segments_deleted = 0;    // left behind by an interrupted Reset
};

class Wal {
 public:
  // Counters since Open; readable from any thread.
  struct Stats {
    uint64_t entries_appended = 0;
    uint64_t bytes_appended = 0;  // record bytes, including headers
    uint64_t syncs = 0;           // fdatasync calls made (Sync, rotation, truncation)
    uint64_t segments_created = 0;
    uint64_t segments_deleted = 0;
    uint64_t segments_prepared = 0;   // zero-filled by the background thread (zero_filled_segments)
    bool next_segment_ready = false;  // a prepared segment waits for the next rotation
  };

  // Opens the log in `dir` (creating the directory and a first segment if needed) and
  // recovers it as described above.
  static Result<std::unique_ptr<Wal>> Open(env::FileSystem* fs, const std::string& dir,
                                           const WalOptions& options);

  Wal(const Wal&) = delete;
  Wal& operator=(const Wal&) = delete;
  ~Wal();

  // First retained index; == LastIndex() + 1 when the log is empty.
  uint64_t FirstIndex() const { return first_index_.load(std::memory_order_acquire); }
  // Last index appended; 0 when nothing was ever appended.
  uint64_t LastIndex() const { return last_index_.load(std::memory_order_acquire); }
  const RecoveryInfo& recovery() const { return recovery_; }
  const std::string& dir() const { return dir_; }
  Stats stats() const;

  // Appends one entry with index LastIndex() + 1 and returns that index. Not durable until
  // Sync(). InvalidArgument (nothing appended) if the payload exceeds the record limit.
  Result<uint64_t> Append(std::string_view payload);
  // Appends entries with consecutive indexes in one write (per segment) and returns the
  // index of the first. All or nothing for InvalidArgument (empty batch, oversized payload).
  Result<uint64_t> AppendBatch(std::span<const std::string_view> payloads);
  // Makes every appended entry durable. Cheap when nothing was appended since the last one.
  Status Sync();

  // Calls fn(index, payload) for every entry with index >= from_index, in order, stopping at
  // (and returning) the first non-OK from fn. The payload view is valid during the call.
  // OutOfRange if from_index < FirstIndex() and entries before FirstIndex() were discarded
  // (FirstIndex() > 1). Corruption if a record changed on disk since recovery.
  Status ReadFrom(uint64_t from_index,
                  const std::function<Status(uint64_t index, std::string_view payload)>& fn);

  // Drops every entry with index > last_index_kept (Raft log conflict); the next Append gets
  // last_index_kept + 1. Durable on return. No-op if last_index_kept >= LastIndex();
  // OutOfRange if last_index_kept + 1 < FirstIndex().
  Status TruncateSuffix(uint64_t last_index_kept);
  // Deletes whole segments whose entries are all < first_index_needed (after a snapshot);
  // never the active (last) segment, so FirstIndex() may stay below first_index_needed.
  Status TruncatePrefix(uint64_t first_index_needed);
  // Discards every entry and restarts the log so that the next Append gets `next_index`
  // (a follower installing a snapshot whose last index is next_index - 1). Durable on
  // return; a crash part way leaves either the old log or the new one. REQUIRES: next_index
  // >= 1.
  Status Reset(uint64_t next_index);

 private:
  struct Segment {
    uint64_t sequence = 0;
    uint64_t first_index = 0;
    uint64_t last_index = 0;  // first_index - 1 when the segment holds no entry
    uint64_t end_offset = 0;  // bytes of header and complete records
    std::string path;
    // Offset of entry first_index + k * kCheckpointStride, for k = 0, 1, ...: where a read
    // from the middle of the segment starts scanning.
    std::vector<uint64_t> checkpoints;
  };

  Wal(env::FileSystem* fs, std::string dir, const WalOptions& options);

  Status Recover();
  Status RecoverSegment(const std::string& path, uint64_t sequence, uint64_t first_index,
                        bool is_last, Segment* segment);

  Status Fail(Status status);
  Status CreateSegment(uint64_t sequence, uint64_t first_index, uint32_t flags);
  // zero_filled_segments: the background thread's loop, the file it fills, and the writer's
  // side: the prepared segment renamed to `path` and open at its start, or nullptr when none
  // is ready.
  void PrepareLoop();
  Status FillWithZeros(const std::string& path);
  bool PreparedReady();
  Result<std::unique_ptr<env::WritableFile>> TakePrepared(const std::string& path);
  std::string PreparedPath() const;
  Status OpenActiveSegment();
  Status Rotate();
  Status FlushBuffer(uint64_t entries, std::vector<uint64_t>* checkpoints);
  Result<uint64_t> FindOffset(const Segment& segment, uint64_t index);
  Status DeleteSegmentsFrom(size_t position);
  std::string SegmentPath(uint64_t sequence, uint64_t first_index) const;

  env::FileSystem* const fs_;
  const std::string dir_;
  const WalOptions options_;
  RecoveryInfo recovery_;

  // Segment metadata, read by concurrent ReadFrom calls; changed only by the writer.
  mutable std::mutex mutex_;
  std::vector<Segment> segments_;  // GUARDED_BY(mutex_); ordered; back() is the active one
  std::atomic<uint64_t> first_index_{1};
  std::atomic<uint64_t> last_index_{0};

  // Writer state (one writer at a time).
  std::unique_ptr<env::WritableFile> active_;
  bool unsynced_ = false;         // bytes appended since the last fdatasync of active_
  bool dir_sync_needed_ = false;  // a segment was created since the last SyncDir
  bool active_prepared_ = false;  // the active segment was zero-filled ahead

  // zero_filled_segments: the thread that fills PreparedPath() with zeros.
  std::thread prepare_thread_;
  mutable std::mutex prepare_mutex_;
  std::condition_variable prepare_cv_;
  bool prepared_ = false;                  // GUARDED_BY(prepare_mutex_): PreparedPath() is ready
  std::atomic<bool> prepare_stop_{false};  // the destructor is waiting for the thread
  std::atomic<uint64_t> segments_prepared_{0};
  Status failure_;      // the first I/O error; sticky
  std::string buffer_;  // encoded records waiting for one write

  std::atomic<uint64_t> entries_appended_{0}, bytes_appended_{0}, syncs_{0};
  std::atomic<uint64_t> segments_created_{0}, segments_deleted_{0};
};

}  // namespace cairn::wal
