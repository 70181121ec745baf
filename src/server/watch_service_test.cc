// In-process tests of etcd's Watch service through a real gRPC channel on loopback.
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "src/server/server.h"
#include "src/server/server_test_util.h"

namespace cairn::server {
namespace {

using etcdserverpb::KV;
using etcdserverpb::WatchRequest;
using etcdserverpb::WatchResponse;

// One Watch call, read synchronously (every read has the context's deadline).
class WatchStream {
 public:
  explicit WatchStream(etcdserverpb::Watch::Stub* stub) {
    context_.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    stream_ = stub->Watch(&context_);
  }
  ~WatchStream() {
    stream_->WritesDone();
    context_.TryCancel();
  }

  void Create(const etcdserverpb::WatchCreateRequest& create) {
    WatchRequest request;
    *request.mutable_create_request() = create;
    ASSERT_TRUE(stream_->Write(request));
  }
  void Cancel(int64_t watch_id) {
    WatchRequest request;
    request.mutable_cancel_request()->set_watch_id(watch_id);
    ASSERT_TRUE(stream_->Write(request));
  }
  void RequestProgress() {
    WatchRequest request;
    request.mutable_progress_request();
    ASSERT_TRUE(stream_->Write(request));
  }
  WatchResponse Read() {
    WatchResponse response;
    EXPECT_TRUE(stream_->Read(&response)) << "stream ended";
    return response;
  }
  // Reads responses until `count` events arrived; every response must carry whole revisions.
  std::vector<mvccpb::Event> ReadEvents(size_t count) {
    std::vector<mvccpb::Event> events;
    while (events.size() < count) {
      WatchResponse response = Read();
      if (response.events_size() == 0) {
        ADD_FAILURE() << "unexpected " << response.ShortDebugString();
        break;
      }
      for (const auto& event : response.events()) events.push_back(event);
    }
    return events;
  }

 private:
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReaderWriter<WatchRequest, WatchResponse>> stream_;
};

etcdserverpb::WatchCreateRequest Watch(const std::string& key, const std::string& range_end = "",
                                       int64_t start_revision = 0) {
  etcdserverpb::WatchCreateRequest create;
  create.set_key(key);
  create.set_range_end(range_end);
  create.set_start_revision(start_revision);
  return create;
}

class WatchServiceTest : public ServerTestBase {
 protected:
  void MakeStubs(const std::shared_ptr<grpc::Channel>& channel) override {
    kv_ = KV::NewStub(channel);
    watch_ = etcdserverpb::Watch::NewStub(channel);
  }

  int64_t Put(const std::string& key, const std::string& value) {
    etcdserverpb::PutRequest request;
    request.set_key(key);
    request.set_value(value);
    etcdserverpb::PutResponse response;
    grpc::ClientContext context;
    EXPECT_TRUE(kv_->Put(&context, request, &response).ok());
    return response.header().revision();
  }
  int64_t Delete(const std::string& key, const std::string& range_end = "") {
    etcdserverpb::DeleteRangeRequest request;
    request.set_key(key);
    request.set_range_end(range_end);
    etcdserverpb::DeleteRangeResponse response;
    grpc::ClientContext context;
    EXPECT_TRUE(kv_->DeleteRange(&context, request, &response).ok());
    return response.header().revision();
  }
  void Compact(int64_t revision) {
    etcdserverpb::CompactionRequest request;
    request.set_revision(revision);
    etcdserverpb::CompactionResponse response;
    grpc::ClientContext context;
    ASSERT_TRUE(kv_->Compact(&context, request, &response).ok());
  }

  std::unique_ptr<KV::Stub> kv_;
  std::unique_ptr<etcdserverpb::Watch::Stub> watch_;
};

TEST_F(WatchServiceTest, CreateReceivesEventsThenCancel) {
  StartServer();
  const int64_t before = Put("other", "x");
  WatchStream stream(watch_.get());
  stream.Create(Watch("a", "b"));
  WatchResponse created = stream.Read();
  EXPECT_TRUE(created.created());
  EXPECT_EQ(created.watch_id(), 0);  // etcd assigns ids from 0
  EXPECT_EQ(created.header().revision(), before);
  EXPECT_NE(created.header().member_id(), 0u);
  Put("zzz", "outside");
  const int64_t put = Put("a1", "v1");
  const int64_t deleted = Delete("a1");
  WatchResponse events = stream.Read();
  ASSERT_EQ(events.events_size(), 1);
  EXPECT_EQ(events.watch_id(), 0);
  EXPECT_EQ(events.header().revision(), put);
  EXPECT_EQ(events.events(0).type(), mvccpb::Event::PUT);
  EXPECT_EQ(events.events(0).kv().key(), "a1");
  EXPECT_EQ(events.events(0).kv().value(), "v1");
  EXPECT_FALSE(events.events(0).has_prev_kv());
  events = stream.Read();
  ASSERT_EQ(events.events_size(), 1);
  EXPECT_EQ(events.events(0).type(), mvccpb::Event::DELETE);
  EXPECT_EQ(events.events(0).kv().mod_revision(), deleted);

  stream.Cancel(0);
  WatchResponse canceled = stream.Read();
  EXPECT_TRUE(canceled.canceled());
  EXPECT_EQ(canceled.watch_id(), 0);
  // Nothing more for the canceled watcher: the next response is for a new one.
  Put("a2", "v");
  stream.Create(Watch("x"));
  WatchResponse next = stream.Read();
  EXPECT_TRUE(next.created());
  EXPECT_EQ(next.watch_id(), 1);
}

TEST_F(WatchServiceTest, PastRevisionWithPrevKvAndWholeRevisions) {
  StartServer();
  const int64_t first = Put("k", "v1");
  Put("k", "v2");
  // A txn writing two keys at one revision arrives in one response.
  etcdserverpb::TxnRequest txn;
  txn.add_success()->mutable_request_put()->set_key("k");
  txn.add_success()->mutable_request_put()->set_key("k2");
  etcdserverpb::TxnResponse txn_response;
  grpc::ClientContext context;
  ASSERT_TRUE(kv_->Txn(&context, txn, &txn_response).ok());

  WatchStream stream(watch_.get());
  auto create = Watch("k", std::string(1, '\0'), first);
  create.set_prev_kv(true);
  stream.Create(create);
  EXPECT_TRUE(stream.Read().created());
  WatchResponse history = stream.Read();
  ASSERT_EQ(history.events_size(), 4) << history.ShortDebugString();
  EXPECT_EQ(history.events(0).kv().value(), "v1");
  EXPECT_FALSE(history.events(0).has_prev_kv());
  EXPECT_EQ(history.events(1).kv().value(), "v2");
  EXPECT_EQ(history.events(1).prev_kv().value(), "v1");
  EXPECT_EQ(history.events(2).kv().key(), "k");
  EXPECT_EQ(history.events(2).prev_kv().value(), "v2");
  EXPECT_EQ(history.events(3).kv().key(), "k2");
  EXPECT_EQ(history.events(2).kv().mod_revision(), txn_response.header().revision());
  EXPECT_EQ(history.events(3).kv().mod_revision(), txn_response.header().revision());
  // Then live.
  Put("k3", "live");
  auto live = stream.ReadEvents(1);
  EXPECT_EQ(live[0].kv().key(), "k3");
}

TEST_F(WatchServiceTest, FutureRevisionWaits) {
  StartServer();
  const int64_t revision = Put("k", "v1");
  WatchStream stream(watch_.get());
  stream.Create(Watch("k", "", revision + 2));
  EXPECT_TRUE(stream.Read().created());
  Put("k", "skipped");
  Put("k", "seen");
  auto events = stream.ReadEvents(1);
  EXPECT_EQ(events[0].kv().value(), "seen");
}

TEST_F(WatchServiceTest, CompactedStartRevisionIsCanceled) {
  StartServer();
  const int64_t first = Put("k", "v1");
  Put("k", "v2");
  const int64_t third = Put("k", "v3");
  Compact(third);
  WatchStream stream(watch_.get());
  stream.Create(Watch("k", "", first));
  EXPECT_TRUE(stream.Read().created());
  WatchResponse canceled = stream.Read();
  EXPECT_TRUE(canceled.canceled());
  EXPECT_EQ(canceled.compact_revision(), third);
  EXPECT_EQ(canceled.events_size(), 0);
  // The compacted revision itself is still watchable.
  stream.Create(Watch("k", "", third));
  EXPECT_TRUE(stream.Read().created());
  auto events = stream.ReadEvents(1);
  EXPECT_EQ(events[0].kv().value(), "v3");
}

// Regression (tests/diff against etcd 3.4): a catch-up response carries the store's current
// revision, not its last event's; the cancel for a compacted start revision carries 0.
TEST_F(WatchServiceTest, CatchUpHeaderIsCurrentRevisionCompactedCancelIsZero) {
  StartServer();
  const int64_t first = Put("k", "v1");
  const int64_t current = Put("other", "v");
  WatchStream stream(watch_.get());
  stream.Create(Watch("k", "", first));
  EXPECT_TRUE(stream.Read().created());
  WatchResponse history = stream.Read();
  ASSERT_EQ(history.events_size(), 1);
  EXPECT_EQ(history.header().revision(), current);
  Compact(current);
  WatchStream compacted(watch_.get());
  compacted.Create(Watch("k", "", first));
  EXPECT_TRUE(compacted.Read().created());
  WatchResponse canceled = compacted.Read();
  EXPECT_TRUE(canceled.canceled());
  EXPECT_EQ(canceled.compact_revision(), current);
  EXPECT_EQ(canceled.header().revision(), 0);
  // Its id stays taken until the client cancels it, and that cancel is answered.
  compacted.Create(Watch("k"));
  WatchResponse next = compacted.Read();
  EXPECT_TRUE(next.created());
  EXPECT_EQ(next.watch_id(), canceled.watch_id() + 1);
  compacted.Cancel(canceled.watch_id());
  WatchResponse cancel = compacted.Read();
  EXPECT_TRUE(cancel.canceled());
  EXPECT_EQ(cancel.watch_id(), canceled.watch_id());
  EXPECT_EQ(cancel.header().revision(), current);
}

// Regression (tests/diff against etcd 3.4): compaction drops tombstones at the compact
// revision itself, so a watch from that revision gets its puts but not its deletes.
TEST_F(WatchServiceTest, CatchUpFromCompactRevisionHasNoDeletesOfIt) {
  StartServer();
  Put("gone", "v");
  etcdserverpb::TxnRequest txn;  // one revision: delete "gone", put "kept"
  txn.add_success()->mutable_request_delete_range()->set_key("gone");
  txn.add_success()->mutable_request_put()->set_key("kept");
  etcdserverpb::TxnResponse txn_response;
  grpc::ClientContext context;
  ASSERT_TRUE(kv_->Txn(&context, txn, &txn_response).ok());
  const int64_t compacted = txn_response.header().revision();
  Compact(compacted);
  WatchStream stream(watch_.get());
  stream.Create(Watch("a", "z", compacted));
  EXPECT_TRUE(stream.Read().created());
  auto events = stream.ReadEvents(1);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].type(), mvccpb::Event::PUT);
  EXPECT_EQ(events[0].kv().key(), "kept");
}

TEST_F(WatchServiceTest, Filters) {
  StartServer();
  WatchStream stream(watch_.get());
  auto no_put = Watch("k");
  no_put.add_filters(etcdserverpb::WatchCreateRequest::NOPUT);
  stream.Create(no_put);
  EXPECT_TRUE(stream.Read().created());
  Put("k", "v");
  Delete("k");
  auto events = stream.ReadEvents(1);
  EXPECT_EQ(events[0].type(), mvccpb::Event::DELETE);
}

TEST_F(WatchServiceTest, ClientChosenAndDuplicateIds) {
  StartServer();
  WatchStream stream(watch_.get());
  auto create = Watch("k");
  create.set_watch_id(7);
  stream.Create(create);
  WatchResponse created = stream.Read();
  EXPECT_TRUE(created.created());
  EXPECT_EQ(created.watch_id(), 7);
  stream.Create(create);
  WatchResponse duplicate = stream.Read();
  EXPECT_TRUE(duplicate.created());
  EXPECT_TRUE(duplicate.canceled());
  EXPECT_EQ(duplicate.watch_id(), -1);
  EXPECT_EQ(duplicate.cancel_reason(), "mvcc: duplicate watch ID provided on the WatchStream");
  stream.Create(Watch("b", "a"));
  WatchResponse empty = stream.Read();
  EXPECT_TRUE(empty.canceled());
  EXPECT_EQ(empty.cancel_reason(), "mvcc: watcher range is empty");
}

TEST_F(WatchServiceTest, ProgressRequestAndNotify) {
  options_.watch_progress_notify_interval_ms = 200;
  StartServer();
  const int64_t revision = Put("k", "v");
  WatchStream stream(watch_.get());
  auto create = Watch("k");
  create.set_progress_notify(true);
  stream.Create(create);
  EXPECT_TRUE(stream.Read().created());
  WatchResponse notify = stream.Read();  // within ~200 ms
  EXPECT_EQ(notify.watch_id(), 0);
  EXPECT_EQ(notify.events_size(), 0);
  EXPECT_FALSE(notify.created() || notify.canceled());
  EXPECT_EQ(notify.header().revision(), revision);

  WatchStream other(watch_.get());
  other.Create(Watch("x"));
  EXPECT_TRUE(other.Read().created());
  const int64_t later = Put("y", "v");
  other.RequestProgress();
  WatchResponse progress = other.Read();
  EXPECT_EQ(progress.watch_id(), -1);
  EXPECT_EQ(progress.events_size(), 0);
  EXPECT_EQ(progress.header().revision(), later);
}

// More events than a watcher's buffer holds, faster than the client reads: the watcher
// catches up from storage and the client still sees every event once, in order.
TEST_F(WatchServiceTest, SlowWatcherCatchesUpInOrder) {
  options_.watch_hub.watcher_buffer_events_max = 8;
  StartServer();
  WatchStream stream(watch_.get());
  stream.Create(Watch("k", "l"));
  EXPECT_TRUE(stream.Read().created());
  constexpr int kPuts = 3000;
  std::vector<std::thread> writers;
  for (int w = 0; w < 4; ++w) {
    writers.emplace_back([this, w] {
      for (int i = 0; i < kPuts / 4; ++i) Put("k" + std::to_string(w), std::to_string(i));
    });
  }
  for (auto& writer : writers) writer.join();
  auto events = stream.ReadEvents(kPuts);
  ASSERT_EQ(events.size(), static_cast<size_t>(kPuts));
  for (size_t i = 1; i < events.size(); ++i) {
    ASSERT_EQ(events[i].kv().mod_revision(), events[i - 1].kv().mod_revision() + 1);
  }
}

// A store without watchers builds no events; a watcher that starts while such a batch is
// being applied still sees every revision after the one its creation reported (it reads the
// batch from storage). Several writers keep the apply thread busy, so that many creations
// land in such a batch.
TEST_F(WatchServiceTest, WatcherStartingWhileNobodyWatchesMissesNothing) {
  StartServer();
  std::atomic<bool> stop = false;
  std::vector<std::thread> writers;
  for (int w = 0; w < 8; ++w) {
    writers.emplace_back([&] {
      for (int i = 0; !stop.load(); ++i) Put("w", std::to_string(i));
    });
  }
  for (int round = 0; round < 100; ++round) {
    {
      WatchStream stream(watch_.get());
      stream.Create(Watch("w"));
      WatchResponse created = stream.Read();
      ASSERT_TRUE(created.created());
      const int64_t from = created.header().revision();
      auto events = stream.ReadEvents(5);
      for (size_t i = 0; i < events.size(); ++i) {
        ASSERT_EQ(events[i].kv().mod_revision(), from + 1 + static_cast<int64_t>(i))
            << "round " << round << ", event " << i;
      }
    }
    // The canceled watcher goes away, so the next one starts with nobody watching.
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  stop = true;
  for (auto& writer : writers) writer.join();
}

TEST_F(WatchServiceTest, LargeResponsesAreFragmentedOnRequest) {
  options_.request_bytes_max = 4096;
  StartServer();
  const std::string value(300, 'v');
  for (int i = 0; i < 20; ++i) Put("f" + std::to_string(100 + i), value);
  WatchStream stream(watch_.get());
  auto create = Watch("f", "g");
  create.set_prev_kv(true);
  create.set_fragment(true);
  stream.Create(create);
  EXPECT_TRUE(stream.Read().created());
  Delete("f", "g");  // 20 events with 300-byte prev values at one revision
  int fragments = 0;
  int events = 0;
  while (events < 20) {
    WatchResponse response = stream.Read();
    ASSERT_GT(response.events_size(), 0);
    events += response.events_size();
    if (response.fragment()) ++fragments;
    EXPECT_EQ(response.fragment(), events < 20);
  }
  EXPECT_EQ(events, 20);
  EXPECT_GE(fragments, 1);
}

// Many watchers on one stream: a put wakes exactly the watchers of its key (one response
// each, every one of them), the idle ones send nothing, and progress still answers.
TEST_F(WatchServiceTest, ManyWatchersOnOneStream) {
  StartServer();
  WatchStream stream(watch_.get());
  constexpr int kIdle = 1000;
  constexpr int kHot = 1000;
  for (int i = 0; i < kIdle + kHot; ++i) {
    stream.Create(i < kIdle ? Watch("idle" + std::to_string(i)) : Watch("hot"));
    WatchResponse created = stream.Read();
    ASSERT_TRUE(created.created());
    ASSERT_EQ(created.watch_id(), i);
  }
  stream.Create(Watch("h", "i"));  // a range holding "hot"
  ASSERT_TRUE(stream.Read().created());
  const int64_t revision = Put("hot", "v");
  std::set<int64_t> woken;
  for (int i = 0; i < kHot + 1; ++i) {
    WatchResponse response = stream.Read();
    ASSERT_EQ(response.events_size(), 1) << response.ShortDebugString();
    EXPECT_EQ(response.header().revision(), revision);
    EXPECT_EQ(response.events(0).kv().key(), "hot");
    EXPECT_TRUE(woken.insert(response.watch_id()).second) << "twice: " << response.watch_id();
  }
  EXPECT_EQ(*woken.begin(), kIdle);
  EXPECT_EQ(*woken.rbegin(), kIdle + kHot);
  // One idle watcher's key: that watcher only; then progress covers everything.
  const int64_t idle_put = Put("idle7", "v");
  WatchResponse idle = stream.Read();
  EXPECT_EQ(idle.watch_id(), 7);
  EXPECT_EQ(idle.header().revision(), idle_put);
  stream.RequestProgress();
  WatchResponse progress = stream.Read();
  EXPECT_EQ(progress.watch_id(), -1);
  EXPECT_EQ(progress.events_size(), 0);
  EXPECT_EQ(progress.header().revision(), idle_put);
}

// Regression: a client that went away while a response was being written left its stream
// unfinished, and Shutdown waited for it forever.
TEST_F(WatchServiceTest, ShutdownAfterClientCancelledMidWrite) {
  StartServer();
  {
    WatchStream stream(watch_.get());
    stream.Create(Watch("k"));
    EXPECT_TRUE(stream.Read().created());
    const std::string value(64 * 1024, 'v');
    for (int i = 0; i < 100; ++i) Put("k", value);  // more than flow control lets through
  }                                                 // cancels the call with writes pending
  const auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(server_->Shutdown().ok());
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(4));
}

}  // namespace
}  // namespace cairn::server
