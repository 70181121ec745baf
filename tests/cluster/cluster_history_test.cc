// Cluster history tests: real cairnd clusters on loopback (ClusterHarness) under process
// faults — SIGKILL of the leader, of a follower, of every member, of two of five; SIGSTOP of
// the leader past the election timeout; leader transfer; a member added and another removed —
// while concurrent clients run Put, linearizable Range, compare-and-swap Txn and DeleteRange on
// a few keys. Every request is recorded (tests/checker) and the whole history must be
// linearizable; after healing every member must hold the same HashKV at a common revision, and
// the cluster must have taken writes again after the fault (history_workload.h).
//
// The cairnd binary: $CAIRN_CAIRND, else the path CMake compiled in. CAIRN_CLUSTER_SEED fixes
// the clients' random choices (printed by every test); fault timing is wall-clock, so a seed
// makes a failure likely, not certain, to recur. A failing test keeps its directory (member
// logs, data directories, the history file for `history_check`) and names it.
#include <gtest/gtest.h>

#include <optional>
#include <string>

#include "etcdserverpb/rpc.grpc.pb.h"
#include "tests/cluster/history_workload.h"

namespace cairn::cluster_test {
namespace {

class ClusterHistoryTest : public HistoryClusterTest {};

TEST_F(ClusterHistoryTest, KillLeaderAndRestart) {
  const int leader = StartCluster(3);
  ASSERT_GE(leader, 0);
  StartLoad();
  SleepMs(1000);
  cluster().Kill(leader);
  ASSERT_GE(WaitForLeader(), 0);
  SleepMs(1000);
  Restart(leader);
  Healed();
  SleepMs(2000);
  Verify();
}

TEST_F(ClusterHistoryTest, KillFollowerAndRestart) {
  const int leader = StartCluster(3);
  ASSERT_GE(leader, 0);
  StartLoad();
  SleepMs(1000);
  const int follower = (leader + 1) % 3;
  cluster().Kill(follower);
  SleepMs(1500);
  Restart(follower);
  Healed();
  SleepMs(2000);
  Verify();
}

// The stopped leader wakes up believing it leads: it must not serve a read from its stale
// state, and its clients' requests must not be acknowledged from the old term. Two clients
// pinned to it queue requests in its socket just before it wakes, so those are the first it
// handles.
TEST_F(ClusterHistoryTest, StopLeaderPastElectionTimeout) {
  const int leader = StartCluster(3);
  ASSERT_GE(leader, 0);
  StartLoad();
  SleepMs(1000);
  cluster().Stop(leader);
  SleepMs(1500);
  StartPinnedClient(leader);
  StartPinnedClient(leader);
  SleepMs(500);
  cluster().Continue(leader);
  Healed();
  SleepMs(2500);
  Verify();
}

TEST_F(ClusterHistoryTest, KillAllAndRestart) {
  ASSERT_GE(StartCluster(3), 0);
  StartLoad();
  SleepMs(1500);
  for (int i = 0; i < 3; ++i) cluster().Kill(i);
  SleepMs(300);
  for (int i = 0; i < 3; ++i) Restart(i);
  ASSERT_GE(WaitForLeader(), 0);
  Healed();
  SleepMs(2000);
  Verify();
}

TEST_F(ClusterHistoryTest, MoveLeaderUnderLoad) {
  int leader = StartCluster(3);
  ASSERT_GE(leader, 0);
  StartLoad();
  SleepMs(1000);
  for (int transfer = 0; transfer < 2; ++transfer) {
    const int target = (leader + 1) % 3;
    const std::optional<uint64_t> target_id = cluster().MemberId(target);
    ASSERT_TRUE(target_id.has_value()) << "m" << target << " does not answer Status";
    auto stub = etcdserverpb::Maintenance::NewStub(cluster().Channel(leader));
    grpc::ClientContext context;
    context.set_deadline(DeadlineIn(5000));
    etcdserverpb::MoveLeaderRequest request;
    request.set_targetid(*target_id);
    etcdserverpb::MoveLeaderResponse response;
    const grpc::Status status = stub->MoveLeader(&context, request, &response);
    ASSERT_TRUE(status.ok()) << "MoveLeader m" << leader << " -> m" << target << ": "
                             << status.error_message();
    leader = WaitForLeaderToBe(target);
    EXPECT_EQ(leader, target) << "MoveLeader answered OK but m" << leader << " leads";
    ASSERT_GE(leader, 0);
    SleepMs(1000);
  }
  Healed();
  SleepMs(1000);
  Verify();
}

TEST_F(ClusterHistoryTest, FiveMembersKillTwoAndRestart) {
  const int leader = StartCluster(5);
  ASSERT_GE(leader, 0);
  StartLoad();
  SleepMs(1000);
  const int follower = (leader + 2) % 5;
  cluster().Kill(leader);
  cluster().Kill(follower);
  ASSERT_GE(WaitForLeader(), 0);
  SleepMs(1500);
  Restart(leader);
  Restart(follower);
  Healed();
  SleepMs(2000);
  Verify();
}

// Membership under load: a fourth member joins (MemberAdd, then it starts with
// --initial-cluster-state existing and catches up while clients write), then the leader is
// removed and the three left elect, serve, and agree. Clients rotate over every slot, so the
// new member serves requests once it runs and the removed one stops getting them.
TEST_F(ClusterHistoryTest, AddMemberAndRemoveLeaderUnderLoad) {
  ClusterOptions options = Options(3);
  options.spare_members = 1;
  const int leader = StartCluster(options);
  ASSERT_GE(leader, 0);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(cluster().MemberId(i).has_value()) << "m" << i;
  StartLoad();
  SleepMs(1000);
  std::string error;
  ASSERT_TRUE(cluster().AddMember(3, &error)) << error;
  SleepMs(1500);
  ASSERT_TRUE(cluster().RemoveMember(leader, &error)) << error;
  const int new_leader = WaitForLeader();
  ASSERT_GE(new_leader, 0);
  EXPECT_NE(new_leader, leader);
  Healed();
  SleepMs(2000);
  Verify();
}

}  // namespace
}  // namespace cairn::cluster_test
