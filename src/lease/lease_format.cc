#include "src/lease/lease_format.h"

#include "src/base/check.h"
#include "src/base/coding.h"
#include "src/base/crc32c.h"

namespace cairn::lease::format {

std::string LeaseKey(int64_t id) {
  std::string key(1, kLeasePrefix);
  coding::PutBigEndian64(&key, static_cast<uint64_t>(id));
  return key;
}

bool DecodeLeaseKey(std::string_view key, int64_t* id) {
  if (key.size() != kLeaseKeyBytes || key[0] != kLeasePrefix) return false;
  *id = static_cast<int64_t>(coding::DecodeBigEndian64(key.data() + 1));
  return true;
}

std::string AttachmentPrefix(int64_t id) {
  std::string key(1, kAttachmentPrefix);
  coding::PutBigEndian64(&key, static_cast<uint64_t>(id));
  return key;
}

std::string AttachmentKey(int64_t id, std::string_view user_key) {
  std::string key = AttachmentPrefix(id);
  key.append(user_key);
  return key;
}

std::string EncodeRecord(const LeaseRecord& record) {
  std::string value(1, static_cast<char>(kRecordVersion));
  coding::PutFixed64(&value, static_cast<uint64_t>(record.ttl_seconds));
  coding::PutFixed64(&value, static_cast<uint64_t>(record.remaining_ttl_seconds));
  coding::PutFixed32(&value, crc32c::Mask(crc32c::Value(value)));
  CAIRN_CHECK(value.size() == kRecordBytes);
  return value;
}

bool DecodeRecord(std::string_view value, LeaseRecord* record) {
  if (value.size() != kRecordBytes || static_cast<uint8_t>(value[0]) != kRecordVersion) {
    return false;
  }
  const uint32_t stored = coding::DecodeFixed32(value.data() + 17);
  if (crc32c::Unmask(stored) != crc32c::Value(value.data(), 17)) return false;
  record->ttl_seconds = static_cast<int64_t>(coding::DecodeFixed64(value.data() + 1));
  record->remaining_ttl_seconds = static_cast<int64_t>(coding::DecodeFixed64(value.data() + 9));
  return true;
}

}  // namespace cairn::lease::format
