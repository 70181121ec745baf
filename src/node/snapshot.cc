#include "src/node/snapshot.h"

#include <filesystem>
#include <string>
#include <system_error>

#include "src/base/check.h"
#include "src/base/coding.h"
#include "src/base/crc32c.h"
#include "src/base/sha256.h"
#include "src/env/posix_file_system.h"
#include "src/node/alarm_state.h"
#include "src/node/applier.h"
#include "src/storage/rocksdb_engine.h"
#include "src/wal/wal.h"

namespace cairn::node {
namespace {

// etcd's snapshot stream ends with the sha256 of the bytes before it, and `etcdctl snapshot
// save` insists that (size % 512 == 32). A Cairn snapshot therefore pads its content with
// zeros to a multiple of 512 bytes and appends the sha256 of everything before it.
constexpr size_t kShaBytes = Sha256::kDigestBytes;
constexpr size_t kPadToBytes = 512;

constexpr uint8_t kRecordKind = 1;
constexpr uint8_t kTrailerKind = 0xFF;
constexpr size_t kHeaderBytes = 16;
constexpr size_t kTrailerBytes = 1 + 8 + 8 + 4;
// Buffered I/O unit, and the engine batch size when restoring.
constexpr size_t kChunkBytes = 1 << 20;
constexpr size_t kRestoreBatchBytes = 4 << 20;
static_assert(kSnapshotMagic.size() == 8);

// Sequential reader over a ReadableFile with a checksum of every byte consumed.
class SnapshotReader {
 public:
  SnapshotReader(env::ReadableFile* file, uint64_t size) : file_(file), size_(size) {}

  // Makes `n` bytes available at Peek(); Corruption at the end of the file.
  Status Need(size_t n) {
    if (buffer_.size() - position_ >= n) return Status::Ok();
    buffer_.erase(0, position_);
    position_ = 0;
    while (buffer_.size() < n) {
      if (offset_ >= size_) return Status::Corruption("snapshot: truncated");
      std::string chunk;
      CAIRN_RETURN_IF_ERROR(file_->Read(offset_, std::max(kChunkBytes, n), &chunk));
      if (chunk.empty()) return Status::Corruption("snapshot: truncated");
      offset_ += chunk.size();
      buffer_ += chunk;
    }
    return Status::Ok();
  }
  std::string_view Peek() const { return std::string_view(buffer_).substr(position_); }
  void Consume(size_t n) {
    crc_ = crc32c::Extend(crc_, buffer_.data() + position_, n);
    sha_.Update(buffer_.data() + position_, n);
    consumed_ += n;
    position_ += n;
  }
  uint64_t consumed() const { return consumed_; }
  std::string ShaOfConsumed() { return sha_.Final(); }
  // Reads a varint-length-prefixed byte string.
  Status ReadLengthPrefixed(std::string* out) {
    CAIRN_RETURN_IF_ERROR(Need(std::min<uint64_t>(coding::kVarint64BytesMax, Remaining())));
    std::string_view input = Peek();
    const size_t before = input.size();
    uint64_t length = 0;
    if (!coding::GetVarint64(&input, &length)) return Status::Corruption("snapshot: bad length");
    Consume(before - input.size());
    if (length > Remaining()) return Status::Corruption("snapshot: length past the end");
    CAIRN_RETURN_IF_ERROR(Need(length));
    out->assign(Peek().substr(0, length));
    Consume(length);
    return Status::Ok();
  }
  uint64_t Remaining() const { return size_ - offset_ + (buffer_.size() - position_); }
  uint32_t crc() const { return crc_; }

 private:
  env::ReadableFile* const file_;
  const uint64_t size_;
  uint64_t offset_ = 0;
  std::string buffer_;
  size_t position_ = 0;
  uint32_t crc_ = 0;
  uint64_t consumed_ = 0;
  Sha256 sha_;
};

// Parses the snapshot, calling `record` for each entry (may be empty).
Result<SnapshotInfo> ReadSnapshot(
    env::FileSystem* fs, const std::string& path,
    const std::function<Status(storage::Family, const std::string&, const std::string&)>& record) {
  CAIRN_ASSIGN_OR_RETURN(uint64_t size, fs->GetFileSize(path));
  CAIRN_ASSIGN_OR_RETURN(std::unique_ptr<env::ReadableFile> file, fs->NewReadableFile(path));
  SnapshotReader reader(file.get(), size);
  if (size < kHeaderBytes + kTrailerBytes) return Status::Corruption("snapshot: too short");
  CAIRN_RETURN_IF_ERROR(reader.Need(kHeaderBytes));
  std::string_view header = reader.Peek();
  if (header.substr(0, 8) != kSnapshotMagic) {
    return Status::Corruption("snapshot: not a Cairn snapshot (bad magic)");
  }
  const uint32_t version = coding::DecodeFixed32(header.data() + 8);
  if (version != kSnapshotVersion) {
    return Status::FailedPrecondition("snapshot: format version " + std::to_string(version) +
                                      "; this binary reads version " +
                                      std::to_string(kSnapshotVersion));
  }
  reader.Consume(kHeaderBytes);
  SnapshotInfo info;
  info.size_bytes = size;
  bool format_version_seen = false;
  std::string key, value;
  while (true) {
    CAIRN_RETURN_IF_ERROR(reader.Need(1));
    const uint8_t kind = static_cast<uint8_t>(reader.Peek()[0]);
    if (kind == kTrailerKind) break;
    if (kind != kRecordKind) return Status::Corruption("snapshot: bad record kind");
    CAIRN_RETURN_IF_ERROR(reader.Need(2));
    const uint8_t family_number = static_cast<uint8_t>(reader.Peek()[1]);
    if (family_number >= storage::kFamilyCount) return Status::Corruption("snapshot: bad family");
    reader.Consume(2);
    CAIRN_RETURN_IF_ERROR(reader.ReadLengthPrefixed(&key));
    CAIRN_RETURN_IF_ERROR(reader.ReadLengthPrefixed(&value));
    const auto family = static_cast<storage::Family>(family_number);
    if (family == storage::Family::kMeta && key == kFormatVersionKey) {
      if (value.size() != 8 || coding::DecodeFixed64(value.data()) != kFormatVersion) {
        return Status::FailedPrecondition("snapshot: data format version differs from " +
                                          std::to_string(kFormatVersion));
      }
      format_version_seen = true;
    }
    if (family == storage::Family::kMeta && key == kAppliedIndexKey && value.size() == 8) {
      info.applied_index = coding::DecodeFixed64(value.data());
    }
    if (record) CAIRN_RETURN_IF_ERROR(record(family, key, value));
    ++info.records;
  }
  CAIRN_RETURN_IF_ERROR(reader.Need(kTrailerBytes));
  const std::string trailer(reader.Peek().substr(0, kTrailerBytes));
  reader.Consume(kTrailerBytes - 4);
  const uint32_t expected_crc = crc32c::Unmask(coding::DecodeFixed32(trailer.data() + 17));
  if (reader.crc() != expected_crc) return Status::Corruption("snapshot: checksum mismatch");
  reader.Consume(4);
  // Zero padding to a multiple of kPadToBytes, then the sha256 of everything before it.
  const uint64_t padding = (kPadToBytes - reader.consumed() % kPadToBytes) % kPadToBytes;
  if (reader.Remaining() != padding + kShaBytes) {
    return Status::Corruption("snapshot: unexpected bytes after the trailer");
  }
  CAIRN_RETURN_IF_ERROR(reader.Need(padding + kShaBytes));
  if (reader.Peek().substr(0, padding).find_first_not_of('\0') != std::string_view::npos) {
    return Status::Corruption("snapshot: non-zero padding");
  }
  reader.Consume(padding);
  const std::string sha(reader.Peek().substr(0, kShaBytes));
  if (reader.ShaOfConsumed() != sha) return Status::Corruption("snapshot: sha256 mismatch");
  if (coding::DecodeFixed64(trailer.data() + 1) != info.records) {
    return Status::Corruption("snapshot: record count mismatch");
  }
  if (coding::DecodeFixed64(trailer.data() + 9) != info.applied_index) {
    return Status::Corruption("snapshot: applied index mismatch");
  }
  if (!format_version_seen) return Status::Corruption("snapshot: no format version");
  return info;
}

}  // namespace

Result<SnapshotInfo> WriteSnapshot(storage::Engine* engine, env::FileSystem* fs,
                                   const std::string& path,
                                   const std::function<bool()>& cancelled) {
  CAIRN_ASSIGN_OR_RETURN(std::unique_ptr<env::WritableFile> file, fs->NewWritableFile(path));
  auto fail = [&](Status status) -> Status {
    (void)file->Close();
    (void)fs->DeleteFile(path);
    return status;
  };
  std::string buffer(kSnapshotMagic);
  coding::PutFixed32(&buffer, kSnapshotVersion);
  coding::PutFixed32(&buffer, 0);
  uint32_t crc = 0;
  Sha256 sha;
  SnapshotInfo info;
  auto flush = [&]() -> Status {
    crc = crc32c::Extend(crc, buffer.data(), buffer.size());
    sha.Update(buffer.data(), buffer.size());
    info.size_bytes += buffer.size();
    Status appended = file->Append(buffer);
    buffer.clear();
    return appended;
  };
  std::shared_ptr<const storage::Snapshot> snapshot = engine->GetSnapshot();
  storage::ReadOptions options;
  options.snapshot = snapshot.get();
  options.fill_cache = false;
  for (int family_number = 0; family_number < storage::kFamilyCount; ++family_number) {
    const auto family = static_cast<storage::Family>(family_number);
    auto it = engine->NewIterator(options, family);
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      buffer.push_back(static_cast<char>(kRecordKind));
      buffer.push_back(static_cast<char>(family_number));
      coding::PutLengthPrefixed(&buffer, it->key());
      coding::PutLengthPrefixed(&buffer, it->value());
      if (family == storage::Family::kMeta && it->key() == kAppliedIndexKey &&
          it->value().size() == 8) {
        info.applied_index = coding::DecodeFixed64(it->value().data());
      }
      ++info.records;
      if (buffer.size() >= kChunkBytes) {
        if (cancelled && cancelled()) return fail(Status::Cancelled("snapshot: cancelled"));
        Status flushed = flush();
        if (!flushed.ok()) return fail(flushed);
      }
    }
    if (!it->status().ok()) return fail(it->status());
  }
  buffer.push_back(static_cast<char>(kTrailerKind));
  coding::PutFixed64(&buffer, info.records);
  coding::PutFixed64(&buffer, info.applied_index);
  crc = crc32c::Extend(crc, buffer.data(), buffer.size());
  coding::PutFixed32(&buffer, crc32c::Mask(crc));
  const uint64_t content_bytes = info.size_bytes + buffer.size();
  buffer.append((kPadToBytes - content_bytes % kPadToBytes) % kPadToBytes, '\0');
  sha.Update(buffer.data(), buffer.size());
  buffer += sha.Final();
  info.size_bytes += buffer.size();
  Status written = file->Append(buffer);
  if (written.ok()) written = file->Sync();
  if (!written.ok()) return fail(written);
  CAIRN_RETURN_IF_ERROR(file->Close());
  return info;
}

Result<uint32_t> HashState(storage::Engine* engine) {
  std::shared_ptr<const storage::Snapshot> snapshot = engine->GetSnapshot();
  uint32_t crc = 0;
  std::string framed;
  for (storage::Family family :
       {storage::Family::kKvLatest, storage::Family::kLease, storage::Family::kEvents,
        storage::Family::kEventIds, storage::Family::kMeta}) {
    storage::ReadOptions options;
    options.snapshot = snapshot.get();
    options.fill_cache = false;
    const std::string alarm_end = std::string(kAlarmKeyPrefix.substr(0, 5)) + "0";  // "alarm0"
    if (family == storage::Family::kMeta) {
      options.lower_bound = kAlarmKeyPrefix;
      options.upper_bound = alarm_end;
    }
    auto it = engine->NewIterator(options, family);
    for (it->Seek(options.lower_bound); it->Valid(); it->Next()) {
      framed.clear();
      framed.push_back(static_cast<char>(family));
      coding::PutLengthPrefixed(&framed, it->key());
      coding::PutLengthPrefixed(&framed, it->value());
      crc = crc32c::Extend(crc, framed.data(), framed.size());
    }
    CAIRN_RETURN_IF_ERROR(it->status());
  }
  return crc;
}

Result<SnapshotInfo> VerifySnapshot(env::FileSystem* fs, const std::string& path) {
  return ReadSnapshot(fs, path, nullptr);
}

Result<SnapshotInfo> ReadSnapshotRecords(env::FileSystem* fs, const std::string& path,
                                         const SnapshotRecordFunction& record) {
  return ReadSnapshot(fs, path, record);
}

Result<SnapshotInfo> ReplaceEngineContents(storage::Engine* engine, env::FileSystem* fs,
                                           const std::string& path) {
  CAIRN_ASSIGN_OR_RETURN(SnapshotInfo verified, VerifySnapshot(fs, path));
  // The records are streamed from the file into the replacement (RocksDB: SST files), which
  // Commit makes visible at once: nothing changes before, and readers never see a mix.
  CAIRN_ASSIGN_OR_RETURN(std::unique_ptr<storage::ContentsReplacement> replacement,
                         engine->NewContentsReplacement(path + "."));
  auto record = [&](storage::Family family, const std::string& key,
                    const std::string& value) -> Status {
    return replacement->Add(family, key, value);
  };
  CAIRN_ASSIGN_OR_RETURN(SnapshotInfo read, ReadSnapshot(fs, path, record));
  if (read.records != verified.records || read.applied_index != verified.applied_index) {
    return Status::Corruption("snapshot " + path + " changed while it was installed");
  }
  CAIRN_RETURN_IF_ERROR(replacement->Commit());
  return read;
}

Result<SnapshotInfo> RestoreSnapshot(const std::string& snapshot_path,
                                     const std::string& data_dir) {
  namespace stdfs = std::filesystem;
  env::FileSystem* fs = env::PosixFileSystem::Default();
  std::error_code error;
  if (stdfs::exists(data_dir, error) && !stdfs::is_empty(data_dir, error)) {
    return Status::FailedPrecondition("data dir \"" + data_dir + "\" exists and is not empty");
  }
  CAIRN_ASSIGN_OR_RETURN(SnapshotInfo verified, VerifySnapshot(fs, snapshot_path));

  std::string staging = data_dir;
  while (!staging.empty() && staging.back() == '/') staging.pop_back();
  staging += ".restoring";
  stdfs::remove_all(staging, error);
  auto abandon = [&](Status status) -> Status {
    std::error_code ignored;
    stdfs::remove_all(staging, ignored);
    return status.WithContext("restoring snapshot " + snapshot_path);
  };
  {
    storage::EngineOptions engine_options;
    engine_options.path = staging + "/state";
    CAIRN_RETURN_IF_ERROR(fs->CreateDirs(staging));
    auto engine = storage::RocksDbEngine::Open(engine_options);
    if (!engine.ok()) return abandon(engine.status());
    std::unique_ptr<storage::WriteBatch> batch = (*engine)->NewWriteBatch();
    auto record = [&](storage::Family family, const std::string& key,
                      const std::string& value) -> Status {
      // The restored member starts a new cluster (as etcd's restore does): the old
      // membership is dropped and the member bootstraps its own when it starts.
      if (family == storage::Family::kMeta && key.starts_with("cluster/")) return Status::Ok();
      batch->Put(family, key, value);
      if (batch->ByteSize() < kRestoreBatchBytes) return Status::Ok();
      CAIRN_RETURN_IF_ERROR((*engine)->Write(batch.get()));
      batch->Clear();
      return Status::Ok();
    };
    auto restored = ReadSnapshot(fs, snapshot_path, record);
    if (!restored.ok()) return abandon(restored.status());
    if (restored->records != verified.records) {
      return abandon(Status::Corruption("snapshot changed while it was restored"));
    }
    Status written = (*engine)->Write(batch.get());
    if (written.ok()) written = (*engine)->Flush();
    if (!written.ok()) return abandon(written);

    auto wal = wal::Wal::Open(fs, staging + "/wal", wal::WalOptions{});
    if (!wal.ok()) return abandon(wal.status());
    Status reset = (*wal)->Reset(verified.applied_index + 1);
    if (!reset.ok()) return abandon(reset);
  }
  stdfs::remove(data_dir, error);  // an empty directory, if any
  Status renamed = fs->RenameFile(staging, data_dir);
  if (!renamed.ok()) return abandon(renamed);
  const stdfs::path parent = stdfs::absolute(data_dir).parent_path();
  CAIRN_RETURN_IF_ERROR(fs->SyncDir(parent.string()));
  return verified;
}

}  // namespace cairn::node
