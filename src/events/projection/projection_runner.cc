#include "src/events/projection/projection_runner.h"

#include <chrono>
#include <unordered_map>

#include "src/base/logging.h"
#include "src/events/event_format.h"
#include "src/events/projection/projection_format.h"
#include "src/events/projection/projection_limits.h"

namespace cairn::events::projection {
namespace {

// How long an idle runner waits for new events before it looks at the definitions again
// (so a create, stop or reset made on another member takes effect within this).
constexpr std::chrono::milliseconds kIdleWait{50};
// After a storage error, the runner waits this long before the next pass.
constexpr std::chrono::milliseconds kErrorWait{1000};

Result<std::optional<v1::ProjectionProgress>> ReadProgress(storage::Engine* engine,
                                                           const storage::ReadOptions& options,
                                                           std::string_view name) {
  std::string value;
  CAIRN_ASSIGN_OR_RETURN(bool found, engine->Get(options, storage::Family::kEvents,
                                                 format::ProgressKey(name), &value));
  if (!found) return std::optional<v1::ProjectionProgress>();
  v1::ProjectionProgress progress;
  if (!progress.ParseFromString(value)) {
    return Status::Corruption("projections: unreadable progress of '" + std::string(name) + "'");
  }
  return std::optional<v1::ProjectionProgress>(std::move(progress));
}

// Adds deletes of every runner record of `name` to `batch`.
Status DeleteRunnerRecords(storage::Engine* engine, std::string_view name,
                           storage::WriteBatch* batch) {
  const std::string lower = format::RunnerPrefix(name);
  const std::string upper = format::RunnerPrefixEnd(name);
  storage::ReadOptions options;
  options.lower_bound = lower;
  options.upper_bound = upper;
  auto it = engine->NewIterator(options, storage::Family::kEvents);
  for (it->Seek(lower); it->Valid(); it->Next()) batch->Delete(storage::Family::kEvents, it->key());
  return it->status();
}

bool IsFault(const Status& status) {
  return status.code() == StatusCode::kAborted || status.code() == StatusCode::kResourceExhausted ||
         status.code() == StatusCode::kInvalidArgument;
}

}  // namespace

Status ReadAppended(storage::Engine* engine, const v1::Position* after, size_t count,
                    std::vector<v1::RecordedEvent>* out) {
  auto snapshot = engine->GetSnapshot();
  storage::ReadOptions read;
  read.snapshot = snapshot.get();
  const std::string lower(1, events::format::kAllTag);
  const std::string upper(1, static_cast<char>(events::format::kAllTag + 1));
  storage::ReadOptions scan = read;
  scan.lower_bound = lower;
  scan.upper_bound = upper;
  scan.fill_cache = false;
  auto it = engine->NewIterator(scan, storage::Family::kEvents);
  it->Seek(after == nullptr ? lower
                            : events::format::AllKey(after->revision(), after->index() + 1));
  std::unordered_map<uint64_t, std::string> names;
  for (; it->Valid() && out->size() < count; it->Next()) {
    uint64_t revision = 0;
    uint32_t index = 0;
    events::format::AllValue all;
    if (!events::format::DecodeAllKey(it->key(), &revision, &index) ||
        !events::format::DecodeAllValue(it->value(), &all)) {
      return Status::Corruption("projections: unreadable $all entry");
    }
    // Scavenged: every projection defined before the scavenge folded it first
    // (ProjectionRunner::CatchUp); one defined after it never sees it, on every member.
    if (all.removed()) continue;
    const events::format::Pointer& pointer = all.pointer;
    auto name = names.find(pointer.stream_id);
    if (name == names.end()) {
      std::string stream;
      CAIRN_ASSIGN_OR_RETURN(
          bool found, engine->Get(read, storage::Family::kEvents,
                                  events::format::StreamNameKey(pointer.stream_id), &stream));
      if (!found) return Status::Corruption("projections: $all entry of an unknown stream");
      name = names.emplace(pointer.stream_id, std::move(stream)).first;
    }
    std::string value;
    CAIRN_ASSIGN_OR_RETURN(
        bool found,
        engine->Get(read, storage::Family::kEvents,
                    events::format::EventKey(pointer.stream_id, pointer.version), &value));
    records::EventRecord record;
    if (!found || !record.ParseFromString(value)) {
      return Status::Corruption("projections: $all entry without a readable event");
    }
    v1::RecordedEvent& event = out->emplace_back();
    event.set_stream(name->second);
    event.set_version(pointer.version);
    event.set_id(events::format::FormatUuid(record.id()));
    event.set_type(std::move(*record.mutable_type()));
    event.set_data(std::move(*record.mutable_data()));
    event.set_metadata(std::move(*record.mutable_metadata()));
    event.set_content_type(std::move(*record.mutable_content_type()));
    event.mutable_position()->set_revision(revision);
    event.mutable_position()->set_index(index);
    event.set_created_unix_nanos(record.created_unix_nanos());
    event.set_hash(std::move(*record.mutable_hash()));
  }
  return it->status();
}

Result<std::optional<v1::Position>> LastPosition(storage::Engine* engine) {
  const std::string lower(1, events::format::kAllTag);
  const std::string upper(1, static_cast<char>(events::format::kAllTag + 1));
  storage::ReadOptions options;
  options.lower_bound = lower;
  options.upper_bound = upper;
  auto it = engine->NewIterator(options, storage::Family::kEvents);
  it->SeekToLast();
  if (!it->Valid()) {
    CAIRN_RETURN_IF_ERROR(it->status());
    return std::optional<v1::Position>();
  }
  uint64_t revision = 0;
  uint32_t index = 0;
  if (!events::format::DecodeAllKey(it->key(), &revision, &index)) {
    return Status::Corruption("projections: unreadable $all key");
  }
  v1::Position position;
  position.set_revision(revision);
  position.set_index(index);
  return std::optional<v1::Position>(position);
}

Result<v1::ProjectionInfo> DescribeProjection(storage::Engine* engine,
                                              const v1::ProjectionDefinition& definition) {
  v1::ProjectionInfo info;
  info.set_name(definition.name());
  info.set_source(definition.source());
  info.set_enabled(definition.enabled());
  info.set_generation(definition.generation());
  CAIRN_ASSIGN_OR_RETURN(std::optional<v1::ProjectionProgress> progress,
                         ReadProgress(engine, storage::ReadOptions{}, definition.name()));
  const bool current = progress.has_value() && progress->generation() == definition.generation();
  if (current) {
    if (progress->has_checkpoint()) *info.mutable_checkpoint() = progress->checkpoint();
    info.set_events_seen(progress->events_seen());
    info.set_events_folded(progress->events_folded());
    info.set_partitions(progress->partitions());
  }
  if (current && progress->faulted()) {
    info.set_status(v1::FAULTED);
    *info.mutable_fault() = progress->fault();
  } else {
    info.set_status(definition.enabled() ? v1::RUNNING : v1::STOPPED);
  }
  CAIRN_ASSIGN_OR_RETURN(std::optional<v1::Position> head, LastPosition(engine));
  if (head.has_value()) *info.mutable_head() = *head;
  return info;
}

Result<std::optional<std::string>> ReadProjectionState(storage::Engine* engine,
                                                       const v1::ProjectionDefinition& definition,
                                                       std::string_view partition,
                                                       v1::GetProjectionStateResponse* out) {
  auto snapshot = engine->GetSnapshot();
  storage::ReadOptions read;
  read.snapshot = snapshot.get();
  CAIRN_ASSIGN_OR_RETURN(std::optional<v1::ProjectionProgress> progress,
                         ReadProgress(engine, read, definition.name()));
  if (!progress.has_value() || progress->generation() != definition.generation()) {
    return std::optional<std::string>();
  }
  if (progress->has_checkpoint()) *out->mutable_checkpoint() = progress->checkpoint();
  std::string state;
  CAIRN_ASSIGN_OR_RETURN(bool found,
                         engine->Get(read, storage::Family::kEvents,
                                     format::StateKey(definition.name(), partition), &state));
  if (!found) return std::optional<std::string>();
  return std::optional<std::string>(std::move(state));
}

ProjectionRunner::ProjectionRunner(storage::Engine* engine, const EventState* events,
                                   const ProjectionDefinitions* definitions,
                                   const SandboxOptions& sandbox)
    : engine_(engine), events_(events), definitions_(definitions), sandbox_(sandbox) {}

ProjectionRunner::~ProjectionRunner() { Stop(); }

void ProjectionRunner::Start() {
  if (thread_.joinable()) return;
  stopping_ = false;
  thread_ = std::thread([this] { Loop(); });
}

void ProjectionRunner::Stop() {
  stopping_ = true;
  if (thread_.joinable()) thread_.join();
}

void ProjectionRunner::Loop() {
  while (!stopping_) {
    const uint64_t seen = events_->EventCount();
    Result<bool> worked = RunOnce();
    if (!worked.ok()) {
      log::Get("projections")->warn("projection runner: {}", worked.status().ToString());
      for (auto waited = std::chrono::milliseconds(0); waited < kErrorWait && !stopping_;
           waited += kIdleWait) {
        std::this_thread::sleep_for(kIdleWait);
      }
      continue;
    }
    if (!*worked && !stopping_) events_->WaitForEvents(seen, kIdleWait);
  }
}

Result<bool> ProjectionRunner::RunOnce() {
  std::lock_guard<std::mutex> lock(run_mu_);
  return RunPass(/*catch_up=*/false);
}

Status ProjectionRunner::CatchUp() {
  std::lock_guard<std::mutex> lock(run_mu_);
  for (;;) {
    CAIRN_ASSIGN_OR_RETURN(bool worked, RunPass(/*catch_up=*/true));
    if (!worked) return Status::Ok();
  }
}

Result<bool> ProjectionRunner::RunPass(bool catch_up) {
  // A snapshot install must not land between a page's reads and its write.
  std::shared_lock local_writes(events_->local_writes_mutex());
  CAIRN_ASSIGN_OR_RETURN(std::vector<v1::ProjectionDefinition> definitions,
                         definitions_->ListProjections());
  CAIRN_ASSIGN_OR_RETURN(bool worked, RemoveUndefined(definitions));
  for (const v1::ProjectionDefinition& definition : definitions) {
    if (stopping_ && !catch_up) break;
    CAIRN_ASSIGN_OR_RETURN(bool ran, RunProjection(definition, catch_up));
    worked = worked || ran;
  }
  return worked;
}

Result<bool> ProjectionRunner::RemoveUndefined(
    const std::vector<v1::ProjectionDefinition>& definitions) {
  std::map<std::string, bool> defined;
  for (const auto& definition : definitions) defined[definition.name()] = true;
  for (auto it = compiled_.begin(); it != compiled_.end();) {
    it = defined.contains(it->first) ? std::next(it) : compiled_.erase(it);
  }
  const std::string lower(1, format::kRunnerTag);
  const std::string upper(1, static_cast<char>(format::kRunnerTag + 1));
  storage::ReadOptions options;
  options.lower_bound = lower;
  options.upper_bound = upper;
  auto it = engine_->NewIterator(options, storage::Family::kEvents);
  auto batch = engine_->NewWriteBatch();
  // One seek per projection name: the records of a defined projection are skipped whole.
  for (it->Seek(lower); it->Valid();) {
    std::string name;
    if (!format::DecodeRunnerName(it->key(), &name)) {
      return Status::Corruption("projections: unreadable runner key");
    }
    if (!defined.contains(name))
      CAIRN_RETURN_IF_ERROR(DeleteRunnerRecords(engine_, name, batch.get()));
    it->Seek(format::RunnerPrefixEnd(name));
  }
  CAIRN_RETURN_IF_ERROR(it->status());
  if (batch->Count() == 0) return false;
  CAIRN_RETURN_IF_ERROR(engine_->Write(batch.get()));
  return true;
}

Status ProjectionRunner::Restart(const v1::ProjectionDefinition& definition) {
  compiled_.erase(definition.name());
  auto batch = engine_->NewWriteBatch();
  CAIRN_RETURN_IF_ERROR(DeleteRunnerRecords(engine_, definition.name(), batch.get()));
  v1::ProjectionProgress progress;
  progress.set_generation(definition.generation());
  batch->Put(storage::Family::kEvents, format::ProgressKey(definition.name()),
             progress.SerializeAsString());
  return engine_->Write(batch.get());
}

Result<bool> ProjectionRunner::RunProjection(const v1::ProjectionDefinition& definition,
                                             bool catch_up) {
  const std::string& name = definition.name();
  CAIRN_ASSIGN_OR_RETURN(std::optional<v1::ProjectionProgress> stored,
                         ReadProgress(engine_, storage::ReadOptions{}, name));
  if (!stored.has_value() || stored->generation() != definition.generation()) {
    CAIRN_RETURN_IF_ERROR(Restart(definition));
    return true;
  }
  v1::ProjectionProgress progress = std::move(*stored);
  if ((!definition.enabled() && !catch_up) || progress.faulted()) {
    compiled_.erase(name);  // frees the Lua state while paused
    return false;
  }
  Compiled& compiled = compiled_[name];
  if (compiled.engine == nullptr || compiled.generation != definition.generation()) {
    compiled.engine.reset();
    auto engine = ProjectionEngine::Compile(name, definition.source(), sandbox_);
    if (!engine.ok()) {
      compiled_.erase(name);
      progress.set_faulted(true);
      progress.mutable_fault()->set_error(std::string(engine.status().message()));
      auto batch = engine_->NewWriteBatch();
      batch->Put(storage::Family::kEvents, format::ProgressKey(name), progress.SerializeAsString());
      CAIRN_RETURN_IF_ERROR(engine_->Write(batch.get()));
      return true;
    }
    compiled.engine = std::move(*engine);
    compiled.generation = definition.generation();
  }
  std::vector<v1::RecordedEvent> page;
  CAIRN_RETURN_IF_ERROR(ReadAppended(engine_,
                                     progress.has_checkpoint() ? &progress.checkpoint() : nullptr,
                                     ProjectionLimits::kRunnerPageEvents, &page));
  if (page.empty()) return false;
  auto read = [this, &name](const std::string& partition) -> Result<std::optional<std::string>> {
    std::string state;
    CAIRN_ASSIGN_OR_RETURN(bool found,
                           engine_->Get(storage::ReadOptions{}, storage::Family::kEvents,
                                        format::StateKey(name, partition), &state));
    if (!found) return std::optional<std::string>();
    return std::optional<std::string>(std::move(state));
  };
  for (const v1::RecordedEvent& event : page) {
    if (stopping_ && !catch_up) break;  // what was folded is written below, with its checkpoint
    if (!event.stream().empty() && event.stream()[0] == '$') {
      *progress.mutable_checkpoint() = event.position();
      continue;
    }
    auto outcome = compiled.engine->Fold(event, read);
    if (!outcome.ok() && !IsFault(outcome.status())) {
      compiled_.erase(name);  // drops the page's unwritten changes
      return outcome.status();
    }
    if (!outcome.ok()) {
      progress.set_faulted(true);
      v1::ProjectionFault* fault = progress.mutable_fault();
      fault->set_error(std::string(outcome.status().message()));
      fault->set_stream(event.stream());
      fault->set_version(event.version());
      *fault->mutable_position() = event.position();
      fault->set_event_type(event.type());
      break;
    }
    progress.set_events_seen(progress.events_seen() + 1);
    if (outcome->folded) progress.set_events_folded(progress.events_folded() + 1);
    if (outcome->new_partition) progress.set_partitions(progress.partitions() + 1);
    *progress.mutable_checkpoint() = event.position();
  }
  auto batch = engine_->NewWriteBatch();
  for (const auto& [partition, state] : compiled.engine->TakeChanges()) {
    batch->Put(storage::Family::kEvents, format::StateKey(name, partition), state);
  }
  batch->Put(storage::Family::kEvents, format::ProgressKey(name), progress.SerializeAsString());
  CAIRN_RETURN_IF_ERROR(engine_->Write(batch.get()));
  if (progress.faulted()) {
    log::Get("projections")
        ->warn("projection '{}' faulted at {}@{}: {}", name, progress.fault().stream(),
               progress.fault().version(), progress.fault().error());
    compiled_.erase(name);
  }
  return true;
}

}  // namespace cairn::events::projection
