// Raft value types: log entries, hard state, snapshots, configurations and messages.
//
// These are plain structs, not protobuf messages, so that src/raft depends on nothing but
// src/base and src/env (ARCHITECTURE.md: the core includes nothing gRPC, and cairn_proto
// links gRPC). The peer transport (src/transport) converts them to and from its wire form.
//
// Thread-safety: values; distinct objects may be used from distinct threads.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace cairn::raft {

using NodeId = uint64_t;
// Node id 0 means "nobody": no vote cast, no known leader.
inline constexpr NodeId kNoNode = 0;

enum class EntryType : uint8_t {
  kNormal = 0,
  // data is an encoded ConfigChange (EncodeConfigChange).
  kConfigChange = 1,
};

struct Entry {
  uint64_t term = 0;
  uint64_t index = 0;
  EntryType type = EntryType::kNormal;
  std::string data;

  // The size used for flow control and byte limits: payload plus a fixed header estimate.
  size_t SizeBytes() const { return data.size() + kHeaderSizeBytes; }
  static constexpr size_t kHeaderSizeBytes = 24;

  friend bool operator==(const Entry&, const Entry&) = default;
};

// The state that must be durable before any message of the same Ready is sent.
struct HardState {
  uint64_t term = 0;
  NodeId vote = kNoNode;
  uint64_t commit = 0;

  bool IsEmpty() const { return term == 0 && vote == kNoNode && commit == 0; }
  friend bool operator==(const HardState&, const HardState&) = default;
};

// Membership: voters count toward quorums; learners only receive the log.
// REQUIRES: the two lists are disjoint; each is sorted ascending without duplicates.
struct ConfigState {
  std::vector<NodeId> voters;
  std::vector<NodeId> learners;

  friend bool operator==(const ConfigState&, const ConfigState&) = default;
};

struct SnapshotMetadata {
  uint64_t index = 0;
  uint64_t term = 0;
  ConfigState config;

  friend bool operator==(const SnapshotMetadata&, const SnapshotMetadata&) = default;
};

// A snapshot of the applied state machine at metadata.index. Index 0 means "no snapshot".
// The state travels either in `data` or, so that no side holds it in memory, in a local file:
// `file`, when not empty, is the path of a file holding the snapshot bytes (`data` is then
// empty). Both are opaque to the core, which never opens the file; the transport sends the
// file's contents and the receiving transport hands its node the path of its own copy.
struct Snapshot {
  SnapshotMetadata metadata;
  std::string data;
  std::string file;

  bool IsEmpty() const { return metadata.index == 0; }
  friend bool operator==(const Snapshot&, const Snapshot&) = default;
};

// One change at a time (single-server membership change, Raft thesis §4.1).
enum class ConfigChangeType : uint8_t {
  kAddVoter = 0,    // add a voter, or promote a learner
  kAddLearner = 1,  // add a learner, or demote a voter
  kRemoveNode = 2,  // remove a voter or learner
};

struct ConfigChange {
  ConfigChangeType type = ConfigChangeType::kAddVoter;
  NodeId node_id = kNoNode;
  // Opaque to the core: the caller's description of the member (etcd's ConfChange.Context),
  // replicated with the change and handed back when it is applied.
  std::string context{};

  friend bool operator==(const ConfigChange&, const ConfigChange&) = default;
};

// Encoding of a ConfigChange inside an entry: 1 byte type, 8 bytes node id little-endian,
// then the context bytes (the rest of the entry).
std::string EncodeConfigChange(const ConfigChange& change);
// Returns false on malformed input (shorter than 9 bytes, unknown type, node id 0).
bool DecodeConfigChange(std::string_view data, ConfigChange* change);

enum class MessageType : uint8_t {
  // Local messages: never sent over the network (term 0).
  kHup = 0,             // start an election (from Tick or Campaign)
  kBeat = 1,            // leader: send heartbeats
  kCheckQuorum = 2,     // leader: step down unless a quorum was recently active
  kUnreachable = 3,     // transport: `from` could not be reached
  kSnapshotStatus = 4,  // transport: snapshot to `from` delivered (reject = failed)
  // Local or forwarded to the leader.
  kPropose = 5,
  kTransferLeader = 6,  // `from` is the transferee
  kReadIndex = 7,
  // Network messages.
  kAppend = 8,
  kAppendResponse = 9,
  kVote = 10,
  kVoteResponse = 11,
  kPreVote = 12,
  kPreVoteResponse = 13,
  kHeartbeat = 14,
  kHeartbeatResponse = 15,
  kSnapshot = 16,
  kTimeoutNow = 17,
  kReadIndexResponse = 18,
};

std::string_view MessageTypeName(MessageType type);
bool IsLocalMessage(MessageType type);
bool IsResponseMessage(MessageType type);

struct Message {
  MessageType type = MessageType::kHup;
  NodeId from = kNoNode;
  NodeId to = kNoNode;
  uint64_t term = 0;
  // Field use by type:
  //   kAppend            index/log_term: the entry before `entries`; commit: leader's.
  //   kAppendResponse    index: last index now held (or, with reject, the probe rejected);
  //                      reject_hint/log_term: where the follower's log may match.
  //   kVote, kPreVote    index/log_term: the candidate's last entry.
  //   k(Pre)VoteResponse commit/log_term: the responder's commit index and its term.
  //   kHeartbeat         commit: min(follower's match, leader's commit).
  //   kReadIndexResponse index: the read index.
  uint64_t log_term = 0;
  uint64_t index = 0;
  uint64_t commit = 0;
  std::vector<Entry> entries;
  Snapshot snapshot;  // kSnapshot only
  bool reject = false;
  // kAppendResponse with reject: the follower's guess of the last index that may match.
  uint64_t reject_hint = 0;
  // kReadIndex / kHeartbeat / kHeartbeatResponse / kReadIndexResponse: the read request's
  // context. kVote / kPreVote: "transfer" marks an election forced by leader transfer.
  std::string context;

  size_t SizeBytes() const;
};

inline constexpr std::string_view kCampaignTransferContext = "transfer";

enum class Role : uint8_t { kFollower, kPreCandidate, kCandidate, kLeader };
std::string_view RoleName(Role role);

}  // namespace cairn::raft
