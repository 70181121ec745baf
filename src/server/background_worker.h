// BackgroundWorker: one thread running slow tasks that must not run on the apply thread or
// on gRPC's callback threads (today: physical compaction for CompactionRequest.physical).
//
// Tasks run in submission order. The queue is bounded: Submit returns false when it is full
// or the worker is stopping, and the caller fails the request instead.
//
// Thread-safety: Submit is thread-safe. Stop runs the queued tasks, then joins; call it once,
// not from a task.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

namespace cairn::server {

class BackgroundWorker {
 public:
  // Most tasks queued; a client asking for more physical compactions than this at once gets
  // UNAVAILABLE. Default: 64.
  explicit BackgroundWorker(size_t queue_tasks_max = 64);
  ~BackgroundWorker();
  BackgroundWorker(const BackgroundWorker&) = delete;
  BackgroundWorker& operator=(const BackgroundWorker&) = delete;

  bool Submit(std::function<void()> task);
  void Stop();

 private:
  void Loop();

  const size_t queue_tasks_max_;
  std::mutex mutex_;
  std::condition_variable wanted_;
  std::deque<std::function<void()>> tasks_;  // GUARDED_BY(mutex_)
  bool stopping_ = false;                    // GUARDED_BY(mutex_)
  std::thread thread_;
};

}  // namespace cairn::server
