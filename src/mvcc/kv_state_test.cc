#include "src/mvcc/kv_state.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <iterator>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "src/mvcc/errors.h"
#include "src/mvcc/kv_history_scan.h"
#include "src/mvcc/kv_test_util.h"
#include "src/mvcc/mvcc_format.h"

namespace cairn::mvcc {
namespace {

using etcdserverpb::Compare;
using etcdserverpb::RangeRequest;
using etcdserverpb::TxnRequest;
using storage::Family;
using testing::DeleteOp;
using testing::EngineKind;
using testing::Keys;
using testing::Nul;
using testing::PutOp;
using testing::RangeOp;
using testing::RawCount;
using testing::Store;
using testing::TxnOp;
using Strings = std::vector<std::string>;

void ExpectError(const Status& status, StatusCode code, std::string_view message) {
  EXPECT_EQ(status.code(), code) << status.ToString();
  EXPECT_EQ(status.message(), message);
}

// A cache of hot keys that evicts all the time.
constexpr size_t kTinyCacheBytes = 2048;

KvStateOptions CacheBytes(size_t bytes) {
  KvStateOptions options;
  options.latest_cache_bytes = bytes;
  return options;
}

class KvStateTest : public ::testing::TestWithParam<EngineKind> {
 protected:
  Store store_{GetParam()};
};

INSTANTIATE_TEST_SUITE_P(Engines, KvStateTest,
                         ::testing::Values(EngineKind::kMemory, EngineKind::kRocksDb),
                         [](const auto& info) { return storage::testing::KindName(info.param); });

// ---------------------------------------------------------------------------------------
// Revisions, versions, put and delete.

TEST_P(KvStateTest, StartsAtRevisionOneAndEachPutBumpsIt) {
  EXPECT_EQ(store_.kv()->CurrentRevision(), 1);
  EXPECT_EQ(store_.kv()->CompactedRevision(), -1);
  auto empty = store_.Get("a");
  EXPECT_EQ(empty.header().revision(), 1);
  EXPECT_EQ(empty.count(), 0);
  EXPECT_EQ(store_.Put("a", "1").header().revision(), 2);
  EXPECT_EQ(store_.Put("a", "1").header().revision(), 3);  // same value still bumps
  EXPECT_EQ(store_.kv()->CurrentRevision(), 3);
}

TEST_P(KvStateTest, KeyCountFollowsCreatesAndDeletesAndSurvivesReopen) {
  EXPECT_EQ(store_.kv()->KeyCount(), 0);
  store_.Put("a", "1");
  store_.Put("b", "1");
  store_.Put("a", "2");  // an overwrite creates nothing
  EXPECT_EQ(store_.kv()->KeyCount(), 2);
  store_.Delete("a");
  store_.Delete("nothing");
  EXPECT_EQ(store_.kv()->KeyCount(), 1);
  store_.Put("c", "1");
  store_.Put("d", "1");
  store_.Reopen();
  EXPECT_EQ(store_.kv()->KeyCount(), 3);
  store_.Delete("a", std::string(1, '\0'));
  EXPECT_EQ(store_.kv()->KeyCount(), 0);
  EXPECT_EQ(store_.Get("a", std::string(1, '\0')).count(), 0);
}

// A Range's count at the current revision adds up key count blocks (key_count_blocks.h) and
// walks only their edges. Small blocks, random creates and deletes (single keys, ranges, in
// txns, in batches that are dropped), reopens: every count equals a model's, with and
// without a limit, at the current revision.
TEST_P(KvStateTest, CountsFromKeyCountBlocksMatchTheKeys) {
  KvStateOptions options;
  options.key_count_block_keys = 3;
  Store store(GetParam(), options);
  std::set<std::string> model;
  std::mt19937 random(7);
  auto pick = [&](int n) { return static_cast<int>(random() % static_cast<unsigned>(n)); };
  auto key = [&] {
    char buffer[8];
    std::snprintf(buffer, sizeof buffer, "k%03d", pick(200));
    return std::string(buffer);
  };
  auto check = [&](int step) {
    for (int i = 0; i < 20; ++i) {
      std::string low = key();
      std::string high = pick(4) == 0 ? std::string(1, '\0') : key();
      etcdserverpb::RangeRequest req;
      req.set_key(pick(8) == 0 ? std::string(1, '\0') : low);
      req.set_range_end(high);
      if (pick(2) == 0) {
        req.set_count_only(true);
      } else {
        req.set_limit(1 + pick(3));
      }
      auto first = model.lower_bound(req.key());
      auto last = high == std::string(1, '\0') ? model.end() : model.lower_bound(high);
      const int64_t want = high > req.key() || high == std::string(1, '\0')
                               ? static_cast<int64_t>(std::distance(first, last))
                               : 0;
      etcdserverpb::RangeResponse resp;
      ASSERT_TRUE(store.Range(req, &resp).ok());
      ASSERT_EQ(resp.count(), want) << "step " << step << " [" << req.key() << ", " << high << ")"
                                    << (req.count_only() ? " count only" : " limit");
      if (!req.count_only()) {
        ASSERT_EQ(resp.kvs_size(), std::min<int64_t>(want, req.limit()));
        ASSERT_EQ(resp.more(), want > req.limit());
        if (want > 0) {
          ASSERT_EQ(resp.kvs(0).key(), *first);
        }
      }
    }
  };
  for (int step = 0; step < 1500; ++step) {
    const int what = pick(20);
    if (what < 11) {
      std::string k = key();
      store.Put(k, "v");
      model.insert(k);
    } else if (what < 16) {
      std::string k = key();
      store.Delete(k);
      model.erase(k);
    } else if (what == 16) {
      std::string low = key();
      std::string high = key();
      store.Delete(low, high);
      if (low < high) model.erase(model.lower_bound(low), model.lower_bound(high));
    } else if (what == 17) {
      // A txn that creates (enough to split a block twice) and deletes; or one refused by
      // etcd's apply-time checks (ErrKeyNotFound), which leaves nothing behind.
      // (etcd refuses a txn that names a key twice.)
      std::set<std::string> created;
      for (int n = 1 + pick(16); static_cast<int>(created.size()) < n;) created.insert(key());
      std::string b = key();
      while (created.count(b) != 0) b = key();
      etcdserverpb::TxnRequest txn;
      for (const std::string& k : created) *txn.add_success() = PutOp(k);
      *txn.add_success() = DeleteOp(b);
      const bool fails = pick(2) == 0;
      if (fails) {
        etcdserverpb::RequestOp* put = txn.add_success();
        put->mutable_request_put()->set_key("missing");
        put->mutable_request_put()->set_ignore_value(true);
      }
      etcdserverpb::TxnResponse resp;
      Status status = store.Txn(txn, &resp);
      ASSERT_EQ(status.ok(), !fails) << status.ToString();
      if (!fails) {
        model.insert(created.begin(), created.end());
        model.erase(b);
      }
    } else if (what == 18) {
      // A batch of creates that is dropped: the blocks forget it.
      auto batch = store.engine()->NewWriteBatch();
      for (int i = 0; i < 10; ++i) {
        etcdserverpb::PutRequest req;
        req.set_key(key());
        etcdserverpb::PutResponse resp;
        ASSERT_TRUE(store.kv()->ApplyPut(batch.get(), req, &resp).ok());
      }
      store.kv()->OnBatchAborted();
    } else {
      store.Reopen();
    }
    if (step % 25 == 0) check(step);
  }
  check(1500);
  EXPECT_EQ(store.kv()->KeyCount(), static_cast<int64_t>(model.size()));
}

// The apply thread reads a key's current record from the records read ahead of its batch
// (KvState::PrefetchLatest) and from the cache of hot keys (latest_cache.h) when its batch has
// not written the key. Stores that read ahead, with a tiny cache (evicting all the time, and
// filled by reads between batches) or none, answer every command exactly like one that does
// neither: batches of several commands on few keys, commands that fail, batches dropped.
TEST_P(KvStateTest, ApplyReadsThroughReadAheadAndTheLatestCacheExactly) {
  Store reference(GetParam(), CacheBytes(0));
  Store cached(GetParam(), CacheBytes(kTinyCacheBytes));  // reads ahead, tiny cache
  Store read_ahead(GetParam(), CacheBytes(0));            // reads ahead, no cache
  Store* const stores[] = {&reference, &cached, &read_ahead};
  std::mt19937 random(23);
  auto pick = [&](int n) { return static_cast<int>(random() % static_cast<unsigned>(n)); };
  auto key = [&] { return "k" + std::to_string(pick(30)); };
  auto random_put = [&] {
    etcdserverpb::PutRequest put;
    put.set_key(key());
    put.set_prev_kv(pick(2) == 0);
    if (pick(6) == 0) {
      put.set_ignore_value(true);  // fails when the key does not exist
    } else {
      put.set_value(std::string(static_cast<size_t>(pick(300)), 'v'));
    }
    return put;
  };
  auto random_delete = [&] {
    etcdserverpb::DeleteRangeRequest del;
    del.set_key(key());
    if (pick(4) == 0) del.set_range_end(key());
    del.set_prev_kv(pick(2) == 0);
    return del;
  };
  auto random_txn = [&] {
    TxnRequest txn;
    Compare* compare = txn.add_compare();
    compare->set_key(key());
    compare->set_result(Compare::EQUAL);
    switch (pick(3)) {
      case 0:
        compare->set_target(Compare::VERSION);
        compare->set_version(pick(4));
        break;
      case 1:
        compare->set_target(Compare::CREATE);
        compare->set_create_revision(pick(2) == 0 ? 0 : reference.kv()->CurrentRevision());
        break;
      default:
        compare->set_target(Compare::VALUE);
        compare->set_value(std::string(static_cast<size_t>(pick(3)), 'v'));
    }
    std::set<std::string> written;  // etcd refuses a txn that writes a key twice
    for (int i = pick(4); i >= 0; --i) {
      std::string k = key();
      if (!written.insert(k).second) continue;
      *(pick(2) == 0 ? txn.add_success() : txn.add_failure()) =
          pick(3) == 0 ? DeleteOp(k) : PutOp(k, std::to_string(i));
    }
    *txn.add_success() = RangeOp(key());
    return txn;
  };
  // Each command's status and answer, as text, from every store.
  auto apply_all = [&](auto apply) {
    std::vector<std::string> answers;
    for (size_t i = 0; i < std::size(stores); ++i) answers.push_back(apply(i));
    return answers;
  };
  for (int round = 0; round < 400; ++round) {
    for (int i = pick(4); i > 0; --i) {  // reads between batches fill the cache
      RangeRequest req;
      req.set_key(key());
      std::vector<std::string> answers = apply_all([&](size_t s) {
        etcdserverpb::RangeResponse resp;
        CAIRN_CHECK_OK(stores[s]->Range(req, &resp));
        return resp.DebugString();
      });
      ASSERT_EQ(answers[1], answers[0]) << "round " << round;
      ASSERT_EQ(answers[2], answers[0]) << "round " << round;
    }
    std::vector<std::unique_ptr<storage::WriteBatch>> batches;
    for (Store* store : stores) batches.push_back(store->engine()->NewWriteBatch());
    // Read ahead some keys, most of which the batch's commands read, some of which they
    // write before reading again, and some of which they never read.
    std::vector<std::string> ahead;
    for (int i = pick(12); i > 0; --i) ahead.push_back(key());
    std::vector<std::string_view> ahead_views(ahead.begin(), ahead.end());
    ASSERT_TRUE(cached.kv()->PrefetchLatest(ahead_views).ok());
    ASSERT_TRUE(read_ahead.kv()->PrefetchLatest(ahead_views).ok());
    for (int c = 1 + pick(8); c > 0; --c) {
      std::vector<std::string> answers;
      const int what = pick(3);
      if (what == 0) {
        etcdserverpb::PutRequest req = random_put();
        answers = apply_all([&](size_t s) {
          etcdserverpb::PutResponse resp;
          Status status = stores[s]->kv()->ApplyPut(batches[s].get(), req, &resp);
          return status.ToString() + resp.DebugString();
        });
      } else if (what == 1) {
        etcdserverpb::DeleteRangeRequest req = random_delete();
        answers = apply_all([&](size_t s) {
          etcdserverpb::DeleteRangeResponse resp;
          Status status = stores[s]->kv()->ApplyDeleteRange(batches[s].get(), req, &resp);
          return status.ToString() + resp.DebugString();
        });
      } else {
        TxnRequest req = random_txn();
        answers = apply_all([&](size_t s) {
          etcdserverpb::TxnResponse resp;
          Status status = stores[s]->kv()->ApplyTxn(batches[s].get(), req, &resp);
          return status.ToString() + resp.DebugString();
        });
      }
      ASSERT_EQ(answers[1], answers[0]) << "round " << round;
      ASSERT_EQ(answers[2], answers[0]) << "round " << round;
    }
    const bool drop = pick(8) == 0;
    for (size_t s = 0; s < std::size(stores); ++s) {
      if (drop) {
        stores[s]->kv()->OnBatchAborted();
        continue;
      }
      stores[s]->kv()->FinishBatch(batches[s].get());
      ASSERT_TRUE(stores[s]->engine()->Write(batches[s].get()).ok());
      stores[s]->kv()->OnBatchWritten();
    }
  }
  EXPECT_EQ(cached.Get("k", "l").DebugString(), reference.Get("k", "l").DebugString());
  EXPECT_EQ(read_ahead.Get("k", "l").DebugString(), reference.Get("k", "l").DebugString());
  EXPECT_GT(reference.kv()->CurrentRevision(), 300);
}

// KvState::WarmLatest fills the cache of hot keys from any thread, at any moment: between
// batches, while the apply thread fills a batch, and between a batch's engine write and its
// publication. With a tiny cache (evicting all the time) and another thread warming random
// keys throughout, every answer stays exact: between batches the same as a store without a
// cache; in the window before publication, the state at the revision the answer names.
TEST_P(KvStateTest, WarmingTheCacheFromAnyThreadKeepsEveryAnswerExact) {
  Store reference(GetParam(), CacheBytes(0));
  Store warmed(GetParam(), CacheBytes(kTinyCacheBytes));
  Store* const stores[] = {&reference, &warmed};
  constexpr int kKeys = 400;  // several per shard of the cache: it evicts, warming fills
  std::mt19937 random(29);
  auto pick = [&](int n) { return static_cast<int>(random() % static_cast<unsigned>(n)); };
  auto key = [&] { return "k" + std::to_string(pick(kKeys)); };
  auto warm = [&](std::mt19937& source, int count) {
    std::vector<std::string> keys;
    for (int i = 0; i < count; ++i) keys.push_back("k" + std::to_string(source() % kKeys));
    std::vector<std::string_view> views(keys.begin(), keys.end());
    ASSERT_TRUE(warmed.kv()->WarmLatest(views).ok());
  };
  // The answer without its header (whose revision the caller checks).
  auto body = [](etcdserverpb::RangeResponse resp) {
    resp.clear_header();
    return resp.DebugString();
  };
  std::atomic<bool> stop{false};
  std::thread other([&] {
    std::mt19937 source(31);
    while (!stop.load()) warm(source, 1 + static_cast<int>(source() % 6));
  });
  struct Joiner {  // also when an assertion returns early
    std::atomic<bool>& stop;
    std::thread& thread;
    ~Joiner() {
      stop.store(true);
      thread.join();
    }
  } joiner{stop, other};
  for (int round = 0; round < 600; ++round) {
    for (int i = pick(3); i > 0; --i) {
      const std::string k = key();
      ASSERT_EQ(warmed.Get(k).DebugString(), reference.Get(k).DebugString()) << round;
    }
    if (pick(2) == 0) warm(random, 1 + pick(8));
    std::unique_ptr<storage::WriteBatch> batches[] = {reference.engine()->NewWriteBatch(),
                                                      warmed.engine()->NewWriteBatch()};
    std::vector<std::string> ahead;
    for (int i = pick(6); i > 0; --i) ahead.push_back(key());
    std::vector<std::string_view> ahead_views(ahead.begin(), ahead.end());
    ASSERT_TRUE(warmed.kv()->PrefetchLatest(ahead_views).ok());
    std::vector<std::string> touched;
    for (int c = 1 + pick(6); c > 0; --c) {
      std::string answers[2];
      touched.push_back(key());
      if (pick(3) == 0) {
        etcdserverpb::DeleteRangeRequest req;
        req.set_key(touched.back());
        req.set_prev_kv(true);
        for (size_t s = 0; s < 2; ++s) {
          etcdserverpb::DeleteRangeResponse resp;
          Status status = stores[s]->kv()->ApplyDeleteRange(batches[s].get(), req, &resp);
          answers[s] = status.ToString() + resp.DebugString();
        }
      } else {
        etcdserverpb::PutRequest req;
        req.set_key(touched.back());
        req.set_value(std::string(static_cast<size_t>(1 + pick(40)), 'v'));
        req.set_prev_kv(true);
        for (size_t s = 0; s < 2; ++s) {
          etcdserverpb::PutResponse resp;
          Status status = stores[s]->kv()->ApplyPut(batches[s].get(), req, &resp);
          answers[s] = status.ToString() + resp.DebugString();
        }
      }
      ASSERT_EQ(answers[1], answers[0]) << "round " << round;
      if (pick(3) == 0) warm(random, 1 + pick(8));  // while the batch fills
    }
    for (size_t s = 0; s < 2; ++s) {
      stores[s]->kv()->FinishBatch(batches[s].get());
      ASSERT_TRUE(stores[s]->engine()->Write(batches[s].get()).ok());
    }
    // Written, not published: warm the batch's keys and others, and read them; each answer
    // must be the state at the revision it names.
    warm(random, 4);
    std::vector<std::string_view> touched_views(touched.begin(), touched.end());
    ASSERT_TRUE(warmed.kv()->WarmLatest(touched_views).ok());
    for (int i = 0; i < 4; ++i) touched.push_back(key());
    for (const std::string& k : touched) {
      etcdserverpb::RangeResponse got = warmed.Get(k);
      etcdserverpb::RangeResponse then = reference.Get(k, {}, got.header().revision());
      ASSERT_EQ(body(got), body(then))
          << "round " << round << " revision " << got.header().revision();
    }
    for (Store* store : stores) store->kv()->OnBatchWritten();
  }
  EXPECT_EQ(warmed.Get("k", "l").DebugString(), reference.Get("k", "l").DebugString());
  EXPECT_GT(reference.kv()->CurrentRevision(), 500);
}

TEST_P(KvStateTest, CreateModVersionAcrossDeleteAndRecreate) {
  store_.Put("k", "v1", 7);  // rev 2
  store_.Put("k", "v2", 7);  // rev 3
  auto got = store_.Get("k");
  ASSERT_EQ(got.kvs_size(), 1);
  EXPECT_EQ(got.kvs(0).create_revision(), 2);
  EXPECT_EQ(got.kvs(0).mod_revision(), 3);
  EXPECT_EQ(got.kvs(0).version(), 2);
  EXPECT_EQ(got.kvs(0).lease(), 7);
  EXPECT_EQ(got.kvs(0).value(), "v2");
  auto deleted = store_.Delete("k");  // rev 4
  EXPECT_EQ(deleted.deleted(), 1);
  EXPECT_EQ(deleted.header().revision(), 4);
  EXPECT_EQ(store_.Get("k").kvs_size(), 0);
  store_.Put("k", "v3");  // rev 5
  got = store_.Get("k");
  ASSERT_EQ(got.kvs_size(), 1);
  EXPECT_EQ(got.kvs(0).create_revision(), 5);
  EXPECT_EQ(got.kvs(0).mod_revision(), 5);
  EXPECT_EQ(got.kvs(0).version(), 1);
  EXPECT_EQ(got.kvs(0).lease(), 0);
  // History keeps every generation.
  EXPECT_EQ(store_.Get("k", "", 3).kvs(0).value(), "v2");
  EXPECT_EQ(store_.Get("k", "", 3).header().revision(), 5);  // header: current revision
  EXPECT_EQ(store_.Get("k", "", 4).kvs_size(), 0);
  EXPECT_EQ(store_.Get("k", "", 2).kvs(0).version(), 1);
}

TEST_P(KvStateTest, PutPrevKvIgnoreValueIgnoreLease) {
  etcdserverpb::PutRequest req;
  req.set_key("k");
  req.set_value("v1");
  req.set_lease(9);
  req.set_prev_kv(true);
  etcdserverpb::PutResponse resp;
  ASSERT_TRUE(store_.Put(req, &resp).ok());
  EXPECT_FALSE(resp.has_prev_kv());
  req.set_value("v2");
  ASSERT_TRUE(store_.Put(req, &resp).ok());
  ASSERT_TRUE(resp.has_prev_kv());
  EXPECT_EQ(resp.prev_kv().value(), "v1");
  EXPECT_EQ(resp.prev_kv().mod_revision(), 2);
  EXPECT_EQ(resp.header().revision(), 3);

  etcdserverpb::PutRequest keep_value;
  keep_value.set_key("k");
  keep_value.set_ignore_value(true);
  keep_value.set_lease(11);
  ASSERT_TRUE(store_.Put(keep_value, &resp).ok());
  auto got = store_.Get("k");
  EXPECT_EQ(got.kvs(0).value(), "v2");
  EXPECT_EQ(got.kvs(0).lease(), 11);
  EXPECT_EQ(got.kvs(0).version(), 3);

  etcdserverpb::PutRequest keep_lease;
  keep_lease.set_key("k");
  keep_lease.set_value("v4");
  keep_lease.set_ignore_lease(true);
  ASSERT_TRUE(store_.Put(keep_lease, &resp).ok());
  got = store_.Get("k");
  EXPECT_EQ(got.kvs(0).value(), "v4");
  EXPECT_EQ(got.kvs(0).lease(), 11);
}

TEST_P(KvStateTest, PutApplyErrors) {
  etcdserverpb::PutRequest req;
  req.set_key("missing");
  req.set_ignore_value(true);
  ExpectError(store_.Put(req), StatusCode::kInvalidArgument, "etcdserver: key not found");
  req.set_ignore_value(false);
  req.set_ignore_lease(true);
  ExpectError(store_.Put(req), StatusCode::kInvalidArgument, "etcdserver: key not found");
  EXPECT_EQ(store_.kv()->CurrentRevision(), 1);
  etcdserverpb::PutRequest empty;
  ExpectError(store_.Put(empty), StatusCode::kInvalidArgument, "etcdserver: key is not provided");
}

TEST_P(KvStateTest, DeleteRangeForms) {
  for (const char* key : {"a", "b", "c", "d"}) store_.Put(key, key);  // revs 2..5
  auto none = store_.Delete("x");
  EXPECT_EQ(none.deleted(), 0);
  EXPECT_EQ(none.header().revision(), 5);  // nothing deleted: no new revision
  EXPECT_EQ(store_.kv()->CurrentRevision(), 5);

  auto ranged = store_.Delete("b", "d", /*prev_kv=*/true);
  EXPECT_EQ(ranged.deleted(), 2);
  EXPECT_EQ(ranged.header().revision(), 6);
  ASSERT_EQ(ranged.prev_kvs_size(), 2);
  EXPECT_EQ(ranged.prev_kvs(0).key(), "b");
  EXPECT_EQ(ranged.prev_kvs(1).value(), "c");
  EXPECT_EQ(Keys(store_.Get("a", Nul())), Strings({"a", "d"}));

  auto to_end = store_.Delete("b", Nul());  // every key >= "b"
  EXPECT_EQ(to_end.deleted(), 1);
  EXPECT_EQ(to_end.prev_kvs_size(), 0);
  EXPECT_EQ(Keys(store_.Get(Nul(), Nul())), Strings({"a"}));
  store_.Put("z", "z");
  EXPECT_EQ(store_.Delete(Nul(), Nul()).deleted(), 2);  // all keys
  EXPECT_EQ(store_.Get(Nul(), Nul()).count(), 0);
  // Reversed range (the etcd server does not reject it): deletes nothing.
  store_.Put("m", "m");
  EXPECT_EQ(store_.Delete("n", "a").deleted(), 0);
}

TEST_P(KvStateTest, DeleteRangeLargerThanOneChunk) {
  auto batch = store_.engine()->NewWriteBatch();
  TxnRequest txn;
  for (int i = 0; i < 2500; ++i) {
    etcdserverpb::PutRequest put;
    put.set_key(storage::testing::Numbered("k", 10000 + i));
    put.set_value("v");
    etcdserverpb::PutResponse resp;
    ASSERT_TRUE(store_.kv()->ApplyPut(batch.get(), put, &resp).ok());
  }
  store_.kv()->FinishBatch(batch.get());
  ASSERT_TRUE(store_.engine()->Write(batch.get()).ok());
  store_.kv()->OnBatchWritten();
  auto deleted = store_.Delete("k", "l", /*prev_kv=*/true);
  EXPECT_EQ(deleted.deleted(), 2500);
  EXPECT_EQ(deleted.prev_kvs_size(), 2500);
  EXPECT_EQ(deleted.prev_kvs(2499).key(), "k12499");
  EXPECT_EQ(store_.Get("k", "l").count(), 0);
  EXPECT_EQ(store_.Get("k", "l", deleted.header().revision() - 1).count(), 2500);
}

// ---------------------------------------------------------------------------------------
// Range.

class KvStateRangeTest : public KvStateTest {
 protected:
  void SetUp() override {
    // key: value, with versions and revisions chosen so every sort target differs.
    store_.Put("a", "3");  // 2
    store_.Put("b", "1");  // 3
    store_.Put("c", "2");  // 4
    store_.Put("b", "1");  // 5: b version 2
    store_.Put("d", "1");  // 6
  }
  etcdserverpb::RangeResponse Run(const RangeRequest& req) {
    etcdserverpb::RangeResponse resp;
    Status status = store_.Range(req, &resp);
    EXPECT_TRUE(status.ok()) << status.ToString();
    return resp;
  }
  RangeRequest All() {
    RangeRequest req;
    req.set_key("a");
    req.set_range_end("z");
    return req;
  }
};

INSTANTIATE_TEST_SUITE_P(Engines, KvStateRangeTest,
                         ::testing::Values(EngineKind::kMemory, EngineKind::kRocksDb),
                         [](const auto& info) { return storage::testing::KindName(info.param); });

TEST_P(KvStateRangeTest, LimitCountMore) {
  RangeRequest req = All();
  req.set_limit(2);
  auto resp = Run(req);
  EXPECT_EQ(Keys(resp), Strings({"a", "b"}));
  EXPECT_TRUE(resp.more());
  EXPECT_EQ(resp.count(), 4);
  req.set_limit(4);
  resp = Run(req);
  EXPECT_FALSE(resp.more());
  EXPECT_EQ(resp.kvs_size(), 4);
  req.set_limit(-1);  // negative: no limit
  EXPECT_EQ(Run(req).kvs_size(), 4);
}

TEST_P(KvStateRangeTest, KeysOnlyAndCountOnly) {
  RangeRequest req = All();
  req.set_keys_only(true);
  auto resp = Run(req);
  ASSERT_EQ(resp.kvs_size(), 4);
  EXPECT_EQ(resp.kvs(0).value(), "");
  EXPECT_EQ(resp.kvs(1).version(), 2);
  req.set_keys_only(false);
  req.set_count_only(true);
  req.set_limit(1);
  resp = Run(req);
  EXPECT_EQ(resp.kvs_size(), 0);
  EXPECT_EQ(resp.count(), 4);
  EXPECT_FALSE(resp.more());
}

TEST_P(KvStateRangeTest, SortTargetsAndOrders) {
  RangeRequest req = All();
  req.set_sort_order(RangeRequest::DESCEND);
  EXPECT_EQ(Keys(Run(req)), Strings({"d", "c", "b", "a"}));
  req.set_sort_target(RangeRequest::VALUE);  // a:3 b:1 c:2 d:1 -> ties keep key order
  EXPECT_EQ(Keys(Run(req)), Strings({"a", "c", "b", "d"}));
  req.set_sort_order(RangeRequest::ASCEND);
  EXPECT_EQ(Keys(Run(req)), Strings({"b", "d", "c", "a"}));
  req.set_sort_order(RangeRequest::NONE);  // non-KEY target with NONE sorts ascending
  EXPECT_EQ(Keys(Run(req)), Strings({"b", "d", "c", "a"}));
  req.set_sort_target(RangeRequest::VERSION);  // b has version 2
  req.set_sort_order(RangeRequest::DESCEND);
  EXPECT_EQ(Keys(Run(req)), Strings({"b", "a", "c", "d"}));
  req.set_sort_target(RangeRequest::CREATE);
  EXPECT_EQ(Keys(Run(req)), Strings({"d", "c", "b", "a"}));
  req.set_sort_target(RangeRequest::MOD);
  EXPECT_EQ(Keys(Run(req)), Strings({"d", "b", "c", "a"}));
  req.set_sort_order(RangeRequest::ASCEND);
  EXPECT_EQ(Keys(Run(req)), Strings({"a", "c", "b", "d"}));
  // Sorting fetches everything, then the limit applies.
  req.set_limit(2);
  auto resp = Run(req);
  EXPECT_EQ(Keys(resp), Strings({"a", "c"}));
  EXPECT_TRUE(resp.more());
  EXPECT_EQ(resp.count(), 4);
}

TEST_P(KvStateRangeTest, SortTargetWithoutOrderSortsOnlyTheFetchedKeys) {
  // etcd quirk: with sort_order NONE and no filters, only limit + 1 keys are fetched (in key
  // order); a non-KEY target then sorts just those ascending before the limit cuts.
  RangeRequest req = All();
  req.set_sort_target(RangeRequest::VALUE);  // a:3 b:1 c:2 d:1
  req.set_limit(2);
  auto resp = Run(req);
  EXPECT_EQ(Keys(resp), Strings({"b", "c"}));  // sorted from {a, b, c}, not from all four
  EXPECT_TRUE(resp.more());
  req.set_sort_order(RangeRequest::ASCEND);  // an explicit order fetches everything
  EXPECT_EQ(Keys(Run(req)), Strings({"b", "d"}));
  req.set_sort_order(RangeRequest::NONE);
  req.set_limit(INT64_MAX);
  resp = Run(req);
  EXPECT_EQ(Keys(resp), Strings({"b", "d", "c", "a"}));
  EXPECT_FALSE(resp.more());
}

TEST_P(KvStateRangeTest, ModAndCreateFilters) {
  RangeRequest req = All();
  req.set_min_mod_revision(4);
  EXPECT_EQ(Keys(Run(req)), Strings({"b", "c", "d"}));
  req.set_max_mod_revision(5);
  auto resp = Run(req);
  EXPECT_EQ(Keys(resp), Strings({"b", "c"}));
  EXPECT_EQ(resp.count(), 4);  // count ignores filters
  req = All();
  req.set_max_create_revision(3);
  EXPECT_EQ(Keys(Run(req)), Strings({"a", "b"}));
  req.set_min_create_revision(3);
  EXPECT_EQ(Keys(Run(req)), Strings({"b"}));
  // Filters fetch everything, then the limit applies to what is left.
  req = All();
  req.set_min_create_revision(3);
  req.set_limit(1);
  resp = Run(req);
  EXPECT_EQ(Keys(resp), Strings({"b"}));
  EXPECT_TRUE(resp.more());
}

TEST_P(KvStateRangeTest, RangeEndForms) {
  EXPECT_EQ(Keys(store_.Get("b")), Strings({"b"}));
  EXPECT_EQ(store_.Get("bb").count(), 0);
  EXPECT_EQ(Keys(store_.Get("b", Nul())), Strings({"b", "c", "d"}));
  EXPECT_EQ(Keys(store_.Get(Nul(), Nul())), Strings({"a", "b", "c", "d"}));
  EXPECT_EQ(Keys(store_.Get("b", "d")), Strings({"b", "c"}));
  EXPECT_EQ(store_.Get("c", "b").count(), 0);  // reversed: empty (server mode)
  EXPECT_EQ(store_.Get("c", "b", 4).count(), 0);
  // Keys with NUL bytes sort and range correctly, current and historical.
  std::string a0 = std::string("a") + Nul();
  store_.Put(a0, "x");
  EXPECT_EQ(Keys(store_.Get("a", "b")), Strings({"a", a0}));
  EXPECT_EQ(Keys(store_.Get(a0, "b")), Strings({a0}));
  EXPECT_EQ(Keys(store_.Get("a", "b", store_.kv()->CurrentRevision() - 1)), Strings({"a"}));
  EXPECT_EQ(Keys(store_.Get("a", a0, store_.kv()->CurrentRevision())), Strings({"a"}));
}

TEST_P(KvStateRangeTest, HistoricalRanges) {
  store_.Delete("c");      // 7
  store_.Put("a", "new");  // 8
  EXPECT_EQ(Keys(store_.Get("a", "z", 6)), Strings({"a", "b", "c", "d"}));
  EXPECT_EQ(Keys(store_.Get("a", "z", 7)), Strings({"a", "b", "d"}));
  EXPECT_EQ(store_.Get("a", "z", 7).kvs(0).value(), "3");
  EXPECT_EQ(store_.Get("a", "z", 8).kvs(0).value(), "new");
  EXPECT_EQ(Keys(store_.Get("a", "z", 3)), Strings({"a", "b"}));
  EXPECT_EQ(store_.Get("a", "z", 3).kvs(1).version(), 1);
  EXPECT_EQ(store_.Get("a", "z", 1).count(), 0);
  RangeRequest req = All();
  req.set_revision(5);
  req.set_limit(1);
  req.set_sort_target(RangeRequest::MOD);
  req.set_sort_order(RangeRequest::DESCEND);
  auto resp = Run(req);
  EXPECT_EQ(Keys(resp), Strings({"b"}));
  EXPECT_EQ(resp.count(), 3);
  EXPECT_EQ(resp.header().revision(), 8);
}

TEST_P(KvStateRangeTest, RevisionErrors) {
  RangeRequest req = All();
  req.set_revision(7);
  etcdserverpb::RangeResponse resp;
  ExpectError(store_.Range(req, &resp), StatusCode::kOutOfRange,
              "etcdserver: mvcc: required revision is a future revision");
  req.set_revision(-3);  // <= 0: current
  EXPECT_EQ(Run(req).count(), 4);
  ASSERT_TRUE(store_.Compact(4).ok());
  req.set_revision(3);
  ExpectError(store_.Range(req, &resp), StatusCode::kOutOfRange,
              "etcdserver: mvcc: required revision has been compacted");
  req.set_revision(4);  // == compacted is readable
  EXPECT_EQ(Keys(Run(req)), Strings({"a", "b", "c"}));
  req.set_sort_order(static_cast<RangeRequest::SortOrder>(5));
  ExpectError(store_.Range(req, &resp), StatusCode::kInvalidArgument,
              "etcdserver: invalid sort option");
}

// ---------------------------------------------------------------------------------------
// Txn.

Compare Cmp(std::string_view key, Compare::CompareTarget target, Compare::CompareResult result) {
  Compare compare;
  compare.set_key(std::string(key));
  compare.set_target(target);
  compare.set_result(result);
  return compare;
}

class KvStateTxnTest : public KvStateTest {
 protected:
  // Runs a txn with one compare: success puts "ok", failure puts "ko" (so the branch shows).
  bool Holds(const Compare& compare) {
    TxnRequest txn;
    *txn.add_compare() = compare;
    etcdserverpb::TxnResponse resp;
    CAIRN_CHECK_OK(store_.Txn(txn, &resp));
    EXPECT_EQ(resp.header().revision(), store_.kv()->CurrentRevision());
    return resp.succeeded();
  }
};

INSTANTIATE_TEST_SUITE_P(Engines, KvStateTxnTest,
                         ::testing::Values(EngineKind::kMemory, EngineKind::kRocksDb),
                         [](const auto& info) { return storage::testing::KindName(info.param); });

TEST_P(KvStateTxnTest, CompareTargetsAndResults) {
  store_.Put("k", "m", 5);  // 2
  store_.Put("k", "m", 5);  // 3: version 2
  Compare c = Cmp("k", Compare::VALUE, Compare::EQUAL);
  c.set_value("m");
  EXPECT_TRUE(Holds(c));
  c.set_value("l");
  EXPECT_FALSE(Holds(c));
  c.set_result(Compare::GREATER);  // "m" > "l"
  EXPECT_TRUE(Holds(c));
  c.set_value("mm");  // prefix is less
  c.set_result(Compare::LESS);
  EXPECT_TRUE(Holds(c));
  c.set_result(Compare::NOT_EQUAL);
  EXPECT_TRUE(Holds(c));

  c = Cmp("k", Compare::VERSION, Compare::EQUAL);
  c.set_version(2);
  EXPECT_TRUE(Holds(c));
  c = Cmp("k", Compare::CREATE, Compare::LESS);
  c.set_create_revision(3);
  EXPECT_TRUE(Holds(c));
  c = Cmp("k", Compare::MOD, Compare::GREATER);
  c.set_mod_revision(2);
  EXPECT_TRUE(Holds(c));
  c = Cmp("k", Compare::LEASE, Compare::EQUAL);
  c.set_lease(5);
  EXPECT_TRUE(Holds(c));
  // Unset target_union (or a mismatched one) compares against 0 / "".
  EXPECT_TRUE(Holds(Cmp("k", Compare::VERSION, Compare::GREATER)));
  c = Cmp("k", Compare::MOD, Compare::GREATER);
  c.set_version(100);  // wrong union member: MOD compares against 0
  EXPECT_TRUE(Holds(c));
  EXPECT_TRUE(Holds(Cmp("k", Compare::VALUE, Compare::GREATER)));
}

TEST_P(KvStateTxnTest, CompareMissingKeys) {
  // A missing key compares as a zero KeyValue, except VALUE, which is always false.
  EXPECT_TRUE(Holds(Cmp("none", Compare::VERSION, Compare::EQUAL)));
  EXPECT_TRUE(Holds(Cmp("none", Compare::CREATE, Compare::EQUAL)));
  EXPECT_TRUE(Holds(Cmp("none", Compare::MOD, Compare::EQUAL)));
  EXPECT_TRUE(Holds(Cmp("none", Compare::LEASE, Compare::EQUAL)));
  EXPECT_FALSE(Holds(Cmp("none", Compare::VALUE, Compare::EQUAL)));
  EXPECT_FALSE(Holds(Cmp("none", Compare::VALUE, Compare::NOT_EQUAL)));
}

TEST_P(KvStateTxnTest, CompareOverRanges) {
  store_.Put("p/a", "1");
  store_.Put("p/b", "2");
  store_.Put("q", "9");
  Compare c = Cmp("p/", Compare::VALUE, Compare::GREATER);
  c.set_range_end("p0");
  c.set_value("0");
  EXPECT_TRUE(Holds(c));  // every key in range
  c.set_value("1");
  EXPECT_FALSE(Holds(c));  // p/a is not > "1"
  c = Cmp("p/", Compare::CREATE, Compare::GREATER);
  c.set_range_end(Nul());  // every key >= "p/" including q
  c.set_create_revision(2);
  EXPECT_FALSE(Holds(c));
  c.set_create_revision(1);
  EXPECT_TRUE(Holds(c));
  c = Cmp("x", Compare::VERSION, Compare::EQUAL);  // empty range: zero KeyValue
  c.set_range_end("y");
  EXPECT_TRUE(Holds(c));
  c = Cmp("x", Compare::VALUE, Compare::EQUAL);
  c.set_range_end("y");
  EXPECT_FALSE(Holds(c));
}

TEST_P(KvStateTxnTest, BranchesReadYourWritesAndHeaders) {
  store_.Put("a", "1");  // 2
  TxnRequest txn;
  Compare c = Cmp("a", Compare::VALUE, Compare::EQUAL);
  c.set_value("1");
  *txn.add_compare() = c;
  *txn.add_success() = RangeOp("a");          // before any write: header = current (2)
  *txn.add_success() = DeleteOp("zz");        // deletes nothing: header = current (2)
  *txn.add_success() = PutOp("b", "2");       // header = 3
  *txn.add_success() = RangeOp("a", "z");     // sees b, header = 3
  *txn.add_success() = DeleteOp("zz");        // deletes nothing, but txn changed: header 3
  *txn.add_success() = RangeOp("a", "z", 2);  // explicit current revision: before the txn
  *txn.add_failure() = PutOp("never");
  etcdserverpb::TxnResponse resp;
  ASSERT_TRUE(store_.Txn(txn, &resp).ok());
  EXPECT_TRUE(resp.succeeded());
  EXPECT_EQ(resp.header().revision(), 3);
  ASSERT_EQ(resp.responses_size(), 6);
  EXPECT_EQ(resp.responses(0).response_range().header().revision(), 2);
  EXPECT_EQ(resp.responses(1).response_delete_range().header().revision(), 2);
  EXPECT_EQ(resp.responses(2).response_put().header().revision(), 3);
  const auto& range = resp.responses(3).response_range();
  EXPECT_EQ(range.header().revision(), 3);
  EXPECT_EQ(Keys(range), Strings({"a", "b"}));
  EXPECT_EQ(range.kvs(1).mod_revision(), 3);
  EXPECT_EQ(resp.responses(4).response_delete_range().header().revision(), 3);
  EXPECT_EQ(Keys(resp.responses(5).response_range()), Strings({"a"}));
  EXPECT_EQ(store_.kv()->CurrentRevision(), 3);
  EXPECT_EQ(store_.Get("never").count(), 0);

  // Failure branch; a txn that changes nothing keeps the revision.
  c.set_value("2");
  *txn.mutable_compare(0) = c;
  txn.clear_failure();
  *txn.add_failure() = RangeOp("b");
  ASSERT_TRUE(store_.Txn(txn, &resp).ok());
  EXPECT_FALSE(resp.succeeded());
  EXPECT_EQ(resp.header().revision(), 3);
  EXPECT_EQ(resp.responses(0).response_range().kvs(0).value(), "2");
}

TEST_P(KvStateTxnTest, SubRevisionsAndSameRevisionForAllChanges) {
  store_.Put("x", "0");  // 2
  TxnRequest txn;
  *txn.add_success() = PutOp("a", "1");
  *txn.add_success() = DeleteOp("x");
  *txn.add_success() = PutOp("b", "1");
  std::vector<mvccpb::Event> events;
  etcdserverpb::TxnResponse resp;
  ASSERT_TRUE(store_
                  .Apply([&](storage::WriteBatch* b) {
                    return store_.kv()->ApplyTxn(b, txn, &resp, &events);
                  })
                  .ok());
  EXPECT_EQ(resp.header().revision(), 3);
  EXPECT_EQ(store_.Get("a").kvs(0).mod_revision(), 3);
  EXPECT_EQ(store_.Get("b").kvs(0).mod_revision(), 3);
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].type(), mvccpb::Event::PUT);
  EXPECT_EQ(events[1].type(), mvccpb::Event::DELETE);
  EXPECT_EQ(events[1].kv().key(), "x");
  EXPECT_EQ(events[1].kv().mod_revision(), 3);
  EXPECT_EQ(events[1].prev_kv().value(), "0");
  EXPECT_EQ(events[2].kv().key(), "b");
  // Sub revisions are recorded in order in kv_history.
  std::string value;
  ASSERT_TRUE(*store_.engine()->Get({}, Family::kKvHistory, format::HistoryKey("b", 3), &value));
  format::HistoryRecordView record;
  ASSERT_TRUE(format::DecodeHistoryRecord(value, &record));
  EXPECT_EQ(record.sub_revision, 2);
}

// Regression (tests/diff against etcd 3.4): an event's prev_kv is the key before the txn
// (etcd's watch reads it at revision - 1), not an earlier change of the same txn.
TEST_P(KvStateTxnTest, EventPrevKvIsTheKeyBeforeTheTxn) {
  store_.Put("x", "0");  // 2
  TxnRequest txn;
  *txn.add_success() = PutOp("n", "new");  // created and deleted by this txn
  *txn.add_success() = PutOp("x", "1");
  *txn.add_success() = DeleteOp("a", Nul());
  std::vector<mvccpb::Event> events;
  etcdserverpb::TxnResponse resp;
  ASSERT_TRUE(store_
                  .Apply([&](storage::WriteBatch* b) {
                    return store_.kv()->ApplyTxn(b, txn, &resp, &events);
                  })
                  .ok());
  ASSERT_EQ(events.size(), 4u);
  EXPECT_EQ(events[0].kv().key(), "n");
  EXPECT_FALSE(events[0].has_prev_kv());
  EXPECT_EQ(events[1].prev_kv().value(), "0");
  EXPECT_EQ(events[2].type(), mvccpb::Event::DELETE);
  EXPECT_EQ(events[2].kv().key(), "n");
  EXPECT_FALSE(events[2].has_prev_kv());
  EXPECT_EQ(events[3].kv().key(), "x");
  EXPECT_EQ(events[3].prev_kv().value(), "0");
  EXPECT_EQ(events[3].prev_kv().mod_revision(), 2);

  // Delete, then put again in one txn: the put is a create event, which has no prev_kv.
  store_.Put("x", "1");
  TxnRequest recreate;
  *recreate.add_success() = DeleteOp("a", Nul());
  *recreate.add_success() = PutOp("x", "2");
  events.clear();
  ASSERT_TRUE(store_
                  .Apply([&](storage::WriteBatch* b) {
                    return store_.kv()->ApplyTxn(b, recreate, &resp, &events);
                  })
                  .ok());
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].prev_kv().value(), "1");
  EXPECT_EQ(events[1].kv().create_revision(), events[1].kv().mod_revision());
  EXPECT_FALSE(events[1].has_prev_kv());
}

TEST_P(KvStateTxnTest, NestedTxnComparesSeeTheStateBeforeTheTxn) {
  store_.Put("flag", "0");  // 2
  TxnRequest inner;
  Compare c = Cmp("flag", Compare::VALUE, Compare::EQUAL);
  c.set_value("1");
  *inner.add_compare() = c;  // evaluated before the outer put, as etcd does: false
  *inner.add_success() = PutOp("inner", "success");
  *inner.add_failure() = PutOp("inner", "failure");
  *inner.add_failure() = RangeOp("flag");
  TxnRequest outer;
  *outer.add_success() = PutOp("flag", "1");
  *outer.add_success() = TxnOp(inner);
  etcdserverpb::TxnResponse resp;
  ASSERT_TRUE(store_.Txn(outer, &resp).ok());
  EXPECT_EQ(resp.header().revision(), 3);
  const auto& nested = resp.responses(1).response_txn();
  EXPECT_FALSE(nested.succeeded());
  EXPECT_TRUE(nested.has_header());
  EXPECT_EQ(nested.header().revision(), 0);  // etcd leaves nested txn headers empty
  EXPECT_EQ(nested.responses(0).response_put().header().revision(), 3);
  // But ops inside see earlier writes of the txn.
  EXPECT_EQ(nested.responses(1).response_range().kvs(0).value(), "1");
  EXPECT_EQ(store_.Get("inner").kvs(0).value(), "failure");
}

TEST_P(KvStateTxnTest, ApplyTimeFailureChangesNothing) {
  store_.Put("a", "1");  // 2
  TxnRequest txn;
  *txn.add_success() = PutOp("b", "x");
  etcdserverpb::RequestOp keep;
  keep.mutable_request_put()->set_key("missing");
  keep.mutable_request_put()->set_ignore_value(true);
  *txn.add_success() = keep;
  auto batch = store_.engine()->NewWriteBatch();
  // An earlier command in the same batch stays; the failing txn adds nothing.
  etcdserverpb::PutRequest put;
  put.set_key("c");
  put.set_value("3");
  etcdserverpb::PutResponse put_resp;
  ASSERT_TRUE(store_.kv()->ApplyPut(batch.get(), put, &put_resp).ok());
  size_t count = batch->Count();
  size_t bytes = batch->ByteSize();
  etcdserverpb::TxnResponse resp;
  std::vector<mvccpb::Event> events;
  ExpectError(store_.kv()->ApplyTxn(batch.get(), txn, &resp, &events), StatusCode::kInvalidArgument,
              "etcdserver: key not found");
  EXPECT_EQ(batch->Count(), count);
  EXPECT_EQ(batch->ByteSize(), bytes);
  EXPECT_TRUE(events.empty());
  // The next command gets the next revision after the put, not after the failed txn.
  etcdserverpb::PutResponse next;
  put.set_key("d");
  ASSERT_TRUE(store_.kv()->ApplyPut(batch.get(), put, &next).ok());
  EXPECT_EQ(next.header().revision(), 4);
  store_.kv()->FinishBatch(batch.get());
  ASSERT_TRUE(store_.engine()->Write(batch.get()).ok());
  store_.kv()->OnBatchWritten();
  EXPECT_EQ(store_.kv()->CurrentRevision(), 4);
  EXPECT_EQ(store_.Get("b").count(), 0);
}

TEST_P(KvStateTxnTest, ApplyTimeChecksComeBeforeAnyOp) {
  store_.Put("a", "1");  // 2
  store_.Put("a", "2");  // 3
  ASSERT_TRUE(store_.Compact(3).ok());
  // Range at a future revision (current + 1 is future even after a put in the txn).
  TxnRequest future;
  *future.add_success() = PutOp("b");
  *future.add_success() = RangeOp("a", "", 4);
  etcdserverpb::TxnResponse resp;
  ExpectError(store_.Txn(future, &resp), StatusCode::kOutOfRange,
              "etcdserver: mvcc: required revision is a future revision");
  TxnRequest compacted;
  *compacted.add_success() = PutOp("b");
  *compacted.add_success() = RangeOp("a", "", 2);
  ExpectError(store_.Txn(compacted, &resp), StatusCode::kOutOfRange,
              "etcdserver: mvcc: required revision has been compacted");
  // etcd checks puts (whole path) before ranges.
  etcdserverpb::RequestOp keep;
  keep.mutable_request_put()->set_key("missing");
  keep.mutable_request_put()->set_ignore_lease(true);
  *compacted.add_success() = keep;
  ExpectError(store_.Txn(compacted, &resp), StatusCode::kInvalidArgument,
              "etcdserver: key not found");
  // Only the chosen branch is checked.
  TxnRequest other_branch;
  *other_branch.add_success() = PutOp("b");
  *other_branch.add_failure() = keep;
  ASSERT_TRUE(store_.Txn(other_branch, &resp).ok());
  EXPECT_EQ(store_.kv()->CurrentRevision(), 4);
  // Negative revisions below the compacted revision fail inside a txn (etcd's checkRange).
  TxnRequest negative;
  *negative.add_success() = RangeOp("a", "", -1);
  ExpectError(store_.Txn(negative, &resp), StatusCode::kOutOfRange,
              "etcdserver: mvcc: required revision has been compacted");
  EXPECT_EQ(store_.kv()->CurrentRevision(), 4);
}

TEST_P(KvStateTxnTest, DeleteThenPutInOneRevisionViaEtcdQuirk) {
  // Allowed by etcd's duplicate check (range_end "\0" quirk): delete everything >= "a",
  // then put "b", both at one revision. The put recreates b with version 1.
  store_.Put("b", "old");  // 2
  TxnRequest txn;
  *txn.add_success() = DeleteOp("a", Nul());
  *txn.add_success() = PutOp("b", "new");
  ASSERT_TRUE(ValidateTxn(txn, ValidationOptions{}).ok());
  etcdserverpb::TxnResponse resp;
  ASSERT_TRUE(store_.Txn(txn, &resp).ok());
  auto got = store_.Get("b");
  ASSERT_EQ(got.kvs_size(), 1);
  EXPECT_EQ(got.kvs(0).version(), 1);
  EXPECT_EQ(got.kvs(0).create_revision(), 3);
  EXPECT_EQ(store_.Get("b", "", 3).kvs(0).value(), "new");
  // Put then delete at one revision: the key ends deleted, also historically.
  TxnRequest put_then_delete;
  *put_then_delete.add_success() = PutOp("c", "x");
  *put_then_delete.add_success() = DeleteOp("a", Nul());
  ASSERT_TRUE(store_.Txn(put_then_delete, &resp).ok());
  EXPECT_EQ(store_.Get("a", Nul()).count(), 0);
  EXPECT_EQ(store_.Get("c", "", 4).count(), 0);
  EXPECT_EQ(store_.kv()->KeyCount(), 0);

  // A watch replaying history sees every change, as etcd's (each has its own sub-revision):
  // rev 3 deletes b (prev_kv "old") and recreates it (a create: no prev_kv); rev 4 creates c
  // and deletes both.
  HistoryScan scan;
  ASSERT_TRUE(ScanHistory(store_.engine(), "a", Nul(), 2, 4, 100, &scan).ok());
  ASSERT_EQ(scan.events.size(), 5u);
  EXPECT_EQ(scan.events[0].type(), mvccpb::Event::DELETE);
  EXPECT_EQ(scan.events[0].kv().key(), "b");
  EXPECT_EQ(scan.events[0].prev_kv().value(), "old");
  EXPECT_EQ(scan.events[1].type(), mvccpb::Event::PUT);
  EXPECT_EQ(scan.events[1].kv().value(), "new");
  EXPECT_FALSE(scan.events[1].has_prev_kv());
  EXPECT_EQ(scan.events[2].type(), mvccpb::Event::PUT);  // c at 4, sub-revision 0
  EXPECT_EQ(scan.events[2].kv().key(), "c");
  EXPECT_EQ(scan.events[3].kv().key(), "b");  // the delete, in key order within sub 1..2
  EXPECT_EQ(scan.events[3].type(), mvccpb::Event::DELETE);
  EXPECT_EQ(scan.events[3].prev_kv().value(), "new");
  EXPECT_EQ(scan.events[4].kv().key(), "c");
  EXPECT_EQ(scan.events[4].type(), mvccpb::Event::DELETE);
  EXPECT_FALSE(scan.events[4].has_prev_kv());  // c did not exist before revision 4
  for (const auto& event : scan.events) EXPECT_EQ(event.kv().mod_revision() > 2, true);
}

TEST_P(KvStateTxnTest, ReadOnlyTxnFromSnapshot) {
  store_.Put("a", "1");
  TxnRequest txn;
  Compare c = Cmp("a", Compare::VERSION, Compare::EQUAL);
  c.set_version(1);
  *txn.add_compare() = c;
  *txn.add_success() = RangeOp("a", "z");
  etcdserverpb::TxnResponse resp;
  ASSERT_TRUE(store_.kv()->ReadOnlyTxn(txn, &resp).ok());
  EXPECT_TRUE(resp.succeeded());
  EXPECT_EQ(resp.header().revision(), 2);
  EXPECT_EQ(resp.responses(0).response_range().count(), 1);
  *txn.add_failure() = PutOp("x");
  EXPECT_FALSE(store_.kv()->ReadOnlyTxn(txn, &resp).ok());
}

// ---------------------------------------------------------------------------------------
// Batching.

TEST_P(KvStateTest, CommandsInOneBatchSeeEachOtherAndReadersSeeOnlyWrittenBatches) {
  auto batch = store_.engine()->NewWriteBatch();
  etcdserverpb::PutRequest put;
  put.set_key("a");
  put.set_value("1");
  etcdserverpb::PutResponse put_resp;
  ASSERT_TRUE(store_.kv()->ApplyPut(batch.get(), put, &put_resp).ok());
  put.set_value("2");
  ASSERT_TRUE(store_.kv()->ApplyPut(batch.get(), put, &put_resp).ok());
  EXPECT_EQ(put_resp.header().revision(), 3);
  TxnRequest txn;
  Compare c = Cmp("a", Compare::VERSION, Compare::EQUAL);
  c.set_version(2);
  *txn.add_compare() = c;
  *txn.add_success() = RangeOp("a");
  etcdserverpb::TxnResponse txn_resp;
  ASSERT_TRUE(store_.kv()->ApplyTxn(batch.get(), txn, &txn_resp).ok());
  EXPECT_TRUE(txn_resp.succeeded());
  EXPECT_EQ(txn_resp.responses(0).response_range().kvs(0).value(), "2");
  // Not written yet.
  EXPECT_EQ(store_.Get("a").count(), 0);
  EXPECT_EQ(store_.kv()->CurrentRevision(), 1);
  store_.kv()->FinishBatch(batch.get());
  ASSERT_TRUE(store_.engine()->Write(batch.get()).ok());
  store_.kv()->OnBatchWritten();
  EXPECT_EQ(store_.kv()->CurrentRevision(), 3);
  EXPECT_EQ(store_.Get("a").kvs(0).version(), 2);

  // An aborted batch is forgotten.
  auto aborted = store_.engine()->NewWriteBatch();
  ASSERT_TRUE(store_.kv()->ApplyPut(aborted.get(), put, &put_resp).ok());
  EXPECT_EQ(put_resp.header().revision(), 4);
  store_.kv()->OnBatchAborted();
  auto next = store_.engine()->NewWriteBatch();
  ASSERT_TRUE(store_.kv()->ApplyPut(next.get(), put, &put_resp).ok());
  EXPECT_EQ(put_resp.header().revision(), 4);
}

TEST_P(KvStateTest, ReopenRestoresRevisions) {
  store_.Put("a", "1");
  store_.Put("a", "2");
  store_.Delete("a");
  ASSERT_TRUE(store_.Compact(3).ok());
  store_.Reopen();
  EXPECT_EQ(store_.kv()->CurrentRevision(), 4);
  EXPECT_EQ(store_.kv()->CompactedRevision(), 3);
  EXPECT_EQ(store_.filter()->CompactedRevision(), 3);
  EXPECT_EQ(store_.Get("a", "", 3).kvs(0).value(), "2");
  EXPECT_EQ(store_.Put("a", "3").header().revision(), 5);
  EXPECT_EQ(store_.Get("a").kvs(0).version(), 1);
}

TEST_P(KvStateTest, ReadersSeeOneConsistentPointWhileApplyRuns) {
  // The writer keeps "counter" == its own mod_revision and "mirror" equal to "counter"; a
  // reader must never see a header, a counter and a mirror from different points.
  std::atomic<bool> stop{false};
  std::atomic<int64_t> reads{0};
  std::thread reader([&] {
    while (!stop.load()) {
      RangeRequest req;
      req.set_key("counter");
      req.set_range_end("n");  // counter and mirror
      etcdserverpb::RangeResponse resp;
      CAIRN_CHECK_OK(store_.kv()->Range(req, &resp));
      if (resp.kvs_size() == 0) continue;
      CAIRN_CHECK(resp.kvs_size() == 2);
      CAIRN_CHECK(resp.kvs(0).mod_revision() == resp.header().revision());
      CAIRN_CHECK(resp.kvs(0).value() == std::to_string(resp.kvs(0).mod_revision()));
      CAIRN_CHECK(resp.kvs(1).value() == resp.kvs(0).value());
      reads.fetch_add(1);
    }
  });
  for (int i = 0; i < 300; ++i) {
    int64_t next = store_.kv()->CurrentRevision() + 1;
    TxnRequest txn;
    *txn.add_success() = PutOp("counter", std::to_string(next));
    *txn.add_success() = PutOp("mirror", std::to_string(next));
    etcdserverpb::TxnResponse resp;
    ASSERT_TRUE(store_.Txn(txn, &resp).ok());
    ASSERT_EQ(resp.header().revision(), next);
    if (i % 50 == 49) {
      ASSERT_TRUE(store_.Compact(next - 10).ok());
    }
  }
  while (reads.load() < 10) std::this_thread::yield();
  stop.store(true);
  reader.join();
}

// ---------------------------------------------------------------------------------------
// Compaction and hash.

TEST_P(KvStateTest, CompactionErrorsAndResponse) {
  // etcd: compacting at 0 on a fresh store succeeds (its compacted revision starts at -1).
  ASSERT_TRUE(store_.Compact(0).ok());
  ExpectError(store_.Compact(0), StatusCode::kOutOfRange,
              "etcdserver: mvcc: required revision has been compacted");
  store_.Put("a", "1");  // 2
  ExpectError(store_.Compact(3), StatusCode::kOutOfRange,
              "etcdserver: mvcc: required revision is a future revision");
  etcdserverpb::CompactionRequest req;
  req.set_revision(2);
  etcdserverpb::CompactionResponse resp;
  ASSERT_TRUE(store_
                  .Apply([&](storage::WriteBatch* b) {
                    return store_.kv()->ApplyCompaction(b, req, &resp);
                  })
                  .ok());
  EXPECT_EQ(resp.header().revision(), 2);
  EXPECT_EQ(store_.kv()->CurrentRevision(), 2);  // compaction does not bump the revision
  EXPECT_EQ(store_.kv()->CompactedRevision(), 2);
  ExpectError(store_.Compact(1), StatusCode::kOutOfRange,
              "etcdserver: mvcc: required revision has been compacted");
}

// Builds a history with overwrites, deletes and recreations; returns the revision of its
// middle.
int64_t BuildHistory(Store* store) {
  for (int round = 0; round < 4; ++round) {
    for (const char* key : {"a", "b", "c", "d"}) store->Put(key, std::to_string(round));
  }
  int64_t middle = store->kv()->CurrentRevision();
  store->Delete("b");
  store->Delete("c");
  store->Put("c", "again");
  store->Put("e", "1");
  store->Delete("e");
  store->Put("a", "last");
  return middle;
}

TEST_P(KvStateTest, PhysicalCompactionDropsObsoleteEntriesAndReadsStayExact) {
  Store reference(EngineKind::kMemory);
  int64_t middle = BuildHistory(&store_);
  BuildHistory(&reference);
  int64_t current = store_.kv()->CurrentRevision();
  EXPECT_EQ(RawCount(store_.engine(), Family::kKvHistory), 22u);

  // Compact at the revision after "e" was deleted and "c" recreated, before the last put.
  int64_t compact_at = current - 1;
  ASSERT_TRUE(store_.Compact(compact_at).ok());
  ASSERT_TRUE(reference.Compact(compact_at).ok());
  etcdserverpb::HashKVResponse before;
  ASSERT_TRUE(store_.kv()->HashKV(0, &before).ok());
  EXPECT_EQ(RawCount(store_.engine(), Family::kKvHistory), 22u);  // lazily: nothing yet

  ASSERT_TRUE(store_.kv()->CompactPhysically().ok());
  // Left: a@current and a@(newest <= compact_at), d (put), c (recreated put). b and e end in
  // tombstones <= compact_at: a full compaction drops them and everything older.
  EXPECT_EQ(RawCount(store_.engine(), Family::kKvHistory), 4u);

  // Reads at and above the compacted revision are unchanged.
  for (int64_t rev : {compact_at, current}) {
    auto got = store_.Get("a", "z", rev);
    auto want = reference.Get("a", "z", rev);
    EXPECT_EQ(got.SerializeAsString(), want.SerializeAsString()) << "revision " << rev;
  }
  EXPECT_EQ(Keys(store_.Get("a", "z", compact_at)), Strings({"a", "c", "d"}));
  etcdserverpb::RangeResponse resp;
  etcdserverpb::RangeRequest below;
  below.set_key("a");
  below.set_revision(middle);
  ExpectError(store_.Range(below, &resp), StatusCode::kOutOfRange,
              "etcdserver: mvcc: required revision has been compacted");

  // HashKV is the same before/after the physical compaction and on the replica that never
  // compacted physically, at every revision from the compacted one up.
  etcdserverpb::HashKVResponse after;
  ASSERT_TRUE(store_.kv()->HashKV(0, &after).ok());
  EXPECT_EQ(before.hash(), after.hash());
  for (int64_t rev = compact_at; rev <= current; ++rev) {
    etcdserverpb::HashKVResponse mine;
    etcdserverpb::HashKVResponse theirs;
    ASSERT_TRUE(store_.kv()->HashKV(rev, &mine).ok());
    ASSERT_TRUE(reference.kv()->HashKV(rev, &theirs).ok());
    EXPECT_EQ(mine.hash(), theirs.hash()) << "revision " << rev;
    EXPECT_EQ(mine.compact_revision(), compact_at);
    EXPECT_EQ(mine.hash_revision(), rev);
    EXPECT_EQ(mine.header().revision(), current);
  }
  // After more writes, hashes still agree.
  store_.Put("f", "1");
  reference.Put("f", "1");
  etcdserverpb::HashKVResponse mine;
  etcdserverpb::HashKVResponse theirs;
  ASSERT_TRUE(store_.kv()->HashKV(0, &mine).ok());
  ASSERT_TRUE(reference.kv()->HashKV(0, &theirs).ok());
  EXPECT_EQ(mine.hash(), theirs.hash());
  EXPECT_NE(mine.hash(), after.hash());
}

TEST_P(KvStateTest, HashKVErrorsAndSensitivity) {
  store_.Put("a", "1");  // 2
  store_.Put("a", "2");  // 3
  store_.Put("b", "1");  // 4
  etcdserverpb::HashKVResponse resp;
  ExpectError(store_.kv()->HashKV(5, &resp), StatusCode::kOutOfRange,
              "etcdserver: mvcc: required revision is a future revision");
  ASSERT_TRUE(store_.kv()->HashKV(0, &resp).ok());
  EXPECT_EQ(resp.compact_revision(), -1);
  EXPECT_EQ(resp.hash_revision(), 4);
  uint32_t at4 = resp.hash();
  ASSERT_TRUE(store_.kv()->HashKV(3, &resp).ok());
  EXPECT_NE(resp.hash(), at4);
  ASSERT_TRUE(store_.Compact(3).ok());
  ExpectError(store_.kv()->HashKV(2, &resp), StatusCode::kOutOfRange,
              "etcdserver: mvcc: required revision has been compacted");
  ASSERT_TRUE(store_.kv()->HashKV(3, &resp).ok());
  EXPECT_EQ(resp.compact_revision(), 3);
  // A different value at the same revisions gives a different hash.
  Store other(EngineKind::kMemory);
  other.Put("a", "1");
  other.Put("a", "X");
  other.Put("b", "1");
  etcdserverpb::HashKVResponse other_resp;
  ASSERT_TRUE(other.kv()->HashKV(4, &other_resp).ok());
  EXPECT_NE(other_resp.hash(), at4);
}

TEST_P(KvStateTest, ReadsFailWhenACompactionOvertookTheirSnapshot) {
  store_.Put("a", "1");  // 2
  store_.Put("a", "2");  // 3
  // The filter was told about a compaction at 3 (as after a batch write) while the meta in
  // storage still says otherwise: a read at 2 must not trust entries the filter may drop.
  store_.filter()->SetCompactedRevision(3);
  etcdserverpb::RangeRequest req;
  req.set_key("a");
  req.set_revision(2);
  etcdserverpb::RangeResponse resp;
  ExpectError(store_.Range(req, &resp), StatusCode::kOutOfRange,
              "etcdserver: mvcc: required revision has been compacted");
}

}  // namespace
}  // namespace cairn::mvcc
