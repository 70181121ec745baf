// WatchService: etcd's Watch gRPC service (/etcdserverpb.Watch/Watch, a bidirectional stream)
// over the watch hub (src/feed), on gRPC's callback API.
//
//   client ─ create / cancel / progress ─▶ stream (gRPC callback thread) ─▶ hub Add/Remove
//   apply thread ─ hub.Publish ─▶ watcher notify ─▶ stream's ready watchers; stream queued once
//   pump thread ─ hub.Take (buffered events, or a catch-up scan of kv_history) ─▶ StartWrite
//
// One write is in flight per stream; the pump thread builds the next response when it
// completes, from the watchers the hub notified (not by polling every watcher of the stream).
// Responses follow etcd 3.4's (tests/diff compares them with a real etcd): `created` (with
// header.revision = the current revision), events in revision order with all events of one revision
// in one response (unless the watcher asked for `fragment` and the response exceeds
// --max-request-bytes) — live events one response per revision with that revision in the header, a
// catch-up from storage in one response with the current revision — `canceled` on cancel, and
// `canceled` with compact_revision (header.revision 0) when a watcher needs revisions that
// compaction removed; its id stays taken until cancelled. RequestProgress answers with watch_id -1
// once the stream's watchers have delivered everything up to the revision it reports.
//
// Thread-safety: the hub's notify callbacks only queue work (never block the apply thread).
// Catch-up scans run on the pump thread, bounded per step. The node, the hub and the
// identity must outlive the service; call Stop() before the grpc::Server shuts down.
#pragma once

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "etcdserverpb/rpc.grpc.pb.h"
#include "src/feed/hub.h"
#include "src/node/node.h"
#include "src/server/member_identity.h"

namespace cairn::server {

struct WatchServiceOptions {
  // etcd's --watch-progress-notify-interval: how often watchers created with progress_notify
  // get an empty response with the current revision. 0 disables. Default: 10 min.
  int64_t progress_notify_interval_ms = 10 * 60 * 1000;
  // Responses with more bytes are split for watchers that asked for `fragment`. Default:
  // etcd's --max-request-bytes default.
  size_t fragment_bytes_max = 1536 * 1024;
  // Most events the pump puts into one response (whole revisions; one revision may exceed
  // it) and reads in one catch-up scan step. Default: 1000.
  size_t response_events_max = 1000;
};

class WatchService final : public etcdserverpb::Watch::CallbackService {
 public:
  WatchService(node::Node* node, feed::Hub* hub, const MemberIdentity* identity,
               const WatchServiceOptions& options);
  ~WatchService() override;
  WatchService(const WatchService&) = delete;
  WatchService& operator=(const WatchService&) = delete;

  grpc::ServerBidiReactor<etcdserverpb::WatchRequest, etcdserverpb::WatchResponse>* Watch(
      grpc::CallbackServerContext* context) override;

  // Ends every open stream (UNAVAILABLE) and stops the pump thread. Idempotent.
  void Stop();

  class Stream;

 private:
  friend class Stream;
  class Reactor;
  // Queues `stream` for the pump thread (cheap; any thread, also under the hub's lock). Use
  // Stream::Schedule, which queues a stream at most once.
  void Schedule(std::shared_ptr<Stream> stream);
  void PumpLoop();
  void TickProgress();

  node::Node* const node_;
  feed::Hub* const hub_;
  const MemberIdentity* const identity_;
  const WatchServiceOptions options_;

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::shared_ptr<Stream>> queue_;   // GUARDED_BY(mutex_)
  std::vector<std::weak_ptr<Stream>> streams_;  // GUARDED_BY(mutex_)
  bool stopping_ = false;                       // GUARDED_BY(mutex_)
  std::thread pump_thread_;
};

}  // namespace cairn::server
