#include "src/server/events_service.h"

#include <chrono>
#include <deque>
#include <optional>

#include "src/events/event_state.h"
#include "src/server/grpc_status.h"
#include "src/server/propose.h"

namespace cairn::server {
namespace {

namespace v1 = events::v1;

// Events read per page for a subscription.
constexpr size_t kSubscriptionPage = 256;
// Filtered $all subscriptions: a checkpoint after this many events scanned without a match.
constexpr uint32_t kCheckpointIntervalDefault = 1000;

int64_t NowUnixNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Status ValidateOutbox(const v1::AppendRequest& request, const mvcc::ValidationOptions& options) {
  if (request.kv_ops().empty()) return Status::Ok();
  etcdserverpb::TxnRequest txn;
  for (const auto& op : request.kv_ops()) *txn.add_success() = op;
  return mvcc::ValidateTxn(txn, options);
}

}  // namespace

// One Subscribe call. Fields marked (pump) are touched only by the pump thread; the rest are
// guarded by the service's mu_.
class EventsService::Subscription final : public grpc::ServerWriteReactor<v1::SubscribeResponse> {
 public:
  Subscription(EventsService* service, v1::SubscribeRequest request)
      : service_(service), request_(std::move(request)) {}

  // Sets the cursor from the request (pump thread, before the first read).
  Status Start() {
    const events::EventState* state = service_->node_->events();
    all_ = request_.target_case() == v1::SubscribeRequest::kAll;
    if (!all_) {
      CAIRN_RETURN_IF_ERROR(events::ValidateStreamName(request_.stream(), /*allow_system=*/true));
      if (request_.has_after_position()) {
        return Status::InvalidArgument("events: a stream subscription starts after a version");
      }
      if (request_.has_after_version()) after_version_ = request_.after_version();
      if (request_.from_end()) {
        v1::ReadStreamRequest last;
        last.set_stream(request_.stream());
        last.set_direction(v1::BACKWARDS);
        last.set_from_end(true);
        last.set_count(1);
        v1::ReadStreamResponse resp;
        Status read = state->ReadStream(last, NowUnixNanos(), &resp);
        if (read.ok() && resp.stream_exists()) after_version_ = resp.current_version();
        if (!read.ok() && read.code() != StatusCode::kNotFound) return read;
      }
      return Status::Ok();
    }
    if (request_.target_case() != v1::SubscribeRequest::kAll || !request_.all()) {
      return Status::InvalidArgument("events: a subscription needs a stream or all = true");
    }
    if (request_.has_after_version()) {
      return Status::InvalidArgument("events: an $all subscription starts after a position");
    }
    if (request_.has_after_position()) {
      next_.set_revision(request_.after_position().revision());
      next_.set_index(request_.after_position().index() + 1);
    }
    if (request_.from_end()) {
      v1::ReadAllRequest last;
      last.set_direction(v1::BACKWARDS);
      last.set_from_end(true);
      last.set_count(1);
      last.set_include_system(true);
      v1::ReadAllResponse resp;
      CAIRN_RETURN_IF_ERROR(state->ReadAll(last, NowUnixNanos(), &resp));
      if (resp.events_size() == 1) {
        next_.set_revision(resp.events(0).position().revision());
        next_.set_index(resp.events(0).position().index() + 1);
      }
    }
    return Status::Ok();
  }

  // Reads the next page after the cursor into `out` (pump). Returns whether more may follow
  // at once (a full page).
  Result<bool> ReadPage(std::vector<v1::SubscribeResponse>* out) {
    const events::EventState* state = service_->node_->events();
    const int64_t now = NowUnixNanos();
    bool full = false;
    if (!all_) {
      std::vector<v1::RecordedEvent> events;
      CAIRN_RETURN_IF_ERROR(state->ReadStreamAfter(request_.stream(), after_version_,
                                                   kSubscriptionPage, now, &events));
      full = events.size() == kSubscriptionPage;
      for (auto& event : events) {
        const bool link = request_.stream()[0] == '$';
        after_version_ = link ? event.link_version() : event.version();
        *out->emplace_back().mutable_event() = std::move(event);
      }
      if (!full && !caught_up_sent_) {
        caught_up_sent_ = true;
        out->emplace_back().mutable_caught_up();
      }
      return full;
    }
    v1::ReadAllRequest read;
    *read.mutable_from() = next_;
    read.set_count(kSubscriptionPage);
    *read.mutable_filter() = request_.filter();
    read.set_include_system(request_.include_system());
    v1::ReadAllResponse resp;
    CAIRN_RETURN_IF_ERROR(state->ReadAll(read, now, &resp));
    const bool advanced =
        resp.next().revision() != next_.revision() || resp.next().index() != next_.index();
    const bool matched = resp.events_size() > 0;
    for (auto& event : *resp.mutable_events()) {
      *out->emplace_back().mutable_event() = std::move(event);
    }
    scanned_since_checkpoint_ += advanced ? 1 : 0;
    if (advanced) next_ = resp.next();
    full = !resp.end();
    const uint32_t interval = request_.checkpoint_interval() == 0 ? kCheckpointIntervalDefault
                                                                  : request_.checkpoint_interval();
    // A page that scanned events but matched none (a filtered gap): tell the client how far
    // it got, at most once per `interval` pages of scanning.
    if (advanced && !matched &&
        (scanned_since_checkpoint_ * kSubscriptionPage >= interval || !full)) {
      scanned_since_checkpoint_ = 0;
      v1::Position* checkpoint = out->emplace_back().mutable_checkpoint();
      checkpoint->set_revision(next_.revision());
      checkpoint->set_index(next_.index() == 0 ? 0 : next_.index() - 1);
    }
    if (!full && !caught_up_sent_) {
      caught_up_sent_ = true;
      v1::Position* caught_up = out->emplace_back().mutable_caught_up();
      caught_up->set_revision(next_.revision());
      caught_up->set_index(next_.index() == 0 ? 0 : next_.index() - 1);
    }
    return full;
  }

  // Queues messages and starts writing if idle. Called with mu_ NOT held.
  void Deliver(std::vector<v1::SubscribeResponse>&& messages) {
    std::unique_lock<std::mutex> lock(service_->mu_);
    if (finishing_) return;
    for (auto& m : messages) queue_.push_back(std::move(m));
    StartNextLocked(&lock);
  }

  // Ends the call with `status` unless it already ends. Called with mu_ NOT held.
  void End(const grpc::Status& status) {
    std::unique_lock<std::mutex> lock(service_->mu_);
    EndLocked(&lock, status);
  }

  void OnWriteDone(bool ok) override {
    std::unique_lock<std::mutex> lock(service_->mu_);
    writing_ = false;
    if (!ok) {
      EndLocked(&lock, grpc::Status(grpc::StatusCode::CANCELLED, "events: subscriber went away"));
      return;
    }
    if (finishing_) {
      FinishIfIdleLocked(&lock);
      return;
    }
    if (!queue_.empty()) {
      StartNextLocked(&lock);
      return;
    }
    // Idle: the pump may read the next page.
    service_->dirty_ = true;
    lock.unlock();
    service_->pump_cv_.notify_one();
  }

  void OnCancel() override {
    End(grpc::Status(grpc::StatusCode::CANCELLED, "events: subscription cancelled"));
  }

  void OnDone() override {
    std::shared_ptr<Subscription> self;
    {
      std::lock_guard<std::mutex> lock(service_->mu_);
      self = std::move(self_);
      service_->subscriptions_.erase(self);
    }
    // `self` (the last owner, unless the pump holds one for a moment) goes here.
  }

  // (mu_) Whether the pump should read for this subscription now.
  bool IdleLocked() const { return !writing_ && queue_.empty() && !finishing_; }

  std::shared_ptr<Subscription> self_;  // guarded by mu_: keeps this alive until OnDone
  bool needs_read_ = true;              // guarded by mu_
  bool started_ = false;                // (pump)

 private:
  void StartNextLocked(std::unique_lock<std::mutex>* lock) {
    if (writing_ || queue_.empty() || finishing_) return;
    current_ = std::move(queue_.front());
    queue_.pop_front();
    writing_ = true;
    lock->unlock();
    StartWrite(&current_);
  }

  // The first status wins. Finishes once no write is in flight: also when the call was
  // already ending (a cancel while writing ends it; the write's failed OnWriteDone comes
  // here after and must finish it, or the call never completes and blocks shutdown).
  void EndLocked(std::unique_lock<std::mutex>* lock, const grpc::Status& status) {
    if (!finishing_) {
      finishing_ = true;
      final_status_ = status;
      queue_.clear();
    }
    FinishIfIdleLocked(lock);
  }

  void FinishIfIdleLocked(std::unique_lock<std::mutex>* lock) {
    if (writing_ || finished_) return;
    finished_ = true;
    grpc::Status status = final_status_;
    lock->unlock();
    Finish(status);
  }

  EventsService* const service_;
  const v1::SubscribeRequest request_;
  // Cursor (pump).
  bool all_ = false;
  std::optional<uint64_t> after_version_;
  v1::Position next_;
  bool caught_up_sent_ = false;
  uint64_t scanned_since_checkpoint_ = 0;
  // Writing (mu_).
  std::deque<v1::SubscribeResponse> queue_;
  v1::SubscribeResponse current_;
  bool writing_ = false;
  bool finishing_ = false;
  bool finished_ = false;
  grpc::Status final_status_;
};

EventsService::EventsService(node::Node* node, const MemberIdentity* identity,
                             const mvcc::ValidationOptions& validation)
    : node_(node), identity_(identity), validation_(validation) {
  listener_id_ = node_->events()->AddWriteListener([this] { Wake(/*events_written=*/true); });
  pump_ = std::thread([this] { PumpLoop(); });
}

EventsService::~EventsService() { Stop(); }

void EventsService::Stop() {
  std::set<std::shared_ptr<Subscription>> subscriptions;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_ && !pump_.joinable()) return;
    stopping_ = true;
    subscriptions = subscriptions_;
  }
  pump_cv_.notify_all();
  if (pump_.joinable()) pump_.join();
  node_->events()->RemoveWriteListener(listener_id_);
  for (const auto& subscription : subscriptions) {
    subscription->End(grpc::Status(grpc::StatusCode::UNAVAILABLE, "events: server stopped"));
  }
}

void EventsService::Wake(bool events_written) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (events_written) {
      for (const auto& subscription : subscriptions_) subscription->needs_read_ = true;
    }
    dirty_ = true;
  }
  pump_cv_.notify_one();
}

void EventsService::PumpLoop() {
  std::vector<std::shared_ptr<Subscription>> ready;
  std::vector<v1::SubscribeResponse> messages;
  while (true) {
    ready.clear();
    {
      std::unique_lock<std::mutex> lock(mu_);
      pump_cv_.wait(lock, [&] { return stopping_ || dirty_; });
      if (stopping_) return;
      dirty_ = false;
      for (const auto& subscription : subscriptions_) {
        if (subscription->needs_read_ && subscription->IdleLocked()) {
          subscription->needs_read_ = false;
          ready.push_back(subscription);
        }
      }
    }
    for (const auto& subscription : ready) {
      messages.clear();
      Status status = Status::Ok();
      if (!subscription->started_) {
        subscription->started_ = true;
        status = subscription->Start();
      }
      Result<bool> more = status.ok() ? subscription->ReadPage(&messages) : Result<bool>(status);
      if (more.ok()) status = node_->upcasters()->ApplyTo(&messages);  // Lua upcasters
      if (!status.ok()) more = status;
      if (!more.ok()) {
        subscription->End(ToGrpcStatus(more.status()));
        continue;
      }
      if (*more) {
        // A full page: read again once this one is written.
        std::lock_guard<std::mutex> lock(mu_);
        subscription->needs_read_ = true;
      }
      if (!messages.empty()) {
        subscription->Deliver(std::move(messages));
      } else if (*more) {
        Wake(/*events_written=*/false);
      }
    }
  }
}

grpc::ServerWriteReactor<v1::SubscribeResponse>* EventsService::Subscribe(
    grpc::CallbackServerContext* context, const v1::SubscribeRequest* request) {
  auto subscription = std::make_shared<Subscription>(this, *request);
  bool stopping = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    subscription->self_ = subscription;  // released in OnDone
    stopping = stopping_;
    if (!stopping) {
      subscriptions_.insert(subscription);
      dirty_ = true;
    }
  }
  if (stopping) {
    subscription->End(grpc::Status(grpc::StatusCode::UNAVAILABLE, "events: server stopped"));
  } else {
    pump_cv_.notify_one();
  }
  return subscription.get();
}

grpc::ServerUnaryReactor* EventsService::Append(grpc::CallbackServerContext* context,
                                                const v1::AppendRequest* request,
                                                v1::AppendResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  Status status = events::ValidateAppend(*request);
  if (status.ok()) status = ValidateOutbox(*request, validation_);
  command::Command command;
  if (status.ok()) {
    *command.mutable_events_append()->mutable_request() = *request;
    command.mutable_events_append()->set_created_unix_nanos(NowUnixNanos());
  }
  ProposeAndFinish(
      node_, identity_, reactor, status, std::move(command), response,
      [](command::CommandResult & r) -> auto& { return *r.mutable_events_append(); });
  return reactor;
}

grpc::ServerUnaryReactor* EventsService::DeleteStream(grpc::CallbackServerContext* context,
                                                      const v1::DeleteStreamRequest* request,
                                                      v1::DeleteStreamResponse* response) {
  command::Command command;
  *command.mutable_events_delete_stream()->mutable_request() = *request;
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  ProposeAndFinish(
      node_, identity_, reactor, events::ValidateDeleteStream(*request), std::move(command),
      response,
      [](command::CommandResult & r) -> auto& { return *r.mutable_events_delete_stream(); });
  return reactor;
}

grpc::ServerUnaryReactor* EventsService::SetStreamMetadata(
    grpc::CallbackServerContext* context, const v1::SetStreamMetadataRequest* request,
    v1::SetStreamMetadataResponse* response) {
  command::Command command;
  *command.mutable_events_set_metadata() = *request;
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  ProposeAndFinish(
      node_, identity_, reactor, events::ValidateSetMetadata(*request), std::move(command),
      response,
      [](command::CommandResult & r) -> auto& { return *r.mutable_events_set_metadata(); });
  return reactor;
}

grpc::ServerUnaryReactor* EventsService::SaveSnapshot(grpc::CallbackServerContext* context,
                                                      const v1::SaveSnapshotRequest* request,
                                                      v1::SaveSnapshotResponse* response) {
  command::Command command;
  *command.mutable_events_save_snapshot() = *request;
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  ProposeAndFinish(
      node_, identity_, reactor, events::ValidateSaveSnapshot(*request), std::move(command),
      response,
      [](command::CommandResult & r) -> auto& { return *r.mutable_events_save_snapshot(); });
  return reactor;
}

grpc::ServerUnaryReactor* EventsService::Scavenge(grpc::CallbackServerContext* context,
                                                  const v1::ScavengeRequest* request,
                                                  v1::ScavengeResponse* response) {
  command::Command command;
  *command.mutable_events_scavenge()->mutable_request() = *request;
  command.mutable_events_scavenge()->set_now_unix_nanos(NowUnixNanos());  // decides max_age
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  ProposeAndFinish(
      node_, identity_, reactor, events::ValidateScavenge(*request), std::move(command), response,
      [](command::CommandResult & r) -> auto& { return *r.mutable_events_scavenge(); });
  return reactor;
}

grpc::ServerUnaryReactor* EventsService::ReadStream(grpc::CallbackServerContext* context,
                                                    const v1::ReadStreamRequest* request,
                                                    v1::ReadStreamResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  ReadAndFinish(node_, identity_, reactor, response, [this, request, response] {
    Status status = node_->events()->ReadStream(*request, NowUnixNanos(), response);
    return status.ok() ? node_->upcasters()->ApplyTo(response) : status;  // Lua upcasters
  });
  return reactor;
}

grpc::ServerUnaryReactor* EventsService::ReadAll(grpc::CallbackServerContext* context,
                                                 const v1::ReadAllRequest* request,
                                                 v1::ReadAllResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  ReadAndFinish(node_, identity_, reactor, response, [this, request, response] {
    Status status = node_->events()->ReadAll(*request, NowUnixNanos(), response);
    return status.ok() ? node_->upcasters()->ApplyTo(response) : status;  // Lua upcasters
  });
  return reactor;
}

grpc::ServerUnaryReactor* EventsService::GetStreamMetadata(
    grpc::CallbackServerContext* context, const v1::GetStreamMetadataRequest* request,
    v1::GetStreamMetadataResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  ReadAndFinish(node_, identity_, reactor, response, [this, request, response] {
    return node_->events()->GetMetadata(*request, response);
  });
  return reactor;
}

grpc::ServerUnaryReactor* EventsService::ReadAggregate(grpc::CallbackServerContext* context,
                                                       const v1::ReadAggregateRequest* request,
                                                       v1::ReadAggregateResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  ReadAndFinish(node_, identity_, reactor, response, [this, request, response] {
    Status status = node_->events()->ReadAggregate(*request, NowUnixNanos(), response);
    return status.ok() ? node_->upcasters()->ApplyTo(response) : status;  // Lua upcasters
  });
  return reactor;
}

grpc::ServerUnaryReactor* EventsService::VerifyChain(grpc::CallbackServerContext* context,
                                                     const v1::VerifyChainRequest* request,
                                                     v1::VerifyChainResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  // A full walk: run it on a read thread after the read index, like any read.
  node_->ReadIndex([this, reactor, response](const Status& ready) {
    Status status = ready.ok() ? node_->events()->VerifyChain(response) : ready;
    reactor->Finish(ToGrpcStatus(status));
  });
  return reactor;
}

}  // namespace cairn::server
