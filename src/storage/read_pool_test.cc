#include "src/storage/read_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace cairn::storage::internal {
namespace {

// Each piece waits until every piece has started: RunAll returns only if they all ran at the
// same time, one on the caller and the others on the helpers.
TEST(ReadPoolTest, PiecesRunAtTheSameTime) {
  ReadPool pool(4, "test-read");
  constexpr int kPieces = 5;
  std::mutex mutex;
  std::condition_variable all_started;
  int started = 0;
  int timed_out = 0;
  std::vector<int> runs(kPieces, 0);
  std::vector<std::thread::id> threads(kPieces);
  std::vector<std::function<void()>> pieces;
  for (int i = 0; i < kPieces; ++i) {
    pieces.push_back([&, i] {
      std::unique_lock lock(mutex);
      ++runs[i];
      threads[i] = std::this_thread::get_id();
      if (++started == kPieces) all_started.notify_all();
      if (!all_started.wait_for(lock, std::chrono::seconds(20),
                                [&] { return started == kPieces; })) {
        ++timed_out;
      }
    });
  }
  pool.RunAll(pieces);
  EXPECT_EQ(timed_out, 0);
  for (int i = 0; i < kPieces; ++i) EXPECT_EQ(runs[i], 1) << "piece " << i;
  EXPECT_EQ(threads[0], std::this_thread::get_id());
  for (int i = 1; i < kPieces; ++i) EXPECT_NE(threads[i], std::this_thread::get_id());
}

TEST(ReadPoolTest, MorePiecesThanHelpersAllRunOnce) {
  ReadPool pool(1, "test-read");
  constexpr int kPieces = 50;
  std::vector<std::atomic<int>> runs(kPieces);
  std::vector<std::function<void()>> pieces;
  for (int i = 0; i < kPieces; ++i) pieces.push_back([&, i] { runs[i].fetch_add(1); });
  pool.RunAll(pieces);
  for (int i = 0; i < kPieces; ++i) EXPECT_EQ(runs[i].load(), 1) << "piece " << i;
  pool.RunAll(std::span<const std::function<void()>>());  // nothing to run
}

TEST(ReadPoolTest, CallersShareTheHelpers) {
  ReadPool pool(2, "test-read");
  constexpr int kCallers = 4;
  constexpr int kPieces = 20;
  std::atomic<int> runs{0};
  std::vector<std::thread> callers;
  for (int c = 0; c < kCallers; ++c) {
    callers.emplace_back([&] {
      for (int round = 0; round < 50; ++round) {
        std::vector<std::function<void()>> pieces(kPieces, [&] { runs.fetch_add(1); });
        pool.RunAll(pieces);
      }
    });
  }
  for (std::thread& caller : callers) caller.join();
  EXPECT_EQ(runs.load(), kCallers * kPieces * 50);
}

}  // namespace
}  // namespace cairn::storage::internal
