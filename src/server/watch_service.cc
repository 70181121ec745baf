#include "src/server/watch_service.h"

#include <atomic>
#include <chrono>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>

#include "src/base/logging.h"
#include "src/mvcc/kv_history_scan.h"

namespace cairn::server {

using etcdserverpb::WatchCreateRequest;
using etcdserverpb::WatchRequest;
using etcdserverpb::WatchResponse;

namespace {

// etcd's mvcc errors for a create that cannot be served (sent as cancel_reason).
constexpr char kErrEmptyWatcherRange[] = "mvcc: watcher range is empty";
constexpr char kErrDuplicateWatchId[] = "mvcc: duplicate watch ID provided on the WatchStream";

}  // namespace

// One Watch call: its watchers, the responses waiting to be written, the write in flight.
// Lock order: Stream::mutex_ → Hub → Stream::notified_mutex_ → WatchService::mutex_.
// recursive_mutex: gRPC may run a reaction inline from StartWrite/Finish.
//
// Which watchers have something to send: the hub's notify callback (under the hub's lock)
// appends the watch id to notified_ and schedules the stream once; the pump thread moves
// those ids into ready_ and serves ready_ in order (round robin: a watcher that produced a
// response goes to the back, since it may have more). So a response costs O(1) watcher
// look-ups however many idle watchers the stream has, and a put that wakes 10,000 watchers
// of one stream queues the stream once, not 10,000 times.
class WatchService::Stream : public std::enable_shared_from_this<Stream> {
 public:
  using ReactorType = grpc::ServerBidiReactor<WatchRequest, WatchResponse>;

  Stream(WatchService* service, ReactorType* reactor) : service_(service), reactor_(reactor) {}
  // The hub's notify callbacks point at this stream: they must be gone first (normally
  // Detach/Finish removed them already).
  ~Stream() {
    std::lock_guard lock(mutex_);
    RemoveAllWatchers();
  }

  // Queues this stream for the pump thread unless it is queued already (any thread, also
  // under the hub's lock).
  void Schedule() {
    if (scheduled_.exchange(true)) return;
    if (std::shared_ptr<Stream> self = weak_from_this().lock()) {
      service_->Schedule(std::move(self));
    } else {
      scheduled_.store(false);  // being destroyed
    }
  }
  // Pump thread: the stream left the queue; a later Schedule queues it again.
  void Unscheduled() { scheduled_.store(false); }

  void Start() {
    std::lock_guard lock(mutex_);
    reactor_->StartRead(&request_);
  }

  // gRPC thread: a request arrived (ok) or the client closed its side (!ok).
  void OnReadDone(bool ok) {
    std::lock_guard lock(mutex_);
    if (!ok) return FinishLocked(grpc::Status::OK);
    if (finishing_) return;
    switch (request_.request_union_case()) {
      case WatchRequest::kCreateRequest:
        Create(request_.create_request());
        break;
      case WatchRequest::kCancelRequest:
        Cancel(request_.cancel_request().watch_id());
        break;
      case WatchRequest::kProgressRequest:
        progress_requested_ = true;
        break;
      case WatchRequest::REQUEST_UNION_NOT_SET:
        break;
    }
    reactor_->StartRead(&request_);
    Schedule();
  }

  void OnWriteDone(bool ok) {
    std::lock_guard lock(mutex_);
    writing_ = false;
    if (!ok) FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "write failed"));
    if (finishing_) {
      // Finish waited for this write (gRPC allows one at a time with the last write).
      if (reactor_ != nullptr && !finish_called_) CallFinish();
      return;
    }
    Schedule();
  }

  void Finish(const grpc::Status& status) {
    std::lock_guard lock(mutex_);
    FinishLocked(status);
  }

  // OnDone: the reactor is gone.
  void Detach() {
    std::lock_guard lock(mutex_);
    RemoveAllWatchers();
    reactor_ = nullptr;
  }

  // Pump thread: if no write is in flight, writes the next response.
  void Pump() {
    std::lock_guard lock(mutex_);
    if (reactor_ == nullptr || finishing_ || writing_) return;
    if (outgoing_.empty()) FillOutgoing();
    if (outgoing_.empty()) return;
    response_ = std::move(outgoing_.front());
    outgoing_.pop_front();
    writing_ = true;
    reactor_->StartWrite(&response_);
  }

  // Pump thread, every progress interval: an empty response for each synced watcher that
  // asked for progress_notify.
  void QueueProgressNotifications() {
    std::lock_guard lock(mutex_);
    if (finishing_) return;
    bool queued = false;
    for (const auto& [watch_id, watcher] : watchers_) {
      if (!watcher.progress_notify) continue;
      std::optional<int64_t> revision = service_->hub_->SyncedRevision({watcher.hub_id});
      if (!revision) continue;
      control_.push_back(NewResponse(watch_id, *revision));
      queued = true;
    }
    if (queued) Schedule();
  }

 private:
  struct Watcher {
    feed::Hub::WatcherId hub_id = 0;
    feed::WatchSpec spec;
    bool progress_notify = false;
    bool fragment = false;
    bool ready = false;  // in ready_
  };

  // The hub's notify for watcher `watch_id` (under the hub's lock: short, no hub calls).
  void Notified(int64_t watch_id) {
    {
      std::lock_guard lock(notified_mutex_);
      notified_.push_back(watch_id);
    }
    Schedule();
  }

  // Moves the notified watch ids into ready_ (once each). REQUIRES: mutex_ held
  void CollectNotified() {
    {
      std::lock_guard lock(notified_mutex_);
      notified_.swap(notified_taken_);
    }
    for (int64_t watch_id : notified_taken_) MarkReady(watch_id);
    notified_taken_.clear();
  }

  void MarkReady(int64_t watch_id) {
    auto found = watchers_.find(watch_id);
    if (found == watchers_.end() || found->second.ready) return;  // canceled, or queued
    found->second.ready = true;
    ready_.push_back(watch_id);
  }

  WatchResponse NewResponse(int64_t watch_id, int64_t revision) const {
    WatchResponse response;
    response.mutable_header()->set_revision(revision);
    service_->identity_->FillHeader(response.mutable_header());
    response.set_watch_id(watch_id);
    return response;
  }

  void Create(const WatchCreateRequest& create) {
    feed::WatchSpec spec;
    spec.key = create.key();
    spec.range_end = create.range_end();
    spec.start_revision = create.start_revision();
    spec.prev_kv = create.prev_kv();
    for (int filter : create.filters()) {
      if (filter == WatchCreateRequest::NOPUT) spec.no_put = true;
      if (filter == WatchCreateRequest::NODELETE) spec.no_delete = true;
    }
    const int64_t revision = service_->hub_->revision();
    const bool to_end = spec.range_end == std::string(1, '\0');
    const char* error = nullptr;
    if (!spec.range_end.empty() && !to_end && spec.key >= spec.range_end) {
      error = kErrEmptyWatcherRange;
    } else if (create.watch_id() != 0 && IdTaken(create.watch_id())) {
      error = kErrDuplicateWatchId;
    }
    if (error != nullptr) {
      WatchResponse response = NewResponse(-1, revision);
      response.set_created(true);
      response.set_canceled(true);
      response.set_cancel_reason(error);
      control_.push_back(std::move(response));
      return;
    }
    int64_t watch_id = create.watch_id();
    if (watch_id == 0) {  // etcd's AutoWatchID: the next free id, from 0
      while (IdTaken(next_watch_id_)) ++next_watch_id_;
      watch_id = next_watch_id_++;
    }
    Watcher& watcher = watchers_[watch_id];
    watcher.spec = spec;
    watcher.progress_notify = create.progress_notify();
    watcher.fragment = create.fragment();
    int64_t created_revision = 0;
    // A raw pointer (small enough for std::function's inline storage): the hub stops calling
    // it once the watcher is removed, which happens before the stream is destroyed.
    watcher.hub_id = service_->hub_->Add(
        spec, [this, watch_id] { Notified(watch_id); }, &created_revision);
    // Queued before any event of the watcher: control_ is served first.
    WatchResponse created = NewResponse(watch_id, created_revision);
    created.set_created(true);
    control_.push_back(std::move(created));
  }

  // An id stays taken after its watcher was canceled for compaction, until the client
  // cancels it (etcd's watchStream keeps it in `watchers` until Cancel).
  bool IdTaken(int64_t watch_id) const {
    return watchers_.count(watch_id) > 0 || compacted_ids_.count(watch_id) > 0;
  }

  void Cancel(int64_t watch_id) {
    auto found = watchers_.find(watch_id);
    if (found != watchers_.end()) {
      service_->hub_->Remove(found->second.hub_id);
      watchers_.erase(found);
    } else if (compacted_ids_.erase(watch_id) == 0) {
      return;  // etcd answers nothing for an unknown id
    }
    WatchResponse response = NewResponse(watch_id, service_->hub_->revision());
    response.set_canceled(true);
    control_.push_back(std::move(response));
  }

  void FillOutgoing() {
    if (!control_.empty()) {
      outgoing_.push_back(std::move(control_.front()));
      control_.pop_front();
      return;
    }
    CollectNotified();
    while (!ready_.empty()) {
      const int64_t watch_id = ready_.front();
      ready_.pop_front();
      auto found = watchers_.find(watch_id);
      if (found == watchers_.end()) continue;  // canceled meanwhile
      found->second.ready = false;
      if (Produce(watch_id, &found->second)) {
        // It may have more (a bounded Take, a catch-up in steps): to the back of the line.
        MarkReady(watch_id);
        return;
      }
    }
    if (progress_requested_) {
      std::vector<feed::Hub::WatcherId> ids;
      for (const auto& [watch_id, watcher] : watchers_) ids.push_back(watcher.hub_id);
      std::optional<int64_t> revision = service_->hub_->SyncedRevision(ids);
      if (revision) {
        progress_requested_ = false;
        outgoing_.push_back(NewResponse(-1, *revision));
      }
    }
  }

  // Queues the next response of one watcher; false when it has nothing to send. May end the
  // watcher (compacted) — `watcher` is then dangling.
  bool Produce(int64_t watch_id, Watcher* watcher) {
    feed::Hub* hub = service_->hub_;
    mvcc::KvState* kv = service_->node_->kv();
    const size_t events_max = service_->options_.response_events_max;
    while (true) {
      feed::Hub::Taken taken = hub->Take(watcher->hub_id, events_max);
      if (taken.kind == feed::Hub::Taken::Kind::kNothing) return false;
      if (taken.kind == feed::Hub::Taken::Kind::kEvents) {
        QueueLiveEvents(watch_id, *watcher, std::move(taken.events));
        return true;
      }
      // Catch-up from storage; the revisions wanted must not be compacted (etcd: minRev <
      // compactRev cancels), before and after the scan.
      if (taken.after_revision + 1 < kv->CompactedRevision()) return CancelCompacted(watch_id);
      mvcc::HistoryScan scan;
      Status scanned =
          mvcc::ScanHistory(service_->node_->engine(), watcher->spec.key, watcher->spec.range_end,
                            taken.after_revision, taken.through_revision, events_max, &scan);
      if (!scanned.ok()) {
        log::Get("watch")->error("catch-up scan failed: {}", scanned.ToString());
        FinishLocked(grpc::Status(grpc::StatusCode::INTERNAL, scanned.ToString()));
        return true;
      }
      const int64_t compacted = kv->CompactedRevision();
      if (taken.after_revision + 1 < compacted) return CancelCompacted(watch_id);
      hub->CatchUpScanned(watcher->hub_id, taken.through_revision, scan.scanned_through);
      // etcd's compaction keeps a key's latest revision at or below the compact revision
      // only when it is a put (keyIndex.keep): a catch-up from the compact revision itself
      // has no deletes of that revision.
      std::erase_if(scan.events, [&](const mvccpb::Event& event) {
        return event.type() == mvccpb::Event::DELETE && event.kv().mod_revision() <= compacted;
      });
      std::vector<mvccpb::Event> events;
      feed::FilterEvents(watcher->spec, scan.events, &events);
      if (!events.empty()) {
        // etcd's syncWatchers sends catch-up events with the store's current revision.
        QueueEvents(watch_id, *watcher, taken.through_revision, std::move(events));
        return true;
      }
    }
  }

  bool CancelCompacted(int64_t watch_id) {
    auto found = watchers_.find(watch_id);
    service_->hub_->Remove(found->second.hub_id);
    watchers_.erase(found);
    compacted_ids_.insert(watch_id);
    // As etcd 3.4: syncWatchers sends WatchResponse{WatchID, CompactRevision} (Revision 0)
    // and sendLoop turns it into canceled with compact_revision, header.revision 0 and no
    // cancel_reason.
    WatchResponse response = NewResponse(watch_id, 0);
    response.set_canceled(true);
    response.set_compact_revision(service_->node_->kv()->CompactedRevision());
    outgoing_.push_back(std::move(response));
    return true;
  }

  // Live events: one response per revision with that revision in the header, as etcd's
  // notify sends them to a synced watcher (also when several revisions were buffered).
  void QueueLiveEvents(int64_t watch_id, const Watcher& watcher,
                       std::vector<mvccpb::Event> events) {
    std::vector<mvccpb::Event> group;
    for (size_t i = 0; i < events.size(); ++i) {
      group.push_back(std::move(events[i]));
      const int64_t revision = group.back().kv().mod_revision();
      if (i + 1 == events.size() || events[i + 1].kv().mod_revision() != revision) {
        QueueEvents(watch_id, watcher, revision, std::move(group));
        group.clear();
      }
    }
  }

  // Events in one response with header.revision `revision`, or fragments of at most
  // fragment_bytes_max for a watcher that asked for them.
  void QueueEvents(int64_t watch_id, const Watcher& watcher, int64_t revision,
                   std::vector<mvccpb::Event> events) {
    WatchResponse response = NewResponse(watch_id, revision);
    const size_t bytes_max = service_->options_.fragment_bytes_max;
    if (!watcher.fragment) {
      for (auto& event : events) *response.add_events() = std::move(event);
      outgoing_.push_back(std::move(response));
      return;
    }
    size_t bytes = response.ByteSizeLong();
    for (auto& event : events) {
      const size_t event_bytes = event.ByteSizeLong() + 8;
      if (response.events_size() > 0 && bytes + event_bytes > bytes_max) {
        response.set_fragment(true);
        outgoing_.push_back(std::move(response));
        response = NewResponse(watch_id, revision);
        bytes = response.ByteSizeLong();
      }
      bytes += event_bytes;
      *response.add_events() = std::move(event);
    }
    outgoing_.push_back(std::move(response));
  }

  void RemoveAllWatchers() {
    for (const auto& [watch_id, watcher] : watchers_) service_->hub_->Remove(watcher.hub_id);
    watchers_.clear();
  }

  void FinishLocked(const grpc::Status& status) {
    if (finishing_) return;
    finishing_ = true;
    finish_status_ = status;
    RemoveAllWatchers();
    if (reactor_ != nullptr && !writing_) CallFinish();
  }

  void CallFinish() {
    finish_called_ = true;
    reactor_->Finish(finish_status_);
  }

  WatchService* const service_;
  std::recursive_mutex mutex_;
  ReactorType* reactor_;                 // GUARDED_BY(mutex_); null after OnDone
  WatchRequest request_;                 // GUARDED_BY(mutex_): the read in flight
  WatchResponse response_;               // GUARDED_BY(mutex_): the write in flight
  bool writing_ = false;                 // GUARDED_BY(mutex_)
  bool finishing_ = false;               // GUARDED_BY(mutex_)
  bool finish_called_ = false;           // GUARDED_BY(mutex_)
  grpc::Status finish_status_;           // GUARDED_BY(mutex_)
  bool progress_requested_ = false;      // GUARDED_BY(mutex_)
  int64_t next_watch_id_ = 0;            // GUARDED_BY(mutex_)
  std::map<int64_t, Watcher> watchers_;  // GUARDED_BY(mutex_), by watch_id
  std::deque<int64_t> ready_;            // GUARDED_BY(mutex_): watch ids that may have more
  std::vector<int64_t> notified_taken_;  // GUARDED_BY(mutex_): CollectNotified's scratch
  std::atomic<bool> scheduled_{false};   // in the service's queue
  std::mutex notified_mutex_;
  std::vector<int64_t> notified_;       // GUARDED_BY(notified_mutex_): from the hub's notify
  std::set<int64_t> compacted_ids_;     // GUARDED_BY(mutex_): canceled for compaction
  std::deque<WatchResponse> control_;   // GUARDED_BY(mutex_): created/canceled/progress
  std::deque<WatchResponse> outgoing_;  // GUARDED_BY(mutex_): built, not yet written
};

class WatchService::Reactor final : public Stream::ReactorType {
 public:
  explicit Reactor(WatchService* service) : stream_(std::make_shared<Stream>(service, this)) {}
  std::shared_ptr<Stream> stream() const { return stream_; }

  void OnReadDone(bool ok) override { stream_->OnReadDone(ok); }
  void OnWriteDone(bool ok) override { stream_->OnWriteDone(ok); }
  void OnCancel() override {
    stream_->Finish(grpc::Status(grpc::StatusCode::CANCELLED, "context canceled"));
  }
  void OnDone() override {
    stream_->Detach();
    delete this;
  }

 private:
  const std::shared_ptr<Stream> stream_;
};

WatchService::WatchService(node::Node* node, feed::Hub* hub, const MemberIdentity* identity,
                           const WatchServiceOptions& options)
    : node_(node), hub_(hub), identity_(identity), options_(options) {
  pump_thread_ = std::thread([this] { PumpLoop(); });
}

WatchService::~WatchService() { Stop(); }

grpc::ServerBidiReactor<WatchRequest, WatchResponse>* WatchService::Watch(
    grpc::CallbackServerContext* /*context*/) {
  auto* reactor = new Reactor(this);
  bool stopping = false;
  {
    std::lock_guard lock(mutex_);
    stopping = stopping_;
    if (!stopping) streams_.push_back(reactor->stream());
  }
  if (stopping) {
    reactor->stream()->Finish(
        grpc::Status(grpc::StatusCode::UNAVAILABLE, "etcdserver: server stopped"));
  } else {
    reactor->stream()->Start();
  }
  return reactor;
}

void WatchService::Schedule(std::shared_ptr<Stream> stream) {
  std::lock_guard lock(mutex_);
  if (stopping_) return;
  queue_.push_back(std::move(stream));
  wake_.notify_one();
}

void WatchService::PumpLoop() {
  using Clock = std::chrono::steady_clock;
  const auto interval = std::chrono::milliseconds(options_.progress_notify_interval_ms);
  Clock::time_point next_tick = Clock::now() + interval;
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    if (queue_.empty()) {
      if (options_.progress_notify_interval_ms > 0) {
        wake_.wait_until(lock, next_tick);
      } else {
        wake_.wait(lock);
      }
    }
    if (stopping_) break;
    if (options_.progress_notify_interval_ms > 0 && Clock::now() >= next_tick) {
      next_tick = Clock::now() + interval;
      lock.unlock();
      TickProgress();
      lock.lock();
      continue;
    }
    if (queue_.empty()) continue;
    std::shared_ptr<Stream> stream = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    stream->Unscheduled();
    stream->Pump();
    stream.reset();
    lock.lock();
  }
}

void WatchService::TickProgress() {
  std::vector<std::shared_ptr<Stream>> streams;
  {
    std::lock_guard lock(mutex_);
    std::erase_if(streams_, [](const std::weak_ptr<Stream>& stream) { return stream.expired(); });
    for (const auto& weak : streams_) {
      if (auto stream = weak.lock()) streams.push_back(std::move(stream));
    }
  }
  for (const auto& stream : streams) stream->QueueProgressNotifications();
}

void WatchService::Stop() {
  std::vector<std::shared_ptr<Stream>> streams;
  {
    std::lock_guard lock(mutex_);
    if (stopping_ && !pump_thread_.joinable()) return;
    stopping_ = true;
    queue_.clear();
    for (const auto& weak : streams_) {
      if (auto stream = weak.lock()) streams.push_back(std::move(stream));
    }
    streams_.clear();
    wake_.notify_all();
  }
  if (pump_thread_.joinable()) pump_thread_.join();
  for (const auto& stream : streams) {
    stream->Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "etcdserver: server stopped"));
  }
}

}  // namespace cairn::server
