// Persistent subscriptions in a 3-member cluster of real cairnd processes: a group is served by
// the leader only (a follower answers UNAVAILABLE), and when the leader is killed with SIGKILL
// the new leader continues from the replicated progress: what was acked is not delivered
// again, everything else is (at least once).
#include <gtest/gtest.h>

#include <chrono>
#include <set>
#include <string>
#include <thread>

#include "cairn/events.grpc.pb.h"
#include "cairn/persistent.grpc.pb.h"
#include "tests/cluster/history_workload.h"

namespace cairn::cluster_test {
namespace {

namespace v1 = events::v1;

std::string Uuid(uint64_t n) {
  char text[37];
  std::snprintf(text, sizeof(text), "00000000-0000-4000-8000-%012llu",
                static_cast<unsigned long long>(n));
  return text;
}

std::unique_ptr<grpc::ClientContext> Context(int seconds) {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
  return context;
}

class ClusterPersistentTest : public HistoryClusterTest {
 protected:
  // Appends `count` events to "job-<n>" streams (category "job") through member `member`.
  void Append(int member, uint64_t first_id, int count) {
    auto events = v1::Events::NewStub(cluster().Channel(member));
    for (int i = 0; i < count; ++i) {
      v1::AppendRequest req;
      req.set_stream("job-" + std::to_string(i % 7));
      v1::NewEvent* event = req.add_events();
      event->set_id(Uuid(first_id + i));
      event->set_type("Work");
      v1::AppendResponse resp;
      grpc::Status status = events->Append(Context(10).get(), req, &resp);
      ASSERT_TRUE(status.ok()) << status.error_message();
    }
  }

  // A consumer on `member`: joins, then reads events (acking each) until `stop` says so.
  // Returns the call's status; `got` receives (link version, id) in delivery order.
  grpc::Status Consume(int member, const std::function<bool()>& stop,
                       std::vector<std::pair<uint64_t, std::string>>* got) {
    auto persistent = v1::PersistentSubscriptions::NewStub(cluster().Channel(member));
    auto context = Context(30);
    auto stream = persistent->Read(context.get());
    v1::PersistentReadRequest join;
    join.mutable_options()->set_source("$ce-job");
    join.mutable_options()->set_group("workers");
    join.mutable_options()->set_buffer_size(50);
    stream->Write(join);
    v1::PersistentReadResponse message;
    while (!stop() && stream->Read(&message)) {
      if (!message.has_event()) continue;
      const v1::RecordedEvent& event = message.event().event();
      got->emplace_back(event.link_version(), event.id());
      v1::PersistentReadRequest ack;
      ack.mutable_ack()->add_ids(event.id());
      stream->Write(ack);
    }
    if (stop()) {
      stream->WritesDone();
      while (stream->Read(&message)) {
      }
    }
    return stream->Finish();
  }

  std::optional<uint64_t> Checkpoint(int member) {
    auto persistent = v1::PersistentSubscriptions::NewStub(cluster().Channel(member));
    v1::GetPersistentSubscriptionRequest req;
    req.set_source("$ce-job");
    req.set_group("workers");
    v1::GetPersistentSubscriptionResponse resp;
    if (!persistent->Get(Context(5).get(), req, &resp).ok()) return std::nullopt;
    if (!resp.info().has_checkpoint()) return std::nullopt;
    return resp.info().checkpoint().version();
  }
};

TEST_F(ClusterPersistentTest, FollowersRefuseAndANewLeaderContinuesFromReplicatedProgress) {
  constexpr int kEvents = 300;
  const int leader = StartCluster(3);
  ASSERT_GE(leader, 0);
  {
    auto persistent = v1::PersistentSubscriptions::NewStub(cluster().Channel(leader));
    v1::CreatePersistentSubscriptionRequest create;
    create.set_source("$ce-job");
    create.set_group("workers");
    v1::CreatePersistentSubscriptionResponse created;
    grpc::Status status = persistent->Create(Context(10).get(), create, &created);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }
  Append(leader, 1, kEvents);

  // A follower does not serve the group.
  const int follower = (leader + 1) % 3;
  std::vector<std::pair<uint64_t, std::string>> got;
  grpc::Status refused = Consume(
      follower, [] { return false; }, &got);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_NE(refused.error_message().find("served by the leader"), std::string::npos)
      << refused.error_message();
  EXPECT_TRUE(got.empty());

  // The leader serves 100 events, acked; the acks are replicated (the checkpoint shows it).
  grpc::Status first = Consume(
      leader, [&] { return got.size() == 100; }, &got);
  EXPECT_TRUE(first.ok()) << first.error_message();
  ASSERT_EQ(got.size(), 100u);
  std::optional<uint64_t> checkpoint;
  for (int i = 0; i < 500 && checkpoint != uint64_t{99}; ++i) {
    checkpoint = Checkpoint(leader);
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_EQ(checkpoint, uint64_t{99});

  // SIGKILL the leader; the new leader continues at link 100 and delivers the rest.
  cluster().Kill(leader);
  const int next = WaitForLeader();
  ASSERT_GE(next, 0);
  ASSERT_NE(next, leader);
  std::vector<std::pair<uint64_t, std::string>> rest;
  grpc::Status second = Consume(
      next, [&] { return rest.size() == static_cast<size_t>(kEvents - 100); }, &rest);
  EXPECT_TRUE(second.ok()) << second.error_message();
  ASSERT_EQ(rest.size(), static_cast<size_t>(kEvents - 100));
  EXPECT_EQ(rest.front().first, 100u);
  std::set<std::string> ids;
  for (const auto& [link, id] : got) ids.insert(id);
  for (const auto& [link, id] : rest) ids.insert(id);
  EXPECT_EQ(ids.size(), static_cast<size_t>(kEvents)) << "every event exactly once here";
  Restart(leader);
}

}  // namespace
}  // namespace cairn::cluster_test
