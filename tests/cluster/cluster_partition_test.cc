// Cluster partition tests: real cairnd members, each in its own network namespace
// (NetworkNamespaces), whose peer network is split and healed while concurrent clients in the
// test's namespace run Put, linearizable Range, compare-and-swap Txn and DeleteRange through
// every member (every member's client port stays reachable during a partition, so requests to
// a cut-off member are sent and fail or hang: reads are recorded as failed, writes as
// indeterminate). The whole history must be linearizable, no acknowledged write may be lost,
// and after healing every member must hold the same HashKV at a common revision
// (history_workload.h).
//
// Scenarios: the leader cut off past the election timeout, then healed (with clients pinned to
// it, a read through it while cut off, and a read through it right after the heal, which must
// not be stale); a follower cut off and healed; five members split 2/3 with the leader in the
// minority, then healed.
//
// Needs root and `ip netns` (CI runs as root); skipped otherwise. Namespaces and bridges carry
// this process's pid and are deleted when the test ends, and leftovers of dead test processes
// are deleted when the next one starts.
#include <gtest/gtest.h>

#include <chrono>
#include <iostream>
#include <string>
#include <vector>

#include "tests/cluster/history_workload.h"
#include "tests/cluster/network_namespaces.h"

namespace cairn::cluster_test {
namespace {

// Long enough past the 500 ms election timeout that the majority elects and serves, and the
// cut-off leader's check-quorum notices it lost its followers.
constexpr int kPartitionMs = 2500;
// The first answer of a cut-off member after the heal may come only after TCP retransmission
// backoff reconnects the peers.
constexpr int kReadAfterHealWaitMs = 10'000;
constexpr int kReadRetryPauseMs = 10;
// A key the workload does not touch: written once through the majority during the partition
// and read through the cut-off member after it.
constexpr char kFenceKey[] = "fence";

class ClusterPartitionTest : public HistoryClusterTest {
 protected:
  void SetUp() override {
    HistoryClusterTest::SetUp();
    std::string why;
    if (!NetworkNamespaces::Available(&why)) GTEST_SKIP() << "no network namespaces: " << why;
  }

  int StartPartitionableCluster(int members) {
    ClusterOptions options = Options(members);
    options.network_namespaces = true;
    return StartCluster(options);
  }

  void Partition(const std::vector<std::vector<int>>& sides) {
    std::string error;
    ASSERT_TRUE(cluster().Partition(sides, &error)) << error;
  }

  void Heal() {
    std::string error;
    ASSERT_TRUE(cluster().Heal(&error)) << error;
    Healed();
  }

  // Polls until a member other than `old_leader` leads (the highest term wins); -1 on timeout.
  int WaitForNewLeader(int old_leader) {
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::milliseconds(kLeaderWaitMs);
    while (std::chrono::steady_clock::now() < deadline) {
      const int leader = cluster().LeaderIndex();
      if (leader >= 0 && leader != old_leader) return leader;
      SleepMs(50);
    }
    ADD_FAILURE() << "no leader other than m" << old_leader << " within " << kLeaderWaitMs
                  << " ms:\n"
                  << cluster().DescribeMembers();
    return -1;
  }

  // Writes a fresh value of the fence key through `member` (retrying while the majority
  // settles); returns it.
  std::string WriteFence(int member) {
    std::string value;
    for (int attempt = 0; attempt < 20; ++attempt) {
      if (RecordedPut(member, kFenceKey, &value)) return value;
      SleepMs(100);
    }
    ADD_FAILURE() << "no fence write acknowledged through m" << member << ":\n"
                  << cluster().DescribeMembers();
    return "";
  }

  // A linearizable read through a member cut off from the majority after the majority
  // acknowledged `fence`: it cannot confirm it is up to date, so it must fail; if it answers,
  // it must not be stale.
  void ExpectNoStaleReadWhileCutOff(int member, const std::string& fence) {
    std::string value;
    if (RecordedRead(member, kFenceKey, &value)) {
      EXPECT_EQ(value, fence) << "m" << member
                              << " served a stale linearizable read while cut off from the "
                                 "majority that wrote the fence";
    }
  }

  // Right after the heal: linearizable reads through `member` until one answers; the first
  // answer must hold the fence written during the partition.
  void ExpectFreshReadAfterHeal(int member, const std::string& fence) {
    const auto start = std::chrono::steady_clock::now();
    const auto deadline = start + std::chrono::milliseconds(kReadAfterHealWaitMs);
    std::string value;
    int attempts = 0;
    while (std::chrono::steady_clock::now() < deadline) {
      ++attempts;
      if (RecordedRead(member, kFenceKey, &value)) {
        EXPECT_EQ(value, fence) << "m" << member
                                << ": the first linearizable read after the heal is stale";
        std::cout << "read through m" << member << " after the heal answered on attempt "
                  << attempts << ", "
                  << std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::steady_clock::now() - start)
                         .count()
                  << " ms after the heal\n";
        return;
      }
      SleepMs(kReadRetryPauseMs);
    }
    ADD_FAILURE() << "m" << member << " served no linearizable read within " << kReadAfterHealWaitMs
                  << " ms of the heal:\n"
                  << cluster().DescribeMembers();
  }
};

// The leader is cut off from both followers for longer than the election timeout: the
// followers elect, the old leader (still reachable by its clients, two of them pinned to it)
// must neither acknowledge writes nor serve linearizable reads from its old term, and after
// the heal it must rejoin as a follower without losing or resurrecting anything.
TEST_F(ClusterPartitionTest, IsolateLeaderThenHeal) {
  const int leader = StartPartitionableCluster(3);
  ASSERT_GE(leader, 0);
  StartLoad();
  SleepMs(1000);
  Partition({{}, {leader}});  // The followers stay on bridge 0, the leader alone on bridge 1.
  StartPinnedClient(leader);
  StartPinnedClient(leader);
  const int new_leader = WaitForNewLeader(leader);
  ASSERT_GE(new_leader, 0);
  const std::string fence = WriteFence(new_leader);
  ExpectNoStaleReadWhileCutOff(leader, fence);
  SleepMs(kPartitionMs);
  Heal();
  ExpectFreshReadAfterHeal(leader, fence);
  SleepMs(2500);
  Verify();
}

// A follower is cut off and healed: the majority keeps serving, the follower's own clients
// fail (or wait) instead of reading stale data, and it catches up after the heal.
TEST_F(ClusterPartitionTest, IsolateFollowerThenHeal) {
  const int leader = StartPartitionableCluster(3);
  ASSERT_GE(leader, 0);
  StartLoad();
  SleepMs(1000);
  const int follower = (leader + 1) % 3;
  Partition({{}, {follower}});
  StartPinnedClient(follower);
  SleepMs(500);
  const std::string fence = WriteFence(leader);
  ExpectNoStaleReadWhileCutOff(follower, fence);
  SleepMs(kPartitionMs);
  Heal();
  ExpectFreshReadAfterHeal(follower, fence);
  SleepMs(2500);
  Verify();
}

// Five members split 2/3 with the leader on the minority side: the three elect and serve, the
// two (the old leader among them) must not acknowledge anything, and after the heal all five
// agree.
TEST_F(ClusterPartitionTest, FiveMembersSplitTwoThreeThenHeal) {
  const int leader = StartPartitionableCluster(5);
  ASSERT_GE(leader, 0);
  StartLoad();
  SleepMs(1000);
  const int minority_follower = (leader + 1) % 5;
  Partition({{}, {leader, minority_follower}});
  StartPinnedClient(leader);
  StartPinnedClient(minority_follower);
  const int new_leader = WaitForNewLeader(leader);
  ASSERT_GE(new_leader, 0);
  EXPECT_NE(new_leader, minority_follower) << "the minority side elected a leader";
  const std::string fence = WriteFence(new_leader);
  ExpectNoStaleReadWhileCutOff(leader, fence);
  ExpectNoStaleReadWhileCutOff(minority_follower, fence);
  SleepMs(kPartitionMs);
  Heal();
  ExpectFreshReadAfterHeal(leader, fence);
  SleepMs(2500);
  Verify();
}

}  // namespace
}  // namespace cairn::cluster_test
