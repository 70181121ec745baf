// ReadPool: helper threads that run the pieces of one read at the same time, so that reads
// which wait for the disk overlap instead of queueing behind each other
// (EngineOptions::read_threads, RocksDbEngine's MultiGet).
//
// Thread-safety: RunAll may be called from several threads at once; the pieces of all calls
// share the helpers, first come first served.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <span>
#include <thread>
#include <vector>

namespace cairn::storage::internal {

class ReadPool {
 public:
  // `threads` > 0 helpers, named `name` (at most 15 characters).
  ReadPool(size_t threads, const char* name);
  // Joins the helpers. REQUIRES: no RunAll in progress.
  ~ReadPool();
  ReadPool(const ReadPool&) = delete;
  ReadPool& operator=(const ReadPool&) = delete;

  size_t threads() const { return threads_.size(); }

  // Runs every piece once and returns when all have returned: pieces[0] on the calling
  // thread, the others on the helpers (or on the calling thread, once it is done with its
  // own piece and a piece is still waiting for a helper). Pieces must not throw.
  void RunAll(std::span<const std::function<void()>> pieces);

 private:
  struct Call;
  struct Piece {
    const std::function<void()>* run;
    Call* call;
  };
  void Loop();
  static void Finish(Call* call);

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Piece> queue_;  // guarded by mutex_
  bool stopping_ = false;    // guarded by mutex_
  std::vector<std::thread> threads_;
};

}  // namespace cairn::storage::internal
