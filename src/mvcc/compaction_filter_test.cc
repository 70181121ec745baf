#include "src/mvcc/compaction_filter.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "src/mvcc/mvcc_format.h"

namespace cairn::mvcc {
namespace {

struct Entry {
  std::string user_key;
  int64_t main;
  bool put;
};

// Runs one filter over entries (given in any order; sorted like the engine would) and
// returns which were dropped, as "key@rev".
std::vector<std::string> Dropped(int64_t compacted, bool full, std::vector<Entry> entries) {
  std::vector<std::pair<std::string, Entry>> sorted;
  for (const auto& entry : entries) {
    sorted.emplace_back(format::HistoryKey(entry.user_key, entry.main), entry);
  }
  std::sort(sorted.begin(), sorted.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  auto filter = NewHistoryCompactionFilter(compacted, full);
  std::vector<std::string> dropped;
  for (const auto& [key, entry] : sorted) {
    std::string value;
    if (entry.put) {
      format::AppendHistoryPut(&value, 0, format::RecordView{1, entry.main, 1, 0, "v"});
    } else {
      format::AppendHistoryTombstone(&value, 0);
    }
    if (filter->ShouldDrop(key, value)) {
      dropped.push_back(entry.user_key + "@" + std::to_string(entry.main));
    }
  }
  return dropped;
}

using Strings = std::vector<std::string>;

TEST(HistoryCompactionFilterTest, KeepsNewestAtOrBelowCompactedAndEverythingAbove) {
  // a: puts at 2, 4, 6, 8; compacted 5 -> keep 8, 6 (> 5) and 4 (newest <= 5); drop 2.
  EXPECT_EQ(Dropped(5, false, {{"a", 2, true}, {"a", 4, true}, {"a", 6, true}, {"a", 8, true}}),
            Strings({"a@2"}));
  // Compacted exactly at an entry: that entry is the one kept.
  EXPECT_EQ(Dropped(4, false, {{"a", 2, true}, {"a", 4, true}}), Strings({"a@2"}));
  // Keys are independent; "a" and "a\0"/"ab" never share state.
  EXPECT_EQ(Dropped(9, false, {{"a", 2, true}, {"ab", 3, true}, {std::string("a\0", 2), 1, true}}),
            Strings({}));
}

TEST(HistoryCompactionFilterTest, TombstonesDroppedOnlyInFullCompaction) {
  std::vector<Entry> entries = {{"a", 2, true}, {"a", 3, false}, {"b", 4, true}};
  // Partial: the tombstone at 3 is the newest <= 5 of "a" and is kept (an older put may sit
  // in a file outside this compaction); the put below it is unreachable and dropped.
  EXPECT_EQ(Dropped(5, false, entries), Strings({"a@2"}));
  // Full: every entry of "a" is here, so the tombstone and all below it go.
  EXPECT_EQ(Dropped(5, true, entries), Strings({"a@3", "a@2"}));  // newest first
  // A tombstone above the compacted revision is always kept.
  EXPECT_EQ(Dropped(2, true, entries), Strings({}));
}

TEST(HistoryCompactionFilterTest, OlderTombstonesBelowAPutAreDropped) {
  // put 2, delete 3, put 4, compacted 6: the put at 4 shadows everything older.
  EXPECT_EQ(Dropped(6, false, {{"a", 2, true}, {"a", 3, false}, {"a", 4, true}}),
            Strings({"a@3", "a@2"}));
}

TEST(HistoryCompactionFilterTest, FactoryOnlyForHistoryAndAfterACompaction) {
  HistoryCompactionFilterFactory factory;
  EXPECT_EQ(factory.CompactedRevision(), -1);
  EXPECT_EQ(factory.Create(storage::Family::kKvHistory, true), nullptr);
  factory.SetCompactedRevision(5);
  EXPECT_NE(factory.Create(storage::Family::kKvHistory, false), nullptr);
  EXPECT_EQ(factory.Create(storage::Family::kKvLatest, true), nullptr);
  EXPECT_EQ(factory.Create(storage::Family::kMeta, true), nullptr);
  factory.SetCompactedRevision(3);  // never goes back
  EXPECT_EQ(factory.CompactedRevision(), 5);
}

TEST(HistoryCompactionFilterTest, KeepsWhatItCannotDecode) {
  auto filter = NewHistoryCompactionFilter(100, true);
  EXPECT_FALSE(filter->ShouldDrop("garbage", "x"));
  EXPECT_FALSE(filter->ShouldDrop(format::HistoryKey("a", 5), "bad value"));
}

}  // namespace
}  // namespace cairn::mvcc
