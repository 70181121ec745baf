#include "src/events/event_state.h"

#include <gtest/gtest.h>

#include "src/mvcc/kv_test_util.h"

namespace cairn::events {
namespace {

using mvcc::testing::EngineKind;

constexpr int64_t kNow = 1'700'000'000'000'000'000;

std::string Uuid(int n) {
  char text[37];
  std::snprintf(text, sizeof(text), "00000000-0000-4000-8000-%012d", n);
  return text;
}

v1::NewEvent Event(int id, std::string type = "Created", std::string data = "{}") {
  v1::NewEvent event;
  event.set_id(Uuid(id));
  event.set_type(std::move(type));
  event.set_data(std::move(data));
  return event;
}

class EventStateTest : public ::testing::TestWithParam<EngineKind> {
 protected:
  EventStateTest() : store_(GetParam()) { Attach(); }

  void Attach() {
    auto opened = EventState::Open(store_.engine(), store_.kv());
    CAIRN_CHECK_OK(opened.status());
    events_ = std::move(*opened);
  }
  void Reopen() {
    store_.Reopen();
    Attach();
  }

  // Applies `apply` as one batch; on success both state machines publish it.
  template <typename F>
  Status Apply(F&& apply) {
    auto batch = store_.engine()->NewWriteBatch();
    Status status = apply(batch.get());
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

  Status Append(const std::string& stream, v1::ExpectedKind kind, uint64_t expected,
                std::vector<v1::NewEvent> events, v1::AppendResponse* resp,
                std::vector<etcdserverpb::RequestOp> ops = {}, int64_t created = kNow) {
    command::EventsAppend command;
    command.set_created_unix_nanos(created);
    v1::AppendRequest* req = command.mutable_request();
    req->set_stream(stream);
    req->set_expected_kind(kind);
    req->set_expected_version(expected);
    for (auto& event : events) *req->add_events() = std::move(event);
    for (auto& op : ops) *req->add_kv_ops() = std::move(op);
    return Apply(
        [&](storage::WriteBatch* b) { return events_->ApplyAppend(b, command, resp, nullptr); });
  }

  // Appends and expects success; returns the first version.
  uint64_t MustAppend(const std::string& stream, std::vector<v1::NewEvent> events,
                      int64_t created = kNow) {
    v1::AppendResponse resp;
    Status status = Append(stream, v1::ANY, 0, std::move(events), &resp, {}, created);
    EXPECT_TRUE(status.ok()) << status.ToString();
    EXPECT_TRUE(resp.has_success());
    return resp.success().first_version();
  }

  v1::ReadStreamResponse Read(const std::string& stream, uint64_t from = 0, uint32_t count = 0,
                              bool backwards = false, Status* status_out = nullptr,
                              int64_t now = kNow) {
    v1::ReadStreamRequest req;
    req.set_stream(stream);
    req.set_from_version(from);
    req.set_count(count);
    if (backwards) req.set_direction(v1::BACKWARDS);
    v1::ReadStreamResponse resp;
    Status status = events_->ReadStream(req, now, &resp);
    if (status_out != nullptr) {
      *status_out = status;
    } else {
      EXPECT_TRUE(status.ok()) << status.ToString();
    }
    return resp;
  }

  static std::vector<uint64_t> Versions(const v1::ReadStreamResponse& resp) {
    std::vector<uint64_t> out;
    for (const auto& e : resp.events()) out.push_back(e.version());
    return out;
  }

  Status Delete(const std::string& stream, bool hard, v1::DeleteStreamResponse* resp) {
    v1::DeleteStreamRequest req;
    req.set_stream(stream);
    req.set_hard(hard);
    return Apply([&](storage::WriteBatch* b) { return events_->ApplyDeleteStream(b, req, resp); });
  }

  Status SetMetadata(const std::string& stream, const v1::StreamMetadata& metadata) {
    v1::SetStreamMetadataRequest req;
    req.set_stream(stream);
    *req.mutable_metadata() = metadata;
    v1::SetStreamMetadataResponse resp;
    return Apply([&](storage::WriteBatch* b) { return events_->ApplySetMetadata(b, req, &resp); });
  }

  v1::VerifyChainResponse Verify() {
    v1::VerifyChainResponse resp;
    CAIRN_CHECK_OK(events_->VerifyChain(&resp));
    return resp;
  }

  mvcc::testing::Store store_;
  std::unique_ptr<EventState> events_;
};

TEST_P(EventStateTest, AppendAssignsVersionsAndOneRevisionPerAppend) {
  const int64_t before = store_.kv()->CurrentRevision();
  v1::AppendResponse resp;
  ASSERT_TRUE(Append("order-1", v1::NO_STREAM, 0, {Event(1), Event(2), Event(3)}, &resp).ok());
  ASSERT_TRUE(resp.has_success());
  EXPECT_EQ(resp.success().first_version(), 0u);
  EXPECT_EQ(resp.success().current_version(), 2u);
  EXPECT_EQ(resp.success().position().revision(), static_cast<uint64_t>(before + 1));
  EXPECT_EQ(resp.header().revision(), before + 1);
  EXPECT_EQ(store_.kv()->CurrentRevision(), before + 1);

  ASSERT_TRUE(Append("order-1", v1::EXACT, 2, {Event(4, "Shipped")}, &resp).ok());
  ASSERT_TRUE(resp.has_success());
  EXPECT_EQ(resp.success().first_version(), 3u);
  EXPECT_EQ(store_.kv()->CurrentRevision(), before + 2);

  v1::ReadStreamResponse read = Read("order-1");
  EXPECT_EQ(Versions(read), (std::vector<uint64_t>{0, 1, 2, 3}));
  EXPECT_TRUE(read.end_of_stream());
  EXPECT_EQ(read.current_version(), 3u);
  EXPECT_EQ(read.events(0).id(), Uuid(1));
  EXPECT_EQ(read.events(3).type(), "Shipped");
  EXPECT_EQ(read.events(0).content_type(), "application/json");
  EXPECT_EQ(read.events(2).position().index(), 2u);
  EXPECT_EQ(read.events(0).created_unix_nanos(), kNow);

  v1::ReadStreamResponse page = Read("order-1", 1, 2);
  EXPECT_EQ(Versions(page), (std::vector<uint64_t>{1, 2}));
  EXPECT_FALSE(page.end_of_stream());
  EXPECT_EQ(page.next_version(), 3u);
  EXPECT_EQ(Versions(Read("order-1", 2, 0, /*backwards=*/true)), (std::vector<uint64_t>{2, 1, 0}));
  EXPECT_EQ(events_->EventCount(), 4u);
}

TEST_P(EventStateTest, ExpectedVersionMismatchIsAnAnswerAndWritesNothing) {
  MustAppend("a-1", {Event(1), Event(2)});
  const int64_t revision = store_.kv()->CurrentRevision();
  v1::AppendResponse resp;
  for (auto [kind, expected] : std::vector<std::pair<v1::ExpectedKind, uint64_t>>{
           {v1::EXACT, 0}, {v1::EXACT, 5}, {v1::NO_STREAM, 0}}) {
    ASSERT_TRUE(Append("a-1", kind, expected, {Event(10)}, &resp).ok());
    ASSERT_TRUE(resp.has_wrong_expected_version());
    EXPECT_TRUE(resp.wrong_expected_version().stream_exists());
    EXPECT_EQ(resp.wrong_expected_version().current_version(), 1u);
  }
  ASSERT_TRUE(Append("b-1", v1::STREAM_EXISTS, 0, {Event(11)}, &resp).ok());
  ASSERT_TRUE(resp.has_wrong_expected_version());
  EXPECT_FALSE(resp.wrong_expected_version().stream_exists());
  ASSERT_TRUE(Append("b-1", v1::EXACT, 0, {Event(12)}, &resp).ok());
  ASSERT_TRUE(resp.has_wrong_expected_version());
  EXPECT_EQ(store_.kv()->CurrentRevision(), revision);
  EXPECT_EQ(events_->EventCount(), 2u);
  Status status;
  Read("b-1", 0, 0, false, &status);
  EXPECT_EQ(status.code(), StatusCode::kNotFound) << status.ToString();
}

TEST_P(EventStateTest, SameExpectedVersionInOneBatchHasOneWinner) {
  MustAppend("c-1", {Event(1)});
  // Two writers that both read version 0 race; the log orders them in one apply batch.
  auto batch = store_.engine()->NewWriteBatch();
  std::vector<v1::AppendResponse> responses(5);
  for (int i = 0; i < 5; ++i) {
    command::EventsAppend command;
    command.mutable_request()->set_stream("c-1");
    command.mutable_request()->set_expected_kind(v1::EXACT);
    command.mutable_request()->set_expected_version(0);
    *command.mutable_request()->add_events() = Event(100 + i);
    ASSERT_TRUE(events_->ApplyAppend(batch.get(), command, &responses[i], nullptr).ok());
  }
  store_.kv()->FinishBatch(batch.get());
  CAIRN_CHECK_OK(store_.engine()->Write(batch.get()));
  store_.kv()->OnBatchWritten();
  events_->OnBatchWritten();
  EXPECT_TRUE(responses[0].has_success());
  for (int i = 1; i < 5; ++i) {
    ASSERT_TRUE(responses[i].has_wrong_expected_version()) << i;
    EXPECT_EQ(responses[i].wrong_expected_version().current_version(), 1u);
  }
  EXPECT_EQ(Versions(Read("c-1")), (std::vector<uint64_t>{0, 1}));
}

TEST_P(EventStateTest, IdempotentRetryReturnsTheOriginalResult) {
  v1::AppendResponse first;
  ASSERT_TRUE(Append("d-1", v1::NO_STREAM, 0, {Event(1), Event(2)}, &first).ok());
  MustAppend("d-1", {Event(3)});
  const int64_t revision = store_.kv()->CurrentRevision();
  // The response of the first append was lost; the client retries it, much later.
  v1::AppendResponse retry;
  ASSERT_TRUE(Append("d-1", v1::NO_STREAM, 0, {Event(1), Event(2)}, &retry).ok());
  ASSERT_TRUE(retry.has_success());
  EXPECT_TRUE(retry.success().idempotent_replay());
  EXPECT_EQ(retry.success().first_version(), 0u);
  EXPECT_EQ(retry.success().current_version(), 1u);
  EXPECT_EQ(retry.success().position().revision(), first.success().position().revision());
  ASSERT_TRUE(Append("d-1", v1::ANY, 0, {Event(3)}, &retry).ok());
  EXPECT_TRUE(retry.success().idempotent_replay());
  EXPECT_EQ(retry.success().first_version(), 2u);
  EXPECT_EQ(store_.kv()->CurrentRevision(), revision);
  EXPECT_EQ(events_->EventCount(), 3u);
  // A retry whose expected version contradicts where the events went.
  ASSERT_TRUE(Append("d-1", v1::EXACT, 5, {Event(3)}, &retry).ok());
  EXPECT_TRUE(retry.has_wrong_expected_version());
  // Ids reused in another shape or another stream are refused.
  EXPECT_EQ(Append("d-1", v1::ANY, 0, {Event(2), Event(1)}, &retry).code(),
            StatusCode::kAlreadyExists);
  EXPECT_EQ(Append("d-1", v1::ANY, 0, {Event(9), Event(1)}, &retry).code(),
            StatusCode::kAlreadyExists);
  EXPECT_EQ(Append("e-1", v1::ANY, 0, {Event(1)}, &retry).code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(events_->EventCount(), 3u);
}

TEST_P(EventStateTest, IdempotentRetryInTheSameBatchAndWithOldIdEntries) {
  // The original and its retry applied in one engine batch (the retry sees the original
  // only through the batch).
  command::EventsAppend command;
  command.set_created_unix_nanos(kNow);
  command.mutable_request()->set_stream("same-batch");
  *command.mutable_request()->add_events() = Event(70);
  *command.mutable_request()->add_events() = Event(71);
  v1::AppendResponse original;
  v1::AppendResponse retry;
  ASSERT_TRUE(Apply([&](storage::WriteBatch* b) -> Status {
                CAIRN_RETURN_IF_ERROR(events_->ApplyAppend(b, command, &original, nullptr));
                return events_->ApplyAppend(b, command, &retry, nullptr);
              }).ok());
  ASSERT_TRUE(retry.has_success());
  EXPECT_TRUE(retry.success().idempotent_replay());
  EXPECT_EQ(retry.success().position().revision(), original.success().position().revision());

  // An id entry in the format before positions were kept in it (stream id + version only):
  // the retry finds the position in the event record.
  auto batch = store_.engine()->NewWriteBatch();
  std::string value;
  ASSERT_TRUE(
      *batch->Get(storage::Family::kEventIds, format::IdKey(*format::ParseUuid(Uuid(70))), &value));
  ASSERT_EQ(value.size(), 28u);
  batch->Put(storage::Family::kEventIds, format::IdKey(*format::ParseUuid(Uuid(70))),
             value.substr(0, 16));
  ASSERT_TRUE(store_.engine()->Write(batch.get()).ok());
  ASSERT_TRUE(Append("same-batch", v1::ANY, 0, {Event(70), Event(71)}, &retry).ok());
  ASSERT_TRUE(retry.has_success());
  EXPECT_TRUE(retry.success().idempotent_replay());
  EXPECT_EQ(retry.success().position().revision(), original.success().position().revision());
  EXPECT_EQ(events_->EventCount(), 2u);
}

TEST_P(EventStateTest, IdEntriesOfFormatTwoMoveToTheirFamily) {
  std::vector<v1::NewEvent> events;
  for (int i = 0; i < 25; ++i) events.push_back(Event(300 + i));
  v1::AppendResponse original;
  ASSERT_TRUE(Append("moved", v1::NO_STREAM, 0, events, &original).ok());
  ASSERT_TRUE(original.has_success());

  // Format 2: the id entries in the events family.
  auto ids_in = [&](storage::Family family) {
    int found = 0;
    for (int i = 0; i < 25; ++i) {
      std::string key = format::IdKey(*format::ParseUuid(Uuid(300 + i)));
      if (*store_.engine()->Get(storage::ReadOptions{}, family, key, nullptr)) ++found;
    }
    return found;
  };
  {
    auto batch = store_.engine()->NewWriteBatch();
    for (int i = 0; i < 25; ++i) {
      std::string key = format::IdKey(*format::ParseUuid(Uuid(300 + i)));
      std::string value;
      ASSERT_TRUE(
          *store_.engine()->Get(storage::ReadOptions{}, storage::Family::kEventIds, key, &value));
      batch->Put(storage::Family::kEvents, key, value);
      batch->Delete(storage::Family::kEventIds, key);
    }
    ASSERT_TRUE(store_.engine()->Write(batch.get()).ok());
  }
  ASSERT_EQ(ids_in(storage::Family::kEvents), 25);
  ASSERT_EQ(ids_in(storage::Family::kEventIds), 0);

  ASSERT_TRUE(MoveIdEntriesToIdFamily(store_.engine()).ok());
  EXPECT_EQ(ids_in(storage::Family::kEvents), 0);
  EXPECT_EQ(ids_in(storage::Family::kEventIds), 25);
  // Rerunning it (a crash before the version was written) changes nothing.
  ASSERT_TRUE(MoveIdEntriesToIdFamily(store_.engine()).ok());
  EXPECT_EQ(ids_in(storage::Family::kEventIds), 25);
  // The events family lost only the id entries: the stream reads the same.
  EXPECT_EQ(Read("moved").events_size(), 25);

  v1::AppendResponse retry;
  ASSERT_TRUE(Append("moved", v1::NO_STREAM, 0, events, &retry).ok());
  ASSERT_TRUE(retry.has_success());
  EXPECT_TRUE(retry.success().idempotent_replay());
  EXPECT_EQ(retry.success().position().revision(), original.success().position().revision());
  EXPECT_EQ(events_->EventCount(), 25u);
}

TEST_P(EventStateTest, OutboxCommitsWithTheEventsAtTheirRevision) {
  etcdserverpb::RequestOp put;
  put.mutable_request_put()->set_key("outbox/1");
  put.mutable_request_put()->set_value("pending");
  v1::AppendResponse resp;
  ASSERT_TRUE(Append("f-1", v1::ANY, 0, {Event(1)}, &resp, {put}).ok());
  ASSERT_TRUE(resp.has_success());
  etcdserverpb::RangeRequest range;
  range.set_key("outbox/1");
  etcdserverpb::RangeResponse got;
  ASSERT_TRUE(store_.kv()->Range(range, &got).ok());
  ASSERT_EQ(got.kvs_size(), 1);
  EXPECT_EQ(static_cast<uint64_t>(got.kvs(0).mod_revision()), resp.success().position().revision());

  // A failing outbox op fails the whole append.
  etcdserverpb::RequestOp bad;
  bad.mutable_request_put()->set_key("");
  const int64_t revision = store_.kv()->CurrentRevision();
  EXPECT_FALSE(Append("f-1", v1::ANY, 0, {Event(2)}, &resp, {bad}).ok());
  etcdserverpb::RequestOp range_op;
  range_op.mutable_request_range()->set_key("x");
  EXPECT_EQ(Append("f-1", v1::ANY, 0, {Event(3)}, &resp, {range_op}).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(store_.kv()->CurrentRevision(), revision);
  EXPECT_EQ(Versions(Read("f-1")), (std::vector<uint64_t>{0}));
}

TEST_P(EventStateTest, BadInputIsRefusedPrecisely) {
  v1::AppendResponse resp;
  v1::NewEvent bad_id = Event(1);
  bad_id.set_id("not-a-uuid");
  Status status = Append("g-1", v1::ANY, 0, {bad_id}, &resp);
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("is not a UUID"), std::string::npos) << status.ToString();
  EXPECT_EQ(Append("g-1", v1::ANY, 0, {Event(1), Event(1)}, &resp).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(Append("g-1", v1::ANY, 0, {Event(1, "")}, &resp).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Append("g-1", v1::ANY, 0,
                   {Event(1, "Big", std::string(EventLimits::kEventBytesMax + 1, 'x'))}, &resp)
                .code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(Append("$ce-g", v1::ANY, 0, {Event(1)}, &resp).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Append("", v1::ANY, 0, {Event(1)}, &resp).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Append("g-1", v1::ANY, 0, {}, &resp).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Append("g-1", static_cast<v1::ExpectedKind>(9), 0, {Event(1)}, &resp).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(events_->EventCount(), 0u);
  Read("nope", 0, 0, false, &status);
  EXPECT_EQ(status.code(), StatusCode::kNotFound);
  Read("$xx-nope", 0, 0, false, &status);
  EXPECT_EQ(status.code(), StatusCode::kNotFound);
}

TEST_P(EventStateTest, SoftDeleteHidesAndNumberingContinues) {
  MustAppend("h-1", {Event(1), Event(2)});
  v1::DeleteStreamResponse deleted;
  ASSERT_TRUE(Delete("h-1", /*hard=*/false, &deleted).ok());
  ASSERT_TRUE(deleted.has_position());
  Status status;
  Read("h-1", 0, 0, false, &status);
  EXPECT_EQ(status.code(), StatusCode::kNotFound);
  v1::AppendResponse resp;
  ASSERT_TRUE(Append("h-1", v1::NO_STREAM, 0, {Event(3)}, &resp).ok());
  ASSERT_TRUE(resp.has_success());
  EXPECT_EQ(resp.success().first_version(), 2u);
  EXPECT_EQ(Versions(Read("h-1")), (std::vector<uint64_t>{2}));
  v1::ReadAllRequest all;
  v1::ReadAllResponse everything;
  ASSERT_TRUE(events_->ReadAll(all, kNow, &everything).ok());
  ASSERT_EQ(everything.events_size(), 1);
  EXPECT_EQ(everything.events(0).version(), 2u);
}

TEST_P(EventStateTest, HardDeleteLeavesATombstone) {
  MustAppend("i-1", {Event(1)});
  v1::DeleteStreamResponse deleted;
  ASSERT_TRUE(Delete("i-1", /*hard=*/true, &deleted).ok());
  v1::AppendResponse resp;
  EXPECT_EQ(Append("i-1", v1::ANY, 0, {Event(2)}, &resp).code(), StatusCode::kFailedPrecondition);
  Status status;
  Read("i-1", 0, 0, false, &status);
  EXPECT_EQ(status.code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(Delete("i-1", /*hard=*/false, &deleted).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(Delete("never", /*hard=*/false, &deleted).code(), StatusCode::kNotFound);
}

TEST_P(EventStateTest, MetadataHidesEventsAtOnce) {
  for (int i = 0; i < 10; ++i)
    MustAppend("j-1", {Event(i + 1)}, kNow - int64_t{10 - i} * 1'000'000'000);
  v1::StreamMetadata metadata;
  metadata.set_max_count(4);
  ASSERT_TRUE(SetMetadata("j-1", metadata).ok());
  EXPECT_EQ(Versions(Read("j-1")), (std::vector<uint64_t>{6, 7, 8, 9}));
  metadata.set_max_count(0);
  metadata.set_truncate_before(8);
  ASSERT_TRUE(SetMetadata("j-1", metadata).ok());
  EXPECT_EQ(Versions(Read("j-1")), (std::vector<uint64_t>{8, 9}));
  metadata.set_truncate_before(0);
  metadata.set_max_age_seconds(3);  // events created 1..10 s before kNow
  ASSERT_TRUE(SetMetadata("j-1", metadata).ok());
  EXPECT_EQ(Versions(Read("j-1")), (std::vector<uint64_t>{8, 9}));
  EXPECT_EQ(Versions(Read("j-1", 0, 0, false, nullptr, kNow + 1'500'000'000)),
            (std::vector<uint64_t>{9}));
  v1::GetStreamMetadataRequest get;
  get.set_stream("j-1");
  v1::GetStreamMetadataResponse got;
  ASSERT_TRUE(events_->GetMetadata(get, &got).ok());
  EXPECT_EQ(got.metadata().max_age_seconds(), 3u);
  EXPECT_EQ(got.current_version(), 9u);
}

TEST_P(EventStateTest, SystemProjectionsReadLikeStreams) {
  MustAppend("order-1", {Event(1, "Created"), Event(2, "Paid")});
  MustAppend("user-1", {Event(3, "Created")});
  MustAppend("order-2", {Event(4, "Created")});
  v1::ReadStreamResponse category = Read("$ce-order");
  ASSERT_EQ(category.events_size(), 3);
  EXPECT_EQ(category.events(0).stream(), "order-1");
  EXPECT_EQ(category.events(2).stream(), "order-2");
  EXPECT_EQ(category.events(2).link_version(), 2u);
  v1::ReadStreamResponse created = Read("$et-Created");
  ASSERT_EQ(created.events_size(), 3);
  EXPECT_EQ(created.events(1).stream(), "user-1");
  std::vector<v1::RecordedEvent> after;
  ASSERT_TRUE(events_->ReadStreamAfter("$et-Created", 0, 10, kNow, &after).ok());
  ASSERT_EQ(after.size(), 2u);
  EXPECT_EQ(after[0].link_version(), 1u);

  v1::ReadAllRequest req;
  req.mutable_filter()->add_stream_prefixes("order-");
  req.mutable_filter()->add_type_prefixes("Cre");
  v1::ReadAllResponse all;
  ASSERT_TRUE(events_->ReadAll(req, kNow, &all).ok());
  ASSERT_EQ(all.events_size(), 2);
  EXPECT_EQ(all.events(1).stream(), "order-2");
}

TEST_P(EventStateTest, SnapshotsAndReadAggregate) {
  MustAppend("k-1", {Event(1), Event(2), Event(3)});
  v1::SaveSnapshotRequest save;
  save.set_stream("k-1");
  save.set_version(1);
  save.set_data("state@1");
  v1::SaveSnapshotResponse saved;
  ASSERT_TRUE(Apply([&](storage::WriteBatch* b) {
                return events_->ApplySaveSnapshot(b, save, &saved);
              }).ok());
  save.set_version(7);
  EXPECT_EQ(Apply([&](storage::WriteBatch* b) {
              return events_->ApplySaveSnapshot(b, save, &saved);
            }).code(),
            StatusCode::kNotFound);
  v1::ReadAggregateRequest req;
  req.set_stream("k-1");
  v1::ReadAggregateResponse resp;
  ASSERT_TRUE(events_->ReadAggregate(req, kNow, &resp).ok());
  EXPECT_EQ(resp.snapshot().data(), "state@1");
  ASSERT_EQ(resp.events_size(), 1);
  EXPECT_EQ(resp.events(0).version(), 2u);
}

TEST_P(EventStateTest, HashChainSurvivesReopenAndDetectsTampering) {
  MustAppend("l-1", {Event(1), Event(2)});
  MustAppend("l-2", {Event(3)});
  Reopen();
  MustAppend("l-1", {Event(4)});
  v1::VerifyChainResponse ok = Verify();
  EXPECT_TRUE(ok.ok()) << ok.reason();
  EXPECT_EQ(ok.events_checked(), 4u);
  v1::ReadStreamResponse read = Read("l-1");
  ASSERT_EQ(read.events_size(), 3);
  EXPECT_EQ(read.events(0).hash().size(), 32u);

  // Change the data of l-2's event directly in storage.
  std::string value;
  const std::string key = format::EventKey(2, 0);  // l-2 is stream id 2
  ASSERT_TRUE(*store_.engine()->Get(storage::ReadOptions{}, storage::Family::kEvents, key, &value));
  records::EventRecord record;
  ASSERT_TRUE(record.ParseFromString(value));
  record.set_data("{\"amount\": 1000000}");
  auto batch = store_.engine()->NewWriteBatch();
  batch->Put(storage::Family::kEvents, key, record.SerializeAsString());
  CAIRN_CHECK_OK(store_.engine()->Write(batch.get()));
  v1::VerifyChainResponse broken = Verify();
  EXPECT_FALSE(broken.ok());
  EXPECT_EQ(broken.broken_stream(), "l-2");
  EXPECT_EQ(broken.broken_version(), 0u);
  EXPECT_EQ(broken.events_checked(), 2u);
}

// Every key of the events family with `tag`.
std::map<std::string, std::string> Keys(storage::Engine* engine, char tag) {
  std::map<std::string, std::string> out;
  const std::string lower(1, tag);
  const std::string upper(1, static_cast<char>(tag + 1));
  storage::ReadOptions options;
  options.lower_bound = lower;
  options.upper_bound = upper;
  auto it = engine->NewIterator(options, storage::Family::kEvents);
  for (it->Seek(lower); it->Valid(); it->Next()) out[std::string(it->key())] = it->value();
  return out;
}

TEST_P(EventStateTest, ScavengeRemovesHiddenEventsAndChangesNoRead) {
  // order-1: 10 events, max_count 4 hides versions 0..5.
  for (int i = 0; i < 10; ++i) MustAppend("order-1", {Event(i + 1, "Created", "SECRET")});
  v1::StreamMetadata metadata;
  metadata.set_max_count(4);
  ASSERT_TRUE(SetMetadata("order-1", metadata).ok());
  // order-2: soft-deleted (3 events); order-3: hard-deleted with a snapshot.
  MustAppend("order-2", {Event(21), Event(22), Event(23, "Paid")});
  v1::DeleteStreamResponse deleted;
  ASSERT_TRUE(Delete("order-2", /*hard=*/false, &deleted).ok());
  MustAppend("order-3", {Event(31), Event(32)});
  v1::SaveSnapshotRequest save;
  save.set_stream("order-3");
  save.set_version(1);
  save.set_data("state");
  v1::SaveSnapshotResponse saved;
  ASSERT_TRUE(Apply([&](storage::WriteBatch* b) {
                return events_->ApplySaveSnapshot(b, save, &saved);
              }).ok());
  ASSERT_TRUE(Delete("order-3", /*hard=*/true, &deleted).ok());
  // user-1: created 5..1 s before kNow, max_age 3 s: versions 0..2 expired at kNow.
  for (int i = 0; i < 5; ++i)
    MustAppend("user-1", {Event(41 + i)}, kNow - (5 - i) * 1'000'000'000LL);
  metadata.Clear();
  metadata.set_max_age_seconds(3);
  ASSERT_TRUE(SetMetadata("user-1", metadata).ok());
  // keep-1: nothing hidden; truncated-1: truncate_before 1.
  MustAppend("keep-1", {Event(51), Event(52)});
  MustAppend("truncated-1", {Event(61), Event(62)});
  metadata.Clear();
  metadata.set_truncate_before(1);
  ASSERT_TRUE(SetMetadata("truncated-1", metadata).ok());
  // An id entry in the format before positions were kept (the scavenge must add it).
  {
    auto batch = store_.engine()->NewWriteBatch();
    std::string value;
    const std::string key = format::IdKey(*format::ParseUuid(Uuid(1)));
    ASSERT_TRUE(*batch->Get(storage::Family::kEventIds, key, &value));
    batch->Put(storage::Family::kEventIds, key, value.substr(0, 16));
    ASSERT_TRUE(store_.engine()->Write(batch.get()).ok());
  }

  auto reads = [&] {
    std::vector<std::string> out;
    for (const char* stream : {"order-1", "user-1", "keep-1", "truncated-1", "$ce-order",
                               "$et-Created", "$et-Paid", "$ce-user"}) {
      Status status;
      out.push_back(Read(stream, 0, 0, false, &status).SerializeAsString() + status.ToString());
    }
    v1::ReadAllRequest req;
    v1::ReadAllResponse all;
    EXPECT_TRUE(events_->ReadAll(req, kNow, &all).ok());
    out.push_back(all.SerializeAsString());
    return out;
  };
  const std::vector<std::string> before = reads();
  const size_t links_before = Keys(store_.engine(), format::kCategoryTag).size() +
                              Keys(store_.engine(), format::kTypeTag).size();
  ASSERT_EQ(Keys(store_.engine(), format::kEventTag).size(), 24u);

  command::EventsScavenge scavenge;
  scavenge.set_now_unix_nanos(kNow);
  v1::ScavengeResponse resp;
  ASSERT_TRUE(Apply([&](storage::WriteBatch* b) {
                return events_->ApplyScavenge(b, scavenge, &resp);
              }).ok());
  // 6 (order-1) + 3 (order-2) + 2 (order-3) + 3 (user-1) + 1 (truncated-1).
  EXPECT_EQ(resp.events_removed(), 15u);
  EXPECT_EQ(resp.streams_examined(), 6u);
  EXPECT_TRUE(resp.next_stream().empty());
  EXPECT_GT(resp.bytes_removed(), 15u * 20);
  const auto stored = Keys(store_.engine(), format::kEventTag);
  EXPECT_EQ(stored.size(), 9u);
  for (uint64_t version = 0; version < 10; ++version) {  // order-1 is stream id 1
    EXPECT_EQ(stored.contains(format::EventKey(1, version)), version >= 6) << version;
  }
  // Each removed event had a "$ce-" and a "$et-" link.
  EXPECT_EQ(Keys(store_.engine(), format::kCategoryTag).size() +
                Keys(store_.engine(), format::kTypeTag).size(),
            links_before - 2 * 15);
  EXPECT_TRUE(Keys(store_.engine(), format::kSnapshotTag).empty());  // order-3's, hard-deleted
  EXPECT_EQ(reads(), before);

  // The chain still verifies: removed events are anchors holding their hash.
  v1::VerifyChainResponse verified = Verify();
  EXPECT_TRUE(verified.ok()) << verified.reason();
  EXPECT_EQ(verified.events_checked(), 24u);
  EXPECT_EQ(verified.events_scavenged(), 15u);

  // A second pass finds nothing; retries of removed appends are still idempotent.
  ASSERT_TRUE(Apply([&](storage::WriteBatch* b) {
                return events_->ApplyScavenge(b, scavenge, &resp);
              }).ok());
  EXPECT_EQ(resp.events_removed(), 0u);
  v1::AppendResponse retry;
  ASSERT_TRUE(Append("order-1", v1::NO_STREAM, 0, {Event(1, "Created", "SECRET")}, &retry).ok());
  ASSERT_TRUE(retry.has_success()) << retry.DebugString();
  EXPECT_TRUE(retry.success().idempotent_replay());
  EXPECT_EQ(retry.success().first_version(), 0u);
  // The soft-deleted stream's numbering continues after the removal.
  EXPECT_EQ(MustAppend("order-2", {Event(24)}), 3u);
  EXPECT_EQ(Versions(Read("order-2")), (std::vector<uint64_t>{3}));

  Reopen();
  EXPECT_TRUE(Verify().ok());
  // Tampering with the last anchor before a stored event breaks that event's link.
  const auto all = Keys(store_.engine(), format::kAllTag);
  auto anchor = all.begin();
  while (std::next(anchor) != all.end() &&
         !(anchor->second.size() == 48 && std::next(anchor)->second.size() == 16)) {
    ++anchor;
  }
  ASSERT_NE(std::next(anchor), all.end());
  auto batch = store_.engine()->NewWriteBatch();
  std::string forged = anchor->second;
  forged[20] ^= 1;
  batch->Put(storage::Family::kEvents, anchor->first, forged);
  ASSERT_TRUE(store_.engine()->Write(batch.get()).ok());
  EXPECT_FALSE(Verify().ok());
  batch = store_.engine()->NewWriteBatch();
  batch->Put(storage::Family::kEvents, anchor->first, anchor->second);
  ASSERT_TRUE(store_.engine()->Write(batch.get()).ok());
  ASSERT_TRUE(Verify().ok());
  // Removing a stored event and dressing it up as scavenged is detected too.
  const std::string key = format::EventKey(1, 9);  // order-1's last event: visible
  std::string value;
  ASSERT_TRUE(*store_.engine()->Get(storage::ReadOptions{}, storage::Family::kEvents, key, &value));
  records::EventRecord record;
  ASSERT_TRUE(record.ParseFromString(value));
  batch = store_.engine()->NewWriteBatch();
  batch->Delete(storage::Family::kEvents, key);
  batch->Put(storage::Family::kEvents, format::AllKey(record.revision(), record.index()),
             format::EncodeAnchor({1, 9}, record.hash()));
  ASSERT_TRUE(store_.engine()->Write(batch.get()).ok());
  v1::VerifyChainResponse removed = Verify();
  EXPECT_FALSE(removed.ok());
  EXPECT_EQ(removed.broken_stream(), "order-1");
  EXPECT_EQ(removed.broken_version(), 9u);
}

TEST_P(EventStateTest, ScavengeIsBoundedAndResumes) {
  v1::StreamMetadata metadata;
  metadata.set_max_count(1);
  for (int s = 0; s < 5; ++s) {
    const std::string stream = "b-" + std::to_string(s);
    for (int i = 0; i < 5; ++i) MustAppend(stream, {Event(100 * (s + 1) + i)});
    ASSERT_TRUE(SetMetadata(stream, metadata).ok());
  }
  command::EventsScavenge scavenge;
  scavenge.set_now_unix_nanos(kNow);
  scavenge.mutable_request()->set_max_streams(2);
  scavenge.mutable_request()->set_max_events(3);
  uint64_t removed = 0;
  int slices = 0;
  for (;;) {
    v1::ScavengeResponse resp;
    ASSERT_TRUE(Apply([&](storage::WriteBatch* b) {
                  return events_->ApplyScavenge(b, scavenge, &resp);
                }).ok());
    EXPECT_LE(resp.events_removed(), 3u);
    EXPECT_LE(resp.streams_examined(), 2u);
    removed += resp.events_removed();
    ++slices;
    ASSERT_LT(slices, 20);
    if (resp.next_stream().empty()) break;
    scavenge.mutable_request()->set_from_stream(resp.next_stream());
  }
  EXPECT_EQ(removed, 20u);
  EXPECT_GE(slices, 7);
  EXPECT_EQ(Keys(store_.engine(), format::kEventTag).size(), 5u);
  EXPECT_TRUE(Verify().ok());

  // Bad bounds are refused, and a scavenge must start its own batch.
  scavenge.mutable_request()->set_max_streams(EventLimits::kScavengeBoundMax + 1);
  v1::ScavengeResponse resp;
  EXPECT_EQ(Apply([&](storage::WriteBatch* b) {
              return events_->ApplyScavenge(b, scavenge, &resp);
            }).code(),
            StatusCode::kInvalidArgument);
  scavenge.mutable_request()->set_max_streams(0);
  scavenge.mutable_request()->set_from_stream("$any place in name order");
  EXPECT_EQ(ValidateScavenge(scavenge.request()).code(), StatusCode::kOk);
  scavenge.mutable_request()->set_from_stream(
      std::string(EventLimits::kStreamNameBytesMax + 1, 'x'));
  EXPECT_EQ(ValidateScavenge(scavenge.request()).code(), StatusCode::kInvalidArgument);
  scavenge.mutable_request()->set_from_stream("");
  auto batch = store_.engine()->NewWriteBatch();
  batch->Put(storage::Family::kMeta, "x", "y");
  EXPECT_EQ(events_->ApplyScavenge(batch.get(), scavenge, &resp).code(), StatusCode::kInternal);
}

TEST_P(EventStateTest, WaitForEventsWakesOnWrite) {
  EXPECT_EQ(events_->WaitForEvents(0, std::chrono::milliseconds(1)), 0u);
  MustAppend("m-1", {Event(1)});
  EXPECT_EQ(events_->WaitForEvents(0, std::chrono::milliseconds(1)), 1u);
}

TEST_P(EventStateTest, PersistentGroupsRecordProgressDeterministically) {
  MustAppend("job-1", {Event(1), Event(2), Event(3)});
  PersistentState* groups = events_->persistent();
  v1::CreatePersistentSubscriptionRequest create;
  create.set_source("job-1");
  create.set_group("g");
  create.mutable_settings()->set_from_end(true);
  v1::CreatePersistentSubscriptionResponse created;
  const uint64_t generation = groups->Generation();
  ASSERT_TRUE(
      Apply([&](storage::WriteBatch* b) { return groups->ApplyCreate(b, create, &created); }).ok());
  EXPECT_GT(groups->Generation(), generation);
  Status again =
      Apply([&](storage::WriteBatch* b) { return groups->ApplyCreate(b, create, &created); });
  EXPECT_EQ(again.code(), StatusCode::kAlreadyExists);

  PersistentState::Progress progress;
  ASSERT_TRUE(groups->LoadProgress("job-1", "g", &progress).ok());
  ASSERT_TRUE(progress.group.has_checkpoint());
  EXPECT_EQ(progress.group.checkpoint().version(), 2u);  // from the end: after version 2
  const uint64_t group_id = progress.group.group_id();

  // Progress: a handled event and a failed one beyond the checkpoint, one parked event.
  command::PersistentProgress step;
  step.set_source("job-1");
  step.set_group("g");
  step.set_group_id(group_id);
  step.add_done()->set_version(5);
  command::PersistentRetry* retry = step.add_retries();
  retry->mutable_cursor()->set_version(4);
  retry->set_retries(2);
  step.add_done()->set_version(1);  // at or below the checkpoint: ignored
  v1::Position* parked = step.add_parked();
  parked->set_revision(2);
  command::PersistentProgressResult result;
  ASSERT_TRUE(
      Apply([&](storage::WriteBatch* b) { return groups->ApplyProgress(b, step, &result); }).ok());
  EXPECT_FALSE(result.stale());
  ASSERT_TRUE(groups->LoadProgress("job-1", "g", &progress).ok());
  ASSERT_EQ(progress.events.size(), 2u);
  EXPECT_EQ(progress.events[0].first.major, 4u);
  EXPECT_EQ(progress.events[0].second.retries(), 2u);
  EXPECT_EQ(progress.events[1].first.major, 5u);
  EXPECT_TRUE(progress.events[1].second.done());
  EXPECT_EQ(*groups->ParkedCount("job-1", "g"), 1u);
  v1::ReadStreamRequest read_parked;
  read_parked.set_stream(format::ParkedStreamName("job-1", "g"));
  v1::ReadStreamResponse parked_events;
  ASSERT_TRUE(events_->ReadStream(read_parked, kNow, &parked_events).ok());
  ASSERT_EQ(parked_events.events_size(), 1);
  EXPECT_EQ(parked_events.events(0).id(), Uuid(1));

  // The checkpoint moves forwards only; records below it are forgotten when told.
  command::PersistentProgress forward;
  forward.set_source("job-1");
  forward.set_group("g");
  forward.set_group_id(group_id);
  forward.mutable_checkpoint()->set_version(5);
  forward.add_forget()->set_version(4);
  forward.add_forget()->set_version(5);
  ASSERT_TRUE(Apply([&](storage::WriteBatch* b) {
                return groups->ApplyProgress(b, forward, &result);
              }).ok());
  command::PersistentProgress backward = forward;
  backward.mutable_checkpoint()->set_version(3);
  ASSERT_TRUE(Apply([&](storage::WriteBatch* b) {
                return groups->ApplyProgress(b, backward, &result);
              }).ok());
  ASSERT_TRUE(groups->LoadProgress("job-1", "g", &progress).ok());
  EXPECT_EQ(progress.group.checkpoint().version(), 5u);
  EXPECT_TRUE(progress.events.empty());

  // Replay moves the parked entry to the replay queue.
  v1::ReplayParkedRequest replay;
  replay.set_source("job-1");
  replay.set_group("g");
  v1::ReplayParkedResponse replayed;
  ASSERT_TRUE(Apply([&](storage::WriteBatch* b) {
                return groups->ApplyReplayParked(b, replay, &replayed);
              }).ok());
  EXPECT_EQ(replayed.replayed(), 1u);
  ASSERT_TRUE(groups->LoadProgress("job-1", "g", &progress).ok());
  ASSERT_EQ(progress.replays.size(), 1u);
  EXPECT_EQ(progress.group.replay_pending(), 1u);

  // Delete and re-create: the new group has a new id; old progress is stale and gone.
  v1::DeletePersistentSubscriptionRequest del;
  del.set_source("job-1");
  del.set_group("g");
  v1::DeletePersistentSubscriptionResponse deleted;
  ASSERT_TRUE(
      Apply([&](storage::WriteBatch* b) { return groups->ApplyDelete(b, del, &deleted); }).ok());
  create.mutable_settings()->clear_start();
  ASSERT_TRUE(
      Apply([&](storage::WriteBatch* b) { return groups->ApplyCreate(b, create, &created); }).ok());
  ASSERT_TRUE(
      Apply([&](storage::WriteBatch* b) { return groups->ApplyProgress(b, step, &result); }).ok());
  EXPECT_TRUE(result.stale());
  Reopen();
  ASSERT_TRUE(events_->persistent()->LoadProgress("job-1", "g", &progress).ok());
  EXPECT_NE(progress.group.group_id(), group_id);
  EXPECT_FALSE(progress.group.has_checkpoint());
  EXPECT_TRUE(progress.events.empty());
  EXPECT_TRUE(progress.replays.empty());
  std::vector<records::PersistentGroupRecord> listed;
  ASSERT_TRUE(events_->persistent()->ListGroups("", &listed).ok());
  EXPECT_EQ(listed.size(), 1u);
}

INSTANTIATE_TEST_SUITE_P(Engines, EventStateTest,
                         ::testing::Values(EngineKind::kMemory, EngineKind::kRocksDb),
                         [](const ::testing::TestParamInfo<EngineKind>& info) {
                           return info.param == EngineKind::kMemory ? "Memory" : "RocksDb";
                         });

}  // namespace
}  // namespace cairn::events
