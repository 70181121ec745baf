// ProjectionEngine: a projection's states equal a fold computed here in C++ over random events.
#include "src/events/projection/projection_engine.h"

#include <gtest/gtest.h>

#include <map>
#include <random>

namespace cairn::events::projection {
namespace {

using Json = nlohmann::json;

struct Generated {
  std::vector<v1::RecordedEvent> events;
};

// Random events over a few streams: Deposited/Withdrawn with an amount and maybe a customer,
// and Noted events with non-JSON data.
std::vector<v1::RecordedEvent> RandomEvents(uint64_t seed, size_t count) {
  std::mt19937_64 random(seed);
  std::map<std::string, uint64_t> versions;
  std::vector<v1::RecordedEvent> events;
  for (size_t i = 0; i < count; ++i) {
    v1::RecordedEvent event;
    const std::string stream = "account-" + std::to_string(random() % 5);
    event.set_stream(stream);
    event.set_version(versions[stream]++);
    event.set_id("00000000-0000-4000-8000-" + std::to_string(100000000000 + i));
    event.mutable_position()->set_revision(2 + i / 3);
    event.mutable_position()->set_index(i % 3);
    const uint64_t kind = random() % 4;
    if (kind == 3) {
      event.set_type("Noted");
      event.set_content_type("text/plain");
      event.set_data("note " + std::to_string(i));
    } else {
      event.set_type(kind == 2 ? "Withdrawn" : "Deposited");
      event.set_content_type("application/json");
      Json data = {{"amount", static_cast<int64_t>(random() % 1000)}};
      if (random() % 3 != 0) data["customer"] = "c" + std::to_string(random() % 4);
      event.set_data(data.dump());
    }
    events.push_back(std::move(event));
  }
  return events;
}

constexpr std::string_view kAccounts = R"lua(
function init() return { count = 0, balance = 0, notes = 0 } end
handlers = {
  Deposited = function(state, event)
    state.count = state.count + 1
    state.balance = state.balance + event.data.amount
    return state
  end,
  -- Modifies in place and returns nothing: the modified state is kept.
  Withdrawn = function(state, event)
    state.count = state.count + 1
    state.balance = state.balance - event.data.amount
  end,
  ["$any"] = function(state, event)
    state.notes = state.notes + #event.data
    return state
  end,
}
)lua";

// Folds `events` through `engine` as the runner does (pages of `page` events), keeping the
// states in a map as storage.
std::map<std::string, std::string> RunEngine(ProjectionEngine* engine,
                                             const std::vector<v1::RecordedEvent>& events,
                                             size_t page, size_t* partitions) {
  std::map<std::string, std::string> stored;
  auto read = [&](const std::string& key) -> Result<std::optional<std::string>> {
    auto it = stored.find(key);
    if (it == stored.end()) return std::optional<std::string>();
    return std::optional<std::string>(it->second);
  };
  *partitions = 0;
  for (size_t i = 0; i < events.size(); ++i) {
    auto outcome = engine->Fold(events[i], read);
    EXPECT_TRUE(outcome.ok()) << outcome.status().ToString();
    if (outcome.ok() && outcome->new_partition) ++*partitions;
    if ((i + 1) % page == 0 || i + 1 == events.size()) {
      for (auto& [key, state] : engine->TakeChanges()) stored[key] = state;
    }
  }
  return stored;
}

TEST(ProjectionEngineTest, PartitionedByStreamEqualsFoldInTheTest) {
  for (uint64_t seed = 1; seed <= 5; ++seed) {
    const auto events = RandomEvents(seed, 400);
    struct Account {
      int64_t count = 0, balance = 0, notes = 0;
    };
    std::map<std::string, Account> expected;
    for (const auto& event : events) {
      Account& account = expected[event.stream()];
      if (event.type() == "Noted") {
        account.notes += static_cast<int64_t>(event.data().size());
        continue;
      }
      const int64_t amount = Json::parse(event.data())["amount"].get<int64_t>();
      ++account.count;
      account.balance += event.type() == "Deposited" ? amount : -amount;
    }
    auto engine = ProjectionEngine::Compile(
        "accounts", std::string(kAccounts) + "\npartition_by = \"stream\"\n");
    ASSERT_TRUE(engine.ok()) << engine.status().ToString();
    size_t partitions = 0;
    auto stored = RunEngine(engine->get(), events, 1 + seed * 7, &partitions);
    ASSERT_EQ(stored.size(), expected.size()) << "seed " << seed;
    EXPECT_EQ(partitions, expected.size());
    for (const auto& [stream, account] : expected) {
      Json want = {
          {"count", account.count}, {"balance", account.balance}, {"notes", account.notes}};
      EXPECT_EQ(stored[stream], JsonText(want)) << "seed " << seed << " stream " << stream;
    }
  }
}

TEST(ProjectionEngineTest, PartitionedByKeyFunctionEqualsFoldInTheTest) {
  const auto events = RandomEvents(42, 500);
  std::map<std::string, std::pair<int64_t, std::vector<std::string>>> expected;
  for (const auto& event : events) {
    if (event.type() != "Deposited") continue;
    Json data = Json::parse(event.data());
    if (!data.contains("customer")) continue;  // partition_by returns nil: skipped
    auto& [total, streams] = expected[data["customer"].get<std::string>()];
    total += data["amount"].get<int64_t>();
    streams.push_back(event.stream() + "@" + std::to_string(event.version()));
  }
  auto engine = ProjectionEngine::Compile("customers", R"lua(
    partition_by = function(event) return event.data.customer end
    function init() return { total = 0, seen = {} } end
    handlers = {
      Deposited = function(state, event)
        state.total = state.total + event.data.amount
        state.seen[#state.seen + 1] = event.stream .. "@" .. event.version
        return state
      end,
    }
  )lua");
  ASSERT_TRUE(engine.ok()) << engine.status().ToString();
  size_t partitions = 0;
  auto stored = RunEngine(engine->get(), events, 64, &partitions);
  ASSERT_EQ(stored.size(), expected.size());
  for (const auto& [customer, want] : expected) {
    Json state = Json::parse(stored[customer]);
    EXPECT_EQ(state["total"], want.first) << customer;
    EXPECT_EQ(state["seen"], Json(want.second)) << customer;
  }
}

TEST(ProjectionEngineTest, UnpartitionedHasOneStateUnderTheEmptyKey) {
  const auto events = RandomEvents(7, 100);
  auto engine = ProjectionEngine::Compile("count", R"lua(
    handlers = { ["$any"] = function(state, event) state.n = (state.n or 0) + 1 return state end }
  )lua");
  ASSERT_TRUE(engine.ok()) << engine.status().ToString();
  size_t partitions = 0;
  auto stored = RunEngine(engine->get(), events, 10, &partitions);
  ASSERT_EQ(stored.size(), 1u);
  EXPECT_EQ(stored[""], "{\"n\":100}");
}

TEST(ProjectionEngineTest, FailingHandlerReportsTheErrorAndChangesNothing) {
  auto engine = ProjectionEngine::Compile("boom", R"lua(
    handlers = {
      Deposited = function(state, event)
        state.sum = (state.sum or 0) + event.data.amount
        if event.data.amount == 7 then error("amount 7 is not allowed") end
        return state
      end,
    }
  )lua");
  ASSERT_TRUE(engine.ok()) << engine.status().ToString();
  std::map<std::string, std::string> stored;
  auto read = [&](const std::string&) -> Result<std::optional<std::string>> {
    return std::optional<std::string>();
  };
  v1::RecordedEvent event;
  event.set_stream("s");
  event.set_type("Deposited");
  event.set_data("{\"amount\":5}");
  ASSERT_TRUE(engine->get()->Fold(event, read).ok());
  event.set_data("{\"amount\":7}");
  auto failed = engine->get()->Fold(event, read);
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.status().code(), StatusCode::kAborted);
  EXPECT_EQ(failed.status().message(), "handler 'Deposited': boom:5: amount 7 is not allowed");
  auto changes = engine->get()->TakeChanges();
  EXPECT_EQ(changes[""], "{\"sum\":5}");  // the failed fold's in-place change is not kept
}

TEST(ProjectionEngineTest, RunawayHandlerAndBadStatesAreErrors) {
  SandboxOptions options;
  options.instructions_per_call_max = 100000;
  auto engine = ProjectionEngine::Compile("spin", R"lua(
    handlers = {
      Spin = function(state, event) while true do end end,
      Fn = function(state, event) return { f = function() end } end,
    }
  )lua",
                                          options);
  ASSERT_TRUE(engine.ok()) << engine.status().ToString();
  auto read = [](const std::string&) -> Result<std::optional<std::string>> {
    return std::optional<std::string>();
  };
  v1::RecordedEvent event;
  event.set_type("Spin");
  auto spun = engine->get()->Fold(event, read);
  ASSERT_FALSE(spun.ok());
  EXPECT_EQ(spun.status().code(), StatusCode::kResourceExhausted);
  EXPECT_NE(spun.status().message().find("handler 'Spin': spin:3: instruction limit exceeded"),
            std::string::npos)
      << spun.status().message();
  event.set_type("Fn");
  auto function = engine->get()->Fold(event, read);
  ASSERT_FALSE(function.ok());
  EXPECT_NE(function.status().message().find("result.f: a function cannot be stored"),
            std::string::npos);
  event.set_type("Other");
  auto skipped = engine->get()->Fold(event, read);
  ASSERT_TRUE(skipped.ok());
  EXPECT_FALSE(skipped->folded);
}

TEST(ProjectionEngineTest, MemoryBombAndOversizedStateFaultThePartitionUnchanged) {
  SandboxOptions options;
  options.memory_bytes_max = 8 << 20;
  auto engine = ProjectionEngine::Compile("bomb", R"lua(
    handlers = {
      Bomb = function(state, event)
        local t = {}
        for i = 1, 1e9 do t[i] = string.rep("x", 100) .. i end
      end,
      Grow = function(state, event) state.blob = string.rep("y", 2 * 1024 * 1024) return state end,
      Count = function(state, event) state.n = (state.n or 0) + 1 return state end,
    }
  )lua",
                                          options);
  ASSERT_TRUE(engine.ok()) << engine.status().ToString();
  auto read = [](const std::string&) -> Result<std::optional<std::string>> {
    return std::optional<std::string>();
  };
  v1::RecordedEvent event;
  event.set_type("Count");
  ASSERT_TRUE(engine->get()->Fold(event, read).ok());
  event.set_type("Bomb");
  auto bomb = engine->get()->Fold(event, read);
  ASSERT_FALSE(bomb.ok());
  EXPECT_EQ(bomb.status().code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(bomb.status().message(), "handler 'Bomb': memory limit exceeded (8388608 bytes)");
  event.set_type("Grow");
  auto grow = engine->get()->Fold(event, read);
  ASSERT_FALSE(grow.ok());
  EXPECT_EQ(grow.status().code(), StatusCode::kResourceExhausted);
  EXPECT_NE(grow.status().message().find("more than the limit of 1048576"), std::string::npos)
      << grow.status().message();
  EXPECT_EQ(engine->get()->TakeChanges()[""], "{\"n\":1}");
}

TEST(ProjectionEngineTest, CompileErrorsArePrecise) {
  auto syntax =
      ProjectionEngine::Compile("bad", "handlers = {\n  X = function(s, e) return s +\nend }");
  ASSERT_FALSE(syntax.ok());
  EXPECT_EQ(syntax.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(syntax.status().message().find("projections: bad:3:"), std::string::npos)
      << syntax.status().message();
  auto no_handlers = ProjectionEngine::Compile("none", "x = 1");
  ASSERT_FALSE(no_handlers.ok());
  EXPECT_NE(no_handlers.status().message().find("global table 'handlers'"), std::string::npos);
  auto partition = ProjectionEngine::Compile("p", "handlers = {} partition_by = 'streams'");
  ASSERT_FALSE(partition.ok());
  EXPECT_NE(partition.status().message().find("'partition_by' must be"), std::string::npos);
  auto name = ProjectionEngine::Compile("a b", "handlers = {}");
  ASSERT_FALSE(name.ok());
  EXPECT_NE(name.status().message().find("may hold only"), std::string::npos);
  SandboxOptions options;
  options.instructions_per_call_max = 10000;
  auto runaway = ProjectionEngine::Compile("loop", "while true do end", options);
  ASSERT_FALSE(runaway.ok());
  EXPECT_NE(runaway.status().message().find("instruction limit exceeded"), std::string::npos);
}

}  // namespace
}  // namespace cairn::events::projection
