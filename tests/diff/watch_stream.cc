#include "tests/diff/watch_stream.h"

#include <chrono>

namespace cairn::diff {

WatchStream::WatchStream(etcdserverpb::Watch::Stub* stub) {
  stream_ = stub->Watch(&context_);
  reader_ = std::thread([this] { ReadLoop(); });
}

void WatchStream::ReadLoop() {
  etcdserverpb::WatchResponse response;
  while (stream_->Read(&response)) {
    std::lock_guard<std::mutex> lock(mutex_);
    responses_.push_back(response);
    changed_.notify_all();
  }
  std::lock_guard<std::mutex> lock(mutex_);
  ended_ = true;
  changed_.notify_all();
}

bool WatchStream::Send(const etcdserverpb::WatchRequest& request) {
  return stream_->Write(request);
}

bool WatchStream::WaitUntil(
    const std::function<bool(const std::vector<etcdserverpb::WatchResponse>&)>& done,
    int timeout_ms) {
  std::unique_lock<std::mutex> lock(mutex_);
  return changed_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] {
    return done(responses_) || ended_;
  }) && done(responses_);
}

size_t WatchStream::EventCount() {
  std::lock_guard<std::mutex> lock(mutex_);
  size_t count = 0;
  for (const auto& response : responses_) count += response.events_size();
  return count;
}

std::vector<etcdserverpb::WatchResponse> WatchStream::Responses() {
  std::lock_guard<std::mutex> lock(mutex_);
  return responses_;
}

void WatchStream::Close() {
  if (closed_) return;
  closed_ = true;
  context_.TryCancel();
  reader_.join();
  stream_->Finish().ok();  // the status of a cancelled call says nothing
}

}  // namespace cairn::diff
