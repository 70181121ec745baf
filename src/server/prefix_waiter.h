// PrefixWaiter: one polling thread for the Lock and Election services' waits (Lock waiting
// for earlier holders to go, Campaign waiting for leadership, Observe watching the leader).
//
// Each wait is a check run on the waiter's thread every kPollInterval (and once right after
// Add) against the node's applied state (KvState reads on a snapshot: cheap, non-blocking).
// A check returns true when it is done (it finished its RPC) and is then dropped. This keeps
// the apply thread free and uses one thread for all waiters, at the cost of up to
// kPollInterval latency; the Watch hub could replace polling later.
//
// Stop: every pending check runs once more with stopping = true and must finish its RPC
// (with an error); checks added after Stop run at once, inline, with stopping = true.
//
// Thread-safety: Add and Stop are thread-safe; checks run on the waiter's thread only.
#pragma once

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
  static constexpr std::chrono::milliseconds kPollInterval{10};

  PrefixWaiter();
  ~PrefixWaiter();
  PrefixWaiter(const PrefixWaiter&) = delete;
  PrefixWaiter& operator=(const PrefixWaiter&) = delete;

  void Add(Check check);
  // Idempotent.
  void Stop();

 private:
  void Loop();

  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::vector<Check> added_;  // guarded by mutex_
  std::thread thread_;
};

}  // namespace cairn::server
