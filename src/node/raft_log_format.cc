#include "src/node/raft_log_format.h"

#include "src/base/coding.h"
#include "src/base/crc32c.h"

namespace cairn::node {
namespace {

Status BadEntry(uint64_t index, std::string_view what) {
  return Status::Corruption("raft log entry " + std::to_string(index) + ": " + std::string(what));
}

// Parses the header; on success `payload` is left holding the data.
Status DecodeHeader(uint64_t index, std::string_view* payload, raft::EntryType* type,
                    uint64_t* term) {
  if (payload->size() < 3) return BadEntry(index, "shorter than its header");
  if (static_cast<uint8_t>((*payload)[0]) != kRaftEntryFormatVersion) {
    return BadEntry(
        index, "unknown format version " + std::to_string(static_cast<uint8_t>((*payload)[0])));
  }
  const auto raw_type = static_cast<uint8_t>((*payload)[1]);
  if (raw_type > static_cast<uint8_t>(raft::EntryType::kConfigChange)) {
    return BadEntry(index, "unknown entry type " + std::to_string(raw_type));
  }
  *type = static_cast<raft::EntryType>(raw_type);
  payload->remove_prefix(2);
  if (!coding::GetVarint64(payload, term) || *term == 0) return BadEntry(index, "bad term");
  return Status::Ok();
}

}  // namespace

std::string EncodeRaftEntry(const raft::Entry& entry) {
  CAIRN_CHECK(entry.term > 0);
  std::string payload;
  payload.reserve(2 + coding::kVarint64BytesMax + entry.data.size());
  payload.push_back(static_cast<char>(kRaftEntryFormatVersion));
  payload.push_back(static_cast<char>(entry.type));
  coding::PutVarint64(&payload, entry.term);
  payload.append(entry.data);
  return payload;
}

Status DecodeRaftEntry(uint64_t index, std::string_view payload, raft::Entry* entry) {
  raft::EntryType type;
  uint64_t term = 0;
  CAIRN_RETURN_IF_ERROR(DecodeHeader(index, &payload, &type, &term));
  entry->index = index;
  entry->term = term;
  entry->type = type;
  entry->data.assign(payload);
  return Status::Ok();
}

Result<uint64_t> DecodeRaftEntryTerm(uint64_t index, std::string_view payload) {
  raft::EntryType type;
  uint64_t term = 0;
  CAIRN_RETURN_IF_ERROR(DecodeHeader(index, &payload, &type, &term));
  return term;
}

std::string EncodeHardState(const raft::HardState& hard_state) {
  std::string bytes(kHardStateMagic);
  coding::PutFixed32(&bytes, kHardStateFormatVersion);
  coding::PutFixed64(&bytes, hard_state.term);
  coding::PutFixed64(&bytes, hard_state.vote);
  coding::PutFixed64(&bytes, hard_state.commit);
  coding::PutFixed32(&bytes, crc32c::Value(bytes));
  CAIRN_CHECK(bytes.size() == kHardStateFileBytes);
  return bytes;
}

Result<raft::HardState> DecodeHardState(std::string_view bytes) {
  if (bytes.size() != kHardStateFileBytes) {
    return Status::Corruption("hard state: " + std::to_string(bytes.size()) + " bytes, want " +
                              std::to_string(kHardStateFileBytes));
  }
  if (bytes.substr(0, kHardStateMagic.size()) != kHardStateMagic) {
    return Status::Corruption("hard state: bad magic");
  }
  const char* p = bytes.data() + kHardStateMagic.size();
  const size_t crc_offset = kHardStateFileBytes - 4;
  if (coding::DecodeFixed32(bytes.data() + crc_offset) != crc32c::Value(bytes.data(), crc_offset)) {
    return Status::Corruption("hard state: checksum mismatch");
  }
  if (coding::DecodeFixed32(p) != kHardStateFormatVersion) {
    return Status::Corruption("hard state: unknown format version " +
                              std::to_string(coding::DecodeFixed32(p)));
  }
  raft::HardState hard_state;
  hard_state.term = coding::DecodeFixed64(p + 4);
  hard_state.vote = coding::DecodeFixed64(p + 12);
  hard_state.commit = coding::DecodeFixed64(p + 20);
  return hard_state;
}

Result<raft::HardState> ReadHardStateFile(env::FileSystem* fs, const std::string& dir) {
  const std::string path = dir + "/" + std::string(kHardStateFileName);
  if (!fs->FileExists(path)) return raft::HardState{};
  CAIRN_ASSIGN_OR_RETURN(std::unique_ptr<env::ReadableFile> file, fs->NewReadableFile(path));
  std::string bytes;
  CAIRN_RETURN_IF_ERROR(file->Read(0, kHardStateFileBytes + 1, &bytes));
  Result<raft::HardState> hard_state = DecodeHardState(bytes);
  if (!hard_state.ok()) return hard_state.status().WithContext(path);
  return hard_state;
}

Status WriteHardStateFile(env::FileSystem* fs, const std::string& dir,
                          const raft::HardState& hard_state) {
  const std::string path = dir + "/" + std::string(kHardStateFileName);
  const std::string temporary = path + ".tmp";
  {
    CAIRN_ASSIGN_OR_RETURN(std::unique_ptr<env::WritableFile> file, fs->NewWritableFile(temporary));
    CAIRN_RETURN_IF_ERROR(file->Append(EncodeHardState(hard_state)));
    CAIRN_RETURN_IF_ERROR(file->Sync());
    CAIRN_RETURN_IF_ERROR(file->Close());
  }
  CAIRN_RETURN_IF_ERROR(fs->RenameFile(temporary, path));
  return fs->SyncDir(dir);
}

namespace {

Status WriteFileDurably(env::FileSystem* fs, const std::string& dir, const std::string& path,
                        std::string_view bytes) {
  const std::string temporary = path + ".tmp";
  {
    CAIRN_ASSIGN_OR_RETURN(std::unique_ptr<env::WritableFile> file, fs->NewWritableFile(temporary));
    CAIRN_RETURN_IF_ERROR(file->Append(bytes));
    CAIRN_RETURN_IF_ERROR(file->Sync());
    CAIRN_RETURN_IF_ERROR(file->Close());
  }
  CAIRN_RETURN_IF_ERROR(fs->RenameFile(temporary, path));
  return fs->SyncDir(dir);
}

}  // namespace

std::string EncodeInstallMarker(const InstallMarker& marker) {
  std::string bytes(kInstallMarkerMagic);
  coding::PutFixed32(&bytes, kInstallMarkerFormatVersion);
  coding::PutFixed64(&bytes, marker.index);
  coding::PutFixed64(&bytes, marker.term);
  coding::PutFixed32(&bytes, crc32c::Value(bytes));
  CAIRN_CHECK(bytes.size() == kInstallMarkerFileBytes);
  return bytes;
}

Result<InstallMarker> DecodeInstallMarker(std::string_view bytes) {
  if (bytes.size() != kInstallMarkerFileBytes) {
    return Status::Corruption("snapshot install marker: " + std::to_string(bytes.size()) +
                              " bytes, want " + std::to_string(kInstallMarkerFileBytes));
  }
  if (bytes.substr(0, kInstallMarkerMagic.size()) != kInstallMarkerMagic) {
    return Status::Corruption("snapshot install marker: bad magic");
  }
  const size_t crc_offset = kInstallMarkerFileBytes - 4;
  if (coding::DecodeFixed32(bytes.data() + crc_offset) != crc32c::Value(bytes.data(), crc_offset)) {
    return Status::Corruption("snapshot install marker: checksum mismatch");
  }
  const char* p = bytes.data() + kInstallMarkerMagic.size();
  if (coding::DecodeFixed32(p) != kInstallMarkerFormatVersion) {
    return Status::Corruption("snapshot install marker: unknown format version");
  }
  InstallMarker marker{.index = coding::DecodeFixed64(p + 4),
                       .term = coding::DecodeFixed64(p + 12)};
  if (marker.index == 0) return Status::Corruption("snapshot install marker: index 0");
  return marker;
}

Result<std::optional<InstallMarker>> ReadInstallMarkerFile(env::FileSystem* fs,
                                                           const std::string& dir) {
  const std::string path = dir + "/" + std::string(kInstallMarkerFileName);
  if (!fs->FileExists(path)) return std::optional<InstallMarker>();
  CAIRN_ASSIGN_OR_RETURN(std::unique_ptr<env::ReadableFile> file, fs->NewReadableFile(path));
  std::string bytes;
  CAIRN_RETURN_IF_ERROR(file->Read(0, kInstallMarkerFileBytes + 1, &bytes));
  Result<InstallMarker> marker = DecodeInstallMarker(bytes);
  if (!marker.ok()) return marker.status().WithContext(path);
  return std::optional<InstallMarker>(*marker);
}

Status WriteInstallMarkerFile(env::FileSystem* fs, const std::string& dir,
                              const InstallMarker& marker) {
  return WriteFileDurably(fs, dir, dir + "/" + std::string(kInstallMarkerFileName),
                          EncodeInstallMarker(marker));
}

Status RemoveInstallMarkerFile(env::FileSystem* fs, const std::string& dir) {
  const std::string path = dir + "/" + std::string(kInstallMarkerFileName);
  if (!fs->FileExists(path)) return Status::Ok();
  CAIRN_RETURN_IF_ERROR(fs->DeleteFile(path));
  return fs->SyncDir(dir);
}

}  // namespace cairn::node
