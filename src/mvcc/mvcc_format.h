// The on-disk encoding of the MVCC state (docs/formats/mvcc.md is the full description).
//
//   kv_latest   user key                      -> LatestRecord   (live keys only)
//   kv_history  EscapedKey(user key) ++ ~main -> HistoryRecord  (put, tombstone, or the
//               changes of one txn that changed the key more than once at this revision)
//   meta        "kv/..."                      -> fixed64 / version byte
//
// EscapedKey(k): every 0x00 byte of k becomes 0x00 0xFF, then the terminator 0x00 0x00.
// The encoding preserves byte order and no encoded key is a prefix of another, so the
// history entries of "a" never interleave with those of "a\0" or "ab", and a user key
// range [a, b) is exactly the encoded range [EscapedKey(a), EscapedKey(b)).
// ~main is the big-endian bitwise complement of the main revision: newest first.
//
// Records start with kFormatVersion; decoders reject other versions and truncated or
// trailing-garbage input (returning false), so a caller reports Corruption.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace cairn::mvcc::format {

inline constexpr uint8_t kFormatVersion = 1;

// Meta keys owned by the MVCC state machine (everything under "kv/").
inline constexpr std::string_view kMetaFormatVersionKey = "kv/format_version";
inline constexpr std::string_view kMetaCurrentRevisionKey = "kv/current_revision";
inline constexpr std::string_view kMetaCompactedRevisionKey = "kv/compacted_revision";
// The number of live keys (kv_latest entries), fixed64 like the revisions; written when it
// changes. Data written before it existed gets it counted once at open.
inline constexpr std::string_view kMetaKeyCountKey = "kv/key_count";
// Key count blocks: "kv/count/" + fence -> fixed64 number of live keys in [fence, next
// fence). The first fence is "" (below every key); they exist once a key was created.
// A Range's count at the current revision adds up whole blocks and walks only the partial
// blocks at its edges (key_count_blocks.h). Not part of the replicated state's hash: each
// member's boundaries follow from its own history, the counts are exact on all of them.
inline constexpr std::string_view kMetaKeyCountBlockPrefix = "kv/count/";
inline constexpr std::string_view kMetaKeyCountBlockEnd = "kv/count0";  // '/' + 1

// etcd starts at revision 1 with nothing in it; the first write is revision 2.
inline constexpr int64_t kInitialRevision = 1;
// etcd's compactMainRev before any compaction. Compact(0) on a fresh store succeeds and
// sets it to 0, as in etcd.
inline constexpr int64_t kNeverCompacted = -1;

inline constexpr size_t kRevisionBytes = 8;
inline constexpr size_t kKeyTerminatorBytes = 2;

// The fields of a live key, as stored in kv_latest. `value` views the decoded buffer.
struct RecordView {
  int64_t create_revision = 0;
  int64_t mod_revision = 0;
  int64_t version = 0;
  int64_t lease = 0;
  std::string_view value;
};

// kCompound: [version][3][varint n][n length-prefixed put/tombstone records], oldest change
// first. A txn may change a key twice at one revision (etcd gives each change its own
// sub-revision, and a watch replays both); readers that want the state at the revision use
// the last change, a catch-up scan replays all of them.
enum class HistoryKind : uint8_t { kPut = 1, kTombstone = 2, kCompound = 3 };

// One kv_history entry. The main revision (mod_revision of a put) is in the key.
struct HistoryRecordView {
  HistoryKind kind = HistoryKind::kPut;
  int64_t sub_revision = 0;
  // Put only.
  int64_t create_revision = 0;
  int64_t version = 0;
  int64_t lease = 0;
  std::string_view value;
};

// kv_latest values.
void AppendLatestRecord(std::string* dst, const RecordView& record);
bool DecodeLatestRecord(std::string_view input, RecordView* record);

// kv_history values.
void AppendHistoryPut(std::string* dst, int64_t sub_revision, const RecordView& record);
void AppendHistoryTombstone(std::string* dst, int64_t sub_revision);
// Decodes the last change of the entry (the key's state at the entry's revision).
bool DecodeHistoryRecord(std::string_view input, HistoryRecordView* record);
// Reads only the kind of the last change, kPut or kTombstone (cheap: used to count keys and
// by the compaction filter).
bool DecodeHistoryKind(std::string_view input, HistoryKind* kind);
// Every change of the entry, oldest first (one for a put or tombstone entry).
bool DecodeHistoryChanges(std::string_view input, std::vector<HistoryRecordView>* changes);
// Appends a compound entry: the changes of `earlier` (itself possibly compound), then `later`
// (a put or tombstone value). REQUIRES: both decode.
void AppendHistoryCompound(std::string* dst, std::string_view earlier, std::string_view later);

// kv_history keys.
void AppendEscapedKey(std::string* dst, std::string_view user_key);
std::string EscapedKey(std::string_view user_key);
void AppendInvertedRevision(std::string* dst, int64_t main_revision);
std::string HistoryKey(std::string_view user_key, int64_t main_revision);
// Splits a history key into its escaped user key (with terminator) and main revision.
bool SplitHistoryKey(std::string_view key, std::string_view* escaped_key, int64_t* main_revision);
// Inverse of EscapedKey. REQUIRES: `escaped` ends with the terminator.
bool UnescapeKey(std::string_view escaped, std::string* user_key);
// The smallest byte string greater than every history key of this escaped user key and
// smaller than the history keys of every greater user key.
std::string EscapedKeyUpperBound(std::string_view escaped_key);

// Meta values.
std::string EncodeMetaRevision(int64_t revision);
bool DecodeMetaRevision(std::string_view input, int64_t* revision);

}  // namespace cairn::mvcc::format
