// Snapshot transfer between real Nodes (WAL, RocksDB engine, applier) wired by an in-process
// router: a follower that missed entries the leader compacted catches up by a snapshot, also
// when its install is stopped at each step (as a crash would) and redone at the next open, and
// a member added after the compaction joins by a snapshot.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

#include "src/env/posix_file_system.h"
#include "src/node/node.h"
#include "src/node/raft_log_format.h"
#include "src/node/snapshot.h"
#include "src/node/snapshot_install.h"

namespace cairn::node {
namespace {

namespace stdfs = std::filesystem;
using namespace std::chrono_literals;

constexpr uint64_t kCheckpointEntries = 40;
constexpr uint64_t kRetentionEntries = 10;

// Delivers messages between the nodes that are up; a kSnapshot delivery is reported back to
// the sender as the gRPC transport does.
class Router {
 public:
  void Attach(uint64_t id, Node* node) {
    std::lock_guard lock(mutex_);
    nodes_[id] = node;
  }
  void Detach(uint64_t id) {
    std::lock_guard lock(mutex_);
    nodes_.erase(id);
  }
  void Send(uint64_t from, std::vector<raft::Message>&& messages) {
    std::lock_guard lock(mutex_);
    auto sender = nodes_.find(from);
    for (raft::Message& message : messages) {
      auto target = nodes_.find(message.to);
      const bool delivered = target != nodes_.end();
      const bool snapshot = message.type == raft::MessageType::kSnapshot;
      const uint64_t to = message.to;
      if (delivered) target->second->Step(std::move(message));
      if (snapshot && sender != nodes_.end()) sender->second->ReportSnapshot(to, !delivered);
    }
  }

 private:
  std::mutex mutex_;
  std::map<uint64_t, Node*> nodes_;  // GUARDED_BY(mutex_)
};

class SnapshotTransferTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = stdfs::temp_directory_path() /
            ("cairn_snapshot_transfer_test_" + std::to_string(::getpid()) + "_" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    stdfs::remove_all(root_);
  }
  void TearDown() override {
    for (auto& [id, node] : nodes_) (void)Stop(id);
    stdfs::remove_all(root_);
  }

  static command::Member MemberWithId(uint64_t id) {
    command::Member member;
    member.set_id(id);
    member.set_name("m" + std::to_string(id));
    return member;
  }

  NodeOptions Options(uint64_t id, bool join_existing = false) {
    NodeOptions options;
    options.data_dir = (root_ / ("m" + std::to_string(id))).string();
    options.member_id = id;
    options.engine.block_cache_bytes = 4 << 20;
    options.tick_ms = 10;
    options.election_ticks = 10;
    options.checkpoint_interval_entries = kCheckpointEntries;
    options.cluster_log_retention_entries = kRetentionEntries;
    options.join_existing = join_existing;
    if (!join_existing) {
      for (uint64_t member : {1, 2, 3}) options.initial_members.push_back(MemberWithId(member));
    }
    options.send = [this, id](std::vector<raft::Message>&& messages) {
      router_.Send(id, std::move(messages));
    };
    return options;
  }

  void Start(NodeOptions options) {
    const uint64_t id = options.member_id;
    auto node = Node::Open(std::move(options));
    ASSERT_TRUE(node.ok()) << node.status().ToString();
    nodes_[id] = std::move(*node);
    router_.Attach(id, nodes_[id].get());
  }

  Status Stop(uint64_t id) {
    router_.Detach(id);
    auto it = nodes_.find(id);
    if (it == nodes_.end() || it->second == nullptr) return Status::Ok();
    Status closed = it->second->Close();
    it->second.reset();
    return closed;
  }

  Node* Leader() {
    for (int attempt = 0; attempt < 500; ++attempt) {
      for (auto& [id, node] : nodes_) {
        if (node && node->IsLeader()) return node.get();
      }
      std::this_thread::sleep_for(10ms);
    }
    return nullptr;
  }

  static Status Put(Node* node, const std::string& key, const std::string& value) {
    command::Command command;
    command.mutable_put()->set_key(key);
    command.mutable_put()->set_value(value);
    std::promise<Status> done;
    node->Propose(std::move(command),
                  [&](const Status& status, command::CommandResult&&) { done.set_value(status); });
    return done.get_future().get();
  }

  // Writes until the leader's log starts after `index` (the follower needs a snapshot).
  void WriteUntilCompactedPast(Node* leader, uint64_t index, int* written) {
    for (int i = 0; i < 2000 && leader->RaftLogFirstIndex() <= index + 1; ++i) {
      const std::string key = "key" + std::to_string((*written)++);
      ASSERT_TRUE(Put(leader, key, "value of " + key).ok());
    }
    ASSERT_GT(leader->RaftLogFirstIndex(), index + 1) << "the leader never compacted its log";
  }

  // Every running node applied the same index and holds the same state, and `node` holds
  // every written key.
  void ExpectConverged(Node* node, int written) {
    Node* leader = Leader();
    ASSERT_NE(leader, nullptr);
    const uint64_t target = leader->AppliedIndex();
    for (auto& [id, other] : nodes_) {
      if (other) {
        ASSERT_TRUE(other->WaitApplied(target, 10000)) << "member " << id;
      }
    }
    // Let the members settle on the same applied index (no writes are running).
    std::this_thread::sleep_for(200ms);
    const uint64_t applied = leader->AppliedIndex();
    for (auto& [id, other] : nodes_) {
      if (!other) continue;
      ASSERT_TRUE(other->WaitApplied(applied, 10000));
      EXPECT_EQ(other->AppliedIndex(), applied) << "member " << id;
      EXPECT_EQ(other->kv()->CurrentRevision(), leader->kv()->CurrentRevision()) << id;
      auto hash = HashState(other->engine());
      auto leader_hash = HashState(leader->engine());
      ASSERT_TRUE(hash.ok() && leader_hash.ok());
      EXPECT_EQ(*hash, *leader_hash) << "member " << id;
    }
    for (int i = 0; i < written; ++i) {
      etcdserverpb::RangeRequest get;
      get.set_key("key" + std::to_string(i));
      etcdserverpb::RangeResponse got;
      ASSERT_TRUE(node->kv()->Range(get, &got).ok());
      ASSERT_EQ(got.kvs_size(), 1) << get.key();
      EXPECT_EQ(got.kvs(0).value(), "value of " + get.key());
    }
  }

  stdfs::path root_;
  Router router_;
  std::map<uint64_t, std::unique_ptr<Node>> nodes_;
};

TEST_F(SnapshotTransferTest, LaggingFollowerCatchesUpBySnapshot) {
  for (uint64_t id : {1, 2, 3}) Start(Options(id));
  Node* leader = Leader();
  ASSERT_NE(leader, nullptr);
  int written = 0;
  for (; written < 5; ++written) {
    ASSERT_TRUE(
        Put(leader, "key" + std::to_string(written), "value of key" + std::to_string(written))
            .ok());
  }
  const uint64_t lagging = leader->member_id() == 3 ? 2 : 3;
  ASSERT_TRUE(nodes_[lagging]->WaitApplied(leader->AppliedIndex(), 5000));
  const uint64_t lagging_applied = nodes_[lagging]->AppliedIndex();
  ASSERT_TRUE(Stop(lagging).ok());
  WriteUntilCompactedPast(leader, lagging_applied, &written);

  Start(Options(lagging));
  Node* follower = nodes_[lagging].get();
  ExpectConverged(follower, written);
  EXPECT_GE(follower->GetSnapshotStats().installed, 1u);
  EXPECT_GT(follower->GetSnapshotStats().last_installed_index, lagging_applied);
  EXPECT_GE(leader->GetSnapshotStats().produced, 1u);
  EXPECT_GE(leader->GetSnapshotStats().sent, 1u);
  EXPECT_EQ(follower->membership()->List().size(), 3u);

  // The log continues after the snapshot, also across a restart of the follower.
  for (int i = 0; i < 5; ++i, ++written) {
    ASSERT_TRUE(
        Put(leader, "key" + std::to_string(written), "value of key" + std::to_string(written))
            .ok());
  }
  ExpectConverged(follower, written);
  ASSERT_TRUE(Stop(lagging).ok());
  Start(Options(lagging));
  ExpectConverged(nodes_[lagging].get(), written);
}

// The install is stopped after each step, as a crash there would stop it; the next open must
// finish it (or, before the marker, keep the old state) and the member must converge.
TEST_F(SnapshotTransferTest, InstallStoppedAtEachStepIsFinishedAtOpen) {
  for (uint64_t id : {1, 2, 3}) Start(Options(id));
  Node* leader = Leader();
  ASSERT_NE(leader, nullptr);
  const uint64_t lagging = leader->member_id() == 3 ? 2 : 3;
  int written = 0;
  for (int stop_after = 2; stop_after <= 5; ++stop_after) {
    SCOPED_TRACE("install stopped after step " + std::to_string(stop_after));
    leader = Leader();
    ASSERT_NE(leader, nullptr);
    ASSERT_TRUE(nodes_[lagging]->WaitApplied(leader->AppliedIndex(), 5000));
    const uint64_t lagging_applied = nodes_[lagging]->AppliedIndex();
    ASSERT_TRUE(Stop(lagging).ok());
    WriteUntilCompactedPast(leader, lagging_applied, &written);

    NodeOptions options = Options(lagging);
    auto stopped = std::make_shared<std::atomic<bool>>(false);
    options.snapshot_install_test_hook = [stopped, stop_after](int step) {
      if (step != stop_after) return true;
      stopped->store(true);
      return false;
    };
    Start(std::move(options));
    for (int i = 0; i < 1000 && !stopped->load(); ++i) std::this_thread::sleep_for(10ms);
    ASSERT_TRUE(stopped->load()) << "no snapshot install reached the step";
    std::this_thread::sleep_for(50ms);
    EXPECT_TRUE(nodes_[lagging]->Failed());
    EXPECT_FALSE(Stop(lagging).ok());  // the node failed at the stop

    const std::string data_dir = Options(lagging).data_dir;
    auto marker = ReadInstallMarkerFile(env::PosixFileSystem::Default(), data_dir + "/raft");
    ASSERT_TRUE(marker.ok());
    EXPECT_EQ(marker->has_value(), stop_after < 5) << "the marker lives from step 2 to 5";

    Start(Options(lagging));
    Node* follower = nodes_[lagging].get();
    EXPECT_EQ(follower->GetSnapshotStats().installed, stop_after < 5 ? 1u : 0u);
    EXPECT_FALSE(stdfs::exists(IncomingSnapshotPath(data_dir)));
    ExpectConverged(follower, written);
  }
}

TEST_F(SnapshotTransferTest, MemberAddedAfterCompactionJoinsBySnapshot) {
  for (uint64_t id : {1, 2, 3}) Start(Options(id));
  Node* leader = Leader();
  ASSERT_NE(leader, nullptr);
  int written = 0;
  WriteUntilCompactedPast(leader, 3, &written);

  std::promise<Status> added;
  leader->ProposeConfigChange(
      raft::ConfigChangeType::kAddVoter, MemberWithId(4),
      [&](const Status& status, std::vector<command::Member>&&) { added.set_value(status); });
  ASSERT_TRUE(added.get_future().get().ok());
  Start(Options(4, /*join_existing=*/true));
  Node* joined = nodes_[4].get();
  ExpectConverged(joined, written);
  EXPECT_GE(joined->GetSnapshotStats().installed, 1u);
  EXPECT_EQ(joined->membership()->List().size(), 4u);
  EXPECT_EQ(joined->membership()->Config().voters, (std::vector<uint64_t>{1, 2, 3, 4}));
  // The new member keeps up with what follows.
  ASSERT_TRUE(Put(leader, "after-join", "v").ok());
  ASSERT_TRUE(joined->WaitApplied(leader->AppliedIndex(), 5000));
}

// A snapshot staged but never marked (a crash between steps 1 and 2) is dropped at open: the
// old state stands.
TEST_F(SnapshotTransferTest, StagedSnapshotWithoutMarkerIsDropped) {
  Start(Options(1));
  ASSERT_TRUE(Stop(1).ok());
  const std::string data_dir = Options(1).data_dir;
  stdfs::create_directories(SnapshotDir(data_dir));
  { std::ofstream(IncomingSnapshotPath(data_dir)) << "partial"; }
  Start(Options(1));
  EXPECT_FALSE(stdfs::exists(IncomingSnapshotPath(data_dir)));
  EXPECT_EQ(nodes_[1]->GetSnapshotStats().installed, 0u);
}

}  // namespace
}  // namespace cairn::node
