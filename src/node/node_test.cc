#include "src/node/node.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <thread>

#include "src/base/coding.h"
#include "src/env/fault_injection_file_system.h"
#include "src/env/memory_file_system.h"
#include "src/env/posix_file_system.h"
#include "src/mvcc/mvcc_format.h"
#include "src/node/applier.h"
#include "src/node/raft_log_storage.h"
#include "src/node/snapshot.h"
#include "src/storage/rocksdb_engine.h"

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
    options.kv.key_count_block_keys = key_count_block_keys_;
    options.warm_check_keys = warm_check_keys_;
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

  // Runs `body` on the state engine of a closed node's directory.
  void WithEngine(const std::function<void(storage::Engine*)>& body) {
    storage::EngineOptions options;
    options.path = dir_.string() + "/state";
    options.block_cache_bytes = 8 << 20;
    auto engine = storage::RocksDbEngine::Open(options);
    ASSERT_TRUE(engine.ok()) << engine.status().ToString();
    body(engine->get());
  }
  static uint64_t FormatVersion(storage::Engine* engine) {
    std::string value;
    EXPECT_TRUE(*engine->Get({}, storage::Family::kMeta, kFormatVersionKey, &value));
    return value.size() == 8 ? coding::DecodeFixed64(value.data()) : 0;
  }
  static void SetFormatVersion(storage::Engine* engine, uint64_t version) {
    std::string value;
    coding::PutFixed64(&value, version);
    auto batch = engine->NewWriteBatch();
    batch->Put(storage::Family::kMeta, kFormatVersionKey, value);
    ASSERT_TRUE(engine->Write(batch.get()).ok());
  }

  fs::path dir_;
  int64_t key_count_block_keys_ = mvcc::KvStateOptions{}.key_count_block_keys;
  size_t warm_check_keys_ = 4096;
};

TEST_F(NodeTest, ProposalsApplyInOrderAndAdvanceAppliedIndex) {
  auto node = OpenNode();
  ASSERT_TRUE(node.ok()) << node.status().ToString();
  // A new single-member cluster: entry 1 adds the member, entry 2 is its first term's
  // empty entry; both are applied before Open returns.
  const uint64_t base = (*node)->AppliedIndex();
  EXPECT_EQ(base, 2u);
  EXPECT_TRUE((*node)->IsLeader());
  ASSERT_EQ((*node)->membership()->List().size(), 1u);
  EXPECT_EQ((*node)->membership()->List()[0].id(), (*node)->member_id());
  for (int i = 0; i < 10; ++i) {
    auto [status, result] = ProposeAndWait(node->get(), PutCommand("k", std::to_string(i)));
    ASSERT_TRUE(status.ok()) << status.ToString();
    EXPECT_EQ(result.put().header().revision(), 2 + i);
  }
  EXPECT_EQ((*node)->AppliedIndex(), base + 10);
}

TEST_F(NodeTest, AnAnswerThatTakesLongDoesNotHoldBackApplying) {
  // Writes' answers run on the answer thread, in log order: while one is slow (a client's gRPC
  // completion, say), the apply thread goes on applying later entries, whose answers follow.
  auto node = OpenNode();
  ASSERT_TRUE(node.ok()) << node.status().ToString();
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::promise<std::thread::id> first_answered;
  (*node)->Propose(PutCommand("slow", "1"),
                   [&first_answered, released](const Status& s, command::CommandResult&&) {
                     EXPECT_TRUE(s.ok()) << s.ToString();
                     first_answered.set_value(std::this_thread::get_id());
                     released.wait();
                   });
  const std::thread::id answer_thread = first_answered.get_future().get();
  EXPECT_NE(answer_thread, std::this_thread::get_id());
  const uint64_t before = (*node)->AppliedIndex();
  auto second = std::make_shared<std::promise<int64_t>>();
  std::future<int64_t> second_revision = second->get_future();
  (*node)->Propose(PutCommand("fast", "2"), [second](const Status& s, command::CommandResult&& r) {
    EXPECT_TRUE(s.ok()) << s.ToString();
    second->set_value(r.put().header().revision());
  });
  EXPECT_TRUE((*node)->WaitApplied(before + 1, 10'000))
      << "the second write was not applied while the first one's answer was being sent";
  EXPECT_EQ((*node)->kv()->CurrentRevision(), 3);
  // Answers keep the log's order: the second waits for the first.
  EXPECT_EQ(second_revision.wait_for(std::chrono::milliseconds(100)), std::future_status::timeout);
  release.set_value();
  EXPECT_EQ(second_revision.get(), 3);
  ASSERT_TRUE((*node)->Close().ok());  // the answer thread is done before the locals go
}

TEST_F(NodeTest, FailedCommandOccupiesAnIndexAndChangesNothing) {
  auto node = OpenNode();
  ASSERT_TRUE(node.ok());
  const uint64_t base = (*node)->AppliedIndex();
  command::Command bad;
  bad.mutable_put()->set_key("missing");
  bad.mutable_put()->set_ignore_value(true);
  auto [status, result] = ProposeAndWait(node->get(), bad);
  EXPECT_EQ(status.message(), "etcdserver: key not found");
  EXPECT_EQ((*node)->AppliedIndex(), base + 1);
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
  // 2 bootstrap entries, 50 puts, and the empty entry of the term elected on reopen.
  EXPECT_EQ((*node)->AppliedIndex(), 53u);
  EXPECT_EQ((*node)->GetRaftStatus().last_index, 53u);
  EXPECT_EQ((*node)->kv()->CurrentRevision(), 51);
  EXPECT_EQ((*node)->membership()->List().size(), 1u);
}

// Format 2 kept the event id entries in the events family: an open moves them to kEventIds and
// stamps the current format; a directory of an unknown format still refuses to open.
TEST_F(NodeTest, FormatTwoDirectoryIsUpgradedAtOpen) {
  ASSERT_TRUE(OpenNode().ok());
  const std::string id_key = "I" + std::string(16, '\x7f');
  const std::string id_value = "pointer";
  WithEngine([&](storage::Engine* engine) {
    EXPECT_EQ(FormatVersion(engine), kFormatVersion);
    auto batch = engine->NewWriteBatch();
    std::string two;
    coding::PutFixed64(&two, 2);
    batch->Put(storage::Family::kMeta, kFormatVersionKey, two);
    batch->Put(storage::Family::kEvents, id_key, id_value);
    ASSERT_TRUE(engine->Write(batch.get()).ok());
  });
  ASSERT_TRUE(OpenNode().ok());
  WithEngine([&](storage::Engine* engine) {
    EXPECT_EQ(FormatVersion(engine), kFormatVersion);
    EXPECT_FALSE(*engine->Get({}, storage::Family::kEvents, id_key, nullptr));
    std::string value;
    EXPECT_TRUE(*engine->Get({}, storage::Family::kEventIds, id_key, &value));
    EXPECT_EQ(value, id_value);
    SetFormatVersion(engine, kFormatVersion + 1);
  });
  Result<std::unique_ptr<Node>> refused = OpenNode();
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kFailedPrecondition);
}

// Format 3 had no key count blocks: an open builds them from kv_latest and stamps the current
// format, and counts add them up.
TEST_F(NodeTest, FormatThreeDirectoryGetsKeyCountBlocksAtOpen) {
  key_count_block_keys_ = 4;
  auto key = [](int i) { return std::string(i < 10 ? "k0" : "k") + std::to_string(i); };
  {
    auto node = OpenNode();
    ASSERT_TRUE(node.ok()) << node.status().ToString();
    for (int i = 0; i < 30; ++i) {
      ASSERT_TRUE(ProposeAndWait(node->get(), PutCommand(key(i), "v")).first.ok());
    }
  }
  auto blocks = [](storage::Engine* engine) {
    storage::ReadOptions options;
    options.lower_bound = mvcc::format::kMetaKeyCountBlockPrefix;
    options.upper_bound = mvcc::format::kMetaKeyCountBlockEnd;
    auto it = engine->NewIterator(options, storage::Family::kMeta);
    std::vector<std::string> keys;
    for (it->Seek(options.lower_bound); it->Valid(); it->Next()) keys.emplace_back(it->key());
    EXPECT_TRUE(it->status().ok());
    return keys;
  };
  WithEngine([&](storage::Engine* engine) {
    EXPECT_FALSE(blocks(engine).empty());
    auto batch = engine->NewWriteBatch();
    for (const std::string& block : blocks(engine)) batch->Delete(storage::Family::kMeta, block);
    ASSERT_TRUE(engine->Write(batch.get()).ok());
    SetFormatVersion(engine, 3);
  });
  {
    auto node = OpenNode();
    ASSERT_TRUE(node.ok()) << node.status().ToString();
    etcdserverpb::RangeRequest req;
    req.set_key(key(5));
    req.set_range_end(key(25));
    req.set_limit(2);
    etcdserverpb::RangeResponse resp;
    ASSERT_TRUE((*node)->kv()->Range(req, &resp).ok());
    EXPECT_EQ(resp.count(), 20);
    EXPECT_EQ(resp.kvs_size(), 2);
    EXPECT_TRUE(resp.more());
    req.set_key(std::string(1, '\0'));
    req.set_range_end(std::string(1, '\0'));
    req.set_count_only(true);
    ASSERT_TRUE((*node)->kv()->Range(req, &resp).ok());
    EXPECT_EQ(resp.count(), 30);
  }
  WithEngine([&](storage::Engine* engine) {
    EXPECT_EQ(FormatVersion(engine), kFormatVersion);
    // A fence every 4 keys: "", k04, k08, ..., k28.
    std::vector<std::string> keys = blocks(engine);
    ASSERT_EQ(keys.size(), 8u);
    EXPECT_EQ(keys[0], mvcc::format::kMetaKeyCountBlockPrefix);
    EXPECT_EQ(keys[7], std::string(mvcc::format::kMetaKeyCountBlockPrefix) + key(28));
  });
}

// The warm thread pauses while the proposed keys need no reading: the cache of hot keys holds
// them, or the engine lacks them (new keys: an absence is not cached). It resumes when the
// commands it still samples write keys the engine holds and the cache lacks.
TEST_F(NodeTest, WarmThreadPausesWhileTheProposedKeysNeedNoReading) {
  warm_check_keys_ = 256;
  constexpr int kOldKeys = 2000;
  auto old_key = [](int i) { return "old" + std::to_string(i % kOldKeys); };
  {
    // Keys the engine holds and a reopened node's cache lacks.
    auto node = OpenNode();
    ASSERT_TRUE(node.ok()) << node.status().ToString();
    for (int i = 0; i < kOldKeys; ++i) {
      ASSERT_TRUE(ProposeAndWait(node->get(), PutCommand(old_key(i), "v")).first.ok());
    }
  }
  auto node = OpenNode();
  ASSERT_TRUE(node.ok()) << node.status().ToString();
  // Proposes put(key(i)) until the warm thread is `paused` (at most 20,000 puts).
  auto propose_until = [&](bool paused, const std::function<std::string(int)>& key) {
    for (int i = 0; i < 20000 && (*node)->warm_paused() != paused; ++i) {
      EXPECT_TRUE(ProposeAndWait(node->get(), PutCommand(key(i), "v")).first.ok());
    }
    return (*node)->warm_paused() == paused;
  };
  EXPECT_FALSE((*node)->warm_paused());
  // Ten keys over and over: once written, the cache holds them all.
  EXPECT_TRUE(propose_until(true, [](int i) { return "k" + std::to_string(i % 10); }));
  // Keys never written: the cache lacks every one, but so does the engine; it stays paused
  // (about 30 sampled commands, in windows of 4 keys).
  for (int i = 0; i < 2000; ++i) {
    ASSERT_TRUE(ProposeAndWait(node->get(), PutCommand("new" + std::to_string(i), "v")).first.ok());
  }
  EXPECT_TRUE((*node)->warm_paused());
  // Keys the engine holds and the cache lacks.
  EXPECT_TRUE(propose_until(false, old_key));
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
  EXPECT_NE(node.status().message().find("applied up to index 7"), std::string::npos)
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
  EXPECT_LE((*node)->LogFirstIndex(), 2002u);
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

command::Command AlarmCommand(etcdserverpb::AlarmRequest::AlarmAction action,
                              etcdserverpb::AlarmType type, uint64_t member_id = 7) {
  command::Command command;
  command.mutable_alarm()->set_action(action);
  command.mutable_alarm()->set_alarm(type);
  command.mutable_alarm()->set_memberid(member_id);
  return command;
}

TEST_F(NodeTest, NospaceAlarmCapsWritesUntilDisarmedAndSurvivesReopen) {
  {
    auto node = OpenNode();
    ASSERT_TRUE(node.ok());
    ASSERT_TRUE(ProposeAndWait(node->get(), PutCommand("a", "1")).first.ok());
    auto [armed, armed_result] = ProposeAndWait(
        node->get(), AlarmCommand(etcdserverpb::AlarmRequest::ACTIVATE, etcdserverpb::NOSPACE));
    ASSERT_TRUE(armed.ok()) << armed.ToString();
    ASSERT_EQ(armed_result.alarm().alarms_size(), 1);
    EXPECT_EQ(armed_result.alarm().alarms(0).memberid(), 7u);
    // Activating again changes nothing and answers nothing, as etcd's alarm store.
    auto again = ProposeAndWait(
        node->get(), AlarmCommand(etcdserverpb::AlarmRequest::ACTIVATE, etcdserverpb::NOSPACE));
    EXPECT_EQ(again.second.alarm().alarms_size(), 0);

    auto [put, put_result] = ProposeAndWait(node->get(), PutCommand("b", "2"));
    EXPECT_EQ(put.code(), StatusCode::kResourceExhausted);
    EXPECT_EQ(put.message(), "etcdserver: mvcc: database space exceeded");
    command::Command write_txn;
    write_txn.mutable_txn()->add_success()->mutable_request_put()->set_key("c");
    EXPECT_EQ(ProposeAndWait(node->get(), write_txn).first.code(), StatusCode::kResourceExhausted);
    command::Command read_txn;
    read_txn.mutable_txn()->add_success()->mutable_request_range()->set_key("a");
    EXPECT_TRUE(ProposeAndWait(node->get(), read_txn).first.ok());
    command::Command grant;
    grant.mutable_lease_grant()->set_id(5);
    grant.mutable_lease_grant()->set_ttl(60);
    EXPECT_EQ(ProposeAndWait(node->get(), grant).first.code(), StatusCode::kResourceExhausted);
    command::Command del;
    del.mutable_delete_range()->set_key("a");
    EXPECT_TRUE(ProposeAndWait(node->get(), del).first.ok());  // deletes free space
    EXPECT_EQ((*node)->kv()->CurrentRevision(), 3);
    ASSERT_TRUE((*node)->Close().ok());
  }
  auto node = OpenNode();
  ASSERT_TRUE(node.ok()) << node.status().ToString();
  EXPECT_TRUE((*node)->alarms()->Active(etcdserverpb::NOSPACE));
  EXPECT_EQ(ProposeAndWait(node->get(), PutCommand("b", "2")).first.code(),
            StatusCode::kResourceExhausted);
  auto [disarmed, disarmed_result] = ProposeAndWait(
      node->get(), AlarmCommand(etcdserverpb::AlarmRequest::DEACTIVATE, etcdserverpb::NOSPACE));
  ASSERT_TRUE(disarmed.ok());
  EXPECT_EQ(disarmed_result.alarm().alarms_size(), 1);
  EXPECT_TRUE((*node)->alarms()->List().empty());
  EXPECT_TRUE(ProposeAndWait(node->get(), PutCommand("b", "2")).first.ok());
}

TEST_F(NodeTest, CorruptAlarmRefusesEveryWriteAndNoneCannotBeActivated) {
  auto node = OpenNode();
  ASSERT_TRUE(node.ok());
  EXPECT_EQ(ProposeAndWait(node->get(),
                           AlarmCommand(etcdserverpb::AlarmRequest::ACTIVATE, etcdserverpb::NONE))
                .first.code(),
            StatusCode::kInvalidArgument);
  ASSERT_TRUE(ProposeAndWait(node->get(), AlarmCommand(etcdserverpb::AlarmRequest::ACTIVATE,
                                                       etcdserverpb::CORRUPT))
                  .first.ok());
  command::Command del;
  del.mutable_delete_range()->set_key("a");
  Status deleted = ProposeAndWait(node->get(), del).first;
  EXPECT_EQ(deleted.code(), StatusCode::kDataLoss);
  EXPECT_EQ(deleted.message(), "etcdserver: corrupt cluster");
  EXPECT_EQ((*node)->kv()->CurrentRevision(), 1);
}

TEST_F(NodeTest, SnapshotRestoresIntoAFreshDataDirThatContinuesTheLog) {
  const std::string snapshot_path = dir_.string() + "-snapshot";
  const std::string restored_dir = dir_.string() + "-restored";
  fs::remove_all(restored_dir);
  etcdserverpb::RangeResponse before;
  uint64_t applied = 0;
  {
    auto node = OpenNode();
    ASSERT_TRUE(node.ok());
    for (int i = 0; i < 300; ++i) {
      ASSERT_TRUE(ProposeAndWait(node->get(), PutCommand("k" + std::to_string(i % 120),
                                                         std::string(100, 'a' + i % 26)))
                      .first.ok());
    }
    command::Command compact;
    compact.mutable_compaction()->set_revision(150);
    ASSERT_TRUE(ProposeAndWait(node->get(), compact).first.ok());
    etcdserverpb::RangeRequest all;
    all.set_key(std::string(1, '\0'));
    all.set_range_end(std::string(1, '\0'));
    ASSERT_TRUE((*node)->kv()->Range(all, &before).ok());
    auto info = WriteSnapshot((*node)->engine(), env::PosixFileSystem::Default(), snapshot_path);
    ASSERT_TRUE(info.ok()) << info.status().ToString();
    applied = (*node)->AppliedIndex();
    EXPECT_EQ(info->applied_index, applied);
    auto verified = VerifySnapshot(env::PosixFileSystem::Default(), snapshot_path);
    ASSERT_TRUE(verified.ok()) << verified.status().ToString();
    EXPECT_EQ(verified->records, info->records);
    EXPECT_EQ(verified->size_bytes, fs::file_size(snapshot_path));
  }
  auto restored = RestoreSnapshot(snapshot_path, restored_dir);
  ASSERT_TRUE(restored.ok()) << restored.status().ToString();
  EXPECT_FALSE(fs::exists(restored_dir + ".restoring"));
  // Into an existing, non-empty directory: refused, nothing touched.
  auto refused = RestoreSnapshot(snapshot_path, dir_.string());
  EXPECT_EQ(refused.status().code(), StatusCode::kFailedPrecondition);
  {
    NodeOptions options;
    options.data_dir = restored_dir;
    options.checkpoint_interval_entries = 0;
    auto node = Node::Open(std::move(options));
    ASSERT_TRUE(node.ok()) << node.status().ToString();
    // The restored member bootstraps a new one-member cluster after the snapshot's index.
    EXPECT_EQ((*node)->AppliedIndex(), applied + 2);
    EXPECT_EQ((*node)->membership()->List().size(), 1u);
    EXPECT_EQ((*node)->kv()->CurrentRevision(), 301);
    EXPECT_EQ((*node)->kv()->CompactedRevision(), 150);
    etcdserverpb::RangeRequest all;
    all.set_key(std::string(1, '\0'));
    all.set_range_end(std::string(1, '\0'));
    etcdserverpb::RangeResponse after;
    ASSERT_TRUE((*node)->kv()->Range(all, &after).ok());
    before.clear_header();
    after.clear_header();
    EXPECT_EQ(after.SerializeAsString(), before.SerializeAsString());
    auto [put, result] = ProposeAndWait(node->get(), PutCommand("new", "v"));
    ASSERT_TRUE(put.ok()) << put.ToString();
    EXPECT_EQ(result.put().header().revision(), 302);
    EXPECT_EQ((*node)->AppliedIndex(), applied + 3);
  }
  // A flipped byte anywhere is found before anything is restored.
  {
    std::string bytes;
    {
      std::ifstream in(snapshot_path, std::ios::binary);
      bytes.assign(std::istreambuf_iterator<char>(in), {});
    }
    bytes[bytes.size() / 2] ^= 0x01;
    std::ofstream(snapshot_path, std::ios::binary | std::ios::trunc) << bytes;
    const std::string corrupt_dir = dir_.string() + "-corrupt";
    auto corrupt = RestoreSnapshot(snapshot_path, corrupt_dir);
    EXPECT_EQ(corrupt.status().code(), StatusCode::kCorruption) << corrupt.status().ToString();
    EXPECT_FALSE(fs::exists(corrupt_dir));
    EXPECT_FALSE(fs::exists(corrupt_dir + ".restoring"));
  }
  fs::remove_all(restored_dir);
  fs::remove(snapshot_path);
}

TEST(RaftLogStorageTest, ReleasedEntriesAreReadBackFromTheWal) {
  env::MemoryFileSystem file_system;
  auto wal = wal::Wal::Open(&file_system, "/data/wal", wal::WalOptions{});
  ASSERT_TRUE(wal.ok()) << wal.status().ToString();
  auto storage = RaftLogStorage::Open(wal->get(), &file_system, "/data/raft",
                                      raft::ConfigState{.voters = {1}, .learners = {}}, 0, {});
  ASSERT_TRUE(storage.ok()) << storage.status().ToString();
  RaftLogStorage& log = **storage;
  auto make = [](uint64_t first, uint64_t last) {
    std::vector<raft::Entry> entries;
    for (uint64_t index = first; index <= last; ++index) {
      entries.push_back({.term = 1, .index = index, .data = "entry " + std::to_string(index)});
    }
    return entries;
  };
  auto bytes = [](const std::vector<raft::Entry>& entries) {
    uint64_t sum = 0;
    for (const raft::Entry& entry : entries) sum += entry.SizeBytes();
    return sum;
  };
  const std::vector<raft::Entry> all = make(1, 12);
  ASSERT_TRUE(log.Append(make(1, 10)).ok());
  ASSERT_TRUE(log.Sync().ok());
  EXPECT_EQ(log.cached_bytes(), bytes(make(1, 10)));

  log.ReleaseCacheThrough(6);
  EXPECT_EQ(log.cached_bytes(), bytes(make(7, 10)));
  auto read = log.Entries(1, 11, UINT64_MAX);  // 1..6 from the WAL, 7..10 from the cache
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  EXPECT_EQ(*read, make(1, 10));

  ASSERT_TRUE(log.Append(make(11, 12)).ok());  // the cache continues after a release
  EXPECT_EQ(log.cached_bytes(), bytes(make(7, 12)));
  log.ReleaseCacheThrough(100);
  EXPECT_EQ(log.cached_bytes(), 0u);
  read = log.Entries(3, 13, UINT64_MAX);
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  EXPECT_EQ(*read, std::vector<raft::Entry>(all.begin() + 2, all.end()));
  ASSERT_TRUE(log.Append(make(13, 13)).ok());
  EXPECT_EQ(log.cached_bytes(), bytes(make(13, 13)));
}

}  // namespace
}  // namespace cairn::node
