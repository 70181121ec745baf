// Raft: the pure consensus state machine (Raft paper and Ongaro's thesis), in the style of
// etcd-io/raft. It performs no I/O and keeps no clock: the caller feeds it ticks (Tick) and
// messages (Step), and collects the messages it wants sent (TakeMessages). Randomness
// (election timeouts) comes from the injected env::Random, so the same inputs always give
// the same outputs. Most callers use RawNode (raw_node.h), which adds the Ready/Advance
// protocol on top.
//
// Implemented: elections with randomized timeouts, pre-vote, check-quorum (leader lease for
// votes), log replication with the consistency check and fast backtracking, commit by
// quorum of current-term entries only, heartbeats, flow control (inflight count and bytes,
// message bytes), ReadIndex (safe: confirmed by a heartbeat quorum), leader transfer,
// snapshot send/install, single-server membership changes (voters and learners).
//
// Thread-safety: not thread-safe; one thread drives a Raft.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "src/env/random.h"
#include "src/raft/progress.h"
#include "src/raft/raft_log.h"
#include "src/raft/storage.h"
#include "src/raft/types.h"

namespace cairn::raft {

// Bounds on what one Raft holds; each is enforced and tested.
// A Ready's committed entries are bounded so that apply batches stay small.
inline constexpr uint64_t kCommittedEntriesBytesMaxDefault = 8 * 1024 * 1024;
// One append message carries at most this many bytes of entries (at least one entry, which
// the request size limit bounds) — etcd's default MaxSizePerMsg is 1 MiB.
inline constexpr uint64_t kMessageBytesMaxDefault = 1024 * 1024;
// Appends in flight per follower before waiting for acknowledgements (etcd: 256).
inline constexpr size_t kInflightMessagesMaxDefault = 256;
// Bytes in flight per follower: 64 full messages.
inline constexpr uint64_t kInflightBytesMaxDefault = 64 * kMessageBytesMaxDefault;
// Entries in one ProposeBatch: bounds the work of one call; the node layer batches requests
// up to this many per proposal.
inline constexpr size_t kProposalBatchEntriesMax = 4096;
// ReadIndex requests waiting for a heartbeat quorum or for the leader's first commit.
inline constexpr size_t kPendingReadIndexMax = 4096;
// Election timeouts shorter than this (in heartbeats) make spurious elections likely.
inline constexpr int kElectionToHeartbeatRatioMin = 2;

struct Config {
  // This node's id. REQUIRES: != kNoNode.
  NodeId id = kNoNode;
  // A follower that hears nothing from a leader for a random number of ticks in
  // [election_ticks, 2 * election_ticks) campaigns. Default: 10.
  int election_ticks = 10;
  // A leader sends heartbeats every heartbeat_ticks. Default: 1.
  int heartbeat_ticks = 1;
  // Durable state; the membership and hard state to start from come from it. Not owned.
  const Storage* storage = nullptr;
  // Source of election timeout jitter. Not owned.
  env::Random* random = nullptr;
  // The last index the caller applied (on restart). Default: 0 (from the snapshot).
  uint64_t applied = 0;
  // Default: kMessageBytesMaxDefault.
  uint64_t message_bytes_max = kMessageBytesMaxDefault;
  // Default: kInflightMessagesMaxDefault.
  size_t inflight_messages_max = kInflightMessagesMaxDefault;
  // Default: kInflightBytesMaxDefault.
  uint64_t inflight_bytes_max = kInflightBytesMaxDefault;
  // Default: kCommittedEntriesBytesMaxDefault.
  uint64_t committed_entries_bytes_max = kCommittedEntriesBytesMaxDefault;
  // A leader that has not heard from a quorum within an election timeout steps down, and
  // followers that heard from a leader within an election timeout refuse votes. Default: on.
  bool check_quorum = true;
  // Candidates first ask whether they could win (without raising terms), so a partitioned
  // node rejoining does not disrupt the cluster. Default: on.
  bool pre_vote = true;

  Status Validate() const;
};

// The result of a ReadIndex request: reads with `context` are linearizable once the state
// machine has applied `index`.
struct ReadState {
  uint64_t index = 0;
  std::string context;
  friend bool operator==(const ReadState&, const ReadState&) = default;
};

struct SoftState {
  NodeId lead = kNoNode;
  Role role = Role::kFollower;
  friend bool operator==(const SoftState&, const SoftState&) = default;
};

// Returned when a proposal cannot be accepted here (no leader known, a leader transfer in
// progress, this node was removed): the caller retries, possibly elsewhere.
Status ProposalDroppedError();
bool IsProposalDropped(const Status& status);

class Raft {
 public:
  explicit Raft(const Config& config);
  Raft(const Raft&) = delete;
  Raft& operator=(const Raft&) = delete;

  // Advances logical time by one tick.
  void Tick();
  // Processes a message from the network or a local request (kHup, kPropose, ...).
  Status Step(Message message);

  // Applies a committed (and applied-by-the-caller) configuration change. Changes that
  // would leave no voter are ignored. Returns the resulting membership.
  ConfigState ApplyConfigChange(const ConfigChange& change);

  // Called (by RawNode::Advance) after the caller applied more entries.
  void OnApplied();

  std::vector<Message> TakeMessages();
  std::vector<ReadState> TakeReadStates();
  bool HasMessages() const { return !messages_.empty(); }
  bool HasReadStates() const { return !read_states_.empty(); }

  NodeId id() const { return id_; }
  uint64_t term() const { return term_; }
  NodeId vote() const { return vote_; }
  NodeId lead() const { return lead_; }
  Role role() const { return role_; }
  NodeId lead_transferee() const { return lead_transferee_; }
  HardState hard_state() const { return HardState{term_, vote_, log_.committed()}; }
  SoftState soft_state() const { return SoftState{lead_, role_}; }
  ConfigState config_state() const;
  const RaftLog& log() const { return log_; }
  RaftLog& mutable_log() { return log_; }
  const std::map<NodeId, Progress>& progress() const { return progress_; }
  const Config& config() const { return config_; }
  int randomized_election_timeout_ticks() const { return randomized_election_timeout_ticks_; }

 private:
  struct ReadIndexRequest {
    Message request;
    uint64_t index = 0;
    std::set<NodeId> acks;
  };
  enum class VoteResult { kPending, kWon, kLost };

  // Role transitions.
  void Reset(uint64_t term);
  void BecomeFollower(uint64_t term, NodeId lead);
  void BecomePreCandidate();
  void BecomeCandidate();
  void BecomeLeader();
  void ResetRandomizedElectionTimeout();
  bool Promotable() const;
  bool HasUnappliedConfigChange() const;
  void Hup(bool transfer);
  void Campaign(bool pre_vote, bool transfer);
  VoteResult Poll(NodeId from, bool granted);

  // Step helpers.
  Status StepLeader(Message& message);
  Status StepCandidate(Message& message);
  Status StepFollower(Message& message);
  void HandleVoteRequest(const Message& message);
  void LearnCommit(const Message& message);
  void HandleAppend(const Message& message);
  void HandleHeartbeat(const Message& message);
  void HandleSnapshot(const Message& message);
  void HandleAppendResponse(const Message& message, Progress& progress);
  void HandleHeartbeatResponse(const Message& message, Progress& progress);
  void HandleTransferLeader(const Message& message, Progress& progress);
  Status HandleProposal(Message& message);
  Status HandleReadIndex(Message& message);
  bool RestoreSnapshot(const Snapshot& snapshot);

  // Leader replication.
  void AppendLocal(std::vector<Entry> entries);
  bool SendAppend(NodeId to, bool send_if_empty = true);
  bool SendSnapshot(NodeId to, Progress& progress);
  void BroadcastAppend();
  void BroadcastHeartbeat(const std::string& context);
  bool MaybeCommit();
  bool QuorumActive() const;
  size_t VoterCount() const;
  size_t Quorum() const { return VoterCount() / 2 + 1; }
  bool CommittedEntryInCurrentTerm() const;
  void ReleasePendingReadIndexMessages();
  void StartReadIndex(const Message& request);
  void RespondToReadIndex(const Message& request, uint64_t index);
  void AbortLeaderTransfer() { lead_transferee_ = kNoNode; }

  bool IsVoter(NodeId id) const;
  // Lame-duck leader: start a transfer to the voter with the highest match.
  void TransferToBestVoter();
  void ApplyConfigState(const ConfigState& config);
  void AddProgress(NodeId id, bool is_learner);
  void Send(Message message);

  Config config_;
  NodeId id_;
  uint64_t term_ = 0;
  NodeId vote_ = kNoNode;
  NodeId lead_ = kNoNode;
  Role role_ = Role::kFollower;
  RaftLog log_;
  // Every voter and learner, this node included when it is a member.
  std::map<NodeId, Progress> progress_;
  std::map<NodeId, bool> votes_;
  std::vector<Message> messages_;
  std::vector<ReadState> read_states_;
  int election_elapsed_ticks_ = 0;
  int heartbeat_elapsed_ticks_ = 0;
  int randomized_election_timeout_ticks_ = 0;
  NodeId lead_transferee_ = kNoNode;
  // Follower: a TimeoutNow arrived while a committed configuration change was unapplied.
  bool campaign_after_apply_ = false;
  // Leader: index of the last configuration change proposed; no other is accepted until
  // it is applied (one change at a time).
  uint64_t pending_config_index_ = 0;
  // Leader: ReadIndex requests awaiting a heartbeat quorum, oldest first.
  std::deque<ReadIndexRequest> read_index_queue_;
  // Leader: ReadIndex requests received before the first commit of this term.
  std::vector<Message> pending_read_index_messages_;
};

}  // namespace cairn::raft
