// ProjectionRunner: two members apply the same commands and run their runners at different
// moments; both end with the same records, equal to a fold computed here over every event.
#include "src/events/projection/projection_runner.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <random>

#include "src/events/projection/projection_format.h"
#include "src/events/projection/projection_limits.h"
#include "src/mvcc/kv_test_util.h"

namespace cairn::events::projection {
namespace {

using Json = nlohmann::json;
using storage::testing::EngineKind;

constexpr std::string_view kSource = R"lua(
partition_by = "stream"
function init() return { count = 0, sum = 0 } end
handlers = {
  Added = function(state, event)
    state.count = state.count + 1
    state.sum = state.sum + event.data.n
    return state
  end,
}
)lua";

// One member: the state machines over its own engine, applying commands one batch each.
class Member {
 public:
  explicit Member(EngineKind kind) : store_(kind) { Open(); }

  void Open() {
    runner_.reset();
    auto opened = EventState::Open(store_.engine(), store_.kv());
    CAIRN_CHECK_OK(opened.status());
    events_ = std::move(*opened);
    definitions_ = std::make_unique<ProjectionDefinitions>(store_.engine());
    runner_ =
        std::make_unique<ProjectionRunner>(store_.engine(), events_.get(), definitions_.get());
    // As ProjectionsService does: a scavenge waits for this member's runner.
    events_->SetBeforeScavenge([runner = runner_.get()] { return runner->CatchUp(); });
  }
  void Restart() {
    runner_.reset();
    definitions_.reset();
    events_.reset();
    store_.Reopen();
    Open();
  }

  Status Apply(const command::Command& command) {
    auto batch = store_.engine()->NewWriteBatch();
    Status status;
    switch (command.request_case()) {
      case command::Command::kEventsScavenge: {  // as the applier: its own batch, after the hook
        CAIRN_CHECK_OK(events_->PrepareScavenge());
        status = events_->ApplyScavenge(batch.get(), command.events_scavenge(), &scavenged_);
        total_scavenged_ += scavenged_.events_removed();
        break;
      }
      case command::Command::kEventsAppend: {
        v1::AppendResponse response;
        status = events_->ApplyAppend(batch.get(), command.events_append(), &response, nullptr);
        break;
      }
      case command::Command::kEventsSetMetadata: {
        v1::SetStreamMetadataResponse response;
        status = events_->ApplySetMetadata(batch.get(), command.events_set_metadata(), &response);
        break;
      }
      default: {
        v1::ProjectionsChangeResponse response;
        status = definitions_->Apply(batch.get(), command.projections(), &response);
        break;
      }
    }
    if (!status.ok()) {
      EXPECT_EQ(batch->Count(), 0u) << "a failed command left writes in the batch";
      store_.kv()->OnBatchAborted();
      events_->OnBatchAborted();
      return status;
    }
    store_.kv()->FinishBatch(batch.get());
    CAIRN_CHECK_OK(store_.engine()->Write(batch.get()));
    store_.kv()->OnBatchWritten();
    events_->OnBatchWritten();
    return status;
  }

  // Runs passes until nothing is left to do.
  void Drain() {
    for (int pass = 0; pass < 10000; ++pass) {
      auto worked = runner_->RunOnce();
      ASSERT_TRUE(worked.ok()) << worked.status().ToString();
      if (!*worked) return;
    }
    FAIL() << "the runner never finished";
  }
  void RunOnce() { ASSERT_TRUE(runner_->RunOnce().ok()); }

  // Every runner record ("j"), key -> value.
  std::map<std::string, std::string> RunnerRecords() {
    std::map<std::string, std::string> out;
    const std::string lower(1, format::kRunnerTag);
    const std::string upper(1, static_cast<char>(format::kRunnerTag + 1));
    storage::ReadOptions options;
    options.lower_bound = lower;
    options.upper_bound = upper;
    auto it = store_.engine()->NewIterator(options, storage::Family::kEvents);
    for (it->Seek(lower); it->Valid(); it->Next()) out[std::string(it->key())] = it->value();
    return out;
  }

  ProjectionDefinitions* definitions() { return definitions_.get(); }
  uint64_t total_scavenged() const { return total_scavenged_; }
  storage::Engine* engine() { return store_.engine(); }

 private:
  mvcc::testing::Store store_;
  std::unique_ptr<EventState> events_;
  std::unique_ptr<ProjectionDefinitions> definitions_;
  std::unique_ptr<ProjectionRunner> runner_;
  v1::ScavengeResponse scavenged_;
  uint64_t total_scavenged_ = 0;
};

command::Command Append(const std::string& stream, int64_t n, uint64_t id) {
  command::Command command;
  command.mutable_events_append()->set_created_unix_nanos(1'700'000'000'000'000'000 +
                                                          static_cast<int64_t>(id));
  v1::AppendRequest* request = command.mutable_events_append()->mutable_request();
  request->set_stream(stream);
  v1::NewEvent* event = request->add_events();
  char uuid[37];
  std::snprintf(uuid, sizeof(uuid), "00000000-0000-4000-8000-%012llu",
                static_cast<unsigned long long>(id));
  event->set_id(uuid);
  event->set_type(id % 5 == 0 ? "Other" : "Added");
  event->set_data(Json{{"n", n}}.dump());
  return command;
}

command::Command Projections(const std::function<void(v1::ProjectionsCommand*)>& fill) {
  command::Command command;
  fill(command.mutable_projections());
  return command;
}

TEST(ProjectionRunnerTest, MembersThatRunAtDifferentMomentsEndWithTheSameStates) {
  Member a(EngineKind::kMemory);
  Member b(EngineKind::kRocksDb);
  std::vector<command::Command> commands;
  commands.push_back(Projections([](v1::ProjectionsCommand* c) {
    c->mutable_create()->set_name("sums");
    c->mutable_create()->set_source(std::string(kSource));
  }));
  std::mt19937_64 random(7);
  std::map<std::string, std::pair<int64_t, int64_t>> expected;  // stream -> (count, sum)
  for (uint64_t id = 1; id <= 400; ++id) {
    const std::string stream = "s-" + std::to_string(random() % 7);
    const int64_t n = static_cast<int64_t>(random() % 100);
    commands.push_back(Append(stream, n, id));
    if (id % 5 != 0) {
      expected[stream].first += 1;
      expected[stream].second += n;
    }
    if (id == 120) {  // hides events from reads; projections still fold them
      command::Command truncate;
      truncate.mutable_events_set_metadata()->set_stream(stream);
      truncate.mutable_events_set_metadata()->mutable_metadata()->set_truncate_before(1000);
      commands.push_back(truncate);
    }
    if (id == 200) {
      commands.push_back(
          Projections([](v1::ProjectionsCommand* c) { c->mutable_stop()->set_name("sums"); }));
    }
    if (id == 260) {
      commands.push_back(
          Projections([](v1::ProjectionsCommand* c) { c->mutable_start()->set_name("sums"); }));
    }
    if (id == 300) {
      commands.push_back(
          Projections([](v1::ProjectionsCommand* c) { c->mutable_reset()->set_name("sums"); }));
    }
  }
  for (size_t i = 0; i < commands.size(); ++i) {
    ASSERT_TRUE(a.Apply(commands[i]).ok()) << i;
    ASSERT_TRUE(b.Apply(commands[i]).ok()) << i;
    a.RunOnce();
    if (i % 37 == 0) b.Drain();
    if (i == 250) b.Restart();  // resumes from its persisted checkpoint
  }
  a.Drain();
  b.Drain();
  const auto records = a.RunnerRecords();
  EXPECT_EQ(records, b.RunnerRecords());
  ASSERT_EQ(records.size(), expected.size() + 1);  // the partitions and the progress
  for (const auto& [stream, want] : expected) {
    EXPECT_EQ(records.at(format::StateKey("sums", stream)),
              JsonText(Json{{"count", want.first}, {"sum", want.second}}))
        << stream;
  }
  auto definition = a.definitions()->GetProjection("sums");
  ASSERT_TRUE(definition.ok() && definition->has_value());
  auto info = DescribeProjection(a.engine(), **definition);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->status(), v1::RUNNING);
  EXPECT_EQ(info->events_seen(), 400u);
  EXPECT_EQ(info->events_folded(), 320u);
  EXPECT_EQ(info->partitions(), expected.size());
  EXPECT_EQ(info->checkpoint().SerializeAsString(), info->head().SerializeAsString());

  // Deleting the projection removes its records on every member.
  auto remove =
      Projections([](v1::ProjectionsCommand* c) { c->mutable_delete_()->set_name("sums"); });
  ASSERT_TRUE(a.Apply(remove).ok());
  ASSERT_TRUE(b.Apply(remove).ok());
  a.Drain();
  b.Drain();
  EXPECT_TRUE(a.RunnerRecords().empty());
  EXPECT_TRUE(b.RunnerRecords().empty());
}

command::Command Scavenge() {
  command::Command command;
  command.mutable_events_scavenge()->set_now_unix_nanos(1'800'000'000'000'000'000);
  return command;
}

// A scavenge never changes what a projection folds, whichever member scavenged when: a
// projection defined before it (even stopped, even lagging far behind) folds the removed
// events first; one defined after it never sees them, on any member.
TEST(ProjectionRunnerTest, ScavengeNeverChangesWhatProjectionsFold) {
  Member a(EngineKind::kMemory);
  Member b(EngineKind::kRocksDb);
  auto create = [](const std::string& name) {
    return Projections([name](v1::ProjectionsCommand* c) {
      c->mutable_create()->set_name(name);
      c->mutable_create()->set_source(std::string(kSource));
    });
  };
  std::vector<command::Command> commands;
  commands.push_back(create("early"));
  std::mt19937_64 random(11);
  using Sums = std::map<std::string, std::pair<int64_t, int64_t>>;  // stream -> (count, sum)
  Sums early;
  std::map<std::string, std::vector<std::pair<uint64_t, int64_t>>> streams;  // (id, n) in order
  std::vector<std::pair<uint64_t, int64_t>> removed_first;
  for (uint64_t id = 1; id <= 300; ++id) {
    const std::string stream = "s-" + std::to_string(random() % 5);
    const int64_t n = static_cast<int64_t>(random() % 100);
    commands.push_back(Append(stream, n, id));
    streams[stream].emplace_back(id, n);
    if (id % 5 != 0) {
      early[stream].first += 1;
      early[stream].second += n;
    }
    if (id == 60) {  // s-1 keeps its last 2 events; the others stay hidden from now on
      command::Command limit;
      limit.mutable_events_set_metadata()->set_stream("s-1");
      limit.mutable_events_set_metadata()->mutable_metadata()->set_max_count(2);
      commands.push_back(limit);
    }
    if (id == 100) {
      commands.push_back(
          Projections([](v1::ProjectionsCommand* c) { c->mutable_stop()->set_name("early"); }));
    }
    if (id == 150) {
      // Removes s-1's events but its last 2: "late", defined after, never sees them.
      commands.push_back(Scavenge());
      commands.push_back(create("late"));
      const auto& s1 = streams["s-1"];
      for (size_t i = 0; i + 2 < s1.size(); ++i) removed_first.push_back(s1[i]);
      continue;
    }
    if (id == 200) {
      commands.push_back(
          Projections([](v1::ProjectionsCommand* c) { c->mutable_start()->set_name("early"); }));
    }
  }
  Sums late = early;  // every event but those the first scavenge removed
  for (const auto& [id, n] : removed_first) {
    if (id % 5 == 0) continue;
    late["s-1"].first -= 1;
    late["s-1"].second -= n;
  }
  ASSERT_GT(removed_first.size(), 5u);
  commands.push_back(Scavenge());  // removes s-1's events after id 150 but its last 2
  for (size_t i = 0; i < commands.size(); ++i) {
    ASSERT_TRUE(a.Apply(commands[i]).ok()) << i;
    ASSERT_TRUE(b.Apply(commands[i]).ok()) << i;
    a.RunOnce();              // a keeps up (almost)
    if (i == 0) b.RunOnce();  // b's runner otherwise lags until the end
  }
  a.Drain();
  b.Drain();
  EXPECT_GT(a.total_scavenged(), 50u);
  EXPECT_EQ(a.total_scavenged(), b.total_scavenged());
  const auto records = a.RunnerRecords();
  EXPECT_EQ(records, b.RunnerRecords());
  for (const auto& [name, want] : {std::pair<std::string, Sums>{"early", early}, {"late", late}}) {
    for (const auto& [stream, sums] : want) {
      ASSERT_TRUE(records.contains(format::StateKey(name, stream))) << name << " " << stream;
      EXPECT_EQ(records.at(format::StateKey(name, stream)),
                JsonText(Json{{"count", sums.first}, {"sum", sums.second}}))
          << name << " " << stream;
    }
  }
}

TEST(ProjectionRunnerTest, DefinitionCommandsFailWithoutWritingAndEnforceLimits) {
  Member member(EngineKind::kMemory);
  auto create = [](const std::string& name) {
    return Projections([name](v1::ProjectionsCommand* c) {
      c->mutable_create()->set_name(name);
      c->mutable_create()->set_source("handlers = {}");
    });
  };
  ASSERT_TRUE(member.Apply(create("p0")).ok());
  Status twice = member.Apply(create("p0"));
  EXPECT_EQ(twice.code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(twice.message(), "projections: projection 'p0' already exists");
  Status missing = member.Apply(
      Projections([](v1::ProjectionsCommand* c) { c->mutable_reset()->set_name("nope"); }));
  EXPECT_EQ(missing.code(), StatusCode::kNotFound);
  EXPECT_EQ(missing.message(), "projections: projection 'nope' not found");
  Status empty = member.Apply(Projections([](v1::ProjectionsCommand*) {}));
  EXPECT_EQ(empty.code(), StatusCode::kInvalidArgument);
  for (size_t i = 1; i < ProjectionLimits::kProjectionsMax; ++i) {
    ASSERT_TRUE(member.Apply(create("p" + std::to_string(i))).ok()) << i;
  }
  Status full = member.Apply(create("one-too-many"));
  EXPECT_EQ(full.code(), StatusCode::kResourceExhausted);
  Status bad_version = member.Apply(Projections([](v1::ProjectionsCommand* c) {
    c->mutable_set_upcaster()->set_event_type("X");
    c->mutable_set_upcaster()->set_from_schema_version(0);
    c->mutable_set_upcaster()->set_source("function upcast(d) return d end");
  }));
  EXPECT_EQ(bad_version.code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace cairn::events::projection
