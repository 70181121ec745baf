// The Engine contract, checked against every implementation.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <mutex>
#include <thread>

#include "src/storage/engine_test_util.h"

namespace cairn::storage::testing {
namespace {

using ::testing::TestWithParam;

class EngineConformanceTest : public TestWithParam<EngineKind> {
 protected:
  EngineConformanceTest() : holder_(GetParam()) {}
  Engine* engine() { return holder_.engine(); }

  EngineHolder holder_;
};

TEST_P(EngineConformanceTest, FamilyNames) {
  EXPECT_EQ(FamilyName(Family::kMeta), "meta");
  EXPECT_EQ(FamilyName(Family::kKvLatest), "kv_latest");
  EXPECT_EQ(FamilyName(Family::kKvHistory), "kv_history");
}

TEST_P(EngineConformanceTest, PutGetDeleteAndFamiliesAreIndependent) {
  PutOne(engine(), Family::kMeta, "k", "meta-value");
  PutOne(engine(), Family::kKvLatest, "k", "latest-value");
  PutOne(engine(), Family::kKvHistory, "k", "history-value");
  EXPECT_EQ(GetOne(engine(), Family::kMeta, "k"), "meta-value");
  EXPECT_EQ(GetOne(engine(), Family::kKvLatest, "k"), "latest-value");
  EXPECT_EQ(GetOne(engine(), Family::kKvHistory, "k"), "history-value");

  DeleteOne(engine(), Family::kKvLatest, "k");
  EXPECT_EQ(GetOne(engine(), Family::kKvLatest, "k"), std::nullopt);
  EXPECT_EQ(GetOne(engine(), Family::kMeta, "k"), "meta-value");
  EXPECT_EQ(GetOne(engine(), Family::kKvHistory, "k"), "history-value");

  PutOne(engine(), Family::kMeta, "k", "overwritten");
  EXPECT_EQ(GetOne(engine(), Family::kMeta, "k"), "overwritten");
  DeleteOne(engine(), Family::kMeta, "absent");  // deleting a missing key is fine
  EXPECT_EQ(GetOne(engine(), Family::kMeta, "absent"), std::nullopt);
  EXPECT_EQ(ScanAll(engine(), Family::kKvLatest), KeyValues{});
}

TEST_P(EngineConformanceTest, GetMissingLeavesValueAlone) {
  std::string value = "untouched";
  Result<bool> found = engine()->Get(ReadOptions(), Family::kMeta, "nope", &value);
  ASSERT_TRUE(found.ok());
  EXPECT_FALSE(*found);
  EXPECT_EQ(value, "untouched");
}

TEST_P(EngineConformanceTest, KeysOrderBytewiseUnsigned) {
  const std::string with_zero("a\0b", 3);
  for (std::string key : {std::string("\xff"), std::string("a"), with_zero, std::string("\x01"),
                          std::string("ab"), std::string("")}) {
    PutOne(engine(), Family::kKvLatest, key, "v");
  }
  KeyValues all = ScanAll(engine(), Family::kKvLatest);
  std::vector<std::string> keys;
  for (const auto& [key, value] : all) keys.push_back(key);
  EXPECT_EQ(keys, (std::vector<std::string>{"", "\x01", "a", with_zero, "ab", "\xff"}));
  EXPECT_EQ(GetOne(engine(), Family::kKvLatest, with_zero), "v");
  EXPECT_EQ(GetOne(engine(), Family::kKvLatest, std::string("a\0c", 3)), std::nullopt);
}

TEST_P(EngineConformanceTest, BatchIsInvisibleUntilWrittenThenWhole) {
  auto batch = engine()->NewWriteBatch();
  for (int i = 0; i < 100; ++i) {
    batch->Put(Family::kKvLatest, Numbered("key", i), Numbered("v", i));
  }
  batch->Put(Family::kMeta, "applied_index", "7");
  batch->Put(Family::kKvHistory, "h", "x");
  EXPECT_EQ(batch->Count(), 102u);
  EXPECT_EQ(GetOne(engine(), Family::kMeta, "applied_index"), std::nullopt);
  EXPECT_EQ(ScanAll(engine(), Family::kKvLatest).size(), 0u);

  ASSERT_TRUE(engine()->Write(batch.get()).ok());
  EXPECT_EQ(GetOne(engine(), Family::kMeta, "applied_index"), "7");
  EXPECT_EQ(GetOne(engine(), Family::kKvHistory, "h"), "x");
  EXPECT_EQ(ScanAll(engine(), Family::kKvLatest).size(), 100u);
  EXPECT_EQ(GetOne(engine(), Family::kKvLatest, "key42"), "v42");

  // Writing does not clear the batch; Clear does.
  EXPECT_EQ(batch->Count(), 102u);
  batch->Clear();
  EXPECT_EQ(batch->Count(), 0u);
  ASSERT_TRUE(engine()->Write(batch.get()).ok());  // an empty batch is fine
}

TEST_P(EngineConformanceTest, BatchGetReadsItsOwnWritesOverTheEngine) {
  PutOne(engine(), Family::kKvLatest, "a", "1");
  PutOne(engine(), Family::kKvLatest, "b", "2");
  PutOne(engine(), Family::kKvLatest, "c", "3");
  auto batch = engine()->NewWriteBatch();
  batch->Put(Family::kKvLatest, "b", "20");
  batch->Delete(Family::kKvLatest, "c");
  batch->Put(Family::kKvLatest, "d", "4");
  batch->Put(Family::kKvLatest, "e", "5");
  batch->Delete(Family::kKvLatest, "e");  // put then delete in the same batch
  batch->Put(Family::kMeta, "a", "meta");

  EXPECT_EQ(BatchGet(batch.get(), Family::kKvLatest, "a"), "1");
  EXPECT_EQ(BatchGet(batch.get(), Family::kKvLatest, "b"), "20");
  EXPECT_EQ(BatchGet(batch.get(), Family::kKvLatest, "c"), std::nullopt);
  EXPECT_EQ(BatchGet(batch.get(), Family::kKvLatest, "d"), "4");
  EXPECT_EQ(BatchGet(batch.get(), Family::kKvLatest, "e"), std::nullopt);
  EXPECT_EQ(BatchGet(batch.get(), Family::kMeta, "a"), "meta");
  EXPECT_EQ(BatchGet(batch.get(), Family::kKvHistory, "a"), std::nullopt);
  // The engine is unchanged, and later engine writes show through the batch.
  EXPECT_EQ(GetOne(engine(), Family::kKvLatest, "b"), "2");
  PutOne(engine(), Family::kKvLatest, "z", "26");
  EXPECT_EQ(BatchGet(batch.get(), Family::kKvLatest, "z"), "26");

  ASSERT_TRUE(engine()->Write(batch.get()).ok());
  EXPECT_EQ(ScanAll(engine(), Family::kKvLatest),
            (KeyValues{{"a", "1"}, {"b", "20"}, {"d", "4"}, {"z", "26"}}));
}

TEST_P(EngineConformanceTest, MultiGetReadsEachKeyAsGetWould) {
  PutOne(engine(), Family::kKvLatest, "a", "1");
  PutOne(engine(), Family::kKvLatest, "c", "3");
  PutOne(engine(), Family::kMeta, "b", "meta");
  std::shared_ptr<const Snapshot> before = engine()->GetSnapshot();
  PutOne(engine(), Family::kKvLatest, "b", "2");
  DeleteOne(engine(), Family::kKvLatest, "c");
  ASSERT_TRUE(engine()->Flush().ok());  // some from files, some from the memtable
  PutOne(engine(), Family::kKvLatest, "d", "4");

  // Unsorted, with a repeat and absent keys.
  const std::vector<std::string_view> keys = {"d", "a", "c", "b", "zz", "a", ""};
  std::vector<std::optional<std::string>> values = {std::string("stale")};
  ASSERT_TRUE(engine()->MultiGet(ReadOptions(), Family::kKvLatest, keys, &values).ok());
  EXPECT_EQ(values, (std::vector<std::optional<std::string>>{"4", "1", std::nullopt, "2",
                                                             std::nullopt, "1", std::nullopt}));
  ReadOptions at_snapshot;
  at_snapshot.snapshot = before.get();
  ASSERT_TRUE(engine()->MultiGet(at_snapshot, Family::kKvLatest, keys, &values).ok());
  EXPECT_EQ(values, (std::vector<std::optional<std::string>>{std::nullopt, "1", "3", std::nullopt,
                                                             std::nullopt, "1", std::nullopt}));
  ASSERT_TRUE(engine()->MultiGet(ReadOptions(), Family::kKvLatest, {}, &values).ok());
  EXPECT_TRUE(values.empty());
}

// Base: a c e g i. Batch: put b, delete c, overwrite e, delete g, put h, delete x (absent).
class MergedIteratorTest : public EngineConformanceTest {
 protected:
  void SetUp() override {
    for (const char* key : {"a", "c", "e", "g", "i"}) {
      PutOne(engine(), Family::kKvLatest, key, std::string("base-") + key);
    }
    batch_ = engine()->NewWriteBatch();
    batch_->Put(Family::kKvLatest, "b", "batch-b");
    batch_->Delete(Family::kKvLatest, "c");
    batch_->Put(Family::kKvLatest, "e", "batch-e");
    batch_->Delete(Family::kKvLatest, "g");
    batch_->Put(Family::kKvLatest, "h", "batch-h");
    batch_->Delete(Family::kKvLatest, "x");
    batch_->Put(Family::kMeta, "c", "other family");
  }
  std::unique_ptr<Iterator> Iter(std::string_view lower = "", std::string_view upper = "") {
    ReadOptions options;
    options.lower_bound = lower;
    options.upper_bound = upper;
    return batch_->NewIterator(Family::kKvLatest, options);
  }
  std::unique_ptr<WriteBatch> batch_;
};

TEST_P(MergedIteratorTest, ScansMergeBatchOverBase) {
  auto it = Iter();
  KeyValues expected = {
      {"a", "base-a"}, {"b", "batch-b"}, {"e", "batch-e"}, {"h", "batch-h"}, {"i", "base-i"}};
  EXPECT_EQ(ScanForward(it.get()), expected);
  std::reverse(expected.begin(), expected.end());
  EXPECT_EQ(ScanBackward(it.get()), expected);
}

TEST_P(MergedIteratorTest, SeeksAndDirectionChanges) {
  auto it = Iter();
  it->Seek("c");  // deleted in the batch
  EXPECT_EQ(At(*it), "e");
  EXPECT_EQ(it->value(), "batch-e");
  it->Prev();
  EXPECT_EQ(At(*it), "b");
  it->Next();
  EXPECT_EQ(At(*it), "e");
  it->Next();
  EXPECT_EQ(At(*it), "h");  // g deleted
  it->Prev();
  EXPECT_EQ(At(*it), "e");
  it->SeekForPrev("g");
  EXPECT_EQ(At(*it), "e");
  it->SeekForPrev("d");
  EXPECT_EQ(At(*it), "b");
  it->SeekForPrev("b");
  EXPECT_EQ(At(*it), "b");
  it->Next();
  EXPECT_EQ(At(*it), "e");
  it->Seek("h");
  EXPECT_EQ(At(*it), "h");
  it->Next();
  EXPECT_EQ(At(*it), "i");
  it->Next();
  EXPECT_FALSE(it->Valid());
  it->Seek("j");
  EXPECT_FALSE(it->Valid());
  it->SeekForPrev("0");
  EXPECT_FALSE(it->Valid());
  it->SeekToLast();
  EXPECT_EQ(At(*it), "i");
  it->Prev();
  EXPECT_EQ(At(*it), "h");
  it->SeekToFirst();
  EXPECT_EQ(At(*it), "a");
  it->Prev();
  EXPECT_FALSE(it->Valid());
  EXPECT_TRUE(it->status().ok());
}

TEST_P(MergedIteratorTest, HonorsBounds) {
  // [b, h): a and h, i are outside.
  auto it = Iter("b", "h");
  EXPECT_EQ(ScanForward(it.get()), (KeyValues{{"b", "batch-b"}, {"e", "batch-e"}}));
  EXPECT_EQ(ScanBackward(it.get()), (KeyValues{{"e", "batch-e"}, {"b", "batch-b"}}));
  it->Seek("a");
  EXPECT_EQ(At(*it), "b");
  it->Prev();
  EXPECT_FALSE(it->Valid());
  it->SeekForPrev("z");
  EXPECT_EQ(At(*it), "e");
  it->Next();
  EXPECT_FALSE(it->Valid());
  it->SeekForPrev("h");
  EXPECT_EQ(At(*it), "e");
  it->Seek("f");
  EXPECT_FALSE(it->Valid());
  it->SeekForPrev("a");
  EXPECT_FALSE(it->Valid());

  // Bounds that fall on deleted and base-only keys: [c, g).
  auto inner = Iter("c", "g");
  EXPECT_EQ(ScanForward(inner.get()), (KeyValues{{"e", "batch-e"}}));
  EXPECT_EQ(ScanBackward(inner.get()), (KeyValues{{"e", "batch-e"}}));
  // Only a lower bound; only an upper bound.
  auto lower_only = Iter("f", "");
  EXPECT_EQ(ScanForward(lower_only.get()), (KeyValues{{"h", "batch-h"}, {"i", "base-i"}}));
  auto upper_only = Iter("", "b");
  EXPECT_EQ(ScanBackward(upper_only.get()), (KeyValues{{"a", "base-a"}}));
}

TEST_P(MergedIteratorTest, BatchOnlyAndBaseOnlyFamilies) {
  ReadOptions options;
  auto meta = batch_->NewIterator(Family::kMeta, options);  // batch only
  EXPECT_EQ(ScanForward(meta.get()), (KeyValues{{"c", "other family"}}));
  auto history = batch_->NewIterator(Family::kKvHistory, options);  // neither
  EXPECT_EQ(ScanForward(history.get()), KeyValues{});
  auto fresh = engine()->NewWriteBatch();  // base only
  auto latest = fresh->NewIterator(Family::kKvLatest, options);
  EXPECT_EQ(ScanForward(latest.get()).size(), 5u);
}

TEST_P(EngineConformanceTest, UnreadPutsAreWrittenAndRolledBackLikePuts) {
  auto batch = engine()->NewWriteBatch();
  batch->Put(Family::kEvents, "S1", "stream");
  batch->PutUnread(Family::kEvents, "A1", "all-1");
  batch->SetSavePoint();
  batch->PutUnread(Family::kEvents, "A2", "all-2");
  batch->Put(Family::kEvents, "S2", "stream-2");
  EXPECT_EQ(batch->Count(), 4u);
  ASSERT_TRUE(batch->RollbackToSavePoint().ok());
  EXPECT_EQ(batch->Count(), 2u);
  EXPECT_EQ(BatchGet(batch.get(), Family::kEvents, "S1"), "stream");  // indexed reads still work
  EXPECT_EQ(BatchGet(batch.get(), Family::kEvents, "S2"), std::nullopt);
  batch->PutUnread(Family::kEvents, "A3", "all-3");
  ASSERT_TRUE(engine()->Write(batch.get()).ok());
  EXPECT_EQ(ScanAll(engine(), Family::kEvents),
            (KeyValues{{"A1", "all-1"}, {"A3", "all-3"}, {"S1", "stream"}}));
}

// Every read through the batch sees a PutSeldomRead, whichever read comes first, also after
// later writes and after a rollback; RocksDB indexes the records only when their family is read.
TEST_P(EngineConformanceTest, SeldomReadPutsAreSeenByEveryReadOfTheBatch) {
  PutOne(engine(), Family::kKvHistory, "h0", "base");
  auto batch = engine()->NewWriteBatch();
  batch->PutSeldomRead(Family::kKvHistory, "h1", "one");
  batch->Put(Family::kKvLatest, "k", "v");  // a read of another family indexes nothing yet
  EXPECT_EQ(BatchGet(batch.get(), Family::kKvLatest, "k"), "v");
  EXPECT_EQ(BatchGet(batch.get(), Family::kKvHistory, "h1"), "one");

  batch->PutSeldomRead(Family::kKvHistory, "h2", "two");
  EXPECT_EQ(BatchGet(batch.get(), Family::kKvHistory, "h2"), "two");
  batch->SetSavePoint();
  batch->PutSeldomRead(Family::kKvHistory, "h3", "three");
  auto it = batch->NewIterator(Family::kKvHistory, ReadOptions());
  EXPECT_EQ(ScanForward(it.get()),
            (KeyValues{{"h0", "base"}, {"h1", "one"}, {"h2", "two"}, {"h3", "three"}}));
  it.reset();
  batch->PutSeldomRead(Family::kKvHistory, "h4", "four");
  ASSERT_TRUE(batch->RollbackToSavePoint().ok());
  EXPECT_EQ(BatchGet(batch.get(), Family::kKvHistory, "h3"), std::nullopt);
  EXPECT_EQ(BatchGet(batch.get(), Family::kKvHistory, "h4"), std::nullopt);
  batch->PutSeldomRead(Family::kKvHistory, "h5", "five");
  EXPECT_EQ(BatchGet(batch.get(), Family::kKvHistory, "h5"), "five");
  batch->PutSeldomRead(Family::kKvHistory, "h6", "six");
  auto again = batch->NewIterator(Family::kKvHistory, ReadOptions());
  EXPECT_EQ(
      ScanForward(again.get()),
      (KeyValues{{"h0", "base"}, {"h1", "one"}, {"h2", "two"}, {"h5", "five"}, {"h6", "six"}}));
  again.reset();
  ASSERT_TRUE(engine()->Write(batch.get()).ok());
  EXPECT_EQ(
      ScanAll(engine(), Family::kKvHistory),
      (KeyValues{{"h0", "base"}, {"h1", "one"}, {"h2", "two"}, {"h5", "five"}, {"h6", "six"}}));
}

TEST_P(EngineConformanceTest, SavePointsNestAndRollBackExactly) {
  PutOne(engine(), Family::kKvLatest, "base", "b0");
  auto batch = engine()->NewWriteBatch();
  batch->Put(Family::kKvLatest, "a", "1");
  batch->SetSavePoint();  // outer
  batch->Put(Family::kKvLatest, "b", "2");
  batch->Delete(Family::kKvLatest, "a");
  batch->Delete(Family::kKvLatest, "base");
  batch->SetSavePoint();  // inner
  batch->Put(Family::kKvLatest, "c", "3");
  batch->Put(Family::kKvLatest, "b", "22");
  batch->Put(Family::kMeta, "m", "4");
  const size_t count_inner = 3;
  EXPECT_EQ(batch->Count(), 1u + 3u + count_inner);

  ASSERT_TRUE(batch->RollbackToSavePoint().ok());  // to inner
  EXPECT_EQ(batch->Count(), 4u);
  EXPECT_EQ(BatchGet(batch.get(), Family::kKvLatest, "c"), std::nullopt);
  EXPECT_EQ(BatchGet(batch.get(), Family::kKvLatest, "b"), "2");
  EXPECT_EQ(BatchGet(batch.get(), Family::kMeta, "m"), std::nullopt);
  EXPECT_EQ(BatchGet(batch.get(), Family::kKvLatest, "a"), std::nullopt);
  EXPECT_EQ(BatchGet(batch.get(), Family::kKvLatest, "base"), std::nullopt);

  ASSERT_TRUE(batch->RollbackToSavePoint().ok());  // to outer
  EXPECT_EQ(batch->Count(), 1u);
  EXPECT_EQ(BatchGet(batch.get(), Family::kKvLatest, "a"), "1");
  EXPECT_EQ(BatchGet(batch.get(), Family::kKvLatest, "b"), std::nullopt);
  EXPECT_EQ(BatchGet(batch.get(), Family::kKvLatest, "base"), "b0");
  auto it = batch->NewIterator(Family::kKvLatest, ReadOptions());
  EXPECT_EQ(ScanForward(it.get()), (KeyValues{{"a", "1"}, {"base", "b0"}}));
  it.reset();

  Status none = batch->RollbackToSavePoint();  // nothing left to roll back to
  EXPECT_EQ(none.code(), StatusCode::kNotFound);
  EXPECT_EQ(batch->Count(), 1u);  // and nothing was undone

  ASSERT_TRUE(engine()->Write(batch.get()).ok());
  EXPECT_EQ(ScanAll(engine(), Family::kKvLatest), (KeyValues{{"a", "1"}, {"base", "b0"}}));
  EXPECT_EQ(GetOne(engine(), Family::kMeta, "m"), std::nullopt);
}

TEST_P(EngineConformanceTest, PopSavePointKeepsWritesAndUncoversTheOuterOne) {
  auto batch = engine()->NewWriteBatch();
  batch->SetSavePoint();  // outer
  batch->Put(Family::kMeta, "a", "1");
  batch->SetSavePoint();  // inner
  batch->Put(Family::kMeta, "b", "2");
  batch->PopSavePoint();  // b stays
  EXPECT_EQ(BatchGet(batch.get(), Family::kMeta, "b"), "2");
  ASSERT_TRUE(batch->RollbackToSavePoint().ok());  // to outer: undoes a and b
  EXPECT_EQ(batch->Count(), 0u);
  EXPECT_EQ(BatchGet(batch.get(), Family::kMeta, "a"), std::nullopt);
  EXPECT_EQ(BatchGet(batch.get(), Family::kMeta, "b"), std::nullopt);
}

TEST_P(EngineConformanceTest, ClearDropsSavePoints) {
  auto batch = engine()->NewWriteBatch();
  batch->SetSavePoint();
  batch->Put(Family::kMeta, "a", "1");
  batch->Clear();
  EXPECT_EQ(batch->Count(), 0u);
  EXPECT_EQ(batch->RollbackToSavePoint().code(), StatusCode::kNotFound);
  batch->Put(Family::kMeta, "b", "2");
  ASSERT_TRUE(engine()->Write(batch.get()).ok());
  EXPECT_EQ(ScanAll(engine(), Family::kMeta), (KeyValues{{"b", "2"}}));
}

TEST_P(EngineConformanceTest, ByteSizeGrowsWithWritesAndShrinksOnRollback) {
  auto batch = engine()->NewWriteBatch();
  const size_t empty = batch->ByteSize();
  batch->Put(Family::kKvLatest, "key", std::string(100, 'v'));
  const size_t one = batch->ByteSize();
  EXPECT_GE(one, empty + 103);
  batch->SetSavePoint();
  batch->Delete(Family::kKvLatest, "other");
  EXPECT_GT(batch->ByteSize(), one);
  ASSERT_TRUE(batch->RollbackToSavePoint().ok());
  EXPECT_EQ(batch->ByteSize(), one);
  batch->Clear();
  EXPECT_EQ(batch->ByteSize(), empty);
}

TEST_P(EngineConformanceTest, SnapshotIsUnaffectedByLaterWrites) {
  PutOne(engine(), Family::kKvLatest, "a", "1");
  PutOne(engine(), Family::kKvLatest, "b", "2");
  PutOne(engine(), Family::kMeta, "rev", "1");
  std::shared_ptr<const Snapshot> snapshot = engine()->GetSnapshot();

  auto batch = engine()->NewWriteBatch();
  batch->Put(Family::kKvLatest, "a", "10");
  batch->Delete(Family::kKvLatest, "b");
  batch->Put(Family::kKvLatest, "c", "3");
  batch->Put(Family::kMeta, "rev", "2");
  ASSERT_TRUE(engine()->Write(batch.get()).ok());

  EXPECT_EQ(GetOne(engine(), Family::kKvLatest, "a", snapshot.get()), "1");
  EXPECT_EQ(GetOne(engine(), Family::kKvLatest, "b", snapshot.get()), "2");
  EXPECT_EQ(GetOne(engine(), Family::kKvLatest, "c", snapshot.get()), std::nullopt);
  EXPECT_EQ(GetOne(engine(), Family::kMeta, "rev", snapshot.get()), "1");
  EXPECT_EQ(ScanAll(engine(), Family::kKvLatest, snapshot.get()),
            (KeyValues{{"a", "1"}, {"b", "2"}}));
  EXPECT_EQ(ScanAll(engine(), Family::kKvLatest), (KeyValues{{"a", "10"}, {"c", "3"}}));

  // A batch iterator can merge over a snapshot too.
  auto overlay = engine()->NewWriteBatch();
  overlay->Put(Family::kKvLatest, "d", "4");
  ReadOptions at_snapshot;
  at_snapshot.snapshot = snapshot.get();
  auto it = overlay->NewIterator(Family::kKvLatest, at_snapshot);
  EXPECT_EQ(ScanForward(it.get()), (KeyValues{{"a", "1"}, {"b", "2"}, {"d", "4"}}));
  it.reset();

  ASSERT_TRUE(engine()->Flush().ok());  // flushing does not disturb the snapshot
  EXPECT_EQ(GetOne(engine(), Family::kKvLatest, "a", snapshot.get()), "1");
}

TEST_P(EngineConformanceTest, IteratorSeesTheStateAtItsCreation) {
  PutOne(engine(), Family::kKvLatest, "a", "1");
  auto it = engine()->NewIterator(ReadOptions(), Family::kKvLatest);
  PutOne(engine(), Family::kKvLatest, "b", "2");
  DeleteOne(engine(), Family::kKvLatest, "a");
  EXPECT_EQ(ScanForward(it.get()), (KeyValues{{"a", "1"}}));
}

TEST_P(EngineConformanceTest, IteratorSeeksWithinBounds) {
  for (int i = 0; i < 20; ++i) {
    char key[8];
    snprintf(key, sizeof(key), "k%02d", i);
    PutOne(engine(), Family::kKvHistory, key, std::to_string(i));
  }
  ReadOptions options;
  options.lower_bound = "k05";
  options.upper_bound = "k15";
  options.fill_cache = false;
  auto it = engine()->NewIterator(options, Family::kKvHistory);
  it->SeekToFirst();
  EXPECT_EQ(At(*it), "k05");
  it->Prev();
  EXPECT_FALSE(it->Valid());
  it->SeekToLast();
  EXPECT_EQ(At(*it), "k14");
  EXPECT_EQ(it->value(), "14");
  it->Next();
  EXPECT_FALSE(it->Valid());
  it->Seek("k00");
  EXPECT_EQ(At(*it), "k05");
  it->Seek("k10a");
  EXPECT_EQ(At(*it), "k11");
  it->Seek("k15");
  EXPECT_FALSE(it->Valid());
  it->SeekForPrev("k99");
  EXPECT_EQ(At(*it), "k14");
  it->SeekForPrev("k10a");
  EXPECT_EQ(At(*it), "k10");
  it->Prev();
  EXPECT_EQ(At(*it), "k09");
  it->Next();
  EXPECT_EQ(At(*it), "k10");
  it->SeekForPrev("k04");
  EXPECT_FALSE(it->Valid());
  EXPECT_EQ(ScanForward(it.get()).size(), 10u);
  EXPECT_EQ(ScanBackward(it.get()).size(), 10u);

  // Empty range.
  ReadOptions empty;
  empty.lower_bound = "k07";
  empty.upper_bound = "k07";
  auto none = engine()->NewIterator(empty, Family::kKvHistory);
  EXPECT_EQ(ScanForward(none.get()), KeyValues{});
  EXPECT_EQ(ScanBackward(none.get()), KeyValues{});
}

TEST_P(EngineConformanceTest, ApproximateSizeGrowsWithData) {
  const uint64_t before = engine()->ApproximateSizeBytes();
  auto batch = engine()->NewWriteBatch();
  for (int i = 0; i < 1000; ++i) {
    batch->Put(Family::kKvLatest, Numbered("key", i), std::string(100, 'v'));
  }
  ASSERT_TRUE(engine()->Write(batch.get()).ok());
  ASSERT_TRUE(engine()->Flush().ok());
  EXPECT_GT(engine()->ApproximateSizeBytes(), before + 50'000);
}

// Drops entries whose value starts with "drop" in kKvHistory; nothing elsewhere.
class DropPrefixFactory final : public CompactionFilterFactory {
 public:
  std::unique_ptr<CompactionFilter> Create(Family family, bool full_compaction) override {
    std::lock_guard lock(mutex_);
    if (full_compaction) saw_full_compaction_ = true;
    if (family != Family::kKvHistory) return nullptr;
    return std::make_unique<Filter>();
  }
  bool saw_full_compaction() {
    std::lock_guard lock(mutex_);
    return saw_full_compaction_;
  }

 private:
  struct Filter final : CompactionFilter {
    bool ShouldDrop(std::string_view key, std::string_view value) override {
      return value.starts_with("drop");
    }
  };
  std::mutex mutex_;
  bool saw_full_compaction_ = false;
};

class CompactionTest : public TestWithParam<EngineKind> {
 protected:
  CompactionTest()
      : factory_(std::make_shared<DropPrefixFactory>()), holder_(GetParam(), factory_) {}
  Engine* engine() { return holder_.engine(); }
  // k000..k099 in kKvHistory and kMeta; even keys hold "drop..." values.
  void Fill() {
    auto batch = engine()->NewWriteBatch();
    for (int i = 0; i < 100; ++i) {
      std::string value = Numbered(i % 2 == 0 ? "drop-" : "keep-", i);
      batch->Put(Family::kKvHistory, Key(i), value);
      batch->Put(Family::kMeta, Key(i), value);
    }
    CAIRN_CHECK_OK(engine()->Write(batch.get()));
  }
  static std::string Key(int i) {
    char key[8];
    snprintf(key, sizeof(key), "k%03d", i);
    return key;
  }

  std::shared_ptr<DropPrefixFactory> factory_;
  EngineHolder holder_;
};

TEST_P(CompactionTest, CompactRangeDropsExactlyWhatTheFilterSays) {
  Fill();
  ASSERT_TRUE(engine()->CompactRange(Family::kKvHistory, "", "").ok());
  EXPECT_TRUE(factory_->saw_full_compaction());
  KeyValues history = ScanAll(engine(), Family::kKvHistory);
  ASSERT_EQ(history.size(), 50u);
  for (const auto& [key, value] : history) EXPECT_TRUE(value.starts_with("keep-")) << key;
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(GetOne(engine(), Family::kKvHistory, Key(i)).has_value(), i % 2 == 1) << i;
  }
  // Other families are untouched, even when compacted.
  ASSERT_TRUE(engine()->CompactRange(Family::kMeta, "", "").ok());
  EXPECT_EQ(ScanAll(engine(), Family::kMeta).size(), 100u);

  // What was dropped stays dropped after a reopen.
  holder_.Reopen();
  EXPECT_EQ(ScanAll(engine(), Family::kKvHistory).size(), 50u);
  EXPECT_EQ(ScanAll(engine(), Family::kMeta).size(), 100u);
}

TEST_P(CompactionTest, CompactSubrangeDropsInsideAndKeepsWhatTheFilterKeeps) {
  Fill();
  ASSERT_TRUE(engine()->CompactRange(Family::kKvHistory, Key(20), Key(40)).ok());
  for (int i = 0; i < 100; ++i) {
    std::optional<std::string> value = GetOne(engine(), Family::kKvHistory, Key(i));
    if (i % 2 == 1) {
      EXPECT_EQ(value, Numbered("keep-", i));
    } else if (i >= 20 && i < 40) {
      EXPECT_EQ(value, std::nullopt) << i;
    }
    // Even keys outside the range may or may not be dropped: RocksDB compacts whole files.
  }
}

TEST_P(CompactionTest, CompactionWithoutFactoryOrFilterKeepsEverything) {
  EngineHolder plain(GetParam());
  PutOne(plain.engine(), Family::kKvHistory, "a", "drop-me");
  ASSERT_TRUE(plain.engine()->CompactRange(Family::kKvHistory, "", "").ok());
  EXPECT_EQ(GetOne(plain.engine(), Family::kKvHistory, "a"), "drop-me");
}

// A contents replacement (a follower installing a snapshot): nothing changes before Commit or
// when it is abandoned; after Commit every family holds exactly the added records (old keys
// below, between and above the new ones gone, families without records emptied), a snapshot
// taken before still reads the old contents, and later writes win over the replacement.
TEST_P(EngineConformanceTest, ContentsReplacementReplacesEveryFamilyExactly) {
  ScratchDir scratch;
  const std::string prefix = scratch.path() + "/replacement.";
  const std::string high_key("\xff\xff", 2);
  PutOne(engine(), Family::kMeta, "applied", "1");
  PutOne(engine(), Family::kMeta, "zeta", "old");
  for (const std::string& key : {std::string(""), std::string("a"), std::string("c"), high_key}) {
    PutOne(engine(), Family::kKvLatest, key, "old " + key);
  }
  PutOne(engine(), Family::kKvHistory, "h", "old");
  PutOne(engine(), Family::kLease, "l", "old");
  ASSERT_TRUE(engine()->Flush().ok());
  PutOne(engine(), Family::kKvLatest, "m", "old unflushed");  // in the memtable
  const KeyValues old_latest = ScanAll(engine(), Family::kKvLatest);
  {
    auto abandoned = engine()->NewContentsReplacement(prefix);
    ASSERT_TRUE(abandoned.ok()) << abandoned.status().ToString();
    ASSERT_TRUE((*abandoned)->Add(Family::kMeta, "applied", "9").ok());
    ASSERT_TRUE((*abandoned)->Add(Family::kKvLatest, "b", "never").ok());
  }
  EXPECT_EQ(GetOne(engine(), Family::kMeta, "applied"), "1");
  EXPECT_EQ(ScanAll(engine(), Family::kKvLatest), old_latest);

  std::shared_ptr<const Snapshot> before = engine()->GetSnapshot();
  auto replacement = engine()->NewContentsReplacement(prefix);
  ASSERT_TRUE(replacement.ok()) << replacement.status().ToString();
  ASSERT_TRUE((*replacement)->Add(Family::kMeta, "applied", "2").ok());
  const KeyValues new_latest = {{"a", "new a"}, {"b", "new b"}, {high_key + "\x01", "new high"}};
  for (const auto& [key, value] : new_latest) {
    ASSERT_TRUE((*replacement)->Add(Family::kKvLatest, key, value).ok());
  }
  ASSERT_TRUE((*replacement)->Add(Family::kEvents, "e", "new").ok());
  EXPECT_EQ(GetOne(engine(), Family::kMeta, "applied"), "1") << "visible before Commit";
  ASSERT_TRUE((*replacement)->Commit().ok());
  replacement->reset();

  EXPECT_EQ(ScanAll(engine(), Family::kMeta), (KeyValues{{"applied", "2"}}));
  EXPECT_EQ(ScanAll(engine(), Family::kKvLatest), new_latest);
  EXPECT_EQ(ScanAll(engine(), Family::kKvHistory), KeyValues{});
  EXPECT_EQ(ScanAll(engine(), Family::kLease), KeyValues{});
  EXPECT_EQ(ScanAll(engine(), Family::kEvents), (KeyValues{{"e", "new"}}));
  EXPECT_EQ(GetOne(engine(), Family::kKvLatest, "c"), std::nullopt);
  EXPECT_EQ(GetOne(engine(), Family::kKvLatest, "m"), std::nullopt);
  EXPECT_EQ(ScanAll(engine(), Family::kKvLatest, before.get()), old_latest);
  before.reset();

  PutOne(engine(), Family::kKvLatest, "b", "later");
  PutOne(engine(), Family::kKvLatest, "c", "later");
  EXPECT_EQ(GetOne(engine(), Family::kKvLatest, "b"), "later");
  EXPECT_EQ(GetOne(engine(), Family::kKvLatest, "c"), "later");
  holder_.Reopen();
  EXPECT_EQ(GetOne(engine(), Family::kMeta, "applied"), "2");
  EXPECT_EQ(GetOne(engine(), Family::kKvLatest, "a"), "new a");
  EXPECT_EQ(GetOne(engine(), Family::kKvLatest, "b"), "later");
  EXPECT_EQ(GetOne(engine(), Family::kKvHistory, "h"), std::nullopt);
  // The replacement's temporary files are gone.
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(scratch.path(), error)) {
    ADD_FAILURE() << "left behind: " << entry.path();
  }
}

// A crash right after RocksDB ingested a replacement's files (linked into the database) and
// before it unlinked their original names leaves those names behind; the install's redo reuses
// them. Writing there must not truncate the database's linked SST file.
TEST_P(EngineConformanceTest, ContentsReplacementDoesNotWriteThroughLeftoverLinks) {
  if (holder_.kind() != EngineKind::kRocksDb) GTEST_SKIP() << "RocksDB files only";
  ScratchDir scratch;
  const std::string prefix = scratch.path() + "/replacement.";
  auto first = engine()->NewContentsReplacement(prefix);
  ASSERT_TRUE(first.ok());
  for (int i = 100; i < 200; ++i) {  // three digits: added in key order
    ASSERT_TRUE((*first)->Add(Family::kKvLatest, Numbered("key", i), Numbered("v", i)).ok());
  }
  ASSERT_TRUE((*first)->Commit().ok());
  first->reset();
  // The leftover name: a hard link to a live SST file of the database.
  std::string live_sst;
  for (const auto& entry : std::filesystem::directory_iterator(holder_.options().path)) {
    if (entry.path().extension() == ".sst") live_sst = entry.path().string();
  }
  ASSERT_FALSE(live_sst.empty());
  const uint64_t live_size = std::filesystem::file_size(live_sst);
  std::filesystem::create_hard_link(live_sst, prefix + "kv_latest.sst");

  auto second = engine()->NewContentsReplacement(prefix);
  ASSERT_TRUE(second.ok());
  ASSERT_TRUE((*second)->Add(Family::kKvLatest, "only", "one").ok());
  ASSERT_TRUE((*second)->Commit().ok());
  second->reset();
  EXPECT_EQ(std::filesystem::file_size(live_sst), live_size) << "the live SST file was rewritten";
  holder_.Reopen();
  EXPECT_EQ(ScanAll(engine(), Family::kKvLatest), (KeyValues{{"only", "one"}}));
}

TEST_P(EngineConformanceTest, ConcurrentReadersSeeWholeBatches) {
  std::atomic<bool> done = false;
  std::atomic<int> checks = 0;
  std::thread reader([&] {
    while (!done.load()) {
      std::shared_ptr<const Snapshot> snapshot = engine()->GetSnapshot();
      std::optional<std::string> a = GetOne(engine(), Family::kMeta, "a", snapshot.get());
      std::optional<std::string> b = GetOne(engine(), Family::kKvLatest, "b", snapshot.get());
      std::optional<std::string> c = GetOne(engine(), Family::kKvHistory, "c", snapshot.get());
      ASSERT_EQ(a, b);
      ASSERT_EQ(b, c);
      checks.fetch_add(1);
    }
  });
  while (checks.load() == 0) std::this_thread::yield();
  // At least 2000 batches, and more until the reader has checked a few hundred times.
  for (int i = 0; i < 2000 || (checks.load() < 300 && i < 1'000'000); ++i) {
    auto batch = engine()->NewWriteBatch();
    std::string value = std::to_string(i);
    batch->Put(Family::kMeta, "a", value);
    batch->Put(Family::kKvLatest, "b", value);
    batch->Put(Family::kKvHistory, "c", value);
    ASSERT_TRUE(engine()->Write(batch.get()).ok());
    if (i % 500 == 0) {
      ASSERT_TRUE(engine()->Flush().ok());
    }
  }
  done = true;
  reader.join();
  EXPECT_GE(checks.load(), 300);
}

auto ParamName = [](const ::testing::TestParamInfo<EngineKind>& info) {
  return KindName(info.param);
};

INSTANTIATE_TEST_SUITE_P(Engines, EngineConformanceTest,
                         ::testing::Values(EngineKind::kMemory, EngineKind::kRocksDb), ParamName);
INSTANTIATE_TEST_SUITE_P(Engines, MergedIteratorTest,
                         ::testing::Values(EngineKind::kMemory, EngineKind::kRocksDb), ParamName);
INSTANTIATE_TEST_SUITE_P(Engines, CompactionTest,
                         ::testing::Values(EngineKind::kMemory, EngineKind::kRocksDb), ParamName);

}  // namespace
}  // namespace cairn::storage::testing
