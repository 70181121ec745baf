// The event store's keys, identifiers and hash chain (docs/formats/events.md).
//
// All records live in the engine's kEvents family under a one-byte tag:
//   "S" stream name                         -> records::StreamRecord
//   "N" stream id (8 BE)                    -> stream name
//   "E" stream id (8 BE) version (8 BE)     -> records::EventRecord
//   "A" revision (8 BE) index (4 BE)        -> stream id (8 BE) version (8 BE)      ($all)
//   "I" event id (16)                       -> stream id (8 BE) version (8 BE)      (idempotency)
//   "C" category "\0" number (8 BE)         -> revision (8 BE) index (4 BE)         ($ce-)
//   "T" event type "\0" number (8 BE)       -> revision (8 BE) index (4 BE)         ($et-)
//   "c" category / "t" event type           -> count (8 BE): the next number
//   "P" stream id (8 BE)                    -> records::SnapshotRecord
// and the chain head in kMeta under kChainHeadKey.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "cairn/events.pb.h"
#include "cairn/events_storage.pb.h"

namespace cairn::events::format {

inline constexpr std::string_view kChainHeadKey = "events/head";

inline constexpr char kStreamTag = 'S';
inline constexpr char kStreamNameTag = 'N';
inline constexpr char kEventTag = 'E';
inline constexpr char kAllTag = 'A';
inline constexpr char kIdTag = 'I';
inline constexpr char kCategoryTag = 'C';
inline constexpr char kTypeTag = 'T';
inline constexpr char kCategoryCountTag = 'c';
inline constexpr char kTypeCountTag = 't';
inline constexpr char kSnapshotTag = 'P';

// A stream's place in $all.
struct Pointer {
  uint64_t stream_id = 0;
  uint64_t version = 0;
};

std::string StreamKey(std::string_view stream);
std::string StreamNameKey(uint64_t stream_id);
std::string EventKey(uint64_t stream_id, uint64_t version);
// The first key after every event of `stream_id`.
std::string EventKeyEnd(uint64_t stream_id);
std::string AllKey(uint64_t revision, uint32_t index);
bool DecodeAllKey(std::string_view key, uint64_t* revision, uint32_t* index);
std::string IdKey(std::string_view id_bytes);
// kCategoryTag / kTypeTag index entries and their counters.
std::string IndexKey(char tag, std::string_view name, uint64_t number);
std::string IndexPrefix(char tag, std::string_view name);
bool DecodeIndexNumber(std::string_view key, uint64_t* number);
std::string CountKey(char tag, std::string_view name);
std::string SnapshotKey(uint64_t stream_id);

std::string EncodePointer(const Pointer& pointer);
bool DecodePointer(std::string_view value, Pointer* pointer);
std::string EncodePosition(uint64_t revision, uint32_t index);
bool DecodePosition(std::string_view value, uint64_t* revision, uint32_t* index);
std::string EncodeU64(uint64_t value);
bool DecodeU64(std::string_view value, uint64_t* out);

// UUIDs: the 36-character text form (any hex case) <-> 16 raw bytes; text output lower case.
std::optional<std::string> ParseUuid(std::string_view text);
std::string FormatUuid(std::string_view bytes);

// The category of a stream: the part before its first '-' ("order-17" -> "order"); none when
// the name has no '-' or starts with it.
std::optional<std::string_view> Category(std::string_view stream);

// SHA-256 over the previous event's hash (empty for the first event of the store) and every
// field of this event, length-prefixed (docs/formats/events.md).
std::string ChainHash(std::string_view previous_hash, std::string_view stream, uint64_t version,
                      const records::EventRecord& event);

}  // namespace cairn::events::format
