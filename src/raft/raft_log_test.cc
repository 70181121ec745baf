#include "src/raft/raft_log.h"

#include <gtest/gtest.h>

#include "src/raft/test_cluster.h"

namespace cairn::raft {
namespace {

using testing::EntriesWithTerms;

TEST(RaftLogTest, AppendIsUnstableUntilStableTo) {
  MemoryStorage storage;
  storage.Append(EntriesWithTerms({1, 1}));
  RaftLog log(&storage);
  EXPECT_EQ(log.LastIndex(), 2u);
  log.Append({Entry{.term = 2, .index = 3}});
  EXPECT_EQ(log.LastIndex(), 3u);
  ASSERT_EQ(log.UnstableEntries().size(), 1u);
  storage.Append(log.UnstableEntries());
  log.StableTo(3, 1);  // wrong term: ignored
  EXPECT_EQ(log.UnstableEntries().size(), 1u);
  log.StableTo(3, 2);
  EXPECT_TRUE(log.UnstableEntries().empty());
  EXPECT_EQ(log.LastTerm(), 2u);
}

TEST(RaftLogTest, MaybeAppendRejectsMismatchAndTruncatesConflicts) {
  MemoryStorage storage;
  storage.Append(EntriesWithTerms({1, 1, 2, 2}));
  RaftLog log(&storage);
  EXPECT_FALSE(log.MaybeAppend(2, 2, 0, {}).has_value());  // term at 2 is 1
  EXPECT_FALSE(log.MaybeAppend(5, 2, 0, {}).has_value());  // beyond the log
  // Entries 3..4 held, 4 conflicts with term 3, 5 is new.
  std::optional<uint64_t> last = log.MaybeAppend(
      2, 1, 3,
      {Entry{.term = 2, .index = 3}, Entry{.term = 3, .index = 4}, Entry{.term = 3, .index = 5}});
  ASSERT_TRUE(last.has_value());
  EXPECT_EQ(*last, 5u);
  EXPECT_EQ(log.committed(), 3u);
  EXPECT_EQ(log.LastIndex(), 5u);
  EXPECT_EQ(log.TermOrZero(4), 3u);
  EXPECT_EQ(log.UnstableEntries().front().index, 4u);
  // Commit is bounded by the last entry of the message, not by the leader's commit.
  EXPECT_TRUE(log.MaybeAppend(3, 2, 100, {}).has_value());
  EXPECT_EQ(log.committed(), 3u);
}

TEST(RaftLogTest, FindConflictByTermSkipsWholeTerms) {
  MemoryStorage storage;
  storage.Append(EntriesWithTerms({1, 1, 2, 2, 2, 4, 4}));
  RaftLog log(&storage);
  EXPECT_EQ(log.FindConflictByTerm(7, 3), 5u);
  EXPECT_EQ(log.FindConflictByTerm(7, 1), 2u);
  EXPECT_EQ(log.FindConflictByTerm(7, 4), 7u);
  EXPECT_EQ(log.FindConflictByTerm(4, 0), 0u);
}

TEST(RaftLogTest, CommitOnlyCurrentTermEntriesAndNeverBackwards) {
  MemoryStorage storage;
  storage.Append(EntriesWithTerms({1, 2, 3}));
  RaftLog log(&storage);
  EXPECT_FALSE(log.MaybeCommit(2, 3));  // entry 2 has term 2
  EXPECT_TRUE(log.MaybeCommit(3, 3));
  EXPECT_EQ(log.committed(), 3u);
  log.CommitTo(1);
  EXPECT_EQ(log.committed(), 3u);
}

TEST(RaftLogTest, NextCommittedEntriesBoundedBySize) {
  MemoryStorage storage;
  storage.Append(EntriesWithTerms({1, 1, 1, 1}));
  RaftLog log(&storage);
  log.CommitTo(4);
  EXPECT_TRUE(log.HasNextCommittedEntries());
  std::vector<Entry> entries = log.NextCommittedEntries(1);
  ASSERT_EQ(entries.size(), 1u);
  log.AppliedTo(entries.back().index);
  EXPECT_EQ(log.NextCommittedEntries(1000).size(), 3u);
  log.AppliedTo(4);
  EXPECT_FALSE(log.HasNextCommittedEntries());
}

TEST(RaftLogTest, RestoreReplacesEverything) {
  MemoryStorage storage;
  storage.Append(EntriesWithTerms({1, 1, 1}));
  RaftLog log(&storage);
  log.Restore(Snapshot{.metadata = {.index = 20, .term = 5, .config = {}}, .data = ""});
  EXPECT_EQ(log.committed(), 20u);
  EXPECT_EQ(log.FirstIndex(), 21u);
  EXPECT_EQ(log.LastIndex(), 20u);
  EXPECT_EQ(*log.Term(20), 5u);
  EXPECT_TRUE(IsCompacted(log.Term(3).status()));
  EXPECT_FALSE(log.HasNextCommittedEntries());
}

}  // namespace
}  // namespace cairn::raft
