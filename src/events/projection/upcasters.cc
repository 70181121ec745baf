#include "src/events/projection/upcasters.h"

#include "src/events/projection/projection_engine.h"
#include "src/events/projection/projection_limits.h"

namespace cairn::events::projection {
namespace {

using Json = nlohmann::json;

SandboxOptions UpcasterSandboxOptions() {
  SandboxOptions options;
  options.instructions_per_call_max = ProjectionLimits::kInstructionsPerCallMax;
  options.memory_bytes_max = ProjectionLimits::kMemoryBytesPerUpcasterMax;
  return options;
}

// Whether `value` nests at most `depth` levels (recursion bounded by `depth`).
bool DepthWithin(const Json& value, int depth) {
  if (!value.is_structured()) return true;
  if (depth == 0) return false;
  for (const Json& element : value) {
    if (!DepthWithin(element, depth - 1)) return false;
  }
  return true;
}

std::string Describe(const std::string& event_type, uint32_t from) {
  return "upcaster for event type '" + event_type + "' from schema version " + std::to_string(from);
}

Result<std::unique_ptr<LuaSandbox>> Load(const std::string& event_type, uint32_t from,
                                         const std::string& source) {
  if (source.size() > ProjectionLimits::kSourceBytesMax) {
    return Status::InvalidArgument("projections: upcaster source is " +
                                   std::to_string(source.size()) + " bytes, more than " +
                                   std::to_string(ProjectionLimits::kSourceBytesMax));
  }
  CAIRN_ASSIGN_OR_RETURN(std::unique_ptr<LuaSandbox> sandbox,
                         LuaSandbox::Create(UpcasterSandboxOptions()));
  Status loaded = sandbox->Load(event_type + "@v" + std::to_string(from), source);
  if (!loaded.ok()) {
    return Status::InvalidArgument("projections: " + Describe(event_type, from) + ": " +
                                   std::string(loaded.message()));
  }
  if (sandbox->TypeOf("upcast") != LuaSandbox::Type::kFunction) {
    return Status::InvalidArgument("projections: " + Describe(event_type, from) +
                                   ": the source must define a function upcast(data, event)");
  }
  return sandbox;
}

}  // namespace

Status CompileUpcaster(const std::string& event_type, uint32_t from_schema_version,
                       const std::string& source) {
  return Load(event_type, from_schema_version, source).status();
}

uint32_t SchemaVersion(const v1::RecordedEvent& event) {
  if (event.metadata().empty()) return 1;
  Json metadata = Json::parse(event.metadata(), nullptr, false);
  if (!metadata.is_object()) return 1;
  auto it = metadata.find("schema_version");
  if (it == metadata.end() || !it->is_number_integer()) return 1;
  const int64_t version = it->get<int64_t>();
  if (version < 1 || version > INT32_MAX) return 1;
  return static_cast<uint32_t>(version);
}

Result<bool> Upcasters::RefreshLocked() {
  CAIRN_ASSIGN_OR_RETURN(std::vector<v1::Upcaster> upcasters, definitions_->ListUpcasters());
  sources_.clear();
  for (auto& upcaster : upcasters) {
    sources_[{upcaster.event_type(), upcaster.from_schema_version()}] =
        std::move(*upcaster.mutable_source());
  }
  for (auto it = compiled_.begin(); it != compiled_.end();) {
    auto source = sources_.find(it->first);
    it = source != sources_.end() && source->second == it->second.source ? std::next(it)
                                                                         : compiled_.erase(it);
  }
  return !sources_.empty();
}

Status Upcasters::Apply(google::protobuf::RepeatedPtrField<v1::RecordedEvent>* events) {
  if (events->empty()) return Status::Ok();
  std::lock_guard<std::mutex> lock(mu_);
  CAIRN_ASSIGN_OR_RETURN(bool any, RefreshLocked());
  if (!any) return Status::Ok();
  for (v1::RecordedEvent& event : *events) CAIRN_RETURN_IF_ERROR(UpcastLocked(&event));
  return Status::Ok();
}

Status Upcasters::Apply(v1::RecordedEvent* event) {
  std::lock_guard<std::mutex> lock(mu_);
  CAIRN_ASSIGN_OR_RETURN(bool any, RefreshLocked());
  if (!any) return Status::Ok();
  return UpcastLocked(event);
}

Status Upcasters::ApplyTo(std::vector<v1::SubscribeResponse>* messages) {
  bool has_events = false;
  for (const auto& message : *messages) has_events = has_events || message.has_event();
  if (!has_events) return Status::Ok();
  std::lock_guard<std::mutex> lock(mu_);
  CAIRN_ASSIGN_OR_RETURN(bool any, RefreshLocked());
  if (!any) return Status::Ok();
  for (auto& message : *messages) {
    if (message.has_event()) CAIRN_RETURN_IF_ERROR(UpcastLocked(message.mutable_event()));
  }
  return Status::Ok();
}

Status Upcasters::UpcastLocked(v1::RecordedEvent* event) {
  const uint32_t original = SchemaVersion(*event);
  uint32_t version = original;
  for (uint32_t step = 0; step < ProjectionLimits::kUpcastChainMax; ++step) {
    const Key key{event->type(), version};
    auto source = sources_.find(key);
    if (source == sources_.end()) break;
    Compiled& compiled = compiled_[key];
    if (compiled.sandbox == nullptr) {
      auto sandbox = Load(key.first, key.second, source->second);
      if (!sandbox.ok()) {
        compiled_.erase(key);
        return Status::FailedPrecondition(std::string(sandbox.status().message()));
      }
      compiled.sandbox = std::move(*sandbox);
      compiled.source = source->second;
    }
    const Json event_value = EventToJson(*event);
    const Json& data = event_value["data"];
    auto result = compiled.sandbox->Call("upcast", "upcast", "", {&data, &event_value});
    if (result.ok() && result->is_null()) {
      result = Status::InvalidArgument("upcast returned nil; it must return the new data");
    }
    if (!result.ok()) {
      return Status::FailedPrecondition(
          "projections: " + Describe(key.first, key.second) + " failed on " + event->stream() +
          "@" + std::to_string(event->version()) + ": " + std::string(result.status().message()));
    }
    if (result->is_string()) {
      event->set_data(result->get<std::string>());
    } else {
      event->set_data(JsonText(*result));
      event->set_content_type("application/json");
    }
    ++version;
  }
  if (version == original) return Status::Ok();
  Json metadata =
      event->metadata().empty() ? Json::object() : Json::parse(event->metadata(), nullptr, false);
  // Writing the metadata back recurses over it: only when its nesting is bounded (stored
  // metadata is the client's, up to 1 MiB of brackets).
  if (metadata.is_object() && DepthWithin(metadata, ProjectionLimits::kJsonDepthMax)) {
    metadata["schema_version"] = version;
    event->set_metadata(JsonText(metadata));
  }
  return Status::Ok();
}

}  // namespace cairn::events::projection
