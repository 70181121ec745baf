// User projections and upcasters over real gRPC: a cairnd Server on loopback, clients on real
// channels; the projection's states are compared with a fold computed here.
#include "src/server/projections_service.h"

#include <chrono>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "cairn/events.grpc.pb.h"
#include "src/server/server_test_util.h"

namespace cairn::server {
namespace {

namespace v1 = events::v1;
using Json = nlohmann::json;

std::string Uuid(uint64_t n) {
  char text[37];
  std::snprintf(text, sizeof(text), "00000000-0000-4000-8000-%012llu",
                static_cast<unsigned long long>(n));
  return text;
}

constexpr std::string_view kBalances = R"lua(
partition_by = "stream"
function init() return { count = 0, balance = 0 } end
handlers = {
  Deposited = function(state, event)
    state.count = state.count + 1
    state.balance = state.balance + event.data.amount
    return state
  end,
  Withdrawn = function(state, event)
    state.count = state.count + 1
    state.balance = state.balance - event.data.amount
    return state
  end,
}
)lua";

constexpr std::string_view kCounter = R"lua(
handlers = { ["$any"] = function(state, event) state.n = (state.n or 0) + 1 return state end }
)lua";

class ProjectionsServiceTest : public ServerTestBase {
 protected:
  void SetUp() override {
    ServerTestBase::SetUp();
    StartServer();
  }
  void MakeStubs(const std::shared_ptr<grpc::Channel>& channel) override {
    events_ = v1::Events::NewStub(channel);
    projections_ = v1::Projections::NewStub(channel);
  }

  grpc::Status Append(const std::string& stream, const std::string& type, const std::string& data,
                      const std::string& metadata = "") {
    v1::AppendRequest request;
    request.set_stream(stream);
    v1::NewEvent* event = request.add_events();
    event->set_id(Uuid(next_id_++));
    event->set_type(type);
    event->set_data(data);
    event->set_metadata(metadata);
    v1::AppendResponse response;
    grpc::ClientContext context;
    grpc::Status status = events_->Append(&context, request, &response);
    if (status.ok()) {
      EXPECT_TRUE(response.has_success());
    }
    return status;
  }

  grpc::Status Create(const std::string& name, std::string_view source, bool stopped = false) {
    v1::CreateProjectionRequest request;
    request.set_name(name);
    request.set_source(std::string(source));
    request.set_stopped(stopped);
    v1::ProjectionsChangeResponse response;
    grpc::ClientContext context;
    return projections_->Create(&context, request, &response);
  }

  template <typename Request>
  grpc::Status Change(grpc::Status (v1::Projections::Stub::*method)(grpc::ClientContext*,
                                                                    const Request&,
                                                                    v1::ProjectionsChangeResponse*),
                      const Request& request) {
    v1::ProjectionsChangeResponse response;
    grpc::ClientContext context;
    return (projections_.get()->*method)(&context, request, &response);
  }

  grpc::Status Get(const std::string& name, v1::ProjectionInfo* info) {
    v1::GetProjectionRequest request;
    request.set_name(name);
    v1::GetProjectionResponse response;
    grpc::ClientContext context;
    grpc::Status status = projections_->Get(&context, request, &response);
    *info = response.projection();
    return status;
  }

  // The state of a partition as JSON (null when not found).
  Json State(const std::string& name, const std::string& partition) {
    v1::GetProjectionStateRequest request;
    request.set_name(name);
    request.set_partition(partition);
    v1::GetProjectionStateResponse response;
    grpc::ClientContext context;
    grpc::Status status = projections_->GetState(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    if (!response.found()) return nullptr;
    return Json::parse(response.state());
  }

  // Waits until the projection reached the last event of the store (or `status` when given).
  v1::ProjectionInfo WaitFor(const std::string& name, v1::ProjectionStatus status = v1::RUNNING) {
    v1::ProjectionInfo info;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (std::chrono::steady_clock::now() < deadline) {
      grpc::Status got = Get(name, &info);
      EXPECT_TRUE(got.ok()) << got.error_message();
      const bool caught_up = info.has_checkpoint() &&
                             info.checkpoint().revision() == info.head().revision() &&
                             info.checkpoint().index() == info.head().index();
      if (info.status() == status && (status != v1::RUNNING || caught_up)) return info;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ADD_FAILURE() << "projection " << name << " did not reach status " << status << "; it is "
                  << info.DebugString();
    return info;
  }

  std::vector<v1::RecordedEvent> ReadStream(const std::string& stream, grpc::Status* status) {
    v1::ReadStreamRequest request;
    request.set_stream(stream);
    request.set_count(4096);
    v1::ReadStreamResponse response;
    grpc::ClientContext context;
    *status = events_->ReadStream(&context, request, &response);
    return {response.events().begin(), response.events().end()};
  }

  uint64_t next_id_ = 1;
  std::unique_ptr<v1::Events::Stub> events_;
  std::unique_ptr<v1::Projections::Stub> projections_;
};

TEST_F(ProjectionsServiceTest, StateEqualsFoldOverAppendedEvents) {
  ASSERT_TRUE(Create("balances", kBalances).ok());
  ASSERT_TRUE(Create("count", kCounter).ok());
  std::mt19937_64 random(20261123);
  std::map<std::string, std::pair<int64_t, int64_t>> expected;  // stream -> (count, balance)
  for (int i = 0; i < 300; ++i) {
    const std::string stream = "account-" + std::to_string(random() % 6);
    const int64_t amount = static_cast<int64_t>(random() % 500);
    const bool deposit = random() % 3 != 0;
    ASSERT_TRUE(
        Append(stream, deposit ? "Deposited" : "Withdrawn", Json{{"amount", amount}}.dump()).ok());
    auto& [count, balance] = expected[stream];
    ++count;
    balance += deposit ? amount : -amount;
  }
  v1::ProjectionInfo info = WaitFor("balances");
  EXPECT_EQ(info.events_seen(), 300u);
  EXPECT_EQ(info.events_folded(), 300u);
  EXPECT_EQ(info.partitions(), expected.size());
  for (const auto& [stream, want] : expected) {
    EXPECT_EQ(State("balances", stream), (Json{{"count", want.first}, {"balance", want.second}}))
        << stream;
  }
  WaitFor("count");
  EXPECT_EQ(State("count", ""), (Json{{"n", 300}}));
  EXPECT_TRUE(State("balances", "account-none").is_null());

  v1::ListProjectionsResponse list;
  grpc::ClientContext context;
  ASSERT_TRUE(projections_->List(&context, v1::ListProjectionsRequest(), &list).ok());
  ASSERT_EQ(list.projections_size(), 2);
  EXPECT_EQ(list.projections(0).name(), "balances");
  EXPECT_EQ(list.projections(1).name(), "count");
}

TEST_F(ProjectionsServiceTest, BadDefinitionsArePreciseErrors) {
  grpc::Status syntax = Create("bad", "handlers = {\n  X = function(s, e) return s +\nend }");
  EXPECT_EQ(syntax.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(syntax.error_message().find("projections: bad:3:"), std::string::npos)
      << syntax.error_message();
  grpc::Status runaway = Create("loop", "while true do end");
  EXPECT_EQ(runaway.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(runaway.error_message().find("instruction limit exceeded"), std::string::npos);
  grpc::Status name = Create("a/b", kCounter);
  EXPECT_EQ(name.error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  ASSERT_TRUE(Create("count", kCounter).ok());
  grpc::Status twice = Create("count", kCounter);
  EXPECT_EQ(twice.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_EQ(twice.error_message(), "projections: projection 'count' already exists");
  v1::ProjectionInfo info;
  grpc::Status missing = Get("nope", &info);
  EXPECT_EQ(missing.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(missing.error_message(), "projections: projection 'nope' not found");
  v1::ResetProjectionRequest reset;
  reset.set_name("nope");
  EXPECT_EQ(Change(&v1::Projections::Stub::Reset, reset).error_code(), grpc::StatusCode::NOT_FOUND);
  v1::DeleteProjectionRequest del;
  del.set_name("count");
  ASSERT_TRUE(Change(&v1::Projections::Stub::Delete, del).ok());
  EXPECT_EQ(Get("count", &info).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(ProjectionsServiceTest, RunawayHandlerFaultsTheProjectionWhileAppendsKeepWorking) {
  ASSERT_TRUE(Create("fragile", R"lua(
handlers = {
  Ok = function(state, event) state.n = (state.n or 0) + 1 return state end,
  Spin = function(state, event)
    while true do end
  end,
}
)lua")
                  .ok());
  ASSERT_TRUE(Append("s-1", "Ok", "{}").ok());
  ASSERT_TRUE(Append("s-1", "Ok", "{}").ok());
  ASSERT_TRUE(Append("s-1", "Spin", "{}").ok());
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(Append("s-1", "Ok", "{}").ok());
  v1::ProjectionInfo info = WaitFor("fragile", v1::FAULTED);
  EXPECT_EQ(info.fault().stream(), "s-1");
  EXPECT_EQ(info.fault().version(), 2u);
  EXPECT_EQ(info.fault().event_type(), "Spin");
  EXPECT_NE(info.fault().error().find("handler 'Spin': fragile:5: instruction limit exceeded"),
            std::string::npos)
      << info.fault().error();
  EXPECT_EQ(info.events_seen(), 2u);  // the checkpoint is the event before the fault
  EXPECT_EQ(State("fragile", ""), (Json{{"n", 2}}));

  // The server keeps serving: appends and reads work, whole.
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(Append("s-2", "Ok", "{}").ok());
  grpc::Status read;
  EXPECT_EQ(ReadStream("s-1", &read).size(), 8u);
  EXPECT_EQ(ReadStream("s-2", &read).size(), 3u);
  ASSERT_TRUE(read.ok());
  // Still faulted: nothing more was folded.
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  ASSERT_TRUE(Get("fragile", &info).ok());
  EXPECT_EQ(info.status(), v1::FAULTED);
  EXPECT_EQ(State("fragile", ""), (Json{{"n", 2}}));

  // Fixed code: update starts again from the first event.
  v1::UpdateProjectionRequest update;
  update.set_name("fragile");
  update.set_source(R"lua(
handlers = { ["$any"] = function(state, event) state.n = (state.n or 0) + 1 return state end }
)lua");
  ASSERT_TRUE(Change(&v1::Projections::Stub::Update, update).ok());
  info = WaitFor("fragile");
  EXPECT_EQ(State("fragile", ""), (Json{{"n", 11}}));
  EXPECT_FALSE(info.has_fault() && !info.fault().error().empty());
}

TEST_F(ProjectionsServiceTest, StateSurvivesRestartWithoutDoubleCounting) {
  ASSERT_TRUE(Create("count", kCounter).ok());
  for (int i = 0; i < 40; ++i) ASSERT_TRUE(Append("a-" + std::to_string(i % 3), "X", "{}").ok());
  WaitFor("count");
  EXPECT_EQ(State("count", ""), (Json{{"n", 40}}));

  RestartServer();
  for (int i = 0; i < 25; ++i) ASSERT_TRUE(Append("b-1", "Y", "{}").ok());
  v1::ProjectionInfo info = WaitFor("count");
  EXPECT_EQ(State("count", ""), (Json{{"n", 65}}));
  EXPECT_EQ(info.events_seen(), 65u);

  // Stop pauses at the checkpoint; start continues from it.
  v1::StopProjectionRequest stop;
  stop.set_name("count");
  ASSERT_TRUE(Change(&v1::Projections::Stub::Stop, stop).ok());
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(Append("b-1", "Y", "{}").ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  ASSERT_TRUE(Get("count", &info).ok());
  EXPECT_EQ(info.status(), v1::STOPPED);
  EXPECT_EQ(info.events_seen(), 65u);
  RestartServer();
  v1::StartProjectionRequest start;
  start.set_name("count");
  ASSERT_TRUE(Change(&v1::Projections::Stub::Start, start).ok());
  info = WaitFor("count");
  EXPECT_EQ(State("count", ""), (Json{{"n", 75}}));

  // Reset folds again from the first event.
  v1::ResetProjectionRequest reset;
  reset.set_name("count");
  ASSERT_TRUE(Change(&v1::Projections::Stub::Reset, reset).ok());
  info = WaitFor("count");
  EXPECT_EQ(info.events_seen(), 75u);
  EXPECT_EQ(State("count", ""), (Json{{"n", 75}}));
}

TEST_F(ProjectionsServiceTest, UpcasterServesV1EventsInV2Shape) {
  ASSERT_TRUE(Append("order-1", "OrderPlaced", R"({"amount":5})").ok());
  ASSERT_TRUE(Append("order-1", "OrderPlaced", R"({"amount":9})", R"({"source":"web"})").ok());
  ASSERT_TRUE(Append("order-1", "OrderPlaced", R"({"total":{"amount":7,"currency":"EUR"}})",
                     R"({"schema_version":2})")
                  .ok());
  ASSERT_TRUE(Append("order-1", "OrderShipped", R"({"amount":1})").ok());

  v1::SetUpcasterRequest bad;
  bad.set_event_type("OrderPlaced");
  bad.set_from_schema_version(1);
  bad.set_source("function upcast(data, event)\n  return {\nend");
  grpc::Status syntax = Change(&v1::Projections::Stub::SetUpcaster, bad);
  EXPECT_EQ(syntax.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(syntax.error_message().find("OrderPlaced@v1:3:"), std::string::npos)
      << syntax.error_message();

  v1::SetUpcasterRequest set;
  set.set_event_type("OrderPlaced");
  set.set_from_schema_version(1);
  set.set_source(R"lua(
function upcast(data, event)
  return { total = { amount = data.amount, currency = "USD" } }
end
)lua");
  ASSERT_TRUE(Change(&v1::Projections::Stub::SetUpcaster, set).ok());
  grpc::Status read;
  auto events = ReadStream("order-1", &read);
  ASSERT_TRUE(read.ok()) << read.error_message();
  ASSERT_EQ(events.size(), 4u);
  EXPECT_EQ(Json::parse(events[0].data()),
            Json::parse(R"({"total":{"amount":5,"currency":"USD"}})"));
  EXPECT_EQ(Json::parse(events[0].metadata()), Json::parse(R"({"schema_version":2})"));
  EXPECT_EQ(Json::parse(events[1].data()),
            Json::parse(R"({"total":{"amount":9,"currency":"USD"}})"));
  EXPECT_EQ(Json::parse(events[1].metadata()),
            Json::parse(R"({"schema_version":2,"source":"web"})"));
  EXPECT_EQ(Json::parse(events[2].data()),
            Json::parse(R"({"total":{"amount":7,"currency":"EUR"}})"));  // already v2
  EXPECT_EQ(events[3].data(), R"({"amount":1})");                        // another type

  // A chain: v2 -> v3.
  v1::SetUpcasterRequest next;
  next.set_event_type("OrderPlaced");
  next.set_from_schema_version(2);
  next.set_source(
      "function upcast(data, event) return { cents = data.total.amount * 100, currency = "
      "data.total.currency } end");
  ASSERT_TRUE(Change(&v1::Projections::Stub::SetUpcaster, next).ok());
  v1::ReadAllRequest all;
  all.set_count(100);
  v1::ReadAllResponse all_response;
  grpc::ClientContext context;
  ASSERT_TRUE(events_->ReadAll(&context, all, &all_response).ok());
  ASSERT_EQ(all_response.events_size(), 4);
  EXPECT_EQ(Json::parse(all_response.events(0).data()),
            Json::parse(R"({"cents":500,"currency":"USD"})"));
  EXPECT_EQ(Json::parse(all_response.events(2).data()),
            Json::parse(R"({"cents":700,"currency":"EUR"})"));
  EXPECT_EQ(Json::parse(all_response.events(2).metadata())["schema_version"], 3);

  // A failing upcaster fails the read, precisely; deleting it serves v2 again.
  next.set_source("function upcast(data, event) error('no currency table') end");
  ASSERT_TRUE(Change(&v1::Projections::Stub::SetUpcaster, next).ok());
  ReadStream("order-1", &read);
  EXPECT_EQ(read.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(read.error_message().find("upcaster for event type 'OrderPlaced' from schema version "
                                      "2 failed on order-1@0"),
            std::string::npos)
      << read.error_message();
  EXPECT_NE(read.error_message().find("no currency table"), std::string::npos);
  v1::DeleteUpcasterRequest remove;
  remove.set_event_type("OrderPlaced");
  remove.set_from_schema_version(2);
  ASSERT_TRUE(Change(&v1::Projections::Stub::DeleteUpcaster, remove).ok());
  events = ReadStream("order-1", &read);
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(Json::parse(events[0].metadata())["schema_version"], 2);
  EXPECT_EQ(Change(&v1::Projections::Stub::DeleteUpcaster, remove).error_code(),
            grpc::StatusCode::NOT_FOUND);

  v1::ListUpcastersResponse list;
  grpc::ClientContext list_context;
  ASSERT_TRUE(projections_->ListUpcasters(&list_context, v1::ListUpcastersRequest(), &list).ok());
  ASSERT_EQ(list.upcasters_size(), 1);
  EXPECT_EQ(list.upcasters(0).from_schema_version(), 1u);

  // Subscriptions are upcast too.
  v1::SubscribeRequest subscribe;
  subscribe.set_stream("order-1");
  grpc::ClientContext subscribe_context;
  subscribe_context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  auto reader = events_->Subscribe(&subscribe_context, subscribe);
  v1::SubscribeResponse message;
  ASSERT_TRUE(reader->Read(&message));
  ASSERT_TRUE(message.has_event());
  EXPECT_EQ(Json::parse(message.event().data())["total"]["currency"], "USD");
  subscribe_context.TryCancel();
  (void)reader->Finish();
}

}  // namespace
}  // namespace cairn::server
