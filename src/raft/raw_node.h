// RawNode: the Raft core plus the Ready/Advance protocol through which the caller does the
// I/O. The caller's loop:
//
//   node.Tick() every tick; node.Step(message) for every message received;
//   node.Propose(data) / ReadIndex(context) / TransferLeader(id) on request;
//   if (node.HasReady()) {
//     Ready ready = node.GetReady();
//     1. persist ready.snapshot (if any), ready.entries and ready.hard_state (if set),
//        durably (fdatasync);
//     2. only then send ready.messages (a vote or an append acknowledgement must never be
//        sent for state that a crash could lose);
//     3. apply ready.snapshot, then ready.committed_entries, in order; call
//        ApplyConfigChange for each kConfigChange entry when it is applied;
//     4. serve ready.read_states once applied >= their index;
//     5. node.Advance();
//   }
//
// GetReady and Advance alternate: GetReady may not be called again before Advance. Step,
// Tick and Propose may be called in between; what they produce goes into the next Ready.
//
// Thread-safety: not thread-safe; one thread drives a RawNode.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "src/raft/raft.h"

namespace cairn::raft {

struct Ready {
  // Set when the leader or role changed since the last Ready.
  std::optional<SoftState> soft_state;
  // Set when term, vote or commit changed since the last Ready: persist it.
  std::optional<HardState> hard_state;
  std::vector<ReadState> read_states;
  // Entries to append to durable storage (they may replace a suffix of it).
  std::vector<Entry> entries;
  // A snapshot to persist and apply (IsEmpty() when none).
  Snapshot snapshot;
  // Committed entries to apply, in order (after the snapshot, if there is one).
  std::vector<Entry> committed_entries;
  // Messages to send after the above are durable.
  std::vector<Message> messages;
};

// Checks the shape of a message received from a peer (sender set, term fits the type,
// append entries contiguous with non-decreasing terms no newer than the message, snapshot
// present), so that malformed input is an error rather than a failed CAIRN_CHECK.
Status ValidatePeerMessage(const Message& message);

class RawNode {
 public:
  explicit RawNode(const Config& config);
  RawNode(const RawNode&) = delete;
  RawNode& operator=(const RawNode&) = delete;

  void Tick() { raft_.Tick(); }
  // Starts an election now (if this node may campaign).
  Status Campaign();
  // Proposes `data` as a normal entry. ProposalDroppedError when there is no leader to
  // take it; success means only that it was accepted, not that it will commit.
  Status Propose(std::string data);
  // Proposes several entries at once: they are appended together and travel in as few
  // append messages as the byte limit allows. REQUIRES: 1..kProposalBatchEntriesMax items.
  Status ProposeBatch(std::vector<std::string> batch);
  Status ProposeConfigChange(const ConfigChange& change);
  // Applies a committed configuration change (step 3 above).
  ConfigState ApplyConfigChange(const ConfigChange& change) {
    return raft_.ApplyConfigChange(change);
  }
  // Processes a message received from a peer. Local message types, malformed messages
  // (ValidatePeerMessage) and responses from non-members are rejected (InvalidArgument /
  // NotFound).
  Status Step(Message message);
  // Requests a read index; the answer arrives as a ReadState with this context.
  // REQUIRES: context is non-empty and unique among outstanding requests.
  Status ReadIndex(std::string context);
  // Asks the leader to hand leadership to `transferee`.
  void TransferLeader(NodeId transferee);
  // Transport feedback: `id` could not be reached / a snapshot to `id` finished.
  void ReportUnreachable(NodeId id);
  void ReportSnapshot(NodeId id, bool failed);

  // False while a Ready is outstanding (between GetReady and Advance).
  bool HasReady() const;
  Ready GetReady();
  void Advance();

  const Raft& raft() const { return raft_; }

 private:
  Raft raft_;
  SoftState previous_soft_state_;
  HardState previous_hard_state_;
  bool ready_outstanding_ = false;
  // What the outstanding Ready handed out, for Advance.
  std::optional<HardState> outstanding_hard_state_;
  uint64_t outstanding_last_entry_index_ = 0;
  uint64_t outstanding_last_entry_term_ = 0;
  uint64_t outstanding_snapshot_index_ = 0;
  uint64_t outstanding_last_committed_index_ = 0;
};

}  // namespace cairn::raft
