// LuaSandbox: one Lua 5.4 state in which user code (projections, upcasters) runs
// deterministically and within bounds.
//
// What the code sees: the base library without dofile, loadfile, print, warn and next (load
// accepts text chunks only; collectgarbage only "collect" and "count"; pairs visits keys in
// sorted order; tostring and string.format never reveal addresses; setmetatable refuses __gc
// and __mode, whose effects depend on when the collector runs), string without string.dump,
// table, math without random/randomseed, and utf8. No os, io, package/require, debug or
// coroutine: no clock, no files, no randomness, nothing that differs between members.
//
// Bounds: every Call (and Load) may run ProjectionLimits::kInstructionsPerCallMax VM
// instructions (a count hook raises "instruction limit exceeded"; once it fired, it fires on
// every instruction, so a pcall in user code cannot swallow it), and the state may allocate
// memory_bytes_max bytes (a custom allocator refuses more: "memory limit exceeded"). Work done
// inside one C library call (e.g. a pattern match) is not counted by the hook; it is bounded
// by the memory budget and by the input sizes.
//
// Values cross the boundary as JSON (nlohmann::json), mapped so that a round trip is exact:
//   JSON null <-> nil (object members that are null are absent; nulls in arrays leave holes),
//   true/false <-> booleans, integers <-> Lua integers (above int64: floats), other numbers
//   <-> Lua floats, strings <-> strings (Lua -> JSON requires valid UTF-8),
//   arrays <-> tables whose keys are exactly 1..n (n >= 1),
//   objects <-> tables whose keys are all strings (members sorted by key; the empty table is
//   the empty object {}).
// Refused, with the path of the value: functions, userdata, threads, NaN and infinities,
// tables with metatables, tables reached twice (cycles, shared subtables), tables mixing key
// kinds, nesting deeper than ProjectionLimits::kJsonDepthMax.
//
// Errors: Load: INVALID_ARGUMENT with Lua's message ("name:3: '=' expected near 'x'").
// Call: ABORTED with Lua's message for a runtime error, RESOURCE_EXHAUSTED for the
// instruction or memory limit, INVALID_ARGUMENT when a value cannot cross the boundary.
//
// Thread-safety: none; one thread at a time (the owner serializes).
#pragma once

#include <cstddef>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "src/base/result.h"
#include "src/events/projection/projection_limits.h"

struct lua_State;
struct lua_Debug;

namespace cairn::events::projection {

struct SandboxOptions {
  // Default: ProjectionLimits::kInstructionsPerCallMax.
  int instructions_per_call_max = ProjectionLimits::kInstructionsPerCallMax;
  // Default: ProjectionLimits::kMemoryBytesPerProjectionMax.
  size_t memory_bytes_max = ProjectionLimits::kMemoryBytesPerProjectionMax;
};

class LuaSandbox {
 public:
  // Errors: RESOURCE_EXHAUSTED when the libraries do not fit in memory_bytes_max.
  static Result<std::unique_ptr<LuaSandbox>> Create(const SandboxOptions& options);
  ~LuaSandbox();
  LuaSandbox(const LuaSandbox&) = delete;
  LuaSandbox& operator=(const LuaSandbox&) = delete;

  // Compiles `source` (text only) as chunk `chunk_name` and runs it, under the limits.
  Status Load(std::string_view chunk_name, std::string_view source);

  enum class Type { kNil, kBoolean, kNumber, kString, kTable, kFunction, kOther };
  // The type of global `global`, or of field `field` of the table in global `global` (field
  // not empty). A non-table global has no fields (kNil).
  Type TypeOf(std::string_view global, std::string_view field = {}) const;
  // The value of a global as JSON (INVALID_ARGUMENT when it cannot be converted).
  Result<nlohmann::json> Global(std::string_view global);

  // Calls the function in global `global` (field empty) or in field `field` of the table in
  // global `global`, with `arguments` converted to Lua, and returns its first result as
  // JSON. `what` names the call in errors ("handler 'OrderPlaced'"). When the function
  // returns nil and `nil_result_argument` >= 0, the result is that argument as the function
  // left it (a handler that modified its state table in place and returned nothing).
  Result<nlohmann::json> Call(std::string_view what, std::string_view global,
                              std::string_view field,
                              const std::vector<const nlohmann::json*>& arguments,
                              int nil_result_argument = -1);

  // Bytes the Lua state holds now.
  size_t memory_bytes() const { return memory_bytes_; }

 private:
  explicit LuaSandbox(const SandboxOptions& options) : options_(options) {}
  static void* Allocate(void* self, void* block, size_t old_size, size_t new_size);
  static void CountHook(lua_State* state, lua_Debug* debug);
  // Runs `body` in protected mode under the limits; maps failures to Status.
  template <typename Body>
  Status Protected(std::string_view what, Body&& body, bool count_instructions);

  const SandboxOptions options_;
  lua_State* state_ = nullptr;
  size_t memory_bytes_ = 0;
  bool memory_refused_ = false;
  bool instruction_limit_hit_ = false;
  std::string instruction_limit_message_;
};

// JSON text of `value` (compact, members sorted): the canonical form states are stored in.
std::string JsonText(const nlohmann::json& value);

}  // namespace cairn::events::projection
