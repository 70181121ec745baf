#include "src/wal/wal_format.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "src/base/coding.h"

namespace cairn::wal::format {
namespace {

TEST(WalFormatTest, SegmentHeaderRoundTripAndLayout) {
  std::string bytes;
  EncodeSegmentHeader({kFormatVersion, kSegmentFlagResetsLog, 7, 1234}, &bytes);
  ASSERT_EQ(bytes.size(), kSegmentHeaderBytes);
  EXPECT_EQ(bytes.substr(0, 8), "CAIRNWAL");
  EXPECT_EQ(coding::DecodeFixed32(bytes.data() + 8), kFormatVersion);
  EXPECT_EQ(coding::DecodeFixed64(bytes.data() + 16), 7u);
  EXPECT_EQ(coding::DecodeFixed64(bytes.data() + 24), 1234u);
  EXPECT_TRUE(SegmentHeaderIntact(bytes));

  SegmentHeader header;
  ASSERT_TRUE(DecodeSegmentHeader(bytes, &header).ok());
  EXPECT_EQ(header.flags, kSegmentFlagResetsLog);
  EXPECT_EQ(header.sequence, 7u);
  EXPECT_EQ(header.first_index, 1234u);
}

TEST(WalFormatTest, SegmentHeaderRejectsDamage) {
  std::string good;
  EncodeSegmentHeader({kFormatVersion, 0, 1, 1}, &good);
  SegmentHeader header;
  for (size_t i = 0; i < good.size(); ++i) {
    std::string bad = good;
    bad[i] ^= 0x10;
    Status status = DecodeSegmentHeader(bad, &header);
    EXPECT_TRUE(status.Is(StatusCode::kCorruption)) << "byte " << i;
    EXPECT_FALSE(SegmentHeaderIntact(bad)) << "byte " << i;
  }
  EXPECT_TRUE(DecodeSegmentHeader(good.substr(0, 39), &header).Is(StatusCode::kCorruption));

  std::string future;
  EncodeSegmentHeader({kFormatVersion + 1, 0, 1, 1}, &future);
  Status status = DecodeSegmentHeader(future, &header);
  EXPECT_TRUE(status.Is(StatusCode::kCorruption));
  EXPECT_NE(status.message().find("version 2"), std::string_view::npos) << status.ToString();
  EXPECT_TRUE(SegmentHeaderIntact(future));  // intact, just not readable by this build

  std::string unknown_flag;
  EncodeSegmentHeader({kFormatVersion, 1u << 7, 1, 1}, &unknown_flag);
  EXPECT_TRUE(DecodeSegmentHeader(unknown_flag, &header).Is(StatusCode::kCorruption));
}

TEST(WalFormatTest, RecordRoundTripAndLayout) {
  std::string bytes;
  AppendRecord(RecordType::kEntry, 42, "payload", &bytes);
  AppendRecord(RecordType::kEntry, 43, "", &bytes);
  ASSERT_EQ(bytes.size(), 2 * kRecordHeaderBytes + 7);
  EXPECT_EQ(coding::DecodeFixed32(bytes.data() + 4), 7u);
  EXPECT_EQ(bytes[8], 1);
  EXPECT_EQ(coding::DecodeFixed64(bytes.data() + 12), 42u);

  RecordView record;
  ASSERT_EQ(ParseRecord(bytes, &record), ParseOutcome::kRecord);
  EXPECT_EQ(record.type, RecordType::kEntry);
  EXPECT_EQ(record.index, 42u);
  EXPECT_EQ(record.payload, "payload");
  EXPECT_EQ(record.size_bytes, kRecordHeaderBytes + 7);
  ASSERT_EQ(ParseRecord(std::string_view(bytes).substr(record.size_bytes), &record),
            ParseOutcome::kRecord);
  EXPECT_EQ(record.index, 43u);
  EXPECT_EQ(record.payload, "");
}

TEST(WalFormatTest, ParseOutcomes) {
  std::string record;
  AppendRecord(RecordType::kEntry, 1, "abcdef", &record);
  RecordView view;
  EXPECT_EQ(ParseRecord(std::string(kRecordHeaderBytes, '\0'), &view), ParseOutcome::kEndOfData);
  EXPECT_EQ(ParseRecord(std::string(7, '\0'), &view), ParseOutcome::kEndOfData);
  EXPECT_EQ(ParseRecord("", &view), ParseOutcome::kEndOfData);
  EXPECT_EQ(ParseRecord(record.substr(0, 10), &view), ParseOutcome::kTruncated);
  EXPECT_EQ(ParseRecord(record.substr(0, record.size() - 1), &view), ParseOutcome::kTruncated);

  std::string bad_type = record;
  bad_type[8] = 9;
  EXPECT_EQ(ParseRecord(bad_type, &view), ParseOutcome::kBadHeader);
  std::string bad_reserved = record;
  bad_reserved[10] = 1;
  EXPECT_EQ(ParseRecord(bad_reserved, &view), ParseOutcome::kBadHeader);
  std::string too_long = record;
  coding::EncodeFixed32(too_long.data() + 4, limits::kWalRecordBytesMax + 1);
  EXPECT_EQ(ParseRecord(too_long, &view), ParseOutcome::kBadHeader);

  // Every single-bit flip anywhere in the record is caught.
  for (size_t i = 0; i < record.size(); ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      std::string damaged = record;
      damaged[i] ^= static_cast<char>(1 << bit);
      EXPECT_NE(ParseRecord(damaged, &view), ParseOutcome::kRecord) << i << ":" << bit;
    }
  }
}

TEST(WalFormatTest, SegmentFileNamesSortInLogOrder) {
  EXPECT_EQ(SegmentFileName(3, 17), "00000000000000000003-00000000000000000017.wal");
  std::vector<std::string> names = {SegmentFileName(10, 5), SegmentFileName(9, 900),
                                    SegmentFileName(2, 1000)};
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names.front(), SegmentFileName(2, 1000));
  EXPECT_EQ(names.back(), SegmentFileName(10, 5));

  uint64_t sequence = 0, first_index = 0;
  ASSERT_TRUE(ParseSegmentFileName(SegmentFileName(UINT64_MAX, 12), &sequence, &first_index));
  EXPECT_EQ(sequence, UINT64_MAX);
  EXPECT_EQ(first_index, 12u);
  EXPECT_FALSE(ParseSegmentFileName("00000000000000000003-00000000000000000017.tmp", &sequence,
                                    &first_index));
  EXPECT_FALSE(ParseSegmentFileName("3-17.wal", &sequence, &first_index));
  EXPECT_FALSE(ParseSegmentFileName("0000000000000000000x-00000000000000000017.wal", &sequence,
                                    &first_index));
  EXPECT_FALSE(ParseSegmentFileName("99999999999999999999-00000000000000000017.wal", &sequence,
                                    &first_index));  // overflows 64 bits
}

}  // namespace
}  // namespace cairn::wal::format
