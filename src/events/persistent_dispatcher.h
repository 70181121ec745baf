// GroupDispatcher: the in-memory half of one persistent subscription group on the member that
// serves it (docs/events.md, "Persistent subscriptions"). Pure logic: no threads, no clock
// (time comes in as `now_ms`), no I/O (the caller reads events and proposes progress), so
// tests drive it exactly.
//
//   source ─▶ AddEvents ─▶ window (checkpoint, frontier] ─▶ Dispatch ─▶ consumers
//   Ack / Nack / Expire / RemoveConsumer ─▶ entry states ─▶ TakeProgress ─▶ a replicated
//   PersistentProgress command (src/events/persistent_state.h records it)
//
// The window holds every event read but not yet handled, in source order, plus handled ones
// behind an unhandled one; the checkpoint advances over the handled prefix. An event that
// fails (nack retry, message timeout, its consumer gone) is delivered again until it failed
// 1 + max_retry_count times, then parked. Replayed parked events come first, then retries,
// then new events.
//
// Thread-safety: none; one owner (the service's dispatch thread).
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "cairn/command.pb.h"
#include "cairn/persistent.pb.h"
#include "src/base/result.h"
#include "src/events/persistent_state.h"

namespace cairn::events {

class GroupDispatcher {
 public:
  // `progress` as loaded by PersistentState::LoadProgress.
  explicit GroupDispatcher(PersistentState::Progress progress);

  const records::PersistentGroupRecord& group() const { return group_; }
  bool all_source() const { return all_; }
  // New settings from an update; the progress stays.
  void UpdateSettings(const v1::PersistentSubscriptionSettings& settings);

  // ---- Reading the source ----
  // How many events the window has room for (0: full).
  size_t WantedEvents() const;
  // Read after this cursor (nullopt: from the source's beginning).
  const std::optional<CursorKey>& ReadAfter() const { return frontier_; }
  // Events read after ReadAfter(), in source order; `scanned_to` is the last cursor the read
  // looked at (at or after the last event; a filtered read may skip events).
  void AddEvents(std::vector<v1::RecordedEvent> events, std::optional<CursorKey> scanned_to);
  // Replay records not seen yet (sequence >= every sequence seen).
  void AddReplays(const std::vector<std::pair<uint64_t, records::ReplayRecord>>& replays);
  // Replayed events whose event is still to be read: (sequence, position).
  std::vector<std::pair<uint64_t, v1::Position>> TakeReplaysToLoad();
  // The event of a replay (nullopt: it is gone, e.g. expired; the replay is finished).
  void AddReplayEvent(uint64_t sequence, std::optional<v1::RecordedEvent> event);

  // ---- Consumers ----
  // RESOURCE_EXHAUSTED when the group has max_subscriber_count consumers.
  Result<uint64_t> AddConsumer(std::string name, uint32_t buffer_size);
  // Its unacknowledged events fail (they count as a retry).
  void RemoveConsumer(uint64_t consumer);
  size_t ConsumerCount() const { return consumers_.size(); }
  // Ids not in flight (already handled, unknown) are ignored: acks may race a timeout.
  void Ack(const std::vector<std::string>& ids);
  void Nack(const std::vector<std::string>& ids, v1::NackAction action);
  // In-flight events whose message timeout passed fail.
  void Expire(int64_t now_ms);

  struct Delivery {
    uint64_t consumer = 0;
    v1::PersistentReadResponse message;
  };
  // Hands ready events to consumers with room, by the group's strategy.
  void Dispatch(int64_t now_ms, std::vector<Delivery>* out);

  // What changed since the last call, as a progress command; nullopt when nothing needs
  // recording. A moved checkpoint alone is proposed at most once per `checkpoint_interval_ms`
  // unless `force`.
  std::optional<command::PersistentProgress> TakeProgress(int64_t now_ms, bool force);

  struct Stats {
    uint64_t in_flight = 0;
    uint64_t delivered = 0;
    uint64_t acked = 0;
    uint64_t nacked = 0;
    uint64_t parked = 0;
    uint64_t window = 0;
  };
  const Stats& stats() const { return stats_; }

  static constexpr int64_t kCheckpointIntervalMs = 1000;
  // Window bytes (event data + metadata) beyond which no more events are read.
  static constexpr size_t kWindowBytesMax = 64 * 1024 * 1024;

 private:
  enum class State { kReady, kInFlight, kDone };
  struct Entry {
    v1::RecordedEvent event;
    State state = State::kReady;
    uint32_t retries = 0;
    uint64_t consumer = 0;
    int64_t deadline_ms = 0;
    bool recorded = false;  // an "R" record exists for it
  };
  // An entry: a window entry by cursor, or a replay by sequence.
  struct Ref {
    bool replay = false;
    CursorKey key;
    uint64_t sequence = 0;
  };
  struct Consumer {
    std::string name;
    uint32_t buffer_size = 0;
    uint32_t in_flight = 0;
  };

  Entry* Find(const Ref& ref);
  void Fail(const Ref& ref);
  void Park(const Ref& ref);
  void Finish(const Ref& ref);  // handled: acked or skipped
  void AdvanceCheckpoint();
  // The consumer for `entry` by the strategy, or 0 when none has room.
  uint64_t ChooseConsumer(const Entry& entry);
  void ReleaseInFlight(Entry* entry);

  records::PersistentGroupRecord group_;
  const bool all_;
  uint32_t max_retry_count_ = 0;
  int64_t message_timeout_ms_ = 0;

  std::optional<CursorKey> checkpoint_;
  std::optional<CursorKey> frontier_;
  std::map<CursorKey, Entry> window_;
  size_t window_bytes_ = 0;
  std::map<uint64_t, Entry> replays_;
  std::vector<std::pair<uint64_t, v1::Position>> replays_to_load_;
  uint64_t replay_seen_next_ = 0;
  // Progress records loaded at start, beyond the checkpoint, not yet matched to an event.
  std::map<CursorKey, records::PersistentEventRecord> known_;

  std::deque<Ref> ready_replays_;
  std::deque<Ref> ready_retries_;
  std::deque<Ref> ready_new_;
  std::unordered_map<std::string, Ref> in_flight_by_id_;

  std::map<uint64_t, Consumer> consumers_;
  uint64_t next_consumer_id_ = 1;
  uint64_t round_robin_after_ = 0;

  // Pending progress.
  std::map<CursorKey, bool> pending_done_;  // value unused: an ordered set
  std::map<CursorKey, uint32_t> pending_retries_;
  std::vector<v1::Position> pending_parked_;
  std::vector<CursorKey> pending_forget_;
  std::vector<uint64_t> pending_replay_done_;
  bool checkpoint_moved_ = false;
  int64_t last_checkpoint_ms_ = 0;

  Stats stats_;
};

}  // namespace cairn::events
