// Storage keys of user projections and upcasters in the engine's kEvents family
// (docs/formats/events.md, "Projections"). Two tags the event store does not use:
//   "J" "p" name                        -> v1::ProjectionDefinition   (replicated: apply)
//   "J" "u" event type "\0" from (4 BE) -> v1::Upcaster               (replicated: apply)
//   "J" "g"                             -> next generation (8 BE)     (replicated: apply)
//   "j" name "\0" "s"                   -> v1::ProjectionProgress     (this member's runner)
//   "j" name "\0" "p" partition key     -> the partition's state, JSON text (runner)
// "J" records are state-machine state, identical on every member. "j" records are derived
// from "J" and the events by each member's runner; they are consistent on their own (a page's
// states and progress are one batch) and equal on every member once the runners caught up.
// Names hold no NUL (ValidateProjectionName), event types neither (the event store refuses it).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace cairn::events::projection::format {

inline constexpr char kDefinitionTag = 'J';
inline constexpr char kRunnerTag = 'j';

std::string DefinitionKey(std::string_view name);
std::string DefinitionPrefix();  // every "J" "p" key starts with it
std::string UpcasterKey(std::string_view event_type, uint32_t from_schema_version);
std::string UpcasterPrefix();
// Decodes an UpcasterKey; false when malformed.
bool DecodeUpcasterKey(std::string_view key, std::string* event_type, uint32_t* from_version);
std::string GenerationKey();

std::string ProgressKey(std::string_view name);
std::string StateKey(std::string_view name, std::string_view partition);
// Every runner key of `name` starts with it.
std::string RunnerPrefix(std::string_view name);
// The first key after every runner key of `name`.
std::string RunnerPrefixEnd(std::string_view name);
// The projection name of a runner key; false when malformed.
bool DecodeRunnerName(std::string_view key, std::string* name);

}  // namespace cairn::events::projection::format
