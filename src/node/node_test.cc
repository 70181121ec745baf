#include "src/node/node.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <future>

#include "src/env/fault_injection_file_system.h"

namespace cairn::node {
namespace {

namespace fs = std::filesystem;

class NodeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("cairn_node_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  Result<std::unique_ptr<Node>> OpenNode(uint64_t checkpoint_entries = 0) {
    NodeOptions options;
    options.data_dir = dir_.string();
    options.engine.block_cache_bytes = 8 << 20;
    options.checkpoint_interval_entries = checkpoint_entries;
    return Node::Open(std::move(options));
  }

  static std::pair<Status, command::CommandResult> ProposeAndWait(Node* node,
                                                                  command::Command command) {
    std::promise<std::pair<Status, command::CommandResult>> promise;
    node->Propose(std::move(command), [&](const Status& s, command::CommandResult&& r) {
      promise.set_value({s, std::move(r)});
    });
    return promise.get_future().get();
  }

  static command::Command PutCommand(const std::string& key, const std::string& value) {
    command::Command command;
    command.mutable_put()->set_key(key);
    command.mutable_put()->set_value(value);
    return command;
  }

  fs::path dir_;
};

TEST_F(NodeTest, ProposalsApplyInOrderAndAdvanceAppliedIndex) {
  auto node = OpenNode();
  ASSERT_TRUE(node.ok()) << node.status().ToString();
  for (int i = 0; i < 10; ++i) {
    auto [status, result] = ProposeAndWait(node->get(), PutCommand("k", std::to_string(i)));
    ASSERT_TRUE(status.ok()) << status.ToString();
    EXPECT_EQ(result.put().header().revision(), 2 + i);
  }
  EXPECT_EQ((*node)->AppliedIndex(), 10u);
}

TEST_F(NodeTest, FailedCommandOccupiesAnIndexAndChangesNothing) {
  auto node = OpenNode();
  ASSERT_TRUE(node.ok());
  command::Command bad;
  bad.mutable_put()->set_key("missing");
  bad.mutable_put()->set_ignore_value(true);
  auto [status, result] = ProposeAndWait(node->get(), bad);
  EXPECT_EQ(status.message(), "etcdserver: key not found");
  EXPECT_EQ((*node)->AppliedIndex(), 1u);
  EXPECT_EQ((*node)->kv()->CurrentRevision(), 1);
}

TEST_F(NodeTest, ReopenReplaysTheLogAfterTheAppliedIndex) {
  {
    auto node = OpenNode();
    ASSERT_TRUE(node.ok());
    for (int i = 0; i < 50; ++i) {
      ASSERT_TRUE(ProposeAndWait(node->get(), PutCommand("k" + std::to_string(i), "v")).first.ok());
    }
    // Close flushes the engine (checkpoints disabled keep the log whole).
    ASSERT_TRUE((*node)->Close().ok());
  }
  // Throw the engine away: the log alone must rebuild the same state.
  fs::remove_all(dir_ / "state");
  auto node = OpenNode();
  ASSERT_TRUE(node.ok()) << node.status().ToString();
  EXPECT_EQ((*node)->AppliedIndex(), 50u);
  EXPECT_EQ((*node)->kv()->CurrentRevision(), 51);
}

TEST_F(NodeTest, StateAheadOfTheLogRefusesToOpen) {
  {
    auto node = OpenNode(/*checkpoint_entries=*/0);
    ASSERT_TRUE(node.ok());
    for (int i = 0; i < 5; ++i) {
      ASSERT_TRUE(ProposeAndWait(node->get(), PutCommand("k", "v")).first.ok());
    }
  }
  fs::remove_all(dir_ / "wal");
  auto node = OpenNode();
  ASSERT_FALSE(node.ok());
  EXPECT_EQ(node.status().code(), StatusCode::kCorruption);
  EXPECT_NE(node.status().message().find("applied up to index 5"), std::string::npos)
      << node.status().ToString();
}

TEST_F(NodeTest, CheckpointDeletesCoveredSegments) {
  NodeOptions options;
  options.data_dir = dir_.string();
  options.engine.block_cache_bytes = 8 << 20;
  options.wal.segment_size_bytes = 32 << 10;
  options.checkpoint_interval_entries = 0;
  auto node = Node::Open(options);
  ASSERT_TRUE(node.ok());
  for (int i = 0; i < 2000; ++i) {
    ASSERT_TRUE(ProposeAndWait(node->get(), PutCommand("k", std::string(64, 'x'))).first.ok());
  }
  EXPECT_EQ((*node)->LogFirstIndex(), 1u);
  ASSERT_TRUE((*node)->Checkpoint().ok());
  EXPECT_GT((*node)->LogFirstIndex(), 1000u);
  EXPECT_LE((*node)->LogFirstIndex(), 2000u);
  // The retained tail plus the flushed state reopen to the same place.
  ASSERT_TRUE((*node)->Close().ok());
  node->reset();
  auto reopened = Node::Open(options);
  ASSERT_TRUE(reopened.ok()) << reopened.status().ToString();
  EXPECT_EQ((*reopened)->kv()->CurrentRevision(), 2001);
}

// A failed fdatasync means the kernel may have dropped unsynced pages: the node must stop
// acknowledging writes (Unavailable), never crash, and never acknowledge the failed write.
TEST_F(NodeTest, WalSyncFailureStopsWritesWithoutCrashing) {
  env::FaultInjectionFileSystem fs;
  NodeOptions options;
  options.data_dir = "/node";
  options.filesystem = &fs;
  options.memory_engine = true;
  options.checkpoint_interval_entries = 0;
  auto node = Node::Open(options);
  ASSERT_TRUE(node.ok()) << node.status().ToString();
  ASSERT_TRUE(ProposeAndWait(node->get(), PutCommand("before", "1")).first.ok());
  fs.FailAlways(env::FileOperation::kSync);
  auto [failed, unused] = ProposeAndWait(node->get(), PutCommand("lost", "1"));
  EXPECT_FALSE(failed.ok());
  auto [refused, unused2] = ProposeAndWait(node->get(), PutCommand("after", "1"));
  EXPECT_EQ(refused.code(), StatusCode::kUnavailable) << refused.ToString();
  EXPECT_EQ((*node)->kv()->CurrentRevision(), 2);  // only "before" was applied
  EXPECT_FALSE((*node)->Close().ok());
}

}  // namespace
}  // namespace cairn::node

namespace cairn::node {
namespace {

// Regression: a failed Open destroyed a half-built Node whose Close() checkpointed through
// parts that did not exist (segfault).
TEST_F(NodeTest, FailedOpenReturnsAnErrorAndDoesNotCrash) {
  {
    auto node = OpenNode();
    ASSERT_TRUE(node.ok());
    ASSERT_TRUE(ProposeAndWait(node->get(), PutCommand("k", "v")).first.ok());
  }
  fs::remove_all(dir_ / "wal");  // state now ahead of the log: Open must fail cleanly
  auto node = OpenNode(/*checkpoint_entries=*/1000);
  EXPECT_EQ(node.status().code(), StatusCode::kCorruption);
}

}  // namespace
}  // namespace cairn::node
