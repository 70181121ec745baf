// Tests of the watch hub (matching, order, bounded buffers, catch-up) and of
// mvcc::ScanHistory, the storage read catch-up uses.
#include "src/feed/hub.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <iterator>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "src/feed/interval_index.h"
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

// ---- the interval index and the hub's matching structures ----

TEST(IntervalIndexTest, StabbingMatchesBruteForce) {
  std::mt19937 random(11);
  const std::string alphabet = std::string("ab") + '\0' + "c\xff";
  auto random_key = [&] {
    std::string key;
    for (size_t length = random() % 4; length > 0; --length) key += alphabet[random() % 5];
    return key;
  };
  struct Range {
    std::string begin, end;
    bool unbounded;
    IntervalIndex<int>::Handle handle;
  };
  IntervalIndex<int> index;
  std::map<int, Range> live;
  for (int step = 0; step < 3000; ++step) {
    if (live.empty() || random() % 3 != 0) {
      std::string begin = random_key(), end = random_key();
      const bool unbounded = random() % 5 == 0;
      if (!unbounded && begin >= end) continue;
      live[step] = {begin, end, unbounded, index.Insert(begin, end, unbounded, step)};
    } else {
      auto victim = live.begin();
      std::advance(victim, random() % live.size());
      index.Remove(victim->second.handle);
      live.erase(victim);
    }
    ASSERT_EQ(index.size(), live.size());
    const std::string key = random_key();
    std::set<int> expected, found;
    for (const auto& [value, range] : live) {
      if (key >= range.begin && (range.unbounded || key < range.end)) expected.insert(value);
    }
    index.ForEachContaining(key, [&](int value) { EXPECT_TRUE(found.insert(value).second); });
    ASSERT_EQ(found, expected) << "step " << step;
  }
}

TEST(IntervalIndexTest, StabbingLooksAtFewNodes) {
  IntervalIndex<int> index;
  // 20,000 disjoint ranges [k00000, k00000\xff) ...: a key is in at most one.
  for (int i = 0; i < 20000; ++i) {
    char key[16];
    std::snprintf(key, sizeof(key), "k%05d", i);
    index.Insert(key, std::string(key) + '\xff', false, i);
  }
  int matches = 0;
  size_t examined = index.ForEachContaining("k12345x", [&](int value) {
    EXPECT_EQ(value, 12345);
    ++matches;
  });
  EXPECT_EQ(matches, 1);
  EXPECT_LT(examined, 200u);  // O(log n); a walk over all ranges would be 20,000
  EXPECT_LT(index.ForEachContaining("zzz", [](int) { ADD_FAILURE(); }), 200u);
}

TEST(HubTest, RangeEdgeCases) {
  Hub hub(1);
  const std::string to_end(1, '\0');
  Hub::WatcherId exact = hub.Add({.key = "b"}, [] {});  // empty range_end: "b" only
  Hub::WatcherId from_b = hub.Add({.key = "b", .range_end = to_end}, [] {});
  Hub::WatcherId everything = hub.Add({.key = "", .range_end = to_end}, [] {});
  Hub::WatcherId b_to_c = hub.Add({.key = "b", .range_end = "c"}, [] {});  // end exclusive
  Hub::WatcherId overlap = hub.Add({.key = "ba", .range_end = "bb"}, [] {});
  Hub::WatcherId empty = hub.Add({.key = "c", .range_end = "b"}, [] {});  // matches nothing
  Hub::WatcherId nul_key = hub.Add({.key = std::string("b\0", 2)}, [] {});
  hub.Publish(6, {PutEvent("a", 2), PutEvent("b", 3), PutEvent(std::string("b\0", 2), 4),
                  PutEvent("bab", 5), PutEvent("c", 6)});
  auto keys = [&](Hub::WatcherId id) { return Keys(hub.Take(id, 100).events); };
  using Strings = std::vector<std::string>;
  const std::string b_nul("b\0", 2);
  EXPECT_EQ(keys(exact), (Strings{"b"}));
  EXPECT_EQ(keys(from_b), (Strings{"b", b_nul, "bab", "c"}));
  EXPECT_EQ(keys(everything), (Strings{"a", "b", b_nul, "bab", "c"}));
  EXPECT_EQ(keys(b_to_c), (Strings{"b", b_nul, "bab"}));
  EXPECT_EQ(keys(overlap), (Strings{"bab"}));
  EXPECT_EQ(hub.Take(empty, 100).kind, Hub::Taken::Kind::kNothing);
  EXPECT_EQ(keys(nul_key), (Strings{b_nul}));
  EXPECT_EQ(hub.SyncedRevision({exact, from_b, everything, b_to_c, overlap, empty, nul_key}),
            std::optional<int64_t>(6));
  hub.Remove(empty);
  hub.Remove(overlap);
  hub.Publish(7, {PutEvent("bab", 7)});
  EXPECT_EQ(keys(b_to_c), (Strings{"bab"}));
  EXPECT_EQ(hub.watcher_count(), 5u);
}

TEST(HubTest, RemovalWhileOthersShareTheKeyAndHoldEvents) {
  Hub hub(1);
  std::vector<Hub::WatcherId> ids;
  for (int i = 0; i < 50; ++i) {
    ids.push_back(i % 2 == 0 ? hub.Add({.key = "k"}, [] {})
                             : hub.Add({.key = "j", .range_end = "l"}, [] {}));
  }
  hub.Publish(2, {PutEvent("k", 2)});
  // Remove every third watcher (with its buffered event), in an order that moves slots.
  std::vector<Hub::WatcherId> kept;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i % 3 == 0) {
      hub.Remove(ids[ids.size() - 1 - i]);
    } else {
      kept.push_back(ids[ids.size() - 1 - i]);
    }
  }
  hub.Remove(ids.back());  // removed twice: a no-op
  EXPECT_EQ(hub.Take(ids.back(), 100).kind, Hub::Taken::Kind::kNothing);
  EXPECT_FALSE(hub.Synced(ids.back()));
  hub.Publish(3, {PutEvent("k", 3)});
  EXPECT_EQ(hub.watcher_count(), kept.size());
  for (Hub::WatcherId id : kept) {
    auto events = hub.Take(id, 100).events;
    ASSERT_EQ(events.size(), 2u) << id;
    EXPECT_EQ(events[0].kv().mod_revision(), 2);
    EXPECT_EQ(events[1].kv().mod_revision(), 3);
  }
  for (Hub::WatcherId id : kept) hub.Remove(id);
  EXPECT_EQ(hub.watcher_count(), 0u);
  hub.Publish(4, {PutEvent("k", 4)});
}

TEST(HubTest, CatchUpThenRejoinLive) {
  Hub hub(1, {.watcher_buffer_events_max = 2});
  int notified = 0;
  Hub::WatcherId watcher = hub.Add({.key = "a", .range_end = "b"}, [&] { ++notified; });
  Hub::WatcherId idle = hub.Add({.key = "x"}, [] {});
  for (int64_t revision = 2; revision <= 6; ++revision)
    hub.Publish(revision, {PutEvent("a", revision)});
  EXPECT_TRUE(hub.catching_up(watcher));
  EXPECT_FALSE(hub.Synced(watcher));
  EXPECT_EQ(hub.SyncedRevision({watcher, idle}), std::nullopt);
  EXPECT_EQ(hub.SyncedRevision({idle}), std::optional<int64_t>(6));
  const int notified_before = notified;
  hub.Publish(7, {PutEvent("a", 7)});  // nothing for a watcher already catching up
  EXPECT_EQ(notified, notified_before);
  EXPECT_EQ(hub.Take(watcher, 100).events.size(), 2u);  // revisions 2 and 3
  auto taken = hub.Take(watcher, 100);
  ASSERT_EQ(taken.kind, Hub::Taken::Kind::kCatchUp);
  EXPECT_EQ(taken.after_revision, 3);
  EXPECT_EQ(taken.through_revision, 7);
  hub.Publish(8, {PutEvent("zz", 8)});  // not matching: the watcher is not touched
  hub.Publish(9, {PutEvent("ab", 9)});  // buffered while the consumer scans
  hub.CatchUpScanned(watcher, 7, 7);
  EXPECT_FALSE(hub.Synced(watcher));
  taken = hub.Take(watcher, 100);
  ASSERT_EQ(Keys(taken.events), (std::vector<std::string>{"ab"}));
  EXPECT_TRUE(hub.Synced(watcher));
  EXPECT_EQ(hub.SyncedRevision({watcher, idle}), std::optional<int64_t>(9));
  // Live again: idle batches keep it synced, new events are buffered.
  hub.Publish(10, {PutEvent("zz", 10)});
  EXPECT_TRUE(hub.Synced(watcher));
  hub.Publish(11, {PutEvent("a", 11)});
  EXPECT_EQ(hub.Take(watcher, 100).events.at(0).kv().mod_revision(), 11);
  EXPECT_FALSE(hub.catching_up(watcher));
}

// The cause of the 100,000-watcher latency: Publish walked every watcher per batch.
TEST(HubTest, PublishDoesNotTouchIdleWatchers) {
  Hub hub(1);
  std::vector<Hub::WatcherId> ids;
  for (int i = 0; i < 20000; ++i) {
    char key[16];
    std::snprintf(key, sizeof(key), "k%05d", i);
    ids.push_back(i % 2 == 0 ? hub.Add({.key = key}, [] { ADD_FAILURE(); })
                             : hub.Add({.key = key, .range_end = std::string(key) + "0"},
                                       [] { ADD_FAILURE(); }));
  }
  int notified = 0;
  Hub::WatcherId matching = hub.Add({.key = "other"}, [&] { ++notified; });
  const uint64_t examined_before = hub.publish_watchers_examined();
  for (int64_t revision = 2; revision <= 101; ++revision) {
    hub.Publish(revision, {PutEvent(revision % 2 == 0 ? "other" : "nobody", revision)});
  }
  EXPECT_EQ(notified, 50);
  // 100 events: one single-key match each at most, and O(log n) range-index nodes.
  EXPECT_LT(hub.publish_watchers_examined() - examined_before, 100u * 64u);
  EXPECT_EQ(hub.SyncedRevision(ids), std::optional<int64_t>(101));
  for (Hub::WatcherId id : {ids.front(), ids[1], ids.back()}) EXPECT_TRUE(hub.Synced(id));
  EXPECT_EQ(hub.Take(matching, 1000).events.size(), 50u);
  // A batch for one more key looks at its watcher, not at the 20,000 others.
  const uint64_t examined_single = hub.publish_watchers_examined();
  ids.push_back(hub.Add({.key = "k00002x"}, [] {}));
  hub.Publish(102, {PutEvent("k00002x", 102)});
  EXPECT_LT(hub.publish_watchers_examined() - examined_single, 64u);
  EXPECT_EQ(hub.buffered_events(ids.back()), 1u);
}

// Exactly-once, in order, with catch-ups from a model history: random watchers, batches,
// bounded buffers, early-stopping scans, removals.
TEST(HubTest, RandomScheduleDeliversEveryMatchingEventOnce) {
  std::mt19937 random(5);
  const std::vector<std::string> keys = {"a", "ab", "b", "ba", "c"};
  const std::string to_end(1, '\0');
  const std::vector<WatchSpec> specs = {{.key = "a"},
                                        {.key = "a", .range_end = "b"},
                                        {.key = "ab", .range_end = "c"},
                                        {.key = "b", .range_end = to_end},
                                        {.key = "", .range_end = to_end},
                                        {.key = "ba", .no_put = true}};
  Hub hub(1, {.watcher_buffer_events_max = 3});
  std::vector<mvccpb::Event> history;  // everything published
  struct Consumer {
    WatchSpec spec;
    std::vector<mvccpb::Event> received;
    bool removed = false;
    bool scan_pending = false;  // `scan` was taken, not done yet
    Hub::Taken scan;
  };
  std::map<Hub::WatcherId, Consumer> consumers;
  std::vector<Hub::WatcherId> live;  // not removed
  int64_t revision = 1;
  int catch_ups = 0;
  auto scan = [&](const WatchSpec& spec, int64_t after, int64_t through, size_t events_max,
                  std::vector<mvccpb::Event>* out) {
    int64_t scanned = through;
    for (const auto& event : history) {
      const int64_t event_revision = event.kv().mod_revision();
      if (event_revision <= after || event_revision > through) continue;
      if (out->size() >= events_max && event_revision > out->back().kv().mod_revision()) {
        scanned = out->back().kv().mod_revision();
        break;
      }
      if (spec.Wants(event)) out->push_back(event);
    }
    return scanned;
  };
  for (int step = 0; step < 20000; ++step) {
    const int action = random() % 10;
    if (action == 0 && live.size() < 12) {
      WatchSpec spec = specs[random() % specs.size()];
      const int start = random() % 3;  // from the past, from the future, or the next one
      if (start == 0) spec.start_revision = std::max<int64_t>(1, revision - random() % 5);
      if (start == 1) spec.start_revision = revision + 1 + random() % 3;
      Hub::WatcherId id = hub.Add(spec, [] {});
      live.push_back(id);
      consumers[id].spec = spec;
      if (spec.start_revision == 0) consumers[id].spec.start_revision = revision + 1;
    } else if (action == 1 && !live.empty() && random() % 4 == 0) {
      const size_t victim = random() % live.size();
      hub.Remove(live[victim]);
      consumers[live[victim]].removed = true;
      live.erase(live.begin() + static_cast<ptrdiff_t>(victim));
    } else if (action < 6) {
      std::vector<mvccpb::Event> batch;
      for (int revisions = 1 + random() % 2; revisions > 0; --revisions) {
        ++revision;
        for (int count = 1 + random() % 3; count > 0; --count) {
          batch.push_back(random() % 4 == 0 ? DeleteEvent(keys[random() % keys.size()], revision)
                                            : PutEvent(keys[random() % keys.size()], revision));
        }
      }
      for (const auto& event : batch) history.push_back(event);
      hub.Publish(revision, batch);
    } else if (!live.empty()) {
      const Hub::WatcherId id = live[random() % live.size()];
      Consumer& consumer = consumers[id];
      if (consumer.scan_pending) {  // the scan ends later than the Take: batches in between
        std::vector<mvccpb::Event> scanned;
        int64_t through = scan(consumer.spec, consumer.scan.after_revision,
                               consumer.scan.through_revision, 1 + random() % 4, &scanned);
        hub.CatchUpScanned(id, consumer.scan.through_revision, through);
        for (auto& event : scanned) consumer.received.push_back(event);
        consumer.scan_pending = false;
        continue;
      }
      Hub::Taken taken = hub.Take(id, 1 + random() % 4);
      if (taken.kind == Hub::Taken::Kind::kEvents) {
        for (auto& event : taken.events) consumer.received.push_back(event);
      } else if (taken.kind == Hub::Taken::Kind::kCatchUp) {
        ++catch_ups;
        consumer.scan = taken;
        consumer.scan_pending = true;
      }
    }
  }
  // Drain everything, then compare with the history.
  for (auto& [id, consumer] : consumers) {
    if (consumer.removed) continue;
    while (true) {
      Hub::Taken taken = consumer.scan_pending ? consumer.scan : hub.Take(id, 4);
      consumer.scan_pending = false;
      if (taken.kind == Hub::Taken::Kind::kNothing) break;
      if (taken.kind == Hub::Taken::Kind::kEvents) {
        for (auto& event : taken.events) consumer.received.push_back(event);
        continue;
      }
      std::vector<mvccpb::Event> scanned;
      hub.CatchUpScanned(
          id, taken.through_revision,
          scan(consumer.spec, taken.after_revision, taken.through_revision, 4, &scanned));
      for (auto& event : scanned) consumer.received.push_back(event);
    }
    EXPECT_TRUE(hub.Synced(id));
    std::vector<std::string> expected, received;
    for (const auto& event : history) {
      if (event.kv().mod_revision() >= consumer.spec.start_revision && consumer.spec.Wants(event))
        expected.push_back(event.kv().key() + "@" + std::to_string(event.kv().mod_revision()));
    }
    for (const auto& event : consumer.received) {
      received.push_back(event.kv().key() + "@" + std::to_string(event.kv().mod_revision()));
    }
    EXPECT_EQ(received, expected) << "watcher " << id << " on " << consumer.spec.key;
  }
  EXPECT_EQ(hub.SyncedRevision({}), std::optional<int64_t>(revision));
  EXPECT_GT(catch_ups, 100);  // the schedule did exercise catch-up
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
