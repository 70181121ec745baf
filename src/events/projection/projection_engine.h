// ProjectionEngine: one user projection's Lua code folding events into partition states.
// Pure: no threads, no storage, no clock; the same source and the same events give the same
// states, byte for byte, on every member (docs/events.md, "User projections and upcasters").
//
// The source defines, as globals:
//   handlers      a table: event type -> function(state, event) returning the new state (or
//                 nil to keep the state it was given, possibly modified); the key "$any"
//                 handles every type without its own handler. Events without a handler are
//                 skipped (they still advance the checkpoint).
//   init          optional function() returning a partition's initial state (default {}).
//   partition_by  optional: absent = one state for the whole store (partition key ""),
//                 "stream" = one state per stream, or function(event) returning the
//                 partition key (a string or an integer; nil skips the event).
// The event a handler sees is a table {stream, version, type, id, data, metadata,
// content_type, position = {revision, index}, created_unix_nanos}; data is decoded when the
// content type is JSON (application/json, the default) and parses, else it is the raw
// string; metadata likewise when it parses as JSON (absent when empty).
//
// States are JSON text (LuaSandbox's mapping): each fold decodes the partition's stored text,
// calls the handler and encodes the result, so what a member that restarted computes is what
// one that did not computes. A fold that fails changes nothing.
//
// Thread-safety: none; one thread at a time.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "cairn/events.pb.h"
#include "src/base/result.h"
#include "src/events/projection/lua_sandbox.h"

namespace cairn::events::projection {

namespace v1 = ::cairn::events::v1;

class ProjectionEngine {
 public:
  // Compiles and loads `source` and checks its shape (handlers is a table of functions, init
  // a function if present, partition_by nil, "stream" or a function).
  // Errors: INVALID_ARGUMENT "projections: ..." with Lua's message (syntax errors carry the
  // line: "<name>:3: ...") or naming what is wrong; RESOURCE_EXHAUSTED when loading exceeds
  // a limit.
  static Result<std::unique_ptr<ProjectionEngine>> Compile(const std::string& name,
                                                           const std::string& source,
                                                           const SandboxOptions& options = {});

  // Reads a partition's stored state: nullopt when the partition has none yet.
  using StateReader = std::function<Result<std::optional<std::string>>(const std::string& key)>;

  // What one Fold did.
  struct Outcome {
    bool folded = false;  // false: no handler, or partition_by returned nil
    bool new_partition = false;
    std::string partition;
  };

  // Folds one event into its partition. The partition's state is taken from the states
  // changed since the last TakeChanges, else from `read`, else from init().
  // Errors (the projection faults): ABORTED (a Lua error), RESOURCE_EXHAUSTED (instruction,
  // memory or state size limit), INVALID_ARGUMENT (a state or key that cannot be stored);
  // the message names the function ("handler 'OrderPlaced': orders:5: ..."). Errors of
  // `read` are returned as they are. Nothing changes on error.
  Result<Outcome> Fold(const v1::RecordedEvent& event, const StateReader& read);

  // Partition key -> JSON state text of every partition changed since the last call.
  std::map<std::string, std::string> TakeChanges();

 private:
  enum class Partitioning { kNone, kStream, kFunction };
  ProjectionEngine(std::unique_ptr<LuaSandbox> sandbox, Partitioning partitioning)
      : sandbox_(std::move(sandbox)), partitioning_(partitioning) {}

  // The partition key of `event`, or nullopt to skip it.
  Result<std::optional<std::string>> PartitionOf(const v1::RecordedEvent& event,
                                                 const nlohmann::json& event_value);

  std::unique_ptr<LuaSandbox> sandbox_;
  const Partitioning partitioning_;
  std::map<std::string, std::string> changed_;
};

// The event as projections and upcasters see it (see ProjectionEngine).
nlohmann::json EventToJson(const v1::RecordedEvent& event);

// Names: non-empty, at most ProjectionLimits::kNameBytesMax bytes of [A-Za-z0-9_.-].
// INVALID_ARGUMENT "projections: ..." otherwise.
Status ValidateProjectionName(std::string_view name);

}  // namespace cairn::events::projection
