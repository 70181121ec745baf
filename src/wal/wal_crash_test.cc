// Crash, torn-write and corruption tests on the fault-injecting file system: what Sync
// acknowledged survives, torn tails are cut and reported, and damage anywhere else stops
// Open with a message naming the segment file and byte offset.
#include <gtest/gtest.h>

#include "src/base/coding.h"
#include "src/env/fault_injection_file_system.h"
#include "src/wal/wal.h"
#include "src/wal/wal_format.h"
#include "src/wal/wal_test_util.h"

namespace cairn::wal {
namespace {

using testing::Entries;
using testing::OpenOrDie;
using testing::Payload;
using testing::ReadAll;
using testing::SegmentFiles;

constexpr char kDir[] = "/wal";

// The model of what was appended: payloads by index, and how far a Sync has covered.
struct Expected {
  std::vector<std::string> payloads;  // payloads[i] is entry i + 1
  uint64_t synced = 0;
};

// Appends random batches, syncing now and then; returns after `steps` batches.
void RandomWorkload(Wal* wal, env::Random* random, int steps, Expected* expected) {
  for (int step = 0; step < steps; ++step) {
    const size_t count = 1 + random->Uniform(5);
    std::vector<std::string> batch;
    for (size_t i = 0; i < count; ++i) {
      const uint64_t index = expected->payloads.size() + 1 + i;
      batch.push_back(Payload(index, 1 + random->Uniform(400), random->seed()));
    }
    std::vector<std::string_view> views(batch.begin(), batch.end());
    auto first = wal->AppendBatch(views);
    ASSERT_TRUE(first.ok()) << first.status().ToString();
    ASSERT_EQ(*first, expected->payloads.size() + 1);
    for (std::string& payload : batch) expected->payloads.push_back(std::move(payload));
    if (random->Bernoulli(0.3)) {
      ASSERT_TRUE(wal->Sync().ok());
      expected->synced = expected->payloads.size();
    }
  }
}

// After a crash: every synced entry is there, nothing else but a prefix of what was appended.
void VerifyRecovered(Wal* wal, Expected* expected, const std::string& context) {
  ASSERT_EQ(wal->FirstIndex(), 1u) << context;
  ASSERT_GE(wal->LastIndex(), expected->synced) << context;
  ASSERT_LE(wal->LastIndex(), expected->payloads.size()) << context;
  Entries entries = ReadAll(wal, 1);
  ASSERT_EQ(entries.size(), wal->LastIndex()) << context;
  for (const auto& [index, payload] : entries) {
    ASSERT_EQ(payload, expected->payloads[index - 1]) << context << " index " << index;
  }
  expected->payloads.resize(wal->LastIndex());
  expected->synced = wal->LastIndex();  // recovery made what it kept durable
}

class WalCrashTest : public ::testing::TestWithParam<bool> {
 protected:
  WalCrashTest() {
    options_.segment_size_bytes = 4096;
    options_.preallocate = GetParam();
  }
  WalOptions options_;
};

TEST_P(WalCrashTest, CrashKeepsEverySyncedEntry) {
  for (uint64_t seed = 1; seed <= 40; ++seed) {
    env::FaultInjectionFileSystem fs;
    env::Random random(seed);
    Expected expected;
    for (int round = 0; round < 4; ++round) {
      const std::string context =
          "seed " + std::to_string(seed) + " round " + std::to_string(round);
      auto wal = OpenOrDie(&fs, kDir, options_);
      ASSERT_NE(wal, nullptr) << context;
      if (round > 0) VerifyRecovered(wal.get(), &expected, context);
      ASSERT_FALSE(wal->recovery().tail_truncated) << context;  // nothing was torn
      RandomWorkload(wal.get(), &random, 40, &expected);
      fs.SimulateCrash();
    }
  }
}

TEST_P(WalCrashTest, TornTailIsCutAndLogContinues) {
  int truncations = 0;
  for (uint64_t seed = 1; seed <= 300; ++seed) {
    env::FaultInjectionFileSystem fs;
    env::Random random(seed);
    Expected expected;
    for (int round = 0; round < 3; ++round) {
      const std::string context =
          "seed " + std::to_string(seed) + " round " + std::to_string(round);
      auto wal = Wal::Open(&fs, kDir, options_);
      ASSERT_TRUE(wal.ok()) << context << ": " << wal.status().ToString();
      if (round > 0) VerifyRecovered(wal->get(), &expected, context);
      const RecoveryInfo& info = (*wal)->recovery();
      if (info.tail_truncated) {
        ++truncations;
        EXPECT_FALSE(info.truncated_segment.empty());
        EXPECT_GT(info.truncated_bytes, 0u);
      }
      RandomWorkload(wal->get(), &random, 1 + random.Uniform(30), &expected);
      fs.SimulateCrashWithTornWrite(random);
    }
  }
  EXPECT_GT(truncations, 50);  // the seeds really produce torn tails
}

INSTANTIATE_TEST_SUITE_P(Preallocate, WalCrashTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? "Preallocated" : "Growing";
                         });

// Fixed-size entries make every record's offset computable: 40 + (index - first) * 120.
class WalDamageTest : public ::testing::Test {
 protected:
  static constexpr size_t kPayloadBytes = 100;
  static constexpr size_t kRecordBytes = format::kRecordHeaderBytes + kPayloadBytes;

  WalDamageTest() { options_.segment_size_bytes = 4096; }

  // Writes entries 1..count (synced) and closes the log.
  void Write(uint64_t count) {
    auto wal = OpenOrDie(&fs_, kDir, options_);
    for (uint64_t index = 1; index <= count; ++index) {
      ASSERT_EQ(*wal->Append(Payload(index, kPayloadBytes)), index);
    }
    ASSERT_TRUE(wal->Sync().ok());
  }
  std::string SegmentPath(size_t position) {
    return std::string(kDir) + "/" + SegmentFiles(&fs_, kDir).at(position);
  }
  static uint64_t RecordOffset(uint64_t position_in_segment) {
    return format::kSegmentHeaderBytes + position_in_segment * kRecordBytes;
  }
  void Modify(const std::string& path, const std::function<void(std::string*)>& change) {
    auto contents = fs_.ReadWholeFile(path);
    ASSERT_TRUE(contents.ok());
    change(&*contents);
    ASSERT_TRUE(fs_.OverwriteFile(path, *contents).ok());
  }
  void FlipByte(const std::string& path, uint64_t offset) {
    Modify(path, [&](std::string* contents) { (*contents)[offset] ^= 0x40; });
  }
  // Open must fail with Corruption naming the segment's file and the offset.
  void ExpectCorruption(const std::string& path, uint64_t offset) {
    auto wal = Wal::Open(&fs_, kDir, options_);
    ASSERT_FALSE(wal.ok());
    const Status& status = wal.status();
    EXPECT_TRUE(status.Is(StatusCode::kCorruption)) << status.ToString();
    EXPECT_NE(status.message().find(std::string(env::BaseName(path))), std::string_view::npos)
        << status.ToString();
    EXPECT_NE(status.message().find("offset " + std::to_string(offset)), std::string_view::npos)
        << status.ToString();
  }

  env::FaultInjectionFileSystem fs_;
  WalOptions options_;
};

TEST_F(WalDamageTest, FlippedByteInEarlyRecordOfLastSegment) {
  options_.segment_size_bytes = 1 << 20;  // one segment
  Write(20);
  const std::string path = SegmentPath(0);
  FlipByte(path, RecordOffset(2) + 25);  // payload of entry 3
  ExpectCorruption(path, RecordOffset(2));
}

TEST_F(WalDamageTest, FlippedByteInEveryPositionOfAnEarlyRecord) {
  options_.segment_size_bytes = 1 << 20;
  Write(5);
  const std::string path = SegmentPath(0);
  auto original = fs_.ReadWholeFile(path);
  ASSERT_TRUE(original.ok());
  for (uint64_t offset = RecordOffset(1); offset < RecordOffset(2); ++offset) {
    ASSERT_TRUE(fs_.OverwriteFile(path, *original).ok());
    FlipByte(path, offset);
    SCOPED_TRACE("flipped offset " + std::to_string(offset));
    ExpectCorruption(path, RecordOffset(1));
  }
}

TEST_F(WalDamageTest, DamageAtTheEndOfANonLastSegment) {
  Write(200);
  ASSERT_GT(SegmentFiles(&fs_, kDir).size(), 2u);
  // The last record of the first segment: it would pass for a torn tail in the last one.
  const uint64_t per_segment =
      (options_.segment_size_bytes - format::kSegmentHeaderBytes) / kRecordBytes;
  const std::string path = SegmentPath(0);
  FlipByte(path, RecordOffset(per_segment - 1) + 50);
  ExpectCorruption(path, RecordOffset(per_segment - 1));
}

TEST_F(WalDamageTest, TruncatedNonLastSegment) {
  options_.preallocate = false;
  Write(200);
  const uint64_t per_segment =
      (options_.segment_size_bytes - format::kSegmentHeaderBytes) / kRecordBytes;
  const std::string path = SegmentPath(1);
  ASSERT_TRUE(fs_.TruncateFile(path, RecordOffset(per_segment - 1) + 7).ok());
  ExpectCorruption(path, RecordOffset(per_segment - 1));
}

TEST_F(WalDamageTest, GarbageAfterTheDataOfANonLastSegment) {
  Write(200);
  const uint64_t per_segment =
      (options_.segment_size_bytes - format::kSegmentHeaderBytes) / kRecordBytes;
  const std::string path = SegmentPath(0);
  FlipByte(path, options_.segment_size_bytes - 3);  // inside the preallocated zeros
  ExpectCorruption(path, RecordOffset(per_segment));
}

TEST_F(WalDamageTest, DamagedHeaderOfANonLastSegment) {
  Write(200);
  const std::string path = SegmentPath(1);
  FlipByte(path, 20);
  ExpectCorruption(path, 0);
}

TEST_F(WalDamageTest, BadLengthInTheMiddle) {
  options_.segment_size_bytes = 1 << 20;
  Write(20);
  const std::string path = SegmentPath(0);
  Modify(path, [&](std::string* contents) {
    coding::EncodeFixed32(contents->data() + RecordOffset(4) + 4, 0x7fffffff);
  });
  ExpectCorruption(path, RecordOffset(4));
}

TEST_F(WalDamageTest, ValidRecordWithTheWrongIndex) {
  options_.segment_size_bytes = 1 << 20;
  Write(20);
  const std::string path = SegmentPath(0);
  Modify(path, [&](std::string* contents) {
    std::string record;
    format::AppendRecord(format::RecordType::kEntry, 77, Payload(6, kPayloadBytes), &record);
    contents->replace(RecordOffset(5), record.size(), record);
  });
  ExpectCorruption(path, RecordOffset(5));
}

TEST_F(WalDamageTest, ReservedRecordTypeIsRefused) {
  options_.segment_size_bytes = 1 << 20;
  Write(3);
  const std::string path = SegmentPath(0);
  Modify(path, [&](std::string* contents) {
    std::string record;
    format::AppendRecord(format::RecordType::kHardState, 2, Payload(2, kPayloadBytes), &record);
    contents->replace(RecordOffset(1), record.size(), record);
  });
  ExpectCorruption(path, RecordOffset(1));
}

TEST_F(WalDamageTest, MissingMiddleSegmentIsAnIndexGap) {
  Write(200);
  const std::string missing = SegmentPath(1);
  const std::string after = SegmentPath(2);
  ASSERT_TRUE(fs_.DeleteFile(missing).ok());
  auto wal = Wal::Open(&fs_, kDir, options_);
  ASSERT_TRUE(wal.status().Is(StatusCode::kCorruption)) << wal.status().ToString();
  EXPECT_NE(wal.status().message().find(std::string(env::BaseName(after))), std::string_view::npos);
  EXPECT_NE(wal.status().message().find("index gap"), std::string_view::npos);
  EXPECT_NE(wal.status().message().find("offset 0"), std::string_view::npos);
}

TEST_F(WalDamageTest, TornLastRecordIsCutAndReported) {
  options_.preallocate = false;
  options_.segment_size_bytes = 1 << 20;
  Write(10);
  const std::string path = SegmentPath(0);
  ASSERT_TRUE(fs_.TruncateFile(path, RecordOffset(9) + 33).ok());  // entry 10 half written
  auto wal = OpenOrDie(&fs_, kDir, options_);
  const RecoveryInfo& info = wal->recovery();
  EXPECT_TRUE(info.tail_truncated);
  EXPECT_EQ(info.truncated_segment, path);
  EXPECT_EQ(info.truncated_offset, RecordOffset(9));
  EXPECT_EQ(info.truncated_bytes, 33u);
  EXPECT_EQ(info.last_index, 9u);
  EXPECT_EQ(*fs_.GetFileSize(path), RecordOffset(9));
  ASSERT_EQ(*wal->Append("ten"), 10u);
  ASSERT_TRUE(wal->Sync().ok());
  wal.reset();
  wal = OpenOrDie(&fs_, kDir, options_);
  EXPECT_FALSE(wal->recovery().tail_truncated);
  EXPECT_EQ(ReadAll(wal.get(), 10).at(0).second, "ten");
}

TEST_F(WalDamageTest, GarbageTailInPreallocatedSegmentIsCut) {
  options_.segment_size_bytes = 1 << 20;
  Write(10);
  const std::string path = SegmentPath(0);
  Modify(path, [&](std::string* contents) {
    contents->replace(RecordOffset(10), 5, "\x01\x02\x03\x04\x05");
  });
  auto wal = OpenOrDie(&fs_, kDir, options_);
  EXPECT_TRUE(wal->recovery().tail_truncated);
  EXPECT_EQ(wal->recovery().truncated_offset, RecordOffset(10));
  EXPECT_EQ(wal->recovery().truncated_bytes, 5u);
  EXPECT_EQ(wal->LastIndex(), 10u);
}

TEST_F(WalDamageTest, TornHeaderOfTheNewestSegmentIsRemoved) {
  Write(100);
  const std::vector<std::string> files = SegmentFiles(&fs_, kDir);
  uint64_t sequence = 0, first_index = 0;
  ASSERT_TRUE(format::ParseSegmentFileName(files.back(), &sequence, &first_index));
  const std::string torn = std::string(kDir) + "/" + format::SegmentFileName(sequence + 1, 101);
  std::string header;
  format::EncodeSegmentHeader({format::kFormatVersion, 0, sequence + 1, 101}, &header);
  auto file = fs_.NewWritableFile(torn);
  ASSERT_TRUE(file.ok());
  ASSERT_TRUE((*file)->Append(header.substr(0, 17)).ok());
  file->reset();

  auto wal = OpenOrDie(&fs_, kDir, options_);
  EXPECT_TRUE(wal->recovery().tail_truncated);
  EXPECT_EQ(wal->recovery().truncated_segment, torn);
  EXPECT_EQ(wal->recovery().truncated_offset, 0u);
  EXPECT_FALSE(fs_.FileExists(torn));
  EXPECT_EQ(wal->LastIndex(), 100u);
  ASSERT_EQ(*wal->Append("x"), 101u);
}

TEST_F(WalDamageTest, CrashRightAfterRotationWithoutSync) {
  auto wal = OpenOrDie(&fs_, kDir, options_);
  uint64_t index = 1;
  for (; SegmentFiles(&fs_, kDir).size() < 2; ++index) {
    ASSERT_EQ(*wal->Append(Payload(index, kPayloadBytes)), index);
  }
  // Rotation synced the first segment; the second was never covered by a SyncDir.
  fs_.SimulateCrash();
  wal.reset();
  wal = OpenOrDie(&fs_, kDir, options_);
  EXPECT_EQ(wal->LastIndex(), index - 2);  // everything in the first segment
  EXPECT_EQ(SegmentFiles(&fs_, kDir).size(), 1u);
  ASSERT_EQ(*wal->Append("next"), index - 1);
}

// Regression: a segment created by rotation just before the process stopped (no Sync, so
// its name was never dir-synced) was recovered on reopen, and a later Sync returned OK
// without syncing the directory: a power loss then dropped the segment and acknowledged
// entries. Recovery now syncs the directory.
TEST_F(WalDamageTest, ReopenMakesRecoveredSegmentNamesDurable) {
  auto wal = OpenOrDie(&fs_, kDir, options_);
  uint64_t index = 1;
  for (; SegmentFiles(&fs_, kDir).size() < 2; ++index) {
    ASSERT_EQ(*wal->Append(Payload(index, kPayloadBytes)), index);
  }
  wal.reset();  // the process stops; the page cache (current file system state) survives
  wal = OpenOrDie(&fs_, kDir, options_);
  const uint64_t last = wal->LastIndex();
  ASSERT_EQ(last, index - 1);
  ASSERT_TRUE(wal->Sync().ok());
  fs_.SimulateCrash();  // power loss
  wal.reset();
  wal = OpenOrDie(&fs_, kDir, options_);
  EXPECT_EQ(wal->LastIndex(), last);
}

}  // namespace
}  // namespace cairn::wal
