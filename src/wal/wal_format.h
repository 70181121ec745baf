// The on-disk format of the write-ahead log (version 1). docs/formats/wal.md is the long
// form; this header is the source of truth for the constants.
//
// A log is a directory of segment files named "<sequence>-<first index>.wal", both numbers
// as 20 decimal digits, so that names sort in log order (by sequence). All integers are
// little-endian.
//
// Segment header, 40 bytes, at offset 0 of every segment:
//   0  magic        8  "CAIRNWAL"
//   8  version      4  kFormatVersion
//  12  flags        4  kSegmentFlag* bits; unknown bits are an error
//  16  sequence     8  equals the sequence in the file name
//  24  first_index  8  index of the first entry this segment holds (or would hold)
//  32  reserved     4  zero
//  36  header_crc   4  masked crc32c of bytes [0, 36)
//
// Records follow back to back from offset 40. Record header, 20 bytes, then the payload:
//   0  crc          4  masked crc32c of bytes [4, 20 + length): rest of header and payload
//   4  length       4  payload bytes, <= limits::kWalRecordBytesMax
//   8  type         1  RecordType; 0 never appears in a record
//   9  reserved     3  zero
//  12  index        8  log index of this entry: first_index, first_index + 1, ...
//  20  payload      length bytes
// A record header of 20 zero bytes (or fewer zero bytes before the end of the file) marks
// the end of the data: preallocated space reads as zeros.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "src/base/limits.h"
#include "src/base/status.h"

namespace cairn::wal::format {

inline constexpr std::string_view kSegmentMagic = "CAIRNWAL";
inline constexpr uint32_t kFormatVersion = 1;
inline constexpr size_t kSegmentHeaderBytes = 40;
inline constexpr size_t kRecordHeaderBytes = 20;
inline constexpr size_t kRecordBytesMax = kRecordHeaderBytes + limits::kWalRecordBytesMax;
static_assert(kSegmentMagic.size() == 8);
static_assert(limits::kWalRecordBytesMax <= UINT32_MAX, "length is a 32-bit field");

// Set in the first segment written by Wal::Reset: every segment with a lower sequence is
// obsolete (the log restarts at this segment's first_index).
inline constexpr uint32_t kSegmentFlagResetsLog = 1u << 0;
inline constexpr uint32_t kSegmentFlagsKnown = kSegmentFlagResetsLog;

// Values are stable: they are on disk. Version 1 writes and accepts only kEntry; the other
// types are reserved so that adding them later does not change the framing (a version that
// writes them bumps kFormatVersion so older readers refuse the segment cleanly).
enum class RecordType : uint8_t {
  kNone = 0,            // never written; a zero type byte is part of the end-of-data marker
  kEntry = 1,           // a log entry: index + opaque payload (a serialized command)
  kHardState = 2,       // reserved: Raft term / vote / commit
  kSnapshotMarker = 3,  // reserved: the log continues after a snapshot at (index, term)
};
inline constexpr uint8_t kRecordTypeMax = 3;

struct SegmentHeader {
  uint32_t version = kFormatVersion;
  uint32_t flags = 0;
  uint64_t sequence = 0;
  uint64_t first_index = 0;
};

// Appends the 40-byte encoding of `header` to *dst.
void EncodeSegmentHeader(const SegmentHeader& header, std::string* dst);
// Decodes the first 40 bytes of `bytes`. Corruption (with the reason, without a path) when
// they are too few, the magic or checksum is wrong, the version is not kFormatVersion or a
// flag is unknown.
Status DecodeSegmentHeader(std::string_view bytes, SegmentHeader* header);

// True if `bytes` starts with a complete header whose magic and checksum are right (so
// that any other problem with it is not a torn write).
bool SegmentHeaderIntact(std::string_view bytes);

// Appends one record to *dst. REQUIRES: payload.size() <= limits::kWalRecordBytesMax.
void AppendRecord(RecordType type, uint64_t index, std::string_view payload, std::string* dst);

struct RecordView {
  RecordType type = RecordType::kNone;
  uint64_t index = 0;
  std::string_view payload;  // points into the parsed input
  size_t size_bytes = 0;     // header + payload
};

enum class ParseOutcome : uint8_t {
  kRecord,       // a complete record with a valid checksum
  kEndOfData,    // a zero header (or only zero bytes, fewer than a header): end of the data
  kTruncated,    // the input ends inside a header or payload
  kBadHeader,    // reserved bytes not zero, unknown type or length above the limit
  kBadChecksum,  // complete, but the checksum does not match
};
std::string_view ParseOutcomeName(ParseOutcome outcome);

// Parses the record at the start of `input`. Never reads past its end.
ParseOutcome ParseRecord(std::string_view input, RecordView* record);

std::string SegmentFileName(uint64_t sequence, uint64_t first_index);
// True if `name` is exactly a segment file name; then sets both numbers.
bool ParseSegmentFileName(std::string_view name, uint64_t* sequence, uint64_t* first_index);

}  // namespace cairn::wal::format
