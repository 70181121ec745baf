#include "src/storage/file_read_ahead.h"

#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <string_view>
#include <utility>

#include "src/base/check.h"
#include "src/base/logging.h"

namespace cairn::storage::internal {
namespace {

constexpr int64_t kNanosPerSecond = 1'000'000'000;

int64_t NowNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::string WithoutTrailingSlashes(std::string path) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  return path;
}

// A table file whose reads inside a PointReadScope are timed and reported.
class TimedFile final : public rocksdb::FSRandomAccessFileOwnerWrapper {
 public:
  TimedFile(std::unique_ptr<rocksdb::FSRandomAccessFile> file, ReadAheadFileSystem* file_system,
            std::shared_ptr<ReadAheadFileSystem::TableFile> table_file)
      : FSRandomAccessFileOwnerWrapper(std::move(file)),
        file_system_(file_system),
        table_file_(std::move(table_file)) {}

  rocksdb::IOStatus Read(uint64_t offset, size_t n, const rocksdb::IOOptions& options,
                         rocksdb::Slice* result, char* scratch,
                         rocksdb::IODebugContext* debug) const override {
    if (!PointReadScope::Active())
      return target()->Read(offset, n, options, result, scratch, debug);
    const int64_t start_ns = NowNanos();
    rocksdb::IOStatus status = target()->Read(offset, n, options, result, scratch, debug);
    file_system_->OnPointRead(table_file_, NowNanos() - start_ns);
    return status;
  }

  // One report per call: a slow call holds at least one read from the disk.
  rocksdb::IOStatus MultiRead(rocksdb::FSReadRequest* requests, size_t count,
                              const rocksdb::IOOptions& options,
                              rocksdb::IODebugContext* debug) override {
    if (!PointReadScope::Active()) return target()->MultiRead(requests, count, options, debug);
    const int64_t start_ns = NowNanos();
    rocksdb::IOStatus status = target()->MultiRead(requests, count, options, debug);
    file_system_->OnPointRead(table_file_, NowNanos() - start_ns);
    return status;
  }

 private:
  ReadAheadFileSystem* const file_system_;  // outlives its files (RocksDB closes them first)
  const std::shared_ptr<ReadAheadFileSystem::TableFile> table_file_;
};

}  // namespace

ReadAheadFileSystem::ReadAheadFileSystem(std::shared_ptr<rocksdb::FileSystem> base,
                                         std::string database_path, const ReadAheadOptions& options)
    : FileSystemWrapper(std::move(base)),
      table_prefix_(WithoutTrailingSlashes(std::move(database_path)) + "/"),
      options_(options),
      thread_([this] { Loop(); }) {}

ReadAheadFileSystem::~ReadAheadFileSystem() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

bool ReadAheadFileSystem::IsTableFile(const std::string& path) const {
  std::string_view view(path);
  return view.size() > table_prefix_.size() + 4 && view.starts_with(table_prefix_) &&
         view.ends_with(".sst") && view.find('/', table_prefix_.size()) == std::string_view::npos;
}

rocksdb::IOStatus ReadAheadFileSystem::NewRandomAccessFile(
    const std::string& path, const rocksdb::FileOptions& options,
    std::unique_ptr<rocksdb::FSRandomAccessFile>* result, rocksdb::IODebugContext* debug) {
  rocksdb::IOStatus status = target()->NewRandomAccessFile(path, options, result, debug);
  if (!status.ok() || !IsTableFile(path)) return status;
  uint64_t size_bytes = 0;
  if (!target()->GetFileSize(path, rocksdb::IOOptions(), &size_bytes, debug).ok()) return status;
  std::shared_ptr<TableFile> table_file;
  {
    std::lock_guard lock(mutex_);
    std::shared_ptr<TableFile>& slot = files_[path];
    if (slot == nullptr) {
      slot = std::make_shared<TableFile>();
      slot->path = path;
      slot->size_bytes = size_bytes;
      table_file_bytes_ += size_bytes;
    }
    table_file = slot;
  }
  *result = std::make_unique<TimedFile>(std::move(*result), this, std::move(table_file));
  return status;
}

rocksdb::IOStatus ReadAheadFileSystem::DeleteFile(const std::string& path,
                                                  const rocksdb::IOOptions& options,
                                                  rocksdb::IODebugContext* debug) {
  rocksdb::IOStatus status = target()->DeleteFile(path, options, debug);
  if (status.ok()) {
    std::lock_guard lock(mutex_);
    auto found = files_.find(path);
    if (found != files_.end()) {
      CAIRN_CHECK(table_file_bytes_ >= found->second->size_bytes);
      table_file_bytes_ -= found->second->size_bytes;
      files_.erase(found);
    }
  }
  return status;
}

ReadAheadFileSystem::Stats ReadAheadFileSystem::stats() const {
  std::lock_guard lock(mutex_);
  Stats stats = stats_;
  stats.table_file_bytes = table_file_bytes_;
  return stats;
}

void ReadAheadFileSystem::OnPointRead(const std::shared_ptr<TableFile>& file, int64_t elapsed_ns) {
  if (elapsed_ns < static_cast<int64_t>(options_.slow_read_micros) * 1000) return;
  const int64_t now_ns = NowNanos();
  {
    std::lock_guard lock(mutex_);
    if (now_ns - file->window_start_ns >= kNanosPerSecond) {
      file->window_start_ns = now_ns;
      file->slow_reads = 0;
    }
    ++file->slow_reads;
    if (file->slow_reads < options_.slow_reads_per_second || file->queued ||
        now_ns - file->considered_ns < kReadAheadIntervalSeconds * kNanosPerSecond) {
      return;
    }
    file->queued = true;
    file->considered_ns = now_ns;
    queue_.push_back(file);  // at most once per file: `queued` is set until the helper is done
    ++stats_.files_queued;
  }
  wake_.notify_one();
}

void ReadAheadFileSystem::Loop() {
  pthread_setname_np(pthread_self(), "cairn-readahead");
  std::unique_lock lock(mutex_);
  while (true) {
    wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
    if (stopping_) return;
    std::shared_ptr<TableFile> file = std::move(queue_.front());
    queue_.pop_front();
    const uint64_t table_file_bytes = table_file_bytes_;
    lock.unlock();
    ReadAhead(*file, table_file_bytes);
    lock.lock();
    file->queued = false;
  }
}

void ReadAheadFileSystem::ReadAhead(const TableFile& file, uint64_t table_file_bytes) {
  const uint64_t budget_bytes =
      options_.memory_budget_bytes != 0 ? options_.memory_budget_bytes : MemoryAvailableBytes() / 2;
  if (table_file_bytes > budget_bytes) {
    std::lock_guard lock(mutex_);
    ++stats_.files_over_budget;
    return;
  }
  const int fd = open(file.path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;  // deleted meanwhile
  // Queues reads of the whole file in large requests and returns without waiting for them.
  const int advised = posix_fadvise(fd, 0, 0, POSIX_FADV_WILLNEED);
  close(fd);
  if (advised != 0) {
    log::Get("storage")->warn("read-ahead of {}: posix_fadvise failed ({})", file.path, advised);
    return;
  }
  std::lock_guard lock(mutex_);
  ++stats_.files_read_ahead;
  stats_.bytes_read_ahead += file.size_bytes;
}

uint64_t MemoryAvailableBytes() {
  std::ifstream meminfo("/proc/meminfo");
  std::string line;
  while (std::getline(meminfo, line)) {
    unsigned long long kibibytes = 0;  // NOLINT(runtime/int): sscanf's type
    if (std::sscanf(line.c_str(), "MemAvailable: %llu kB", &kibibytes) == 1) {
      return kibibytes * 1024;
    }
  }
  return 0;
}

}  // namespace cairn::storage::internal
