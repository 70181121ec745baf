#include "src/events/projection/projection_definitions.h"

#include "src/events/event_format.h"
#include "src/events/event_state.h"
#include "src/events/projection/projection_engine.h"
#include "src/events/projection/projection_format.h"
#include "src/events/projection/projection_limits.h"

namespace cairn::events::projection {
namespace {

Status Invalid(const std::string& message) {
  return Status::InvalidArgument("projections: " + message);
}

Status NotFound(std::string_view name) {
  return Status::NotFound("projections: projection '" + std::string(name) + "' not found");
}

Status ValidateSource(std::string_view source) {
  if (source.empty()) return Invalid("source is empty");
  if (source.size() > ProjectionLimits::kSourceBytesMax) {
    return Invalid("source is " + std::to_string(source.size()) + " bytes, more than " +
                   std::to_string(ProjectionLimits::kSourceBytesMax));
  }
  return Status::Ok();
}

Status ValidateUpcasterTarget(std::string_view event_type, uint32_t from_schema_version) {
  if (event_type.empty()) return Invalid("an event type is required");
  if (event_type.size() > EventLimits::kEventTypeBytesMax) {
    return Invalid("event type is " + std::to_string(event_type.size()) + " bytes, more than " +
                   std::to_string(EventLimits::kEventTypeBytesMax));
  }
  if (event_type.find('\0') != std::string_view::npos) return Invalid("event type contains NUL");
  if (from_schema_version < 1 || from_schema_version > ProjectionLimits::kSchemaVersionMax) {
    return Invalid("from_schema_version must be between 1 and " +
                   std::to_string(ProjectionLimits::kSchemaVersionMax));
  }
  return Status::Ok();
}

template <typename Message>
Result<std::optional<Message>> ReadRecord(storage::WriteBatch* batch, const std::string& key) {
  std::string value;
  CAIRN_ASSIGN_OR_RETURN(bool found, batch->Get(storage::Family::kEvents, key, &value));
  if (!found) return std::optional<Message>();
  Message message;
  if (!message.ParseFromString(value)) {
    return Status::Corruption("projections: unreadable record under " + key.substr(0, 2));
  }
  return std::optional<Message>(std::move(message));
}

Result<size_t> CountKeys(storage::WriteBatch* batch, const std::string& prefix) {
  std::string upper = prefix;
  upper.back() = static_cast<char>(upper.back() + 1);
  storage::ReadOptions options;
  options.lower_bound = prefix;
  options.upper_bound = upper;
  auto it = batch->NewIterator(storage::Family::kEvents, options);
  size_t count = 0;
  for (it->Seek(prefix); it->Valid(); it->Next()) ++count;
  CAIRN_RETURN_IF_ERROR(it->status());
  return count;
}

// Takes the next generation number; the caller writes the definition with it.
Result<uint64_t> TakeGeneration(storage::WriteBatch* batch) {
  std::string value;
  CAIRN_ASSIGN_OR_RETURN(bool found,
                         batch->Get(storage::Family::kEvents, format::GenerationKey(), &value));
  uint64_t next = 1;
  if (found && !events::format::DecodeU64(value, &next)) {
    return Status::Corruption("projections: unreadable generation counter");
  }
  batch->Put(storage::Family::kEvents, format::GenerationKey(),
             events::format::EncodeU64(next + 1));
  return next;
}

}  // namespace

Status ValidateProjectionsCommand(const v1::ProjectionsCommand& command) {
  switch (command.change_case()) {
    case v1::ProjectionsCommand::kCreate:
      CAIRN_RETURN_IF_ERROR(ValidateProjectionName(command.create().name()));
      return ValidateSource(command.create().source());
    case v1::ProjectionsCommand::kUpdate:
      CAIRN_RETURN_IF_ERROR(ValidateProjectionName(command.update().name()));
      return ValidateSource(command.update().source());
    case v1::ProjectionsCommand::kDelete:
      return ValidateProjectionName(command.delete_().name());
    case v1::ProjectionsCommand::kStop:
      return ValidateProjectionName(command.stop().name());
    case v1::ProjectionsCommand::kStart:
      return ValidateProjectionName(command.start().name());
    case v1::ProjectionsCommand::kReset:
      return ValidateProjectionName(command.reset().name());
    case v1::ProjectionsCommand::kSetUpcaster:
      CAIRN_RETURN_IF_ERROR(ValidateUpcasterTarget(command.set_upcaster().event_type(),
                                                   command.set_upcaster().from_schema_version()));
      return ValidateSource(command.set_upcaster().source());
    case v1::ProjectionsCommand::kDeleteUpcaster:
      return ValidateUpcasterTarget(command.delete_upcaster().event_type(),
                                    command.delete_upcaster().from_schema_version());
    case v1::ProjectionsCommand::CHANGE_NOT_SET:
      break;
  }
  return Invalid("the command names no change");
}

namespace {

// The projection a projection change names.
const std::string& ProjectionName(const v1::ProjectionsCommand& command) {
  switch (command.change_case()) {
    case v1::ProjectionsCommand::kCreate:
      return command.create().name();
    case v1::ProjectionsCommand::kUpdate:
      return command.update().name();
    case v1::ProjectionsCommand::kDelete:
      return command.delete_().name();
    case v1::ProjectionsCommand::kStop:
      return command.stop().name();
    case v1::ProjectionsCommand::kStart:
      return command.start().name();
    default:
      return command.reset().name();
  }
}

Status ApplyUpcaster(storage::WriteBatch* batch, const v1::ProjectionsCommand& command) {
  const bool set = command.has_set_upcaster();
  const std::string& type =
      set ? command.set_upcaster().event_type() : command.delete_upcaster().event_type();
  const uint32_t from = set ? command.set_upcaster().from_schema_version()
                            : command.delete_upcaster().from_schema_version();
  const std::string key = format::UpcasterKey(type, from);
  CAIRN_ASSIGN_OR_RETURN(std::optional<v1::Upcaster> existing,
                         ReadRecord<v1::Upcaster>(batch, key));
  if (!set) {
    if (!existing.has_value()) {
      return Status::NotFound("projections: no upcaster for event type '" + type +
                              "' from schema version " + std::to_string(from));
    }
    batch->Delete(storage::Family::kEvents, key);
    return Status::Ok();
  }
  if (!existing.has_value()) {
    CAIRN_ASSIGN_OR_RETURN(size_t count, CountKeys(batch, format::UpcasterPrefix()));
    if (count >= ProjectionLimits::kUpcastersMax) {
      return Status::ResourceExhausted("projections: at most " +
                                       std::to_string(ProjectionLimits::kUpcastersMax) +
                                       " upcasters can be defined");
    }
  }
  v1::Upcaster upcaster;
  upcaster.set_event_type(type);
  upcaster.set_from_schema_version(from);
  upcaster.set_source(command.set_upcaster().source());
  batch->Put(storage::Family::kEvents, key, upcaster.SerializeAsString());
  return Status::Ok();
}

Status ApplyCreate(storage::WriteBatch* batch, const v1::CreateProjectionRequest& request,
                   bool exists) {
  if (exists) {
    return Status::AlreadyExists("projections: projection '" + request.name() + "' already exists");
  }
  CAIRN_ASSIGN_OR_RETURN(size_t count, CountKeys(batch, format::DefinitionPrefix()));
  if (count >= ProjectionLimits::kProjectionsMax) {
    return Status::ResourceExhausted("projections: at most " +
                                     std::to_string(ProjectionLimits::kProjectionsMax) +
                                     " projections can be defined");
  }
  v1::ProjectionDefinition definition;
  definition.set_name(request.name());
  definition.set_source(request.source());
  definition.set_enabled(!request.stopped());
  CAIRN_ASSIGN_OR_RETURN(uint64_t generation, TakeGeneration(batch));
  definition.set_generation(generation);
  batch->Put(storage::Family::kEvents, format::DefinitionKey(request.name()),
             definition.SerializeAsString());
  return Status::Ok();
}

}  // namespace

Status ProjectionDefinitions::Apply(storage::WriteBatch* batch,
                                    const v1::ProjectionsCommand& command,
                                    v1::ProjectionsChangeResponse* response) {
  CAIRN_RETURN_IF_ERROR(ValidateProjectionsCommand(command));
  if (command.has_set_upcaster() || command.has_delete_upcaster()) {
    return ApplyUpcaster(batch, command);
  }
  const std::string& name = ProjectionName(command);
  const std::string key = format::DefinitionKey(name);
  CAIRN_ASSIGN_OR_RETURN(std::optional<v1::ProjectionDefinition> existing,
                         ReadRecord<v1::ProjectionDefinition>(batch, key));
  if (command.has_create()) return ApplyCreate(batch, command.create(), existing.has_value());
  if (!existing.has_value()) return NotFound(name);
  v1::ProjectionDefinition definition = std::move(*existing);
  switch (command.change_case()) {
    case v1::ProjectionsCommand::kDelete:
      batch->Delete(storage::Family::kEvents, key);
      return Status::Ok();
    case v1::ProjectionsCommand::kStop:
    case v1::ProjectionsCommand::kStart:
      definition.set_enabled(command.has_start());
      break;
    default: {  // update or reset: a new generation folds again from the first event
      if (command.has_update()) definition.set_source(command.update().source());
      CAIRN_ASSIGN_OR_RETURN(uint64_t generation, TakeGeneration(batch));
      definition.set_generation(generation);
      break;
    }
  }
  batch->Put(storage::Family::kEvents, key, definition.SerializeAsString());
  (void)response;  // nothing to answer beyond the header the service fills
  return Status::Ok();
}

namespace {

template <typename Message>
Result<std::vector<Message>> ListPrefix(storage::Engine* engine, const std::string& prefix) {
  std::string upper = prefix;
  upper.back() = static_cast<char>(upper.back() + 1);
  storage::ReadOptions options;
  options.lower_bound = prefix;
  options.upper_bound = upper;
  auto it = engine->NewIterator(options, storage::Family::kEvents);
  std::vector<Message> out;
  for (it->Seek(prefix); it->Valid(); it->Next()) {
    Message message;
    if (!message.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()))) {
      return Status::Corruption("projections: unreadable record under " + prefix);
    }
    out.push_back(std::move(message));
  }
  CAIRN_RETURN_IF_ERROR(it->status());
  return out;
}

}  // namespace

Result<std::vector<v1::ProjectionDefinition>> ProjectionDefinitions::ListProjections() const {
  return ListPrefix<v1::ProjectionDefinition>(engine_, format::DefinitionPrefix());
}

Result<std::vector<v1::Upcaster>> ProjectionDefinitions::ListUpcasters() const {
  return ListPrefix<v1::Upcaster>(engine_, format::UpcasterPrefix());
}

Result<std::optional<v1::ProjectionDefinition>> ProjectionDefinitions::GetProjection(
    std::string_view name) const {
  std::string value;
  CAIRN_ASSIGN_OR_RETURN(bool found, engine_->Get(storage::ReadOptions{}, storage::Family::kEvents,
                                                  format::DefinitionKey(name), &value));
  if (!found) return std::optional<v1::ProjectionDefinition>();
  v1::ProjectionDefinition definition;
  if (!definition.ParseFromString(value)) {
    return Status::Corruption("projections: unreadable definition of '" + std::string(name) + "'");
  }
  return std::optional<v1::ProjectionDefinition>(std::move(definition));
}

}  // namespace cairn::events::projection
