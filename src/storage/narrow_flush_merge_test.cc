#include "src/storage/narrow_flush_merge.h"

#include <gtest/gtest.h>
#include <rocksdb/comparator.h>
#include <rocksdb/db.h>
#include <rocksdb/options.h>

#include <chrono>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "src/storage/engine_test_util.h"

namespace cairn::storage::internal {
namespace {

using storage::testing::ScratchDir;

rocksdb::SstFileMetaData File(const std::string& name, uint64_t seqno, const std::string& smallest,
                              const std::string& largest, uint64_t size,
                              bool being_compacted = false) {
  rocksdb::SstFileMetaData file;
  file.name = name;
  file.largest_seqno = seqno;
  file.smallest_seqno = seqno;
  file.smallestkey = smallest;
  file.largestkey = largest;
  file.size = size;
  file.being_compacted = being_compacted;
  return file;
}

// Seven levels: `l0`, empty levels 1..4, `l5`, `l6`.
rocksdb::ColumnFamilyMetaData Metadata(std::vector<rocksdb::SstFileMetaData> l0,
                                       std::vector<rocksdb::SstFileMetaData> l5 = {},
                                       std::vector<rocksdb::SstFileMetaData> l6 = {}) {
  std::vector<rocksdb::LevelMetaData> levels;
  levels.emplace_back(0, 0, std::move(l0));
  for (int level = 1; level <= 4; ++level)
    levels.emplace_back(level, 0, std::vector<rocksdb::SstFileMetaData>{});
  levels.emplace_back(5, 0, std::move(l5));
  levels.emplace_back(6, 0, std::move(l6));
  return rocksdb::ColumnFamilyMetaData("family", 0, std::move(levels));
}

std::optional<NarrowMerge> Pick(const rocksdb::ColumnFamilyMetaData& metadata) {
  return PickNarrowL0Files(metadata, *rocksdb::BytewiseComparator());
}

TEST(PickNarrowL0FileTest, OldestDisjointFileGoesToTheFirstLevelThatHoldsFiles) {
  auto metadata = Metadata(
      {File("/3.sst", 30, "k300", "k399", 1000), File("/2.sst", 20, "k200", "k299", 1000)},
      {File("/1.sst", 10, "k000", "k199", 5000)}, {File("/0.sst", 5, "k000", "k999", 50000)});
  auto pick = Pick(metadata);
  ASSERT_TRUE(pick.has_value());
  EXPECT_EQ(pick->files, (std::vector<std::string>{"/2.sst"}));
  EXPECT_EQ(pick->output_level, 5);
  EXPECT_EQ(pick->bytes, 1000u);
}

TEST(PickNarrowL0FileTest, EmptyLevelsBelowMeansTheLastLevel) {
  auto pick = Pick(Metadata({File("/1.sst", 10, "a", "b", 1000)}));
  ASSERT_TRUE(pick.has_value());
  EXPECT_EQ(pick->files, (std::vector<std::string>{"/1.sst"}));
  EXPECT_EQ(pick->output_level, 6);
}

TEST(PickNarrowL0FileTest, OnlyTheOldestFilesAndOnlyWhenTheyOverlapNoOtherL0File) {
  const rocksdb::SstFileMetaData whole_base = File("/0.sst", 5, "k000", "k999", 50000);
  // 3 overlaps nothing, but merging it would take the older two with it: 1 and 2 overlap
  // each other, and go together.
  auto pick = Pick(
      Metadata({File("/1.sst", 10, "k000", "k500", 1000), File("/2.sst", 20, "k100", "k600", 1000),
                File("/3.sst", 30, "k700", "k799", 1000)},
               {}, {File("/0.sst", 5, "k900", "k999", 50000)}));
  ASSERT_TRUE(pick.has_value());
  EXPECT_EQ(pick->files, (std::vector<std::string>{"/1.sst", "/2.sst"}));
  EXPECT_EQ(pick->bytes, 2000u);
  // The oldest overlaps a newer file of random keys, which overlaps the whole base level.
  EXPECT_FALSE(Pick(Metadata({File("/1.sst", 10, "k000", "k099", 1000),
                              File("/2.sst", 20, "k000", "k999", 1000)},
                             {}, {whole_base}))
                   .has_value());
  // A file touching another only at one key overlaps it too.
  pick = Pick(Metadata({File("/1.sst", 10, "a", "m", 1000), File("/2.sst", 20, "m", "y", 1000),
                        File("/3.sst", 30, "z", "zz", 1000)}));
  ASSERT_TRUE(pick.has_value());
  EXPECT_EQ(pick->files, (std::vector<std::string>{"/1.sst", "/2.sst"}));
  // The oldest is picked whatever the listing order.
  pick = Pick(Metadata({File("/1.sst", 10, "a", "b", 1000), File("/3.sst", 30, "e", "f", 1000),
                        File("/2.sst", 20, "c", "d", 1000)}));
  ASSERT_TRUE(pick.has_value());
  EXPECT_EQ(pick->files, (std::vector<std::string>{"/1.sst"}));
}

TEST(PickNarrowL0FileTest, StragglersOverAFlushBoundaryGoTogether) {
  // A load by many clients: each flush shares a few keys with the next.
  auto pick = Pick(Metadata(
      {File("/12.sst", 120, "k0200", "k0300", 1000), File("/11.sst", 110, "k0095", "k0200", 1000),
       File("/10.sst", 100, "k0000", "k0100", 1000)},
      {File("/1.sst", 10, "k5000", "k5999", 9000)}));
  ASSERT_TRUE(pick.has_value());
  EXPECT_EQ(pick->files, (std::vector<std::string>{"/10.sst", "/11.sst", "/12.sst"}));
  EXPECT_EQ(pick->output_level, 5);
  // A chain longer than kNarrowMergeFilesMax waits for RocksDB's merge.
  std::vector<rocksdb::SstFileMetaData> chain;
  for (size_t i = 0; i <= kNarrowMergeFilesMax; ++i) {
    chain.push_back(File("/" + std::to_string(i) + ".sst", i, "k" + std::to_string(100 + i * 10),
                         "k" + std::to_string(110 + i * 10), 1000));
  }
  EXPECT_FALSE(Pick(Metadata(chain)).has_value());
  chain.pop_back();
  EXPECT_TRUE(Pick(Metadata(chain)).has_value());
}

TEST(PickNarrowL0FileTest, AFileOverlappingMoreThanAnEighthOfItsSizeInTheBaseLevelStays) {
  const std::vector<rocksdb::SstFileMetaData> l0 = {File("/9.sst", 90, "k100", "k199", 8000)};
  // Exactly an eighth: merged.
  EXPECT_TRUE(Pick(Metadata(l0, {File("/1.sst", 10, "k150", "k250", 1000),
                                 File("/2.sst", 11, "k300", "k399", 90000)}))
                  .has_value());
  // One byte more: stays.
  EXPECT_FALSE(Pick(Metadata(l0, {File("/1.sst", 10, "k150", "k250", 1001),
                                  File("/2.sst", 11, "k300", "k399", 90000)}))
                   .has_value());
  // Random keys overlap the whole base level.
  EXPECT_FALSE(Pick(Metadata({File("/9.sst", 90, "k000", "k999", 8000)},
                             {File("/1.sst", 10, "k000", "k499", 8000),
                              File("/2.sst", 11, "k500", "k999", 8000)}))
                   .has_value());
}

TEST(PickNarrowL0FileTest, TheBoundaryFileJoinsWhenNoLargerThanTheGroup) {
  // The group's stragglers fall into the base level's last file, which holds its smallest key
  // and ends inside it: that file joins the merge, whatever its share of the group's size, up to
  // the group's size.
  const std::vector<rocksdb::SstFileMetaData> l0 = {File("/9.sst", 90, "k150", "k299", 8000)};
  const rocksdb::SstFileMetaData first = File("/1.sst", 10, "k000", "k099", 50000);
  auto pick = Pick(Metadata(l0, {first, File("/2.sst", 11, "k100", "k199", 8000)}));
  ASSERT_TRUE(pick.has_value());
  EXPECT_EQ(pick->files, (std::vector<std::string>{"/9.sst"}));
  EXPECT_EQ(pick->base_file, "/2.sst");
  EXPECT_EQ(pick->output_level, 5);
  EXPECT_EQ(pick->bytes, 8000u);
  // Larger than the group: it counts as any other overlap.
  EXPECT_FALSE(Pick(Metadata(l0, {first, File("/2.sst", 11, "k100", "k199", 8001)})).has_value());
  // Starting at the group's smallest key counts as holding it.
  pick = Pick(Metadata(l0, {File("/2.sst", 11, "k150", "k160", 8000)}));
  ASSERT_TRUE(pick.has_value());
  EXPECT_EQ(pick->base_file, "/2.sst");
  // Another file beyond the boundary file counts towards the eighth.
  pick = Pick(Metadata(
      l0, {File("/2.sst", 11, "k100", "k199", 8000), File("/3.sst", 12, "k250", "k260", 1000)}));
  ASSERT_TRUE(pick.has_value());
  EXPECT_EQ(pick->base_file, "/2.sst");
  EXPECT_FALSE(Pick(Metadata(l0, {File("/2.sst", 11, "k100", "k199", 8000),
                                  File("/3.sst", 12, "k250", "k260", 1001)}))
                   .has_value());
  // Not boundary files: one overlapped at its lower end only, one ending at or beyond the
  // group's largest key, one starting inside the group.
  pick = Pick(Metadata(l0, {File("/2.sst", 11, "k250", "k399", 1000)}));
  ASSERT_TRUE(pick.has_value());
  EXPECT_EQ(pick->base_file, "");
  EXPECT_FALSE(Pick(Metadata(l0, {File("/2.sst", 11, "k250", "k399", 1001)})).has_value());
  EXPECT_FALSE(Pick(Metadata(l0, {File("/2.sst", 11, "k100", "k299", 2000)})).has_value());
  EXPECT_FALSE(Pick(Metadata(l0, {File("/2.sst", 11, "k151", "k200", 2000)})).has_value());
}

TEST(PickNarrowL0FileTest, FilesBeingCompactedAreLeftAlone) {
  // The L0 file itself, even with a newer one that could go.
  EXPECT_FALSE(Pick(Metadata({File("/9.sst", 90, "k100", "k199", 8000, true),
                              File("/10.sst", 100, "k200", "k299", 8000)}))
                   .has_value());
  // A base-level file it overlaps.
  EXPECT_FALSE(Pick(Metadata({File("/9.sst", 90, "k100", "k199", 8000)},
                             {File("/1.sst", 10, "k190", "k200", 10, true)}))
                   .has_value());
  // A base-level file it does not overlap does not matter.
  EXPECT_TRUE(Pick(Metadata({File("/9.sst", 90, "k100", "k199", 8000)},
                            {File("/1.sst", 10, "k200", "k300", 10, true)}))
                  .has_value());
}

bool WaitFor(const std::function<bool()>& condition) {
  for (int i = 0; i < 1000; ++i) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return condition();
}

std::string Key(int i) {
  char key[16];
  std::snprintf(key, sizeof(key), "k%07d", i);
  return key;
}

class NarrowFlushMergerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    rocksdb::Options options;
    options.create_if_missing = true;
    options.level_compaction_dynamic_level_bytes = true;
    options.level0_file_num_compaction_trigger = 8;  // as RocksDbEngine
    options.listeners.push_back(merger_);
    rocksdb::DB* db = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(options, dir_.path() + "/db", &db).ok());
    db_.reset(db);
    merger_->Start(db_.get(), {db_->DefaultColumnFamily()});
  }
  void TearDown() override {
    merger_->Stop();
    db_.reset();
  }

  // Writes `keys` with `value`, flushes, and waits for the merger to look at the flush.
  void WriteAndFlush(const std::vector<int>& keys, const std::string& value) {
    for (int key : keys) ASSERT_TRUE(db_->Put(rocksdb::WriteOptions(), Key(key), value).ok());
    const uint64_t examined = merger_->stats().families_examined;
    ASSERT_TRUE(db_->Flush(rocksdb::FlushOptions()).ok());
    // The flush queued the family before Flush returned.
    ASSERT_TRUE(WaitFor([&] { return merger_->Idle(); }));
    ASSERT_GT(merger_->stats().families_examined, examined);
  }
  int FilesAt(int level) {
    std::string value;
    EXPECT_TRUE(db_->GetProperty("rocksdb.num-files-at-level" + std::to_string(level), &value));
    return std::stoi(value);
  }
  std::string Get(int key) {
    std::string value;
    rocksdb::Status status = db_->Get(rocksdb::ReadOptions(), Key(key), &value);
    return status.ok() ? value : status.ToString();
  }

  ScratchDir dir_;
  std::shared_ptr<NarrowFlushMerger> merger_ = std::make_shared<NarrowFlushMerger>();
  std::unique_ptr<rocksdb::DB> db_;
};

std::vector<int> Range(int begin, int end, int step = 1) {
  std::vector<int> keys;
  for (int i = begin; i < end; i += step) keys.push_back(i);
  return keys;
}

TEST_F(NarrowFlushMergerTest, KeysInOrderLeaveL0AndRandomKeysStay) {
  // A load in key order: each flush overlaps nothing, and goes down at once.
  for (int flush = 0; flush < 6; ++flush) {
    WriteAndFlush(Range(flush * 1000, flush * 1000 + 1000), "load");
    EXPECT_EQ(FilesAt(0), 0) << "flush " << flush;
  }
  EXPECT_EQ(merger_->stats().files_merged, 6u);
  EXPECT_EQ(FilesAt(6), 6);

  // Keys across the whole range overlap all of the base level: they wait in L0 for
  // RocksDB's own merge (8 files).
  for (int flush = 0; flush < 4; ++flush) {
    WriteAndFlush(Range(flush, 6000, 37), "random" + std::to_string(flush));
  }
  EXPECT_EQ(FilesAt(0), 4);
  EXPECT_EQ(merger_->stats().files_merged, 6u);

  // Keys beyond them overlap nothing, but they were flushed after the random ones, and
  // merging them would take those along: they wait.
  WriteAndFlush(Range(10'000, 11'000), "tail");
  EXPECT_EQ(FilesAt(0), 5);
  EXPECT_EQ(merger_->stats().files_merged, 6u);
  EXPECT_GT(merger_->stats().bytes_merged, 0u);
  EXPECT_EQ(merger_->stats().merges_failed, 0u);

  // Every key reads its newest value.
  EXPECT_EQ(Get(4), "load");
  EXPECT_EQ(Get(0), "random0");
  EXPECT_EQ(Get(3 + 37 * 10), "random3");
  EXPECT_EQ(Get(5999), "load");
  EXPECT_EQ(Get(10'500), "tail");
}

TEST_F(NarrowFlushMergerTest, StragglersIntoTheBaseLevelGoDownWithTheFileTheyFallInto) {
  // Keys in order, written by several clients: the second flush holds a few keys below the
  // first one's largest, which is in the base level by then.
  std::vector<int> first;
  std::vector<int> second;
  for (int key = 0; key < 1000; ++key) (key >= 990 && key % 2 == 1 ? second : first).push_back(key);
  for (int key = 1000; key < 2000; ++key) second.push_back(key);
  WriteAndFlush(first, "first");
  EXPECT_EQ(FilesAt(0), 0);
  WriteAndFlush(second, "second");
  EXPECT_EQ(FilesAt(0), 0);
  EXPECT_EQ(merger_->stats().files_merged, 2u);
  EXPECT_EQ(merger_->stats().merges_failed, 0u);
  EXPECT_EQ(Get(990), "first");
  EXPECT_EQ(Get(991), "second");
  EXPECT_EQ(Get(999), "second");
  EXPECT_EQ(Get(1999), "second");
}

TEST_F(NarrowFlushMergerTest, StopIgnoresLaterFlushes) {
  merger_->Stop();
  ASSERT_TRUE(db_->Put(rocksdb::WriteOptions(), Key(1), "v").ok());
  ASSERT_TRUE(db_->Flush(rocksdb::FlushOptions()).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(FilesAt(0), 1);
  EXPECT_EQ(merger_->stats().families_examined, 0u);
}

// Through the engine: its families are merged, and the option turns it off.
TEST(RocksDbEngineNarrowFlushTest, SequentialFlushesAreMergedUnlessDisabled) {
  for (bool enabled : {true, false}) {
    ScratchDir dir;
    EngineOptions options = storage::testing::TestOptions(dir.path() + "/db");
    options.merge_narrow_flushes = enabled;
    Result<std::unique_ptr<Engine>> opened = RocksDbEngine::Open(options);
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    std::unique_ptr<Engine> engine = std::move(opened).value();
    for (int flush = 0; flush < 3; ++flush) {
      auto batch = engine->NewWriteBatch();
      for (int i = flush * 1000; i < flush * 1000 + 1000; ++i) {
        batch->Put(Family::kKvLatest, Key(i), std::string(100, 'v'));
      }
      ASSERT_TRUE(engine->Write(batch.get()).ok());
      ASSERT_TRUE(engine->Flush().ok());
    }
    if (enabled) {
      EXPECT_TRUE(WaitFor([&] { return engine->Stats().narrow_flushes_merged >= 3; }))
          << engine->Stats().narrow_flushes_merged;
      EXPECT_GT(engine->Stats().narrow_flush_bytes_merged, 0u);
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      EXPECT_EQ(engine->Stats().narrow_flushes_merged, 0u);
    }
    EXPECT_EQ(storage::testing::GetOne(engine.get(), Family::kKvLatest, Key(2999)),
              std::string(100, 'v'));
  }
}

}  // namespace
}  // namespace cairn::storage::internal
