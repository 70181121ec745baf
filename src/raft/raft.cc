#include "src/raft/raft.h"

#include <algorithm>
#include <limits>

namespace cairn::raft {

namespace {
constexpr std::string_view kProposalDroppedMessage = "raft: proposal dropped";

MessageType VoteResponseType(MessageType type) {
  return type == MessageType::kVote ? MessageType::kVoteResponse : MessageType::kPreVoteResponse;
}
}  // namespace

Status ProposalDroppedError() { return Status::Unavailable(kProposalDroppedMessage); }
bool IsProposalDropped(const Status& status) {
  return status.code() == StatusCode::kUnavailable && status.message() == kProposalDroppedMessage;
}

Status Config::Validate() const {
  if (id == kNoNode) return Status::InvalidArgument("raft: id must not be 0");
  if (heartbeat_ticks <= 0) return Status::InvalidArgument("raft: heartbeat_ticks must be > 0");
  if (election_ticks < kElectionToHeartbeatRatioMin * heartbeat_ticks) {
    return Status::InvalidArgument("raft: election_ticks must be >= 2 * heartbeat_ticks");
  }
  if (storage == nullptr) return Status::InvalidArgument("raft: storage is required");
  if (random == nullptr) return Status::InvalidArgument("raft: random is required");
  if (message_bytes_max == 0) return Status::InvalidArgument("raft: message_bytes_max is 0");
  if (inflight_messages_max == 0) {
    return Status::InvalidArgument("raft: inflight_messages_max must be > 0");
  }
  if (inflight_bytes_max < message_bytes_max) {
    return Status::InvalidArgument("raft: inflight_bytes_max must be >= message_bytes_max");
  }
  if (committed_entries_bytes_max == 0) {
    return Status::InvalidArgument("raft: committed_entries_bytes_max is 0");
  }
  return Status::Ok();
}

Raft::Raft(const Config& config) : config_(config), id_(config.id), log_(config.storage) {
  CAIRN_CHECK_OK(config.Validate());
  HardState hard_state = config.storage->InitialHardState();
  ApplyConfigState(config.storage->InitialConfigState());
  if (!hard_state.IsEmpty()) {
    CAIRN_CHECK_MSG(hard_state.commit <= log_.LastIndex(), "hard state commit beyond the log");
    log_.CommitTo(hard_state.commit);
    term_ = hard_state.term;
    vote_ = hard_state.vote;
  }
  if (config.applied > log_.applied()) log_.AppliedTo(config.applied);
  NodeId vote = vote_;
  BecomeFollower(term_, kNoNode);
  vote_ = vote;
}

// ---------------------------------------------------------------------------------------
// Time.

void Raft::Tick() {
  // Saturates: a learner cut off from its leader for years must not overflow.
  if (election_elapsed_ticks_ < std::numeric_limits<int>::max()) ++election_elapsed_ticks_;
  if (role_ != Role::kLeader) {
    if (Promotable() && election_elapsed_ticks_ >= randomized_election_timeout_ticks_) {
      election_elapsed_ticks_ = 0;
      CAIRN_CHECK_OK(Step(Message{.type = MessageType::kHup, .from = id_}));
    }
    return;
  }
  ++heartbeat_elapsed_ticks_;
  if (election_elapsed_ticks_ >= config_.election_ticks) {
    election_elapsed_ticks_ = 0;
    if (config_.check_quorum) {
      CAIRN_CHECK_OK(Step(Message{.type = MessageType::kCheckQuorum, .from = id_}));
    }
    // A transfer that did not finish within an election timeout is abandoned (a lame duck
    // tries again, possibly with another voter).
    if (role_ == Role::kLeader) {
      AbortLeaderTransfer();
      if (!IsVoter(id_)) TransferToBestVoter();
    }
  }
  if (role_ != Role::kLeader) return;
  if (heartbeat_elapsed_ticks_ >= config_.heartbeat_ticks) {
    heartbeat_elapsed_ticks_ = 0;
    CAIRN_CHECK_OK(Step(Message{.type = MessageType::kBeat, .from = id_}));
  }
}

// ---------------------------------------------------------------------------------------
// Role transitions.

void Raft::ResetRandomizedElectionTimeout() {
  randomized_election_timeout_ticks_ =
      config_.election_ticks +
      static_cast<int>(config_.random->Uniform(static_cast<uint64_t>(config_.election_ticks)));
}

void Raft::Reset(uint64_t term) {
  if (term_ != term) {
    CAIRN_CHECK(term > term_);
    term_ = term;
    vote_ = kNoNode;
  }
  lead_ = kNoNode;
  election_elapsed_ticks_ = 0;
  heartbeat_elapsed_ticks_ = 0;
  ResetRandomizedElectionTimeout();
  AbortLeaderTransfer();
  votes_.clear();
  for (auto& [id, progress] : progress_) {
    bool is_learner = progress.is_learner;
    progress =
        Progress(log_.LastIndex() + 1, config_.inflight_messages_max, config_.inflight_bytes_max);
    progress.is_learner = is_learner;
    if (id == id_) progress.match = log_.LastIndex();
  }
  pending_config_index_ = 0;
  campaign_after_apply_ = false;
  read_index_queue_.clear();
  pending_read_index_messages_.clear();
}

void Raft::BecomeFollower(uint64_t term, NodeId lead) {
  Reset(term);
  lead_ = lead;
  role_ = Role::kFollower;
}

void Raft::BecomePreCandidate() {
  CAIRN_CHECK_MSG(role_ != Role::kLeader, "leader cannot become pre-candidate");
  // The term and vote do not change: a pre-vote only asks whether an election could win.
  votes_.clear();
  lead_ = kNoNode;
  role_ = Role::kPreCandidate;
}

void Raft::BecomeCandidate() {
  CAIRN_CHECK_MSG(role_ != Role::kLeader, "leader cannot become candidate");
  Reset(term_ + 1);
  vote_ = id_;
  role_ = Role::kCandidate;
}

void Raft::BecomeLeader() {
  CAIRN_CHECK_MSG(role_ == Role::kCandidate, "only a candidate becomes leader");
  CAIRN_CHECK_MSG(IsVoter(id_), "only a voter becomes leader");
  Reset(term_);
  lead_ = id_;
  role_ = Role::kLeader;
  Progress& self = progress_.at(id_);
  self.BecomeReplicate();
  self.recent_active = true;
  // Entries before this index may hold a configuration change not yet applied here;
  // refuse new changes until everything up to it is applied.
  pending_config_index_ = log_.LastIndex();
  // An empty entry of the new term: committing it commits everything before it (§5.4.2)
  // and lets ReadIndex know the commit index is current.
  AppendLocal({Entry{}});
}

bool Raft::Promotable() const {
  auto it = progress_.find(id_);
  return it != progress_.end() && !it->second.is_learner && !log_.UnstableSnapshot();
}

bool Raft::HasUnappliedConfigChange() const {
  if (log_.committed() <= log_.applied()) return false;
  Result<std::vector<Entry>> entries =
      log_.Slice(std::max(log_.applied() + 1, log_.FirstIndex()), log_.committed() + 1,
                 std::numeric_limits<uint64_t>::max());
  if (!entries.ok()) return false;
  for (const Entry& entry : *entries) {
    if (entry.type == EntryType::kConfigChange) return true;
  }
  return false;
}

void Raft::Hup(bool transfer) {
  if (role_ == Role::kLeader || !Promotable()) return;
  // Campaigning with a membership that committed entries are about to change is unsafe.
  if (HasUnappliedConfigChange()) {
    // A transfer target campaigns as soon as the change is applied (OnApplied).
    if (transfer) campaign_after_apply_ = true;
    return;
  }
  Campaign(config_.pre_vote && !transfer, transfer);
}

void Raft::OnApplied() {
  if (!campaign_after_apply_ || HasUnappliedConfigChange()) return;
  campaign_after_apply_ = false;
  Hup(/*transfer=*/true);
}

void Raft::Campaign(bool pre_vote, bool transfer) {
  MessageType type;
  uint64_t vote_term;
  if (pre_vote) {
    BecomePreCandidate();
    type = MessageType::kPreVote;
    vote_term = term_ + 1;  // the term an election would use
  } else {
    BecomeCandidate();
    type = MessageType::kVote;
    vote_term = term_;
  }
  if (Poll(id_, true) == VoteResult::kWon) {
    // A single voter wins at once.
    if (pre_vote) {
      Campaign(false, transfer);
    } else {
      BecomeLeader();
    }
    return;
  }
  for (const auto& [id, progress] : progress_) {
    if (id == id_ || progress.is_learner) continue;
    Send(Message{.type = type,
                 .to = id,
                 .term = vote_term,
                 .log_term = log_.LastTerm(),
                 .index = log_.LastIndex(),
                 .context = transfer ? std::string(kCampaignTransferContext) : std::string()});
  }
}

Raft::VoteResult Raft::Poll(NodeId from, bool granted) {
  votes_.emplace(from, granted);  // the first answer of each voter counts
  size_t granted_count = 0;
  size_t rejected_count = 0;
  for (const auto& [id, vote] : votes_) {
    auto it = progress_.find(id);
    if (it == progress_.end() || it->second.is_learner) continue;
    (vote ? granted_count : rejected_count) += 1;
  }
  if (granted_count >= Quorum()) return VoteResult::kWon;
  if (rejected_count > VoterCount() - Quorum()) return VoteResult::kLost;
  return VoteResult::kPending;
}

// ---------------------------------------------------------------------------------------
// Step.

Status Raft::Step(Message message) {
  if (message.term == 0) {
    // Local message, or a proposal/read forwarded by a follower.
  } else if (message.term > term_) {
    if (message.type == MessageType::kVote || message.type == MessageType::kPreVote) {
      bool forced = message.context == kCampaignTransferContext;
      bool in_lease = config_.check_quorum && lead_ != kNoNode &&
                      election_elapsed_ticks_ < config_.election_ticks;
      // A leader was heard within the election timeout: this candidate is disruptive.
      if (!forced && in_lease) return Status::Ok();
    }
    if (message.type == MessageType::kPreVote) {
      // Pre-votes never change the term.
    } else if (message.type == MessageType::kPreVoteResponse && !message.reject) {
      // A granted pre-vote carries the future term; the term rises only if the election
      // actually starts.
    } else if (message.type == MessageType::kAppend || message.type == MessageType::kHeartbeat ||
               message.type == MessageType::kSnapshot) {
      BecomeFollower(message.term, message.from);
    } else {
      BecomeFollower(message.term, kNoNode);
    }
  } else if (message.term < term_) {
    // Tell a stale leader or candidate the newer term, as in the Raft paper, so that it
    // steps down. Memberships are applied at different times on different nodes, so the
    // node with the newer term may not be one the stale node would otherwise hear from
    // (a stale leader that only this node can complete a quorum for; a candidate whose
    // votes this node ignores); staying silent can then block progress forever.
    if (message.type == MessageType::kHeartbeat || message.type == MessageType::kAppend) {
      Send(Message{.type = MessageType::kAppendResponse, .to = message.from});
    } else if (message.type == MessageType::kVote || message.type == MessageType::kPreVote) {
      Send(Message{.type = VoteResponseType(message.type),
                   .to = message.from,
                   .term = term_,
                   .reject = true});
    }
    return Status::Ok();
  }

  if (message.type == MessageType::kVoteResponse || message.type == MessageType::kPreVoteResponse) {
    LearnCommit(message);
  }
  switch (message.type) {
    case MessageType::kHup:
      Hup(/*transfer=*/false);
      return Status::Ok();
    case MessageType::kVote:
    case MessageType::kPreVote:
      HandleVoteRequest(message);
      return Status::Ok();
    default:
      break;
  }
  switch (role_) {
    case Role::kLeader:
      return StepLeader(message);
    case Role::kPreCandidate:
    case Role::kCandidate:
      return StepCandidate(message);
    case Role::kFollower:
      return StepFollower(message);
  }
  return Status::Ok();
}

void Raft::HandleVoteRequest(const Message& message) {
  bool can_vote = vote_ == message.from || (vote_ == kNoNode && lead_ == kNoNode) ||
                  (message.type == MessageType::kPreVote && message.term > term_);
  // Every answer carries this node's commit index and the term there (see LearnCommit).
  uint64_t commit = log_.committed();
  uint64_t commit_term = log_.TermOrZero(commit);
  if (can_vote && log_.IsUpToDate(message.index, message.log_term)) {
    Send(Message{.type = VoteResponseType(message.type),
                 .to = message.from,
                 .term = message.term,
                 .log_term = commit_term,
                 .commit = commit});
    if (message.type == MessageType::kVote) {
      election_elapsed_ticks_ = 0;
      vote_ = message.from;
    }
  } else {
    Send(Message{.type = VoteResponseType(message.type),
                 .to = message.from,
                 .term = term_,
                 .log_term = commit_term,
                 .commit = commit,
                 .reject = true});
  }
}

void Raft::LearnCommit(const Message& message) {
  // The responder knows `commit` is committed. If this log holds the same entry there,
  // Log Matching makes our prefix identical to the responder's, so it is committed here
  // too. This matters after membership changes, which take effect when applied: a voter
  // that did not hear that a change committed would otherwise campaign with the old
  // membership and may need the vote of a removed node whose longer log denies it.
  if (message.commit > log_.committed() && log_.MatchTerm(message.commit, message.log_term)) {
    log_.CommitTo(message.commit);
  }
}

Status Raft::StepLeader(Message& message) {
  switch (message.type) {
    case MessageType::kBeat:
      BroadcastHeartbeat(read_index_queue_.empty() ? std::string()
                                                   : read_index_queue_.back().request.context);
      return Status::Ok();
    case MessageType::kCheckQuorum:
      if (!QuorumActive()) {
        BecomeFollower(term_, kNoNode);
        return Status::Ok();
      }
      for (auto& [id, progress] : progress_) progress.recent_active = id == id_;
      return Status::Ok();
    case MessageType::kPropose:
      return HandleProposal(message);
    case MessageType::kReadIndex:
      return HandleReadIndex(message);
    default:
      break;
  }
  auto it = progress_.find(message.from);
  if (it == progress_.end()) return Status::Ok();  // not (or no longer) a member
  Progress& progress = it->second;
  switch (message.type) {
    case MessageType::kAppendResponse:
      HandleAppendResponse(message, progress);
      break;
    case MessageType::kHeartbeatResponse:
      HandleHeartbeatResponse(message, progress);
      break;
    case MessageType::kSnapshotStatus:
      if (progress.state != ProgressState::kSnapshot) break;
      if (message.reject) progress.pending_snapshot = 0;
      progress.BecomeProbe();
      // Wait for the next heartbeat response before probing.
      progress.probe_sent = true;
      break;
    case MessageType::kUnreachable:
      if (progress.state == ProgressState::kReplicate) progress.BecomeProbe();
      break;
    case MessageType::kTransferLeader:
      HandleTransferLeader(message, progress);
      break;
    default:
      break;
  }
  return Status::Ok();
}

Status Raft::HandleProposal(Message& message) {
  CAIRN_CHECK(!message.entries.empty());
  auto self = progress_.find(id_);
  if (self == progress_.end() || self->second.is_learner) return ProposalDroppedError();
  if (lead_transferee_ != kNoNode) return ProposalDroppedError();
  uint64_t config_index = 0;
  for (size_t i = 0; i < message.entries.size(); ++i) {
    if (message.entries[i].type != EntryType::kConfigChange) continue;
    if (config_index != 0 || pending_config_index_ > log_.applied()) {
      return Status::FailedPrecondition("raft: a configuration change is already pending");
    }
    config_index = log_.LastIndex() + 1 + i;
  }
  if (config_index != 0) pending_config_index_ = config_index;
  AppendLocal(std::move(message.entries));
  BroadcastAppend();
  return Status::Ok();
}

Status Raft::HandleReadIndex(Message& message) {
  if (!IsVoter(id_)) return ProposalDroppedError();  // a lame duck serves no reads
  if (VoterCount() == 1) {
    RespondToReadIndex(message, log_.committed());
    return Status::Ok();
  }
  if (!CommittedEntryInCurrentTerm()) {
    // The commit index may be behind the previous leader's until this term commits.
    if (pending_read_index_messages_.size() >= kPendingReadIndexMax) {
      return Status::ResourceExhausted("raft: too many pending read index requests");
    }
    pending_read_index_messages_.push_back(std::move(message));
    return Status::Ok();
  }
  StartReadIndex(message);
  return Status::Ok();
}

void Raft::StartReadIndex(const Message& request) {
  for (const ReadIndexRequest& pending : read_index_queue_) {
    if (pending.request.context == request.context) return;  // a retry of a pending read
  }
  if (read_index_queue_.size() >= kPendingReadIndexMax) return;  // the client times out
  ReadIndexRequest read{.request = request, .index = log_.committed(), .acks = {id_}};
  read_index_queue_.push_back(std::move(read));
  BroadcastHeartbeat(request.context);
}

void Raft::RespondToReadIndex(const Message& request, uint64_t index) {
  if (request.from == kNoNode || request.from == id_) {
    read_states_.push_back(ReadState{index, request.context});
    return;
  }
  Send(Message{.type = MessageType::kReadIndexResponse,
               .to = request.from,
               .index = index,
               .context = request.context});
}

void Raft::ReleasePendingReadIndexMessages() {
  if (!CommittedEntryInCurrentTerm()) return;
  std::vector<Message> pending = std::move(pending_read_index_messages_);
  pending_read_index_messages_.clear();
  for (Message& message : pending) {
    // A lame duck (removed meanwhile) drops them; the clients retry elsewhere.
    Status status = HandleReadIndex(message);
    (void)status;
  }
}

bool Raft::CommittedEntryInCurrentTerm() const {
  return log_.TermOrZero(log_.committed()) == term_;
}

void Raft::HandleAppendResponse(const Message& message, Progress& progress) {
  progress.recent_active = true;
  if (message.reject) {
    uint64_t next_probe_index = message.reject_hint;
    if (message.log_term > 0) {
      // Skip every entry of ours whose term is above the follower's term at its hint: all
      // of them conflict.
      next_probe_index = log_.FindConflictByTerm(message.reject_hint, message.log_term);
    }
    if (progress.MaybeDecreaseTo(message.index, next_probe_index)) {
      if (progress.state == ProgressState::kReplicate) progress.BecomeProbe();
      SendAppend(message.from);
    }
    return;
  }
  bool updated = progress.MaybeUpdate(message.index);
  if (!updated && !(progress.match == message.index && progress.state == ProgressState::kProbe)) {
    return;
  }
  switch (progress.state) {
    case ProgressState::kProbe:
      progress.BecomeReplicate();
      break;
    case ProgressState::kSnapshot:
      if (progress.match >= progress.pending_snapshot || progress.match + 1 >= log_.FirstIndex()) {
        progress.BecomeProbe();
        progress.BecomeReplicate();
      }
      break;
    case ProgressState::kReplicate:
      progress.inflights.FreeUpTo(message.index);
      break;
  }
  if (MaybeCommit()) {
    ReleasePendingReadIndexMessages();
    BroadcastAppend();
  }
  // Pipeline: keep sending while there is something new and the window allows.
  while (SendAppend(message.from, /*send_if_empty=*/false)) {
  }
  if (message.from == lead_transferee_ && progress.match == log_.LastIndex()) {
    Send(Message{.type = MessageType::kTimeoutNow, .to = message.from});
  }
}

void Raft::HandleHeartbeatResponse(const Message& message, Progress& progress) {
  progress.recent_active = true;
  progress.probe_sent = false;
  if (progress.state == ProgressState::kReplicate && progress.inflights.Full()) {
    progress.inflights.FreeFirst();
  }
  if (progress.match < log_.LastIndex()) SendAppend(message.from);
  if (message.context.empty()) return;
  auto it =
      std::find_if(read_index_queue_.begin(), read_index_queue_.end(),
                   [&](const ReadIndexRequest& r) { return r.request.context == message.context; });
  if (it == read_index_queue_.end()) return;
  it->acks.insert(message.from);
  size_t voter_acks = 0;
  for (NodeId id : it->acks) {
    auto member = progress_.find(id);
    if (member != progress_.end() && !member->second.is_learner) ++voter_acks;
  }
  if (voter_acks < Quorum()) return;
  // Leadership at this heartbeat round is confirmed, which also confirms every earlier read.
  std::vector<ReadIndexRequest> released(read_index_queue_.begin(), it + 1);
  read_index_queue_.erase(read_index_queue_.begin(), it + 1);
  for (const ReadIndexRequest& read : released) RespondToReadIndex(read.request, read.index);
}

void Raft::HandleTransferLeader(const Message& message, Progress& progress) {
  if (progress.is_learner) return;
  NodeId transferee = message.from;
  if (lead_transferee_ == transferee) return;  // already in progress
  AbortLeaderTransfer();
  if (transferee == id_) return;
  // The transfer must finish within one election timeout (see Tick).
  election_elapsed_ticks_ = 0;
  lead_transferee_ = transferee;
  if (progress.match == log_.LastIndex()) {
    Send(Message{.type = MessageType::kTimeoutNow, .to = transferee});
  } else {
    SendAppend(transferee);
  }
}

Status Raft::StepCandidate(Message& message) {
  MessageType expected_response =
      role_ == Role::kPreCandidate ? MessageType::kPreVoteResponse : MessageType::kVoteResponse;
  switch (message.type) {
    case MessageType::kPropose:
      return ProposalDroppedError();
    case MessageType::kReadIndex:
      return ProposalDroppedError();
    case MessageType::kAppend:
      BecomeFollower(message.term, message.from);
      HandleAppend(message);
      break;
    case MessageType::kHeartbeat:
      BecomeFollower(message.term, message.from);
      HandleHeartbeat(message);
      break;
    case MessageType::kSnapshot:
      BecomeFollower(message.term, message.from);
      HandleSnapshot(message);
      break;
    case MessageType::kVoteResponse:
    case MessageType::kPreVoteResponse: {
      if (message.type != expected_response) break;
      VoteResult result = Poll(message.from, !message.reject);
      if (result == VoteResult::kWon) {
        if (role_ == Role::kPreCandidate) {
          Campaign(/*pre_vote=*/false, /*transfer=*/false);
        } else {
          BecomeLeader();
          BroadcastAppend();
        }
      } else if (result == VoteResult::kLost) {
        BecomeFollower(term_, kNoNode);
      }
      break;
    }
    default:
      break;
  }
  return Status::Ok();
}

Status Raft::StepFollower(Message& message) {
  switch (message.type) {
    case MessageType::kPropose:
    case MessageType::kReadIndex:
    case MessageType::kTransferLeader:
      if (lead_ == kNoNode) return ProposalDroppedError();
      if (message.type == MessageType::kTransferLeader && message.from == kNoNode) {
        return Status::InvalidArgument("raft: transfer leader without a transferee");
      }
      message.to = lead_;
      // Forwarded requests keep term 0: the leader treats them as local.
      if (message.type != MessageType::kTransferLeader) message.from = id_;
      Send(std::move(message));
      break;
    case MessageType::kAppend:
      election_elapsed_ticks_ = 0;
      lead_ = message.from;
      HandleAppend(message);
      break;
    case MessageType::kHeartbeat:
      election_elapsed_ticks_ = 0;
      lead_ = message.from;
      HandleHeartbeat(message);
      break;
    case MessageType::kSnapshot:
      election_elapsed_ticks_ = 0;
      lead_ = message.from;
      HandleSnapshot(message);
      break;
    case MessageType::kTimeoutNow:
      // Leader transfer: campaign at once, without pre-vote, overriding leases.
      Hup(/*transfer=*/true);
      break;
    case MessageType::kReadIndexResponse:
      read_states_.push_back(ReadState{message.index, message.context});
      break;
    default:
      break;
  }
  return Status::Ok();
}

void Raft::HandleAppend(const Message& message) {
  if (message.index < log_.committed()) {
    Send(Message{
        .type = MessageType::kAppendResponse, .to = message.from, .index = log_.committed()});
    return;
  }
  std::optional<uint64_t> last_index =
      log_.MaybeAppend(message.index, message.log_term, message.commit, message.entries);
  if (last_index) {
    Send(Message{.type = MessageType::kAppendResponse, .to = message.from, .index = *last_index});
    return;
  }
  // Reject with a hint: the largest index at or below the leader's probe whose term is at
  // most the leader's term there. The leader skips the whole conflicting range at once.
  uint64_t hint_index = std::min(message.index, log_.LastIndex());
  hint_index = log_.FindConflictByTerm(hint_index, message.log_term);
  Send(Message{.type = MessageType::kAppendResponse,
               .to = message.from,
               .log_term = log_.TermOrZero(hint_index),
               .index = message.index,
               .reject = true,
               .reject_hint = hint_index});
}

void Raft::HandleHeartbeat(const Message& message) {
  log_.CommitTo(message.commit);
  Send(Message{
      .type = MessageType::kHeartbeatResponse, .to = message.from, .context = message.context});
}

void Raft::HandleSnapshot(const Message& message) {
  uint64_t index = RestoreSnapshot(message.snapshot) ? log_.LastIndex() : log_.committed();
  Send(Message{.type = MessageType::kAppendResponse, .to = message.from, .index = index});
}

bool Raft::RestoreSnapshot(const Snapshot& snapshot) {
  CAIRN_CHECK(!snapshot.IsEmpty());
  if (snapshot.metadata.index <= log_.committed()) return false;
  if (log_.MatchTerm(snapshot.metadata.index, snapshot.metadata.term)) {
    // We already hold the entries: just fast-forward the commit index.
    log_.CommitTo(snapshot.metadata.index);
    return false;
  }
  log_.Restore(snapshot);
  ApplyConfigState(snapshot.metadata.config);
  return true;
}

// ---------------------------------------------------------------------------------------
// Replication.

void Raft::AppendLocal(std::vector<Entry> entries) {
  uint64_t last_index = log_.LastIndex();
  for (size_t i = 0; i < entries.size(); ++i) {
    entries[i].term = term_;
    entries[i].index = last_index + 1 + i;
  }
  log_.Append(entries);
  progress_.at(id_).MaybeUpdate(log_.LastIndex());
  MaybeCommit();
}

bool Raft::SendAppend(NodeId to, bool send_if_empty) {
  Progress& progress = progress_.at(to);
  if (progress.IsPaused()) return false;
  Result<uint64_t> previous_term = log_.Term(progress.next - 1);
  Result<std::vector<Entry>> entries = log_.EntriesFrom(progress.next, config_.message_bytes_max);
  if (!previous_term.ok() || !entries.ok()) {
    CAIRN_CHECK(previous_term.ok() || IsCompacted(previous_term.status()));
    CAIRN_CHECK(entries.ok() || IsCompacted(entries.status()));
    return SendSnapshot(to, progress);
  }
  if (entries->empty() && !send_if_empty) return false;
  uint64_t size_bytes = 0;
  for (const Entry& entry : *entries) size_bytes += entry.SizeBytes();
  uint64_t previous_index = progress.next - 1;
  uint64_t last_index = entries->empty() ? previous_index : entries->back().index;
  progress.SentEntries(last_index, size_bytes, !entries->empty());
  Send(Message{.type = MessageType::kAppend,
               .to = to,
               .log_term = *previous_term,
               .index = previous_index,
               .commit = log_.committed(),
               .entries = std::move(entries).value()});
  return true;
}

bool Raft::SendSnapshot(NodeId to, Progress& progress) {
  // Only to peers known to be alive: a snapshot is large.
  if (!progress.recent_active) return false;
  Snapshot snapshot = config_.storage->GetSnapshot();
  // The caller may not have a snapshot to send yet (etcd's ErrSnapshotTemporarilyUnavailable):
  // the follower stays in probe and is retried on the next heartbeat response.
  if (snapshot.IsEmpty()) return false;
  progress.BecomeSnapshot(snapshot.metadata.index);
  Send(Message{.type = MessageType::kSnapshot, .to = to, .snapshot = std::move(snapshot)});
  return true;
}

void Raft::BroadcastAppend() {
  for (const auto& [id, progress] : progress_) {
    if (id != id_) SendAppend(id);
  }
}

void Raft::BroadcastHeartbeat(const std::string& context) {
  for (const auto& [id, progress] : progress_) {
    if (id == id_) continue;
    // Never tell a follower to commit beyond what it is known to hold.
    Send(Message{.type = MessageType::kHeartbeat,
                 .to = id,
                 .commit = std::min(progress.match, log_.committed()),
                 .context = context});
  }
}

bool Raft::MaybeCommit() {
  std::vector<uint64_t> matches;
  for (const auto& [id, progress] : progress_) {
    if (!progress.is_learner) matches.push_back(progress.match);
  }
  if (matches.empty()) return false;
  std::sort(matches.begin(), matches.end(), std::greater<uint64_t>());
  uint64_t quorum_index = matches[Quorum() - 1];
  // Only an entry of the current term commits by counting replicas (Raft §5.4.2, Figure 8).
  return log_.MaybeCommit(quorum_index, term_);
}

bool Raft::QuorumActive() const {
  size_t active = 0;
  for (const auto& [id, progress] : progress_) {
    if (!progress.is_learner && (id == id_ || progress.recent_active)) ++active;
  }
  return active >= Quorum();
}

size_t Raft::VoterCount() const {
  size_t count = 0;
  for (const auto& [id, progress] : progress_) count += progress.is_learner ? 0 : 1;
  return count;
}

// ---------------------------------------------------------------------------------------
// Membership.

void Raft::AddProgress(NodeId id, bool is_learner) {
  auto [it, inserted] = progress_.try_emplace(
      id, log_.LastIndex() + 1, config_.inflight_messages_max, config_.inflight_bytes_max);
  it->second.is_learner = is_learner;
  if (inserted) {
    // A new member counts as active so that check-quorum does not fire before it answers.
    it->second.recent_active = true;
    if (id == id_) it->second.match = log_.LastIndex();
  }
}

void Raft::ApplyConfigState(const ConfigState& config) {
  progress_.clear();
  for (NodeId id : config.voters) AddProgress(id, /*is_learner=*/false);
  for (NodeId id : config.learners) {
    CAIRN_CHECK_MSG(!progress_.contains(id), "a node is both voter and learner");
    AddProgress(id, /*is_learner=*/true);
  }
}

ConfigState Raft::ApplyConfigChange(const ConfigChange& change) {
  CAIRN_CHECK(change.node_id != kNoNode);
  auto it = progress_.find(change.node_id);
  bool is_voter = it != progress_.end() && !it->second.is_learner;
  bool leaves_no_voter =
      is_voter && VoterCount() == 1 && change.type != ConfigChangeType::kAddVoter;
  if (!leaves_no_voter) {
    switch (change.type) {
      case ConfigChangeType::kAddVoter:
        AddProgress(change.node_id, false);
        break;
      case ConfigChangeType::kAddLearner:
        AddProgress(change.node_id, true);
        break;
      case ConfigChangeType::kRemoveNode:
        progress_.erase(change.node_id);
        break;
    }
  }
  if ((role_ == Role::kCandidate || role_ == Role::kPreCandidate) && !IsVoter(id_)) {
    // Removed or demoted while campaigning (the caller applied the change meanwhile).
    BecomeFollower(term_, kNoNode);
  }
  if (role_ == Role::kLeader) {
    if (lead_transferee_ != kNoNode && !IsVoter(lead_transferee_)) AbortLeaderTransfer();
    // A smaller quorum may commit more; a new member should not wait for a heartbeat.
    MaybeCommit();
    BroadcastAppend();
    if (!IsVoter(id_)) {
      // Removed or demoted: rather than step down at once (leaving an election timeout
      // without a leader), the leader becomes a lame duck: it accepts no proposals or reads,
      // does not count itself, keeps replicating and heartbeating (so the others learn that
      // this change committed), and hands leadership to the most up-to-date voter.
      TransferToBestVoter();
    }
  }
  return config_state();
}

bool Raft::IsVoter(NodeId id) const {
  auto it = progress_.find(id);
  return it != progress_.end() && !it->second.is_learner;
}

void Raft::TransferToBestVoter() {
  CAIRN_CHECK(role_ == Role::kLeader);
  NodeId best = kNoNode;
  uint64_t best_match = 0;
  for (const auto& [id, progress] : progress_) {
    if (id == id_ || progress.is_learner) continue;
    if (best == kNoNode || progress.match > best_match) {
      best = id;
      best_match = progress.match;
    }
  }
  if (best == kNoNode || lead_transferee_ == best) return;
  HandleTransferLeader(Message{.type = MessageType::kTransferLeader, .from = best},
                       progress_.at(best));
}

ConfigState Raft::config_state() const {
  ConfigState config;
  for (const auto& [id, progress] : progress_) {
    (progress.is_learner ? config.learners : config.voters).push_back(id);
  }
  return config;
}

// ---------------------------------------------------------------------------------------

void Raft::Send(Message message) {
  CAIRN_CHECK(message.to != kNoNode);
  if (message.from == kNoNode) message.from = id_;
  bool is_vote = message.type == MessageType::kVote || message.type == MessageType::kPreVote ||
                 message.type == MessageType::kVoteResponse ||
                 message.type == MessageType::kPreVoteResponse;
  if (is_vote) {
    // Votes carry the term they are about, which for pre-votes is not ours.
    CAIRN_CHECK(message.term != 0);
  } else if (message.type == MessageType::kPropose || message.type == MessageType::kReadIndex ||
             message.type == MessageType::kTransferLeader) {
    CAIRN_CHECK(message.term == 0);
  } else {
    CAIRN_CHECK(message.term == 0);
    message.term = term_;
  }
  messages_.push_back(std::move(message));
}

std::vector<Message> Raft::TakeMessages() {
  std::vector<Message> messages = std::move(messages_);
  messages_.clear();
  return messages;
}

std::vector<ReadState> Raft::TakeReadStates() {
  std::vector<ReadState> read_states = std::move(read_states_);
  read_states_.clear();
  return read_states;
}

}  // namespace cairn::raft
