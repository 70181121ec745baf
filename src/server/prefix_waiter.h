// PrefixWaiter: one thread for the Lock and Election services' waits (Lock waiting for
// earlier holders to go, Campaign waiting for leadership, Observe watching the leader).
//
// Each wait is a check run on the waiter's thread against the node's applied state (KvState
// reads on a snapshot: cheap, non-blocking): once right after Add, then whenever the store
// changed (Notify, called after every applied batch), and every kBackstopInterval as a
// safety net. A check returns true when it is done (it finished its RPC) and is then dropped.
// This keeps the apply thread free (Notify only sets a flag and wakes the thread when checks
// are pending) and uses one thread for all waiters.
//
// Stop: every pending check runs once more with stopping = true and must finish its RPC
// (with an error); checks added after Stop run at once, inline, with stopping = true.
//
// Thread-safety: Add, Notify and Stop are thread-safe; checks run on the waiter's thread only.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace cairn::server {

class PrefixWaiter {
 public:
  using Check = std::function<bool(bool stopping)>;
  static constexpr std::chrono::milliseconds kBackstopInterval{1000};

  PrefixWaiter();
  ~PrefixWaiter();
  PrefixWaiter(const PrefixWaiter&) = delete;
  PrefixWaiter& operator=(const PrefixWaiter&) = delete;

  void Add(Check check);
  // The store changed: pending checks run again.
  void Notify();
  // Idempotent.
  void Stop();

 private:
  void Loop();

  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  bool changed_ = false;              // guarded by mutex_
  std::vector<Check> added_;          // guarded by mutex_
  std::atomic<bool> waiting_{false};  // checks are pending: Notify must wake the thread
  std::thread thread_;
};

}  // namespace cairn::server
