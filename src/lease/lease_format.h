// The lease family's layout (storage::Family::kLease). Byte layout and rationale:
// docs/formats/lease.md.
//
//   'l' + big-endian u64(id)                 -> lease record
//   'k' + big-endian u64(id) + user key      -> "" (key attached to the lease)
//
// Lease record (kRecordVersion 1, 21 bytes):
//   u8 version | fixed64 granted ttl seconds | fixed64 remaining ttl seconds (0 = never
//   checkpointed) | fixed32 masked crc32c of the preceding 17 bytes
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace cairn::lease::format {

inline constexpr char kLeasePrefix = 'l';
inline constexpr char kAttachmentPrefix = 'k';
inline constexpr uint8_t kRecordVersion = 1;
inline constexpr size_t kRecordBytes = 1 + 8 + 8 + 4;
inline constexpr size_t kLeaseKeyBytes = 1 + 8;

struct LeaseRecord {
  int64_t ttl_seconds = 0;
  int64_t remaining_ttl_seconds = 0;  // 0: no checkpoint, the lease restarts with ttl_seconds
};

std::string LeaseKey(int64_t id);
// Returns false when `key` is not a lease key.
bool DecodeLeaseKey(std::string_view key, int64_t* id);
// The prefix of every attachment of lease `id`; AttachmentKey appends the user key.
std::string AttachmentPrefix(int64_t id);
std::string AttachmentKey(int64_t id, std::string_view user_key);

std::string EncodeRecord(const LeaseRecord& record);
// Returns false on a wrong size, unknown version or checksum mismatch.
bool DecodeRecord(std::string_view value, LeaseRecord* record);

}  // namespace cairn::lease::format
