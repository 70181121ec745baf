#include "src/server/background_worker.h"

#include <utility>

namespace cairn::server {

BackgroundWorker::BackgroundWorker(size_t queue_tasks_max)
    : queue_tasks_max_(queue_tasks_max), thread_([this] { Loop(); }) {}

BackgroundWorker::~BackgroundWorker() { Stop(); }

bool BackgroundWorker::Submit(std::function<void()> task) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (stopping_ || tasks_.size() >= queue_tasks_max_) return false;
  tasks_.push_back(std::move(task));
  wanted_.notify_one();
  return true;
}

void BackgroundWorker::Stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
    wanted_.notify_one();
  }
  if (thread_.joinable()) thread_.join();
}

void BackgroundWorker::Loop() {
  while (true) {
    std::function<void()> task;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wanted_.wait(lock, [&] { return stopping_ || !tasks_.empty(); });
      if (tasks_.empty()) return;  // stopping, and everything queued has run
      task = std::move(tasks_.front());
      tasks_.pop_front();
    }
    task();
  }
}

}  // namespace cairn::server
