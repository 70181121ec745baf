#include "src/events/event_state.h"

#include <algorithm>
#include <map>
#include <set>
#include <unordered_map>

#include "src/base/check.h"
#include "src/base/coding.h"

namespace cairn::events {
namespace {

using records::EventRecord;
using records::StreamRecord;
using storage::Family;

constexpr std::string_view kCategoryStreamPrefix = "$ce-";
constexpr std::string_view kTypeStreamPrefix = "$et-";
constexpr std::string_view kDefaultContentType = "application/json";

Status Invalid(std::string_view message) {
  return Status::InvalidArgument("events: " + std::string(message));
}

Status ErrStreamNotFound(std::string_view stream) {
  return Status::NotFound("events: stream '" + std::string(stream) + "' not found");
}

Status ErrStreamDeleted(std::string_view stream) {
  return Status::FailedPrecondition("events: stream '" + std::string(stream) +
                                    "' is deleted (hard delete)");
}

Status Corrupt(std::string_view what) {
  return Status::Corruption("events: corrupt " + std::string(what));
}

// Reads the events family either through the apply batch or on one engine snapshot.
class Reader {
 public:
  explicit Reader(storage::WriteBatch* batch) : batch_(batch) {}
  explicit Reader(storage::Engine* engine) : engine_(engine), snapshot_(engine->GetSnapshot()) {}

  Result<bool> Get(std::string_view key, std::string* value, Family family = Family::kEvents) {
    if (batch_ != nullptr) return batch_->Get(family, key, value);
    storage::ReadOptions options;
    options.snapshot = snapshot_.get();
    return engine_->Get(options, family, key, value);
  }

  // Snapshot readers only: a meta-family key on the same snapshot.
  Result<bool> GetMeta(std::string_view key, std::string* value) {
    CAIRN_CHECK(engine_ != nullptr);
    storage::ReadOptions options;
    options.snapshot = snapshot_.get();
    return engine_->Get(options, Family::kMeta, key, value);
  }

  // Snapshot readers only.
  std::unique_ptr<storage::Iterator> NewIterator(std::string_view lower, std::string_view upper) {
    CAIRN_CHECK(engine_ != nullptr);
    storage::ReadOptions options;
    options.snapshot = snapshot_.get();
    options.lower_bound = lower;
    options.upper_bound = upper;
    return engine_->NewIterator(options, Family::kEvents);
  }

  Result<std::optional<StreamRecord>> Stream(std::string_view name) {
    std::string value;
    CAIRN_ASSIGN_OR_RETURN(bool found, Get(format::StreamKey(name), &value));
    if (!found) return std::optional<StreamRecord>();
    StreamRecord record;
    if (!record.ParseFromString(value)) return Corrupt("stream record");
    return std::optional<StreamRecord>(std::move(record));
  }

  Result<std::optional<EventRecord>> Event(uint64_t stream_id, uint64_t version) {
    std::string value;
    CAIRN_ASSIGN_OR_RETURN(bool found, Get(format::EventKey(stream_id, version), &value));
    if (!found) return std::optional<EventRecord>();
    EventRecord record;
    if (!record.ParseFromString(value)) return Corrupt("event record");
    return std::optional<EventRecord>(std::move(record));
  }

  Result<std::optional<format::IdEntry>> IdPointer(std::string_view id_bytes) {
    std::string value;
    CAIRN_ASSIGN_OR_RETURN(bool found, Get(format::IdKey(id_bytes), &value, Family::kEventIds));
    if (!found) return std::optional<format::IdEntry>();
    format::IdEntry entry;
    if (!format::DecodeIdEntry(value, &entry)) return Corrupt("id index entry");
    return std::optional<format::IdEntry>(entry);
  }

  Result<uint64_t> Count(char tag, std::string_view name) {
    std::string value;
    CAIRN_ASSIGN_OR_RETURN(bool found, Get(format::CountKey(tag, name), &value));
    if (!found) return uint64_t{0};
    uint64_t count = 0;
    if (!format::DecodeU64(value, &count)) return Corrupt("index counter");
    return count;
  }

 private:
  storage::WriteBatch* batch_ = nullptr;
  storage::Engine* engine_ = nullptr;
  std::shared_ptr<const storage::Snapshot> snapshot_;
};

bool StreamExists(const std::optional<StreamRecord>& stream) {
  return stream.has_value() && stream->has_events() && !stream->soft_deleted() &&
         !stream->hard_deleted();
}

bool ExpectedMatches(v1::ExpectedKind kind, uint64_t expected,
                     const std::optional<StreamRecord>& stream) {
  switch (kind) {
    case v1::ANY:
      return true;
    case v1::NO_STREAM:
      return !StreamExists(stream);
    case v1::STREAM_EXISTS:
      return StreamExists(stream);
    case v1::EXACT:
      // A soft-deleted stream keeps its numbering: its last version may be expected.
      return stream.has_value() && stream->has_events() && stream->last_version() == expected;
    default:
      return false;
  }
}

void FillWrongVersion(const std::optional<StreamRecord>& stream, v1::WrongExpectedVersion* out) {
  out->set_stream_exists(StreamExists(stream));
  if (stream.has_value() && stream->has_events()) out->set_current_version(stream->last_version());
  out->set_soft_deleted(stream.has_value() && stream->soft_deleted());
}

// The first version reads may return.
uint64_t FirstVisible(const StreamRecord& stream) {
  uint64_t first = std::max(stream.deleted_before(), stream.metadata().truncate_before());
  uint64_t max_count = stream.metadata().max_count();
  if (max_count > 0 && stream.has_events() && stream.last_version() + 1 > max_count) {
    first = std::max(first, stream.last_version() + 1 - max_count);
  }
  return first;
}

bool Expired(const StreamRecord& stream, const EventRecord& event, int64_t now_unix_nanos) {
  uint64_t max_age = stream.metadata().max_age_seconds();
  if (max_age == 0) return false;
  __int128 deadline = static_cast<__int128>(event.created_unix_nanos()) +
                      static_cast<__int128>(max_age) * 1'000'000'000;
  return deadline <= now_unix_nanos;
}

bool Visible(const StreamRecord& stream, uint64_t version, const EventRecord& event,
             int64_t now_unix_nanos) {
  if (stream.hard_deleted() || stream.soft_deleted()) return false;
  return version >= FirstVisible(stream) && !Expired(stream, event, now_unix_nanos);
}

void ToRecorded(std::string_view stream, uint64_t version, EventRecord&& event,
                v1::RecordedEvent* out) {
  out->set_stream(std::string(stream));
  out->set_version(version);
  out->set_id(format::FormatUuid(event.id()));
  out->set_type(std::move(*event.mutable_type()));
  out->set_data(std::move(*event.mutable_data()));
  out->set_metadata(std::move(*event.mutable_metadata()));
  out->set_content_type(std::move(*event.mutable_content_type()));
  out->mutable_position()->set_revision(event.revision());
  out->mutable_position()->set_index(event.index());
  out->set_created_unix_nanos(event.created_unix_nanos());
  out->set_hash(std::move(*event.mutable_hash()));
}

size_t PageSize(uint32_t count) {
  if (count == 0) return EventLimits::kReadCountDefault;
  return std::min<size_t>(count, EventLimits::kReadCountMax);
}

bool HasPrefix(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

bool IsParkedStream(std::string_view stream) {
  return stream.size() > format::kParkedStreamPrefix.size() + format::kParkedStreamSuffix.size() &&
         HasPrefix(stream, format::kParkedStreamPrefix) &&
         stream.substr(stream.size() - format::kParkedStreamSuffix.size()) ==
             format::kParkedStreamSuffix;
}

// The counter tag of an index stream's tag.
char CountTagOf(char tag) {
  switch (tag) {
    case format::kCategoryTag:
      return format::kCategoryCountTag;
    case format::kTypeTag:
      return format::kTypeCountTag;
    case format::kParkedTag:
      return format::kParkedCountTag;
    default:
      CAIRN_CHECK(false);
      return 0;
  }
}

bool MatchesAny(std::string_view s,
                const google::protobuf::RepeatedPtrField<std::string>& prefixes) {
  if (prefixes.empty()) return true;
  for (const std::string& prefix : prefixes) {
    if (HasPrefix(s, prefix)) return true;
  }
  return false;
}

// Streams met during one read, by id.
class StreamCache {
 public:
  explicit StreamCache(Reader* reader) : reader_(reader) {}

  struct Entry {
    std::string name;
    StreamRecord record;
  };

  Result<const Entry*> Get(uint64_t stream_id) {
    auto it = entries_.find(stream_id);
    if (it != entries_.end()) return &it->second;
    Entry entry;
    CAIRN_ASSIGN_OR_RETURN(bool found, reader_->Get(format::StreamNameKey(stream_id), &entry.name));
    if (!found) return Corrupt("stream id without a name");
    CAIRN_ASSIGN_OR_RETURN(std::optional<StreamRecord> record, reader_->Stream(entry.name));
    if (!record.has_value()) return Corrupt("stream name without a record");
    entry.record = std::move(*record);
    return &entries_.emplace(stream_id, std::move(entry)).first->second;
  }

 private:
  Reader* reader_;
  std::unordered_map<uint64_t, Entry> entries_;
};

// The event at $all position (revision, index): its pointer from the "A" entry, and whether
// a scavenge removed it.
struct AllEntry {
  format::Pointer pointer;
  bool removed = false;
};
Result<std::optional<AllEntry>> AllPointer(Reader* reader, uint64_t revision, uint32_t index) {
  std::string value;
  CAIRN_ASSIGN_OR_RETURN(bool found, reader->Get(format::AllKey(revision, index), &value));
  if (!found) return std::optional<AllEntry>();
  format::AllValue decoded;
  if (!format::DecodeAllValue(value, &decoded)) return Corrupt("$all entry");
  return std::optional<AllEntry>(AllEntry{decoded.pointer, decoded.removed()});
}

Status ValidateExpected(v1::ExpectedKind kind) {
  if (!v1::ExpectedKind_IsValid(kind)) return Invalid("unknown expected version kind");
  return Status::Ok();
}

Status ValidateMetadata(const v1::StreamMetadata& metadata) {
  if (metadata.custom().size() > EventLimits::kCustomMetadataBytesMax) {
    return Invalid("custom stream metadata of " + std::to_string(metadata.custom().size()) +
                   " bytes exceeds the limit of " +
                   std::to_string(EventLimits::kCustomMetadataBytesMax));
  }
  if (metadata.max_age_seconds() > (uint64_t{1} << 40)) return Invalid("max_age_seconds too large");
  return Status::Ok();
}

// A ReadStream-like scan over one projection stream ("$ce-x" / "$et-x").
Status ReadIndexStream(Reader* reader, char tag, std::string_view name, std::string_view stream,
                       bool backwards, bool from_end, uint64_t from, size_t count,
                       int64_t now_unix_nanos, std::vector<v1::RecordedEvent>* out,
                       bool* end_of_stream, uint64_t* next_version, uint64_t* total) {
  CAIRN_ASSIGN_OR_RETURN(*total, reader->Count(CountTagOf(tag), name));
  (void)stream;
  *end_of_stream = true;
  if (*total == 0) return Status::Ok();
  const std::string prefix = format::IndexPrefix(tag, name);
  std::string upper = prefix;
  upper.back() = '\1';
  auto it = reader->NewIterator(prefix, upper);
  StreamCache streams(reader);
  if (backwards) {
    uint64_t start = from_end ? *total - 1 : std::min(from, *total - 1);
    it->SeekForPrev(format::IndexKey(tag, name, start));
  } else {
    it->Seek(format::IndexKey(tag, name, from));
  }
  while (it->Valid()) {
    uint64_t number = 0;
    if (!format::DecodeIndexNumber(it->key(), &number)) return Corrupt("index key");
    if (out->size() == count) {
      *end_of_stream = false;
      *next_version = number;
      break;
    }
    uint64_t revision = 0;
    uint32_t index = 0;
    if (!format::DecodePosition(it->value(), &revision, &index)) return Corrupt("index entry");
    CAIRN_ASSIGN_OR_RETURN(std::optional<AllEntry> all, AllPointer(reader, revision, index));
    if (!all.has_value()) return Corrupt("index entry without a $all entry");
    const format::Pointer* pointer = &all->pointer;
    // A link a scavenge could not remove (an event written before links were recorded in it).
    std::optional<EventRecord> event;
    if (!all->removed) {
      CAIRN_ASSIGN_OR_RETURN(event, reader->Event(pointer->stream_id, pointer->version));
      if (!event.has_value()) return Corrupt("$all entry without its event");
    }
    CAIRN_ASSIGN_OR_RETURN(const StreamCache::Entry* entry, streams.Get(pointer->stream_id));
    if (event.has_value() && Visible(entry->record, pointer->version, *event, now_unix_nanos)) {
      v1::RecordedEvent& recorded = out->emplace_back();
      ToRecorded(entry->name, pointer->version, std::move(*event), &recorded);
      recorded.set_link_version(number);
    }
    if (backwards) {
      it->Prev();
    } else {
      it->Next();
    }
  }
  return it->status();
}

}  // namespace

Status MoveIdEntriesToIdFamily(storage::Engine* engine) {
  constexpr size_t kEntriesPerBatch = 10000;
  const std::string lower(1, format::kIdTag);
  const std::string upper(1, static_cast<char>(format::kIdTag + 1));
  storage::ReadOptions options;
  options.lower_bound = lower;
  options.upper_bound = upper;
  options.fill_cache = false;
  std::unique_ptr<storage::Iterator> it = engine->NewIterator(options, Family::kEvents);
  std::unique_ptr<storage::WriteBatch> batch = engine->NewWriteBatch();
  for (it->Seek(lower); it->Valid(); it->Next()) {
    if (it->key().size() != format::kIdKeyBytes) return Corrupt("id index key");
    batch->PutUnread(Family::kEventIds, it->key(), it->value());
    batch->Delete(Family::kEvents, it->key());
    if (batch->Count() >= 2 * kEntriesPerBatch) {
      CAIRN_RETURN_IF_ERROR(engine->Write(batch.get()));
      batch->Clear();
    }
  }
  CAIRN_RETURN_IF_ERROR(it->status());
  if (batch->Count() > 0) CAIRN_RETURN_IF_ERROR(engine->Write(batch.get()));
  return engine->Flush();
}

// ---------------------------------------------------------------------------------------------
// Validation

Status ValidateStreamName(std::string_view stream, bool allow_system) {
  if (stream.empty()) return Invalid("stream name is empty");
  if (stream.size() > EventLimits::kStreamNameBytesMax) {
    return Invalid("stream name of " + std::to_string(stream.size()) +
                   " bytes exceeds the limit of " +
                   std::to_string(EventLimits::kStreamNameBytesMax));
  }
  if (stream.find('\0') != std::string_view::npos) return Invalid("stream name contains NUL");
  if (stream[0] == '$') {
    if (!allow_system) {
      return Invalid("stream names starting with '$' are reserved for system streams");
    }
    if (IsParkedStream(stream)) return Status::Ok();
    if (!HasPrefix(stream, kCategoryStreamPrefix) && !HasPrefix(stream, kTypeStreamPrefix)) {
      return Status::NotFound("events: unknown system stream '" + std::string(stream) +
                              "' (system streams are $ce-<category>, $et-<type> and "
                              "$persistentsubscription-<source>::<group>-parked)");
    }
    if (stream.size() == 4)
      return Invalid("system stream '" + std::string(stream) + "' names nothing");
  }
  return Status::Ok();
}

namespace {

// ValidateAppend, also handing out the parsed ids (16 bytes each, in request order).
Status ValidateAppendIds(const v1::AppendRequest& req, std::vector<std::string>* ids) {
  CAIRN_RETURN_IF_ERROR(ValidateStreamName(req.stream(), /*allow_system=*/false));
  CAIRN_RETURN_IF_ERROR(ValidateExpected(req.expected_kind()));
  if (req.events().empty()) return Invalid("an append needs at least one event");
  if (static_cast<size_t>(req.events_size()) > EventLimits::kEventsPerAppendMax) {
    return Invalid("an append of " + std::to_string(req.events_size()) +
                   " events exceeds the limit of " +
                   std::to_string(EventLimits::kEventsPerAppendMax));
  }
  ids->clear();
  ids->reserve(req.events_size());  // no reallocation: `seen` points into it
  std::set<std::string_view> seen;
  for (int i = 0; i < req.events_size(); ++i) {
    const v1::NewEvent& event = req.events(i);
    const std::string which = "event " + std::to_string(i);
    std::optional<std::string> id = format::ParseUuid(event.id());
    if (!id.has_value()) {
      return Invalid(which + ": id '" + event.id() +
                     "' is not a UUID (expected xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)");
    }
    ids->push_back(std::move(*id));
    if (!seen.insert(ids->back()).second) {
      return Invalid(which + ": id " + event.id() + " appears twice");
    }
    if (event.type().empty()) return Invalid(which + ": event type is empty");
    if (event.type().size() > EventLimits::kEventTypeBytesMax) {
      return Invalid(which + ": event type of " + std::to_string(event.type().size()) +
                     " bytes exceeds the limit of " +
                     std::to_string(EventLimits::kEventTypeBytesMax));
    }
    if (event.type().find('\0') != std::string::npos) return Invalid(which + ": type contains NUL");
    if (event.content_type().size() > EventLimits::kContentTypeBytesMax) {
      return Invalid(which + ": content type too long");
    }
    size_t bytes = event.data().size() + event.metadata().size();
    if (bytes > EventLimits::kEventBytesMax) {
      return Invalid(which + ": data and metadata of " + std::to_string(bytes) +
                     " bytes exceed the limit of " + std::to_string(EventLimits::kEventBytesMax) +
                     " bytes per event");
    }
  }
  for (const etcdserverpb::RequestOp& op : req.kv_ops()) {
    if (op.request_case() != etcdserverpb::RequestOp::kRequestPut &&
        op.request_case() != etcdserverpb::RequestOp::kRequestDeleteRange) {
      return Invalid("outbox operations must be puts or delete ranges");
    }
  }
  return Status::Ok();
}

}  // namespace

Status ValidateAppend(const v1::AppendRequest& req) {
  std::vector<std::string> ids;
  return ValidateAppendIds(req, &ids);
}

Status ValidateDeleteStream(const v1::DeleteStreamRequest& req) {
  CAIRN_RETURN_IF_ERROR(ValidateStreamName(req.stream(), /*allow_system=*/false));
  return ValidateExpected(req.expected_kind());
}

Status ValidateSetMetadata(const v1::SetStreamMetadataRequest& req) {
  CAIRN_RETURN_IF_ERROR(ValidateStreamName(req.stream(), /*allow_system=*/false));
  return ValidateMetadata(req.metadata());
}

Status ValidateSaveSnapshot(const v1::SaveSnapshotRequest& req) {
  CAIRN_RETURN_IF_ERROR(ValidateStreamName(req.stream(), /*allow_system=*/false));
  if (req.data().size() > EventLimits::kSnapshotBytesMax) {
    return Invalid("snapshot of " + std::to_string(req.data().size()) +
                   " bytes exceeds the limit of " + std::to_string(EventLimits::kSnapshotBytesMax));
  }
  if (req.type().size() > EventLimits::kEventTypeBytesMax) return Invalid("snapshot type too long");
  return Status::Ok();
}

// ---------------------------------------------------------------------------------------------
// Open and batches

namespace {

Status LoadChainHead(storage::Engine* engine, std::string* hash, uint64_t* events,
                     uint64_t* next_stream_id) {
  std::string value;
  CAIRN_ASSIGN_OR_RETURN(bool found, engine->Get(storage::ReadOptions{}, Family::kMeta,
                                                 format::kChainHeadKey, &value));
  if (!found) return Status::Ok();
  records::ChainHead stored;
  if (!stored.ParseFromString(value)) return Corrupt("chain head");
  *hash = stored.hash();
  *events = stored.events();
  *next_stream_id = stored.next_stream_id();
  return Status::Ok();
}

}  // namespace

Result<std::unique_ptr<EventState>> EventState::Open(storage::Engine* engine, mvcc::KvState* kv) {
  Head head;
  CAIRN_RETURN_IF_ERROR(LoadChainHead(engine, &head.hash, &head.events, &head.next_stream_id));
  auto state = std::unique_ptr<EventState>(new EventState(engine, kv, head));
  state->published_events_ = head.events;
  return state;
}

Status EventState::Reload() {
  Head head;
  CAIRN_RETURN_IF_ERROR(LoadChainHead(engine_, &head.hash, &head.events, &head.next_stream_id));
  pending_ = head;
  written_ = head;
  persistent_.OnStateReplaced();
  {
    std::lock_guard<std::mutex> lock(mu_);
    published_events_ = head.events;
  }
  written_cv_.notify_all();
  std::lock_guard<std::mutex> lock(listeners_mu_);
  for (const auto& [id, listener] : listeners_) listener();
  return Status::Ok();
}

void EventState::WriteHead(storage::WriteBatch* batch) const {
  records::ChainHead stored;
  stored.set_hash(pending_.hash);
  stored.set_events(pending_.events);
  stored.set_next_stream_id(pending_.next_stream_id);
  batch->Put(Family::kMeta, format::kChainHeadKey, stored.SerializeAsString());
}

void EventState::OnBatchWritten() {
  persistent_.OnBatchWritten();
  written_ = pending_;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (published_events_ == written_.events) return;
    published_events_ = written_.events;
  }
  written_cv_.notify_all();
  std::lock_guard<std::mutex> lock(listeners_mu_);
  for (const auto& [id, listener] : listeners_) listener();
}

uint64_t EventState::AddWriteListener(std::function<void()> listener) {
  std::lock_guard<std::mutex> lock(listeners_mu_);
  const uint64_t id = next_listener_id_++;
  listeners_.emplace(id, std::move(listener));
  return id;
}

void EventState::RemoveWriteListener(uint64_t id) {
  std::lock_guard<std::mutex> lock(listeners_mu_);
  listeners_.erase(id);
}

void EventState::OnBatchAborted() {
  pending_ = written_;
  persistent_.OnBatchAborted();
}

uint64_t EventState::WaitForEvents(uint64_t seen, std::chrono::milliseconds timeout) const {
  std::unique_lock<std::mutex> lock(mu_);
  written_cv_.wait_for(lock, timeout, [&] { return published_events_ > seen; });
  return published_events_;
}

uint64_t EventState::EventCount() const {
  std::lock_guard<std::mutex> lock(mu_);
  return published_events_;
}

void EventState::WakeAll() const {
  std::lock_guard<std::mutex> lock(mu_);
  written_cv_.notify_all();
}

// ---------------------------------------------------------------------------------------------
// Apply

Status EventState::ApplyAppend(storage::WriteBatch* batch, const command::EventsAppend& command,
                               v1::AppendResponse* resp, std::vector<mvccpb::Event>* kv_events) {
  resp->Clear();
  const v1::AppendRequest& req = command.request();
  std::vector<std::string> ids;
  CAIRN_RETURN_IF_ERROR(ValidateAppendIds(req, &ids));

  Reader reader(batch);
  CAIRN_ASSIGN_OR_RETURN(std::optional<StreamRecord> stream, reader.Stream(req.stream()));
  if (stream.has_value() && stream->hard_deleted()) return ErrStreamDeleted(req.stream());

  // Deterministic idempotency: the id index is replicated state, never evicted.
  CAIRN_ASSIGN_OR_RETURN(std::optional<format::IdEntry> first_entry, reader.IdPointer(ids[0]));
  if (first_entry.has_value()) {
    const format::Pointer* first = &first_entry->pointer;
    bool same_stream = stream.has_value() && first->stream_id == stream->stream_id();
    bool all_match = same_stream;
    for (size_t i = 1; all_match && i < ids.size(); ++i) {
      CAIRN_ASSIGN_OR_RETURN(std::optional<format::IdEntry> at, reader.IdPointer(ids[i]));
      all_match = at.has_value() && at->pointer.stream_id == first->stream_id &&
                  at->pointer.version == first->version + i;
    }
    if (!all_match) {
      return Status::AlreadyExists("events: event id " + req.events(0).id() +
                                   " was already appended, and this append does not repeat "
                                   "that append exactly (same stream, same ids in order)");
    }
    bool consistent = false;
    switch (req.expected_kind()) {
      case v1::ANY:
        consistent = true;
        break;
      case v1::NO_STREAM:
        consistent = first->version == 0;
        break;
      case v1::STREAM_EXISTS:
        consistent = true;
        break;
      case v1::EXACT:
        consistent = first->version == req.expected_version() + 1;
        break;
      default:
        break;
    }
    if (!consistent) {
      FillWrongVersion(stream, resp->mutable_wrong_expected_version());
      resp->mutable_header()->set_revision(kv_->PendingRevision());
      return Status::Ok();
    }
    if (!first_entry->position.has_value()) {
      // An entry written before positions were kept in it: the event has the position (it
      // was written in an earlier batch, so the batch reads it from the engine).
      CAIRN_ASSIGN_OR_RETURN(std::optional<EventRecord> event,
                             reader.Event(first->stream_id, first->version));
      if (!event.has_value()) return Corrupt("id index entry without its event");
      first_entry->position.emplace(event->revision(), event->index());
    }
    v1::AppendSuccess* success = resp->mutable_success();
    success->set_first_version(first->version);
    success->set_current_version(first->version + ids.size() - 1);
    success->mutable_position()->set_revision(first_entry->position->first);
    success->mutable_position()->set_index(first_entry->position->second);
    success->set_idempotent_replay(true);
    resp->mutable_header()->set_revision(kv_->PendingRevision());
    return Status::Ok();
  }
  for (size_t i = 1; i < ids.size(); ++i) {
    CAIRN_ASSIGN_OR_RETURN(std::optional<format::IdEntry> at, reader.IdPointer(ids[i]));
    if (at.has_value()) {
      return Status::AlreadyExists("events: event id " + req.events(static_cast<int>(i)).id() +
                                   " was already appended");
    }
  }

  if (!ExpectedMatches(req.expected_kind(), req.expected_version(), stream)) {
    FillWrongVersion(stream, resp->mutable_wrong_expected_version());
    resp->mutable_header()->set_revision(kv_->PendingRevision());
    return Status::Ok();
  }

  // The write: the outbox first (it takes the new revision), then the events.
  batch->SetSavePoint();
  const Head head_before = pending_;
  Status status = [&]() -> Status {
    etcdserverpb::TxnRequest txn;
    for (const etcdserverpb::RequestOp& op : req.kv_ops()) *txn.add_success() = op;
    v1::AppendSuccess* success = resp->mutable_success();
    CAIRN_RETURN_IF_ERROR(kv_->ApplyTxnAtNewRevision(batch, txn, success->mutable_kv(), kv_events));
    const uint64_t revision = static_cast<uint64_t>(kv_->PendingRevision());

    StreamRecord record;
    if (stream.has_value()) {
      record = std::move(*stream);
    } else {
      record.set_stream_id(pending_.next_stream_id++);
      batch->Put(Family::kEvents, format::StreamNameKey(record.stream_id()), req.stream());
    }
    const uint64_t first_version = record.has_events() ? record.last_version() + 1 : 0;
    std::map<std::pair<char, std::string>, uint64_t> counters;
    auto next_number = [&](char count_tag, const std::string& name) -> Result<uint64_t> {
      auto key = std::make_pair(count_tag, name);
      auto it = counters.find(key);
      if (it == counters.end()) {
        CAIRN_ASSIGN_OR_RETURN(uint64_t count, reader.Count(count_tag, name));
        it = counters.emplace(key, count).first;
      }
      return it->second++;
    };
    const std::optional<std::string_view> category = format::Category(req.stream());
    for (int i = 0; i < req.events_size(); ++i) {
      const v1::NewEvent& in = req.events(i);
      const uint64_t version = first_version + static_cast<uint64_t>(i);
      const uint32_t index = static_cast<uint32_t>(i);
      EventRecord event;
      event.set_id(ids[i]);
      event.set_type(in.type());
      event.set_data(in.data());
      event.set_metadata(in.metadata());
      event.set_content_type(in.content_type().empty() ? std::string(kDefaultContentType)
                                                       : in.content_type());
      event.set_revision(revision);
      event.set_index(index);
      event.set_created_unix_nanos(command.created_unix_nanos());
      event.set_hash(format::ChainHash(pending_.hash, req.stream(), version, event));
      pending_.hash = event.hash();
      ++pending_.events;
      const format::Pointer pointer{record.stream_id(), version};
      const std::string pointer_value = format::EncodePointer(pointer);
      const std::string position_value = format::EncodePosition(revision, index);
      // Events, $all and the system projection entries are written once and never read by a
      // command (the id entry carries what an idempotent retry needs): no need for the batch
      // to index them.
      batch->PutUnread(Family::kEvents, format::AllKey(revision, index), pointer_value);
      batch->Put(Family::kEventIds, format::IdKey(ids[i]),
                 format::EncodeIdEntry(pointer, revision, index));
      if (category.has_value()) {
        CAIRN_ASSIGN_OR_RETURN(uint64_t number,
                               next_number(format::kCategoryCountTag, std::string(*category)));
        batch->PutUnread(Family::kEvents, format::IndexKey(format::kCategoryTag, *category, number),
                         position_value);
        event.set_category_link(number);
      }
      CAIRN_ASSIGN_OR_RETURN(uint64_t number, next_number(format::kTypeCountTag, in.type()));
      batch->PutUnread(Family::kEvents, format::IndexKey(format::kTypeTag, in.type(), number),
                       position_value);
      event.set_type_link(number);
      batch->PutUnread(Family::kEvents, format::EventKey(record.stream_id(), version),
                       event.SerializeAsString());
    }
    for (const auto& [key, count] : counters) {
      batch->Put(Family::kEvents, format::CountKey(key.first, key.second),
                 format::EncodeU64(count));
    }
    record.set_has_events(true);
    record.set_last_version(first_version + ids.size() - 1);
    record.set_soft_deleted(false);
    batch->Put(Family::kEvents, format::StreamKey(req.stream()), record.SerializeAsString());
    WriteHead(batch);

    success->set_first_version(first_version);
    success->set_current_version(record.last_version());
    success->mutable_position()->set_revision(revision);
    success->mutable_position()->set_index(0);
    resp->mutable_header()->set_revision(static_cast<int64_t>(revision));
    return Status::Ok();
  }();
  if (!status.ok()) {
    // The KV part rolled itself back; this drops the event writes. An engine read error
    // after the KV part succeeded leaves KvState's pending revision ahead: the applier
    // fails the whole batch in that case (engine errors stop the node).
    CAIRN_CHECK_OK(batch->RollbackToSavePoint());
    pending_ = head_before;
    resp->Clear();
    return status;
  }
  batch->PopSavePoint();
  return Status::Ok();
}

Status EventState::ApplyDeleteStream(storage::WriteBatch* batch, const v1::DeleteStreamRequest& req,
                                     v1::DeleteStreamResponse* resp) {
  resp->Clear();
  CAIRN_RETURN_IF_ERROR(ValidateDeleteStream(req));
  Reader reader(batch);
  CAIRN_ASSIGN_OR_RETURN(std::optional<StreamRecord> stream, reader.Stream(req.stream()));
  if (stream.has_value() && stream->hard_deleted()) return ErrStreamDeleted(req.stream());
  if (!ExpectedMatches(req.expected_kind(), req.expected_version(), stream)) {
    FillWrongVersion(stream, resp->mutable_wrong_expected_version());
    resp->mutable_header()->set_revision(kv_->PendingRevision());
    return Status::Ok();
  }
  if (!req.hard() && !StreamExists(stream)) return ErrStreamNotFound(req.stream());
  etcdserverpb::TxnResponse ignored;
  CAIRN_RETURN_IF_ERROR(kv_->ApplyTxnAtNewRevision(batch, etcdserverpb::TxnRequest(), &ignored));
  StreamRecord record;
  if (stream.has_value()) {
    record = std::move(*stream);
  } else {
    record.set_stream_id(pending_.next_stream_id++);
    batch->Put(Family::kEvents, format::StreamNameKey(record.stream_id()), req.stream());
    WriteHead(batch);
  }
  if (req.hard()) {
    record.set_hard_deleted(true);
  } else {
    record.set_soft_deleted(true);
    record.set_deleted_before(record.last_version() + 1);
  }
  batch->Put(Family::kEvents, format::StreamKey(req.stream()), record.SerializeAsString());
  const int64_t revision = kv_->PendingRevision();
  resp->mutable_position()->set_revision(static_cast<uint64_t>(revision));
  resp->mutable_header()->set_revision(revision);
  return Status::Ok();
}

Status EventState::ApplySetMetadata(storage::WriteBatch* batch,
                                    const v1::SetStreamMetadataRequest& req,
                                    v1::SetStreamMetadataResponse* resp) {
  resp->Clear();
  CAIRN_RETURN_IF_ERROR(ValidateSetMetadata(req));
  Reader reader(batch);
  CAIRN_ASSIGN_OR_RETURN(std::optional<StreamRecord> stream, reader.Stream(req.stream()));
  if (stream.has_value() && stream->hard_deleted()) return ErrStreamDeleted(req.stream());
  etcdserverpb::TxnResponse ignored;
  CAIRN_RETURN_IF_ERROR(kv_->ApplyTxnAtNewRevision(batch, etcdserverpb::TxnRequest(), &ignored));
  StreamRecord record;
  if (stream.has_value()) {
    record = std::move(*stream);
  } else {
    record.set_stream_id(pending_.next_stream_id++);
    batch->Put(Family::kEvents, format::StreamNameKey(record.stream_id()), req.stream());
    WriteHead(batch);
  }
  *record.mutable_metadata() = req.metadata();
  batch->Put(Family::kEvents, format::StreamKey(req.stream()), record.SerializeAsString());
  resp->mutable_header()->set_revision(kv_->PendingRevision());
  return Status::Ok();
}

Status EventState::ApplySaveSnapshot(storage::WriteBatch* batch, const v1::SaveSnapshotRequest& req,
                                     v1::SaveSnapshotResponse* resp) {
  resp->Clear();
  CAIRN_RETURN_IF_ERROR(ValidateSaveSnapshot(req));
  Reader reader(batch);
  CAIRN_ASSIGN_OR_RETURN(std::optional<StreamRecord> stream, reader.Stream(req.stream()));
  if (stream.has_value() && stream->hard_deleted()) return ErrStreamDeleted(req.stream());
  if (!StreamExists(stream)) return ErrStreamNotFound(req.stream());
  if (req.version() > stream->last_version()) {
    return Status::NotFound("events: stream '" + req.stream() + "' has no version " +
                            std::to_string(req.version()) + " (its current version is " +
                            std::to_string(stream->last_version()) + ")");
  }
  etcdserverpb::TxnResponse ignored;
  CAIRN_RETURN_IF_ERROR(kv_->ApplyTxnAtNewRevision(batch, etcdserverpb::TxnRequest(), &ignored));
  records::SnapshotRecord snapshot;
  snapshot.set_version(req.version());
  snapshot.set_data(req.data());
  snapshot.set_type(req.type());
  batch->Put(Family::kEvents, format::SnapshotKey(stream->stream_id()),
             snapshot.SerializeAsString());
  resp->mutable_header()->set_revision(kv_->PendingRevision());
  return Status::Ok();
}

namespace {

size_t ScavengeBound(uint32_t requested, size_t default_bound) {
  return requested == 0 ? default_bound : requested;
}

}  // namespace

Status ValidateScavenge(const v1::ScavengeRequest& req) {
  if (req.max_streams() > EventLimits::kScavengeBoundMax ||
      req.max_events() > EventLimits::kScavengeBoundMax) {
    return Invalid("scavenge bounds (max_streams, max_events) are at most " +
                   std::to_string(EventLimits::kScavengeBoundMax));
  }
  // from_stream is a place in name order, not necessarily an existing stream.
  if (req.from_stream().size() > EventLimits::kStreamNameBytesMax) {
    return Invalid("from_stream exceeds " + std::to_string(EventLimits::kStreamNameBytesMax) +
                   " bytes");
  }
  return Status::Ok();
}

void EventState::SetBeforeScavenge(std::function<Status()> before) {
  std::lock_guard<std::mutex> lock(before_scavenge_mu_);
  before_scavenge_ = std::move(before);
}

Status EventState::PrepareScavenge() {
  std::lock_guard<std::mutex> lock(before_scavenge_mu_);
  return before_scavenge_ ? before_scavenge_() : Status::Ok();
}

Status EventState::ApplyScavenge(storage::WriteBatch* batch, const command::EventsScavenge& command,
                                 v1::ScavengeResponse* resp) {
  resp->Clear();
  const v1::ScavengeRequest& req = command.request();
  CAIRN_RETURN_IF_ERROR(ValidateScavenge(req));
  if (batch->Count() != 0) return Status::Internal("events: a scavenge must start its own batch");
  const size_t max_streams = ScavengeBound(req.max_streams(), EventLimits::kScavengeStreamsDefault);
  const size_t max_events = ScavengeBound(req.max_events(), EventLimits::kScavengeEventsDefault);
  // The batch is empty: every earlier command is in the engine, and one snapshot sees it all.
  Reader reader(engine_);
  const std::string lower = format::StreamKey(req.from_stream());
  const std::string upper(1, static_cast<char>(format::kStreamTag + 1));
  auto streams = reader.NewIterator(lower, upper);
  uint64_t examined = 0;
  uint64_t removed = 0;
  uint64_t bytes = 0;
  for (streams->Seek(lower); streams->Valid(); streams->Next()) {
    const std::string name(streams->key().substr(1));
    if (examined == max_streams || removed == max_events) {
      resp->set_next_stream(name);
      break;
    }
    ++examined;
    StreamRecord record;
    if (!record.ParseFromArray(streams->value().data(),
                               static_cast<int>(streams->value().size()))) {
      return Corrupt("stream record");
    }
    if (!record.has_events()) continue;
    // Below `keep_from` every event is hidden whatever the time: deleted, truncated, beyond
    // max_count. After it, max_age hides a prefix of the rest (the oldest first).
    const uint64_t end = record.last_version() + 1;
    const bool deleted = record.hard_deleted() || record.soft_deleted();
    const uint64_t keep_from = deleted ? end : std::min(FirstVisible(record), end);
    auto events =
        reader.NewIterator(format::EventKey(record.stream_id(), record.scavenged_before()),
                           format::EventKeyEnd(record.stream_id()));
    uint64_t next = record.scavenged_before();
    for (events->Seek(format::EventKey(record.stream_id(), next)); events->Valid();
         events->Next()) {
      const std::string_view key = events->key();
      if (key.size() != 17) return Corrupt("event key");
      const uint64_t version = coding::DecodeBigEndian64(key.data() + 9);
      EventRecord event;
      if (!event.ParseFromArray(events->value().data(), static_cast<int>(events->value().size()))) {
        return Corrupt("event record");
      }
      if (version >= keep_from && !Expired(record, event, command.now_unix_nanos())) break;
      if (removed == max_events) {
        resp->set_next_stream(name);
        break;
      }
      const format::Pointer pointer{record.stream_id(), version};
      batch->Delete(Family::kEvents, key);
      batch->Put(Family::kEvents, format::AllKey(event.revision(), event.index()),
                 format::EncodeAnchor(pointer, event.hash()));
      // An id entry written before positions were kept in it gets the position now: an
      // idempotent retry reads it there, the event being gone.
      batch->Put(Family::kEventIds, format::IdKey(event.id()),
                 format::EncodeIdEntry(pointer, event.revision(), event.index()));
      if (event.has_category_link()) {
        if (std::optional<std::string_view> category = format::Category(name)) {
          batch->Delete(Family::kEvents,
                        format::IndexKey(format::kCategoryTag, *category, event.category_link()));
        }
      }
      if (event.has_type_link()) {
        batch->Delete(Family::kEvents,
                      format::IndexKey(format::kTypeTag, event.type(), event.type_link()));
      }
      ++removed;
      bytes += key.size() + events->value().size();
      next = version + 1;
    }
    CAIRN_RETURN_IF_ERROR(events->status());
    if (record.hard_deleted())
      batch->Delete(Family::kEvents, format::SnapshotKey(record.stream_id()));
    if (next != record.scavenged_before()) {
      record.set_scavenged_before(next);
      batch->Put(Family::kEvents, streams->key(), record.SerializeAsString());
    }
    if (!resp->next_stream().empty()) break;
  }
  CAIRN_RETURN_IF_ERROR(streams->status());
  resp->set_streams_examined(examined);
  resp->set_events_removed(removed);
  resp->set_bytes_removed(bytes);
  resp->mutable_header()->set_revision(kv_->PendingRevision());
  return Status::Ok();
}

// ---------------------------------------------------------------------------------------------
// Reads

namespace {

struct StreamPage {
  std::vector<v1::RecordedEvent> events;
  bool end_of_stream = true;
  uint64_t next_version = 0;
};

// Reads a plain stream's events in [from ...] forwards or backwards. REQUIRES: visible stream.
Status ReadPlainStream(Reader* reader, std::string_view name, const StreamRecord& stream,
                       bool backwards, bool from_end, uint64_t from, size_t count,
                       int64_t now_unix_nanos, StreamPage* page) {
  page->end_of_stream = true;
  if (!stream.has_events()) return Status::Ok();
  const uint64_t first = FirstVisible(stream);
  const uint64_t last = stream.last_version();
  const std::string lower = format::EventKey(stream.stream_id(), first);
  const std::string upper = format::EventKeyEnd(stream.stream_id());
  auto it = reader->NewIterator(lower, upper);
  if (backwards) {
    uint64_t start = from_end ? last : std::min(from, last);
    if (start < first) return Status::Ok();
    it->SeekForPrev(format::EventKey(stream.stream_id(), start));
  } else {
    if (from > last) return Status::Ok();
    it->Seek(format::EventKey(stream.stream_id(), std::max(from, first)));
  }
  for (; it->Valid(); backwards ? it->Prev() : it->Next()) {
    std::string_view key = it->key();
    if (key.size() != 17) return Corrupt("event key");
    const uint64_t version = coding::DecodeBigEndian64(key.data() + 9);
    if (page->events.size() == count) {
      page->end_of_stream = false;
      page->next_version = version;
      break;
    }
    EventRecord event;
    if (!event.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()))) {
      return Corrupt("event record");
    }
    if (Expired(stream, event, now_unix_nanos)) continue;
    ToRecorded(name, version, std::move(event), &page->events.emplace_back());
  }
  return it->status();
}

bool IsIndexStream(std::string_view stream, char* tag, std::string_view* name) {
  if (IsParkedStream(stream)) {
    *tag = format::kParkedTag;
    *name = stream.substr(
        format::kParkedStreamPrefix.size(),
        stream.size() - format::kParkedStreamPrefix.size() - format::kParkedStreamSuffix.size());
    return true;
  }
  if (HasPrefix(stream, kCategoryStreamPrefix)) {
    *tag = format::kCategoryTag;
    *name = stream.substr(kCategoryStreamPrefix.size());
    return true;
  }
  if (HasPrefix(stream, kTypeStreamPrefix)) {
    *tag = format::kTypeTag;
    *name = stream.substr(kTypeStreamPrefix.size());
    return true;
  }
  return false;
}

}  // namespace

Status EventState::ReadStream(const v1::ReadStreamRequest& req, int64_t now_unix_nanos,
                              v1::ReadStreamResponse* resp) const {
  resp->Clear();
  CAIRN_RETURN_IF_ERROR(ValidateStreamName(req.stream(), /*allow_system=*/true));
  if (!v1::Direction_IsValid(req.direction())) return Invalid("unknown read direction");
  const bool backwards = req.direction() == v1::BACKWARDS;
  if (req.from_end() && !backwards) return Invalid("from_end reads go backwards");
  const size_t count = PageSize(req.count());
  Reader reader(engine_);
  char tag = 0;
  std::string_view name;
  if (IsIndexStream(req.stream(), &tag, &name)) {
    std::vector<v1::RecordedEvent> events;
    bool end = true;
    uint64_t next = 0;
    uint64_t total = 0;
    CAIRN_RETURN_IF_ERROR(ReadIndexStream(&reader, tag, name, req.stream(), backwards,
                                          req.from_end(), req.from_version(), count, now_unix_nanos,
                                          &events, &end, &next, &total));
    if (total == 0) return ErrStreamNotFound(req.stream());
    for (auto& event : events) *resp->add_events() = std::move(event);
    resp->set_end_of_stream(end);
    if (!end) resp->set_next_version(next);
    resp->set_stream_exists(true);
    resp->set_current_version(total - 1);
    return Status::Ok();
  }
  CAIRN_ASSIGN_OR_RETURN(std::optional<StreamRecord> stream, reader.Stream(req.stream()));
  if (stream.has_value() && stream->hard_deleted()) return ErrStreamDeleted(req.stream());
  if (!StreamExists(stream)) return ErrStreamNotFound(req.stream());
  StreamPage page;
  CAIRN_RETURN_IF_ERROR(ReadPlainStream(&reader, req.stream(), *stream, backwards, req.from_end(),
                                        req.from_version(), count, now_unix_nanos, &page));
  for (auto& event : page.events) *resp->add_events() = std::move(event);
  resp->set_end_of_stream(page.end_of_stream);
  if (!page.end_of_stream) resp->set_next_version(page.next_version);
  resp->set_stream_exists(true);
  resp->set_current_version(stream->last_version());
  return Status::Ok();
}

Status EventState::ReadStreamAfter(const std::string& stream, std::optional<uint64_t> after,
                                   size_t count, int64_t now_unix_nanos,
                                   std::vector<v1::RecordedEvent>* out) const {
  out->clear();
  CAIRN_RETURN_IF_ERROR(ValidateStreamName(stream, /*allow_system=*/true));
  const uint64_t from = after.has_value() ? *after + 1 : 0;
  Reader reader(engine_);
  char tag = 0;
  std::string_view name;
  if (IsIndexStream(stream, &tag, &name)) {
    bool end = true;
    uint64_t next = 0;
    uint64_t total = 0;
    return ReadIndexStream(&reader, tag, name, stream, /*backwards=*/false, /*from_end=*/false,
                           from, count, now_unix_nanos, out, &end, &next, &total);
  }
  CAIRN_ASSIGN_OR_RETURN(std::optional<StreamRecord> record, reader.Stream(stream));
  if (record.has_value() && record->hard_deleted()) return ErrStreamDeleted(stream);
  if (!StreamExists(record)) return Status::Ok();
  StreamPage page;
  CAIRN_RETURN_IF_ERROR(ReadPlainStream(&reader, stream, *record, /*backwards=*/false,
                                        /*from_end=*/false, from, count, now_unix_nanos, &page));
  *out = std::move(page.events);
  return Status::Ok();
}

Status EventState::ReadAll(const v1::ReadAllRequest& req, int64_t now_unix_nanos,
                           v1::ReadAllResponse* resp) const {
  resp->Clear();
  if (!v1::Direction_IsValid(req.direction())) return Invalid("unknown read direction");
  const bool backwards = req.direction() == v1::BACKWARDS;
  if (req.from_end() && !backwards) return Invalid("from_end reads go backwards");
  const size_t count = PageSize(req.count());
  Reader reader(engine_);
  const std::string lower(1, format::kAllTag);
  const std::string upper(1, static_cast<char>(format::kAllTag + 1));
  auto it = reader.NewIterator(lower, upper);
  const std::string from_key = format::AllKey(req.from().revision(), req.from().index());
  if (backwards) {
    if (req.from_end()) {
      it->SeekToLast();
    } else {
      it->SeekForPrev(from_key);
    }
  } else {
    it->Seek(from_key);
  }
  StreamCache streams(&reader);
  size_t scanned = 0;
  resp->set_end(true);
  // Forwards, `next` also says where a reader that reached the end continues from.
  *resp->mutable_next() = req.from();
  for (; it->Valid(); backwards ? it->Prev() : it->Next()) {
    uint64_t revision = 0;
    uint32_t index = 0;
    if (!format::DecodeAllKey(it->key(), &revision, &index)) return Corrupt("$all key");
    if (static_cast<size_t>(resp->events_size()) == count ||
        scanned == EventLimits::kScanPerReadMax) {
      resp->set_end(false);
      resp->mutable_next()->set_revision(revision);
      resp->mutable_next()->set_index(index);
      break;
    }
    ++scanned;
    if (!backwards) {
      resp->mutable_next()->set_revision(revision);
      resp->mutable_next()->set_index(index + 1);
    }
    format::AllValue all;
    if (!format::DecodeAllValue(it->value(), &all)) return Corrupt("$all entry");
    if (all.removed()) continue;
    const format::Pointer& pointer = all.pointer;
    CAIRN_ASSIGN_OR_RETURN(const StreamCache::Entry* entry, streams.Get(pointer.stream_id));
    if (!req.include_system() && HasPrefix(entry->name, "$")) continue;
    if (!MatchesAny(entry->name, req.filter().stream_prefixes())) continue;
    CAIRN_ASSIGN_OR_RETURN(std::optional<EventRecord> event,
                           reader.Event(pointer.stream_id, pointer.version));
    if (!event.has_value()) return Corrupt("$all entry without its event");
    if (!MatchesAny(event->type(), req.filter().type_prefixes())) continue;
    if (!Visible(entry->record, pointer.version, *event, now_unix_nanos)) continue;
    ToRecorded(entry->name, pointer.version, std::move(*event), resp->add_events());
  }
  if (backwards && resp->end()) resp->clear_next();
  return it->status();
}

Status EventState::GetMetadata(const v1::GetStreamMetadataRequest& req,
                               v1::GetStreamMetadataResponse* resp) const {
  resp->Clear();
  CAIRN_RETURN_IF_ERROR(ValidateStreamName(req.stream(), /*allow_system=*/false));
  Reader reader(engine_);
  CAIRN_ASSIGN_OR_RETURN(std::optional<StreamRecord> stream, reader.Stream(req.stream()));
  if (!stream.has_value()) return Status::Ok();
  *resp->mutable_metadata() = stream->metadata();
  resp->set_stream_exists(StreamExists(stream));
  if (stream->has_events()) resp->set_current_version(stream->last_version());
  resp->set_soft_deleted(stream->soft_deleted());
  resp->set_hard_deleted(stream->hard_deleted());
  return Status::Ok();
}

Status EventState::ReadAggregate(const v1::ReadAggregateRequest& req, int64_t now_unix_nanos,
                                 v1::ReadAggregateResponse* resp) const {
  resp->Clear();
  CAIRN_RETURN_IF_ERROR(ValidateStreamName(req.stream(), /*allow_system=*/false));
  Reader reader(engine_);
  CAIRN_ASSIGN_OR_RETURN(std::optional<StreamRecord> stream, reader.Stream(req.stream()));
  if (stream.has_value() && stream->hard_deleted()) return ErrStreamDeleted(req.stream());
  if (!StreamExists(stream)) return ErrStreamNotFound(req.stream());
  uint64_t from = 0;
  std::string value;
  CAIRN_ASSIGN_OR_RETURN(bool found, reader.Get(format::SnapshotKey(stream->stream_id()), &value));
  if (found) {
    records::SnapshotRecord snapshot;
    if (!snapshot.ParseFromString(value)) return Corrupt("snapshot record");
    resp->mutable_snapshot()->set_version(snapshot.version());
    resp->mutable_snapshot()->set_data(std::move(*snapshot.mutable_data()));
    resp->mutable_snapshot()->set_type(std::move(*snapshot.mutable_type()));
    from = snapshot.version() + 1;
  }
  const size_t count = req.count() == 0 ? EventLimits::kReadCountMax : PageSize(req.count());
  StreamPage page;
  CAIRN_RETURN_IF_ERROR(ReadPlainStream(&reader, req.stream(), *stream, /*backwards=*/false,
                                        /*from_end=*/false, from, count, now_unix_nanos, &page));
  for (auto& event : page.events) *resp->add_events() = std::move(event);
  resp->set_end_of_stream(page.end_of_stream);
  resp->set_current_version(stream->last_version());
  return Status::Ok();
}

Status EventState::VerifyChain(v1::VerifyChainResponse* resp) const {
  resp->Clear();
  Reader reader(engine_);
  std::string value;
  records::ChainHead head;
  CAIRN_ASSIGN_OR_RETURN(bool head_found, reader.GetMeta(format::kChainHeadKey, &value));
  if (head_found && !head.ParseFromString(value)) return Corrupt("chain head");
  const std::string lower(1, format::kAllTag);
  const std::string upper(1, static_cast<char>(format::kAllTag + 1));
  auto it = reader.NewIterator(lower, upper);
  StreamCache streams(&reader);
  std::string previous;
  uint64_t checked = 0;
  auto broken = [&](uint64_t revision, uint32_t index, std::string_view stream, uint64_t version,
                    std::string reason) {
    resp->set_ok(false);
    resp->mutable_broken_at()->set_revision(revision);
    resp->mutable_broken_at()->set_index(index);
    resp->set_broken_stream(std::string(stream));
    resp->set_broken_version(version);
    resp->set_reason(std::move(reason));
    resp->set_events_checked(checked);
  };
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    uint64_t revision = 0;
    uint32_t index = 0;
    if (!format::DecodeAllKey(it->key(), &revision, &index)) {
      broken(0, 0, "", 0, "undecodable $all key");
      return Status::Ok();
    }
    format::AllValue all;
    if (!format::DecodeAllValue(it->value(), &all)) {
      broken(revision, index, "", 0, "undecodable $all entry");
      return Status::Ok();
    }
    const format::Pointer& pointer = all.pointer;
    if (all.removed()) {
      // Scavenged: the anchor's hash stands for the event; the next stored event's hash
      // checks it. Only a scavenge makes anchors, and only below the stream's
      // scavenged_before.
      Result<const StreamCache::Entry*> entry = streams.Get(pointer.stream_id);
      if (!entry.ok() || pointer.version >= (*entry)->record.scavenged_before()) {
        broken(revision, index, entry.ok() ? (*entry)->name : "", pointer.version,
               "the event was removed, but not by a scavenge");
        return Status::Ok();
      }
      previous = std::string(all.anchor_hash);
      ++checked;
      resp->set_events_scavenged(resp->events_scavenged() + 1);
      continue;
    }
    Result<const StreamCache::Entry*> entry = streams.Get(pointer.stream_id);
    if (!entry.ok()) {
      broken(revision, index, "", pointer.version, "the event's stream is missing");
      return Status::Ok();
    }
    const std::string& name = (*entry)->name;
    std::string stored;
    CAIRN_ASSIGN_OR_RETURN(
        bool found, reader.Get(format::EventKey(pointer.stream_id, pointer.version), &stored));
    EventRecord event;
    if (!found) {
      broken(revision, index, name, pointer.version, "the event is missing");
      return Status::Ok();
    }
    if (!event.ParseFromString(stored)) {
      broken(revision, index, name, pointer.version, "the event record does not decode");
      return Status::Ok();
    }
    if (event.revision() != revision || event.index() != index) {
      broken(revision, index, name, pointer.version,
             "the event records another position than its $all entry");
      return Status::Ok();
    }
    if (format::ChainHash(previous, name, pointer.version, event) != event.hash()) {
      broken(revision, index, name, pointer.version,
             "hash mismatch: the event's content or its hash was changed, or an event before "
             "it was removed or changed");
      return Status::Ok();
    }
    previous = event.hash();
    ++checked;
  }
  CAIRN_RETURN_IF_ERROR(it->status());
  resp->set_events_checked(checked);
  if (head_found && (head.events() != checked || head.hash() != previous)) {
    broken(0, 0, "", 0,
           "the chain head (" + std::to_string(head.events()) +
               " events) does not match the events found (" + std::to_string(checked) +
               "): events at the end were removed or changed");
    return Status::Ok();
  }
  resp->set_ok(true);
  return Status::Ok();
}

}  // namespace cairn::events
