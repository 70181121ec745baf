// GroupDispatcher driven exactly: events in, consumers, acks, nacks, time; progress out.
#include "src/events/persistent_dispatcher.h"

#include <gtest/gtest.h>

#include <map>
#include <set>

namespace cairn::events {
namespace {

std::string Id(uint64_t n) { return "id-" + std::to_string(n); }

// Event version n of `stream` (stream source "orders-1" unless given).
v1::RecordedEvent StreamEvent(uint64_t version, std::string stream = "orders-1") {
  v1::RecordedEvent event;
  event.set_stream(std::move(stream));
  event.set_version(version);
  event.set_id(Id(version));
  event.mutable_position()->set_revision(100 + version);
  return event;
}

PersistentState::Progress Fresh(std::string source = "orders-1", uint32_t max_retries = 10,
                                v1::ConsumerStrategy strategy = v1::ROUND_ROBIN) {
  PersistentState::Progress progress;
  progress.group.set_group_id(7);
  progress.group.set_source(std::move(source));
  progress.group.set_group("g");
  progress.group.mutable_settings()->set_max_retry_count(max_retries);
  progress.group.mutable_settings()->set_message_timeout_ms(1000);
  progress.group.mutable_settings()->set_strategy(strategy);
  return progress;
}

std::vector<v1::RecordedEvent> Versions(uint64_t first, uint64_t count) {
  std::vector<v1::RecordedEvent> events;
  for (uint64_t v = first; v < first + count; ++v) events.push_back(StreamEvent(v));
  return events;
}

// consumer -> ids delivered, in order.
std::map<uint64_t, std::vector<std::string>> Delivered(
    const std::vector<GroupDispatcher::Delivery>& deliveries) {
  std::map<uint64_t, std::vector<std::string>> out;
  for (const auto& d : deliveries) out[d.consumer].push_back(d.message.event().event().id());
  return out;
}

std::optional<uint64_t> CheckpointVersion(const command::PersistentProgress& progress) {
  if (!progress.has_checkpoint()) return std::nullopt;
  return progress.checkpoint().version();
}

TEST(GroupDispatcherTest, RoundRobinWithinBufferSizesAndAcksMoveTheCheckpoint) {
  GroupDispatcher d(Fresh());
  uint64_t a = *d.AddConsumer("a", 2);
  uint64_t b = *d.AddConsumer("b", 2);
  d.AddEvents(Versions(0, 6), std::nullopt);
  std::vector<GroupDispatcher::Delivery> out;
  d.Dispatch(0, &out);
  auto by = Delivered(out);
  // Two each (buffer 2), alternating; events 4 and 5 wait for room.
  EXPECT_EQ(by[a], (std::vector<std::string>{Id(0), Id(2)}));
  EXPECT_EQ(by[b], (std::vector<std::string>{Id(1), Id(3)}));
  EXPECT_EQ(d.stats().in_flight, 4u);

  d.Ack({Id(1)});  // out of order: nothing below it is handled yet
  auto progress = d.TakeProgress(0, false);
  ASSERT_TRUE(progress.has_value());
  EXPECT_FALSE(progress->has_checkpoint());
  ASSERT_EQ(progress->done_size(), 1);
  EXPECT_EQ(progress->done(0).version(), 1u);

  d.Ack({Id(0)});
  progress = d.TakeProgress(0, true);
  ASSERT_TRUE(progress.has_value());
  EXPECT_EQ(CheckpointVersion(*progress), 1u);
  // The record written for 1 is now below the checkpoint: it is forgotten.
  ASSERT_EQ(progress->forget_size(), 1);
  EXPECT_EQ(progress->forget(0).version(), 1u);
  EXPECT_EQ(progress->done_size(), 0);

  out.clear();
  d.Dispatch(0, &out);
  by = Delivered(out);
  EXPECT_EQ(by[a].size() + by[b].size(), 2u);  // 4 and 5 now have room
  EXPECT_FALSE(d.TakeProgress(0, false).has_value());
}

TEST(GroupDispatcherTest, FailuresRetryUntilMaxRetryCountThenPark) {
  GroupDispatcher d(Fresh("orders-1", /*max_retries=*/2));
  uint64_t a = *d.AddConsumer("a", 10);
  d.AddEvents(Versions(0, 2), std::nullopt);
  std::vector<uint32_t> retry_counts;
  for (int attempt = 0; attempt < 3; ++attempt) {
    std::vector<GroupDispatcher::Delivery> out;
    d.Dispatch(0, &out);
    bool saw_poison = false;
    for (const auto& delivery : out) {
      EXPECT_EQ(delivery.consumer, a);
      const auto& message = delivery.message.event();
      if (message.event().id() == Id(0)) {
        saw_poison = true;
        retry_counts.push_back(message.retry_count());
      } else {
        d.Ack({message.event().id()});
      }
    }
    ASSERT_TRUE(saw_poison) << attempt;
    d.Nack({Id(0)}, v1::NACK_RETRY);
  }
  EXPECT_EQ(retry_counts, (std::vector<uint32_t>{0, 1, 2}));
  std::vector<GroupDispatcher::Delivery> out;
  d.Dispatch(0, &out);
  EXPECT_TRUE(out.empty()) << "a parked event is not delivered again";
  auto progress = d.TakeProgress(0, true);
  ASSERT_TRUE(progress.has_value());
  ASSERT_EQ(progress->parked_size(), 1);
  EXPECT_EQ(progress->parked(0).revision(), 100u);
  EXPECT_EQ(CheckpointVersion(*progress), 1u);  // parked counts as handled
  EXPECT_EQ(d.stats().parked, 1u);
}

TEST(GroupDispatcherTest, TimeoutsAndDepartedConsumersRedeliverElsewhere) {
  GroupDispatcher d(Fresh());
  uint64_t a = *d.AddConsumer("a", 1);
  d.AddEvents(Versions(0, 2), std::nullopt);
  std::vector<GroupDispatcher::Delivery> out;
  d.Dispatch(0, &out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].consumer, a);
  d.Expire(999);
  out.clear();
  d.Dispatch(999, &out);
  EXPECT_TRUE(out.empty()) << "not timed out yet, and a has no room";
  d.Expire(1000);
  out.clear();
  d.Dispatch(1000, &out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].message.event().event().id(), Id(0));
  EXPECT_EQ(out[0].message.event().retry_count(), 1u);

  uint64_t b = *d.AddConsumer("b", 5);
  d.RemoveConsumer(a);
  out.clear();
  d.Dispatch(1000, &out);
  auto by = Delivered(out);
  EXPECT_EQ(by[b], (std::vector<std::string>{Id(0), Id(1)}));  // the retry comes first
  auto progress = d.TakeProgress(1000, false);
  ASSERT_TRUE(progress.has_value());
  ASSERT_EQ(progress->retries_size(), 1);
  EXPECT_EQ(progress->retries(0).retries(), 2u);
}

TEST(GroupDispatcherTest, NackSkipAndParkAndAcksOfUnknownIdsAreIgnored) {
  GroupDispatcher d(Fresh());
  (void)*d.AddConsumer("a", 10);
  d.AddEvents(Versions(0, 3), std::nullopt);
  std::vector<GroupDispatcher::Delivery> out;
  d.Dispatch(0, &out);
  ASSERT_EQ(out.size(), 3u);
  d.Ack({"not-an-id", Id(99)});
  d.Nack({Id(0)}, v1::NACK_SKIP);
  d.Nack({Id(1)}, v1::NACK_PARK);
  d.Ack({Id(2), Id(2)});
  auto progress = d.TakeProgress(0, true);
  ASSERT_TRUE(progress.has_value());
  EXPECT_EQ(CheckpointVersion(*progress), 2u);
  ASSERT_EQ(progress->parked_size(), 1);
  EXPECT_EQ(progress->parked(0).revision(), 101u);
  EXPECT_EQ(d.stats().acked, 1u);
  EXPECT_EQ(d.stats().nacked, 2u);
}

TEST(GroupDispatcherTest, StartsAgainFromReplicatedProgress) {
  auto progress = Fresh("orders-1", 3);
  progress.group.mutable_checkpoint()->set_version(1);  // 0 and 1 handled
  records::PersistentEventRecord done;
  done.set_done(true);
  records::PersistentEventRecord failed;
  failed.set_retries(2);
  progress.events.emplace_back(CursorKey{1, 0}, done);  // stale: below the checkpoint
  progress.events.emplace_back(CursorKey{3, 0}, failed);
  progress.events.emplace_back(CursorKey{4, 0}, done);
  GroupDispatcher d(std::move(progress));
  ASSERT_TRUE(d.ReadAfter().has_value());
  EXPECT_EQ(d.ReadAfter()->major, 1u);
  (void)*d.AddConsumer("a", 10);
  d.AddEvents(Versions(2, 4), std::nullopt);  // 2, 3, 4, 5
  std::vector<GroupDispatcher::Delivery> out;
  d.Dispatch(0, &out);
  std::vector<std::pair<std::string, uint32_t>> got;
  for (const auto& delivery : out) {
    got.emplace_back(delivery.message.event().event().id(), delivery.message.event().retry_count());
  }
  EXPECT_EQ(got,
            (std::vector<std::pair<std::string, uint32_t>>{{Id(2), 0}, {Id(3), 2}, {Id(5), 0}}));
  auto first = d.TakeProgress(0, false);
  ASSERT_TRUE(first.has_value());
  ASSERT_EQ(first->forget_size(), 1);  // the stale record
  EXPECT_EQ(first->forget(0).version(), 1u);
  d.Ack({Id(2), Id(3), Id(5)});
  auto next = d.TakeProgress(0, true);
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(CheckpointVersion(*next), 5u);
  std::set<uint64_t> forgotten;
  for (const auto& cursor : next->forget()) forgotten.insert(cursor.version());
  EXPECT_EQ(forgotten, (std::set<uint64_t>{3, 4}));
}

TEST(GroupDispatcherTest, PinnedKeepsEachStreamOnOneConsumer) {
  GroupDispatcher d(Fresh("$ce-orders", 10, v1::PINNED));
  (void)*d.AddConsumer("a", 1000);
  (void)*d.AddConsumer("b", 1000);
  (void)*d.AddConsumer("c", 1000);
  std::vector<v1::RecordedEvent> events;
  for (uint64_t n = 0; n < 90; ++n) {
    v1::RecordedEvent event = StreamEvent(n / 9, "orders-" + std::to_string(n % 9));
    event.set_link_version(n);
    event.set_id(Id(n));
    events.push_back(std::move(event));
  }
  d.AddEvents(std::move(events), std::nullopt);
  std::vector<GroupDispatcher::Delivery> out;
  d.Dispatch(0, &out);
  ASSERT_EQ(out.size(), 90u);
  std::map<std::string, std::set<uint64_t>> consumers_of_stream;
  std::set<uint64_t> used;
  for (const auto& delivery : out) {
    consumers_of_stream[delivery.message.event().event().stream()].insert(delivery.consumer);
    used.insert(delivery.consumer);
  }
  for (const auto& [stream, consumers] : consumers_of_stream) {
    EXPECT_EQ(consumers.size(), 1u) << stream;
  }
  EXPECT_GT(used.size(), 1u);
}

TEST(GroupDispatcherTest, DispatchToSingleFillsTheFirstConsumerFirst) {
  GroupDispatcher d(Fresh("orders-1", 10, v1::DISPATCH_TO_SINGLE));
  uint64_t a = *d.AddConsumer("a", 3);
  uint64_t b = *d.AddConsumer("b", 3);
  d.AddEvents(Versions(0, 4), std::nullopt);
  std::vector<GroupDispatcher::Delivery> out;
  d.Dispatch(0, &out);
  auto by = Delivered(out);
  EXPECT_EQ(by[a].size(), 3u);
  EXPECT_EQ(by[b], (std::vector<std::string>{Id(3)}));
}

TEST(GroupDispatcherTest, MaxSubscriberCountIsEnforced) {
  auto progress = Fresh();
  progress.group.mutable_settings()->set_max_subscriber_count(1);
  GroupDispatcher d(std::move(progress));
  ASSERT_TRUE(d.AddConsumer("a", 1).ok());
  Result<uint64_t> second = d.AddConsumer("b", 1);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), StatusCode::kResourceExhausted);
}

TEST(GroupDispatcherTest, ReplayedParkedEventsComeFirstAndFinish) {
  GroupDispatcher d(Fresh());
  (void)*d.AddConsumer("a", 10);
  records::ReplayRecord replay;
  replay.mutable_position()->set_revision(100);
  d.AddReplays({{0, replay}, {1, replay}});
  auto to_load = d.TakeReplaysToLoad();
  ASSERT_EQ(to_load.size(), 2u);
  d.AddReplayEvent(0, StreamEvent(0));
  d.AddReplayEvent(1, std::nullopt);  // gone: finished at once
  d.AddEvents(Versions(5, 1), std::nullopt);
  std::vector<GroupDispatcher::Delivery> out;
  d.Dispatch(0, &out);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].message.event().event().id(), Id(0));
  d.Ack({Id(0)});
  auto progress = d.TakeProgress(0, false);
  ASSERT_TRUE(progress.has_value());
  std::vector<uint64_t> done(progress->replay_done().begin(), progress->replay_done().end());
  std::sort(done.begin(), done.end());
  EXPECT_EQ(done, (std::vector<uint64_t>{0, 1}));
  d.AddReplays({{0, replay}, {1, replay}});  // seen already: ignored
  EXPECT_TRUE(d.TakeReplaysToLoad().empty());
}

TEST(GroupDispatcherTest, WindowIsBounded) {
  GroupDispatcher d(Fresh());
  EXPECT_EQ(d.WantedEvents(), PersistentLimits::kWindowEventsMax);
  d.AddEvents(Versions(0, PersistentLimits::kWindowEventsMax), std::nullopt);
  EXPECT_EQ(d.WantedEvents(), 0u);
}

}  // namespace
}  // namespace cairn::events
