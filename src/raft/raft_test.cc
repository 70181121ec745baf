#include "src/raft/raft.h"

#include <gtest/gtest.h>

#include "src/raft/raw_node.h"
#include "src/raft/test_cluster.h"

namespace cairn::raft {
namespace {

using testing::EntriesWithTerms;
using testing::TestCluster;

// Options for TestCluster: pre-vote and check-quorum on or off.
std::function<void(Config&, MemoryStorage&)> WithOptions(bool pre_vote, bool check_quorum) {
  return [=](Config& config, MemoryStorage&) {
    config.pre_vote = pre_vote;
    config.check_quorum = check_quorum;
  };
}

// Appends carrying entries sent to `to`.
size_t CountAppendsWithEntries(const TestCluster& cluster, NodeId to) {
  size_t count = 0;
  for (const Message& message : cluster.sent()) {
    if (message.type == MessageType::kAppend && message.to == to && !message.entries.empty()) {
      ++count;
    }
  }
  return count;
}

// ---------------------------------------------------------------------------------------
// Elections.

TEST(RaftElectionTest, SingleNodeBecomesLeaderAndCommits) {
  TestCluster cluster(1);
  cluster.TickAll(20);
  EXPECT_EQ(cluster.raft(1).role(), Role::kLeader);
  cluster.Propose(1, "a");
  ASSERT_EQ(cluster.at(1).applied.size(), 1u);
  EXPECT_EQ(cluster.at(1).applied[0].data, "a");
}

TEST(RaftElectionTest, ThreeNodesElectOneLeaderByTimeout) {
  TestCluster cluster(3);
  cluster.TickAll(25);
  int leaders = 0;
  for (NodeId id = 1; id <= 3; ++id) leaders += cluster.raft(id).role() == Role::kLeader;
  EXPECT_EQ(leaders, 1);
  uint64_t term = cluster.raft(1).term();
  for (NodeId id = 2; id <= 3; ++id) EXPECT_EQ(cluster.raft(id).term(), term);
}

TEST(RaftElectionTest, RandomizedElectionTimeoutCoversRange) {
  MemoryStorage storage;
  storage.SetInitialConfig(ConfigState{{1, 2, 3}, {}});
  env::Random random(1);
  Config config{.id = 1, .election_ticks = 10, .storage = &storage, .random = &random};
  Raft raft(config);
  std::set<int> seen;
  for (int i = 0; i < 500; ++i) {
    // Becoming follower again re-draws the timeout.
    Message heartbeat{.type = MessageType::kHeartbeat, .from = 2, .to = 1, .term = raft.term() + 1};
    ASSERT_TRUE(raft.Step(heartbeat).ok());
    int timeout = raft.randomized_election_timeout_ticks();
    ASSERT_GE(timeout, 10);
    ASSERT_LT(timeout, 20);
    seen.insert(timeout);
  }
  EXPECT_EQ(seen.size(), 10u);
}

TEST(RaftElectionTest, OneVotePerTermAndOnlyForUpToDateLogs) {
  MemoryStorage storage;
  storage.SetInitialConfig(ConfigState{{1, 2, 3}, {}});
  storage.Append(EntriesWithTerms({1, 2}));
  storage.SetHardState(HardState{.term = 2, .vote = kNoNode, .commit = 0});
  env::Random random(1);
  Raft raft(Config{.id = 1, .storage = &storage, .random = &random, .pre_vote = false});
  auto vote = [&](NodeId from, uint64_t term, uint64_t index, uint64_t log_term) {
    EXPECT_TRUE(raft.Step(Message{.type = MessageType::kVote,
                                  .from = from,
                                  .to = 1,
                                  .term = term,
                                  .log_term = log_term,
                                  .index = index})
                    .ok());
    std::vector<Message> out = raft.TakeMessages();
    EXPECT_EQ(out.size(), 1u);
    return !out.back().reject;
  };
  EXPECT_FALSE(vote(2, 3, 5, 1));  // stale last term
  EXPECT_FALSE(vote(2, 3, 1, 2));  // same last term, shorter log
  EXPECT_TRUE(vote(2, 3, 2, 2));
  EXPECT_EQ(raft.vote(), 2u);
  EXPECT_FALSE(vote(3, 3, 9, 9));  // already voted in term 3
  EXPECT_TRUE(vote(2, 3, 2, 2));   // the same candidate again
  EXPECT_TRUE(vote(3, 4, 2, 2));   // a new term
}

TEST(RaftElectionTest, CandidateWithStaleLogLoses) {
  TestCluster cluster(3);
  cluster.Elect(1);
  cluster.Cut(1, 3);
  cluster.Cut(2, 3);
  cluster.Propose(1, "a");  // 3 misses it
  cluster.Heal();
  ASSERT_TRUE(cluster.node(3).Campaign().ok());
  cluster.Stabilize();
  EXPECT_NE(cluster.raft(3).role(), Role::kLeader);
}

TEST(RaftElectionTest, ProposalWithoutLeaderIsDropped) {
  TestCluster cluster(3);
  EXPECT_TRUE(IsProposalDropped(cluster.node(2).Propose("x")));
}

// ---------------------------------------------------------------------------------------
// Replication.

TEST(RaftReplicationTest, ProposalsReplicateToAllAndForwardFromFollowers) {
  TestCluster cluster(3);
  cluster.Elect(1);
  cluster.Propose(1, "a");
  cluster.Propose(2, "b");  // forwarded to the leader
  for (NodeId id = 1; id <= 3; ++id) {
    ASSERT_EQ(cluster.at(id).applied.size(), 2u) << id;
    EXPECT_EQ(cluster.at(id).applied[0].data, "a");
    EXPECT_EQ(cluster.at(id).applied[1].data, "b");
  }
}

TEST(RaftReplicationTest, CommitNeedsAQuorum) {
  TestCluster cluster(3);
  cluster.Elect(1);
  uint64_t committed = cluster.raft(1).log().committed();
  cluster.Isolate(1);
  cluster.Propose(1, "a");
  EXPECT_EQ(cluster.raft(1).log().committed(), committed);
  cluster.Heal();
  cluster.TickAll(1);  // heartbeat; the followers ask for the entry
  EXPECT_EQ(cluster.raft(1).log().committed(), committed + 1);
}

// Follower 2 holds a long uncommitted suffix of term 2; the leader of term 4 must replace
// it, finding the match point with one rejection rather than one per entry.
TEST(RaftReplicationTest, ConflictingSuffixIsReplacedWithFastBacktracking) {
  TestCluster cluster(3, [](Config& config, MemoryStorage& storage) {
    if (config.id == 2) {
      storage.Append(EntriesWithTerms({1, 1, 2, 2, 2, 2, 2, 2}));
      storage.SetHardState(HardState{.term = 2, .vote = kNoNode, .commit = 2});
    } else {
      storage.Append(EntriesWithTerms({1, 1, 3, 3, 3}));
      storage.SetHardState(HardState{.term = 3, .vote = kNoNode, .commit = 2});
    }
  });
  cluster.Elect(1);
  size_t rejections = 0;
  for (const Message& message : cluster.sent()) {
    if (message.type == MessageType::kAppendResponse && message.from == 2 && message.reject) {
      ++rejections;
    }
  }
  EXPECT_EQ(rejections, 1u);
  const RaftLog& leader = cluster.raft(1).log();
  const RaftLog& follower = cluster.raft(2).log();
  ASSERT_EQ(follower.LastIndex(), leader.LastIndex());
  for (uint64_t index = 1; index <= leader.LastIndex(); ++index) {
    EXPECT_EQ(follower.TermOrZero(index), leader.TermOrZero(index)) << index;
  }
  EXPECT_EQ(cluster.at(2).storage.LastIndex(), leader.LastIndex());
  cluster.TickAll(1);  // the commit index reaches the follower with the next heartbeat
  EXPECT_EQ(follower.committed(), leader.LastIndex());
}

// Raft paper Figure 8: a leader must not commit an entry of an earlier term by counting
// replicas; it commits it only together with an entry of its own term.
TEST(RaftReplicationTest, EntriesFromEarlierTermsDoNotCommitByCounting) {
  TestCluster cluster(3, [](Config& config, MemoryStorage& storage) {
    config.message_bytes_max = 1;  // one entry per append, so acks can be split
    if (config.id == 1) {
      storage.Append(EntriesWithTerms({1, 2}));
      storage.SetHardState(HardState{.term = 2, .vote = kNoNode, .commit = 1});
    } else {
      storage.Append(EntriesWithTerms({1}));
      storage.SetHardState(HardState{.term = 2, .vote = kNoNode, .commit = 1});
    }
  });
  // The leader never hears that entry 3 (its own, of term 3) is replicated.
  cluster.SetDropFilter([](const Message& message) {
    return message.type == MessageType::kAppendResponse && !message.reject && message.index >= 3;
  });
  cluster.Elect(1);
  EXPECT_EQ(cluster.raft(1).term(), 3u);
  EXPECT_EQ(cluster.raft(1).progress().at(2).match, 2u);  // entry 2 is on a majority
  EXPECT_EQ(cluster.raft(1).log().committed(), 1u);       // ... but of term 2: not committed
  cluster.SetDropFilter({});
  cluster.TickAll(1);
  EXPECT_EQ(cluster.raft(1).log().committed(), 3u);
  EXPECT_EQ(cluster.raft(2).log().committed(), 3u);
}

TEST(RaftReplicationTest, StaleLeaderStepsDownOnHigherTerm) {
  TestCluster cluster(3);
  cluster.Elect(1);
  cluster.Isolate(1);
  cluster.TickAll(25);  // 2 or 3 wins term 2; 1 steps down by check-quorum
  cluster.Heal();
  cluster.Stabilize();
  cluster.TickAll(2);
  int leaders = 0;
  for (NodeId id = 1; id <= 3; ++id) leaders += cluster.raft(id).role() == Role::kLeader;
  EXPECT_EQ(leaders, 1);
  EXPECT_NE(cluster.raft(1).role(), Role::kLeader);
  EXPECT_EQ(cluster.raft(1).term(), cluster.raft(2).term());
}

TEST(RaftReplicationTest, BatchProposalTravelsInOneAppend) {
  TestCluster cluster(3);
  cluster.Elect(1);
  cluster.ClearSent();
  ASSERT_TRUE(cluster.node(1).ProposeBatch({"a", "b", "c"}).ok());
  cluster.Stabilize();
  size_t appends_with_entries = 0;
  for (const Message& message : cluster.sent()) {
    if (message.type == MessageType::kAppend && message.to == 2 && !message.entries.empty()) {
      ++appends_with_entries;
      EXPECT_EQ(message.entries.size(), 3u);
    }
  }
  EXPECT_EQ(appends_with_entries, 1u);
  ASSERT_EQ(cluster.at(2).applied.size(), 3u);
  EXPECT_EQ(cluster.at(2).applied[2].data, "c");
  EXPECT_EQ(cluster.node(1).ProposeBatch({}).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(
      cluster.node(1).ProposeBatch(std::vector<std::string>(kProposalBatchEntriesMax + 1)).code(),
      StatusCode::kInvalidArgument);
}

// ---------------------------------------------------------------------------------------
// Pre-vote and check-quorum.

TEST(RaftPreVoteTest, PartitionedNodeDoesNotDisruptOnRejoin) {
  TestCluster cluster(3, WithOptions(/*pre_vote=*/true, /*check_quorum=*/true));
  cluster.Elect(1);
  uint64_t term = cluster.raft(1).term();
  cluster.Isolate(3);
  for (int i = 0; i < 100; ++i) {
    cluster.Tick(3);
    cluster.TickAll(1);
  }
  EXPECT_EQ(cluster.raft(3).term(), term);  // pre-votes never won, term unchanged
  cluster.Heal();
  cluster.TickAll(5);
  EXPECT_EQ(cluster.raft(1).role(), Role::kLeader);
  EXPECT_EQ(cluster.raft(1).term(), term);
  EXPECT_EQ(cluster.raft(3).lead(), 1u);
}

// The contrast: without pre-vote and check-quorum, the same rejoin forces a new election.
TEST(RaftPreVoteTest, WithoutPreVoteRejoiningNodeDisrupts) {
  TestCluster cluster(3, WithOptions(/*pre_vote=*/false, /*check_quorum=*/false));
  cluster.Elect(1);
  uint64_t term = cluster.raft(1).term();
  cluster.Isolate(3);
  for (int i = 0; i < 100; ++i) {
    cluster.Tick(3);
    cluster.TickAll(1);
  }
  EXPECT_GT(cluster.raft(3).term(), term);
  cluster.Heal();
  cluster.TickAll(25);
  EXPECT_GT(cluster.raft(1).term(), term);
}

TEST(RaftCheckQuorumTest, IsolatedLeaderStepsDown) {
  TestCluster cluster(3);
  cluster.Elect(1);
  cluster.Isolate(1);
  // The first check may still count the answers from before the partition; the second
  // (two election timeouts in) must step down.
  for (int i = 0; i < 20; ++i) cluster.Tick(1);
  cluster.Stabilize();
  EXPECT_EQ(cluster.raft(1).role(), Role::kFollower);
}

TEST(RaftCheckQuorumTest, LeaderWithQuorumStaysLeader) {
  TestCluster cluster(3);
  cluster.Elect(1);
  cluster.Isolate(3);
  for (int i = 0; i < 50; ++i) {
    cluster.Tick(1);
    cluster.Stabilize();
  }
  EXPECT_EQ(cluster.raft(1).role(), Role::kLeader);
}

TEST(RaftCheckQuorumTest, FollowerInLeaseIgnoresVotes) {
  TestCluster cluster(3, WithOptions(/*pre_vote=*/false, /*check_quorum=*/true));
  cluster.Elect(1);
  uint64_t term = cluster.raft(2).term();
  Message vote{.type = MessageType::kVote,
               .from = 3,
               .to = 2,
               .term = term + 5,
               .log_term = 100,
               .index = 100};
  ASSERT_TRUE(cluster.node(2).Step(vote).ok());
  EXPECT_EQ(cluster.raft(2).term(), term);
  EXPECT_EQ(cluster.raft(2).lead(), 1u);
}

// ---------------------------------------------------------------------------------------
// Flow control.

TEST(RaftFlowControlTest, InflightAppendsAreBounded) {
  TestCluster cluster(3, [](Config& config, MemoryStorage&) { config.inflight_messages_max = 4; });
  cluster.Elect(1);
  cluster.Propose(1, "warm-up");  // follower 2 is now in replicate state
  ASSERT_EQ(cluster.raft(1).progress().at(2).state, ProgressState::kReplicate);
  cluster.SetDropFilter([](const Message& message) {
    return message.from == 2 && message.type == MessageType::kAppendResponse;
  });
  cluster.ClearSent();
  for (int i = 0; i < 20; ++i) cluster.Propose(1, "p" + std::to_string(i));
  EXPECT_EQ(CountAppendsWithEntries(cluster, 2), 4u);
  EXPECT_EQ(CountAppendsWithEntries(cluster, 3), 20u);
  EXPECT_TRUE(cluster.raft(1).progress().at(2).inflights.Full());
  // A heartbeat response frees one slot.
  cluster.ClearSent();
  cluster.TickAll(1);
  EXPECT_EQ(CountAppendsWithEntries(cluster, 2), 1u);
}

TEST(RaftFlowControlTest, AppendMessagesRespectByteLimit) {
  const uint64_t entry_bytes = Entry::kHeaderSizeBytes + 2;
  TestCluster cluster(
      3, [&](Config& config, MemoryStorage&) { config.message_bytes_max = 3 * entry_bytes; });
  cluster.Elect(1);
  cluster.Isolate(3);
  for (int i = 10; i < 30; ++i) cluster.Propose(1, std::to_string(i));
  cluster.Heal();
  cluster.ClearSent();
  cluster.TickAll(1);
  size_t appends = 0;
  for (const Message& message : cluster.sent()) {
    if (message.type != MessageType::kAppend || message.to != 3) continue;
    ++appends;
    EXPECT_LE(message.entries.size(), 3u);
  }
  EXPECT_GE(appends, 7u);
  EXPECT_EQ(cluster.at(3).applied.size(), 20u);
}

// ---------------------------------------------------------------------------------------
// ReadIndex.

TEST(RaftReadIndexTest, LeaderAndFollowerReadsNeedAQuorum) {
  TestCluster cluster(3);
  cluster.Elect(1);
  cluster.Propose(1, "a");
  uint64_t committed = cluster.raft(1).log().committed();
  ASSERT_TRUE(cluster.node(1).ReadIndex("leader-read").ok());
  cluster.Stabilize();
  ASSERT_EQ(cluster.at(1).read_states.size(), 1u);
  EXPECT_EQ(cluster.at(1).read_states[0], (ReadState{committed, "leader-read"}));
  ASSERT_TRUE(cluster.node(2).ReadIndex("follower-read").ok());
  cluster.Stabilize();
  ASSERT_EQ(cluster.at(2).read_states.size(), 1u);
  EXPECT_EQ(cluster.at(2).read_states[0], (ReadState{committed, "follower-read"}));
  // A leader cut off from the others cannot confirm it still leads: no answer.
  cluster.Isolate(1);
  ASSERT_TRUE(cluster.node(1).ReadIndex("isolated-read").ok());
  cluster.Stabilize();
  cluster.Tick(1, 3);
  cluster.Stabilize();
  EXPECT_EQ(cluster.at(1).read_states.size(), 1u);
}

TEST(RaftReadIndexTest, ReadsWaitForFirstCommitOfTheTerm) {
  TestCluster cluster(3);
  // Drop every append so the new leader's empty entry does not commit.
  cluster.SetDropFilter([](const Message& m) { return m.type == MessageType::kAppend; });
  cluster.Elect(1);
  ASSERT_TRUE(cluster.node(1).ReadIndex("r").ok());
  cluster.Stabilize();
  EXPECT_TRUE(cluster.at(1).read_states.empty());
  cluster.SetDropFilter({});
  cluster.TickAll(2);
  ASSERT_EQ(cluster.at(1).read_states.size(), 1u);
  EXPECT_EQ(cluster.at(1).read_states[0].index, cluster.raft(1).log().committed());
}

TEST(RaftReadIndexTest, PendingReadsAreBounded) {
  TestCluster cluster(3);
  cluster.SetDropFilter([](const Message& m) { return m.type == MessageType::kAppend; });
  cluster.Elect(1);  // its first entry cannot commit: reads wait
  for (size_t i = 0; i < kPendingReadIndexMax; ++i) {
    ASSERT_TRUE(cluster.node(1).ReadIndex("r" + std::to_string(i)).ok());
  }
  EXPECT_EQ(cluster.node(1).ReadIndex("one too many").code(), StatusCode::kResourceExhausted);
  cluster.SetDropFilter({});
  cluster.TickAll(2);
  EXPECT_EQ(cluster.at(1).read_states.size(), kPendingReadIndexMax);
}

// ---------------------------------------------------------------------------------------
// Leader transfer.

TEST(RaftLeaderTransferTest, TransferToUpToDateFollower) {
  TestCluster cluster(3);
  cluster.Elect(1);
  uint64_t term = cluster.raft(1).term();
  cluster.node(1).TransferLeader(2);
  cluster.Stabilize();
  EXPECT_EQ(cluster.raft(2).role(), Role::kLeader);
  EXPECT_EQ(cluster.raft(2).term(), term + 1);
  EXPECT_EQ(cluster.raft(1).lead(), 2u);
}

TEST(RaftLeaderTransferTest, TransferToLaggingFollowerCatchesItUpFirst) {
  TestCluster cluster(3);
  cluster.Elect(1);
  cluster.Isolate(3);
  for (int i = 0; i < 5; ++i) cluster.Propose(1, "x");
  cluster.Heal();
  cluster.node(1).TransferLeader(3);
  // Proposals are refused while the transfer is in progress.
  EXPECT_TRUE(IsProposalDropped(cluster.node(1).Propose("refused")));
  cluster.Stabilize();
  cluster.TickAll(1);
  EXPECT_EQ(cluster.raft(3).role(), Role::kLeader);
  EXPECT_EQ(cluster.at(3).applied.size(), 5u);
}

TEST(RaftLeaderTransferTest, TransferToUnreachableFollowerIsAbandoned) {
  TestCluster cluster(3);
  cluster.Elect(1);
  cluster.Isolate(3);
  cluster.node(1).TransferLeader(3);
  cluster.Stabilize();
  EXPECT_EQ(cluster.raft(1).lead_transferee(), 3u);
  for (int i = 0; i < 10; ++i) cluster.TickAll(1);
  EXPECT_EQ(cluster.raft(1).lead_transferee(), kNoNode);
  EXPECT_EQ(cluster.raft(1).role(), Role::kLeader);
  cluster.Propose(1, "accepted again");
  EXPECT_EQ(cluster.at(2).applied.size(), 1u);
}

// ---------------------------------------------------------------------------------------
// Snapshots.

TEST(RaftSnapshotTest, LaggingFollowerInstallsSnapshotThenCatchesUp) {
  TestCluster cluster(3);
  cluster.Elect(1);
  cluster.Isolate(3);
  for (int i = 0; i < 10; ++i) cluster.Propose(1, "v" + std::to_string(i));
  MemoryStorage& storage = cluster.at(1).storage;
  uint64_t applied = cluster.raft(1).log().applied();
  storage.CreateSnapshot(applied, cluster.raft(1).config_state(),
                         "state@" + std::to_string(applied));
  storage.Compact(applied);
  cluster.Propose(1, "after");
  cluster.Heal();
  cluster.TickAll(3);
  EXPECT_EQ(cluster.at(3).storage.GetSnapshot().metadata.index, applied);
  EXPECT_EQ(cluster.at(3).storage.GetSnapshot().data, "state@" + std::to_string(applied));
  EXPECT_EQ(cluster.raft(3).log().LastIndex(), cluster.raft(1).log().LastIndex());
  EXPECT_EQ(cluster.raft(3).log().committed(), cluster.raft(1).log().committed());
  ASSERT_EQ(cluster.at(3).applied.size(), 1u);  // the rest came in the snapshot
  EXPECT_EQ(cluster.at(3).applied[0].data, "after");
  EXPECT_EQ(cluster.raft(1).progress().at(3).state, ProgressState::kReplicate);
}

TEST(RaftSnapshotTest, RestartFromSnapshotKeepsState) {
  TestCluster cluster(3);
  cluster.Elect(1);
  for (int i = 0; i < 4; ++i) cluster.Propose(1, "v");
  MemoryStorage& storage = cluster.at(2).storage;
  uint64_t applied = cluster.raft(2).log().applied();
  storage.CreateSnapshot(applied, cluster.raft(2).config_state(), "s");
  storage.Compact(applied);
  HardState before = cluster.raft(2).hard_state();
  cluster.Start(2);  // restart
  EXPECT_EQ(cluster.raft(2).hard_state(), before);
  EXPECT_EQ(cluster.raft(2).log().applied(), applied);
  EXPECT_EQ(cluster.raft(2).config_state(), (ConfigState{{1, 2, 3}, {}}));
  cluster.Propose(1, "w");
  EXPECT_EQ(cluster.raft(2).log().committed(), cluster.raft(1).log().committed());
}

// ---------------------------------------------------------------------------------------
// Membership changes.

TEST(RaftMembershipTest, AddVoterThenRemoveVoter) {
  TestCluster cluster(3);
  cluster.AddNode(4, ConfigState{{1, 2, 3}, {}});
  cluster.Elect(1);
  ASSERT_TRUE(cluster.node(1).ProposeConfigChange({ConfigChangeType::kAddVoter, 4}).ok());
  // One change at a time.
  EXPECT_EQ(cluster.node(1).ProposeConfigChange({ConfigChangeType::kAddVoter, 5}).code(),
            StatusCode::kFailedPrecondition);
  cluster.Stabilize();
  for (NodeId id = 1; id <= 4; ++id) {
    EXPECT_EQ(cluster.raft(id).config_state(), (ConfigState{{1, 2, 3, 4}, {}})) << id;
  }
  cluster.Propose(1, "a");
  EXPECT_EQ(cluster.at(4).applied.size(), 1u);

  ASSERT_TRUE(cluster.node(1).ProposeConfigChange({ConfigChangeType::kRemoveNode, 3}).ok());
  cluster.Stabilize();
  EXPECT_EQ(cluster.raft(1).config_state(), (ConfigState{{1, 2, 4}, {}}));
  cluster.Isolate(3);
  cluster.Isolate(4);
  cluster.Heal();
  cluster.Isolate(3);
  cluster.Propose(1, "b");  // 3 of the old 4 would be needed; 2 of 3 suffice now
  EXPECT_EQ(cluster.at(2).applied.size(), 2u);
  EXPECT_EQ(cluster.raft(1).log().committed(), cluster.raft(4).log().committed());
}

TEST(RaftMembershipTest, LearnerReplicatesButDoesNotVoteOrCount) {
  TestCluster cluster(2);
  cluster.AddNode(3, ConfigState{{1, 2}, {}});
  cluster.Elect(1);
  ASSERT_TRUE(cluster.node(1).ProposeConfigChange({ConfigChangeType::kAddLearner, 3}).ok());
  cluster.Stabilize();
  EXPECT_EQ(cluster.raft(3).config_state(), (ConfigState{{1, 2}, {3}}));
  cluster.Propose(1, "a");
  EXPECT_EQ(cluster.at(3).applied.size(), 1u);
  // With 2 cut off, the learner does not make a quorum.
  cluster.Isolate(2);
  uint64_t committed = cluster.raft(1).log().committed();
  cluster.Propose(1, "b");
  EXPECT_EQ(cluster.raft(1).log().committed(), committed);
  // A learner never campaigns.
  for (int i = 0; i < 50; ++i) cluster.Tick(3);
  EXPECT_EQ(cluster.raft(3).role(), Role::kFollower);
  cluster.Heal();
  cluster.Stabilize();
  // Promotion.
  cluster.TickAll(1);
  ASSERT_TRUE(cluster.node(1).ProposeConfigChange({ConfigChangeType::kAddVoter, 3}).ok());
  cluster.Stabilize();
  EXPECT_EQ(cluster.raft(1).config_state(), (ConfigState{{1, 2, 3}, {}}));
}

TEST(RaftMembershipTest, RemovedLeaderHandsOverLeadership) {
  TestCluster cluster(3);
  cluster.Elect(1);
  ASSERT_TRUE(cluster.node(1).ProposeConfigChange({ConfigChangeType::kRemoveNode, 1}).ok());
  cluster.Stabilize();  // commit, apply, TimeoutNow to the best voter, its election
  EXPECT_EQ(cluster.raft(2).config_state(), (ConfigState{{2, 3}, {}}));
  cluster.TickAll(1);  // the old leader's heartbeat is answered with the new term
  EXPECT_EQ(cluster.raft(1).role(), Role::kFollower);
  EXPECT_TRUE(cluster.raft(2).role() == Role::kLeader || cluster.raft(3).role() == Role::kLeader);
  NodeId leader = cluster.raft(2).role() == Role::kLeader ? 2 : 3;
  cluster.Propose(leader, "after removal");
  EXPECT_EQ(cluster.at(5 - leader).applied.size(), 1u);
}

// Voters {1, 2}; leader 1 removes itself, but 2 never hears that the removal committed, and
// 1's log is at least as long, so 2 cannot win 1's vote under the old membership. 2 learns
// the commit from 1's vote rejection (LearnCommit), applies the removal and wins alone.
TEST(RaftMembershipTest, RemovedLeaderDoesNotStrandTheRemainingVoter) {
  TestCluster cluster(2);
  cluster.Elect(1);
  cluster.Propose(1, "a");
  ASSERT_TRUE(cluster.node(1).ProposeConfigChange({ConfigChangeType::kRemoveNode, 1}).ok());
  uint64_t change_index = cluster.raft(1).log().LastIndex();
  // 2 appends and acknowledges the change but hears nothing else from 1 (no commit index,
  // no TimeoutNow).
  cluster.SetDropFilter([&](const Message& message) {
    return message.from == 1 && message.to == 2 &&
           (message.type != MessageType::kAppend || message.commit >= change_index);
  });
  cluster.Stabilize();
  EXPECT_EQ(cluster.raft(1).config_state(), (ConfigState{{2}, {}}));
  EXPECT_EQ(cluster.raft(2).config_state(), (ConfigState{{1, 2}, {}}));
  EXPECT_EQ(cluster.raft(2).log().LastIndex(), change_index);
  EXPECT_LT(cluster.raft(2).log().committed(), change_index);
  EXPECT_TRUE(IsProposalDropped(cluster.node(1).Propose("refused")));
  // 1 (the lame duck) loses check-quorum and steps down; then 2 campaigns.
  cluster.Isolate(2);
  for (int i = 0; i < 25; ++i) {
    cluster.Tick(1);
    cluster.Stabilize();
  }
  EXPECT_EQ(cluster.raft(1).role(), Role::kFollower);
  cluster.Heal();
  cluster.SetDropFilter({});
  cluster.TickAll(60);
  EXPECT_EQ(cluster.raft(2).role(), Role::kLeader);
  EXPECT_EQ(cluster.raft(2).config_state(), (ConfigState{{2}, {}}));
  cluster.Propose(2, "b");
  EXPECT_EQ(cluster.at(2).applied.back().data, "b");
}

// Regression (simulation seed 5734): a candidate that applied its own removal and then
// received enough votes crashed in BecomeLeader.
TEST(RaftMembershipTest, CandidateRemovedWhileCampaigningStopsCampaigning) {
  MemoryStorage storage;
  storage.SetInitialConfig(ConfigState{{1, 2, 3}, {}});
  env::Random random(1);
  Raft raft(Config{.id = 1, .storage = &storage, .random = &random, .pre_vote = false});
  ASSERT_TRUE(raft.Step(Message{.type = MessageType::kHup}).ok());
  ASSERT_EQ(raft.role(), Role::kCandidate);
  raft.ApplyConfigChange({ConfigChangeType::kRemoveNode, 1});
  EXPECT_EQ(raft.role(), Role::kFollower);
  for (NodeId from : {2, 3}) {
    ASSERT_TRUE(
        raft
            .Step(Message{
                .type = MessageType::kVoteResponse, .from = from, .to = 1, .term = raft.term()})
            .ok());
  }
  EXPECT_EQ(raft.role(), Role::kFollower);
  for (int i = 0; i < 100; ++i) raft.Tick();  // and never campaigns again
  EXPECT_EQ(raft.role(), Role::kFollower);
}

TEST(RaftMembershipTest, LastVoterCannotBeRemoved) {
  TestCluster cluster(1);
  cluster.Elect(1);
  ASSERT_TRUE(cluster.node(1).ProposeConfigChange({ConfigChangeType::kRemoveNode, 1}).ok());
  cluster.Stabilize();
  EXPECT_EQ(cluster.raft(1).config_state(), (ConfigState{{1}, {}}));
  EXPECT_EQ(cluster.raft(1).role(), Role::kLeader);
}

// ---------------------------------------------------------------------------------------
// Boundaries.

TEST(RawNodeTest, RejectsLocalMessagesAndStrangers) {
  TestCluster cluster(3);
  EXPECT_EQ(cluster.node(1).Step(Message{.type = MessageType::kHup, .from = 2, .to = 1}).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(cluster.node(1)
                .Step(Message{.type = MessageType::kAppendResponse, .from = 9, .to = 1, .term = 1})
                .code(),
            StatusCode::kNotFound);
  EXPECT_EQ(cluster.node(1).Step(Message{.type = MessageType::kAppend, .from = 2, .to = 3}).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(cluster.node(1).ReadIndex("").code(), StatusCode::kInvalidArgument);
}

TEST(RawNodeTest, RejectsMalformedPeerMessages) {
  TestCluster cluster(3);
  Message gap{
      .type = MessageType::kAppend, .from = 2, .to = 1, .term = 2, .log_term = 1, .index = 0};
  gap.entries.push_back(Entry{.term = 2, .index = 1});
  gap.entries.push_back(Entry{.term = 2, .index = 3});
  EXPECT_EQ(cluster.node(1).Step(gap).code(), StatusCode::kInvalidArgument);
  Message future{.type = MessageType::kAppend, .from = 2, .to = 1, .term = 2, .index = 0};
  future.entries.push_back(Entry{.term = 5, .index = 1});
  EXPECT_EQ(cluster.node(1).Step(future).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(cluster.node(1)
                .Step(Message{.type = MessageType::kSnapshot, .from = 2, .to = 1, .term = 2})
                .code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(cluster.node(1).Step(Message{.type = MessageType::kPropose, .from = 2, .to = 1}).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(cluster.node(1).Step(Message{.type = MessageType::kVote, .from = 2, .to = 1}).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(cluster.raft(1).log().LastIndex(), 0u);
  EXPECT_EQ(cluster.raft(1).term(), 0u);
}

TEST(RawNodeTest, ReadyCarriesHardStateOnlyWhenChanged) {
  TestCluster cluster(1);
  RawNode& node = cluster.node(1);
  ASSERT_TRUE(node.Campaign().ok());
  ASSERT_TRUE(node.HasReady());
  Ready ready = node.GetReady();
  ASSERT_TRUE(ready.hard_state.has_value());
  EXPECT_EQ(ready.hard_state->term, 1u);
  EXPECT_EQ(ready.hard_state->vote, 1u);
  EXPECT_EQ(ready.entries.size(), 1u);
  ASSERT_TRUE(ready.soft_state.has_value());
  EXPECT_EQ(ready.soft_state->role, Role::kLeader);
  EXPECT_FALSE(node.HasReady());  // outstanding
  cluster.at(1).storage.Append(ready.entries);
  cluster.at(1).storage.SetHardState(*ready.hard_state);
  node.Advance();
  EXPECT_FALSE(node.HasReady());
}

}  // namespace
}  // namespace cairn::raft
