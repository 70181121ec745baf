#include "src/env/memory_file_system.h"

#include <algorithm>
#include <cstring>
#include <unordered_set>

#include "src/base/check.h"

namespace cairn::env {
namespace {

std::string Normalize(std::string_view path) {
  std::string out;
  out.reserve(path.size());
  for (char c : path) {
    if (c == '/' && !out.empty() && out.back() == '/') continue;
    out += c;
  }
  if (out.size() > 1 && out.back() == '/') out.pop_back();
  return out;
}

// One change to a file's bytes, kept until the Sync that makes it durable.
struct Change {
  bool is_write = false;
  uint64_t offset = 0;  // writes
  std::string bytes;    // writes
  uint64_t size = 0;    // resizes: the new size
};

Change WriteChange(uint64_t offset, std::string_view bytes) {
  Change change;
  change.is_write = true;
  change.offset = offset;
  change.bytes.assign(bytes);
  return change;
}

Change ResizeChange(uint64_t size) {
  Change change;
  change.size = size;
  return change;
}

void ApplyWrite(std::string* data, uint64_t offset, std::string_view bytes) {
  if (bytes.empty()) return;
  if (data->size() < offset + bytes.size()) data->resize(offset + bytes.size(), '\0');
  std::memcpy(data->data() + offset, bytes.data(), bytes.size());
}

void Apply(std::string* data, const Change& change) {
  if (change.is_write) {
    ApplyWrite(data, change.offset, change.bytes);
  } else {
    data->resize(change.size, '\0');
  }
}

Status StaleHandle(const std::string& path) {
  return Status::IoError(path + ": file handle is stale (opened before a simulated crash)");
}

}  // namespace

std::string_view FileOperationName(FileOperation operation) {
  switch (operation) {
    case FileOperation::kNewWritableFile:
      return "NewWritableFile";
    case FileOperation::kReopenWritableFile:
      return "ReopenWritableFile";
    case FileOperation::kNewReadableFile:
      return "NewReadableFile";
    case FileOperation::kAppend:
      return "Append";
    case FileOperation::kSync:
      return "Sync";
    case FileOperation::kClose:
      return "Close";
    case FileOperation::kPreallocate:
      return "Preallocate";
    case FileOperation::kRead:
      return "Read";
    case FileOperation::kGetFileSize:
      return "GetFileSize";
    case FileOperation::kGetChildren:
      return "GetChildren";
    case FileOperation::kCreateDirs:
      return "CreateDirs";
    case FileOperation::kDeleteFile:
      return "DeleteFile";
    case FileOperation::kRenameFile:
      return "RenameFile";
    case FileOperation::kTruncateFile:
      return "TruncateFile";
    case FileOperation::kSyncDir:
      return "SyncDir";
  }
  return "Unknown";
}

struct MemoryFileSystem::FileNode {
  std::string data;             // current bytes
  std::string durable;          // bytes that survive a crash
  std::vector<Change> pending;  // changes to `durable` that produce `data`, oldest first

  void Modify(Change change) {
    Apply(&data, change);
    pending.push_back(std::move(change));
  }
  void Sync() {
    for (const Change& change : pending) Apply(&durable, change);
    pending.clear();
    CAIRN_CHECK(durable.size() == data.size());
  }
};

class MemoryFileSystem::Writable final : public WritableFile {
 public:
  Writable(MemoryFileSystem* fs, std::string path, std::shared_ptr<FileNode> node, uint64_t epoch,
           uint64_t position)
      : fs_(fs),
        path_(std::move(path)),
        node_(std::move(node)),
        epoch_(epoch),
        position_(position) {}

  Status Append(std::string_view data) override {
    std::lock_guard<std::mutex> lock(fs_->mutex_);
    CAIRN_RETURN_IF_ERROR(Check(FileOperation::kAppend));
    node_->Modify(WriteChange(position_, data));
    position_ += data.size();
    return Status::Ok();
  }
  Status Sync() override {
    std::lock_guard<std::mutex> lock(fs_->mutex_);
    CAIRN_RETURN_IF_ERROR(Check(FileOperation::kSync));
    node_->Sync();
    return Status::Ok();
  }
  Status Close() override {
    std::lock_guard<std::mutex> lock(fs_->mutex_);
    CAIRN_CHECK(!closed_);
    closed_ = true;
    return fs_->BeforeOperation(FileOperation::kClose, path_);
  }
  uint64_t Size() const override { return position_; }
  Status Preallocate(uint64_t size_bytes) override {
    std::lock_guard<std::mutex> lock(fs_->mutex_);
    CAIRN_RETURN_IF_ERROR(Check(FileOperation::kPreallocate));
    if (node_->data.size() < size_bytes) node_->Modify(ResizeChange(size_bytes));
    return Status::Ok();
  }

 private:
  Status Check(FileOperation operation) {
    CAIRN_CHECK(!closed_);
    CAIRN_RETURN_IF_ERROR(fs_->BeforeOperation(operation, path_));
    if (epoch_ != fs_->epoch_) return StaleHandle(path_);
    return Status::Ok();
  }

  MemoryFileSystem* const fs_;
  const std::string path_;
  const std::shared_ptr<FileNode> node_;
  const uint64_t epoch_;
  uint64_t position_;
  bool closed_ = false;
};

class MemoryFileSystem::Readable final : public ReadableFile {
 public:
  Readable(MemoryFileSystem* fs, std::string path, std::shared_ptr<FileNode> node, uint64_t epoch)
      : fs_(fs), path_(std::move(path)), node_(std::move(node)), epoch_(epoch) {}

  Status Read(uint64_t offset, size_t n, std::string* out) const override {
    std::lock_guard<std::mutex> lock(fs_->mutex_);
    out->clear();
    CAIRN_RETURN_IF_ERROR(fs_->BeforeOperation(FileOperation::kRead, path_));
    if (epoch_ != fs_->epoch_) return StaleHandle(path_);
    const std::string& data = node_->data;
    if (offset < data.size())
      out->assign(data, offset, std::min<uint64_t>(n, data.size() - offset));
    return Status::Ok();
  }

 private:
  MemoryFileSystem* const fs_;
  const std::string path_;
  const std::shared_ptr<FileNode> node_;
  const uint64_t epoch_;
};

MemoryFileSystem::MemoryFileSystem() {
  dirs_.insert(".");
  dirs_.insert("/");
}

MemoryFileSystem::~MemoryFileSystem() = default;

MemoryFileSystem::FileNode* MemoryFileSystem::FindLocked(const std::string& path) {
  auto it = files_.find(path);
  return it == files_.end() ? nullptr : it->second.get();
}

bool MemoryFileSystem::DirExistsLocked(const std::string& dir) const {
  return dirs_.count(dir) > 0;
}

Result<std::unique_ptr<WritableFile>> MemoryFileSystem::NewWritableFile(const std::string& path) {
  const std::string name = Normalize(path);
  std::lock_guard<std::mutex> lock(mutex_);
  CAIRN_RETURN_IF_ERROR(BeforeOperation(FileOperation::kNewWritableFile, name));
  if (DirExistsLocked(name)) return Status::IoError("open " + name + ": Is a directory");
  if (!DirExistsLocked(DirName(name))) {
    return Status::NotFound("open " + name + ": No such file or directory");
  }
  std::shared_ptr<FileNode>& node = files_[name];
  if (node == nullptr) {
    node = std::make_shared<FileNode>();
  } else if (!node->data.empty()) {
    node->Modify(ResizeChange(0));  // O_TRUNC on the same file
  }
  return std::unique_ptr<WritableFile>(new Writable(this, name, node, epoch_, 0));
}

Result<std::unique_ptr<WritableFile>> MemoryFileSystem::ReopenWritableFile(
    const std::string& path) {
  return OpenForWriting(path, std::nullopt);
}

Result<std::unique_ptr<WritableFile>> MemoryFileSystem::ReopenWritableFileAt(
    const std::string& path, uint64_t position) {
  return OpenForWriting(path, position);
}

Result<std::unique_ptr<WritableFile>> MemoryFileSystem::OpenForWriting(
    const std::string& path, std::optional<uint64_t> position) {
  const std::string name = Normalize(path);
  std::lock_guard<std::mutex> lock(mutex_);
  CAIRN_RETURN_IF_ERROR(BeforeOperation(FileOperation::kReopenWritableFile, name));
  auto it = files_.find(name);
  if (it == files_.end()) return Status::NotFound("open " + name + ": No such file or directory");
  const uint64_t size = it->second->data.size();
  if (position.value_or(size) > size) {
    return Status::InvalidArgument("open " + name + " at " + std::to_string(*position) +
                                   ": past its end (" + std::to_string(size) + " bytes)");
  }
  return std::unique_ptr<WritableFile>(
      new Writable(this, name, it->second, epoch_, position.value_or(size)));
}

Result<std::unique_ptr<ReadableFile>> MemoryFileSystem::NewReadableFile(const std::string& path) {
  const std::string name = Normalize(path);
  std::lock_guard<std::mutex> lock(mutex_);
  CAIRN_RETURN_IF_ERROR(BeforeOperation(FileOperation::kNewReadableFile, name));
  auto it = files_.find(name);
  if (it == files_.end()) return Status::NotFound("open " + name + ": No such file or directory");
  return std::unique_ptr<ReadableFile>(new Readable(this, name, it->second, epoch_));
}

bool MemoryFileSystem::FileExists(const std::string& path) {
  const std::string name = Normalize(path);
  std::lock_guard<std::mutex> lock(mutex_);
  return FindLocked(name) != nullptr || DirExistsLocked(name);
}

Result<uint64_t> MemoryFileSystem::GetFileSize(const std::string& path) {
  const std::string name = Normalize(path);
  std::lock_guard<std::mutex> lock(mutex_);
  CAIRN_RETURN_IF_ERROR(BeforeOperation(FileOperation::kGetFileSize, name));
  FileNode* node = FindLocked(name);
  if (node == nullptr) return Status::NotFound("stat " + name + ": No such file or directory");
  return static_cast<uint64_t>(node->data.size());
}

Result<std::vector<std::string>> MemoryFileSystem::GetChildren(const std::string& dir) {
  const std::string name = Normalize(dir);
  std::lock_guard<std::mutex> lock(mutex_);
  CAIRN_RETURN_IF_ERROR(BeforeOperation(FileOperation::kGetChildren, name));
  if (!DirExistsLocked(name)) {
    return Status::NotFound("opendir " + name + ": No such file or directory");
  }
  std::vector<std::string> children;
  for (const auto& [path, node] : files_) {
    if (DirName(path) == name) children.emplace_back(BaseName(path));
  }
  for (const std::string& path : dirs_) {
    if (path != name && DirName(path) == name) children.emplace_back(BaseName(path));
  }
  return children;
}

Status MemoryFileSystem::CreateDirs(const std::string& dir) {
  const std::string name = Normalize(dir);
  if (name.empty()) return Status::InvalidArgument("CreateDirs: empty path");
  std::lock_guard<std::mutex> lock(mutex_);
  CAIRN_RETURN_IF_ERROR(BeforeOperation(FileOperation::kCreateDirs, name));
  std::vector<std::string> missing;
  for (std::string path = name; !DirExistsLocked(path); path = DirName(path)) {
    if (FindLocked(path) != nullptr) {
      return Status::IoError("mkdir " + path + ": exists and is not a directory");
    }
    missing.push_back(path);
  }
  dirs_.insert(missing.begin(), missing.end());
  return Status::Ok();
}

Status MemoryFileSystem::DeleteFile(const std::string& path) {
  const std::string name = Normalize(path);
  std::lock_guard<std::mutex> lock(mutex_);
  CAIRN_RETURN_IF_ERROR(BeforeOperation(FileOperation::kDeleteFile, name));
  if (files_.erase(name) == 0) {
    return Status::NotFound("unlink " + name + ": No such file or directory");
  }
  return Status::Ok();
}

Status MemoryFileSystem::RenameFile(const std::string& from, const std::string& to) {
  const std::string from_name = Normalize(from);
  const std::string to_name = Normalize(to);
  std::lock_guard<std::mutex> lock(mutex_);
  CAIRN_RETURN_IF_ERROR(BeforeOperation(FileOperation::kRenameFile, from_name));
  auto it = files_.find(from_name);
  if (it == files_.end()) {
    return Status::NotFound("rename " + from_name + ": No such file or directory");
  }
  if (!DirExistsLocked(DirName(to_name))) {
    return Status::NotFound("rename to " + to_name + ": No such file or directory");
  }
  if (from_name == to_name) return Status::Ok();
  std::shared_ptr<FileNode> node = it->second;
  files_.erase(it);
  files_[to_name] = std::move(node);
  return Status::Ok();
}

Status MemoryFileSystem::TruncateFile(const std::string& path, uint64_t size_bytes) {
  const std::string name = Normalize(path);
  std::lock_guard<std::mutex> lock(mutex_);
  CAIRN_RETURN_IF_ERROR(BeforeOperation(FileOperation::kTruncateFile, name));
  FileNode* node = FindLocked(name);
  if (node == nullptr) return Status::NotFound("truncate " + name + ": No such file or directory");
  if (node->data.size() != size_bytes) node->Modify(ResizeChange(size_bytes));
  return Status::Ok();
}

Status MemoryFileSystem::SyncDir(const std::string& dir) {
  const std::string name = Normalize(dir);
  std::lock_guard<std::mutex> lock(mutex_);
  CAIRN_RETURN_IF_ERROR(BeforeOperation(FileOperation::kSyncDir, name));
  if (!DirExistsLocked(name))
    return Status::NotFound("open " + name + ": No such file or directory");
  std::erase_if(durable_files_, [&](const auto& entry) { return DirName(entry.first) == name; });
  for (const auto& [path, node] : files_) {
    if (DirName(path) == name) durable_files_[path] = node;
  }
  return Status::Ok();
}

Result<std::string> MemoryFileSystem::ReadWholeFile(const std::string& path) {
  const std::string name = Normalize(path);
  std::lock_guard<std::mutex> lock(mutex_);
  FileNode* node = FindLocked(name);
  if (node == nullptr) return Status::NotFound(name + ": No such file or directory");
  return node->data;
}

Status MemoryFileSystem::OverwriteFile(const std::string& path, std::string_view contents) {
  const std::string name = Normalize(path);
  std::lock_guard<std::mutex> lock(mutex_);
  FileNode* node = FindLocked(name);
  if (node == nullptr) return Status::NotFound(name + ": No such file or directory");
  node->data.assign(contents);
  node->durable.assign(contents);
  node->pending.clear();
  return Status::Ok();
}

uint64_t MemoryFileSystem::UnsyncedChangeCount() {
  std::lock_guard<std::mutex> lock(mutex_);
  std::unordered_set<const FileNode*> seen;
  uint64_t count = 0;
  for (const auto& [path, node] : files_) {
    if (seen.insert(node.get()).second) count += node->pending.size();
  }
  return count;
}

void MemoryFileSystem::CrashLocked(Random* torn_random) {
  ++epoch_;
  files_ = durable_files_;
  std::unordered_set<FileNode*> seen;
  for (auto& [path, node_pointer] : files_) {
    FileNode* node = node_pointer.get();
    if (!seen.insert(node).second) continue;
    std::string survived = node->durable;
    if (torn_random != nullptr && !node->pending.empty()) {
      const size_t torn_at = torn_random->Uniform(node->pending.size());
      for (size_t i = 0; i < torn_at; ++i) Apply(&survived, node->pending[i]);
      const Change& torn = node->pending[torn_at];
      if (torn.is_write) {
        const size_t prefix = torn_random->Uniform(torn.bytes.size() + 1);
        ApplyWrite(&survived, torn.offset, std::string_view(torn.bytes).substr(0, prefix));
        if (torn_random->Bernoulli(0.5)) {
          const size_t garbage = torn_random->Uniform(torn.bytes.size() - prefix + 1);
          ApplyWrite(&survived, torn.offset + prefix, torn_random->Bytes(garbage));
        }
      } else if (torn_random->Bernoulli(0.5)) {
        Apply(&survived, torn);
      }
    }
    node->data = survived;
    node->durable = std::move(survived);
    node->pending.clear();
  }
}

}  // namespace cairn::env
