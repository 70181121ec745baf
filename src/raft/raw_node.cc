#include "src/raft/raw_node.h"

namespace cairn::raft {

Status ValidatePeerMessage(const Message& message) {
  if (message.from == kNoNode) return Status::InvalidArgument("raft: message without sender");
  bool forwarded = message.type == MessageType::kPropose ||
                   message.type == MessageType::kReadIndex ||
                   message.type == MessageType::kTransferLeader;
  if (forwarded != (message.term == 0)) {
    return Status::InvalidArgument("raft: message term does not fit its type");
  }
  if (message.type == MessageType::kPropose && message.entries.empty()) {
    return Status::InvalidArgument("raft: proposal without entries");
  }
  if (message.type == MessageType::kAppend) {
    for (size_t i = 0; i < message.entries.size(); ++i) {
      const Entry& entry = message.entries[i];
      uint64_t previous_term = i == 0 ? message.log_term : message.entries[i - 1].term;
      if (entry.index != message.index + 1 + i || entry.term < previous_term ||
          entry.term > message.term) {
        return Status::InvalidArgument("raft: append entries are not contiguous");
      }
    }
  }
  if (message.type == MessageType::kSnapshot &&
      (message.snapshot.IsEmpty() || message.snapshot.metadata.term > message.term)) {
    return Status::InvalidArgument("raft: malformed snapshot message");
  }
  return Status::Ok();
}

RawNode::RawNode(const Config& config) : raft_(config) {
  previous_soft_state_ = raft_.soft_state();
  // What storage already holds need not be persisted again.
  previous_hard_state_ = config.storage->InitialHardState();
}

Status RawNode::Campaign() { return raft_.Step(Message{.type = MessageType::kHup}); }

Status RawNode::Propose(std::string data) {
  Message message{.type = MessageType::kPropose, .from = raft_.id()};
  message.entries.push_back(Entry{.data = std::move(data)});
  return raft_.Step(std::move(message));
}

Status RawNode::ProposeBatch(std::vector<std::string> batch) {
  if (batch.empty() || batch.size() > kProposalBatchEntriesMax) {
    return Status::InvalidArgument("raft: a proposal batch holds 1 to 4096 entries");
  }
  Message message{.type = MessageType::kPropose, .from = raft_.id()};
  message.entries.reserve(batch.size());
  for (std::string& data : batch) message.entries.push_back(Entry{.data = std::move(data)});
  return raft_.Step(std::move(message));
}

Status RawNode::ProposeConfigChange(const ConfigChange& change) {
  if (change.node_id == kNoNode) return Status::InvalidArgument("raft: node id 0");
  Message message{.type = MessageType::kPropose, .from = raft_.id()};
  message.entries.push_back(
      Entry{.type = EntryType::kConfigChange, .data = EncodeConfigChange(change)});
  return raft_.Step(std::move(message));
}

Status RawNode::Step(Message message) {
  if (IsLocalMessage(message.type)) {
    return Status::InvalidArgument("raft: local message type received from the network");
  }
  if (message.to != raft_.id()) return Status::InvalidArgument("raft: message for another node");
  CAIRN_RETURN_IF_ERROR(ValidatePeerMessage(message));
  if (IsResponseMessage(message.type) && !raft_.progress().contains(message.from)) {
    return Status::NotFound("raft: response from a node that is not a member");
  }
  return raft_.Step(std::move(message));
}

Status RawNode::ReadIndex(std::string context) {
  if (context.empty()) return Status::InvalidArgument("raft: read index context is empty");
  return raft_.Step(Message{.type = MessageType::kReadIndex, .context = std::move(context)});
}

void RawNode::TransferLeader(NodeId transferee) {
  Status status = raft_.Step(Message{.type = MessageType::kTransferLeader, .from = transferee});
  (void)status;  // dropped when no leader is known; the caller retries
}

void RawNode::ReportUnreachable(NodeId id) {
  CAIRN_CHECK_OK(raft_.Step(Message{.type = MessageType::kUnreachable, .from = id}));
}

void RawNode::ReportSnapshot(NodeId id, bool failed) {
  CAIRN_CHECK_OK(
      raft_.Step(Message{.type = MessageType::kSnapshotStatus, .from = id, .reject = failed}));
}

bool RawNode::HasReady() const {
  if (ready_outstanding_) return false;
  const RaftLog& log = raft_.log();
  if (raft_.soft_state() != previous_soft_state_) return true;
  if (raft_.hard_state() != previous_hard_state_) return true;
  return log.UnstableSnapshot().has_value() || !log.UnstableEntries().empty() ||
         log.HasNextCommittedEntries() || raft_.HasMessages() || raft_.HasReadStates();
}

Ready RawNode::GetReady() {
  CAIRN_CHECK_MSG(!ready_outstanding_, "GetReady called twice without Advance");
  Raft& raft = raft_;
  RaftLog& log = raft.mutable_log();
  Ready ready;
  SoftState soft_state = raft.soft_state();
  if (soft_state != previous_soft_state_) {
    ready.soft_state = soft_state;
    previous_soft_state_ = soft_state;
  }
  HardState hard_state = raft.hard_state();
  if (hard_state != previous_hard_state_) ready.hard_state = hard_state;
  ready.read_states = raft.TakeReadStates();
  ready.entries = log.UnstableEntries();
  if (log.UnstableSnapshot()) ready.snapshot = *log.UnstableSnapshot();
  ready.committed_entries = log.NextCommittedEntries(raft.config().committed_entries_bytes_max);
  ready.messages = raft.TakeMessages();

  // Check the Ready against the log before handing it out.
  if (ready.hard_state) CAIRN_CHECK(ready.hard_state->commit <= log.LastIndex());
  for (size_t i = 1; i < ready.entries.size(); ++i) {
    CAIRN_CHECK(ready.entries[i].index == ready.entries[i - 1].index + 1);
  }
  for (size_t i = 0; i < ready.committed_entries.size(); ++i) {
    const Entry& entry = ready.committed_entries[i];
    CAIRN_CHECK(entry.index > log.applied() && entry.index <= log.committed());
    CAIRN_CHECK(i == 0 || entry.index == ready.committed_entries[i - 1].index + 1);
  }
  // Committed entries that follow a snapshot in the same Ready continue right after it.
  CAIRN_CHECK(ready.snapshot.IsEmpty() || ready.committed_entries.empty() ||
              ready.committed_entries.front().index == ready.snapshot.metadata.index + 1);

  ready_outstanding_ = true;
  outstanding_hard_state_ = ready.hard_state;
  outstanding_last_entry_index_ = ready.entries.empty() ? 0 : ready.entries.back().index;
  outstanding_last_entry_term_ = ready.entries.empty() ? 0 : ready.entries.back().term;
  outstanding_snapshot_index_ = ready.snapshot.metadata.index;
  outstanding_last_committed_index_ =
      ready.committed_entries.empty() ? 0 : ready.committed_entries.back().index;
  return ready;
}

void RawNode::Advance() {
  CAIRN_CHECK_MSG(ready_outstanding_, "Advance without GetReady");
  RaftLog& log = raft_.mutable_log();
  if (outstanding_hard_state_) previous_hard_state_ = *outstanding_hard_state_;
  if (outstanding_snapshot_index_ != 0) {
    log.StableSnapshotTo(outstanding_snapshot_index_);
    if (outstanding_snapshot_index_ > log.applied()) log.AppliedTo(outstanding_snapshot_index_);
  }
  if (outstanding_last_committed_index_ != 0) log.AppliedTo(outstanding_last_committed_index_);
  if (outstanding_last_entry_index_ != 0) {
    log.StableTo(outstanding_last_entry_index_, outstanding_last_entry_term_);
  }
  ready_outstanding_ = false;
  if (outstanding_last_committed_index_ != 0 || outstanding_snapshot_index_ != 0) {
    raft_.OnApplied();
  }
}

}  // namespace cairn::raft
