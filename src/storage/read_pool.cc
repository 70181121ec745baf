#include "src/storage/read_pool.h"

#include <pthread.h>

#include <algorithm>

#include "src/base/check.h"

namespace cairn::storage::internal {

// One RunAll: how many of its pieces have not returned yet.
struct ReadPool::Call {
  std::mutex mutex;
  std::condition_variable done;
  size_t remaining = 0;  // guarded by mutex
};

ReadPool::ReadPool(size_t threads, const char* name) {
  CAIRN_CHECK(threads > 0);
  threads_.reserve(threads);
  for (size_t i = 0; i < threads; ++i) {
    threads_.emplace_back([this, name] {
      pthread_setname_np(pthread_self(), name);
      Loop();
    });
  }
}

ReadPool::~ReadPool() {
  {
    std::lock_guard lock(mutex_);
    CAIRN_CHECK_MSG(queue_.empty(), "ReadPool destroyed during RunAll");
    stopping_ = true;
  }
  wake_.notify_all();
  for (std::thread& thread : threads_) thread.join();
}

void ReadPool::Finish(Call* call) {
  // Notified under the lock: once the caller sees remaining == 0 it may destroy `call`, and
  // it cannot see that before this thread lets go of the lock.
  std::lock_guard lock(call->mutex);
  if (--call->remaining == 0) call->done.notify_one();
}

void ReadPool::Loop() {
  std::unique_lock lock(mutex_);
  for (;;) {
    wake_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping
    Piece piece = queue_.front();
    queue_.pop_front();
    lock.unlock();
    (*piece.run)();
    Finish(piece.call);
    lock.lock();
  }
}

void ReadPool::RunAll(std::span<const std::function<void()>> pieces) {
  if (pieces.empty()) return;
  Call call;
  call.remaining = pieces.size() - 1;
  if (call.remaining > 0) {
    {
      std::lock_guard lock(mutex_);
      for (size_t i = 1; i < pieces.size(); ++i) queue_.push_back({&pieces[i], &call});
    }
    // One wake-up per queued piece: waking every helper for fewer pieces costs the others
    // a context switch for nothing.
    for (size_t i = 0; i < call.remaining; ++i) wake_.notify_one();
  }
  pieces[0]();
  // Pieces still queued (every helper busy) run here rather than wait for a helper.
  for (;;) {
    Piece piece{};
    {
      std::lock_guard lock(mutex_);
      auto mine = std::find_if(queue_.begin(), queue_.end(),
                               [&](const Piece& queued) { return queued.call == &call; });
      if (mine == queue_.end()) break;
      piece = *mine;
      queue_.erase(mine);
    }
    (*piece.run)();
    Finish(piece.call);
  }
  std::unique_lock lock(call.mutex);
  call.done.wait(lock, [&] { return call.remaining == 0; });
}

}  // namespace cairn::storage::internal
