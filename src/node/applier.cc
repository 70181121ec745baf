#include "src/node/applier.h"

#include <string>
#include <string_view>
#include <vector>

#include "src/base/coding.h"
#include "src/base/logging.h"

namespace cairn::node {
namespace {

std::string EncodeU64(uint64_t v) {
  std::string out;
  coding::PutFixed64(&out, v);
  return out;
}

// Stamps the directory with this binary's format version, durably.
Status WriteFormatVersion(storage::Engine* engine) {
  auto batch = engine->NewWriteBatch();
  batch->Put(storage::Family::kMeta, kFormatVersionKey, EncodeU64(kFormatVersion));
  CAIRN_RETURN_IF_ERROR(engine->Write(batch.get()));
  return engine->Flush();
}

Result<uint64_t> ReadU64(storage::Engine* engine, std::string_view key, uint64_t missing) {
  std::string value;
  CAIRN_ASSIGN_OR_RETURN(bool found,
                         engine->Get(storage::ReadOptions{}, storage::Family::kMeta, key, &value));
  if (!found) return missing;
  if (value.size() != 8) {
    return Status::Corruption("meta key " + std::string(key) + " has " +
                              std::to_string(value.size()) + " bytes, expected 8");
  }
  return coding::DecodeFixed64(value.data());
}

}  // namespace

Result<std::unique_ptr<Applier>> Applier::Open(storage::Engine* engine, mvcc::KvState* kv,
                                               EventSink sink) {
  CAIRN_ASSIGN_OR_RETURN(uint64_t version, ReadU64(engine, kFormatVersionKey, 0));
  CAIRN_ASSIGN_OR_RETURN(uint64_t applied, ReadU64(engine, kAppliedIndexKey, 0));
  if (version == 0) {
    if (applied != 0) return Status::Corruption("applied index set but no format version");
    CAIRN_RETURN_IF_ERROR(WriteFormatVersion(engine));
  } else if (version == 2 || version == 3) {
    // 2 -> 3: event ids move to their own family. 3 -> 4: the key count blocks, which `kv`
    // built when it opened.
    if (version == 2) CAIRN_RETURN_IF_ERROR(events::MoveIdEntriesToIdFamily(engine));
    CAIRN_RETURN_IF_ERROR(WriteFormatVersion(engine));
    log::Get("node")->info("data format upgraded from version {} to {}", version, kFormatVersion);
  } else if (version != kFormatVersion) {
    return Status::FailedPrecondition("data directory has format version " +
                                      std::to_string(version) + "; this binary reads version " +
                                      std::to_string(kFormatVersion));
  }
  return std::unique_ptr<Applier>(new Applier(engine, kv, applied, std::move(sink)));
}

Status Applier::Reload() {
  CAIRN_ASSIGN_OR_RETURN(uint64_t applied, ReadU64(engine_, kAppliedIndexKey, 0));
  applied_index_.store(applied, std::memory_order_release);
  return Status::Ok();
}

Status Applier::ApplyOne(storage::WriteBatch* batch, const command::Command& command,
                         command::CommandResult* result, std::vector<mvccpb::Event>* events) {
  if (alarms_ != nullptr) CAIRN_RETURN_IF_ERROR(alarms_->CheckWrite(command));
  switch (command.request_case()) {
    case command::Command::kPut:
      return kv_->ApplyPut(batch, command.put(), result->mutable_put(), events);
    case command::Command::kDeleteRange:
      return kv_->ApplyDeleteRange(batch, command.delete_range(), result->mutable_delete_range(),
                                   events);
    case command::Command::kTxn:
      return kv_->ApplyTxn(batch, command.txn(), result->mutable_txn(), events);
    case command::Command::kCompaction:
      return kv_->ApplyCompaction(batch, command.compaction(), result->mutable_compaction());
    case command::Command::kLeaseGrant:
    case command::Command::kLeaseRevoke:
    case command::Command::kLeaseCheckpoint:
      return ApplyLease(batch, command, result, events);
    case command::Command::kAlarm:
      if (alarms_ == nullptr) return Status::Internal("node: no alarm state for an alarm command");
      return alarms_->Apply(batch, command.alarm(), result->mutable_alarm());
    case command::Command::kMemberAttributes:
      if (membership_ == nullptr) return Status::Internal("node: no membership");
      return membership_->ApplyAttributes(batch, command.member_attributes());
    case command::Command::kMemberPeerUrls:
      if (membership_ == nullptr) return Status::Internal("node: no membership");
      return membership_->ApplyPeerUrls(batch, command.member_peer_urls());
    case command::Command::kEventsAppend:
    case command::Command::kEventsDeleteStream:
    case command::Command::kEventsSetMetadata:
    case command::Command::kEventsSaveSnapshot:
    case command::Command::kPersistentCreate:
    case command::Command::kPersistentUpdate:
    case command::Command::kPersistentDelete:
    case command::Command::kPersistentProgress:
    case command::Command::kPersistentReplayParked:
    case command::Command::kEventsScavenge:
      return ApplyEvents(batch, command, result, events);
    case command::Command::kProjections:
      if (projections_ == nullptr) return Status::Internal("node: no projection definitions");
      return projections_->Apply(batch, command.projections(), result->mutable_projections());
    case command::Command::REQUEST_NOT_SET:
      // An empty command still occupies its log index (deterministic no-op).
      return Status::Ok();
  }
  return Status::Internal("unknown command type " + std::to_string(command.request_case()));
}

Status Applier::ApplyLease(storage::WriteBatch* batch, const command::Command& command,
                           command::CommandResult* result, std::vector<mvccpb::Event>* events) {
  if (leases_ == nullptr) return Status::Internal("node: no lease state for a lease command");
  switch (command.request_case()) {
    case command::Command::kLeaseGrant:
      return leases_->ApplyGrant(batch, command.lease_grant(), result->mutable_lease_grant());
    case command::Command::kLeaseRevoke:
      return leases_->ApplyRevoke(batch, command.lease_revoke(), result->mutable_lease_revoke(),
                                  events);
    default:
      return leases_->ApplyCheckpoint(batch, command.lease_checkpoint(),
                                      result->mutable_lease_checkpoint());
  }
}

Status Applier::ApplyEvents(storage::WriteBatch* batch, const command::Command& command,
                            command::CommandResult* result, std::vector<mvccpb::Event>* events) {
  if (events_ == nullptr) return Status::Internal("node: no event store for an events command");
  switch (command.request_case()) {
    case command::Command::kEventsAppend:
      return events_->ApplyAppend(batch, command.events_append(), result->mutable_events_append(),
                                  events);
    case command::Command::kEventsDeleteStream:
      return events_->ApplyDeleteStream(batch, command.events_delete_stream().request(),
                                        result->mutable_events_delete_stream());
    case command::Command::kEventsSetMetadata:
      return events_->ApplySetMetadata(batch, command.events_set_metadata(),
                                       result->mutable_events_set_metadata());
    case command::Command::kEventsSaveSnapshot:
      return events_->ApplySaveSnapshot(batch, command.events_save_snapshot(),
                                        result->mutable_events_save_snapshot());
    case command::Command::kPersistentCreate:
      return events_->persistent()->ApplyCreate(batch, command.persistent_create(),
                                                result->mutable_persistent_create());
    case command::Command::kPersistentUpdate:
      return events_->persistent()->ApplyUpdate(batch, command.persistent_update(),
                                                result->mutable_persistent_update());
    case command::Command::kPersistentDelete:
      return events_->persistent()->ApplyDelete(batch, command.persistent_delete(),
                                                result->mutable_persistent_delete());
    case command::Command::kPersistentProgress:
      return events_->persistent()->ApplyProgress(batch, command.persistent_progress(),
                                                  result->mutable_persistent_progress());
    case command::Command::kPersistentReplayParked:
      return events_->persistent()->ApplyReplayParked(batch, command.persistent_replay_parked(),
                                                      result->mutable_persistent_replay_parked());
    case command::Command::kEventsScavenge:
      return events_->ApplyScavenge(batch, command.events_scavenge(),
                                    result->mutable_events_scavenge());
    default:
      return Status::Internal("node: not an events command");
  }
}

namespace {

// A command applied in an engine batch of its own, after everything before it is written.
bool IsBarrier(const Applier::Entry& entry) {
  return entry.command != nullptr &&
         entry.command->request_case() == command::Command::kEventsScavenge;
}

// A group needs this many reads of current records before they are read ahead in one batch.
constexpr size_t kPrefetchMinKeys = 2;

}  // namespace

void AddPrefetchKeys(const command::Command& command, std::vector<std::string_view>* keys) {
  if (command.has_put()) {
    keys->push_back(command.put().key());
  } else if (command.has_txn()) {
    const etcdserverpb::TxnRequest& txn = command.txn();
    for (const etcdserverpb::Compare& compare : txn.compare()) {
      if (compare.range_end().empty()) keys->push_back(compare.key());
    }
    for (const auto* ops : {&txn.success(), &txn.failure()}) {
      for (const etcdserverpb::RequestOp& op : *ops) {
        if (op.has_request_put()) keys->push_back(op.request_put().key());
      }
    }
  }
}

Status Applier::ApplyBatch(std::span<Entry> entries) {
  size_t start = 0;
  for (size_t i = 1; i < entries.size(); ++i) {
    if (IsBarrier(entries[i])) {
      CAIRN_RETURN_IF_ERROR(ApplyGroup(entries.subspan(start, i - start)));
      start = i;
    }
  }
  return ApplyGroup(entries.subspan(start));
}

Status Applier::ApplyGroup(std::span<Entry> entries) {
  if (entries.empty()) return Status::Ok();
  if (IsBarrier(entries.front()) && events_ != nullptr) {
    // This member's projections fold what the scavenge is about to remove. Failing here
    // stops the node before anything of the group is applied; the scavenge is retried at
    // the next start.
    Status ready = events_->PrepareScavenge();
    if (!ready.ok()) {
      return ready.WithContext("preparing the scavenge at log entry " +
                               std::to_string(entries.front().index));
    }
  }
  uint64_t expected = AppliedIndex() + 1;
  std::vector<std::string_view> read_keys;
  for (const Entry& entry : entries) {
    if (entry.command != nullptr) AddPrefetchKeys(*entry.command, &read_keys);
  }
  // A failed read-ahead costs nothing but speed: the commands read the engine themselves.
  if (read_keys.size() >= kPrefetchMinKeys) (void)kv_->PrefetchLatest(read_keys);
  auto batch = engine_->NewWriteBatch();
  std::vector<mvccpb::Event> events;
  const bool build_events = sink_ && (!events_wanted_ || events_wanted_());
  std::vector<mvccpb::Event>* events_out = build_events ? &events : nullptr;
  for (Entry& entry : entries) {
    CAIRN_CHECK(entry.index == expected);
    ++expected;
    if (entry.config_change != nullptr) {
      *entry.status =
          membership_ == nullptr
              ? Status::Internal("node: no membership for a configuration change")
              : membership_->ApplyConfigChange(batch.get(), *entry.config_change, *entry.member);
    } else if (entry.command != nullptr) {
      *entry.status = ApplyOne(batch.get(), *entry.command, entry.result, events_out);
    } else {
      *entry.status = Status::Ok();  // the empty entry of a new leader's term
    }
    if (!entry.status->ok()) entry.result->Clear();
  }
  uint64_t last = entries.back().index;
  kv_->FinishBatch(batch.get());
  batch->Put(storage::Family::kMeta, kAppliedIndexKey, EncodeU64(last));
  Status written = engine_->Write(batch.get());
  if (!written.ok()) {
    kv_->OnBatchAborted();
    if (events_ != nullptr) events_->OnBatchAborted();
    if (alarms_ != nullptr) (void)alarms_->Reload();
    // The node stops after a failed write; the in-memory membership may be ahead of the
    // engine until it reopens.
    return written.WithContext("applying log entries " + std::to_string(entries.front().index) +
                               ".." + std::to_string(last));
  }
  kv_->OnBatchWritten();
  if (events_ != nullptr) events_->OnBatchWritten();
  applied_index_.store(last, std::memory_order_release);
  if (sink_) sink_(kv_->CurrentRevision(), events_out);
  return Status::Ok();
}

}  // namespace cairn::node
