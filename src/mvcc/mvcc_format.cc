#include "src/mvcc/mvcc_format.h"

#include "src/base/check.h"
#include "src/base/coding.h"

namespace cairn::mvcc::format {
namespace {

bool GetPositive(std::string_view* input, int64_t* value) {
  uint64_t v = 0;
  if (!coding::GetVarint64(input, &v) || v == 0 || v > static_cast<uint64_t>(INT64_MAX)) {
    return false;
  }
  *value = static_cast<int64_t>(v);
  return true;
}

bool GetNonNegative(std::string_view* input, int64_t* value) {
  uint64_t v = 0;
  if (!coding::GetVarint64(input, &v) || v > static_cast<uint64_t>(INT64_MAX)) return false;
  *value = static_cast<int64_t>(v);
  return true;
}

bool GetSigned(std::string_view* input, int64_t* value) {
  uint64_t v = 0;
  if (!coding::GetVarint64(input, &v)) return false;
  *value = coding::ZigZagDecode(v);
  return true;
}

bool GetVersionByte(std::string_view* input) {
  if (input->empty() || static_cast<uint8_t>((*input)[0]) != kFormatVersion) return false;
  input->remove_prefix(1);
  return true;
}

}  // namespace

void AppendLatestRecord(std::string* dst, const RecordView& record) {
  CAIRN_CHECK(record.create_revision > 0 && record.mod_revision >= record.create_revision);
  CAIRN_CHECK(record.version > 0);
  dst->push_back(static_cast<char>(kFormatVersion));
  coding::PutVarint64(dst, static_cast<uint64_t>(record.create_revision));
  coding::PutVarint64(dst, static_cast<uint64_t>(record.mod_revision));
  coding::PutVarint64(dst, static_cast<uint64_t>(record.version));
  coding::PutVarint64(dst, coding::ZigZagEncode(record.lease));
  dst->append(record.value);
}

bool DecodeLatestRecord(std::string_view input, RecordView* record) {
  if (!GetVersionByte(&input)) return false;
  if (!GetPositive(&input, &record->create_revision)) return false;
  if (!GetPositive(&input, &record->mod_revision)) return false;
  if (!GetPositive(&input, &record->version)) return false;
  if (!GetSigned(&input, &record->lease)) return false;
  if (record->mod_revision < record->create_revision) return false;
  record->value = input;
  return true;
}

void AppendHistoryPut(std::string* dst, int64_t sub_revision, const RecordView& record) {
  CAIRN_CHECK(sub_revision >= 0 && record.create_revision > 0 && record.version > 0);
  dst->push_back(static_cast<char>(kFormatVersion));
  dst->push_back(static_cast<char>(HistoryKind::kPut));
  coding::PutVarint64(dst, static_cast<uint64_t>(sub_revision));
  coding::PutVarint64(dst, static_cast<uint64_t>(record.create_revision));
  coding::PutVarint64(dst, static_cast<uint64_t>(record.version));
  coding::PutVarint64(dst, coding::ZigZagEncode(record.lease));
  dst->append(record.value);
}

void AppendHistoryTombstone(std::string* dst, int64_t sub_revision) {
  CAIRN_CHECK(sub_revision >= 0);
  dst->push_back(static_cast<char>(kFormatVersion));
  dst->push_back(static_cast<char>(HistoryKind::kTombstone));
  coding::PutVarint64(dst, static_cast<uint64_t>(sub_revision));
}

namespace {

// The elements of a compound value; false when `input` is not a well-formed compound.
bool SplitCompound(std::string_view input, std::vector<std::string_view>* elements) {
  if (!GetVersionByte(&input) || input.empty() ||
      static_cast<uint8_t>(input[0]) != static_cast<uint8_t>(HistoryKind::kCompound)) {
    return false;
  }
  input.remove_prefix(1);
  uint64_t count = 0;
  if (!coding::GetVarint64(&input, &count) || count < 2 || count > input.size()) return false;
  elements->clear();
  for (uint64_t i = 0; i < count; ++i) {
    std::string_view element;
    if (!coding::GetLengthPrefixed(&input, &element)) return false;
    elements->push_back(element);
  }
  return input.empty();
}

bool IsCompound(std::string_view input) {
  return input.size() >= 2 &&
         static_cast<uint8_t>(input[1]) == static_cast<uint8_t>(HistoryKind::kCompound);
}

bool DecodeSimpleKind(std::string_view input, HistoryKind* kind) {
  if (!GetVersionByte(&input) || input.empty()) return false;
  uint8_t k = static_cast<uint8_t>(input[0]);
  if (k != static_cast<uint8_t>(HistoryKind::kPut) &&
      k != static_cast<uint8_t>(HistoryKind::kTombstone)) {
    return false;
  }
  *kind = static_cast<HistoryKind>(k);
  return true;
}

bool DecodeSimpleRecord(std::string_view input, HistoryRecordView* record) {
  if (!DecodeSimpleKind(input, &record->kind)) return false;
  input.remove_prefix(2);
  if (!GetNonNegative(&input, &record->sub_revision)) return false;
  if (record->kind == HistoryKind::kTombstone) {
    record->create_revision = record->version = record->lease = 0;
    record->value = {};
    return input.empty();
  }
  if (!GetPositive(&input, &record->create_revision)) return false;
  if (!GetPositive(&input, &record->version)) return false;
  if (!GetSigned(&input, &record->lease)) return false;
  record->value = input;
  return true;
}

}  // namespace

bool DecodeHistoryKind(std::string_view input, HistoryKind* kind) {
  if (!IsCompound(input)) return DecodeSimpleKind(input, kind);
  std::vector<std::string_view> elements;
  return SplitCompound(input, &elements) && DecodeSimpleKind(elements.back(), kind);
}

bool DecodeHistoryRecord(std::string_view input, HistoryRecordView* record) {
  if (!IsCompound(input)) return DecodeSimpleRecord(input, record);
  std::vector<std::string_view> elements;
  return SplitCompound(input, &elements) && DecodeSimpleRecord(elements.back(), record);
}

bool DecodeHistoryChanges(std::string_view input, std::vector<HistoryRecordView>* changes) {
  changes->clear();
  std::vector<std::string_view> elements;
  if (!IsCompound(input)) {
    elements.push_back(input);
  } else if (!SplitCompound(input, &elements)) {
    return false;
  }
  for (std::string_view element : elements) {
    if (!DecodeSimpleRecord(element, &changes->emplace_back())) return false;
  }
  for (size_t i = 1; i < changes->size(); ++i) {
    if ((*changes)[i].sub_revision <= (*changes)[i - 1].sub_revision) return false;
  }
  return true;
}

void AppendHistoryCompound(std::string* dst, std::string_view earlier, std::string_view later) {
  std::vector<std::string_view> elements;
  if (IsCompound(earlier)) {
    CAIRN_CHECK(SplitCompound(earlier, &elements));
  } else {
    elements.push_back(earlier);
  }
  elements.push_back(later);
  HistoryRecordView check;
  for (std::string_view element : elements) CAIRN_CHECK(DecodeSimpleRecord(element, &check));
  dst->push_back(static_cast<char>(kFormatVersion));
  dst->push_back(static_cast<char>(HistoryKind::kCompound));
  coding::PutVarint64(dst, elements.size());
  for (std::string_view element : elements) coding::PutLengthPrefixed(dst, element);
}

void AppendEscapedKey(std::string* dst, std::string_view user_key) {
  for (char c : user_key) {
    dst->push_back(c);
    if (c == '\0') dst->push_back('\xff');
  }
  dst->append(kKeyTerminatorBytes, '\0');
}

std::string EscapedKey(std::string_view user_key) {
  std::string out;
  out.reserve(user_key.size() + kKeyTerminatorBytes + kRevisionBytes);
  AppendEscapedKey(&out, user_key);
  return out;
}

void AppendInvertedRevision(std::string* dst, int64_t main_revision) {
  CAIRN_CHECK(main_revision >= 0);
  coding::PutBigEndian64(dst, ~static_cast<uint64_t>(main_revision));
}

std::string HistoryKey(std::string_view user_key, int64_t main_revision) {
  std::string out = EscapedKey(user_key);
  AppendInvertedRevision(&out, main_revision);
  return out;
}

bool SplitHistoryKey(std::string_view key, std::string_view* escaped_key, int64_t* main_revision) {
  if (key.size() < kKeyTerminatorBytes + kRevisionBytes) return false;
  size_t escaped_size = key.size() - kRevisionBytes;
  if (key[escaped_size - 1] != '\0' || key[escaped_size - 2] != '\0') return false;
  uint64_t inverted = coding::DecodeBigEndian64(key.data() + escaped_size);
  uint64_t main = ~inverted;
  if (main == 0 || main > static_cast<uint64_t>(INT64_MAX)) return false;
  *escaped_key = key.substr(0, escaped_size);
  *main_revision = static_cast<int64_t>(main);
  return true;
}

bool UnescapeKey(std::string_view escaped, std::string* user_key) {
  user_key->clear();
  size_t i = 0;
  while (i < escaped.size()) {
    char c = escaped[i];
    if (c != '\0') {
      user_key->push_back(c);
      ++i;
      continue;
    }
    if (i + 1 >= escaped.size()) return false;
    if (escaped[i + 1] == '\0') return i + 2 == escaped.size();  // terminator
    if (escaped[i + 1] != '\xff') return false;
    user_key->push_back('\0');
    i += 2;
  }
  return false;  // no terminator
}

std::string EscapedKeyUpperBound(std::string_view escaped_key) {
  CAIRN_CHECK(escaped_key.size() >= kKeyTerminatorBytes && escaped_key.back() == '\0');
  // Escaped keys end with 0x00 0x00, and a greater user key differs before the last byte or
  // has 0x00 0xFF where this one ends, so bumping the final 0x00 to 0x01 bounds this key's
  // entries from above without reaching any other key's.
  std::string bound(escaped_key);
  bound.back() = '\x01';
  return bound;
}

std::string EncodeMetaRevision(int64_t revision) {
  std::string out;
  coding::PutFixed64(&out, static_cast<uint64_t>(revision));
  return out;
}

bool DecodeMetaRevision(std::string_view input, int64_t* revision) {
  if (input.size() != 8) return false;
  *revision = static_cast<int64_t>(coding::DecodeFixed64(input.data()));
  return true;
}

}  // namespace cairn::mvcc::format
