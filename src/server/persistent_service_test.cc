// Persistent subscriptions over real gRPC: a cairnd Server on loopback, consumers on real
// bidirectional streams, killed and restarted.
#include "src/server/persistent_service.h"

#include <atomic>
#include <map>
#include <set>
#include <thread>

#include "cairn/events.grpc.pb.h"
#include "cairn/projections.grpc.pb.h"
#include "src/server/server_test_util.h"

namespace cairn::server {
namespace {

namespace v1 = events::v1;

std::string Uuid(uint64_t n) {
  char text[37];
  std::snprintf(text, sizeof(text), "00000000-0000-4000-8000-%012llu",
                static_cast<unsigned long long>(n));
  return text;
}

// One consumer on its own Read call.
class TestConsumer {
 public:
  TestConsumer(v1::PersistentSubscriptions::Stub* stub, const std::string& source,
               const std::string& group, uint32_t buffer_size = 10) {
    context_.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    stream_ = stub->Read(&context_);
    v1::PersistentReadRequest join;
    join.mutable_options()->set_source(source);
    join.mutable_options()->set_group(group);
    join.mutable_options()->set_buffer_size(buffer_size);
    stream_->Write(join);
  }
  ~TestConsumer() { Kill(); }

  // The confirmation; false when the call ended (status() says why).
  bool Confirmed() {
    v1::PersistentReadResponse message;
    if (!stream_->Read(&message)) return End();
    return message.has_confirmation();
  }
  // The next event; nullopt when the call ended.
  std::optional<v1::PersistentReadResponse::Event> Next() {
    v1::PersistentReadResponse message;
    while (stream_->Read(&message)) {
      if (message.has_event()) return message.event();
    }
    End();
    return std::nullopt;
  }
  void Ack(const std::vector<std::string>& ids) {
    v1::PersistentReadRequest ack;
    for (const auto& id : ids) ack.mutable_ack()->add_ids(id);
    stream_->Write(ack);
  }
  void Nack(const std::string& id, v1::NackAction action) {
    v1::PersistentReadRequest nack;
    nack.mutable_nack()->add_ids(id);
    nack.mutable_nack()->set_action(action);
    nack.mutable_nack()->set_reason("test");
    stream_->Write(nack);
  }
  void Send(const v1::PersistentReadRequest& request) { stream_->Write(request); }
  // Goes away without a word (like a killed process: the connection is cancelled).
  void Kill() {
    if (ended_) return;
    context_.TryCancel();
    End();
  }
  const grpc::Status& status() const { return status_; }

 private:
  bool End() {
    if (!ended_) {
      ended_ = true;
      status_ = stream_->Finish();
    }
    return false;
  }

  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReaderWriter<v1::PersistentReadRequest, v1::PersistentReadResponse>>
      stream_;
  bool ended_ = false;
  grpc::Status status_;
};

class PersistentServiceTest : public ServerTestBase {
 protected:
  void SetUp() override {
    ServerTestBase::SetUp();
    StartServer();
  }
  void MakeStubs(const std::shared_ptr<grpc::Channel>& channel) override {
    channel_ = channel;
    events_ = v1::Events::NewStub(channel);
    persistent_ = v1::PersistentSubscriptions::NewStub(channel);
  }

  void AppendEvents(const std::string& stream, uint64_t first_id, int count) {
    v1::AppendRequest req;
    req.set_stream(stream);
    for (int i = 0; i < count; ++i) {
      v1::NewEvent* event = req.add_events();
      event->set_id(Uuid(first_id + i));
      event->set_type("Placed");
      event->set_data("{}");
    }
    v1::AppendResponse resp;
    grpc::ClientContext context;
    ASSERT_TRUE(events_->Append(&context, req, &resp).ok());
    ASSERT_TRUE(resp.has_success());
  }

  grpc::Status Create(const std::string& source, const std::string& group,
                      v1::PersistentSubscriptionSettings settings = {}) {
    v1::CreatePersistentSubscriptionRequest req;
    req.set_source(source);
    req.set_group(group);
    *req.mutable_settings() = settings;
    v1::CreatePersistentSubscriptionResponse resp;
    grpc::ClientContext context;
    return persistent_->Create(&context, req, &resp);
  }

  v1::PersistentSubscriptionInfo Get(const std::string& source, const std::string& group) {
    v1::GetPersistentSubscriptionRequest req;
    req.set_source(source);
    req.set_group(group);
    v1::GetPersistentSubscriptionResponse resp;
    grpc::ClientContext context;
    grpc::Status status = persistent_->Get(&context, req, &resp);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return resp.info();
  }

  // Waits until the group's replicated checkpoint reaches `version`.
  bool WaitForCheckpoint(const std::string& source, const std::string& group, uint64_t version) {
    for (int i = 0; i < 500; ++i) {
      auto info = Get(source, group);
      if (info.has_checkpoint() && info.checkpoint().version() >= version) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }

  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Events::Stub> events_;
  std::unique_ptr<v1::PersistentSubscriptions::Stub> persistent_;
};

TEST_F(PersistentServiceTest, EveryEventAtLeastOnceAcrossAKilledConsumerAndAServerRestart) {
  constexpr int kStreams = 8;
  constexpr int kPerStream = 50;
  constexpr int kTotal = kStreams * kPerStream;
  ASSERT_TRUE(Create("$ce-order", "billing").ok());
  std::set<std::string> all_ids;
  for (int s = 0; s < kStreams; ++s) {
    AppendEvents("order-" + std::to_string(s), 1000 + s * kPerStream, kPerStream);
    for (int i = 0; i < kPerStream; ++i) all_ids.insert(Uuid(1000 + s * kPerStream + i));
  }
  std::set<std::string> acked;
  std::map<std::string, int> deliveries;

  // A consumer acks some events, a second one takes events and is killed without acking.
  {
    TestConsumer good(persistent_.get(), "$ce-order", "billing", 20);
    ASSERT_TRUE(good.Confirmed()) << good.status().error_message();
    TestConsumer doomed(persistent_.get(), "$ce-order", "billing", 20);
    ASSERT_TRUE(doomed.Confirmed());
    for (int i = 0; i < 100; ++i) {
      auto event = good.Next();
      ASSERT_TRUE(event.has_value());
      ++deliveries[event->event().id()];
      good.Ack({event->event().id()});
      acked.insert(event->event().id());
    }
    std::vector<std::string> held;
    for (int i = 0; i < 20; ++i) {
      auto event = doomed.Next();
      ASSERT_TRUE(event.has_value());
      ++deliveries[event->event().id()];
      held.push_back(event->event().id());
    }
    doomed.Kill();
    // The killed consumer's events come to the survivor, marked as retried. Retries go before
    // fresh events once the server has seen the kill, which on a loaded machine may come after
    // the survivor has taken every fresh event: bound the reads by the events that exist (a
    // missing retry then ends the call at its deadline and fails the test).
    std::set<std::string> redelivered;
    std::set<std::string> wanted(held.begin(), held.end());
    for (int i = 0; i < kTotal && redelivered.size() < wanted.size(); ++i) {
      auto event = good.Next();
      ASSERT_TRUE(event.has_value());
      const std::string& id = event->event().id();
      ++deliveries[id];
      if (wanted.count(id) > 0) {
        EXPECT_GE(event->retry_count(), 1u);
        redelivered.insert(id);
      }
      good.Ack({id});
      acked.insert(id);
    }
    EXPECT_EQ(redelivered, wanted);
  }
  // Everything acked so far is replicated before the restart only eventually; what is not
  // comes again (at least once). Restart, append more, and drain with a new consumer.
  RestartServer();
  AppendEvents("order-new", 9000, 10);
  for (int i = 0; i < 10; ++i) all_ids.insert(Uuid(9000 + i));
  TestConsumer after(persistent_.get(), "$ce-order", "billing", 50);
  ASSERT_TRUE(after.Confirmed()) << after.status().error_message();
  while (acked.size() < all_ids.size()) {
    auto event = after.Next();
    ASSERT_TRUE(event.has_value()) << after.status().error_message();
    ++deliveries[event->event().id()];
    after.Ack({event->event().id()});
    acked.insert(event->event().id());
  }
  EXPECT_EQ(acked, all_ids);
  EXPECT_EQ(deliveries.size(), all_ids.size());
  // The checkpoint reaches the last link of "$ce-order" once the acks are replicated.
  EXPECT_TRUE(WaitForCheckpoint("$ce-order", "billing", kTotal + 10 - 1));
}

TEST_F(PersistentServiceTest, PoisonEventIsParkedAfterMaxRetriesAndCanBeReplayed) {
  v1::PersistentSubscriptionSettings settings;
  settings.set_max_retry_count(2);
  ASSERT_TRUE(Create("payments", "workers", settings).ok());
  AppendEvents("payments", 1, 3);  // the event with id Uuid(2) is poison
  TestConsumer consumer(persistent_.get(), "payments", "workers");
  ASSERT_TRUE(consumer.Confirmed());
  int poison_deliveries = 0;
  std::set<std::string> acked;
  while (acked.size() < 2 || poison_deliveries < 3) {
    auto event = consumer.Next();
    ASSERT_TRUE(event.has_value());
    if (event->event().id() == Uuid(2)) {
      EXPECT_EQ(event->retry_count(), static_cast<uint32_t>(poison_deliveries));
      ++poison_deliveries;
      consumer.Nack(Uuid(2), v1::NACK_RETRY);
    } else {
      consumer.Ack({event->event().id()});
      acked.insert(event->event().id());
    }
    ASSERT_LE(poison_deliveries, 3);
  }
  // Parked: readable in the dead-letter stream.
  const std::string parked = "$persistentsubscription-payments::workers-parked";
  std::vector<std::string> parked_ids;
  for (int i = 0; i < 500 && parked_ids.empty(); ++i) {
    v1::ReadStreamRequest read;
    read.set_stream(parked);
    v1::ReadStreamResponse resp;
    grpc::ClientContext context;
    grpc::Status status = events_->ReadStream(&context, read, &resp);
    if (status.ok()) {
      for (const auto& e : resp.events()) parked_ids.push_back(e.id());
    } else {
      ASSERT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND) << status.error_message();
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  EXPECT_EQ(parked_ids, std::vector<std::string>{Uuid(2)});
  EXPECT_EQ(Get("payments", "workers").parked_count(), 1u);
  EXPECT_TRUE(WaitForCheckpoint("payments", "workers", 2));

  // Replay: the parked event comes back, first, with a fresh retry count.
  v1::ReplayParkedRequest replay;
  replay.set_source("payments");
  replay.set_group("workers");
  v1::ReplayParkedResponse replayed;
  grpc::ClientContext context;
  ASSERT_TRUE(persistent_->ReplayParked(&context, replay, &replayed).ok());
  EXPECT_EQ(replayed.replayed(), 1u);
  auto again = consumer.Next();
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->event().id(), Uuid(2));
  EXPECT_EQ(again->retry_count(), 0u);
  consumer.Ack({Uuid(2)});
  for (int i = 0; i < 500 && Get("payments", "workers").replay_pending() > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(Get("payments", "workers").replay_pending(), 0u);
}

TEST_F(PersistentServiceTest, EventsAreDeliveredUpcast) {
  ASSERT_TRUE(Create("orders-9", "g").ok());
  AppendEvents("orders-9", 500, 1);  // type "Placed", data "{}", no schema_version: v1
  auto projections = v1::Projections::NewStub(channel_);
  v1::SetUpcasterRequest set;
  set.set_event_type("Placed");
  set.set_from_schema_version(1);
  set.set_source("function upcast(data, event) return { upcast = true } end");
  v1::ProjectionsChangeResponse set_response;
  grpc::ClientContext context;
  grpc::Status status = projections->SetUpcaster(&context, set, &set_response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  TestConsumer consumer(persistent_.get(), "orders-9", "g");
  ASSERT_TRUE(consumer.Confirmed());
  auto event = consumer.Next();
  ASSERT_TRUE(event.has_value());
  EXPECT_EQ(event->event().data(), R"({"upcast":true})");
}

TEST_F(PersistentServiceTest, AllGroupWithAFilterAndFromEnd) {
  AppendEvents("old-1", 1, 5);
  v1::PersistentSubscriptionSettings settings;
  settings.set_from_end(true);
  settings.mutable_filter()->add_stream_prefixes("keep-");
  ASSERT_TRUE(Create("$all", "tail", settings).ok());
  AppendEvents("drop-1", 100, 5);
  AppendEvents("keep-1", 200, 3);
  TestConsumer consumer(persistent_.get(), "$all", "tail");
  ASSERT_TRUE(consumer.Confirmed());
  std::vector<std::string> got;
  while (got.size() < 3) {
    auto event = consumer.Next();
    ASSERT_TRUE(event.has_value());
    got.push_back(event->event().id());
    consumer.Ack({event->event().id()});
  }
  EXPECT_EQ(got, (std::vector<std::string>{Uuid(200), Uuid(201), Uuid(202)}));
}

TEST_F(PersistentServiceTest, BadInputGetsPreciseErrorsAndTheServerKeepsServing) {
  ASSERT_TRUE(Create("orders-1", "g").ok());
  grpc::Status status = Create("orders-1", "g");
  EXPECT_EQ(status.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_EQ(status.error_message(),
            "events: persistent subscription 'g' on 'orders-1' already exists");
  EXPECT_EQ(Create("orders-1", "").error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Create("$xx-1", "g").error_code(), grpc::StatusCode::NOT_FOUND);
  v1::PersistentSubscriptionSettings bad;
  bad.set_max_retry_count(5000);
  status = Create("orders-2", "g", bad);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(), "events: max_retry_count 5000 exceeds the limit of 1000");
  v1::PersistentSubscriptionSettings position_for_stream;
  position_for_stream.mutable_after_position()->set_revision(3);
  EXPECT_EQ(Create("orders-2", "g", position_for_stream).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);

  {
    TestConsumer missing(persistent_.get(), "orders-1", "nobody");
    EXPECT_FALSE(missing.Confirmed());
    EXPECT_EQ(missing.status().error_code(), grpc::StatusCode::NOT_FOUND);
    EXPECT_EQ(missing.status().error_message(),
              "events: persistent subscription 'nobody' on 'orders-1' not found");
  }
  {
    // An ack before the options.
    grpc::ClientContext context;
    auto stream = persistent_->Read(&context);
    v1::PersistentReadRequest ack;
    ack.mutable_ack()->add_ids(Uuid(1));
    stream->Write(ack);
    v1::PersistentReadResponse message;
    EXPECT_FALSE(stream->Read(&message));
    status = stream->Finish();
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  }
  {
    v1::UpdatePersistentSubscriptionRequest update;
    update.set_source("orders-1");
    update.set_group("absent");
    v1::UpdatePersistentSubscriptionResponse resp;
    grpc::ClientContext context;
    EXPECT_EQ(persistent_->Update(&context, update, &resp).error_code(),
              grpc::StatusCode::NOT_FOUND);
  }
  // Still serving.
  AppendEvents("orders-1", 10, 1);
  TestConsumer consumer(persistent_.get(), "orders-1", "g");
  ASSERT_TRUE(consumer.Confirmed());
  auto event = consumer.Next();
  ASSERT_TRUE(event.has_value());
  EXPECT_EQ(event->event().id(), Uuid(10));
}

TEST_F(PersistentServiceTest, DeletingAGroupEndsItsConsumersAndListShowsGroups) {
  ASSERT_TRUE(Create("orders-1", "a").ok());
  ASSERT_TRUE(Create("orders-1", "b").ok());
  ASSERT_TRUE(Create("$all", "c").ok());
  v1::ListPersistentSubscriptionsRequest list;
  v1::ListPersistentSubscriptionsResponse listed;
  {
    grpc::ClientContext context;
    ASSERT_TRUE(persistent_->List(&context, list, &listed).ok());
  }
  EXPECT_EQ(listed.groups_size(), 3);
  list.set_source("orders-1");
  {
    grpc::ClientContext context;
    ASSERT_TRUE(persistent_->List(&context, list, &listed).ok());
  }
  EXPECT_EQ(listed.groups_size(), 2);

  TestConsumer consumer(persistent_.get(), "orders-1", "a");
  ASSERT_TRUE(consumer.Confirmed());
  v1::DeletePersistentSubscriptionRequest del;
  del.set_source("orders-1");
  del.set_group("a");
  v1::DeletePersistentSubscriptionResponse deleted;
  {
    grpc::ClientContext context;
    ASSERT_TRUE(persistent_->Delete(&context, del, &deleted).ok());
  }
  EXPECT_FALSE(consumer.Next().has_value());
  EXPECT_EQ(consumer.status().error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(consumer.status().error_message(),
            "events: persistent subscription 'a' on 'orders-1' was deleted");
  {
    grpc::ClientContext context;
    EXPECT_EQ(persistent_->Delete(&context, del, &deleted).error_code(),
              grpc::StatusCode::NOT_FOUND);
  }
}

}  // namespace
}  // namespace cairn::server
