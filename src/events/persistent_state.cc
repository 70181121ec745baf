#include "src/events/persistent_state.h"

#include <set>

#include "src/base/check.h"
#include "src/events/event_format.h"
#include "src/events/event_state.h"

namespace cairn::events {
namespace {

using records::PersistentEventRecord;
using records::PersistentGroupRecord;
using records::ReplayRecord;
using storage::Family;

constexpr std::string_view kAllSource = "$all";

Status Invalid(std::string_view message) {
  return Status::InvalidArgument("events: " + std::string(message));
}

Status Corrupt(std::string_view what) {
  return Status::Corruption("events: corrupt " + std::string(what));
}

std::string GroupEventKey(uint64_t group_id, const CursorKey& key) {
  return format::GroupEventKey(group_id, key.major, key.minor);
}

// The first key after every key starting with `prefix` (prefixes here never end in 0xff).
std::string PrefixEnd(std::string prefix) {
  CAIRN_CHECK(!prefix.empty() && static_cast<uint8_t>(prefix.back()) != 0xff);
  prefix.back() = static_cast<char>(prefix.back() + 1);
  return prefix;
}

Result<uint64_t> ReadCount(storage::WriteBatch* batch, char tag, std::string_view name) {
  std::string value;
  CAIRN_ASSIGN_OR_RETURN(bool found,
                         batch->Get(Family::kEvents, format::CountKey(tag, name), &value));
  if (!found) return uint64_t{0};
  uint64_t count = 0;
  if (!format::DecodeU64(value, &count)) return Corrupt("index counter");
  return count;
}

// The cursor of the last event of `source` now (for a group created "from the end").
Result<std::optional<CursorKey>> SourceEnd(storage::WriteBatch* batch, std::string_view source,
                                           int64_t revision) {
  if (IsAllSource(source)) {
    // Every event so far has a revision <= the current one.
    return std::optional<CursorKey>(CursorKey{static_cast<uint64_t>(revision), UINT32_MAX});
  }
  char count_tag = 0;
  std::string_view name;
  if (source.substr(0, 4) == "$ce-") {
    count_tag = format::kCategoryCountTag;
    name = source.substr(4);
  } else if (source.substr(0, 4) == "$et-") {
    count_tag = format::kTypeCountTag;
    name = source.substr(4);
  }
  if (count_tag != 0) {
    CAIRN_ASSIGN_OR_RETURN(uint64_t count, ReadCount(batch, count_tag, name));
    if (count == 0) return std::optional<CursorKey>();
    return std::optional<CursorKey>(CursorKey{count - 1, 0});
  }
  std::string value;
  CAIRN_ASSIGN_OR_RETURN(bool found,
                         batch->Get(Family::kEvents, format::StreamKey(source), &value));
  if (!found) return std::optional<CursorKey>();
  records::StreamRecord stream;
  if (!stream.ParseFromString(value)) return Corrupt("stream record");
  if (!stream.has_events()) return std::optional<CursorKey>();
  return std::optional<CursorKey>(CursorKey{stream.last_version(), 0});
}

template <typename Message>
void PutRecord(storage::WriteBatch* batch, const std::string& key, const Message& message) {
  batch->Put(Family::kEvents, key, message.SerializeAsString());
}

}  // namespace

bool IsAllSource(std::string_view source) { return source == kAllSource; }

CursorKey ToCursorKey(const v1::Cursor& cursor, bool all) {
  if (all) return CursorKey{cursor.position().revision(), cursor.position().index()};
  return CursorKey{cursor.version(), 0};
}

v1::Cursor ToCursor(const CursorKey& key, bool all) {
  v1::Cursor cursor;
  if (all) {
    cursor.mutable_position()->set_revision(key.major);
    cursor.mutable_position()->set_index(key.minor);
  } else {
    cursor.set_version(key.major);
  }
  return cursor;
}

CursorKey CursorOf(const v1::RecordedEvent& event, std::string_view source) {
  if (IsAllSource(source)) {
    return CursorKey{event.position().revision(), event.position().index()};
  }
  if (!source.empty() && source[0] == '$') return CursorKey{event.link_version(), 0};
  return CursorKey{event.version(), 0};
}

// ---------------------------------------------------------------------------------------------
// Validation

Status ErrGroupNotFound(std::string_view source, std::string_view group) {
  return Status::NotFound("events: persistent subscription '" + std::string(group) + "' on '" +
                          std::string(source) + "' not found");
}

Status ValidatePersistentSource(std::string_view source) {
  if (IsAllSource(source)) return Status::Ok();
  if (source.empty()) return Invalid("a persistent subscription needs a source stream or $all");
  CAIRN_RETURN_IF_ERROR(ValidateStreamName(source, /*allow_system=*/true));
  if (source.substr(0, format::kParkedStreamPrefix.size()) == format::kParkedStreamPrefix) {
    return Invalid("a parked stream cannot be the source of a persistent subscription");
  }
  return Status::Ok();
}

Status ValidateGroupName(std::string_view group) {
  if (group.empty()) return Invalid("group name is empty");
  if (group.size() > PersistentLimits::kGroupNameBytesMax) {
    return Invalid("group name of " + std::to_string(group.size()) +
                   " bytes exceeds the limit of " +
                   std::to_string(PersistentLimits::kGroupNameBytesMax));
  }
  if (group.find('\0') != std::string_view::npos) return Invalid("group name contains NUL");
  return Status::Ok();
}

Status ValidatePersistentSettings(std::string_view source,
                                  const v1::PersistentSubscriptionSettings& settings) {
  const bool all = IsAllSource(source);
  if (settings.has_after_version() && all) {
    return Invalid("a $all group starts after a position, not a version");
  }
  if (settings.has_after_position() && !all) {
    return Invalid("a stream group starts after a version, not a position");
  }
  if (!all && (settings.has_filter() || settings.include_system())) {
    return Invalid("filter and include_system apply to $all groups only");
  }
  if (!v1::ConsumerStrategy_IsValid(settings.strategy())) return Invalid("unknown strategy");
  if (settings.has_max_retry_count() &&
      settings.max_retry_count() > PersistentLimits::kRetryCountMax) {
    return Invalid("max_retry_count " + std::to_string(settings.max_retry_count()) +
                   " exceeds the limit of " + std::to_string(PersistentLimits::kRetryCountMax));
  }
  if (settings.message_timeout_ms() > PersistentLimits::kMessageTimeoutMsMax) {
    return Invalid("message_timeout_ms " + std::to_string(settings.message_timeout_ms()) +
                   " exceeds the limit of " +
                   std::to_string(PersistentLimits::kMessageTimeoutMsMax) + " (24 hours)");
  }
  if (settings.max_subscriber_count() > PersistentLimits::kSubscribersMax) {
    return Invalid("max_subscriber_count " + std::to_string(settings.max_subscriber_count()) +
                   " exceeds the limit of " + std::to_string(PersistentLimits::kSubscribersMax));
  }
  for (const std::string& prefix : settings.filter().stream_prefixes()) {
    if (prefix.size() > EventLimits::kStreamNameBytesMax) return Invalid("filter prefix too long");
  }
  for (const std::string& prefix : settings.filter().type_prefixes()) {
    if (prefix.size() > EventLimits::kEventTypeBytesMax) return Invalid("filter prefix too long");
  }
  return Status::Ok();
}

Status ValidateCreatePersistent(const v1::CreatePersistentSubscriptionRequest& req) {
  CAIRN_RETURN_IF_ERROR(ValidatePersistentSource(req.source()));
  CAIRN_RETURN_IF_ERROR(ValidateGroupName(req.group()));
  return ValidatePersistentSettings(req.source(), req.settings());
}

Status ValidateUpdatePersistent(const v1::UpdatePersistentSubscriptionRequest& req) {
  CAIRN_RETURN_IF_ERROR(ValidatePersistentSource(req.source()));
  CAIRN_RETURN_IF_ERROR(ValidateGroupName(req.group()));
  return ValidatePersistentSettings(req.source(), req.settings());
}

Status ValidateDeletePersistent(const v1::DeletePersistentSubscriptionRequest& req) {
  CAIRN_RETURN_IF_ERROR(ValidatePersistentSource(req.source()));
  return ValidateGroupName(req.group());
}

Status ValidateReplayParked(const v1::ReplayParkedRequest& req) {
  CAIRN_RETURN_IF_ERROR(ValidatePersistentSource(req.source()));
  return ValidateGroupName(req.group());
}

uint32_t MaxRetryCount(const v1::PersistentSubscriptionSettings& settings) {
  return settings.has_max_retry_count() ? settings.max_retry_count()
                                        : PersistentLimits::kRetryCountDefault;
}

uint32_t MessageTimeoutMs(const v1::PersistentSubscriptionSettings& settings) {
  return settings.message_timeout_ms() == 0 ? PersistentLimits::kMessageTimeoutMsDefault
                                            : settings.message_timeout_ms();
}

// ---------------------------------------------------------------------------------------------
// Apply

Result<std::optional<PersistentGroupRecord>> PersistentState::LoadGroup(storage::WriteBatch* batch,
                                                                        std::string_view source,
                                                                        std::string_view group) {
  std::string value;
  CAIRN_ASSIGN_OR_RETURN(bool found,
                         batch->Get(Family::kEvents, format::GroupKey(source, group), &value));
  if (!found) return std::optional<PersistentGroupRecord>();
  PersistentGroupRecord record;
  if (!record.ParseFromString(value)) return Corrupt("persistent group record");
  return std::optional<PersistentGroupRecord>(std::move(record));
}

Status PersistentState::ApplyCreate(storage::WriteBatch* batch,
                                    const v1::CreatePersistentSubscriptionRequest& req,
                                    v1::CreatePersistentSubscriptionResponse* resp) {
  resp->Clear();
  CAIRN_RETURN_IF_ERROR(ValidateCreatePersistent(req));
  CAIRN_ASSIGN_OR_RETURN(std::optional<PersistentGroupRecord> existing,
                         LoadGroup(batch, req.source(), req.group()));
  if (existing.has_value()) {
    return Status::AlreadyExists("events: persistent subscription '" + req.group() + "' on '" +
                                 req.source() + "' already exists");
  }
  std::string value;
  CAIRN_ASSIGN_OR_RETURN(bool found, batch->Get(Family::kEvents, format::kGroupCounterKey, &value));
  uint64_t group_id = 1;
  if (found && !format::DecodeU64(value, &group_id)) return Corrupt("group counter");

  const bool all = IsAllSource(req.source());
  PersistentGroupRecord record;
  record.set_group_id(group_id);
  record.set_source(req.source());
  record.set_group(req.group());
  *record.mutable_settings() = req.settings();
  std::optional<CursorKey> checkpoint;
  const v1::PersistentSubscriptionSettings& settings = req.settings();
  if (settings.has_after_version()) {
    checkpoint = CursorKey{settings.after_version(), 0};
  } else if (settings.has_after_position()) {
    checkpoint = CursorKey{settings.after_position().revision(), settings.after_position().index()};
  } else if (settings.from_end()) {
    CAIRN_ASSIGN_OR_RETURN(checkpoint, SourceEnd(batch, req.source(), kv_->PendingRevision()));
  }
  if (checkpoint.has_value()) {
    *record.mutable_checkpoint() = ToCursor(*checkpoint, all);
  }
  batch->Put(Family::kEvents, format::kGroupCounterKey, format::EncodeU64(group_id + 1));
  PutRecord(batch, format::GroupKey(req.source(), req.group()), record);
  resp->mutable_header()->set_revision(kv_->PendingRevision());
  changed_in_batch_ = true;
  return Status::Ok();
}

Status PersistentState::ApplyUpdate(storage::WriteBatch* batch,
                                    const v1::UpdatePersistentSubscriptionRequest& req,
                                    v1::UpdatePersistentSubscriptionResponse* resp) {
  resp->Clear();
  CAIRN_RETURN_IF_ERROR(ValidateUpdatePersistent(req));
  CAIRN_ASSIGN_OR_RETURN(std::optional<PersistentGroupRecord> record,
                         LoadGroup(batch, req.source(), req.group()));
  if (!record.has_value()) return ErrGroupNotFound(req.source(), req.group());
  // Where the group started stays as created.
  v1::PersistentSubscriptionSettings settings = req.settings();
  const v1::PersistentSubscriptionSettings& old = record->settings();
  settings.clear_start();
  if (old.has_after_version()) settings.set_after_version(old.after_version());
  if (old.has_after_position()) *settings.mutable_after_position() = old.after_position();
  if (old.from_end()) settings.set_from_end(true);
  *record->mutable_settings() = std::move(settings);
  PutRecord(batch, format::GroupKey(req.source(), req.group()), *record);
  resp->mutable_header()->set_revision(kv_->PendingRevision());
  changed_in_batch_ = true;
  return Status::Ok();
}

Status PersistentState::ApplyDelete(storage::WriteBatch* batch,
                                    const v1::DeletePersistentSubscriptionRequest& req,
                                    v1::DeletePersistentSubscriptionResponse* resp) {
  resp->Clear();
  CAIRN_RETURN_IF_ERROR(ValidateDeletePersistent(req));
  CAIRN_ASSIGN_OR_RETURN(std::optional<PersistentGroupRecord> record,
                         LoadGroup(batch, req.source(), req.group()));
  if (!record.has_value()) return ErrGroupNotFound(req.source(), req.group());
  // Its progress records (bounded by the window and the replay queue). The parked stream
  // stays readable, like any stream the user did not delete.
  for (const std::string& prefix :
       {format::GroupEventPrefix(record->group_id()), format::ReplayPrefix(record->group_id())}) {
    const std::string end = PrefixEnd(prefix);
    storage::ReadOptions options;
    options.lower_bound = prefix;
    options.upper_bound = end;
    std::vector<std::string> keys;
    auto it = batch->NewIterator(Family::kEvents, options);
    for (it->Seek(prefix); it->Valid(); it->Next()) keys.emplace_back(it->key());
    CAIRN_RETURN_IF_ERROR(it->status());
    for (const std::string& key : keys) batch->Delete(Family::kEvents, key);
  }
  batch->Delete(Family::kEvents, format::GroupKey(req.source(), req.group()));
  resp->mutable_header()->set_revision(kv_->PendingRevision());
  changed_in_batch_ = true;
  return Status::Ok();
}

Status PersistentState::ApplyProgress(storage::WriteBatch* batch,
                                      const command::PersistentProgress& progress,
                                      command::PersistentProgressResult* result) {
  result->Clear();
  CAIRN_RETURN_IF_ERROR(ValidatePersistentSource(progress.source()));
  CAIRN_RETURN_IF_ERROR(ValidateGroupName(progress.group()));
  const size_t entries = static_cast<size_t>(progress.done_size()) + progress.retries_size() +
                         progress.parked_size() + progress.forget_size() +
                         progress.replay_done_size();
  if (entries > PersistentLimits::kProgressEntriesMax) {
    return Invalid("a progress command of " + std::to_string(entries) + " entries");
  }
  CAIRN_ASSIGN_OR_RETURN(std::optional<PersistentGroupRecord> record,
                         LoadGroup(batch, progress.source(), progress.group()));
  if (!record.has_value() || record->group_id() != progress.group_id()) {
    result->set_stale(true);
    return Status::Ok();
  }
  const bool all = IsAllSource(progress.source());
  const uint64_t group_id = record->group_id();
  bool record_changed = false;
  if (progress.has_checkpoint()) {
    const CursorKey proposed = ToCursorKey(progress.checkpoint(), all);
    if (!record->has_checkpoint() || ToCursorKey(record->checkpoint(), all) < proposed) {
      *record->mutable_checkpoint() = ToCursor(proposed, all);
      record_changed = true;
    }
  }
  std::optional<CursorKey> checkpoint;
  if (record->has_checkpoint()) checkpoint = ToCursorKey(record->checkpoint(), all);
  auto beyond = [&](const CursorKey& key) { return !checkpoint.has_value() || *checkpoint < key; };

  for (const v1::Cursor& cursor : progress.forget()) {
    batch->Delete(Family::kEvents, GroupEventKey(group_id, ToCursorKey(cursor, all)));
  }
  PersistentEventRecord done;
  done.set_done(true);
  const std::string done_value = done.SerializeAsString();
  for (const v1::Cursor& cursor : progress.done()) {
    const CursorKey key = ToCursorKey(cursor, all);
    if (beyond(key)) batch->Put(Family::kEvents, GroupEventKey(group_id, key), done_value);
  }
  for (const command::PersistentRetry& retry : progress.retries()) {
    const CursorKey key = ToCursorKey(retry.cursor(), all);
    if (!beyond(key)) continue;
    PersistentEventRecord failed;
    failed.set_retries(retry.retries());
    PutRecord(batch, GroupEventKey(group_id, key), failed);
  }
  if (!progress.parked().empty()) {
    const std::string name = format::ParkedIndexName(progress.source(), progress.group());
    CAIRN_ASSIGN_OR_RETURN(uint64_t next, ReadCount(batch, format::kParkedCountTag, name));
    for (const v1::Position& position : progress.parked()) {
      batch->Put(Family::kEvents, format::IndexKey(format::kParkedTag, name, next++),
                 format::EncodePosition(position.revision(), position.index()));
    }
    batch->Put(Family::kEvents, format::CountKey(format::kParkedCountTag, name),
               format::EncodeU64(next));
  }
  for (uint64_t sequence : progress.replay_done()) {
    const std::string key = format::ReplayKey(group_id, sequence);
    std::string value;
    CAIRN_ASSIGN_OR_RETURN(bool found, batch->Get(Family::kEvents, key, &value));
    if (!found) continue;
    batch->Delete(Family::kEvents, key);
    if (record->replay_pending() > 0) record->set_replay_pending(record->replay_pending() - 1);
    record_changed = true;
  }
  if (record_changed) {
    PutRecord(batch, format::GroupKey(progress.source(), progress.group()), *record);
  }
  return Status::Ok();
}

Status PersistentState::ApplyReplayParked(storage::WriteBatch* batch,
                                          const v1::ReplayParkedRequest& req,
                                          v1::ReplayParkedResponse* resp) {
  resp->Clear();
  CAIRN_RETURN_IF_ERROR(ValidateReplayParked(req));
  CAIRN_ASSIGN_OR_RETURN(std::optional<PersistentGroupRecord> record,
                         LoadGroup(batch, req.source(), req.group()));
  if (!record.has_value()) return ErrGroupNotFound(req.source(), req.group());
  const uint32_t max_count = req.max_count() == 0
                                 ? PersistentLimits::kReplayPerCallMax
                                 : std::min(req.max_count(), PersistentLimits::kReplayPerCallMax);
  const std::string prefix =
      format::IndexPrefix(format::kParkedTag, format::ParkedIndexName(req.source(), req.group()));
  const std::string end = PrefixEnd(prefix);
  storage::ReadOptions options;
  options.lower_bound = prefix;
  options.upper_bound = end;
  std::vector<std::pair<std::string, std::string>> moved;
  auto it = batch->NewIterator(Family::kEvents, options);
  for (it->Seek(prefix); it->Valid() && moved.size() < max_count; it->Next()) {
    moved.emplace_back(std::string(it->key()), std::string(it->value()));
  }
  CAIRN_RETURN_IF_ERROR(it->status());
  for (const auto& [key, value] : moved) {
    uint64_t revision = 0;
    uint32_t index = 0;
    if (!format::DecodePosition(value, &revision, &index)) return Corrupt("parked entry");
    ReplayRecord replay;
    replay.mutable_position()->set_revision(revision);
    replay.mutable_position()->set_index(index);
    const uint64_t sequence = record->replay_next();
    record->set_replay_next(sequence + 1);
    PutRecord(batch, format::ReplayKey(record->group_id(), sequence), replay);
    batch->Delete(Family::kEvents, key);
  }
  record->set_replay_pending(record->replay_pending() + moved.size());
  PutRecord(batch, format::GroupKey(req.source(), req.group()), *record);
  resp->set_replayed(moved.size());
  resp->mutable_header()->set_revision(kv_->PendingRevision());
  changed_in_batch_ = true;
  return Status::Ok();
}

void PersistentState::OnBatchWritten() {
  if (!changed_in_batch_) return;
  changed_in_batch_ = false;
  generation_.fetch_add(1, std::memory_order_acq_rel);
}

// ---------------------------------------------------------------------------------------------
// Reads

Result<std::optional<PersistentGroupRecord>> PersistentState::GetGroup(
    std::string_view source, std::string_view group) const {
  std::string value;
  CAIRN_ASSIGN_OR_RETURN(bool found, engine_->Get(storage::ReadOptions{}, Family::kEvents,
                                                  format::GroupKey(source, group), &value));
  if (!found) return std::optional<PersistentGroupRecord>();
  PersistentGroupRecord record;
  if (!record.ParseFromString(value)) return Corrupt("persistent group record");
  return std::optional<PersistentGroupRecord>(std::move(record));
}

Status PersistentState::ListGroups(std::string_view source,
                                   std::vector<PersistentGroupRecord>* out) const {
  out->clear();
  const std::string prefix = format::GroupPrefix(source);
  const std::string end = PrefixEnd(prefix);
  storage::ReadOptions options;
  options.lower_bound = prefix;
  options.upper_bound = end;
  auto it = engine_->NewIterator(options, Family::kEvents);
  for (it->Seek(prefix); it->Valid(); it->Next()) {
    PersistentGroupRecord& record = out->emplace_back();
    if (!record.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()))) {
      return Corrupt("persistent group record");
    }
  }
  return it->status();
}

Result<uint64_t> PersistentState::ParkedCount(std::string_view source,
                                              std::string_view group) const {
  std::string value;
  CAIRN_ASSIGN_OR_RETURN(bool found,
                         engine_->Get(storage::ReadOptions{}, Family::kEvents,
                                      format::CountKey(format::kParkedCountTag,
                                                       format::ParkedIndexName(source, group)),
                                      &value));
  if (!found) return uint64_t{0};
  uint64_t count = 0;
  if (!format::DecodeU64(value, &count)) return Corrupt("parked counter");
  return count;
}

Status PersistentState::LoadProgress(std::string_view source, std::string_view group,
                                     Progress* out) const {
  *out = Progress();
  std::shared_ptr<const storage::Snapshot> snapshot = engine_->GetSnapshot();
  storage::ReadOptions options;
  options.snapshot = snapshot.get();
  std::string value;
  CAIRN_ASSIGN_OR_RETURN(
      bool found, engine_->Get(options, Family::kEvents, format::GroupKey(source, group), &value));
  if (!found) return ErrGroupNotFound(source, group);
  if (!out->group.ParseFromString(value)) return Corrupt("persistent group record");
  const uint64_t group_id = out->group.group_id();
  {
    const std::string prefix = format::GroupEventPrefix(group_id);
    const std::string end = PrefixEnd(prefix);
    storage::ReadOptions scan = options;
    scan.lower_bound = prefix;
    scan.upper_bound = end;
    auto it = engine_->NewIterator(scan, Family::kEvents);
    for (it->Seek(prefix); it->Valid(); it->Next()) {
      CursorKey key;
      if (!format::DecodeGroupEventKey(it->key(), &key.major, &key.minor)) {
        return Corrupt("group event key");
      }
      records::PersistentEventRecord record;
      if (!record.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()))) {
        return Corrupt("group event record");
      }
      out->events.emplace_back(key, std::move(record));
    }
    CAIRN_RETURN_IF_ERROR(it->status());
  }
  const std::string prefix = format::ReplayPrefix(group_id);
  const std::string end = PrefixEnd(prefix);
  storage::ReadOptions scan = options;
  scan.lower_bound = prefix;
  scan.upper_bound = end;
  auto it = engine_->NewIterator(scan, Family::kEvents);
  for (it->Seek(prefix); it->Valid(); it->Next()) {
    uint64_t sequence = 0;
    if (!format::DecodeReplayKey(it->key(), &sequence)) return Corrupt("replay key");
    records::ReplayRecord record;
    if (!record.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()))) {
      return Corrupt("replay record");
    }
    out->replays.emplace_back(sequence, std::move(record));
  }
  return it->status();
}

}  // namespace cairn::events
