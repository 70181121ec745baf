#include "src/events/projection/lua_sandbox.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <lua.hpp>
#include <set>

#include "src/events/projection/projection_limits.h"

namespace cairn::events::projection {
namespace {

using Json = nlohmann::json;

// Run once in every new state, before the unsafe functions are removed: replaces the base
// functions whose results would differ between members (see lua_sandbox.h).
constexpr std::string_view kPrelude = R"lua(
local next, type, rawget, getmetatable, error, select = next, type, rawget, getmetatable, error, select
local sort, pack, unpack = table.sort, table.pack, table.unpack
local raw_setmetatable, raw_tostring, raw_format, raw_load = setmetatable, tostring, string.format, load
local raw_find, raw_gsub = string.find, string.gsub
local key_order = { boolean = 1, number = 2, string = 3 }
local function key_less(a, b)
  local ta, tb = type(a), type(b)
  if ta ~= tb then return key_order[ta] < key_order[tb] end
  if ta == "boolean" then return (not a) and b end
  return a < b
end
function pairs(t)
  local mt = getmetatable(t)
  if type(mt) == "table" and rawget(mt, "__pairs") ~= nil then return mt.__pairs(t) end
  if type(t) ~= "table" then
    error("bad argument #1 to 'pairs' (table expected, got " .. type(t) .. ")", 2)
  end
  local keys, n = {}, 0
  for k in next, t do
    if key_order[type(k)] == nil then
      error("pairs: table keys must be booleans, numbers or strings (the order of other keys differs between members)", 2)
    end
    n = n + 1
    keys[n] = k
  end
  sort(keys, key_less)
  local i = 0
  return function()
    while true do
      i = i + 1
      local k = keys[i]
      if k == nil then return nil end
      local v = t[k]
      if v ~= nil then return k, v end
    end
  end, t, nil
end
local opaque = { table = true, ["function"] = true, thread = true, userdata = true }
function tostring(v)
  if opaque[type(v)] then
    local mt = getmetatable(v)
    if type(mt) == "table" and rawget(mt, "__tostring") ~= nil then return raw_tostring(v) end
    return type(v)
  end
  return raw_tostring(v)
end
function string.format(f, ...)
  local args = pack(...)
  for i = 1, args.n do
    if opaque[type(args[i])] then args[i] = tostring(args[i]) end
  end
  if type(f) == "string" and raw_find((raw_gsub(f, "%%%%", "")), "%%[-+ #0-9.]*p") then
    error("string.format: '%p' is not allowed (addresses differ between members)", 2)
  end
  return raw_format(f, unpack(args, 1, args.n))
end
function setmetatable(t, mt)
  if type(mt) == "table" and (rawget(mt, "__gc") ~= nil or rawget(mt, "__mode") ~= nil) then
    error("setmetatable: __gc and __mode are not allowed (their effect depends on when the garbage collector runs)", 2)
  end
  return raw_setmetatable(t, mt)
end
function load(chunk, name, mode, ...)
  if select("#", ...) > 0 then return raw_load(chunk, name, "t", ...) end
  return raw_load(chunk, name, "t")
end
)lua";

LuaSandbox* SandboxOf(lua_State* state) {
  return *static_cast<LuaSandbox**>(lua_getextraspace(state));
}

int CollectGarbage(lua_State* state) {
  const char* option = luaL_optstring(state, 1, "collect");
  if (std::strcmp(option, "collect") == 0) {
    lua_gc(state, LUA_GCCOLLECT);
    lua_pushinteger(state, 0);
    return 1;
  }
  if (std::strcmp(option, "count") == 0) {
    const int kilobytes = lua_gc(state, LUA_GCCOUNT);
    const int bytes = lua_gc(state, LUA_GCCOUNTB);
    lua_pushnumber(state, static_cast<lua_Number>(kilobytes) + bytes / 1024.0);
    return 1;
  }
  return luaL_error(state, "collectgarbage: only \"collect\" and \"count\" are allowed");
}

int RefuseGlobalAssignment(lua_State* state) {
  const char* name = lua_type(state, 2) == LUA_TSTRING ? lua_tostring(state, 2) : "?";
  return luaL_error(state,
                    "global '%s' cannot be assigned after loading (keep data in the state: "
                    "globals are not stored and would differ after a restart)",
                    name);
}

bool ValidUtf8(std::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    const auto c = static_cast<unsigned char>(text[i]);
    size_t length = 0;
    uint32_t code = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      length = 2;
      code = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      length = 3;
      code = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      length = 4;
      code = c & 0x07;
    } else {
      return false;
    }
    if (i + length > text.size()) return false;
    for (size_t k = 1; k < length; ++k) {
      const auto next = static_cast<unsigned char>(text[i + k]);
      if ((next & 0xC0) != 0x80) return false;
      code = (code << 6) | (next & 0x3F);
    }
    const uint32_t minimum[] = {0, 0, 0x80, 0x800, 0x10000};
    if (code < minimum[length] || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF)) {
      return false;
    }
    i += length;
  }
  return true;
}

// Raised (as a Lua error) when a value cannot cross the boundary; Protected maps it to
// INVALID_ARGUMENT.
[[noreturn]] void ConversionError(lua_State* state, const std::string& message) {
  lua_pushlstring(state, message.data(), message.size());
  lua_pushboolean(state, 1);
  lua_setfield(state, LUA_REGISTRYINDEX, "cairn.conversion_error");
  lua_error(state);
  std::abort();  // lua_error does not return
}

void PushJson(lua_State* state, const Json& value, int depth) {
  if (depth > ProjectionLimits::kJsonDepthMax) {
    ConversionError(state, "JSON value nested deeper than " +
                               std::to_string(ProjectionLimits::kJsonDepthMax) + " levels");
  }
  luaL_checkstack(state, 4, "JSON value too deep");
  switch (value.type()) {
    case Json::value_t::null:
    case Json::value_t::discarded:
      lua_pushnil(state);
      return;
    case Json::value_t::boolean:
      lua_pushboolean(state, value.get<bool>() ? 1 : 0);
      return;
    case Json::value_t::number_integer:
      lua_pushinteger(state, value.get<int64_t>());
      return;
    case Json::value_t::number_unsigned: {
      const auto number = value.get<uint64_t>();
      if (number <= static_cast<uint64_t>(std::numeric_limits<lua_Integer>::max())) {
        lua_pushinteger(state, static_cast<lua_Integer>(number));
      } else {
        lua_pushnumber(state, static_cast<lua_Number>(number));
      }
      return;
    }
    case Json::value_t::number_float:
      lua_pushnumber(state, value.get<double>());
      return;
    case Json::value_t::string: {
      const auto& text = value.get_ref<const std::string&>();
      lua_pushlstring(state, text.data(), text.size());
      return;
    }
    case Json::value_t::binary:
      ConversionError(state, "binary JSON values are not supported");
    case Json::value_t::array: {
      lua_createtable(state, static_cast<int>(std::min<size_t>(value.size(), INT32_MAX)), 0);
      lua_Integer index = 1;
      for (const Json& element : value) {
        PushJson(state, element, depth + 1);
        lua_rawseti(state, -2, index++);
      }
      return;
    }
    case Json::value_t::object: {
      lua_createtable(state, 0, static_cast<int>(std::min<size_t>(value.size(), INT32_MAX)));
      for (auto it = value.begin(); it != value.end(); ++it) {
        if (it.value().is_null()) continue;
        lua_pushlstring(state, it.key().data(), it.key().size());
        PushJson(state, it.value(), depth + 1);
        lua_rawset(state, -3);
      }
      return;
    }
  }
}

struct ToJsonContext {
  std::set<const void*> seen;
};

Json ToJson(lua_State* state, int index, const std::string& path, int depth,
            ToJsonContext* context);

Json TableToJson(lua_State* state, int index, const std::string& path, int depth,
                 ToJsonContext* context) {
  if (depth > ProjectionLimits::kJsonDepthMax) {
    ConversionError(state, path + ": tables nested deeper than " +
                               std::to_string(ProjectionLimits::kJsonDepthMax) + " levels");
  }
  if (lua_getmetatable(state, index)) {
    lua_pop(state, 1);
    ConversionError(state, path + ": a table with a metatable cannot be stored");
  }
  if (!context->seen.insert(lua_topointer(state, index)).second) {
    ConversionError(state, path +
                               ": a table reached twice (cycles and shared subtables cannot "
                               "be stored)");
  }
  luaL_checkstack(state, 6, "table too deep");
  std::vector<std::string> string_keys;
  std::vector<lua_Integer> integer_keys;
  bool other_keys = false;
  lua_pushnil(state);
  while (lua_next(state, index) != 0) {
    lua_pop(state, 1);  // the value
    if (lua_type(state, -1) == LUA_TSTRING) {
      size_t length = 0;
      const char* key = lua_tolstring(state, -1, &length);
      string_keys.emplace_back(key, length);
    } else if (lua_isinteger(state, -1)) {
      integer_keys.push_back(lua_tointeger(state, -1));
    } else {
      other_keys = true;
    }
  }
  if (other_keys || (!string_keys.empty() && !integer_keys.empty())) {
    ConversionError(state, path +
                               ": a table must have only string keys (an object) or only the "
                               "keys 1..n (an array)");
  }
  if (!integer_keys.empty()) {
    const auto n = static_cast<lua_Integer>(integer_keys.size());
    const auto [low, high] = std::minmax_element(integer_keys.begin(), integer_keys.end());
    if (*low != 1 || *high != n) {
      ConversionError(state, path + ": an array must have the keys 1..n without holes (found " +
                                 std::to_string(n) + " integer keys from " + std::to_string(*low) +
                                 " to " + std::to_string(*high) + ")");
    }
    Json array = Json::array();
    for (lua_Integer i = 1; i <= n; ++i) {
      lua_rawgeti(state, index, i);
      array.push_back(ToJson(state, lua_gettop(state), path + "[" + std::to_string(i) + "]",
                             depth + 1, context));
      lua_pop(state, 1);
    }
    return array;
  }
  std::sort(string_keys.begin(), string_keys.end());
  Json object = Json::object();
  for (const std::string& key : string_keys) {
    if (!ValidUtf8(key)) ConversionError(state, path + ": a key is not valid UTF-8");
    lua_pushlstring(state, key.data(), key.size());
    lua_rawget(state, index);
    object[key] = ToJson(state, lua_gettop(state), path + "." + key, depth + 1, context);
    lua_pop(state, 1);
  }
  return object;
}

Json ToJson(lua_State* state, int index, const std::string& path, int depth,
            ToJsonContext* context) {
  switch (lua_type(state, index)) {
    case LUA_TNIL:
    case LUA_TNONE:
      return nullptr;
    case LUA_TBOOLEAN:
      return lua_toboolean(state, index) != 0;
    case LUA_TNUMBER: {
      if (lua_isinteger(state, index)) return static_cast<int64_t>(lua_tointeger(state, index));
      const double number = lua_tonumber(state, index);
      if (!std::isfinite(number)) {
        ConversionError(state, path + ": NaN and infinities cannot be stored");
      }
      return number;
    }
    case LUA_TSTRING: {
      size_t length = 0;
      const char* text = lua_tolstring(state, index, &length);
      std::string_view view(text, length);
      if (!ValidUtf8(view)) ConversionError(state, path + ": a string is not valid UTF-8");
      return std::string(view);
    }
    case LUA_TTABLE:
      return TableToJson(state, index, path, depth, context);
    default:
      ConversionError(state, path + ": a " + lua_typename(state, lua_type(state, index)) +
                                 " cannot be stored (only nil, booleans, numbers, strings "
                                 "and tables)");
  }
}

}  // namespace

std::string JsonText(const Json& value) {
  return value.dump(-1, ' ', false, Json::error_handler_t::replace);
}

void* LuaSandbox::Allocate(void* opaque, void* block, size_t old_size, size_t new_size) {
  auto* self = static_cast<LuaSandbox*>(opaque);
  const size_t old_bytes = block == nullptr ? 0 : old_size;
  if (new_size == 0) {
    std::free(block);
    self->memory_bytes_ -= old_bytes;
    return nullptr;
  }
  if (new_size > old_bytes &&
      self->memory_bytes_ + (new_size - old_bytes) > self->options_.memory_bytes_max) {
    self->memory_refused_ = true;
    return nullptr;
  }
  void* resized = std::realloc(block, new_size);
  if (resized == nullptr) return nullptr;
  self->memory_bytes_ = self->memory_bytes_ - old_bytes + new_size;
  return resized;
}

void LuaSandbox::CountHook(lua_State* state, lua_Debug*) {
  LuaSandbox* self = SandboxOf(state);
  if (!self->instruction_limit_hit_) {
    self->instruction_limit_hit_ = true;
    luaL_where(state, 0);  // in a hook, level 0 is the Lua function that ran too long
    self->instruction_limit_message_ =
        std::string(lua_tostring(state, -1)) + "instruction limit exceeded (" +
        std::to_string(self->options_.instructions_per_call_max) + " instructions per call)";
    lua_pop(state, 1);
    // From now on, fail on every instruction so that a pcall in user code cannot go on.
    lua_sethook(state, &LuaSandbox::CountHook, LUA_MASKCOUNT, 1);
  }
  lua_pushlstring(state, self->instruction_limit_message_.data(),
                  self->instruction_limit_message_.size());
  lua_error(state);
}

Result<std::unique_ptr<LuaSandbox>> LuaSandbox::Create(const SandboxOptions& options) {
  std::unique_ptr<LuaSandbox> sandbox(new LuaSandbox(options));
  sandbox->state_ = lua_newstate(&LuaSandbox::Allocate, sandbox.get());
  if (sandbox->state_ == nullptr) {
    return Status::ResourceExhausted("projections: cannot create a Lua state within " +
                                     std::to_string(options.memory_bytes_max) + " bytes");
  }
  *static_cast<LuaSandbox**>(lua_getextraspace(sandbox->state_)) = sandbox.get();
  Status opened = sandbox->Protected(
      "opening the Lua libraries",
      [](lua_State* state) {
        static const luaL_Reg kLibraries[] = {{LUA_GNAME, luaopen_base},
                                              {LUA_STRLIBNAME, luaopen_string},
                                              {LUA_TABLIBNAME, luaopen_table},
                                              {LUA_MATHLIBNAME, luaopen_math},
                                              {LUA_UTF8LIBNAME, luaopen_utf8}};
        for (const luaL_Reg& library : kLibraries) {
          luaL_requiref(state, library.name, library.func, 1);
          lua_pop(state, 1);
        }
        if (luaL_loadbuffer(state, kPrelude.data(), kPrelude.size(), "=prelude") != LUA_OK) {
          lua_error(state);
        }
        lua_call(state, 0, 0);
        for (const char* name : {"dofile", "loadfile", "print", "warn", "next"}) {
          lua_pushnil(state);
          lua_setglobal(state, name);
        }
        lua_pushcfunction(state, &CollectGarbage);
        lua_setglobal(state, "collectgarbage");
        lua_getglobal(state, LUA_STRLIBNAME);
        lua_pushnil(state);
        lua_setfield(state, -2, "dump");
        lua_pop(state, 1);
        lua_getglobal(state, LUA_MATHLIBNAME);
        for (const char* name : {"random", "randomseed"}) {
          lua_pushnil(state);
          lua_setfield(state, -2, name);
        }
        lua_pop(state, 1);
        // The registry must not keep the loaded libraries reachable through package.loaded
        // under other names: there is no package library, so only _LOADED holds them.
      },
      /*count_instructions=*/false);
  if (!opened.ok()) return opened;
  return sandbox;
}

LuaSandbox::~LuaSandbox() {
  if (state_ != nullptr) lua_close(state_);
}

template <typename Body>
Status LuaSandbox::Protected(std::string_view what, Body&& body, bool count_instructions) {
  std::function<void(lua_State*)> function = std::forward<Body>(body);
  lua_State* state = state_;
  lua_settop(state, 0);
  memory_refused_ = false;
  instruction_limit_hit_ = false;
  if (count_instructions) {
    lua_sethook(state, &LuaSandbox::CountHook, LUA_MASKCOUNT, options_.instructions_per_call_max);
  }
  // Pushing the C function and its light userdata does not allocate (light C functions).
  lua_pushcfunction(state, [](lua_State* inner) -> int {
    auto* run = static_cast<std::function<void(lua_State*)>*>(lua_touserdata(inner, 1));
    lua_remove(inner, 1);
    (*run)(inner);
    return 0;
  });
  lua_pushlightuserdata(state, &function);
  const int code = lua_pcall(state, 1, 0, 0);
  lua_sethook(state, nullptr, 0, 0);
  if (code == LUA_OK) {
    lua_settop(state, 0);
    return Status::Ok();
  }
  std::string message;
  if (lua_type(state, -1) == LUA_TSTRING) {
    message = lua_tostring(state, -1);
  } else {
    message = std::string("(error object is a ") + luaL_typename(state, -1) + " value)";
  }
  lua_settop(state, 0);
  lua_getfield(state, LUA_REGISTRYINDEX, "cairn.conversion_error");
  const bool conversion = lua_toboolean(state, -1) != 0;
  lua_pop(state, 1);
  if (conversion) {
    lua_pushnil(state);
    lua_setfield(state, LUA_REGISTRYINDEX, "cairn.conversion_error");
  }
  if (message.size() > ProjectionLimits::kErrorBytesMax) {
    message.resize(ProjectionLimits::kErrorBytesMax);
  }
  const std::string prefix = what.empty() ? std::string() : std::string(what) + ": ";
  if (instruction_limit_hit_) {
    return Status::ResourceExhausted(prefix + instruction_limit_message_);
  }
  if (code == LUA_ERRMEM || (memory_refused_ && message == "not enough memory")) {
    return Status::ResourceExhausted(prefix + "memory limit exceeded (" +
                                     std::to_string(options_.memory_bytes_max) + " bytes)");
  }
  if (conversion) return Status::InvalidArgument(prefix + message);
  return Status::Aborted(prefix + message);
}

Status LuaSandbox::Load(std::string_view chunk_name, std::string_view source) {
  const std::string name = "=" + std::string(chunk_name);
  Status loaded = Protected(
      "",
      [&](lua_State* state) {
        if (luaL_loadbufferx(state, source.data(), source.size(), name.c_str(), "t") != LUA_OK) {
          lua_error(state);
        }
        lua_call(state, 0, 0);
        // Globals are frozen: a handler that keeps data in a global would fold differently
        // on a member that restarted (the global is gone) than on one that did not.
        lua_pushglobaltable(state);
        lua_createtable(state, 0, 1);
        lua_pushcfunction(state, &RefuseGlobalAssignment);
        lua_setfield(state, -2, "__newindex");
        lua_setmetatable(state, -2);
        lua_pop(state, 1);
      },
      /*count_instructions=*/true);
  if (loaded.ok()) return loaded;
  return Status::InvalidArgument(loaded.message());
}

LuaSandbox::Type LuaSandbox::TypeOf(std::string_view global, std::string_view field) const {
  lua_State* state = state_;
  lua_settop(state, 0);
  // Raw reads (no metamethods), so that this cannot fail.
  lua_pushglobaltable(state);
  lua_pushlstring(state, global.data(), global.size());
  lua_rawget(state, -2);
  if (!field.empty()) {
    if (lua_type(state, -1) != LUA_TTABLE) {
      lua_settop(state, 0);
      return Type::kNil;
    }
    lua_pushlstring(state, field.data(), field.size());
    lua_rawget(state, -2);
  }
  const int type = lua_type(state, -1);
  lua_settop(state, 0);
  switch (type) {
    case LUA_TNIL:
      return Type::kNil;
    case LUA_TBOOLEAN:
      return Type::kBoolean;
    case LUA_TNUMBER:
      return Type::kNumber;
    case LUA_TSTRING:
      return Type::kString;
    case LUA_TTABLE:
      return Type::kTable;
    case LUA_TFUNCTION:
      return Type::kFunction;
    default:
      return Type::kOther;
  }
}

Result<Json> LuaSandbox::Global(std::string_view global) {
  Json result;
  const std::string name(global);
  CAIRN_RETURN_IF_ERROR(Protected(
      "reading global '" + name + "'",
      [&](lua_State* state) {
        lua_pushglobaltable(state);
        lua_pushlstring(state, name.data(), name.size());
        lua_rawget(state, -2);
        ToJsonContext context;
        result = ToJson(state, lua_gettop(state), name, 0, &context);
      },
      /*count_instructions=*/false));
  return result;
}

Result<Json> LuaSandbox::Call(std::string_view what, std::string_view global,
                              std::string_view field, const std::vector<const Json*>& arguments,
                              int nil_result_argument) {
  Json result;
  const std::string global_name(global);
  const std::string field_name(field);
  CAIRN_RETURN_IF_ERROR(Protected(
      what,
      [&](lua_State* state) {
        lua_pushglobaltable(state);
        lua_pushlstring(state, global_name.data(), global_name.size());
        lua_rawget(state, -2);
        if (!field_name.empty()) {
          if (lua_type(state, -1) != LUA_TTABLE) {
            luaL_error(state, "global '%s' is not a table", global_name.c_str());
          }
          lua_pushlstring(state, field_name.data(), field_name.size());
          lua_rawget(state, -2);
        }
        if (lua_type(state, -1) != LUA_TFUNCTION) luaL_error(state, "not a function");
        const int function_index = lua_gettop(state);
        luaL_checkstack(state, static_cast<int>(arguments.size()) + 4, "too many arguments");
        for (const Json* argument : arguments) PushJson(state, *argument, 0);
        const bool keep =
            nil_result_argument >= 0 && nil_result_argument < static_cast<int>(arguments.size());
        if (keep) {
          // A second reference to the argument, below the function, survives the call.
          lua_pushvalue(state, function_index + 1 + nil_result_argument);
          lua_insert(state, function_index);
        }
        lua_call(state, static_cast<int>(arguments.size()), 1);
        const int result_index = keep && lua_isnil(state, -1) ? function_index : lua_gettop(state);
        ToJsonContext context;
        result = ToJson(state, result_index, "result", 0, &context);
      },
      /*count_instructions=*/true));
  return result;
}

}  // namespace cairn::events::projection
