#include "src/events/projection/projection_engine.h"

#include "src/events/projection/projection_limits.h"

namespace cairn::events::projection {
namespace {

using Json = nlohmann::json;

constexpr std::string_view kAnyHandler = "$any";

Status Invalid(const std::string& message) {
  return Status::InvalidArgument("projections: " + message);
}

bool IsJsonContent(std::string_view content_type) {
  return content_type.empty() || content_type.substr(0, 16) == "application/json";
}

const char* TypeName(LuaSandbox::Type type) {
  switch (type) {
    case LuaSandbox::Type::kNil:
      return "nil";
    case LuaSandbox::Type::kBoolean:
      return "boolean";
    case LuaSandbox::Type::kNumber:
      return "number";
    case LuaSandbox::Type::kString:
      return "string";
    case LuaSandbox::Type::kTable:
      return "table";
    case LuaSandbox::Type::kFunction:
      return "function";
    case LuaSandbox::Type::kOther:
      break;
  }
  return "userdata";
}

}  // namespace

Status ValidateProjectionName(std::string_view name) {
  if (name.empty()) return Invalid("a name is required");
  if (name.size() > ProjectionLimits::kNameBytesMax) {
    return Invalid("name is " + std::to_string(name.size()) + " bytes, more than " +
                   std::to_string(ProjectionLimits::kNameBytesMax));
  }
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '.' || c == '-';
    if (!ok) {
      return Invalid("name '" + std::string(name) +
                     "' may hold only letters, digits, '_', '.' and '-'");
    }
  }
  return Status::Ok();
}

Json EventToJson(const v1::RecordedEvent& event) {
  Json out = Json::object();
  out["stream"] = event.stream();
  out["version"] = event.version();
  out["type"] = event.type();
  out["id"] = event.id();
  out["content_type"] = event.content_type();
  out["position"] = {{"revision", event.position().revision()},
                     {"index", event.position().index()}};
  out["created_unix_nanos"] = event.created_unix_nanos();
  Json data = IsJsonContent(event.content_type()) ? Json::parse(event.data(), nullptr, false)
                                                  : Json(Json::value_t::discarded);
  if (data.is_discarded()) {
    out["data"] = event.data();
  } else {
    out["data"] = std::move(data);
  }
  if (!event.metadata().empty()) {
    Json metadata = Json::parse(event.metadata(), nullptr, false);
    if (metadata.is_discarded()) {
      out["metadata"] = event.metadata();
    } else {
      out["metadata"] = std::move(metadata);
    }
  }
  return out;
}

Result<std::unique_ptr<ProjectionEngine>> ProjectionEngine::Compile(const std::string& name,
                                                                    const std::string& source,
                                                                    const SandboxOptions& options) {
  CAIRN_RETURN_IF_ERROR(ValidateProjectionName(name));
  if (source.size() > ProjectionLimits::kSourceBytesMax) {
    return Invalid("source is " + std::to_string(source.size()) + " bytes, more than " +
                   std::to_string(ProjectionLimits::kSourceBytesMax));
  }
  CAIRN_ASSIGN_OR_RETURN(std::unique_ptr<LuaSandbox> sandbox, LuaSandbox::Create(options));
  Status loaded = sandbox->Load(name, source);
  if (!loaded.ok()) return Status(loaded.code(), "projections: " + std::string(loaded.message()));
  const LuaSandbox::Type handlers = sandbox->TypeOf("handlers");
  if (handlers != LuaSandbox::Type::kTable) {
    return Invalid(
        "the source must define a global table 'handlers' (event type -> function(state, "
        "event)); it is " +
        std::string(TypeName(handlers)));
  }
  const LuaSandbox::Type init = sandbox->TypeOf("init");
  if (init != LuaSandbox::Type::kNil && init != LuaSandbox::Type::kFunction) {
    return Invalid("'init' must be a function returning the initial state; it is a " +
                   std::string(TypeName(init)));
  }
  Partitioning partitioning = Partitioning::kNone;
  const LuaSandbox::Type partition_by = sandbox->TypeOf("partition_by");
  if (partition_by == LuaSandbox::Type::kFunction) {
    partitioning = Partitioning::kFunction;
  } else if (partition_by == LuaSandbox::Type::kString) {
    CAIRN_ASSIGN_OR_RETURN(Json value, sandbox->Global("partition_by"));
    if (value != "stream") {
      return Invalid("'partition_by' must be \"stream\" or a function(event) returning a key");
    }
    partitioning = Partitioning::kStream;
  } else if (partition_by != LuaSandbox::Type::kNil) {
    return Invalid("'partition_by' must be \"stream\" or a function(event); it is a " +
                   std::string(TypeName(partition_by)));
  }
  return std::unique_ptr<ProjectionEngine>(new ProjectionEngine(std::move(sandbox), partitioning));
}

Result<std::optional<std::string>> ProjectionEngine::PartitionOf(const v1::RecordedEvent& event,
                                                                 const Json& event_value) {
  std::string key;
  switch (partitioning_) {
    case Partitioning::kNone:
      return std::optional<std::string>(std::string());
    case Partitioning::kStream:
      key = event.stream();
      break;
    case Partitioning::kFunction: {
      CAIRN_ASSIGN_OR_RETURN(Json value,
                             sandbox_->Call("partition_by", "partition_by", "", {&event_value}));
      if (value.is_null()) return std::optional<std::string>();
      if (value.is_string()) {
        key = value.get<std::string>();
      } else if (value.is_number_integer()) {
        key = value.dump();
      } else {
        return Status::InvalidArgument(
            "partition_by: must return a string, an integer or nil; it returned " +
            JsonText(value));
      }
      break;
    }
  }
  if (key.size() > ProjectionLimits::kPartitionKeyBytesMax) {
    return Status::InvalidArgument("partition_by: key is " + std::to_string(key.size()) +
                                   " bytes, more than " +
                                   std::to_string(ProjectionLimits::kPartitionKeyBytesMax));
  }
  return std::optional<std::string>(std::move(key));
}

Result<ProjectionEngine::Outcome> ProjectionEngine::Fold(const v1::RecordedEvent& event,
                                                         const StateReader& read) {
  Outcome outcome;
  std::string handler = event.type();
  LuaSandbox::Type type =
      handler.empty() ? LuaSandbox::Type::kNil : sandbox_->TypeOf("handlers", handler);
  if (type == LuaSandbox::Type::kNil) {
    handler = kAnyHandler;
    type = sandbox_->TypeOf("handlers", handler);
  }
  if (type == LuaSandbox::Type::kNil) return outcome;
  if (type != LuaSandbox::Type::kFunction) {
    return Status::InvalidArgument("handlers['" + handler + "'] is a " + TypeName(type) +
                                   ", not a function");
  }
  const Json event_value = EventToJson(event);
  CAIRN_ASSIGN_OR_RETURN(std::optional<std::string> partition, PartitionOf(event, event_value));
  if (!partition.has_value()) return outcome;
  Json state;
  if (auto it = changed_.find(*partition); it != changed_.end()) {
    state = Json::parse(it->second);
  } else {
    CAIRN_ASSIGN_OR_RETURN(std::optional<std::string> stored, read(*partition));
    if (stored.has_value()) {
      state = Json::parse(*stored, nullptr, false);
      if (state.is_discarded()) {
        return Status::Corruption("projections: the stored state of partition '" + *partition +
                                  "' is not JSON");
      }
    } else if (sandbox_->TypeOf("init") == LuaSandbox::Type::kFunction) {
      CAIRN_ASSIGN_OR_RETURN(state, sandbox_->Call("init", "init", "", {}));
      outcome.new_partition = true;
    } else {
      state = Json::object();
      outcome.new_partition = true;
    }
  }
  CAIRN_ASSIGN_OR_RETURN(Json next, sandbox_->Call("handler '" + handler + "'", "handlers", handler,
                                                   {&state, &event_value},
                                                   /*nil_result_argument=*/0));
  std::string text = JsonText(next);
  if (text.size() > ProjectionLimits::kStateBytesPerPartitionMax) {
    return Status::ResourceExhausted("handler '" + handler + "': the state of partition '" +
                                     *partition + "' would be " + std::to_string(text.size()) +
                                     " bytes, more than the limit of " +
                                     std::to_string(ProjectionLimits::kStateBytesPerPartitionMax));
  }
  changed_[*partition] = std::move(text);
  outcome.folded = true;
  outcome.partition = std::move(*partition);
  return outcome;
}

std::map<std::string, std::string> ProjectionEngine::TakeChanges() {
  std::map<std::string, std::string> out;
  out.swap(changed_);
  return out;
}

}  // namespace cairn::events::projection
