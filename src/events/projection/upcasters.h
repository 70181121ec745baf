// Upcasters: serves old events in their new shape, on read, without rewriting history
// (docs/events.md, "User projections and upcasters").
//
// An event's schema version is the integer "schema_version" member of its metadata when the
// metadata is a JSON object that has one, else 1. The upcaster registered for (event type,
// version n) is Lua source defining `upcast(data, event)`; it returns the event's data in
// version n+1 (a table or other JSON value: the data becomes its JSON text and the content
// type application/json; a string: the data becomes those bytes). Upcasters chain while one
// exists for the new version (at most ProjectionLimits::kUpcastChainMax steps). The served
// event's metadata then carries the final schema_version (JSON-object or empty metadata; other
// metadata, or metadata nested deeper than ProjectionLimits::kJsonDepthMax, is served
// unchanged). Hash, position, id and version are the stored event's.
//
// An upcaster that fails fails the read (FAILED_PRECONDITION naming the upcaster, the event
// and Lua's message) rather than serve an event in a shape the reader does not expect; fix
// or delete the upcaster and the read succeeds.
//
// Definitions come from ProjectionDefinitions (replicated); each is compiled once into its
// own LuaSandbox and recompiled when its source changes.
//
// Thread-safety: every method is thread-safe (a mutex serializes the Lua calls).
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "cairn/events.pb.h"
#include "cairn/projections.pb.h"
#include "src/base/result.h"
#include "src/events/projection/lua_sandbox.h"
#include "src/events/projection/projection_definitions.h"

namespace cairn::events::projection {

// Compiles an upcaster's source and checks it defines upcast. INVALID_ARGUMENT
// "projections: ..." with Lua's message.
Status CompileUpcaster(const std::string& event_type, uint32_t from_schema_version,
                       const std::string& source);

// The schema version of an event (see above).
uint32_t SchemaVersion(const v1::RecordedEvent& event);

class Upcasters {
 public:
  explicit Upcasters(const ProjectionDefinitions* definitions) : definitions_(definitions) {}
  Upcasters(const Upcasters&) = delete;
  Upcasters& operator=(const Upcasters&) = delete;

  // Upcasts every event in place. Errors: FAILED_PRECONDITION (an upcaster failed), storage
  // errors reading the definitions.
  Status Apply(google::protobuf::RepeatedPtrField<v1::RecordedEvent>* events);
  Status Apply(v1::RecordedEvent* event);

  // The response paths of the Events service, one call each.
  Status ApplyTo(v1::ReadStreamResponse* response) { return Apply(response->mutable_events()); }
  Status ApplyTo(v1::ReadAllResponse* response) { return Apply(response->mutable_events()); }
  Status ApplyTo(v1::ReadAggregateResponse* response) { return Apply(response->mutable_events()); }
  Status ApplyTo(std::vector<v1::SubscribeResponse>* messages);
  // Responses without events.
  template <typename Other>
  Status ApplyTo(Other*) {
    return Status::Ok();
  }

 private:
  struct Compiled {
    std::string source;
    std::unique_ptr<LuaSandbox> sandbox;
  };
  using Key = std::pair<std::string, uint32_t>;  // (event type, from schema version)

  // Loads the definitions; false when there are none. REQUIRES: mu_ held.
  Result<bool> RefreshLocked();
  Status UpcastLocked(v1::RecordedEvent* event);

  const ProjectionDefinitions* const definitions_;
  std::mutex mu_;
  std::map<Key, std::string> sources_;  // guarded by mu_: the current definitions
  std::map<Key, Compiled> compiled_;    // guarded by mu_
};

}  // namespace cairn::events::projection
