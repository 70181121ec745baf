#include "src/wal/group_committer.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <map>
#include <thread>

#include "src/base/limits.h"
#include "src/env/fault_injection_file_system.h"
#include "src/wal/wal_test_util.h"

namespace cairn::wal {
namespace {

using testing::Entries;
using testing::OpenOrDie;
using testing::ReadAll;

constexpr char kDir[] = "/wal";

std::string ThreadPayload(int thread, int sequence) {
  return "thread-" + std::to_string(thread) + "-entry-" + std::to_string(sequence) +
         std::string(static_cast<size_t>(sequence % 50), '.');
}

class GroupCommitterTest : public ::testing::Test {
 protected:
  GroupCommitterTest() {
    options_.segment_size_bytes = 256 * 1024;
    wal_ = OpenOrDie(&fs_, kDir, options_);
  }

  // Makes every fdatasync take `micros`, like a disk.
  void SlowSyncs(int micros) {
    fs_.SetHook([micros](env::FileOperation operation, const std::string&) {
      if (operation == env::FileOperation::kSync) {
        std::this_thread::sleep_for(std::chrono::microseconds(micros));
      }
      return Status::Ok();
    });
  }

  env::FaultInjectionFileSystem fs_;
  WalOptions options_;
  std::unique_ptr<Wal> wal_;
};

TEST_F(GroupCommitterTest, ManyThreadsGetUniqueOrderedIndexesWithFewSyncs) {
  SlowSyncs(100);
  constexpr int kThreads = 16;
  constexpr int kPerThread = 2000;
  struct Ack {
    int thread, sequence;
    Status status;
    uint64_t index;
  };
  std::vector<Ack> acks;  // appended on the commit thread only; read after Stop joined it
  acks.reserve(kThreads * kPerThread);
  const uint64_t syncs_before = wal_->stats().syncs;
  GroupCommitter committer(wal_.get(), {});
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int s = 0; s < kPerThread; ++s) {
        ASSERT_TRUE(committer
                        .Submit(ThreadPayload(t, s),
                                [&acks, t, s](const Status& status, uint64_t index) {
                                  acks.push_back({t, s, status, index});
                                })
                        .ok());
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  committer.Stop();

  ASSERT_EQ(acks.size(), static_cast<size_t>(kThreads * kPerThread));
  std::map<uint64_t, std::string> expected;
  std::vector<int> next_sequence(kThreads, 0);
  for (size_t i = 0; i < acks.size(); ++i) {
    const Ack& ack = acks[i];
    ASSERT_TRUE(ack.status.ok()) << ack.status.ToString();
    ASSERT_EQ(ack.index, i + 1);  // callbacks run in index order, no gaps, no repeats
    ASSERT_EQ(ack.sequence, next_sequence[ack.thread]++);  // each thread's order is kept
    expected[ack.index] = ThreadPayload(ack.thread, ack.sequence);
  }
  Entries entries = ReadAll(wal_.get(), 1);
  ASSERT_EQ(entries.size(), acks.size());
  for (const auto& [index, payload] : entries) ASSERT_EQ(payload, expected[index]) << index;

  const GroupCommitter::Stats stats = committer.stats();
  EXPECT_EQ(stats.entries, acks.size());
  EXPECT_EQ(stats.entries_failed, 0u);
  EXPECT_LT(stats.batches, acks.size() / 4);  // group commit really groups
  EXPECT_GT(stats.batch_entries_max, 1u);
  EXPECT_LE(stats.batch_entries_max, 1024u);
  EXPECT_LT(wal_->stats().syncs - syncs_before, acks.size() / 4);
}

TEST_F(GroupCommitterTest, AppendReturnsOnlyWhenDurable) {
  GroupCommitter committer(wal_.get(), {});
  constexpr int kThreads = 8;
  std::vector<std::vector<uint64_t>> indexes(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int s = 0; s < 200; ++s) {
        auto index = committer.Append(ThreadPayload(t, s));
        ASSERT_TRUE(index.ok());
        indexes[t].push_back(*index);
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  committer.Stop();
  fs_.SimulateCrash();  // every Append returned, so everything must survive
  wal_.reset();
  wal_ = OpenOrDie(&fs_, kDir, options_);
  ASSERT_EQ(wal_->LastIndex(), kThreads * 200u);
  Entries entries = ReadAll(wal_.get(), 1);
  for (int t = 0; t < kThreads; ++t) {
    for (int s = 0; s < 200; ++s) {
      ASSERT_EQ(entries[indexes[t][s] - 1].second, ThreadPayload(t, s));
    }
  }
}

TEST_F(GroupCommitterTest, CrashAfterAcksKeepsEveryAckedEntry) {
  SlowSyncs(50);
  GroupCommitter committer(wal_.get(), {});
  std::mutex mutex;
  std::map<uint64_t, std::string> acked;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int s = 0;; ++s) {
        std::string payload = ThreadPayload(t, s);
        auto index = committer.Append(payload);
        if (!index.ok()) {
          ++failures;
          return;  // the machine is down
        }
        std::lock_guard<std::mutex> lock(mutex);
        acked[*index] = std::move(payload);
      }
    });
  }
  while (true) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    std::lock_guard<std::mutex> lock(mutex);
    if (acked.size() >= 2000) break;
  }
  fs_.Halt();  // power fails: from here on nothing reaches the disk
  for (std::thread& thread : threads) thread.join();
  committer.Stop();
  fs_.SimulateCrash();
  wal_.reset();

  EXPECT_EQ(failures.load(), 8);
  wal_ = OpenOrDie(&fs_, kDir, options_);
  Entries entries = ReadAll(wal_.get(), 1);
  ASSERT_GE(entries.size(), acked.size());
  for (const auto& [index, payload] : acked) {
    ASSERT_EQ(entries.at(index - 1).second, payload) << index;
  }
}

TEST_F(GroupCommitterTest, StopCommitsQueuedEntriesThenRejects) {
  SlowSyncs(200);
  GroupCommitter committer(wal_.get(), {});
  std::atomic<int> ok{0};
  for (int i = 0; i < 300; ++i) {
    ASSERT_TRUE(committer
                    .Submit(std::to_string(i),
                            [&](const Status& status, uint64_t) {
                              if (status.ok()) ++ok;
                            })
                    .ok());
  }
  committer.Stop();
  EXPECT_EQ(ok.load(), 300);
  EXPECT_EQ(wal_->LastIndex(), 300u);
  bool ran = false;
  Status late = committer.Submit("late", [&](const Status&, uint64_t) { ran = true; });
  EXPECT_TRUE(late.Is(StatusCode::kUnavailable));
  EXPECT_TRUE(committer.Append("late").status().Is(StatusCode::kUnavailable));
  committer.Stop();  // idempotent
  EXPECT_FALSE(ran);
}

TEST_F(GroupCommitterTest, OversizedEntryFailsAlone) {
  GroupCommitter committer(wal_.get(), {});
  std::vector<std::pair<StatusCode, uint64_t>> results;
  auto record = [&](const Status& status, uint64_t index) {
    results.emplace_back(status.code(), index);
  };
  ASSERT_TRUE(committer.Submit("a", record).ok());
  ASSERT_TRUE(committer.Submit(std::string(limits::kWalRecordBytesMax + 1, 'x'), record).ok());
  ASSERT_TRUE(committer.Submit("b", record).ok());
  committer.Stop();
  ASSERT_EQ(results.size(), 3u);
  EXPECT_EQ(results[0], std::make_pair(StatusCode::kOk, uint64_t{1}));
  EXPECT_EQ(results[1], std::make_pair(StatusCode::kInvalidArgument, uint64_t{0}));
  EXPECT_EQ(results[2], std::make_pair(StatusCode::kOk, uint64_t{2}));
}

TEST_F(GroupCommitterTest, SyncFailureFailsTheBatchAndEverythingAfter) {
  GroupCommitter committer(wal_.get(), {});
  ASSERT_EQ(*committer.Append("durable"), 1u);
  fs_.FailNth(env::FileOperation::kSync, 1);
  auto failed = committer.Append("lost");
  EXPECT_TRUE(failed.status().Is(StatusCode::kIoError)) << failed.status().ToString();
  auto after = committer.Append("also refused");
  EXPECT_TRUE(after.status().Is(StatusCode::kIoError));
  committer.Stop();
  EXPECT_EQ(committer.stats().entries, 1u);
  EXPECT_EQ(committer.stats().entries_failed, 2u);
}

TEST_F(GroupCommitterTest, BatchLimitsAreRespected) {
  SlowSyncs(200);
  GroupCommitter::Options options;
  options.batch_entries_max = 8;
  options.batch_bytes_max = 1000;
  GroupCommitter committer(wal_.get(), options);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int s = 0; s < 100; ++s) {
        ASSERT_TRUE(committer.Submit(std::string(100, 'p'), [](const Status&, uint64_t) {}).ok());
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  committer.Stop();
  EXPECT_EQ(committer.stats().entries, 400u);
  EXPECT_LE(committer.stats().batch_entries_max, 8u);
  EXPECT_GE(committer.stats().batches, 400u / 8);
}

TEST_F(GroupCommitterTest, SubmitBlocksWhileTheQueueIsFull) {
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<bool> in_sync{false};
  fs_.SetHook([&](env::FileOperation operation, const std::string&) {
    if (operation == env::FileOperation::kSync) {
      in_sync = true;
      released.wait();
    }
    return Status::Ok();
  });
  GroupCommitter::Options options;
  options.queue_entries_max = 4;
  GroupCommitter committer(wal_.get(), options);
  auto ignore = [](const Status&, uint64_t) {};
  ASSERT_TRUE(committer.Submit("first", ignore).ok());
  while (!in_sync) std::this_thread::yield();  // the commit thread holds "first" in its sync
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(committer.Submit("queued", ignore).ok());

  std::atomic<bool> submitted{false};
  std::thread blocked([&] {
    ASSERT_TRUE(committer.Submit("fifth", ignore).ok());
    submitted = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_FALSE(submitted.load());  // backpressure
  release.set_value();
  blocked.join();
  EXPECT_TRUE(submitted.load());
  committer.Stop();
  fs_.ClearFaults();
  EXPECT_EQ(wal_->LastIndex(), 6u);
}

}  // namespace
}  // namespace cairn::wal

namespace cairn::wal {
namespace {

// Checkpoints truncate the log prefix from another thread while writers append.
TEST_F(GroupCommitterTest, RunExclusiveTruncatesPrefixWhileWritersAppend) {
  GroupCommitter committer(wal_.get(), {});
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> last_acked{0};
  std::vector<std::thread> writers;
  for (int t = 0; t < 8; ++t) {
    writers.emplace_back([&, t] {
      for (int i = 0; !stop.load(); ++i) {
        auto index = committer.Append(ThreadPayload(t, i) + std::string(200, 'x'));
        ASSERT_TRUE(index.ok()) << index.status().ToString();
        uint64_t seen = last_acked.load();
        while (*index > seen && !last_acked.compare_exchange_weak(seen, *index)) {
        }
      }
    });
  }
  int truncations = 0;
  while (truncations < 20) {
    uint64_t upto = last_acked.load();
    if (upto < 2000u * (truncations + 1)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      continue;
    }
    ASSERT_TRUE(
        committer.RunExclusive([upto](Wal* wal) { return wal->TruncatePrefix(upto + 1); }).ok());
    ++truncations;
  }
  stop = true;
  for (auto& writer : writers) writer.join();
  committer.Stop();
  // Old segments are gone, the retained tail is contiguous and readable after a reopen.
  EXPECT_GT(wal_->FirstIndex(), 1u);
  const uint64_t first = wal_->FirstIndex(), last = wal_->LastIndex();
  wal_.reset();
  wal_ = OpenOrDie(&fs_, kDir, options_);
  EXPECT_EQ(wal_->FirstIndex(), first);
  EXPECT_EQ(wal_->LastIndex(), last);
  uint64_t expected = first;
  ASSERT_TRUE(wal_->ReadFrom(first,
                             [&](uint64_t index, std::string_view) {
                               EXPECT_EQ(index, expected++);
                               return Status::Ok();
                             })
                  .ok());
  EXPECT_EQ(expected, last + 1);
}

}  // namespace
}  // namespace cairn::wal
