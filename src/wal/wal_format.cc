#include "src/wal/wal_format.h"

#include <algorithm>
#include <cstdio>

#include "src/base/check.h"
#include "src/base/coding.h"
#include "src/base/crc32c.h"

namespace cairn::wal::format {
namespace {

constexpr size_t kHeaderCrcOffset = 36;
constexpr size_t kFileNameDigits = 20;
constexpr std::string_view kFileNameSuffix = ".wal";

bool AllZero(std::string_view bytes) {
  return std::all_of(bytes.begin(), bytes.end(), [](char c) { return c == 0; });
}

bool ParseDecimal(std::string_view digits, uint64_t* value) {
  uint64_t result = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return false;
    const uint64_t digit = static_cast<uint64_t>(c - '0');
    if (result > (UINT64_MAX - digit) / 10) return false;
    result = result * 10 + digit;
  }
  *value = result;
  return true;
}

}  // namespace

void EncodeSegmentHeader(const SegmentHeader& header, std::string* dst) {
  const size_t start = dst->size();
  dst->append(kSegmentMagic);
  coding::PutFixed32(dst, header.version);
  coding::PutFixed32(dst, header.flags);
  coding::PutFixed64(dst, header.sequence);
  coding::PutFixed64(dst, header.first_index);
  coding::PutFixed32(dst, 0);
  const uint32_t crc = crc32c::Value(dst->data() + start, kHeaderCrcOffset);
  coding::PutFixed32(dst, crc32c::Mask(crc));
  CAIRN_CHECK(dst->size() - start == kSegmentHeaderBytes);
}

Status DecodeSegmentHeader(std::string_view bytes, SegmentHeader* header) {
  if (bytes.size() < kSegmentHeaderBytes) {
    return Status::Corruption("segment header truncated (" + std::to_string(bytes.size()) + " of " +
                              std::to_string(kSegmentHeaderBytes) + " bytes)");
  }
  if (bytes.substr(0, kSegmentMagic.size()) != kSegmentMagic) {
    return Status::Corruption("bad segment magic");
  }
  const uint32_t stored = crc32c::Unmask(coding::DecodeFixed32(bytes.data() + kHeaderCrcOffset));
  if (stored != crc32c::Value(bytes.data(), kHeaderCrcOffset)) {
    return Status::Corruption("segment header checksum mismatch");
  }
  header->version = coding::DecodeFixed32(bytes.data() + 8);
  header->flags = coding::DecodeFixed32(bytes.data() + 12);
  header->sequence = coding::DecodeFixed64(bytes.data() + 16);
  header->first_index = coding::DecodeFixed64(bytes.data() + 24);
  if (header->version != kFormatVersion) {
    return Status::Corruption("unsupported segment format version " +
                              std::to_string(header->version) + " (this build reads " +
                              std::to_string(kFormatVersion) + ")");
  }
  if ((header->flags & ~kSegmentFlagsKnown) != 0) {
    return Status::Corruption("unknown segment flags " + std::to_string(header->flags));
  }
  if (coding::DecodeFixed32(bytes.data() + 32) != 0) {
    return Status::Corruption("segment header reserved bytes are not zero");
  }
  if (header->first_index == 0) return Status::Corruption("segment first index is 0");
  return Status::Ok();
}

bool SegmentHeaderIntact(std::string_view bytes) {
  if (bytes.size() < kSegmentHeaderBytes ||
      bytes.substr(0, kSegmentMagic.size()) != kSegmentMagic) {
    return false;
  }
  const uint32_t stored = crc32c::Unmask(coding::DecodeFixed32(bytes.data() + kHeaderCrcOffset));
  return stored == crc32c::Value(bytes.data(), kHeaderCrcOffset);
}

void AppendRecord(RecordType type, uint64_t index, std::string_view payload, std::string* dst) {
  CAIRN_CHECK(payload.size() <= limits::kWalRecordBytesMax);
  CAIRN_CHECK(type != RecordType::kNone);
  char header[kRecordHeaderBytes] = {};
  coding::EncodeFixed32(header + 4, static_cast<uint32_t>(payload.size()));
  header[8] = static_cast<char>(type);
  coding::EncodeFixed64(header + 12, index);
  uint32_t crc = crc32c::Value(header + 4, kRecordHeaderBytes - 4);
  crc = crc32c::Extend(crc, payload.data(), payload.size());
  coding::EncodeFixed32(header, crc32c::Mask(crc));
  dst->append(header, kRecordHeaderBytes);
  dst->append(payload);
}

std::string_view ParseOutcomeName(ParseOutcome outcome) {
  switch (outcome) {
    case ParseOutcome::kRecord:
      return "record";
    case ParseOutcome::kEndOfData:
      return "end of data";
    case ParseOutcome::kTruncated:
      return "truncated record";
    case ParseOutcome::kBadHeader:
      return "bad record header";
    case ParseOutcome::kBadChecksum:
      return "record checksum mismatch";
  }
  return "unknown";
}

ParseOutcome ParseRecord(std::string_view input, RecordView* record) {
  if (input.size() < kRecordHeaderBytes) {
    return AllZero(input) ? ParseOutcome::kEndOfData : ParseOutcome::kTruncated;
  }
  const char* p = input.data();
  if (AllZero(input.substr(0, kRecordHeaderBytes))) return ParseOutcome::kEndOfData;
  const uint32_t length = coding::DecodeFixed32(p + 4);
  const uint8_t type = static_cast<uint8_t>(p[8]);
  if (type == 0 || type > kRecordTypeMax || p[9] != 0 || p[10] != 0 || p[11] != 0 ||
      length > limits::kWalRecordBytesMax) {
    return ParseOutcome::kBadHeader;
  }
  if (input.size() - kRecordHeaderBytes < length) return ParseOutcome::kTruncated;
  const uint32_t expected = crc32c::Unmask(coding::DecodeFixed32(p));
  const uint32_t actual = crc32c::Value(p + 4, kRecordHeaderBytes - 4 + length);
  if (expected != actual) return ParseOutcome::kBadChecksum;
  record->type = static_cast<RecordType>(type);
  record->index = coding::DecodeFixed64(p + 12);
  record->payload = input.substr(kRecordHeaderBytes, length);
  record->size_bytes = kRecordHeaderBytes + length;
  return ParseOutcome::kRecord;
}

std::string SegmentFileName(uint64_t sequence, uint64_t first_index) {
  char name[2 * kFileNameDigits + 8];
  std::snprintf(name, sizeof(name), "%020llu-%020llu.wal",
                static_cast<unsigned long long>(sequence),
                static_cast<unsigned long long>(first_index));
  return name;
}

bool ParseSegmentFileName(std::string_view name, uint64_t* sequence, uint64_t* first_index) {
  if (name.size() != 2 * kFileNameDigits + 1 + kFileNameSuffix.size()) return false;
  if (name[kFileNameDigits] != '-' || !name.ends_with(kFileNameSuffix)) return false;
  return ParseDecimal(name.substr(0, kFileNameDigits), sequence) &&
         ParseDecimal(name.substr(kFileNameDigits + 1, kFileNameDigits), first_index);
}

}  // namespace cairn::wal::format
