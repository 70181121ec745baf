#include "src/server/persistent_service.h"

#include <chrono>
#include <deque>

#include "src/events/event_state.h"
#include "src/server/grpc_status.h"
#include "src/server/propose.h"

namespace cairn::server {
namespace {

namespace v1 = events::v1;

// Events read from the source per round and group.
constexpr size_t kReadPage = 256;
// The dispatch thread wakes at least this often (message timeouts, checkpoints).
constexpr auto kTick = std::chrono::milliseconds(20);
// Ids in one ack or nack message.
constexpr int kIdsPerMessageMax = 4096;

int64_t NowUnixNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

int64_t SteadyMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

grpc::Status Unavailable(const std::string& message) {
  return grpc::Status(grpc::StatusCode::UNAVAILABLE, message);
}

const char kNotLeader[] =
    "events: persistent subscriptions are served by the leader; this member is not the leader";

// The position after which a forwards $all read continues from `after` (exclusive).
v1::Position NextPosition(const std::optional<events::CursorKey>& after) {
  v1::Position next;
  if (!after.has_value()) return next;
  if (after->minor == UINT32_MAX) {
    next.set_revision(after->major + 1);
  } else {
    next.set_revision(after->major);
    next.set_index(after->minor + 1);
  }
  return next;
}

// The last position before `next` (exclusive end of a scan), if any.
std::optional<events::CursorKey> PositionBefore(const v1::Position& next) {
  if (next.index() > 0) return events::CursorKey{next.revision(), next.index() - 1};
  if (next.revision() == 0) return std::nullopt;
  return events::CursorKey{next.revision() - 1, UINT32_MAX};
}

}  // namespace

// One consumer's Read call. The first request joins the group; acks and nacks follow. Writes
// go out one at a time from a queue the dispatch thread fills (bounded by the consumer's
// buffer size, plus the confirmation).
class PersistentService::Consumer final
    : public grpc::ServerBidiReactor<v1::PersistentReadRequest, v1::PersistentReadResponse> {
 public:
  explicit Consumer(PersistentService* service) : service_(service) {}

  void Begin(std::shared_ptr<Consumer> self) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      self_ = std::move(self);
    }
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      // The client closed its side (or went away): it leaves the group.
      End(grpc::Status::OK);
      return;
    }
    Status status = HandleRequest();
    if (!status.ok()) {
      End(ToGrpcStatus(status));
      return;
    }
    StartRead(&request_);
  }

  void Deliver(v1::PersistentReadResponse message) {
    std::unique_lock<std::mutex> lock(mu_);
    if (finishing_) return;
    queue_.push_back(std::move(message));
    StartNextLocked(&lock);
  }

  void End(const grpc::Status& status) {
    std::unique_lock<std::mutex> lock(mu_);
    if (finishing_) return;
    finishing_ = true;
    final_status_ = status;
    queue_.clear();
    FinishIfIdleLocked(&lock);
  }

  void OnWriteDone(bool ok) override {
    std::unique_lock<std::mutex> lock(mu_);
    writing_ = false;
    if (!ok && !finishing_) {
      finishing_ = true;
      final_status_ = grpc::Status(grpc::StatusCode::CANCELLED, "events: consumer went away");
      queue_.clear();
    }
    // Ending while this write was in flight waited for it: finish now, whether or not it
    // went through (a failed write after End must still finish the call, or the server's
    // shutdown waits for it forever).
    if (finishing_) {
      FinishIfIdleLocked(&lock);
      return;
    }
    StartNextLocked(&lock);
  }

  void OnCancel() override { End(grpc::Status(grpc::StatusCode::CANCELLED, "events: cancelled")); }

  void OnDone() override {
    std::shared_ptr<Consumer> self;
    {
      std::lock_guard<std::mutex> lock(mu_);
      self = std::move(self_);
    }
    if (joined_) service_->Push(Input{Input::Kind::kLeave, self, {}, v1::NACK_RETRY});
  }

  const v1::PersistentReadRequest::Options& options() const { return options_; }
  GroupKey key() const { return {options_.source(), options_.group()}; }
  uint64_t id = 0;  // dispatch thread: the dispatcher's consumer id once joined

 private:
  Status HandleRequest() {
    std::shared_ptr<Consumer> self;
    {
      std::lock_guard<std::mutex> lock(mu_);
      self = self_;
    }
    if (self == nullptr) return Status::Ok();
    switch (request_.content_case()) {
      case v1::PersistentReadRequest::kOptions: {
        if (joined_) return Status::InvalidArgument("events: options come once, first");
        options_ = request_.options();
        CAIRN_RETURN_IF_ERROR(events::ValidatePersistentSource(options_.source()));
        CAIRN_RETURN_IF_ERROR(events::ValidateGroupName(options_.group()));
        if (options_.buffer_size() > events::PersistentLimits::kBufferSizeMax) {
          return Status::InvalidArgument(
              "events: buffer_size " + std::to_string(options_.buffer_size()) +
              " exceeds the limit of " + std::to_string(events::PersistentLimits::kBufferSizeMax));
        }
        if (options_.consumer_name().size() > events::PersistentLimits::kConsumerNameBytesMax) {
          return Status::InvalidArgument("events: consumer name too long");
        }
        joined_ = true;
        service_->Push(Input{Input::Kind::kJoin, self, {}, v1::NACK_RETRY});
        return Status::Ok();
      }
      case v1::PersistentReadRequest::kAck:
      case v1::PersistentReadRequest::kNack: {
        if (!joined_) {
          return Status::InvalidArgument("events: the first request of Read carries the options");
        }
        const bool ack = request_.content_case() == v1::PersistentReadRequest::kAck;
        const auto& ids = ack ? request_.ack().ids() : request_.nack().ids();
        if (ids.size() > kIdsPerMessageMax) {
          return Status::InvalidArgument("events: " + std::to_string(ids.size()) +
                                         " ids in one message exceed the limit of " +
                                         std::to_string(kIdsPerMessageMax));
        }
        if (!ack && !v1::NackAction_IsValid(request_.nack().action())) {
          return Status::InvalidArgument("events: unknown nack action");
        }
        Input input;
        input.kind = ack ? Input::Kind::kAck : Input::Kind::kNack;
        input.consumer = self;
        input.ids.assign(ids.begin(), ids.end());
        if (!ack) input.action = request_.nack().action();
        service_->Push(std::move(input));
        return Status::Ok();
      }
      default:
        return Status::InvalidArgument("events: a Read request needs options, ack or nack");
    }
  }

  void StartNextLocked(std::unique_lock<std::mutex>* lock) {
    if (writing_ || queue_.empty() || finishing_) return;
    current_ = std::move(queue_.front());
    queue_.pop_front();
    writing_ = true;
    lock->unlock();
    StartWrite(&current_);
  }

  void FinishIfIdleLocked(std::unique_lock<std::mutex>* lock) {
    if (writing_ || finished_) return;
    finished_ = true;
    grpc::Status status = final_status_;
    lock->unlock();
    Finish(status);
  }

  PersistentService* const service_;
  v1::PersistentReadRequest request_;  // the read in progress (gRPC's reads are sequential)
  v1::PersistentReadRequest::Options options_;
  bool joined_ = false;  // reads only

  std::mutex mu_;
  std::shared_ptr<Consumer> self_;  // keeps this alive until OnDone
  std::deque<v1::PersistentReadResponse> queue_;
  v1::PersistentReadResponse current_;
  bool writing_ = false;
  bool finishing_ = false;
  bool finished_ = false;
  grpc::Status final_status_;
};

PersistentService::PersistentService(node::Node* node, const MemberIdentity* identity)
    : node_(node), identity_(identity) {
  std::weak_ptr<Shared> weak = shared_;
  listener_id_ = node_->events()->AddWriteListener([weak] {
    if (auto shared = weak.lock()) {
      {
        std::lock_guard<std::mutex> lock(shared->mu);
        shared->wake = true;
      }
      shared->cv.notify_one();
    }
  });
  dispatcher_ = std::thread([this] { DispatchLoop(); });
}

PersistentService::~PersistentService() { Stop(); }

void PersistentService::Stop() {
  std::vector<Input> pending;
  {
    std::lock_guard<std::mutex> lock(shared_->mu);
    if (shared_->stopping && !dispatcher_.joinable()) return;
    shared_->stopping = true;
    pending.swap(shared_->inputs);
  }
  shared_->cv.notify_all();
  if (dispatcher_.joinable()) dispatcher_.join();
  node_->events()->RemoveWriteListener(listener_id_);
  for (Input& input : pending) input.consumer->End(Unavailable("events: server stopped"));
}

void PersistentService::Push(Input input) {
  std::shared_ptr<Consumer> refused;
  {
    std::lock_guard<std::mutex> lock(shared_->mu);
    if (shared_->stopping) {
      refused = std::move(input.consumer);
    } else {
      shared_->inputs.push_back(std::move(input));
    }
  }
  if (refused != nullptr) {
    refused->End(Unavailable("events: server stopped"));
    return;
  }
  shared_->cv.notify_one();
}

void PersistentService::DispatchLoop() {
  std::vector<Input> inputs;
  while (true) {
    inputs.clear();
    {
      std::unique_lock<std::mutex> lock(shared_->mu);
      shared_->cv.wait_for(lock, kTick, [&] {
        return shared_->stopping || shared_->wake || !shared_->inputs.empty();
      });
      if (shared_->stopping) break;
      shared_->wake = false;
      inputs.swap(shared_->inputs);
    }
    if (!node_->IsLeader() && !served_.empty()) {
      for (auto& [key, served] : served_) EndGroup(&served, Unavailable(kNotLeader));
      served_.clear();
    }
    for (Input& input : inputs) HandleInput(input);
    const int64_t now_ms = SteadyMs();
    for (auto it = served_.begin(); it != served_.end();) {
      if (Serve(it->first, &it->second, now_ms)) {
        ++it;
      } else {
        it = served_.erase(it);
      }
    }
    std::lock_guard<std::mutex> lock(shared_->mu);
    shared_->stats.clear();
    shared_->consumer_counts.clear();
    for (const auto& [key, served] : served_) {
      shared_->stats[key] = served.dispatcher->stats();
      shared_->consumer_counts[key] = static_cast<uint32_t>(served.consumers.size());
    }
  }
  for (auto& [key, served] : served_) EndGroup(&served, Unavailable("events: server stopped"));
  served_.clear();
}

void PersistentService::HandleInput(Input& input) {
  const GroupKey key = input.consumer->key();
  auto it = served_.find(key);
  switch (input.kind) {
    case Input::Kind::kJoin: {
      if (!node_->IsLeader()) {
        input.consumer->End(Unavailable(kNotLeader));
        return;
      }
      if (it == served_.end()) {
        ServedGroup served;
        served.generation = node_->events()->persistent()->Generation();
        events::PersistentState::Progress progress;
        Status loaded =
            node_->events()->persistent()->LoadProgress(key.first, key.second, &progress);
        if (!loaded.ok()) {
          input.consumer->End(ToGrpcStatus(loaded));
          return;
        }
        served.dispatcher = std::make_unique<events::GroupDispatcher>(std::move(progress));
        it = served_.emplace(key, std::move(served)).first;
      }
      Result<uint64_t> id = it->second.dispatcher->AddConsumer(
          input.consumer->options().consumer_name(), input.consumer->options().buffer_size());
      if (!id.ok()) {
        input.consumer->End(ToGrpcStatus(id.status()));
        return;
      }
      input.consumer->id = *id;
      it->second.consumers[*id] = input.consumer;
      v1::PersistentReadResponse confirmation;
      confirmation.mutable_confirmation()->set_consumer_id(*id);
      input.consumer->Deliver(std::move(confirmation));
      return;
    }
    case Input::Kind::kAck:
    case Input::Kind::kNack:
    case Input::Kind::kLeave: {
      if (it == served_.end()) return;
      auto consumer = it->second.consumers.find(input.consumer->id);
      if (consumer == it->second.consumers.end() || consumer->second != input.consumer) return;
      events::GroupDispatcher* dispatcher = it->second.dispatcher.get();
      if (input.kind == Input::Kind::kAck) {
        dispatcher->Ack(input.ids);
      } else if (input.kind == Input::Kind::kNack) {
        dispatcher->Nack(input.ids, input.action);
      } else {
        dispatcher->RemoveConsumer(input.consumer->id);
        it->second.consumers.erase(consumer);
      }
      return;
    }
  }
}

void PersistentService::EndGroup(ServedGroup* served, const grpc::Status& status) {
  for (auto& [id, consumer] : served->consumers) consumer->End(status);
  served->consumers.clear();
}

Status PersistentService::Reload(ServedGroup* served) {
  const uint64_t generation = node_->events()->persistent()->Generation();
  if (generation == served->generation) return Status::Ok();
  served->generation = generation;
  const auto& group = served->dispatcher->group();
  events::PersistentState::Progress progress;
  Status loaded =
      node_->events()->persistent()->LoadProgress(group.source(), group.group(), &progress);
  if (loaded.code() == StatusCode::kNotFound ||
      (loaded.ok() && progress.group.group_id() != group.group_id())) {
    return Status::NotFound("events: persistent subscription '" + group.group() + "' on '" +
                            group.source() + "' was deleted");
  }
  CAIRN_RETURN_IF_ERROR(loaded);
  served->dispatcher->UpdateSettings(progress.group.settings());
  served->dispatcher->AddReplays(progress.replays);
  return Status::Ok();
}

Status PersistentService::LoadReplays(ServedGroup* served) {
  for (auto& [sequence, position] : served->dispatcher->TakeReplaysToLoad()) {
    v1::ReadAllRequest read;
    *read.mutable_from() = position;
    read.set_count(1);
    read.set_include_system(true);
    v1::ReadAllResponse resp;
    CAIRN_RETURN_IF_ERROR(node_->events()->ReadAll(read, NowUnixNanos(), &resp));
    std::optional<v1::RecordedEvent> event;
    if (resp.events_size() == 1 && resp.events(0).position().revision() == position.revision() &&
        resp.events(0).position().index() == position.index()) {
      event = std::move(*resp.mutable_events(0));
    }
    served->dispatcher->AddReplayEvent(sequence, std::move(event));
  }
  return Status::Ok();
}

Status PersistentService::ReadSource(ServedGroup* served) {
  events::GroupDispatcher* dispatcher = served->dispatcher.get();
  const size_t wanted = std::min(dispatcher->WantedEvents(), kReadPage);
  const uint64_t events_now = node_->events()->EventCount();
  if (wanted == 0 || (served->source_exhausted && events_now == served->events_seen)) {
    return Status::Ok();
  }
  served->events_seen = events_now;
  const auto& group = dispatcher->group();
  if (!dispatcher->all_source()) {
    std::vector<v1::RecordedEvent> events;
    std::optional<uint64_t> after;
    if (dispatcher->ReadAfter().has_value()) after = dispatcher->ReadAfter()->major;
    CAIRN_RETURN_IF_ERROR(
        node_->events()->ReadStreamAfter(group.source(), after, wanted, NowUnixNanos(), &events));
    served->source_exhausted = events.size() < wanted;
    dispatcher->AddEvents(std::move(events), std::nullopt);
    return Status::Ok();
  }
  v1::ReadAllRequest read;
  *read.mutable_from() = NextPosition(dispatcher->ReadAfter());
  read.set_count(static_cast<uint32_t>(wanted));
  *read.mutable_filter() = group.settings().filter();
  read.set_include_system(group.settings().include_system());
  v1::ReadAllResponse resp;
  CAIRN_RETURN_IF_ERROR(node_->events()->ReadAll(read, NowUnixNanos(), &resp));
  served->source_exhausted = resp.end();
  std::vector<v1::RecordedEvent> events(std::make_move_iterator(resp.mutable_events()->begin()),
                                        std::make_move_iterator(resp.mutable_events()->end()));
  dispatcher->AddEvents(std::move(events), PositionBefore(resp.next()));
  return Status::Ok();
}

bool PersistentService::Serve(const GroupKey& key, ServedGroup* served, int64_t now_ms) {
  events::GroupDispatcher* dispatcher = served->dispatcher.get();
  Status status = Reload(served);
  if (status.ok()) status = LoadReplays(served);
  if (status.ok()) status = ReadSource(served);
  if (!status.ok()) {
    EndGroup(served, ToGrpcStatus(status));
    return false;
  }
  dispatcher->Expire(now_ms);
  std::vector<events::GroupDispatcher::Delivery> deliveries;
  dispatcher->Dispatch(now_ms, &deliveries);
  for (auto& delivery : deliveries) {
    const std::shared_ptr<Consumer>& consumer = served->consumers.at(delivery.consumer);
    // Served in the shape the upcasters give, like every read. An upcaster that fails ends
    // this consumer with its error; the event then counts as a failed delivery (and is
    // parked after max_retry_count such failures).
    Status upcast = node_->upcasters()->Apply(delivery.message.mutable_event()->mutable_event());
    if (!upcast.ok()) {
      consumer->End(ToGrpcStatus(upcast));
      continue;
    }
    consumer->Deliver(std::move(delivery.message));
  }
  {
    std::lock_guard<std::mutex> lock(shared_->mu);
    if (shared_->proposing.count(key) > 0) return true;
  }
  std::optional<command::PersistentProgress> progress =
      dispatcher->TakeProgress(now_ms, /*force=*/served->consumers.empty());
  if (!progress.has_value()) return !served->consumers.empty();
  {
    std::lock_guard<std::mutex> lock(shared_->mu);
    shared_->proposing.insert(key);
  }
  command::Command command;
  *command.mutable_persistent_progress() = std::move(*progress);
  std::weak_ptr<Shared> weak = shared_;
  node_->Propose(std::move(command), [weak, key](const Status&, command::CommandResult&&) {
    // A failed proposal loses only progress: the events are delivered again (at least once).
    if (auto shared = weak.lock()) {
      {
        std::lock_guard<std::mutex> lock(shared->mu);
        shared->proposing.erase(key);
        shared->wake = true;
      }
      shared->cv.notify_one();
    }
  });
  return true;
}

void PersistentService::FillInfo(const events::records::PersistentGroupRecord& record,
                                 v1::PersistentSubscriptionInfo* info) {
  info->set_source(record.source());
  info->set_group(record.group());
  *info->mutable_settings() = record.settings();
  if (record.has_checkpoint()) *info->mutable_checkpoint() = record.checkpoint();
  Result<uint64_t> parked =
      node_->events()->persistent()->ParkedCount(record.source(), record.group());
  info->set_parked_count(parked.ok() ? *parked : 0);
  info->set_replay_pending(record.replay_pending());
  std::lock_guard<std::mutex> lock(shared_->mu);
  const GroupKey key{record.source(), record.group()};
  auto stats = shared_->stats.find(key);
  if (stats == shared_->stats.end()) return;
  info->set_consumers(shared_->consumer_counts[key]);
  info->set_in_flight(stats->second.in_flight);
  info->set_delivered(stats->second.delivered);
  info->set_acked(stats->second.acked);
  info->set_nacked(stats->second.nacked);
  info->set_parked_live(stats->second.parked);
}

// ---------------------------------------------------------------------------------------------
// Unary calls

grpc::ServerUnaryReactor* PersistentService::Create(
    grpc::CallbackServerContext* context, const v1::CreatePersistentSubscriptionRequest* request,
    v1::CreatePersistentSubscriptionResponse* response) {
  command::Command command;
  *command.mutable_persistent_create() = *request;
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  ProposeAndFinish(
      node_, identity_, reactor, events::ValidateCreatePersistent(*request), std::move(command),
      response, [](command::CommandResult & r) -> auto& { return *r.mutable_persistent_create(); });
  return reactor;
}

grpc::ServerUnaryReactor* PersistentService::Update(
    grpc::CallbackServerContext* context, const v1::UpdatePersistentSubscriptionRequest* request,
    v1::UpdatePersistentSubscriptionResponse* response) {
  command::Command command;
  *command.mutable_persistent_update() = *request;
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  ProposeAndFinish(
      node_, identity_, reactor, events::ValidateUpdatePersistent(*request), std::move(command),
      response, [](command::CommandResult & r) -> auto& { return *r.mutable_persistent_update(); });
  return reactor;
}

grpc::ServerUnaryReactor* PersistentService::Delete(
    grpc::CallbackServerContext* context, const v1::DeletePersistentSubscriptionRequest* request,
    v1::DeletePersistentSubscriptionResponse* response) {
  command::Command command;
  *command.mutable_persistent_delete() = *request;
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  ProposeAndFinish(
      node_, identity_, reactor, events::ValidateDeletePersistent(*request), std::move(command),
      response, [](command::CommandResult & r) -> auto& { return *r.mutable_persistent_delete(); });
  return reactor;
}

grpc::ServerUnaryReactor* PersistentService::ReplayParked(grpc::CallbackServerContext* context,
                                                          const v1::ReplayParkedRequest* request,
                                                          v1::ReplayParkedResponse* response) {
  command::Command command;
  *command.mutable_persistent_replay_parked() = *request;
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  ProposeAndFinish(
      node_, identity_, reactor, events::ValidateReplayParked(*request), std::move(command),
      response,
      [](command::CommandResult & r) -> auto& { return *r.mutable_persistent_replay_parked(); });
  return reactor;
}

grpc::ServerUnaryReactor* PersistentService::Get(
    grpc::CallbackServerContext* context, const v1::GetPersistentSubscriptionRequest* request,
    v1::GetPersistentSubscriptionResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  ReadAndFinish(node_, identity_, reactor, response, [this, request, response]() -> Status {
    CAIRN_RETURN_IF_ERROR(events::ValidatePersistentSource(request->source()));
    CAIRN_RETURN_IF_ERROR(events::ValidateGroupName(request->group()));
    CAIRN_ASSIGN_OR_RETURN(
        auto record, node_->events()->persistent()->GetGroup(request->source(), request->group()));
    if (!record.has_value()) return events::ErrGroupNotFound(request->source(), request->group());
    FillInfo(*record, response->mutable_info());
    return Status::Ok();
  });
  return reactor;
}

grpc::ServerUnaryReactor* PersistentService::List(
    grpc::CallbackServerContext* context, const v1::ListPersistentSubscriptionsRequest* request,
    v1::ListPersistentSubscriptionsResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  ReadAndFinish(node_, identity_, reactor, response, [this, request, response]() -> Status {
    if (!request->source().empty()) {
      CAIRN_RETURN_IF_ERROR(events::ValidatePersistentSource(request->source()));
    }
    std::vector<events::records::PersistentGroupRecord> records;
    CAIRN_RETURN_IF_ERROR(node_->events()->persistent()->ListGroups(request->source(), &records));
    for (const auto& record : records) FillInfo(record, response->add_groups());
    return Status::Ok();
  });
  return reactor;
}

grpc::ServerBidiReactor<v1::PersistentReadRequest, v1::PersistentReadResponse>*
PersistentService::Read(grpc::CallbackServerContext* context) {
  (void)context;
  auto consumer = std::make_shared<Consumer>(this);
  Consumer* raw = consumer.get();
  raw->Begin(std::move(consumer));
  return raw;
}

}  // namespace cairn::server
