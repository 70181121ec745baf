// Snapshot transfer between real cairnd processes. The members checkpoint every 200 applied
// entries and keep only 50 entries below it (--snapshot-count, --snapshot-catchup-entries), so
// a follower that misses a few thousand writes, or a member added afterwards, can only catch
// up by a snapshot of the leader's state. Each scenario checks that a snapshot was installed
// (the member's log says so), that the member ends with the same HashKV as the others at a
// common revision, and that every acknowledged write is readable from it (serializable Range,
// i.e. its own state). A follower is also killed (SIGKILL) while it installs a snapshot and
// must recover.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>

#include "etcdserverpb/rpc.grpc.pb.h"
#include "tests/cluster/history_workload.h"

namespace cairn::cluster_test {
namespace {

using namespace std::chrono_literals;

constexpr char kInstalledLine[] = "installed the snapshot at index";
constexpr char kInstallingLine[] = "installing the snapshot at index";

std::unique_ptr<grpc::ClientContext> Context(int seconds) {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
  return context;
}

class ClusterSnapshotTest : public HistoryClusterTest {
 protected:
  ClusterOptions SnapshotOptions() const {
    ClusterOptions options = Options(3);
    options.spare_members = 1;
    options.extra_flags = {"--snapshot-count", "200", "--snapshot-catchup-entries", "50"};
    return options;
  }

  std::string MemberLog(int member) const {
    std::ifstream in(cluster_dir_ + "/m" + std::to_string(member) + ".log");
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }
  int CountInLog(int member, const std::string& needle) const {
    const std::string log = MemberLog(member);
    int count = 0;
    for (size_t at = log.find(needle); at != std::string::npos; at = log.find(needle, at + 1)) {
      ++count;
    }
    return count;
  }

  // Puts `count` keys through the leader (found again after an error); every acknowledged one
  // goes into acknowledged_.
  void Write(int count) {
    const std::string padding(512, 'p');
    for (int i = 0; i < count; ++i) {
      const std::string key = "key" + std::to_string(next_key_++);
      const std::string value = "value of " + key + padding;
      bool acknowledged = false;
      for (int attempt = 0; attempt < 20 && !acknowledged; ++attempt) {
        const int leader = cluster().WaitForLeader(10000);
        ASSERT_GE(leader, 0) << cluster().DescribeMembers();
        auto kv = etcdserverpb::KV::NewStub(cluster().Channel(leader));
        etcdserverpb::PutRequest put;
        put.set_key(key);
        put.set_value(value);
        etcdserverpb::PutResponse response;
        acknowledged = kv->Put(Context(10).get(), put, &response).ok();
        if (!acknowledged) std::this_thread::sleep_for(100ms);
      }
      ASSERT_TRUE(acknowledged) << key;
      acknowledged_[key] = value;
    }
  }

  // The member converged with the others and serves every acknowledged write from its state.
  void ExpectCaughtUp(int member) {
    std::string error;
    ASSERT_TRUE(cluster().WaitConverged(60000, &error)) << error << cluster().DescribeMembers();
    std::map<int, MemberHash> hashes;
    ASSERT_TRUE(cluster().HashKvAll(&hashes, &error)) << error;
    ASSERT_TRUE(hashes.contains(member));
    for (const auto& [other, hash] : hashes) {
      EXPECT_EQ(hash, hashes[member]) << "member " << other << " differs from " << member;
    }
    auto kv = etcdserverpb::KV::NewStub(cluster().Channel(member));
    for (const auto& [key, value] : acknowledged_) {
      etcdserverpb::RangeRequest get;
      get.set_key(key);
      get.set_serializable(true);
      etcdserverpb::RangeResponse got;
      grpc::Status status = kv->Range(Context(10).get(), get, &got);
      ASSERT_TRUE(status.ok()) << status.error_message();
      ASSERT_EQ(got.kvs_size(), 1) << key << " is missing on member " << member;
      ASSERT_EQ(got.kvs(0).value(), value) << key;
    }
  }

  int StartSnapshotCluster() {
    ClusterOptions options = SnapshotOptions();
    cluster_dir_ = options.dir;
    return StartCluster(options);
  }

  std::string cluster_dir_;
  int next_key_ = 0;
  std::map<std::string, std::string> acknowledged_;
};

TEST_F(ClusterSnapshotTest, KilledFollowerCatchesUpBySnapshotAlsoWhenKilledDuringTheInstall) {
  const int leader = StartSnapshotCluster();
  ASSERT_GE(leader, 0);
  const int follower = (leader + 1) % 3;
  Write(20);
  cluster().Kill(follower);
  Write(1500);  // the leader checkpoints and compacts its log far past the follower

  Restart(follower);
  ExpectCaughtUp(follower);
  EXPECT_GE(CountInLog(follower, kInstalledLine), 1) << MemberLog(follower);

  // Again, and this time kill -9 the follower in the middle of the install: cairnd's test hook
  // pauses it after the engine holds the snapshot and before the log was reset.
  cluster().Kill(follower);
  Write(1500);
  const int installs_before = CountInLog(follower, kInstallingLine);
  ASSERT_EQ(setenv("CAIRN_TEST_SNAPSHOT_INSTALL_PAUSE_MS", "5000", 1), 0);
  Restart(follower);
  ASSERT_EQ(unsetenv("CAIRN_TEST_SNAPSHOT_INSTALL_PAUSE_MS"), 0);
  for (int i = 0; i < 2000 && CountInLog(follower, kInstallingLine) == installs_before; ++i) {
    std::this_thread::sleep_for(10ms);
  }
  ASSERT_GT(CountInLog(follower, kInstallingLine), installs_before) << MemberLog(follower);
  std::this_thread::sleep_for(1500ms);  // inside the 5 s pause after step 3
  const std::string marker =
      cluster_dir_ + "/m" + std::to_string(follower) + "/raft/snapshot_install";
  ASSERT_TRUE(std::filesystem::exists(marker)) << MemberLog(follower);
  cluster().Kill(follower);
  ASSERT_TRUE(std::filesystem::exists(marker));
  Write(10);
  Restart(follower);  // without the pause
  ExpectCaughtUp(follower);
  EXPECT_NE(MemberLog(follower).find("that a crash interrupted"), std::string::npos)
      << MemberLog(follower);
  EXPECT_FALSE(std::filesystem::exists(marker));
}

TEST_F(ClusterSnapshotTest, MemberAddedAfterCompactionJoinsBySnapshot) {
  ASSERT_GE(StartSnapshotCluster(), 0);
  Write(1500);
  std::string error;
  const int added = 3;  // the spare member
  ASSERT_TRUE(cluster().AddMember(added, &error)) << error;
  Write(10);
  ExpectCaughtUp(added);
  EXPECT_GE(CountInLog(added, kInstalledLine), 1) << MemberLog(added);
}

}  // namespace
}  // namespace cairn::cluster_test
