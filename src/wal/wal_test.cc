#include "src/wal/wal.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <atomic>
#include <filesystem>
#include <thread>

#include "src/base/limits.h"
#include "src/env/fault_injection_file_system.h"
#include "src/env/memory_file_system.h"
#include "src/env/posix_file_system.h"
#include "src/wal/wal_format.h"
#include "src/wal/wal_test_util.h"

namespace cairn::wal {
namespace {

using testing::Entries;
using testing::OpenOrDie;
using testing::Payload;
using testing::ReadAll;
using testing::SegmentFiles;

constexpr char kDir[] = "/data/wal";

class WalTest : public ::testing::TestWithParam<bool> {
 protected:
  WalTest() {
    options_.segment_size_bytes = 4096;
    options_.preallocate = GetParam();
  }

  std::unique_ptr<Wal> Open() { return OpenOrDie(&fs_, kDir, options_); }

  // Appends entries [LastIndex()+1, last] with payload sizes cycling through 1..max_size.
  void AppendThrough(Wal* wal, uint64_t last, size_t max_size = 300) {
    for (uint64_t index = wal->LastIndex() + 1; index <= last; ++index) {
      auto appended = wal->Append(Payload(index, 1 + index * 7 % max_size));
      ASSERT_TRUE(appended.ok()) << appended.status().ToString();
      ASSERT_EQ(*appended, index);
    }
  }

  // Checks entries [from, last] (later ones may exist).
  void ExpectEntries(Wal* wal, uint64_t from, uint64_t last, size_t max_size = 300) {
    Entries entries = ReadAll(wal, from);
    ASSERT_GE(entries.size(), last + 1 - from);
    for (uint64_t index = from; index <= last; ++index) {
      ASSERT_EQ(entries[index - from].first, index);
      ASSERT_EQ(entries[index - from].second, Payload(index, 1 + index * 7 % max_size))
          << "index " << index;
    }
  }

  env::MemoryFileSystem fs_;
  WalOptions options_;
};

TEST_P(WalTest, NewLogIsEmpty) {
  auto wal = Open();
  EXPECT_EQ(wal->FirstIndex(), 1u);
  EXPECT_EQ(wal->LastIndex(), 0u);
  EXPECT_EQ(wal->recovery().first_index, 0u);
  EXPECT_EQ(wal->recovery().last_index, 0u);
  EXPECT_FALSE(wal->recovery().tail_truncated);
  EXPECT_TRUE(ReadAll(wal.get(), 1).empty());
  EXPECT_EQ(SegmentFiles(&fs_, kDir),
            std::vector<std::string>{"00000000000000000001-00000000000000000001.wal"});
  wal.reset();
  wal = Open();
  EXPECT_EQ(wal->LastIndex(), 0u);
  EXPECT_EQ(wal->FirstIndex(), 1u);
}

TEST_P(WalTest, AppendReadReopen) {
  auto wal = Open();
  AppendThrough(wal.get(), 10);
  EXPECT_EQ(ReadAll(wal.get(), 1).size(), 10u);
  ExpectEntries(wal.get(), 1, 10);
  ExpectEntries(wal.get(), 7, 10);
  EXPECT_TRUE(ReadAll(wal.get(), 11).empty());
  ASSERT_TRUE(wal->Sync().ok());
  wal.reset();

  wal = Open();
  EXPECT_EQ(wal->FirstIndex(), 1u);
  EXPECT_EQ(wal->LastIndex(), 10u);
  EXPECT_EQ(wal->recovery().first_index, 1u);
  EXPECT_EQ(wal->recovery().last_index, 10u);
  EXPECT_FALSE(wal->recovery().tail_truncated);
  ExpectEntries(wal.get(), 1, 10);
  AppendThrough(wal.get(), 20);  // continues at 11
  ASSERT_TRUE(wal->Sync().ok());
  wal.reset();
  wal = Open();
  ExpectEntries(wal.get(), 1, 20);
}

TEST_P(WalTest, ReadFromStopsAtFirstError) {
  auto wal = Open();
  AppendThrough(wal.get(), 10);
  std::vector<uint64_t> seen;
  Status status = wal->ReadFrom(3, [&](uint64_t index, std::string_view) {
    seen.push_back(index);
    return index == 5 ? Status::Aborted("enough") : Status::Ok();
  });
  EXPECT_TRUE(status.Is(StatusCode::kAborted));
  EXPECT_EQ(seen, (std::vector<uint64_t>{3, 4, 5}));
}

TEST_P(WalTest, RotatesAcrossManySegments) {
  auto wal = Open();
  AppendThrough(wal.get(), 2000);
  ASSERT_TRUE(wal->Sync().ok());
  std::vector<std::string> files = SegmentFiles(&fs_, kDir);
  EXPECT_GT(files.size(), 50u);
  for (const std::string& name : files) {
    auto size = fs_.GetFileSize(std::string(kDir) + "/" + name);
    ASSERT_TRUE(size.ok());
    if (options_.preallocate) {
      EXPECT_EQ(*size, options_.segment_size_bytes) << name;
    } else {
      EXPECT_LE(*size, options_.segment_size_bytes) << name;
    }
  }
  EXPECT_EQ(wal->stats().segments_created, files.size());
  ExpectEntries(wal.get(), 1, 2000);
  for (uint64_t from : {1, 2, 63, 64, 65, 128, 999, 1500, 1999, 2000}) {
    ExpectEntries(wal.get(), from, 2000);
  }
  wal.reset();
  wal = Open();
  EXPECT_EQ(wal->recovery().segments, files.size());
  EXPECT_EQ(wal->LastIndex(), 2000u);
  ExpectEntries(wal.get(), 1, 2000);
  ExpectEntries(wal.get(), 1234, 2000);
}

TEST_P(WalTest, RecordLargerThanASegmentGetsItsOwn) {
  auto wal = Open();
  AppendThrough(wal.get(), 3);
  const std::string big(3 * options_.segment_size_bytes, 'b');
  ASSERT_EQ(*wal->Append(big), 4u);
  AppendThrough(wal.get(), 6);
  ASSERT_TRUE(wal->Sync().ok());
  wal.reset();
  wal = Open();
  Entries entries = ReadAll(wal.get(), 1);
  ASSERT_EQ(entries.size(), 6u);
  EXPECT_EQ(entries[3].second, big);
  EXPECT_EQ(entries[5].second, Payload(6, 1 + 6 * 7 % 300));
}

TEST_P(WalTest, RecordSizeLimit) {
  auto wal = Open();
  AppendThrough(wal.get(), 2);
  auto too_big = wal->Append(std::string(limits::kWalRecordBytesMax + 1, 'x'));
  EXPECT_TRUE(too_big.status().Is(StatusCode::kInvalidArgument)) << too_big.status().ToString();
  EXPECT_EQ(wal->LastIndex(), 2u);
  const std::string huge(limits::kWalRecordBytesMax + 1, 'z');
  std::vector<std::string_view> batch = {"ok", "fine", huge};
  EXPECT_TRUE(wal->AppendBatch(batch).status().Is(StatusCode::kInvalidArgument));
  EXPECT_EQ(wal->LastIndex(), 2u);  // all or nothing
  EXPECT_TRUE(wal->AppendBatch({}).status().Is(StatusCode::kInvalidArgument));

  const std::string max(limits::kWalRecordBytesMax, 'm');
  ASSERT_EQ(*wal->Append(max), 3u);  // exactly the limit is fine
  ASSERT_TRUE(wal->Sync().ok());
  wal.reset();
  wal = Open();
  Entries entries = ReadAll(wal.get(), 3);
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].second, max);
}

TEST_P(WalTest, AppendBatchAssignsConsecutiveIndexesAcrossSegments) {
  auto wal = Open();
  AppendThrough(wal.get(), 5);
  std::vector<std::string> storage;
  for (uint64_t index = 6; index <= 205; ++index)
    storage.push_back(Payload(index, 1 + index * 7 % 300));
  std::vector<std::string_view> views(storage.begin(), storage.end());
  auto first = wal->AppendBatch(views);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(*first, 6u);
  EXPECT_EQ(wal->LastIndex(), 205u);
  EXPECT_EQ(wal->stats().entries_appended, 205u);
  ASSERT_TRUE(wal->Sync().ok());
  wal.reset();
  wal = Open();
  ExpectEntries(wal.get(), 1, 205);
}

TEST_P(WalTest, TruncateSuffixThenAppendContinues) {
  auto wal = Open();
  AppendThrough(wal.get(), 500);
  const size_t segments_before = SegmentFiles(&fs_, kDir).size();

  ASSERT_TRUE(wal->TruncateSuffix(500).ok());  // no-op
  ASSERT_TRUE(wal->TruncateSuffix(9999).ok());
  EXPECT_EQ(wal->LastIndex(), 500u);

  ASSERT_TRUE(wal->TruncateSuffix(490).ok());  // inside the active segment
  EXPECT_EQ(wal->LastIndex(), 490u);
  ExpectEntries(wal.get(), 480, 490);

  ASSERT_TRUE(wal->TruncateSuffix(123).ok());  // across many segments
  EXPECT_EQ(wal->LastIndex(), 123u);
  EXPECT_LT(SegmentFiles(&fs_, kDir).size(), segments_before);
  ExpectEntries(wal.get(), 1, 123);

  // New entries at the same indexes carry different payloads.
  for (uint64_t index = 124; index <= 300; ++index) {
    ASSERT_EQ(*wal->Append(Payload(index, 50, /*salt=*/1)), index);
  }
  ASSERT_TRUE(wal->Sync().ok());
  wal.reset();

  wal = Open();
  EXPECT_EQ(wal->LastIndex(), 300u);
  ExpectEntries(wal.get(), 1, 123);
  Entries tail = ReadAll(wal.get(), 124);
  ASSERT_EQ(tail.size(), 177u);
  for (const auto& [index, payload] : tail) EXPECT_EQ(payload, Payload(index, 50, 1));
}

TEST_P(WalTest, TruncateSuffixIsDurableWithoutSync) {
  env::FaultInjectionFileSystem fs;
  auto wal = OpenOrDie(&fs, kDir, options_);
  for (uint64_t index = 1; index <= 300; ++index) ASSERT_TRUE(wal->Append(Payload(index, 40)).ok());
  ASSERT_TRUE(wal->Sync().ok());
  ASSERT_TRUE(wal->TruncateSuffix(42).ok());
  fs.SimulateCrash();  // no Sync after the truncation
  wal.reset();
  wal = OpenOrDie(&fs, kDir, options_);
  EXPECT_EQ(wal->LastIndex(), 42u);
  EXPECT_EQ(ReadAll(wal.get(), 1).size(), 42u);
}

TEST_P(WalTest, TruncateSuffixToBeforeEverything) {
  auto wal = Open();
  AppendThrough(wal.get(), 100);
  ASSERT_TRUE(wal->TruncateSuffix(0).ok());
  EXPECT_EQ(wal->LastIndex(), 0u);
  EXPECT_EQ(wal->FirstIndex(), 1u);
  EXPECT_TRUE(ReadAll(wal.get(), 1).empty());
  AppendThrough(wal.get(), 3);
  ASSERT_TRUE(wal->Sync().ok());
  wal.reset();
  wal = Open();
  ExpectEntries(wal.get(), 1, 3);
}

TEST_P(WalTest, TruncatePrefixDeletesOnlyOldSegments) {
  auto wal = Open();
  AppendThrough(wal.get(), 1000);
  ASSERT_TRUE(wal->Sync().ok());
  const std::vector<std::string> before = SegmentFiles(&fs_, kDir);

  ASSERT_TRUE(wal->TruncatePrefix(1).ok());
  EXPECT_EQ(SegmentFiles(&fs_, kDir), before);

  ASSERT_TRUE(wal->TruncatePrefix(500).ok());
  const std::vector<std::string> after = SegmentFiles(&fs_, kDir);
  EXPECT_LT(after.size(), before.size());
  EXPECT_GT(wal->FirstIndex(), 1u);
  EXPECT_LE(wal->FirstIndex(), 500u);
  // The surviving files are exactly the newest ones, and entry 500 is still there.
  EXPECT_TRUE(std::equal(after.begin(), after.end(), before.end() - after.size()));
  ExpectEntries(wal.get(), 500, 1000);
  ExpectEntries(wal.get(), wal->FirstIndex(), 1000);
  // Everything the deleted segments held is gone; ReadFrom says so instead of skipping.
  EXPECT_TRUE(wal->ReadFrom(1, [](uint64_t, std::string_view) { return Status::Ok(); })
                  .Is(StatusCode::kOutOfRange));
  EXPECT_TRUE(wal->TruncateSuffix(wal->FirstIndex() - 2).Is(StatusCode::kOutOfRange));

  const uint64_t first = wal->FirstIndex();
  wal.reset();
  wal = Open();
  EXPECT_EQ(wal->FirstIndex(), first);
  EXPECT_EQ(wal->recovery().first_index, first);
  ExpectEntries(wal.get(), first, 1000);

  // Never the active segment, even when asked for everything.
  ASSERT_TRUE(wal->TruncatePrefix(1'000'000).ok());
  EXPECT_EQ(SegmentFiles(&fs_, kDir).size(), 1u);
  EXPECT_EQ(wal->LastIndex(), 1000u);
  ExpectEntries(wal.get(), wal->FirstIndex(), 1000);
  AppendThrough(wal.get(), 1010);
  ExpectEntries(wal.get(), 1001, 1010);
}

TEST_P(WalTest, ResetRestartsTheLogAtAnyIndex) {
  auto wal = Open();
  AppendThrough(wal.get(), 300);
  ASSERT_TRUE(wal->Reset(5000).ok());
  EXPECT_EQ(wal->FirstIndex(), 5000u);
  EXPECT_EQ(wal->LastIndex(), 4999u);
  EXPECT_TRUE(ReadAll(wal.get(), 5000).empty());
  EXPECT_EQ(SegmentFiles(&fs_, kDir).size(), 1u);
  ASSERT_EQ(*wal->Append("after reset"), 5000u);
  ASSERT_TRUE(wal->Sync().ok());
  wal.reset();
  wal = Open();
  EXPECT_EQ(wal->FirstIndex(), 5000u);
  EXPECT_EQ(wal->LastIndex(), 5000u);

  ASSERT_TRUE(wal->Reset(7).ok());  // backwards too (the snapshot is older than the log)
  EXPECT_EQ(wal->LastIndex(), 6u);
  ASSERT_EQ(*wal->Append("seven"), 7u);
  ASSERT_TRUE(wal->Sync().ok());
  wal.reset();
  wal = Open();
  Entries entries = ReadAll(wal.get(), 7);
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0], (std::pair<uint64_t, std::string>{7, "seven"}));
}

TEST_P(WalTest, InterruptedResetCompletesOnRecovery) {
  env::FaultInjectionFileSystem fs;
  auto wal = OpenOrDie(&fs, kDir, options_);
  for (uint64_t index = 1; index <= 300; ++index) ASSERT_TRUE(wal->Append(Payload(index, 40)).ok());
  ASSERT_TRUE(wal->Sync().ok());
  const size_t old_segments = SegmentFiles(&fs, kDir).size();
  ASSERT_GT(old_segments, 2u);
  fs.FailNth(env::FileOperation::kDeleteFile, 2);  // the reset segment is durable, one old one gone
  EXPECT_FALSE(wal->Reset(100).ok());
  fs.SimulateCrash();
  wal.reset();
  ASSERT_EQ(SegmentFiles(&fs, kDir).size(), old_segments + 1);  // deletion was not dir-synced

  wal = OpenOrDie(&fs, kDir, options_);
  EXPECT_EQ(wal->recovery().obsolete_segments_deleted, old_segments);
  EXPECT_EQ(wal->FirstIndex(), 100u);
  EXPECT_EQ(wal->LastIndex(), 99u);
  EXPECT_EQ(SegmentFiles(&fs, kDir).size(), 1u);
  ASSERT_EQ(*wal->Append("x"), 100u);
}

TEST_P(WalTest, SyncCountsOnlyRealSyncs) {
  auto wal = Open();
  const uint64_t base = wal->stats().syncs;
  ASSERT_TRUE(wal->Sync().ok());
  EXPECT_EQ(wal->stats().syncs, base);  // nothing to sync
  AppendThrough(wal.get(), 5);
  ASSERT_TRUE(wal->Sync().ok());
  ASSERT_TRUE(wal->Sync().ok());
  EXPECT_EQ(wal->stats().syncs, base + 1);
}

TEST_P(WalTest, IoErrorStopsWritesUntilReopen) {
  env::FaultInjectionFileSystem fs;
  auto wal = OpenOrDie(&fs, kDir, options_);
  ASSERT_TRUE(wal->Append("one").ok());
  ASSERT_TRUE(wal->Sync().ok());
  ASSERT_TRUE(wal->Append("two").ok());
  fs.FailNth(env::FileOperation::kSync, 1);
  Status failed = wal->Sync();
  EXPECT_TRUE(failed.Is(StatusCode::kIoError));
  // Sticky: the kernel may have dropped the unsynced pages, so no retry pretends otherwise.
  EXPECT_EQ(wal->Sync(), failed);
  EXPECT_EQ(wal->Append("three").status(), failed);
  EXPECT_EQ(wal->TruncateSuffix(1), failed);
  // Reading still works.
  EXPECT_EQ(ReadAll(wal.get(), 1).size(), 2u);
  fs.SimulateCrash();
  wal.reset();
  wal = OpenOrDie(&fs, kDir, options_);
  Entries entries = ReadAll(wal.get(), 1);
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].second, "one");
  ASSERT_EQ(*wal->Append("two again"), 2u);
}

TEST_P(WalTest, ReadFromRunsConcurrentlyWithAppends) {
  auto wal = Open();
  constexpr uint64_t kLast = 3000;
  std::atomic<bool> done{false};
  std::thread writer([&] {
    for (uint64_t index = 1; index <= kLast; ++index) {
      ASSERT_TRUE(wal->Append(Payload(index, 1 + index * 7 % 300)).ok());
      if (index % 100 == 0) {
        ASSERT_TRUE(wal->Sync().ok());
      }
    }
    done = true;
  });
  uint64_t reads = 0;
  while (!done.load() || reads == 0) {
    const uint64_t last_before = wal->LastIndex();
    const uint64_t from = last_before > 50 ? last_before - 50 : 1;
    uint64_t expected = from;
    ASSERT_TRUE(wal->ReadFrom(from,
                              [&](uint64_t index, std::string_view payload) {
                                EXPECT_EQ(index, expected++);
                                EXPECT_EQ(payload, Payload(index, 1 + index * 7 % 300));
                                return Status::Ok();
                              })
                    .ok());
    EXPECT_GT(expected, last_before);  // at least everything appended before the call
    ++reads;
  }
  writer.join();
  ExpectEntries(wal.get(), 1, kLast);
}

TEST_P(WalTest, RejectsTinySegments) {
  WalOptions options = options_;
  options.segment_size_bytes = 100;
  EXPECT_TRUE(Wal::Open(&fs_, kDir, options).status().Is(StatusCode::kInvalidArgument));
}

INSTANTIATE_TEST_SUITE_P(Preallocate, WalTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? "Preallocated" : "Growing";
                         });

// zero_filled_segments: segments written as zeros ahead by a background thread.
class WalZeroFilledTest : public ::testing::Test {
 protected:
  WalZeroFilledTest() {
    options_.segment_size_bytes = 4096;
    options_.zero_filled_segments = true;
  }
  std::unique_ptr<Wal> Open() { return OpenOrDie(&fs_, kDir, options_); }
  // Waits until the background thread has made `count` segments in all.
  static bool WaitForPrepared(Wal* wal, uint64_t count) {
    for (int i = 0; i < 10000 && wal->stats().segments_prepared < count; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return wal->stats().segments_prepared >= count;
  }
  // Waits until a prepared segment waits for the next rotation.
  static bool WaitForReady(Wal* wal) {
    for (int i = 0; i < 10000 && !wal->stats().next_segment_ready; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return wal->stats().next_segment_ready;
  }
  void Append(Wal* wal, uint64_t index) {
    auto appended = wal->Append(Payload(index, 100));
    ASSERT_TRUE(appended.ok()) << appended.status().ToString();
    ASSERT_EQ(*appended, index);
  }

  env::FaultInjectionFileSystem fs_;
  WalOptions options_;
};

// The first segment (made at Open) is left for a zero-filled one as soon as one is ready; the
// prepared file becomes the next segment, full size, and what was synced survives a crash.
TEST_F(WalZeroFilledTest, TheLogMovesToAPreparedSegmentAndSurvivesACrash) {
  auto wal = Open();
  Append(wal.get(), 1);
  ASSERT_TRUE(WaitForPrepared(wal.get(), 1));
  EXPECT_EQ(wal->stats().segments_created, 1u);
  Append(wal.get(), 2);  // moves on to the prepared segment
  EXPECT_EQ(wal->stats().segments_created, 2u);
  ASSERT_TRUE(wal->Sync().ok());
  std::vector<std::string> files = SegmentFiles(&fs_, kDir);
  ASSERT_EQ(files.size(), 2u);
  auto size = fs_.GetFileSize(std::string(kDir) + "/" + files[1]);
  ASSERT_TRUE(size.ok());
  EXPECT_EQ(*size, options_.segment_size_bytes);
  ASSERT_TRUE(WaitForPrepared(wal.get(), 2));  // the thread made the one after
  wal.reset();
  fs_.SimulateCrash();
  wal = Open();
  EXPECT_EQ(wal->LastIndex(), 2u);
  Entries entries = ReadAll(wal.get(), 1);
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[1].second, Payload(2, 100));
}

// Many rotations, each onto a prepared segment: every entry reads back, before and after
// reopening; a stale prepared file left by an earlier run is overwritten, never read as a
// segment.
TEST_F(WalZeroFilledTest, ManyRotationsReadBackAcrossReopen) {
  ASSERT_TRUE(fs_.CreateDirs(kDir).ok());
  {
    auto stale = fs_.NewWritableFile(std::string(kDir) + "/next-segment.tmp");
    ASSERT_TRUE(stale.ok());
    ASSERT_TRUE((*stale)->Append("stale bytes").ok());
    ASSERT_TRUE((*stale)->Sync().ok());
  }
  auto wal = Open();
  for (uint64_t index = 1; index <= 600; ++index) {
    ASSERT_TRUE(WaitForReady(wal.get()));
    Append(wal.get(), index);
    if (index % 50 == 0) {
      ASSERT_TRUE(wal->Sync().ok());
    }
  }
  ASSERT_TRUE(wal->Sync().ok());
  const uint64_t segments = SegmentFiles(&fs_, kDir).size();
  EXPECT_GT(segments, 10u);
  // Every segment but the first came from the thread (which has made one more by now).
  EXPECT_EQ(wal->stats().segments_created, segments);
  ASSERT_TRUE(WaitForReady(wal.get()));
  EXPECT_EQ(wal->stats().segments_prepared, segments);
  for (const std::string& name : SegmentFiles(&fs_, kDir)) {
    auto size = fs_.GetFileSize(std::string(kDir) + "/" + name);
    ASSERT_TRUE(size.ok());
    EXPECT_EQ(*size, options_.segment_size_bytes) << name;
  }
  wal.reset();
  wal = Open();
  EXPECT_EQ(wal->recovery().segments, segments);
  EXPECT_FALSE(wal->recovery().tail_truncated);
  Entries entries = ReadAll(wal.get(), 1);
  ASSERT_EQ(entries.size(), 600u);
  for (uint64_t index = 1; index <= 600; ++index) {
    ASSERT_EQ(entries[index - 1].second, Payload(index, 100)) << index;
  }
}

// The same log on the real file system: preallocated segments keep their size, and the log
// survives reopening.
class WalPosixTest : public ::testing::TestWithParam<bool> {};

TEST_P(WalPosixTest, AppendRotateTruncateReopen) {
  const char* tmp = std::getenv("TMPDIR");
  std::string dir = std::string(tmp != nullptr && *tmp ? tmp : "/tmp") + "/cairn_wal_test_XXXXXX";
  ASSERT_NE(::mkdtemp(dir.data()), nullptr);
  env::FileSystem* fs = env::PosixFileSystem::Default();
  WalOptions options;
  options.segment_size_bytes = 64 * 1024;
  options.zero_filled_segments = GetParam();
  {
    auto wal = OpenOrDie(fs, dir, options);
    for (uint64_t index = 1; index <= 2000; ++index) {
      ASSERT_EQ(*wal->Append(Payload(index, 100)), index);
    }
    ASSERT_TRUE(wal->Sync().ok());
    ASSERT_TRUE(wal->TruncateSuffix(1900).ok());
    ASSERT_EQ(*wal->Append(Payload(1901, 10, 5)), 1901u);
    ASSERT_TRUE(wal->Sync().ok());
    ASSERT_TRUE(wal->TruncatePrefix(1000).ok());
  }
  auto files = SegmentFiles(fs, dir);
  ASSERT_GT(files.size(), 1u);
  for (const std::string& name : files) {
    auto size = fs->GetFileSize(dir + "/" + name);
    ASSERT_TRUE(size.ok());
    EXPECT_EQ(*size, options.segment_size_bytes) << name;
  }
  {
    auto wal = OpenOrDie(fs, dir, options);
    EXPECT_FALSE(wal->recovery().tail_truncated);
    EXPECT_LE(wal->FirstIndex(), 1000u);
    EXPECT_EQ(wal->LastIndex(), 1901u);
    Entries entries = ReadAll(wal.get(), 1000);
    ASSERT_EQ(entries.size(), 902u);
    EXPECT_EQ(entries[0].second, Payload(1000, 100));
    EXPECT_EQ(entries.back().second, Payload(1901, 10, 5));
  }
  std::filesystem::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(Segments, WalPosixTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? "ZeroFilled" : "Fallocated";
                         });

}  // namespace
}  // namespace cairn::wal
