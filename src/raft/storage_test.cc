#include "src/raft/storage.h"

#include <gtest/gtest.h>

#include "src/raft/test_cluster.h"

namespace cairn::raft {
namespace {

using testing::EntriesWithTerms;

TEST(MemoryStorageTest, EmptyStorageAnswersForIndexZero) {
  MemoryStorage storage;
  EXPECT_EQ(storage.FirstIndex(), 1u);
  EXPECT_EQ(storage.LastIndex(), 0u);
  EXPECT_EQ(*storage.Term(0), 0u);
  EXPECT_TRUE(IsUnavailable(storage.Term(1).status()));
  EXPECT_TRUE(storage.GetSnapshot().IsEmpty());
}

TEST(MemoryStorageTest, AppendTruncatesConflictingSuffix) {
  MemoryStorage storage;
  storage.Append(EntriesWithTerms({1, 1, 2, 2}));
  EXPECT_EQ(storage.LastIndex(), 4u);
  storage.Append({Entry{.term = 3, .index = 3, .data = "y"}});
  EXPECT_EQ(storage.LastIndex(), 3u);
  EXPECT_EQ(*storage.Term(3), 3u);
  EXPECT_EQ(*storage.Term(2), 1u);
}

TEST(MemoryStorageTest, EntriesRespectsSizeLimitButReturnsAtLeastOne) {
  MemoryStorage storage;
  storage.Append(EntriesWithTerms({1, 1, 1, 1}));
  Result<std::vector<Entry>> one = storage.Entries(1, 5, 1);
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one->size(), 1u);
  Result<std::vector<Entry>> two = storage.Entries(1, 5, 2 * (Entry::kHeaderSizeBytes + 1));
  ASSERT_TRUE(two.ok());
  EXPECT_EQ(two->size(), 2u);
  EXPECT_TRUE(IsUnavailable(storage.Entries(1, 6, 100).status()));
}

TEST(MemoryStorageTest, SnapshotThenCompact) {
  MemoryStorage storage;
  storage.Append(EntriesWithTerms({1, 1, 2, 2, 3}));
  storage.CreateSnapshot(3, ConfigState{{1, 2, 3}, {}}, "state");
  EXPECT_EQ(storage.FirstIndex(), 1u);  // not compacted yet
  storage.Compact(3);
  EXPECT_EQ(storage.FirstIndex(), 4u);
  EXPECT_EQ(*storage.Term(3), 2u);
  EXPECT_TRUE(IsCompacted(storage.Term(2).status()));
  EXPECT_TRUE(IsCompacted(storage.Entries(3, 5, 100).status()));
  EXPECT_EQ(storage.Entries(4, 6, 100)->size(), 2u);
  EXPECT_EQ(storage.GetSnapshot().metadata.index, 3u);
  EXPECT_EQ(storage.InitialConfigState(), (ConfigState{{1, 2, 3}, {}}));
}

TEST(MemoryStorageTest, ApplySnapshotReplacesLogOnlyWhenNewer) {
  MemoryStorage storage;
  storage.Append(EntriesWithTerms({1, 1}));
  Snapshot snapshot{.metadata = {.index = 10, .term = 4, .config = {{1}, {}}}, .data = "s"};
  EXPECT_TRUE(storage.ApplySnapshot(snapshot));
  EXPECT_EQ(storage.FirstIndex(), 11u);
  EXPECT_EQ(storage.LastIndex(), 10u);
  EXPECT_EQ(*storage.Term(10), 4u);
  snapshot.metadata.index = 5;
  EXPECT_FALSE(storage.ApplySnapshot(snapshot));
}

TEST(ConfigChangeTest, EncodeDecodeRoundTripAndRejectsMalformed) {
  ConfigChange change{.type = ConfigChangeType::kAddLearner, .node_id = 42};
  ConfigChange decoded;
  ASSERT_TRUE(DecodeConfigChange(EncodeConfigChange(change), &decoded));
  EXPECT_EQ(decoded, change);
  ConfigChange with_context{
      .type = ConfigChangeType::kAddVoter, .node_id = 7, .context = std::string("m\0x", 3)};
  ASSERT_TRUE(DecodeConfigChange(EncodeConfigChange(with_context), &decoded));
  EXPECT_EQ(decoded, with_context);
  EXPECT_FALSE(DecodeConfigChange("", &decoded));
  EXPECT_FALSE(DecodeConfigChange(EncodeConfigChange(change).substr(0, 8), &decoded));
  std::string bad = EncodeConfigChange(change);
  bad[0] = 9;
  EXPECT_FALSE(DecodeConfigChange(bad, &decoded));
  EXPECT_FALSE(DecodeConfigChange(EncodeConfigChange({ConfigChangeType::kAddVoter, 0}), &decoded));
}

}  // namespace
}  // namespace cairn::raft
