// The event store's keys, identifiers and hash chain (docs/formats/events.md).
//
// All records live in the engine's kEvents family under a one-byte tag (the id entries "I"
// in kEventIds, a family of their own: random keys, hashed in the memtable):
//   "S" stream name                         -> records::StreamRecord
//   "N" stream id (8 BE)                    -> stream name
//   "E" stream id (8 BE) version (8 BE)     -> records::EventRecord
//   "A" revision (8 BE) index (4 BE)        -> stream id (8 BE) version (8 BE)      ($all)
//                                              [+ hash (32): an anchor of a scavenged event]
//   "I" event id (16)                       -> stream id, version, revision, index (IdEntry)
//                                              (in the kEventIds family since format 3)
//   "C" category "\0" number (8 BE)         -> revision (8 BE) index (4 BE)         ($ce-)
//   "T" event type "\0" number (8 BE)       -> revision (8 BE) index (4 BE)         ($et-)
//   "c" category / "t" event type           -> count (8 BE): the next number
//   "P" stream id (8 BE)                    -> records::SnapshotRecord
// persistent subscriptions (src/events/persistent_state.h):
//   "G" source "\0" group                   -> records::PersistentGroupRecord
//   "g"                                     -> the next group id (8 BE)
//   "R" group id (8 BE) cursor (12)         -> records::PersistentEventRecord
//   "U" group id (8 BE) sequence (8 BE)     -> records::ReplayRecord
//   "K" source "::" group "\0" number (8 BE) -> revision (8 BE) index (4 BE)   (parked stream)
//   "k" source "::" group                   -> count (8 BE): the next number
// and the chain head in kMeta under kChainHeadKey.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

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
// Tags whose keys an append writes in increasing order (storage insert hints).
inline constexpr std::string_view kSequentialTags = "AECT";
inline constexpr char kGroupTag = 'G';
inline constexpr std::string_view kGroupCounterKey = "g";
inline constexpr char kGroupEventTag = 'R';
inline constexpr char kReplayTag = 'U';
inline constexpr char kParkedTag = 'K';
inline constexpr char kParkedCountTag = 'k';

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
// In the kEventIds family. REQUIRES: id_bytes is a 16-byte event id.
std::string IdKey(std::string_view id_bytes);
inline constexpr size_t kIdKeyBytes = 17;
// kCategoryTag / kTypeTag index entries and their counters.
std::string IndexKey(char tag, std::string_view name, uint64_t number);
std::string IndexPrefix(char tag, std::string_view name);
bool DecodeIndexNumber(std::string_view key, uint64_t* number);
std::string CountKey(char tag, std::string_view name);
std::string SnapshotKey(uint64_t stream_id);

// Persistent subscriptions. A cursor is 12 bytes: (version, 0) for a stream source,
// (revision, index) for "$all"; big-endian so keys sort in source order.
std::string GroupKey(std::string_view source, std::string_view group);
// Every group of `source` (all groups when empty) sorts after this and before its end.
std::string GroupPrefix(std::string_view source);
std::string GroupEventKey(uint64_t group_id, uint64_t major, uint32_t minor);
std::string GroupEventPrefix(uint64_t group_id);
bool DecodeGroupEventKey(std::string_view key, uint64_t* major, uint32_t* minor);
std::string ReplayKey(uint64_t group_id, uint64_t sequence);
std::string ReplayPrefix(uint64_t group_id);
bool DecodeReplayKey(std::string_view key, uint64_t* sequence);
// The parked stream of a group: "$persistentsubscription-<source>::<group>-parked"; its index
// name (kParkedTag/kParkedCountTag) is "<source>::<group>".
inline constexpr std::string_view kParkedStreamPrefix = "$persistentsubscription-";
inline constexpr std::string_view kParkedStreamSuffix = "-parked";
std::string ParkedIndexName(std::string_view source, std::string_view group);
std::string ParkedStreamName(std::string_view source, std::string_view group);

std::string EncodePointer(const Pointer& pointer);
bool DecodePointer(std::string_view value, Pointer* pointer);
// "A" values: the pointer of a stored event, or, once a scavenge removed the event, an
// anchor: the pointer followed by the removed event's hash (kHashBytes), which VerifyChain
// takes as the link it cannot recompute.
inline constexpr size_t kHashBytes = 32;
struct AllValue {
  Pointer pointer;
  std::string_view anchor_hash;  // empty: the event is stored
  bool removed() const { return !anchor_hash.empty(); }
};
std::string EncodeAnchor(const Pointer& pointer, std::string_view hash);
// `out->anchor_hash` points into `value`.
bool DecodeAllValue(std::string_view value, AllValue* out);
// "I" values: the pointer, then the event's position (revision (8) index (4)). Values written
// before session 5 hold the pointer only (position absent).
struct IdEntry {
  Pointer pointer;
  std::optional<std::pair<uint64_t, uint32_t>> position;
};
std::string EncodeIdEntry(const Pointer& pointer, uint64_t revision, uint32_t index);
bool DecodeIdEntry(std::string_view value, IdEntry* entry);
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
