#include "src/transport/convert.h"

#include <string>
#include <utility>

namespace cairn::transport {

namespace {

// The wire enums are declared value for value with the C++ ones; these pin that.
static_assert(raft::v1::MESSAGE_TYPE_HUP == static_cast<int>(raft::MessageType::kHup));
static_assert(raft::v1::MESSAGE_TYPE_APPEND == static_cast<int>(raft::MessageType::kAppend));
static_assert(raft::v1::MESSAGE_TYPE_SNAPSHOT == static_cast<int>(raft::MessageType::kSnapshot));
static_assert(raft::v1::MESSAGE_TYPE_READ_INDEX_RESPONSE ==
              static_cast<int>(raft::MessageType::kReadIndexResponse));
static_assert(raft::v1::MessageType_MAX == static_cast<int>(raft::MessageType::kReadIndexResponse));
static_assert(raft::v1::ENTRY_TYPE_CONFIG_CHANGE ==
              static_cast<int>(raft::EntryType::kConfigChange));
static_assert(raft::v1::EntryType_MAX == static_cast<int>(raft::EntryType::kConfigChange));

void ConfigToProto(const raft::ConfigState& config, raft::v1::ConfigState* proto) {
  proto->mutable_voters()->Add(config.voters.begin(), config.voters.end());
  proto->mutable_learners()->Add(config.learners.begin(), config.learners.end());
}

// Checks one id list: ascending, no duplicates, no id 0.
Status CheckIdList(const google::protobuf::RepeatedField<uint64_t>& ids, std::string_view what) {
  for (int i = 0; i < ids.size(); ++i) {
    if (ids[i] == raft::kNoNode) {
      return Status::InvalidArgument("snapshot configuration lists node id 0 among " +
                                     std::string(what));
    }
    if (i > 0 && ids[i - 1] >= ids[i]) {
      return Status::InvalidArgument("snapshot configuration " + std::string(what) +
                                     " are not sorted ascending without duplicates");
    }
  }
  return Status::Ok();
}

Result<raft::ConfigState> ConfigFromProto(const raft::v1::ConfigState& proto) {
  CAIRN_RETURN_IF_ERROR(CheckIdList(proto.voters(), "voters"));
  CAIRN_RETURN_IF_ERROR(CheckIdList(proto.learners(), "learners"));
  raft::ConfigState config;
  config.voters.assign(proto.voters().begin(), proto.voters().end());
  config.learners.assign(proto.learners().begin(), proto.learners().end());
  // Both lists are sorted: a merge walk finds a common id.
  size_t v = 0;
  size_t l = 0;
  while (v < config.voters.size() && l < config.learners.size()) {
    if (config.voters[v] == config.learners[l]) {
      return Status::InvalidArgument("snapshot configuration lists node " +
                                     std::to_string(config.voters[v]) +
                                     " as both voter and learner");
    }
    config.voters[v] < config.learners[l] ? ++v : ++l;
  }
  return config;
}

Result<raft::Entry> EntryFromProto(raft::v1::Entry* proto) {
  if (!raft::v1::EntryType_IsValid(proto->type())) {
    return Status::InvalidArgument("unknown raft entry type " + std::to_string(proto->type()) +
                                   " at index " + std::to_string(proto->index()));
  }
  return raft::Entry{.term = proto->term(),
                     .index = proto->index(),
                     .type = static_cast<raft::EntryType>(proto->type()),
                     .data = std::move(*proto->mutable_data())};
}

}  // namespace

void MessageToProto(raft::Message message, raft::v1::Message* proto) {
  proto->Clear();
  proto->set_type(static_cast<raft::v1::MessageType>(message.type));
  proto->set_from(message.from);
  proto->set_to(message.to);
  proto->set_term(message.term);
  proto->set_log_term(message.log_term);
  proto->set_index(message.index);
  proto->set_commit(message.commit);
  proto->mutable_entries()->Reserve(static_cast<int>(message.entries.size()));
  for (raft::Entry& entry : message.entries) {
    raft::v1::Entry* out = proto->add_entries();
    out->set_term(entry.term);
    out->set_index(entry.index);
    out->set_type(static_cast<raft::v1::EntryType>(entry.type));
    out->set_data(std::move(entry.data));
  }
  // An empty snapshot (index 0) is left out entirely: it is the common case and costs nothing.
  raft::Snapshot& snapshot = message.snapshot;
  if (!snapshot.IsEmpty() || !snapshot.data.empty()) {
    raft::v1::Snapshot* out = proto->mutable_snapshot();
    out->mutable_metadata()->set_index(snapshot.metadata.index);
    out->mutable_metadata()->set_term(snapshot.metadata.term);
    ConfigToProto(snapshot.metadata.config, out->mutable_metadata()->mutable_config());
    out->set_data(std::move(snapshot.data));
  }
  proto->set_reject(message.reject);
  proto->set_reject_hint(message.reject_hint);
  proto->set_context(std::move(message.context));
}

Result<raft::Message> MessageFromProto(raft::v1::Message* proto) {
  if (!raft::v1::MessageType_IsValid(proto->type())) {
    return Status::InvalidArgument("unknown raft message type " + std::to_string(proto->type()) +
                                   " from node " + std::to_string(proto->from()));
  }
  raft::Message message{.type = static_cast<raft::MessageType>(proto->type()),
                        .from = proto->from(),
                        .to = proto->to(),
                        .term = proto->term(),
                        .log_term = proto->log_term(),
                        .index = proto->index(),
                        .commit = proto->commit(),
                        .reject = proto->reject(),
                        .reject_hint = proto->reject_hint(),
                        .context = std::move(*proto->mutable_context())};
  message.entries.reserve(proto->entries_size());
  for (raft::v1::Entry& entry : *proto->mutable_entries()) {
    CAIRN_ASSIGN_OR_RETURN(raft::Entry decoded, EntryFromProto(&entry));
    message.entries.push_back(std::move(decoded));
  }
  if (proto->has_snapshot()) {
    raft::v1::Snapshot* snapshot = proto->mutable_snapshot();
    const raft::v1::SnapshotMetadata& metadata = snapshot->metadata();
    CAIRN_ASSIGN_OR_RETURN(message.snapshot.metadata.config, ConfigFromProto(metadata.config()));
    message.snapshot.metadata.index = metadata.index();
    message.snapshot.metadata.term = metadata.term();
    message.snapshot.data = std::move(*snapshot->mutable_data());
  }
  return message;
}

}  // namespace cairn::transport
