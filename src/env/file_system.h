// FileSystem: the only way Cairn reaches files, so that tests and the simulation can replace
// the operating system (PosixFileSystem for production, MemoryFileSystem for fast tests,
// FaultInjectionFileSystem to lose unsynced data, tear writes and inject I/O errors).
//
// Paths are plain strings ("dir/name"); GetChildren returns bare names. Errors: a missing
// file or directory is NotFound, every other failure is IoError; the message always names the
// path (and, for the OS, carries strerror).
//
// Durability model (what survives a crash or power loss), shared by every implementation:
//   * Bytes written with WritableFile::Append are durable only after a later Sync() of that
//     file returned OK. TruncateFile and Preallocate changes are likewise durable after the
//     next Sync() of a handle on that file.
//   * A file's existence (creation, DeleteFile, RenameFile) is durable only after SyncDir() of
//     the directory holding it returned OK.
//   * CreateDirs is durable on return.
//
// Thread-safety: FileSystem methods are thread-safe. A WritableFile or ReadableFile is used by
// one thread at a time, except that ReadableFile::Read is const and may run concurrently
// with other Reads. Distinct handles may be used concurrently, including a reader of bytes a
// writer already appended.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "src/base/result.h"
#include "src/base/status.h"

namespace cairn::env {

// A file open for writing at a position that starts at 0 (NewWritableFile), at the end of
// the existing file (ReopenWritableFile) or where the caller says (ReopenWritableFileAt), and
// advances with every Append. Writes go to that
// position even if Preallocate made the file longer, so a preallocated file is filled in
// place and its size does not change on each append.
class WritableFile {
 public:
  WritableFile() = default;
  WritableFile(const WritableFile&) = delete;
  WritableFile& operator=(const WritableFile&) = delete;
  // Closes the file if Close() was not called; errors are ignored (call Close to see them).
  // Never syncs.
  virtual ~WritableFile() = default;

  // Writes `data` at the current position. On error the file may hold a prefix of `data`
  // (the caller must treat the file as unusable).
  virtual Status Append(std::string_view data) = 0;
  // fdatasync: every byte appended before the call (and truncation/preallocation done
  // before it) is durable when this returns OK.
  virtual Status Sync() = 0;
  // REQUIRES: no other call after Close().
  virtual Status Close() = 0;
  // Bytes written through this handle plus the starting position: the current position.
  virtual uint64_t Size() const = 0;
  // Makes the file at least `size_bytes` long, reading as zeros past the written data, and
  // reserves disk space for it (posix: fallocate; if the file system cannot, the file is
  // extended sparsely). Does not move the write position.
  virtual Status Preallocate(uint64_t size_bytes) = 0;
};

// A file open for random-access reads.
class ReadableFile {
 public:
  ReadableFile() = default;
  ReadableFile(const ReadableFile&) = delete;
  ReadableFile& operator=(const ReadableFile&) = delete;
  virtual ~ReadableFile() = default;

  // Replaces *out with up to `n` bytes starting at `offset`; fewer (possibly zero) only when
  // the file ends first.
  virtual Status Read(uint64_t offset, size_t n, std::string* out) const = 0;
};

class FileSystem {
 public:
  FileSystem() = default;
  FileSystem(const FileSystem&) = delete;
  FileSystem& operator=(const FileSystem&) = delete;
  virtual ~FileSystem() = default;

  // Creates `path` (or truncates it to zero bytes if it exists) and opens it for writing.
  // REQUIRES: the parent directory exists.
  virtual Result<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) = 0;
  // Opens an existing file for writing at its end. NotFound if it does not exist.
  virtual Result<std::unique_ptr<WritableFile>> ReopenWritableFile(const std::string& path) = 0;
  // Opens an existing file for writing at `position`, keeping its size and bytes: appends
  // overwrite it in place (a file of zeros written ahead, filled in later). NotFound if it
  // does not exist; InvalidArgument if `position` is past its end.
  virtual Result<std::unique_ptr<WritableFile>> ReopenWritableFileAt(const std::string& path,
                                                                     uint64_t position) = 0;
  virtual Result<std::unique_ptr<ReadableFile>> NewReadableFile(const std::string& path) = 0;

  // True if `path` names an existing file or directory.
  virtual bool FileExists(const std::string& path) = 0;
  virtual Result<uint64_t> GetFileSize(const std::string& path) = 0;
  // Names (not paths) of the entries directly inside `dir`, in no particular order, without
  // "." and "..".
  virtual Result<std::vector<std::string>> GetChildren(const std::string& dir) = 0;
  // Creates `dir` and any missing parents; OK if it already exists.
  virtual Status CreateDirs(const std::string& dir) = 0;
  virtual Status DeleteFile(const std::string& path) = 0;
  // Atomically replaces `to` (if it exists) with `from`.
  virtual Status RenameFile(const std::string& from, const std::string& to) = 0;
  // Sets the file's size, dropping bytes past it or extending with zeros.
  virtual Status TruncateFile(const std::string& path, uint64_t size_bytes) = 0;
  // fsync of the directory: makes creations, deletions and renames inside it durable.
  virtual Status SyncDir(const std::string& dir) = 0;
};

// "dir/name" (no doubled slash when `dir` ends with one).
std::string JoinPath(std::string_view dir, std::string_view name);
// The directory part of `path` ("." when it has none).
std::string DirName(std::string_view path);
// The part of `path` after the last slash.
std::string_view BaseName(std::string_view path);

}  // namespace cairn::env
