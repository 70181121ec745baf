#include "src/env/posix_file_system.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace cairn::env {
namespace {

// NotFound for a missing path, IoError otherwise; the message names the operation and path.
Status PosixError(std::string_view operation, const std::string& path, int error_number) {
  std::string message(operation);
  message += " ";
  message += path;
  message += ": ";
  message += std::strerror(error_number);
  if (error_number == ENOENT) return Status::NotFound(message);
  return Status::IoError(message);
}

class PosixWritableFile final : public WritableFile {
 public:
  PosixWritableFile(std::string path, int fd, uint64_t position)
      : path_(std::move(path)), fd_(fd), position_(position) {}
  ~PosixWritableFile() override {
    if (fd_ >= 0) ::close(fd_);
  }

  Status Append(std::string_view data) override {
    CAIRN_CHECK(fd_ >= 0);
    const char* p = data.data();
    size_t left = data.size();
    while (left > 0) {
      ssize_t written = ::pwrite(fd_, p, left, static_cast<off_t>(position_));
      if (written < 0) {
        if (errno == EINTR) continue;
        return PosixError("pwrite", path_, errno);
      }
      p += written;
      left -= static_cast<size_t>(written);
      position_ += static_cast<uint64_t>(written);
    }
    return Status::Ok();
  }

  Status Sync() override {
    CAIRN_CHECK(fd_ >= 0);
    if (::fdatasync(fd_) != 0) return PosixError("fdatasync", path_, errno);
    return Status::Ok();
  }

  Status Close() override {
    CAIRN_CHECK(fd_ >= 0);
    int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) return PosixError("close", path_, errno);
    return Status::Ok();
  }

  uint64_t Size() const override { return position_; }

  Status Preallocate(uint64_t size_bytes) override {
    CAIRN_CHECK(fd_ >= 0);
    int result;
    do {
      result = ::fallocate(fd_, 0, 0, static_cast<off_t>(size_bytes));
    } while (result != 0 && errno == EINTR);
    if (result == 0) return Status::Ok();
    if (errno != EOPNOTSUPP && errno != ENOSYS) return PosixError("fallocate", path_, errno);
    // The file system cannot reserve space: extend sparsely so the size contract holds.
    struct stat st;
    if (::fstat(fd_, &st) != 0) return PosixError("fstat", path_, errno);
    if (static_cast<uint64_t>(st.st_size) >= size_bytes) return Status::Ok();
    if (::ftruncate(fd_, static_cast<off_t>(size_bytes)) != 0) {
      return PosixError("ftruncate", path_, errno);
    }
    return Status::Ok();
  }

 private:
  const std::string path_;
  int fd_;
  uint64_t position_;
};

class PosixReadableFile final : public ReadableFile {
 public:
  PosixReadableFile(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  ~PosixReadableFile() override { ::close(fd_); }

  Status Read(uint64_t offset, size_t n, std::string* out) const override {
    out->resize(n);
    size_t done = 0;
    while (done < n) {
      ssize_t got = ::pread(fd_, out->data() + done, n - done, static_cast<off_t>(offset + done));
      if (got < 0) {
        if (errno == EINTR) continue;
        out->clear();
        return PosixError("pread", path_, errno);
      }
      if (got == 0) break;  // end of file
      done += static_cast<size_t>(got);
    }
    out->resize(done);
    return Status::Ok();
  }

 private:
  const std::string path_;
  const int fd_;
};

Result<int> OpenFd(const std::string& path, int flags) {
  int fd;
  do {
    fd = ::open(path.c_str(), flags | O_CLOEXEC, 0644);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) return PosixError("open", path, errno);
  return fd;
}

}  // namespace

PosixFileSystem* PosixFileSystem::Default() {
  static PosixFileSystem* file_system = new PosixFileSystem();
  return file_system;
}

Result<std::unique_ptr<WritableFile>> PosixFileSystem::NewWritableFile(const std::string& path) {
  CAIRN_ASSIGN_OR_RETURN(int fd, OpenFd(path, O_WRONLY | O_CREAT | O_TRUNC));
  return std::unique_ptr<WritableFile>(new PosixWritableFile(path, fd, 0));
}

Result<std::unique_ptr<WritableFile>> PosixFileSystem::ReopenWritableFile(const std::string& path) {
  return OpenForWriting(path, std::nullopt);
}

Result<std::unique_ptr<WritableFile>> PosixFileSystem::ReopenWritableFileAt(const std::string& path,
                                                                            uint64_t position) {
  return OpenForWriting(path, position);
}

Result<std::unique_ptr<WritableFile>> PosixFileSystem::OpenForWriting(
    const std::string& path, std::optional<uint64_t> position) {
  CAIRN_ASSIGN_OR_RETURN(int fd, OpenFd(path, O_WRONLY));
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    Status status = PosixError("fstat", path, errno);
    ::close(fd);
    return status;
  }
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (position.value_or(size) > size) {
    ::close(fd);
    return Status::InvalidArgument("open " + path + " at " + std::to_string(*position) +
                                   ": past its end (" + std::to_string(size) + " bytes)");
  }
  return std::unique_ptr<WritableFile>(new PosixWritableFile(path, fd, position.value_or(size)));
}

Result<std::unique_ptr<ReadableFile>> PosixFileSystem::NewReadableFile(const std::string& path) {
  CAIRN_ASSIGN_OR_RETURN(int fd, OpenFd(path, O_RDONLY));
  return std::unique_ptr<ReadableFile>(new PosixReadableFile(path, fd));
}

bool PosixFileSystem::FileExists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

Result<uint64_t> PosixFileSystem::GetFileSize(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return PosixError("stat", path, errno);
  return static_cast<uint64_t>(st.st_size);
}

Result<std::vector<std::string>> PosixFileSystem::GetChildren(const std::string& dir) {
  DIR* handle = ::opendir(dir.c_str());
  if (handle == nullptr) return PosixError("opendir", dir, errno);
  std::vector<std::string> names;
  errno = 0;
  while (struct dirent* entry = ::readdir(handle)) {
    std::string_view name(entry->d_name);
    if (name != "." && name != "..") names.emplace_back(name);
  }
  int error_number = errno;
  ::closedir(handle);
  if (error_number != 0) return PosixError("readdir", dir, error_number);
  return names;
}

Status PosixFileSystem::CreateDirs(const std::string& dir) {
  if (dir.empty()) return Status::InvalidArgument("CreateDirs: empty path");
  struct stat st;
  if (::stat(dir.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) return Status::Ok();
    return Status::IoError("CreateDirs " + dir + ": exists and is not a directory");
  }
  std::string parent = DirName(dir);
  if (parent != dir && parent != "." && parent != "/") CAIRN_RETURN_IF_ERROR(CreateDirs(parent));
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) return PosixError("mkdir", dir, errno);
  return Status::Ok();
}

Status PosixFileSystem::DeleteFile(const std::string& path) {
  if (::unlink(path.c_str()) != 0) return PosixError("unlink", path, errno);
  return Status::Ok();
}

Status PosixFileSystem::RenameFile(const std::string& from, const std::string& to) {
  if (::rename(from.c_str(), to.c_str()) != 0) return PosixError("rename to " + to, from, errno);
  return Status::Ok();
}

Status PosixFileSystem::TruncateFile(const std::string& path, uint64_t size_bytes) {
  if (::truncate(path.c_str(), static_cast<off_t>(size_bytes)) != 0) {
    return PosixError("truncate", path, errno);
  }
  return Status::Ok();
}

Status PosixFileSystem::SyncDir(const std::string& dir) {
  CAIRN_ASSIGN_OR_RETURN(int fd, OpenFd(dir, O_RDONLY | O_DIRECTORY));
  Status status;
  if (::fsync(fd) != 0) status = PosixError("fsync", dir, errno);
  ::close(fd);
  return status;
}

}  // namespace cairn::env
