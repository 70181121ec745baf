// PosixFileSystem: FileSystem on the local operating system (open/pwrite/pread/fdatasync/
// fallocate). Writable files write with pwrite at their own position, so appends into a
// preallocated region do not change the file size.
//
// Thread-safety: as FileSystem. Default() lives for the whole process.
#pragma once

#include <optional>

#include "src/env/file_system.h"

namespace cairn::env {

class PosixFileSystem final : public FileSystem {
 public:
  // The process-wide instance; never destroyed.
  static PosixFileSystem* Default();

  PosixFileSystem() = default;

  Result<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) override;
  Result<std::unique_ptr<WritableFile>> ReopenWritableFile(const std::string& path) override;
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

 private:
  // Opens an existing file for writing at `position`, or at its end when it has no value.
  Result<std::unique_ptr<WritableFile>> OpenForWriting(const std::string& path,
                                                       std::optional<uint64_t> position);
};

}  // namespace cairn::env
