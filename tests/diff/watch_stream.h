// One client Watch stream on one server: a reader thread collects every response so the
// driver can wait for what it expects (with a timeout) and compare whole streams later.
#pragma once

#include <grpcpp/grpcpp.h>

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "etcdserverpb/rpc.grpc.pb.h"

namespace cairn::diff {

class WatchStream {
 public:
  explicit WatchStream(etcdserverpb::Watch::Stub* stub);
  ~WatchStream() { Close(); }
  WatchStream(const WatchStream&) = delete;
  WatchStream& operator=(const WatchStream&) = delete;

  bool Send(const etcdserverpb::WatchRequest& request);
  // Waits up to timeout_ms until done(responses) holds; returns whether it did.
  bool WaitUntil(const std::function<bool(const std::vector<etcdserverpb::WatchResponse>&)>& done,
                 int timeout_ms);
  // Events received so far, over all responses.
  size_t EventCount();
  // A copy of every response received so far.
  std::vector<etcdserverpb::WatchResponse> Responses();
  // Cancels the call and joins the reader thread; idempotent.
  void Close();

 private:
  void ReadLoop();

  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReaderWriter<etcdserverpb::WatchRequest, etcdserverpb::WatchResponse>>
      stream_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<etcdserverpb::WatchResponse> responses_;  // GUARDED_BY(mutex_)
  bool ended_ = false;                                  // GUARDED_BY(mutex_)
  std::thread reader_;
  bool closed_ = false;
};

}  // namespace cairn::diff
