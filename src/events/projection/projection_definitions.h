// ProjectionDefinitions: the replicated definitions of user projections and upcasters, a
// small state machine over the engine's kEvents family ("J" records, projection_format.h).
//
// Apply (the Raft apply thread) handles one ProjectionsCommand: create, update, delete, stop,
// start, reset a projection; set or delete an upcaster. It reads through the applier's batch
// and writes to it only once the command is known to succeed, so a failing command leaves
// nothing behind. Create, update and reset give the projection a new generation (a counter
// in the same family): the runners see the new generation and fold again from the first
// event. Apply compiles no Lua: the service compiled the source before proposing, and the
// runner reports a source that does not load as a fault.
//
// Thread-safety: Apply from the apply thread only; the reads from any thread (they read the
// latest written state).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "cairn/projections.pb.h"
#include "src/base/result.h"
#include "src/storage/engine.h"

namespace cairn::events::projection {

namespace v1 = ::cairn::events::v1;

// The structural checks of a change (names, sizes, versions), made by the service before
// proposing and again at apply. INVALID_ARGUMENT "projections: ...".
Status ValidateProjectionsCommand(const v1::ProjectionsCommand& command);

class ProjectionDefinitions {
 public:
  explicit ProjectionDefinitions(storage::Engine* engine) : engine_(engine) {}
  ProjectionDefinitions(const ProjectionDefinitions&) = delete;
  ProjectionDefinitions& operator=(const ProjectionDefinitions&) = delete;

  // Errors: INVALID_ARGUMENT (ValidateProjectionsCommand), ALREADY_EXISTS "projections:
  // projection 'x' already exists", NOT_FOUND "projections: projection 'x' not found" /
  // "projections: no upcaster for event type 'x' from schema version n", RESOURCE_EXHAUSTED
  // beyond ProjectionLimits::kProjectionsMax / kUpcastersMax.
  Status Apply(storage::WriteBatch* batch, const v1::ProjectionsCommand& command,
               v1::ProjectionsChangeResponse* response);

  // ---- Reads (any thread) ----
  Result<std::vector<v1::ProjectionDefinition>> ListProjections() const;  // by name
  Result<std::optional<v1::ProjectionDefinition>> GetProjection(std::string_view name) const;
  Result<std::vector<v1::Upcaster>> ListUpcasters() const;  // by event type, then version

 private:
  storage::Engine* const engine_;
};

}  // namespace cairn::events::projection
