#include "src/events/event_format.h"

#include "src/base/check.h"
#include "src/base/coding.h"
#include "src/base/sha256.h"

namespace cairn::events::format {
namespace {

std::string Tagged(char tag, size_t reserve) {
  std::string key;
  key.reserve(reserve + 1);
  key.push_back(tag);
  return key;
}

void PutBigEndian32(std::string* dst, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) dst->push_back(static_cast<char>(v >> shift));
}

uint32_t DecodeBigEndian32(const char* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::string StreamKey(std::string_view stream) {
  std::string key = Tagged(kStreamTag, stream.size());
  key.append(stream);
  return key;
}

std::string StreamNameKey(uint64_t stream_id) {
  std::string key = Tagged(kStreamNameTag, 8);
  coding::PutBigEndian64(&key, stream_id);
  return key;
}

std::string EventKey(uint64_t stream_id, uint64_t version) {
  std::string key = Tagged(kEventTag, 16);
  coding::PutBigEndian64(&key, stream_id);
  coding::PutBigEndian64(&key, version);
  return key;
}

std::string EventKeyEnd(uint64_t stream_id) {
  std::string key = Tagged(kEventTag, 8);
  coding::PutBigEndian64(&key, stream_id + 1);
  return key;
}

std::string AllKey(uint64_t revision, uint32_t index) {
  std::string key = Tagged(kAllTag, 12);
  coding::PutBigEndian64(&key, revision);
  PutBigEndian32(&key, index);
  return key;
}

bool DecodeAllKey(std::string_view key, uint64_t* revision, uint32_t* index) {
  if (key.size() != 13 || key[0] != kAllTag) return false;
  *revision = coding::DecodeBigEndian64(key.data() + 1);
  *index = DecodeBigEndian32(key.data() + 9);
  return true;
}

std::string IdKey(std::string_view id_bytes) {
  // The kEventIds family hashes a fixed-length key (EngineOptions::point_lookup_key_bytes).
  CAIRN_CHECK(id_bytes.size() + 1 == kIdKeyBytes);
  std::string key = Tagged(kIdTag, id_bytes.size());
  key.append(id_bytes);
  return key;
}

std::string IndexPrefix(char tag, std::string_view name) {
  std::string key = Tagged(tag, name.size() + 9);
  key.append(name);
  key.push_back('\0');
  return key;
}

std::string IndexKey(char tag, std::string_view name, uint64_t number) {
  std::string key = IndexPrefix(tag, name);
  coding::PutBigEndian64(&key, number);
  return key;
}

bool DecodeIndexNumber(std::string_view key, uint64_t* number) {
  if (key.size() < 10) return false;
  *number = coding::DecodeBigEndian64(key.data() + key.size() - 8);
  return true;
}

std::string CountKey(char tag, std::string_view name) {
  std::string key = Tagged(tag, name.size());
  key.append(name);
  return key;
}

std::string SnapshotKey(uint64_t stream_id) {
  std::string key = Tagged(kSnapshotTag, 8);
  coding::PutBigEndian64(&key, stream_id);
  return key;
}

std::string GroupKey(std::string_view source, std::string_view group) {
  std::string key = Tagged(kGroupTag, source.size() + 1 + group.size());
  key.append(source);
  key.push_back('\0');
  key.append(group);
  return key;
}

std::string GroupPrefix(std::string_view source) {
  std::string key = Tagged(kGroupTag, source.size() + 1);
  if (source.empty()) return key;
  key.append(source);
  key.push_back('\0');
  return key;
}

std::string GroupEventPrefix(uint64_t group_id) {
  std::string key = Tagged(kGroupEventTag, 20);
  coding::PutBigEndian64(&key, group_id);
  return key;
}

std::string GroupEventKey(uint64_t group_id, uint64_t major, uint32_t minor) {
  std::string key = GroupEventPrefix(group_id);
  coding::PutBigEndian64(&key, major);
  PutBigEndian32(&key, minor);
  return key;
}

bool DecodeGroupEventKey(std::string_view key, uint64_t* major, uint32_t* minor) {
  if (key.size() != 21 || key[0] != kGroupEventTag) return false;
  *major = coding::DecodeBigEndian64(key.data() + 9);
  *minor = DecodeBigEndian32(key.data() + 17);
  return true;
}

std::string ReplayPrefix(uint64_t group_id) {
  std::string key = Tagged(kReplayTag, 16);
  coding::PutBigEndian64(&key, group_id);
  return key;
}

std::string ReplayKey(uint64_t group_id, uint64_t sequence) {
  std::string key = ReplayPrefix(group_id);
  coding::PutBigEndian64(&key, sequence);
  return key;
}

bool DecodeReplayKey(std::string_view key, uint64_t* sequence) {
  if (key.size() != 17 || key[0] != kReplayTag) return false;
  *sequence = coding::DecodeBigEndian64(key.data() + 9);
  return true;
}

std::string ParkedIndexName(std::string_view source, std::string_view group) {
  std::string name(source);
  name.append("::");
  name.append(group);
  return name;
}

std::string ParkedStreamName(std::string_view source, std::string_view group) {
  std::string name(kParkedStreamPrefix);
  name.append(ParkedIndexName(source, group));
  name.append(kParkedStreamSuffix);
  return name;
}

std::string EncodePointer(const Pointer& pointer) {
  std::string value;
  coding::PutBigEndian64(&value, pointer.stream_id);
  coding::PutBigEndian64(&value, pointer.version);
  return value;
}

bool DecodePointer(std::string_view value, Pointer* pointer) {
  if (value.size() != 16) return false;
  pointer->stream_id = coding::DecodeBigEndian64(value.data());
  pointer->version = coding::DecodeBigEndian64(value.data() + 8);
  return true;
}

std::string EncodeAnchor(const Pointer& pointer, std::string_view hash) {
  std::string value = EncodePointer(pointer);
  value.append(hash);
  return value;
}

bool DecodeAllValue(std::string_view value, AllValue* out) {
  if (value.size() != 16 && value.size() != 16 + kHashBytes) return false;
  if (!DecodePointer(value.substr(0, 16), &out->pointer)) return false;
  out->anchor_hash = value.substr(16);
  return true;
}

std::string EncodeIdEntry(const Pointer& pointer, uint64_t revision, uint32_t index) {
  std::string value = EncodePointer(pointer);
  value.append(EncodePosition(revision, index));
  return value;
}

bool DecodeIdEntry(std::string_view value, IdEntry* entry) {
  if (value.size() != 16 && value.size() != 28) return false;
  if (!DecodePointer(value.substr(0, 16), &entry->pointer)) return false;
  entry->position.reset();
  if (value.size() == 28) {
    uint64_t revision = 0;
    uint32_t index = 0;
    if (!DecodePosition(value.substr(16), &revision, &index)) return false;
    entry->position.emplace(revision, index);
  }
  return true;
}

std::string EncodePosition(uint64_t revision, uint32_t index) {
  std::string value;
  coding::PutBigEndian64(&value, revision);
  PutBigEndian32(&value, index);
  return value;
}

bool DecodePosition(std::string_view value, uint64_t* revision, uint32_t* index) {
  if (value.size() != 12) return false;
  *revision = coding::DecodeBigEndian64(value.data());
  *index = DecodeBigEndian32(value.data() + 8);
  return true;
}

std::string EncodeU64(uint64_t value) {
  std::string out;
  coding::PutBigEndian64(&out, value);
  return out;
}

bool DecodeU64(std::string_view value, uint64_t* out) {
  if (value.size() != 8) return false;
  *out = coding::DecodeBigEndian64(value.data());
  return true;
}

std::optional<std::string> ParseUuid(std::string_view text) {
  if (text.size() != 36) return std::nullopt;
  std::string bytes;
  bytes.reserve(16);
  int high = -1;
  for (size_t i = 0; i < text.size(); ++i) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (text[i] != '-') return std::nullopt;
      continue;
    }
    int v = HexValue(text[i]);
    if (v < 0) return std::nullopt;
    if (high < 0) {
      high = v;
    } else {
      bytes.push_back(static_cast<char>((high << 4) | v));
      high = -1;
    }
  }
  return bytes;
}

std::string FormatUuid(std::string_view bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string text;
  text.reserve(36);
  for (size_t i = 0; i < bytes.size(); ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) text.push_back('-');
    uint8_t b = static_cast<uint8_t>(bytes[i]);
    text.push_back(kHex[b >> 4]);
    text.push_back(kHex[b & 15]);
  }
  return text;
}

std::optional<std::string_view> Category(std::string_view stream) {
  size_t dash = stream.find('-');
  if (dash == std::string_view::npos || dash == 0) return std::nullopt;
  return stream.substr(0, dash);
}

std::string ChainHash(std::string_view previous_hash, std::string_view stream, uint64_t version,
                      const records::EventRecord& event) {
  std::string framed;
  framed.reserve(64 + stream.size() + event.type().size() + event.data().size() +
                 event.metadata().size() + event.content_type().size());
  coding::PutLengthPrefixed(&framed, previous_hash);
  coding::PutLengthPrefixed(&framed, stream);
  coding::PutBigEndian64(&framed, version);
  coding::PutLengthPrefixed(&framed, event.id());
  coding::PutLengthPrefixed(&framed, event.type());
  coding::PutLengthPrefixed(&framed, event.data());
  coding::PutLengthPrefixed(&framed, event.metadata());
  coding::PutLengthPrefixed(&framed, event.content_type());
  coding::PutBigEndian64(&framed, event.revision());
  coding::PutBigEndian64(&framed, event.index());
  coding::PutBigEndian64(&framed, static_cast<uint64_t>(event.created_unix_nanos()));
  Sha256 sha;
  sha.Update(framed);
  return sha.Final();
}

}  // namespace cairn::events::format
