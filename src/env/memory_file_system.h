// MemoryFileSystem: a FileSystem held entirely in memory, for fast tests and for the
// deterministic simulation. It models the durability rules of file_system.h exactly: every
// file keeps, besides its current bytes, the bytes that would survive a crash, and the file
// system keeps the set of names that would survive (those covered by a SyncDir). On its own
// it never crashes; FaultInjectionFileSystem (fault_injection_file_system.h) adds the crash
// and error-injection controls.
//
// Directories exist once CreateDirs made them (durable immediately); "." and "/" always
// exist. Paths are normalized by collapsing repeated slashes and dropping a trailing one.
//
// Ownership: handles point into the file system, which must outlive them.
// Thread-safety: all methods and all handles are thread-safe (one mutex).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "src/env/file_system.h"
#include "src/env/random.h"

namespace cairn::env {

// Every fallible operation, for counting and fault injection.
enum class FileOperation : uint8_t {
  kNewWritableFile,
  kReopenWritableFile,
  kNewReadableFile,
  kAppend,
  kSync,
  kClose,
  kPreallocate,
  kRead,
  kGetFileSize,
  kGetChildren,
  kCreateDirs,
  kDeleteFile,
  kRenameFile,
  kTruncateFile,
  kSyncDir,
};
inline constexpr size_t kFileOperationCount = 15;
std::string_view FileOperationName(FileOperation operation);

class MemoryFileSystem : public FileSystem {
 public:
  MemoryFileSystem();
  ~MemoryFileSystem() override;

  Result<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) override;
  Result<std::unique_ptr<WritableFile>> ReopenWritableFile(const std::string& path) override;
  // Counts as a kReopenWritableFile for faults.
  Result<std::unique_ptr<WritableFile>> ReopenWritableFileAt(const std::string& path,
                                                             uint64_t position) override;
  Result<std::unique_ptr<ReadableFile>> NewReadableFile(const std::string& path) override;
  bool FileExists(const std::string& path) override;
  Result<uint64_t> GetFileSize(const std::string& path) override;
  Result<std::vector<std::string>> GetChildren(const std::string& dir) override;
  Status CreateDirs(const std::string& dir) override;
  Status DeleteFile(const std::string& path) override;
  Status RenameFile(const std::string& from, const std::string& to) override;
  Status TruncateFile(const std::string& path, uint64_t size_bytes) override;
  Status SyncDir(const std::string& dir) override;

  // Test helpers: the whole current contents of a file, and replacing them (as durable,
  // e.g. to plant corruption). NotFound if the file does not exist.
  Result<std::string> ReadWholeFile(const std::string& path);
  Status OverwriteFile(const std::string& path, std::string_view contents);
  // Changes (writes, truncations, preallocations) not yet covered by a Sync, over all files.
  uint64_t UnsyncedChangeCount();

 private:
  // Opens an existing file for writing at `position`, or at its end when it has no value.
  Result<std::unique_ptr<WritableFile>> OpenForWriting(const std::string& path,
                                                       std::optional<uint64_t> position);

 protected:
  // Called with mutex_ held at the start of every operation on `path`; a non-OK status
  // fails the operation before it changes anything. Must not call back into this object.
  virtual Status BeforeOperation(FileOperation operation, const std::string& path) {
    return Status::Ok();
  }
  // Crash: the names become those that were durable, every file's bytes become its durable
  // bytes, every open handle becomes stale (its operations fail with IoError). With
  // `torn_random`, each file's unsynced changes survive as a prefix in write order instead: a
  // random number of whole changes, then a random prefix of the next write, possibly followed
  // by random garbage inside that write's byte range.
  void CrashLocked(Random* torn_random);

  std::mutex mutex_;

 private:
  struct FileNode;
  class Writable;
  class Readable;

  FileNode* FindLocked(const std::string& path);
  bool DirExistsLocked(const std::string& dir) const;

  // GUARDED_BY(mutex_), all of them.
  std::map<std::string, std::shared_ptr<FileNode>> files_;          // current names
  std::map<std::string, std::shared_ptr<FileNode>> durable_files_;  // names after a crash
  std::set<std::string> dirs_;
  uint64_t epoch_ = 0;  // incremented by each crash; handles from older epochs are stale
};

}  // namespace cairn::env
