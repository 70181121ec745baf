#include "cairn/store.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <set>
#include <thread>

namespace cairn {
namespace {

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("cairn_store_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    Reopen();
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  void Reopen() {
    store_.reset();
    StoreOptions options;
    options.dir = dir_.string();
    options.block_cache_bytes = 8 << 20;
    auto opened = Store::Open(options);
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    store_ = std::move(opened).value();
  }
  // A fingerprint of the whole state: revision + HashKV at the current revision.
  std::pair<int64_t, uint32_t> Fingerprint() {
    auto hash = store_->HashKV(0);
    EXPECT_TRUE(hash.ok()) << hash.status().ToString();
    return {store_->CurrentRevision(), hash.ok() ? hash->hash() : 0};
  }

  std::filesystem::path dir_;
  std::unique_ptr<Store> store_;
};

TEST_F(StoreTest, PutGetDeleteWithEtcdRevisions) {
  EXPECT_EQ(store_->CurrentRevision(), 1);
  auto rev = store_->Put("a", "1");
  ASSERT_TRUE(rev.ok()) << rev.status().ToString();
  EXPECT_EQ(*rev, 2);
  ASSERT_TRUE(store_->Put("a", "2").ok());
  auto kv = store_->Get("a");
  ASSERT_TRUE(kv.ok());
  ASSERT_TRUE(kv->has_value());
  EXPECT_EQ((*kv)->value(), "2");
  EXPECT_EQ((*kv)->create_revision(), 2);
  EXPECT_EQ((*kv)->mod_revision(), 3);
  EXPECT_EQ((*kv)->version(), 2);
  auto old = store_->Get("a", 2);
  ASSERT_TRUE(old.ok());
  EXPECT_EQ((*old)->value(), "1");
  auto deleted = store_->Delete("a");
  ASSERT_TRUE(deleted.ok());
  EXPECT_EQ(*deleted, 1);
  EXPECT_FALSE(store_->Get("a")->has_value());
  EXPECT_EQ(store_->CurrentRevision(), 4);
  // Deleting nothing does not bump the revision.
  EXPECT_EQ(*store_->Delete("a"), 0);
  EXPECT_EQ(store_->CurrentRevision(), 4);
}

TEST_F(StoreTest, SurvivesReopenAndContinuesRevisions) {
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(store_->Put("k" + std::to_string(i), "v").ok());
  auto before = Fingerprint();
  Reopen();
  EXPECT_EQ(Fingerprint(), before);
  EXPECT_EQ(*store_->Put("next", "x"), before.first + 1);
}

TEST_F(StoreTest, CompactedAndFutureRevisionsFailLikeEtcd) {
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(store_->Put("k", std::to_string(i)).ok());
  ASSERT_TRUE(store_->Compact(4).ok());
  auto compacted = store_->Get("k", 3);
  ASSERT_FALSE(compacted.ok());
  EXPECT_EQ(compacted.status().code(), StatusCode::kOutOfRange);
  EXPECT_EQ(compacted.status().message(), "etcdserver: mvcc: required revision has been compacted");
  auto future = store_->Get("k", 100);
  ASSERT_FALSE(future.ok());
  EXPECT_EQ(future.status().message(), "etcdserver: mvcc: required revision is a future revision");
  EXPECT_EQ((*store_->Get("k", 4))->value(), "2");
  auto again = store_->Compact(4);
  EXPECT_EQ(again.status().message(), "etcdserver: mvcc: required revision has been compacted");
}

// Item 4 of the issue: bad input returns a precise Status and changes nothing.
TEST_F(StoreTest, BadInputIsRejectedPreciselyAndChangesNothing) {
  ASSERT_TRUE(store_->Put("existing", "v").ok());
  const auto before = Fingerprint();

  auto expect_invalid = [&](const Status& status, std::string_view message) {
    EXPECT_EQ(status.code(), StatusCode::kInvalidArgument) << status.ToString();
    EXPECT_EQ(status.message(), message);
    EXPECT_EQ(Fingerprint(), before);
  };

  expect_invalid(store_->Put("", "v").status(), "etcdserver: key is not provided");
  expect_invalid(store_->Get("").status(), "etcdserver: key is not provided");
  expect_invalid(store_->Delete("").status(), "etcdserver: key is not provided");

  std::string big(1536 * 1024 + 1, 'x');
  expect_invalid(store_->Put(big, "v").status(), "etcdserver: request is too large");
  expect_invalid(store_->Put("k", big).status(), "etcdserver: request is too large");

  etcdserverpb::TxnRequest dup;
  for (int i = 0; i < 2; ++i) {
    auto* put = dup.add_success()->mutable_request_put();
    put->set_key("same");
    put->set_value(std::to_string(i));
  }
  expect_invalid(store_->Txn(dup).status(), "etcdserver: duplicate key given in txn request");

  etcdserverpb::TxnRequest many;
  for (int i = 0; i < 129; ++i) {
    auto* put = many.add_success()->mutable_request_put();
    put->set_key("k" + std::to_string(i));
  }
  expect_invalid(store_->Txn(many).status(), "etcdserver: too many operations in txn request");
  many.mutable_success()->RemoveLast();
  ASSERT_TRUE(store_->Txn(many).ok());  // exactly 128 is allowed
  const auto after_txn = Fingerprint();
  EXPECT_EQ(after_txn.first, before.first + 1);

  auto reversed = store_->Delete("b", "a");
  EXPECT_EQ(reversed.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(reversed.status().message(), "cairn: range_end must be greater than key");
  EXPECT_EQ(Fingerprint(), after_txn);
}

TEST_F(StoreTest, ApplyTimeFailureChangesNothing) {
  const auto before = Fingerprint();
  etcdserverpb::PutRequest put;
  put.set_key("missing");
  put.set_ignore_value(true);
  auto result = store_->Put(put);
  EXPECT_EQ(result.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(result.status().message(), "etcdserver: key not found");
  EXPECT_EQ(Fingerprint(), before);
  // The failed command occupied a log index; later writes and a reopen are unaffected.
  ASSERT_TRUE(store_->Put("x", "1").ok());
  Reopen();
  EXPECT_EQ((*store_->Get("x"))->value(), "1");
  EXPECT_EQ(store_->CurrentRevision(), before.first + 1);
}

TEST_F(StoreTest, ConcurrentWritersGetUniqueConsecutiveRevisions) {
  constexpr int kThreads = 16;
  constexpr int kPerThread = 200;
  std::vector<std::vector<int64_t>> revisions(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        auto rev = store_->Put("t" + std::to_string(t) + "/" + std::to_string(i), "v");
        ASSERT_TRUE(rev.ok()) << rev.status().ToString();
        revisions[t].push_back(*rev);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  std::set<int64_t> all;
  for (auto& list : revisions) {
    EXPECT_TRUE(std::is_sorted(list.begin(), list.end()));
    all.insert(list.begin(), list.end());
  }
  ASSERT_EQ(all.size(), static_cast<size_t>(kThreads * kPerThread));
  EXPECT_EQ(*all.begin(), 2);
  EXPECT_EQ(*all.rbegin(), 1 + kThreads * kPerThread);
  etcdserverpb::RangeRequest everything;
  everything.set_key(std::string(1, '\0'));
  everything.set_range_end(std::string(1, '\0'));
  everything.set_count_only(true);
  EXPECT_EQ(store_->Range(everything)->count(), kThreads * kPerThread);
}

TEST_F(StoreTest, CheckpointDropsLogAndKeepsState) {
  store_.reset();
  StoreOptions options;
  options.dir = dir_.string();
  options.wal_segment_size_bytes = 64 << 10;
  options.checkpoint_interval_entries = 500;
  auto opened = Store::Open(options);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  store_ = std::move(opened).value();
  for (int i = 0; i < 3000; ++i) {
    ASSERT_TRUE(store_->Put("k" + std::to_string(i % 50), std::string(100, 'v')).ok());
  }
  auto before = Fingerprint();
  size_t segments = 0;
  for (auto& entry : std::filesystem::directory_iterator(dir_ / "wal")) {
    segments += entry.path().extension() == ".wal";
  }
  // 3000 entries of ~130 bytes need ~6 segments of 64 KiB; checkpoints must have removed most.
  EXPECT_LE(segments, 4u);
  Reopen();
  EXPECT_EQ(Fingerprint(), before);
}

TEST_F(StoreTest, ClosedStoreRefusesCalls) {
  ASSERT_TRUE(store_->Close().ok());
  EXPECT_EQ(store_->Put("a", "b").status().code(), StatusCode::kUnavailable);
  EXPECT_TRUE(store_->Close().ok());
}

}  // namespace
}  // namespace cairn

namespace cairn {
namespace {

TEST_F(StoreTest, AsyncPutsCompleteOnceWithDistinctRevisions) {
  constexpr int kWrites = 2000;
  std::mutex mutex;
  std::condition_variable all_done;
  std::vector<int64_t> revisions;
  int failures = 0;
  for (int i = 0; i < kWrites; ++i) {
    etcdserverpb::PutRequest request;
    request.set_key("async/" + std::to_string(i));
    request.set_value("v");
    store_->PutAsync(request, [&](Result<etcdserverpb::PutResponse> response) {
      std::lock_guard<std::mutex> lock(mutex);
      if (response.ok()) {
        revisions.push_back(response->header().revision());
      } else {
        ++failures;
      }
      if (revisions.size() + failures == kWrites) all_done.notify_one();
    });
  }
  std::unique_lock<std::mutex> lock(mutex);
  all_done.wait(lock, [&] { return revisions.size() + failures == kWrites; });
  EXPECT_EQ(failures, 0);
  std::set<int64_t> distinct(revisions.begin(), revisions.end());
  EXPECT_EQ(distinct.size(), static_cast<size_t>(kWrites));
  // Callbacks run in log order on the apply thread.
  EXPECT_TRUE(std::is_sorted(revisions.begin(), revisions.end()));
  etcdserverpb::PutRequest empty_key;
  Status status;
  store_->PutAsync(empty_key, [&](Result<etcdserverpb::PutResponse> r) { status = r.status(); });
  EXPECT_EQ(status.message(), "etcdserver: key is not provided");
}

}  // namespace
}  // namespace cairn

namespace cairn {
namespace {

// A point read served by the cache of hot keys must be exactly the state at the revision its
// header names: the same read at that revision from history must agree, while a writer runs.
TEST_F(StoreTest, CachedPointReadsMatchHistoryUnderConcurrentWrites) {
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    for (int i = 0; i < 3000 && !stop.load(); ++i) {
      ASSERT_TRUE(store_->Put("hot", std::to_string(i)).ok());
      if (i % 3 == 0) {
        ASSERT_TRUE(store_->Put("other/" + std::to_string(i), "x").ok());
      }
      if (i % 50 == 25) {
        ASSERT_TRUE(store_->Delete("hot").ok());
      }
    }
    stop = true;
  });
  int checked = 0;
  etcdserverpb::RangeRequest request;
  request.set_key("hot");
  while (!stop.load()) {
    auto now = store_->Range(request);
    ASSERT_TRUE(now.ok()) << now.status().ToString();
    etcdserverpb::RangeRequest at = request;
    at.set_revision(now->header().revision());
    auto then = store_->Range(at);
    ASSERT_TRUE(then.ok()) << then.status().ToString();
    ASSERT_EQ(now->kvs_size(), then->kvs_size()) << "at revision " << at.revision();
    if (now->kvs_size() == 1) {
      EXPECT_EQ(now->kvs(0).SerializeAsString(), then->kvs(0).SerializeAsString());
      EXPECT_LE(now->kvs(0).mod_revision(), now->header().revision());
    }
    ++checked;
  }
  writer.join();
  EXPECT_GT(checked, 100);
}

}  // namespace
}  // namespace cairn

namespace cairn {
namespace {

// "Compaction must not stall writes": Compact only records the compacted revision (the
// RocksDB compaction filter drops history later, in the background), so its cost does not
// grow with the history; and writes issued while physical compaction runs succeed.
TEST_F(StoreTest, CompactionDoesNotStallWrites) {
  constexpr int kKeys = 20;
  for (int round = 0; round < 500; ++round) {
    etcdserverpb::TxnRequest txn;  // one revision rewriting every key: 10,000 history entries
    for (int k = 0; k < kKeys; ++k) {
      auto* put = txn.add_success()->mutable_request_put();
      put->set_key("key" + std::to_string(k));
      put->set_value(std::string(100, 'a' + round % 26));
    }
    ASSERT_TRUE(store_->Txn(txn).ok());
  }
  const int64_t target = store_->CurrentRevision() - 1;
  auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(store_->Compact(target).ok());
  auto logical = std::chrono::steady_clock::now() - start;
  EXPECT_LT(logical, std::chrono::milliseconds(200)) << "logical compaction scanned history";

  std::atomic<bool> compacting{true};
  std::atomic<int> writes_during{0};
  std::thread writer([&] {
    while (compacting.load()) {
      ASSERT_TRUE(store_->Put("during", "x").ok());
      writes_during.fetch_add(1);
    }
  });
  etcdserverpb::CompactionRequest physical;
  physical.set_revision(target);
  physical.set_physical(true);
  auto result = store_->Compact(physical);  // already compacted at `target`: fails, as etcd
  EXPECT_EQ(result.status().message(), "etcdserver: mvcc: required revision has been compacted");
  etcdserverpb::CompactionRequest later;
  later.set_revision(store_->CurrentRevision());
  later.set_physical(true);
  ASSERT_TRUE(store_->Compact(later).ok());  // waits for the physical compaction
  compacting = false;
  writer.join();
  // Every write issued while the compactions ran succeeded (asserted in the writer).
  // History below the compacted revision is gone logically; the latest values remain.
  EXPECT_EQ(store_->Get("key0", target - 5).status().code(), StatusCode::kOutOfRange);
  EXPECT_EQ((*store_->Get("key0"))->value(), std::string(100, 'a' + 499 % 26));
}

}  // namespace
}  // namespace cairn
