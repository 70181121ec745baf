#include "src/server/prefix_waiter.h"

#include <utility>

namespace cairn::server {

PrefixWaiter::PrefixWaiter() : thread_([this] { Loop(); }) {}

PrefixWaiter::~PrefixWaiter() { Stop(); }

void PrefixWaiter::Add(Check check) {
  {
    std::lock_guard lock(mutex_);
    if (!stopping_) {
      added_.push_back(std::move(check));
      wake_.notify_one();
      return;
    }
  }
  check(/*stopping=*/true);
}

void PrefixWaiter::Notify() {
  if (!waiting_.load(std::memory_order_acquire)) return;
  std::lock_guard lock(mutex_);
  changed_ = true;
  wake_.notify_one();
}

void PrefixWaiter::Stop() {
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    stopping_ = true;
    wake_.notify_one();
  }
  if (thread_.joinable()) thread_.join();
}

void PrefixWaiter::Loop() {
  std::vector<Check> pending;
  bool stopping = false;
  while (true) {
    {
      std::unique_lock lock(mutex_);
      auto woken = [this] { return !added_.empty() || stopping_ || changed_; };
      if (pending.empty()) {
        wake_.wait(lock, woken);  // idle: no checks without waiters
      } else {
        wake_.wait_for(lock, kBackstopInterval, woken);
      }
      changed_ = false;
      for (auto& check : added_) pending.push_back(std::move(check));
      added_.clear();
      // Set before the checks run, so that a change during them wakes the next wait.
      waiting_.store(!pending.empty(), std::memory_order_release);
      stopping = stopping_;
    }
    std::vector<Check> still;
    for (auto& check : pending) {
      if (!check(stopping)) still.push_back(std::move(check));
    }
    pending.swap(still);
    if (stopping) return;  // every check was told to finish
  }
}

}  // namespace cairn::server
