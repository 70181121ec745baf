// Tests of the watch hub (matching, order, bounded buffers, catch-up) and of
// mvcc::ScanHistory, the storage read catch-up uses.
#include "src/feed/hub.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "src/mvcc/kv_history_scan.h"
#include "src/mvcc/kv_test_util.h"

namespace cairn::feed {
namespace {

mvccpb::Event PutEvent(const std::string& key, int64_t revision, const std::string& value = "v") {
  mvccpb::Event event;
  event.set_type(mvccpb::Event::PUT);
  event.mutable_kv()->set_key(key);
  event.mutable_kv()->set_mod_revision(revision);
  event.mutable_kv()->set_value(value);
  event.mutable_prev_kv()->set_key(key);
  return event;
}

mvccpb::Event DeleteEvent(const std::string& key, int64_t revision) {
  mvccpb::Event event;
  event.set_type(mvccpb::Event::DELETE);
  event.mutable_kv()->set_key(key);
  event.mutable_kv()->set_mod_revision(revision);
  return event;
}

std::vector<std::string> Keys(const std::vector<mvccpb::Event>& events) {
  std::vector<std::string> keys;
  for (const auto& event : events) keys.push_back(event.kv().key());
  return keys;
}

TEST(HubTest, MatchesSingleKeyPrefixAndToEnd) {
  Hub hub(1);
  int notified = 0;
  auto notify = [&notified] { ++notified; };
  Hub::WatcherId single = hub.Add({.key = "a"}, notify);
  Hub::WatcherId prefix = hub.Add({.key = "a", .range_end = "b"}, notify);
  Hub::WatcherId to_end = hub.Add({.key = "b", .range_end = std::string(1, '\0')}, notify);
  hub.Publish(2, {PutEvent("a", 2)});
  hub.Publish(4, {PutEvent("ab", 3), PutEvent("c", 4)});
  EXPECT_EQ(hub.revision(), 4);
  EXPECT_EQ(notified, 4);
  EXPECT_EQ(Keys(hub.Take(single, 100).events), (std::vector<std::string>{"a"}));
  EXPECT_EQ(Keys(hub.Take(prefix, 100).events), (std::vector<std::string>{"a", "ab"}));
  EXPECT_EQ(Keys(hub.Take(to_end, 100).events), (std::vector<std::string>{"c"}));
  EXPECT_EQ(hub.Take(single, 100).kind, Hub::Taken::Kind::kNothing);
  EXPECT_TRUE(hub.Synced(single));
  hub.Remove(single);
  hub.Publish(5, {PutEvent("a", 5)});
  EXPECT_EQ(hub.watcher_count(), 2u);
  EXPECT_EQ(Keys(hub.Take(prefix, 100).events), (std::vector<std::string>{"a"}));
}

TEST(HubTest, FiltersAndPrevKv) {
  Hub hub(1);
  Hub::WatcherId no_put = hub.Add({.key = "a", .no_put = true}, [] {});
  Hub::WatcherId no_delete = hub.Add({.key = "a", .prev_kv = true, .no_delete = true}, [] {});
  hub.Publish(3, {PutEvent("a", 2), DeleteEvent("a", 3)});
  auto deletes = hub.Take(no_put, 100).events;
  ASSERT_EQ(deletes.size(), 1u);
  EXPECT_EQ(deletes[0].type(), mvccpb::Event::DELETE);
  auto puts = hub.Take(no_delete, 100).events;
  ASSERT_EQ(puts.size(), 1u);
  EXPECT_EQ(puts[0].type(), mvccpb::Event::PUT);
  EXPECT_TRUE(puts[0].has_prev_kv());
}

TEST(HubTest, StartRevisions) {
  Hub hub(5);
  Hub::WatcherId future = hub.Add({.key = "a", .start_revision = 7}, [] {});
  Hub::WatcherId next = hub.Add({.key = "a", .start_revision = 6}, [] {});
  Hub::WatcherId past = hub.Add({.key = "a", .start_revision = 3}, [] {});
  EXPECT_FALSE(hub.catching_up(next));
  EXPECT_TRUE(hub.catching_up(past));
  hub.Publish(6, {PutEvent("a", 6)});
  hub.Publish(7, {PutEvent("a", 7)});
  auto taken = hub.Take(future, 100);
  ASSERT_EQ(taken.events.size(), 1u);
  EXPECT_EQ(taken.events[0].kv().mod_revision(), 7);
  EXPECT_EQ(hub.Take(next, 100).events.size(), 2u);
  // The past watcher reads (2, 7] from storage.
  taken = hub.Take(past, 100);
  ASSERT_EQ(taken.kind, Hub::Taken::Kind::kCatchUp);
  EXPECT_EQ(taken.after_revision, 2);
  EXPECT_EQ(taken.through_revision, 7);
  hub.Publish(8, {PutEvent("a", 8)});  // buffered while the consumer scans
  hub.CatchUpScanned(past, 7, 7);
  taken = hub.Take(past, 100);
  ASSERT_EQ(taken.events.size(), 1u);
  EXPECT_EQ(taken.events[0].kv().mod_revision(), 8);
  EXPECT_TRUE(hub.Synced(past));
}

TEST(HubTest, SlowWatcherIsBoundedAndCatchesUp) {
  Hub hub(1, {.watcher_buffer_events_max = 4});
  Hub::WatcherId slow = hub.Add({.key = "k"}, [] {});
  Hub::WatcherId fast = hub.Add({.key = "k"}, [] {});
  for (int64_t revision = 2; revision <= 20; ++revision) {
    hub.Publish(revision, {PutEvent("k", revision)});
    auto taken = hub.Take(fast, 100);
    ASSERT_EQ(taken.events.size(), 1u);  // the slow watcher never holds the fast one back
    EXPECT_LE(hub.buffered_events(slow), 4u);
  }
  EXPECT_TRUE(hub.catching_up(slow));
  // The buffered prefix first, then a catch-up of the rest from storage.
  auto taken = hub.Take(slow, 100);
  ASSERT_EQ(taken.kind, Hub::Taken::Kind::kEvents);
  ASSERT_EQ(taken.events.size(), 4u);
  EXPECT_EQ(taken.events.back().kv().mod_revision(), 5);
  taken = hub.Take(slow, 100);
  ASSERT_EQ(taken.kind, Hub::Taken::Kind::kCatchUp);
  EXPECT_EQ(taken.after_revision, 5);
  EXPECT_EQ(taken.through_revision, 20);
  // A scan that stopped early at 12: the rest is caught up again, even what was buffered.
  hub.Publish(21, {PutEvent("k", 21)});
  hub.CatchUpScanned(slow, 20, 12);
  taken = hub.Take(slow, 100);
  ASSERT_EQ(taken.kind, Hub::Taken::Kind::kCatchUp);
  EXPECT_EQ(taken.after_revision, 12);
  EXPECT_EQ(taken.through_revision, 21);
  hub.CatchUpScanned(slow, 21, 21);
  hub.Publish(22, {PutEvent("k", 22)});
  taken = hub.Take(slow, 100);
  ASSERT_EQ(taken.events.size(), 1u);
  EXPECT_EQ(taken.events[0].kv().mod_revision(), 22);
}

TEST(HubTest, OneRevisionIsNeverSplit) {
  Hub hub(1, {.watcher_buffer_events_max = 2});
  Hub::WatcherId watcher = hub.Add({.key = "a", .range_end = "z"}, [] {});
  hub.Publish(2, {PutEvent("a", 2), PutEvent("b", 2), PutEvent("c", 2)});
  EXPECT_FALSE(hub.catching_up(watcher));
  hub.Publish(3, {PutEvent("a", 3)});
  EXPECT_TRUE(hub.catching_up(watcher));
  EXPECT_EQ(hub.Take(watcher, 1).events.size(), 3u);
}

// ---- ScanHistory against the events the state machine reported when applying ----

using mvcc::testing::EngineKind;
using mvcc::testing::Store;

std::vector<mvccpb::Event> ApplyRandom(Store* store, std::mt19937* random, int commands) {
  std::vector<mvccpb::Event> all;
  const char* keys[] = {"a", "ab", "b", "c", "c\0d"};
  for (int i = 0; i < commands; ++i) {
    std::string key = keys[(*random)() % 5];
    if (key == "c") key = std::string("c\0d", 3);
    int kind = (*random)() % 4;
    std::vector<mvccpb::Event> events;
    CAIRN_CHECK_OK(store->Apply([&](storage::WriteBatch* batch) {
      if (kind == 0) {
        etcdserverpb::DeleteRangeRequest req;
        req.set_key(key);
        req.set_range_end(std::string(1, '\0'));
        etcdserverpb::DeleteRangeResponse resp;
        return store->kv()->ApplyDeleteRange(batch, req, &resp, &events);
      }
      if (kind == 1) {
        etcdserverpb::TxnRequest req;
        *req.add_success() = mvcc::testing::PutOp(key, "t" + std::to_string(i));
        *req.add_success() = mvcc::testing::PutOp(key == "b" ? "a" : "b", "t" + std::to_string(i));
        etcdserverpb::TxnResponse resp;
        return store->kv()->ApplyTxn(batch, req, &resp, &events);
      }
      etcdserverpb::PutRequest req;
      req.set_key(key);
      req.set_value("v" + std::to_string(i));
      etcdserverpb::PutResponse resp;
      return store->kv()->ApplyPut(batch, req, &resp, &events);
    }));
    for (auto& event : events) all.push_back(std::move(event));
  }
  return all;
}

TEST(ScanHistoryTest, MatchesAppliedEvents) {
  for (EngineKind kind : {EngineKind::kMemory, EngineKind::kRocksDb}) {
    Store store(kind);
    std::mt19937 random(7);
    std::vector<mvccpb::Event> applied = ApplyRandom(&store, &random, 200);
    const int64_t current = store.kv()->CurrentRevision();
    std::vector<WatchSpec> specs = {
        {.key = "a"},
        {.key = "a", .range_end = "c"},
        {.key = std::string(1, '\0'), .range_end = std::string(1, '\0')},
        {.key = "b", .range_end = std::string(1, '\0')},
        {.key = std::string("c\0d", 3)}};
    for (WatchSpec spec : specs) {
      spec.prev_kv = true;
      for (int64_t after : {int64_t{1}, int64_t{50}, current - 1}) {
        std::vector<mvccpb::Event> expected;
        for (const auto& event : applied) {
          if (event.kv().mod_revision() > after && spec.Wants(event)) expected.push_back(event);
        }
        mvcc::HistoryScan scan;
        ASSERT_TRUE(mvcc::ScanHistory(store.engine(), spec.key, spec.range_end, after, current,
                                      10000, &scan)
                        .ok());
        EXPECT_EQ(scan.scanned_through, current);
        ASSERT_EQ(scan.events.size(), expected.size()) << spec.key << " after " << after;
        for (size_t i = 0; i < expected.size(); ++i) {
          EXPECT_EQ(scan.events[i].SerializeAsString(), expected[i].SerializeAsString())
              << i << ": " << scan.events[i].ShortDebugString() << " vs "
              << expected[i].ShortDebugString();
        }
        // Bounded: the same events, in steps.
        std::vector<mvccpb::Event> stepped;
        int64_t from = after;
        while (from < current) {
          ASSERT_TRUE(
              mvcc::ScanHistory(store.engine(), spec.key, spec.range_end, from, current, 3, &scan)
                  .ok());
          ASSERT_GT(scan.scanned_through, from);
          EXPECT_LE(scan.events.size(), 3u + 2u);  // + one revision (a txn has two events)
          for (auto& event : scan.events) stepped.push_back(event);
          from = scan.scanned_through;
        }
        EXPECT_EQ(stepped.size(), expected.size());
      }
    }
  }
}

}  // namespace
}  // namespace cairn::feed
