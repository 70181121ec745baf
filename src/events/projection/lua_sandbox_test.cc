// LuaSandbox: what user code can and cannot reach, the bounds, and the JSON mapping.
#include "src/events/projection/lua_sandbox.h"

#include <gtest/gtest.h>

namespace cairn::events::projection {
namespace {

using Json = nlohmann::json;

std::unique_ptr<LuaSandbox> NewSandbox(SandboxOptions options = {}) {
  auto sandbox = LuaSandbox::Create(options);
  EXPECT_TRUE(sandbox.ok()) << sandbox.status().ToString();
  return std::move(*sandbox);
}

// Loads `source` defining global function f and calls f().
Result<Json> RunF(const std::string& source, SandboxOptions options = {}) {
  auto sandbox = NewSandbox(options);
  CAIRN_RETURN_IF_ERROR(sandbox->Load("test", source));
  return sandbox->Call("f", "f", "", {});
}

TEST(LuaSandboxTest, UnsafeLibrariesAndFunctionsAreAbsent) {
  auto got = RunF(R"(
    function f()
      return { os = type(os), io = type(io), package = type(package), require = type(require),
               debug = type(debug), coroutine = type(coroutine), dofile = type(dofile),
               loadfile = type(loadfile), print = type(print), dump = type(string.dump),
               random = type(math.random), randomseed = type(math.randomseed),
               next = type(next), floor = type(math.floor), concat = type(table.concat),
               utf8 = type(utf8.char), format = type(string.format) }
    end)");
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  for (const char* absent : {"os", "io", "package", "require", "debug", "coroutine", "dofile",
                             "loadfile", "print", "dump", "random", "randomseed", "next"}) {
    EXPECT_EQ((*got)[absent], "nil") << absent;
  }
  for (const char* present : {"floor", "concat", "utf8", "format"}) {
    EXPECT_EQ((*got)[present], "function") << present;
  }
}

TEST(LuaSandboxTest, DeterministicFunctionsWork) {
  auto got = RunF(R"(
    function f()
      local t = { c = 3, a = 1, b = 2, [1] = "x" }
      t[1] = nil
      local keys = {}
      for k, v in pairs(t) do keys[#keys + 1] = k .. "=" .. v end
      return { keys = table.concat(keys, ","), floor = math.floor(2.5), upper = ("ab"):upper(),
               len = utf8.len("héllo"), table = tostring({}), fmt = string.format("%s|%d", {}, 7),
               sum = (function() local s = 0 for i = 1, 100 do s = s + i end return s end)() }
    end)");
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ((*got)["keys"], "a=1,b=2,c=3");
  EXPECT_EQ((*got)["floor"], 2);
  EXPECT_EQ((*got)["upper"], "AB");
  EXPECT_EQ((*got)["len"], 5);
  EXPECT_EQ((*got)["table"], "table");  // never an address
  EXPECT_EQ((*got)["fmt"], "table|7");
  EXPECT_EQ((*got)["sum"], 5050);
}

TEST(LuaSandboxTest, NondeterministicFormsAreRefused) {
  auto pointer = RunF("function f() return string.format('%p', {}) end");
  ASSERT_FALSE(pointer.ok());
  EXPECT_NE(pointer.status().message().find("'%p' is not allowed"), std::string::npos);
  auto finalizer = RunF("function f() return setmetatable({}, { __gc = function() end }) end");
  ASSERT_FALSE(finalizer.ok());
  EXPECT_NE(finalizer.status().message().find("__gc and __mode are not allowed"),
            std::string::npos);
  auto binary = RunF("function f() return load('\\27Lua') end");
  ASSERT_TRUE(binary.ok());  // load returns nil + message for a binary chunk
  EXPECT_TRUE(binary->is_null());
  auto gc = RunF("function f() return collectgarbage('stop') end");
  ASSERT_FALSE(gc.ok());
  EXPECT_NE(gc.status().message().find("only \"collect\" and \"count\""), std::string::npos);
}

TEST(LuaSandboxTest, RunawayLoopHitsTheInstructionLimitEvenInsidePcall) {
  SandboxOptions options;
  options.instructions_per_call_max = 100000;
  auto got = RunF("function f()\n  while true do pcall(function() while true do end end) end\nend",
                  options);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), StatusCode::kResourceExhausted);
  EXPECT_NE(got.status().message().find("instruction limit exceeded (100000 instructions"),
            std::string::npos)
      << got.status().message();
  EXPECT_NE(got.status().message().find("test:"), std::string::npos) << got.status().message();
}

TEST(LuaSandboxTest, TheSandboxIsUsableAfterAnInstructionLimitError) {
  SandboxOptions options;
  options.instructions_per_call_max = 100000;
  auto sandbox = NewSandbox(options);
  ASSERT_TRUE(sandbox
                  ->Load("test",
                         "function spin() while true do end end\n"
                         "function add(a, b) return a + b end")
                  .ok());
  ASSERT_FALSE(sandbox->Call("spin", "spin", "", {}).ok());
  Json two = 2;
  auto sum = sandbox->Call("add", "add", "", {&two, &two});
  ASSERT_TRUE(sum.ok()) << sum.status().ToString();
  EXPECT_EQ(*sum, 4);
}

TEST(LuaSandboxTest, MemoryBombHitsTheMemoryLimit) {
  SandboxOptions options;
  options.memory_bytes_max = 4 << 20;
  auto got =
      RunF("function f() local t = {} for i = 1, 1e9 do t[i] = string.rep('x', 64) .. i end end",
           options);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), StatusCode::kResourceExhausted);
  EXPECT_NE(got.status().message().find("memory limit exceeded (4194304 bytes)"), std::string::npos)
      << got.status().message();
  auto rep = RunF("function f() return #string.rep('x', 1 << 30) end", options);
  ASSERT_FALSE(rep.ok());
  EXPECT_EQ(rep.status().code(), StatusCode::kResourceExhausted);
}

TEST(LuaSandboxTest, SyntaxErrorsAreInvalidArgumentWithTheLine) {
  auto sandbox = NewSandbox();
  Status loaded = sandbox->Load("orders", "function f()\n  return 1 +\nend");
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(loaded.message().find("orders:3:"), std::string::npos) << loaded.message();
}

TEST(LuaSandboxTest, RuntimeErrorsAreAbortedWithLuaMessage) {
  auto got = RunF("function f()\n  error('boom')\nend");
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), StatusCode::kAborted);
  EXPECT_EQ(got.status().message(), "f: test:2: boom");
}

TEST(LuaSandboxTest, GlobalsAreFrozenAfterLoading) {
  auto got = RunF("function f() counter = 1 end");
  ASSERT_FALSE(got.ok());
  EXPECT_NE(got.status().message().find("global 'counter' cannot be assigned"), std::string::npos);
}

TEST(LuaSandboxTest, JsonRoundTripIsExact) {
  auto sandbox = NewSandbox();
  ASSERT_TRUE(sandbox->Load("test", "function id(x) return x end").ok());
  for (const char* text :
       {R"({"a":[1,2.5,"x",true,{"b":{}}],"big":9007199254740993,"f":1.0,"neg":-0.5})",
        R"([[1],[2,[3]]])", R"("text")", R"(null)", R"(12)"}) {
    Json value = Json::parse(text);
    auto back = sandbox->Call("id", "id", "", {&value});
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    EXPECT_EQ(JsonText(*back), JsonText(value)) << text;
  }
}

TEST(LuaSandboxTest, ValuesThatCannotBeStoredAreRefusedWithTheirPath) {
  auto sandbox = NewSandbox();
  ASSERT_TRUE(sandbox
                  ->Load("test", R"(
    function fn() return { a = { b = function() end } } end
    function cycle() local t = {} t.self = t return t end
    function nan() return { x = 0/0 } end
    function holes() return { items = { [1] = 1, [3] = 3 } } end
    function mixed() return { 1, x = 2 } end
    function meta() return setmetatable({}, {}) end
    function bytes() return "\255" end
  )")
                  .ok());
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"fn", "result.a.b: a function cannot be stored"},
      {"cycle", "result.self: a table reached twice"},
      {"nan", "result.x: NaN and infinities cannot be stored"},
      {"holes", "result.items: an array must have the keys 1..n"},
      {"mixed", "result: a table must have only string keys"},
      {"meta", "result: a table with a metatable cannot be stored"},
      {"bytes", "result: a string is not valid UTF-8"}};
  for (const auto& [function, expected] : cases) {
    auto got = sandbox->Call(function, function, "", {});
    ASSERT_FALSE(got.ok()) << function;
    EXPECT_EQ(got.status().code(), StatusCode::kInvalidArgument) << function;
    EXPECT_NE(got.status().message().find(expected), std::string::npos)
        << function << ": " << got.status().message();
  }
}

TEST(LuaSandboxTest, SameInputsGiveSameOutputsInSeparateStates) {
  const std::string source = R"(
    function f()
      local t = {}
      for i = 1, 200 do t["k" .. (i * 7919 % 1000)] = i end
      local out = {}
      for k, v in pairs(t) do out[#out + 1] = k end
      return table.concat(out, ",")
    end)";
  auto first = RunF(source);
  auto second = RunF(source);
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ(*first, *second);
}

}  // namespace
}  // namespace cairn::events::projection
