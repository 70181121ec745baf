#include "src/raft/types.h"

#include "src/base/coding.h"

namespace cairn::raft {

std::string EncodeConfigChange(const ConfigChange& change) {
  std::string data;
  data.push_back(static_cast<char>(change.type));
  coding::PutFixed64(&data, change.node_id);
  data.append(change.context);
  return data;
}

bool DecodeConfigChange(std::string_view data, ConfigChange* change) {
  if (data.size() < 9) return false;
  uint8_t type = static_cast<uint8_t>(data[0]);
  if (type > static_cast<uint8_t>(ConfigChangeType::kRemoveNode)) return false;
  uint64_t node_id = coding::DecodeFixed64(data.data() + 1);
  if (node_id == kNoNode) return false;
  change->type = static_cast<ConfigChangeType>(type);
  change->node_id = node_id;
  change->context.assign(data.substr(9));
  return true;
}

std::string_view MessageTypeName(MessageType type) {
  switch (type) {
    case MessageType::kHup:
      return "Hup";
    case MessageType::kBeat:
      return "Beat";
    case MessageType::kCheckQuorum:
      return "CheckQuorum";
    case MessageType::kUnreachable:
      return "Unreachable";
    case MessageType::kSnapshotStatus:
      return "SnapshotStatus";
    case MessageType::kPropose:
      return "Propose";
    case MessageType::kTransferLeader:
      return "TransferLeader";
    case MessageType::kReadIndex:
      return "ReadIndex";
    case MessageType::kAppend:
      return "Append";
    case MessageType::kAppendResponse:
      return "AppendResponse";
    case MessageType::kVote:
      return "Vote";
    case MessageType::kVoteResponse:
      return "VoteResponse";
    case MessageType::kPreVote:
      return "PreVote";
    case MessageType::kPreVoteResponse:
      return "PreVoteResponse";
    case MessageType::kHeartbeat:
      return "Heartbeat";
    case MessageType::kHeartbeatResponse:
      return "HeartbeatResponse";
    case MessageType::kSnapshot:
      return "Snapshot";
    case MessageType::kTimeoutNow:
      return "TimeoutNow";
    case MessageType::kReadIndexResponse:
      return "ReadIndexResponse";
  }
  return "Unknown";
}

bool IsLocalMessage(MessageType type) {
  return type == MessageType::kHup || type == MessageType::kBeat ||
         type == MessageType::kCheckQuorum || type == MessageType::kUnreachable ||
         type == MessageType::kSnapshotStatus;
}

bool IsResponseMessage(MessageType type) {
  return type == MessageType::kAppendResponse || type == MessageType::kVoteResponse ||
         type == MessageType::kPreVoteResponse || type == MessageType::kHeartbeatResponse ||
         type == MessageType::kReadIndexResponse;
}

size_t Message::SizeBytes() const {
  size_t size = 64 + context.size() + snapshot.data.size();
  for (const Entry& entry : entries) size += entry.SizeBytes();
  return size;
}

std::string_view RoleName(Role role) {
  switch (role) {
    case Role::kFollower:
      return "follower";
    case Role::kPreCandidate:
      return "pre-candidate";
    case Role::kCandidate:
      return "candidate";
    case Role::kLeader:
      return "leader";
  }
  return "unknown";
}

}  // namespace cairn::raft
