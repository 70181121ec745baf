#include "src/mvcc/mvcc_format.h"

#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <string>

namespace cairn::mvcc::format {
namespace {

std::string S(const char* data, size_t n) { return std::string(data, n); }

TEST(MvccFormatTest, EscapedKeyLayout) {
  EXPECT_EQ(EscapedKey("a"), S("a\0\0", 3));
  EXPECT_EQ(EscapedKey(S("a\0b", 3)), S("a\0\xff"
                                        "b\0\0",
                                        6));
  EXPECT_EQ(HistoryKey("a", 5), S("a\0\0\xff\xff\xff\xff\xff\xff\xff\xfa", 11));
}

TEST(MvccFormatTest, HistoryKeyRoundTrip) {
  std::string key = HistoryKey(S("x\0y", 3), 1234567);
  std::string_view escaped;
  int64_t main = 0;
  ASSERT_TRUE(SplitHistoryKey(key, &escaped, &main));
  EXPECT_EQ(main, 1234567);
  std::string user_key;
  ASSERT_TRUE(UnescapeKey(escaped, &user_key));
  EXPECT_EQ(user_key, S("x\0y", 3));
  EXPECT_FALSE(SplitHistoryKey("short", &escaped, &main));
  EXPECT_FALSE(UnescapeKey(S("a\0", 2), &user_key));          // no terminator
  EXPECT_FALSE(UnescapeKey(S("a\0\x01\0\0", 5), &user_key));  // bad escape
}

TEST(MvccFormatTest, NewestRevisionSortsFirst) {
  EXPECT_LT(HistoryKey("k", 9), HistoryKey("k", 8));
  EXPECT_LT(HistoryKey("k", 1), HistoryKey("k\x01", 100));
  EXPECT_LT(HistoryKey("k", 1), HistoryKey(S("k\0", 2), 100));
  EXPECT_LT(HistoryKey(S("k\0", 2), 1), HistoryKey("k\x01", 100));
  EXPECT_LT(HistoryKey("k", 1), EscapedKeyUpperBound(EscapedKey("k")));
  EXPECT_LT(EscapedKeyUpperBound(EscapedKey("k")), HistoryKey(S("k\0", 2), 1000));
}

RC_GTEST_PROP(MvccFormatTest, EncodingPreservesKeyOrderAndNeverInterleaves,
              (const std::string& a, const std::string& b)) {
  const auto rev_a = *rc::gen::inRange<int64_t>(1, INT64_MAX);
  const auto rev_b = *rc::gen::inRange<int64_t>(1, INT64_MAX);
  std::string ka = HistoryKey(a, rev_a);
  std::string kb = HistoryKey(b, rev_b);
  if (a < b) {
    RC_ASSERT(ka < kb);
    RC_ASSERT(EscapedKeyUpperBound(EscapedKey(a)) <= kb);
  } else if (b < a) {
    RC_ASSERT(kb < ka);
  } else {
    RC_ASSERT((rev_a > rev_b) == (ka < kb));
  }
  RC_ASSERT(EscapedKey(a) <= ka);
  RC_ASSERT(ka < EscapedKeyUpperBound(EscapedKey(a)));
  std::string_view escaped;
  int64_t main = 0;
  RC_ASSERT(SplitHistoryKey(ka, &escaped, &main));
  RC_ASSERT(main == rev_a);
  std::string user_key;
  RC_ASSERT(UnescapeKey(escaped, &user_key));
  RC_ASSERT(user_key == a);
}

TEST(MvccFormatTest, LatestRecordRoundTrip) {
  std::string buffer;
  AppendLatestRecord(&buffer, RecordView{3, 7, 2, -5, "value"});
  EXPECT_EQ(static_cast<uint8_t>(buffer[0]), kFormatVersion);
  RecordView record;
  ASSERT_TRUE(DecodeLatestRecord(buffer, &record));
  EXPECT_EQ(record.create_revision, 3);
  EXPECT_EQ(record.mod_revision, 7);
  EXPECT_EQ(record.version, 2);
  EXPECT_EQ(record.lease, -5);
  EXPECT_EQ(record.value, "value");
  // Truncated, wrong version, empty.
  EXPECT_FALSE(DecodeLatestRecord(buffer.substr(0, 3), &record));
  std::string bad = buffer;
  bad[0] = 9;
  EXPECT_FALSE(DecodeLatestRecord(bad, &record));
  EXPECT_FALSE(DecodeLatestRecord("", &record));
}

TEST(MvccFormatTest, HistoryRecordRoundTrip) {
  std::string put;
  AppendHistoryPut(&put, 4, RecordView{3, 7, 2, 9, S("v\0", 2)});
  HistoryRecordView record;
  ASSERT_TRUE(DecodeHistoryRecord(put, &record));
  EXPECT_EQ(record.kind, HistoryKind::kPut);
  EXPECT_EQ(record.sub_revision, 4);
  EXPECT_EQ(record.create_revision, 3);
  EXPECT_EQ(record.version, 2);
  EXPECT_EQ(record.lease, 9);
  EXPECT_EQ(record.value, S("v\0", 2));

  std::string tombstone;
  AppendHistoryTombstone(&tombstone, 2);
  ASSERT_TRUE(DecodeHistoryRecord(tombstone, &record));
  EXPECT_EQ(record.kind, HistoryKind::kTombstone);
  EXPECT_EQ(record.sub_revision, 2);
  HistoryKind kind;
  ASSERT_TRUE(DecodeHistoryKind(tombstone, &kind));
  EXPECT_EQ(kind, HistoryKind::kTombstone);
  EXPECT_FALSE(DecodeHistoryRecord(tombstone + "x", &record));  // trailing bytes
  EXPECT_FALSE(DecodeHistoryRecord(put.substr(0, 2), &record));
}

TEST(MvccFormatTest, CompoundHistoryHoldsEveryChangeOfARevision) {
  std::string tombstone, put, later_tombstone;
  AppendHistoryTombstone(&tombstone, 0);
  AppendHistoryPut(&put, 1, RecordView{7, 7, 1, 0, "v"});
  AppendHistoryTombstone(&later_tombstone, 4);
  std::string two, three;
  AppendHistoryCompound(&two, tombstone, put);
  AppendHistoryCompound(&three, two, later_tombstone);  // flattens, oldest first
  HistoryRecordView last;
  ASSERT_TRUE(DecodeHistoryRecord(two, &last));
  EXPECT_EQ(last.kind, HistoryKind::kPut);  // the state at the end of the revision
  EXPECT_EQ(last.value, "v");
  HistoryKind kind;
  ASSERT_TRUE(DecodeHistoryKind(three, &kind));
  EXPECT_EQ(kind, HistoryKind::kTombstone);
  std::vector<HistoryRecordView> changes;
  ASSERT_TRUE(DecodeHistoryChanges(three, &changes));
  ASSERT_EQ(changes.size(), 3u);
  EXPECT_EQ(changes[0].kind, HistoryKind::kTombstone);
  EXPECT_EQ(changes[1].sub_revision, 1);
  EXPECT_EQ(changes[1].create_revision, 7);
  EXPECT_EQ(changes[2].sub_revision, 4);
  ASSERT_TRUE(DecodeHistoryChanges(put, &changes));  // a plain entry is one change
  EXPECT_EQ(changes.size(), 1u);
  // Damage is refused, never half-decoded.
  EXPECT_FALSE(DecodeHistoryChanges(two.substr(0, two.size() - 1), &changes));
  EXPECT_FALSE(DecodeHistoryRecord(two + "x", &last));
  std::string reversed;
  AppendHistoryCompound(&reversed, put, tombstone);  // sub-revisions 1 then 0
  EXPECT_FALSE(DecodeHistoryChanges(reversed, &changes));
}

TEST(MvccFormatTest, MetaRevision) {
  int64_t revision = 0;
  ASSERT_TRUE(DecodeMetaRevision(EncodeMetaRevision(-1), &revision));
  EXPECT_EQ(revision, -1);
  ASSERT_TRUE(DecodeMetaRevision(EncodeMetaRevision(1ll << 40), &revision));
  EXPECT_EQ(revision, 1ll << 40);
  EXPECT_FALSE(DecodeMetaRevision("1234", &revision));
}

}  // namespace
}  // namespace cairn::mvcc::format
