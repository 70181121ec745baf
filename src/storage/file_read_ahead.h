// ReadAheadFileSystem: RocksDB's file system, plus whole-file read-ahead of a table file that
// point reads keep finding missing from the page cache (EngineOptions::read_ahead,
// RocksDbEngine).
//
// Why: a put reads its key's current record, and with millions of keys most of those reads
// go to the table files. When the kernel has paged a file out (this host's reclaim takes
// page cache idle for 60 s), each such read is a 4 KiB disk read, paid for one at a time: in
// this VM about 40 us of CPU each, plus the wait. Reading the file back whole takes large
// requests and a fraction of that CPU, and the reads after it hit the page cache.
//
// How: reads of the database's table files (`*.sst` under the database directory) made on
// a thread inside a PointReadScope are timed. One that takes at least
// ReadAheadOptions::slow_read_micros counts as a read from the disk. When one file has
// counted slow_reads_per_second of them within one second, a helper thread (`cairn-readahead`)
// asks the kernel to read the whole file into the page cache (posix_fadvise WILLNEED: large
// asynchronous reads), provided that the database's table files together fit in the memory
// budget. A file is considered again at most once per kReadAheadIntervalSeconds. Reads outside
// a PointReadScope (iterators, flushes, compactions) are not timed.
//
// Thread-safety: the file system and the files it opens may be used from any thread.
#pragma once

#include <rocksdb/file_system.h>

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>

#include "src/storage/engine.h"

namespace cairn::storage::internal {

// A file that has been read ahead (or declined) is not considered again for this long: a
// read-ahead takes well under a second, and a file the reclaim takes back is idle by then.
constexpr int64_t kReadAheadIntervalSeconds = 30;

// Marks the calling thread as serving point reads (Get, MultiGet) while it lives; scopes
// nest.
class PointReadScope {
 public:
  PointReadScope() : outer_(active_) { active_ = true; }
  ~PointReadScope() { active_ = outer_; }
  PointReadScope(const PointReadScope&) = delete;
  PointReadScope& operator=(const PointReadScope&) = delete;

  static bool Active() { return active_; }

 private:
  static inline thread_local bool active_ = false;
  const bool outer_;
};

class ReadAheadFileSystem final : public rocksdb::FileSystemWrapper {
 public:
  struct Stats {
    uint64_t files_queued = 0;       // files handed to the helper thread
    uint64_t files_read_ahead = 0;   // files the kernel was asked to read whole
    uint64_t bytes_read_ahead = 0;   // their sizes
    uint64_t files_over_budget = 0;  // files not read ahead: the budget was exceeded
    uint64_t table_file_bytes = 0;   // the table files the database has open, together
  };

  // `database_path`: the directory whose table files are watched.
  ReadAheadFileSystem(std::shared_ptr<rocksdb::FileSystem> base, std::string database_path,
                      const ReadAheadOptions& options);
  // Joins the helper thread; a read-ahead it is running finishes first.
  ~ReadAheadFileSystem() override;
  ReadAheadFileSystem(const ReadAheadFileSystem&) = delete;
  ReadAheadFileSystem& operator=(const ReadAheadFileSystem&) = delete;

  const char* Name() const override { return "CairnReadAheadFileSystem"; }
  rocksdb::IOStatus NewRandomAccessFile(const std::string& path,
                                        const rocksdb::FileOptions& options,
                                        std::unique_ptr<rocksdb::FSRandomAccessFile>* result,
                                        rocksdb::IODebugContext* debug) override;
  rocksdb::IOStatus DeleteFile(const std::string& path, const rocksdb::IOOptions& options,
                               rocksdb::IODebugContext* debug) override;

  Stats stats() const;

  // A table file the database has open. Internal to the file system and its files.
  struct TableFile {
    std::string path;
    uint64_t size_bytes = 0;
    int64_t window_start_ns = 0;  // guarded by mutex_: the current one-second window
    uint32_t slow_reads = 0;      // guarded by mutex_: slow reads in that window
    int64_t considered_ns =
        -kReadAheadIntervalSeconds * 1'000'000'000;  // guarded by mutex_: last queued
    bool queued = false;                             // guarded by mutex_
  };
  // Called by a file after a read inside a PointReadScope that took `elapsed_ns`.
  void OnPointRead(const std::shared_ptr<TableFile>& file, int64_t elapsed_ns);

 private:
  bool IsTableFile(const std::string& path) const;
  void Loop();
  void ReadAhead(const TableFile& file, uint64_t table_file_bytes);

  const std::string table_prefix_;  // database_path + "/"
  const ReadAheadOptions options_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::unordered_map<std::string, std::shared_ptr<TableFile>> files_;  // guarded by mutex_
  uint64_t table_file_bytes_ = 0;                                      // guarded by mutex_
  // Each file is queued at most once at a time (TableFile::queued): one entry per file the
  // database has open or deleted while queued.
  std::deque<std::shared_ptr<TableFile>> queue_;  // guarded by mutex_
  bool stopping_ = false;                         // guarded by mutex_
  Stats stats_;                                   // guarded by mutex_
  std::thread thread_;
};

// The memory the kernel reports available (MemAvailable in /proc/meminfo), or 0 when it
// cannot be read.
uint64_t MemoryAvailableBytes();

}  // namespace cairn::storage::internal
