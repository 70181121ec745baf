// Hub: hands the events of applied batches to watchers, matched by key range.
//
//   apply thread ─ Publish(revision, events) ─▶ per watcher: filter, bounded buffer, Notify
//   consumer (a watch stream) ─ Take(id) ─▶ buffered events | "catch up from storage"
//
// Each watcher has a buffer of at most HubOptions::watcher_buffer_events_max events (plus one
// revision). A watcher whose buffer would overflow is switched to catch-up mode: the hub stops
// buffering for it and its consumer reads the missed revisions from storage
// (mvcc::ScanHistory) in bounded steps, then the watcher rejoins live. So a slow watcher costs
// a bounded amount of memory and never blocks Publish or other watchers.
//
// Cost: Publish looks only at the watchers whose key range holds an event's key — single keys
// through a hash map (O(1 + matches) per event), ranges through an interval index
// (src/feed/interval_index.h, O((1 + matches) · log n)) — and never at the others: a live watcher
// with nothing buffered is synced through the hub's revision implicitly, so 100,000 idle watchers
// cost nothing per batch.
//
// Ordering: a consumer that delivers what Take returns, in order (and the result of each
// catch-up scan before the next Take), delivers every matching event exactly once, in
// revision order, all events of one revision together.
//
// Thread-safety: all methods are thread-safe. Notify callbacks run under the hub's lock (on the
// publishing or adding thread): they must be short and must not call into the hub.
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "mvccpb/kv.pb.h"
#include "src/feed/interval_index.h"

namespace cairn::feed {

struct HubOptions {
  // Most events buffered for one watcher before it switches to catch-up (a single revision
  // with more events is still buffered whole). Default: 1024.
  size_t watcher_buffer_events_max = 1024;
};

// What a watcher wants (etcd's WatchCreateRequest without the stream-level fields).
struct WatchSpec {
  std::string key{};
  // etcd's convention: empty = the single key; "\0" = every key >= key; else [key, range_end).
  std::string range_end{};
  // The first revision wanted; 0 = the next one.
  int64_t start_revision = 0;
  bool prev_kv = false;
  bool no_put = false;
  bool no_delete = false;

  bool ContainsKey(const std::string& k) const;
  // Whether the watcher gets `event` (key range and filters).
  bool Wants(const mvccpb::Event& event) const;
};

// Filters `events` for `spec` (Wants; prev_kv stripped unless asked) into *out.
void FilterEvents(const WatchSpec& spec, const std::vector<mvccpb::Event>& events,
                  std::vector<mvccpb::Event>* out);

class Hub {
 public:
  using WatcherId = uint64_t;
  using Notify = std::function<void()>;

  struct Taken {
    enum class Kind { kNothing, kEvents, kCatchUp };
    Kind kind = Kind::kNothing;
    // kEvents: whole revisions, in order (at least one).
    std::vector<mvccpb::Event> events;
    // kCatchUp: read revisions (after_revision, through_revision] from storage, then call
    // CatchUpScanned.
    int64_t after_revision = 0;
    int64_t through_revision = 0;
  };

  // `revision` is the store's current revision when the hub starts.
  explicit Hub(int64_t revision, const HubOptions& options = {});
  Hub(const Hub&) = delete;
  Hub& operator=(const Hub&) = delete;

  // Registers a watcher. `notify` is called whenever Take may return something new. A
  // start_revision at or below the current revision starts in catch-up mode. `revision`, when
  // given, receives the hub's revision at registration (the created response's revision).
  WatcherId Add(const WatchSpec& spec, Notify notify, int64_t* revision = nullptr);
  void Remove(WatcherId id);

  // The events of one applied batch (any number of revisions, in order); `revision` is the
  // store's revision after it. Called from the apply thread.
  void Publish(int64_t revision, const std::vector<mvccpb::Event>& events);
  // The store jumped to `revision` without events (a Raft snapshot install replaced it): every
  // watcher switches to catch-up and reads the revisions it missed from storage.
  // REQUIRES: revision >= revision().
  void JumpTo(int64_t revision);

  // The revision of the last published batch.
  int64_t revision() const;

  // The next thing for the consumer of watcher `id` (at most about events_max events).
  Taken Take(WatcherId id, size_t events_max);
  // After a kCatchUp: the scan returned every event through `scanned_through` (it may stop
  // early when bounded); the rest is read by a later catch-up.
  void CatchUpScanned(WatcherId id, int64_t through_revision, int64_t scanned_through);
  // Whether watcher `id` has delivered everything up to revision(): nothing buffered, not
  // catching up (a progress notification may then carry revision()).
  bool Synced(WatcherId id) const;
  // revision() when every watcher in `ids` is Synced at that revision (atomically), else
  // nullopt.
  std::optional<int64_t> SyncedRevision(const std::vector<WatcherId>& ids) const;

  size_t watcher_count() const;
  size_t buffered_events(WatcherId id) const;
  bool catching_up(WatcherId id) const;
  // Watchers (and range-index nodes) Publish has looked at since the hub was built: its cost
  // grows with the matching watchers, not with all of them (for tests and metrics).
  uint64_t publish_watchers_examined() const;

 private:
  struct Group {
    int64_t revision = 0;
    std::vector<mvccpb::Event> events;
  };
  struct Watcher {
    WatcherId id = 0;
    WatchSpec spec;
    Notify notify;
    // Every matching event of a revision <= queued_through is delivered, buffered, or being
    // scanned by the consumer. A live watcher (not catch_up) is also synced through the hub's
    // revision_ — Publish does not touch watchers it has nothing for — so its position is
    // max(queued_through, revision_); queued_through > revision_ only for a start_revision
    // in the future.
    int64_t queued_through = 0;
    // Events after queued_through were not buffered: the consumer must catch up.
    bool catch_up = false;
    // Whole revisions, oldest first from buffer_head (a vector used as a queue: no allocation
    // for an idle watcher, unlike std::deque).
    std::vector<Group> buffer;
    size_t buffer_head = 0;
    size_t buffered = 0;
    // Where the index keeps this watcher: by_key_ slot (single key) or range node.
    size_t key_slot = 0;
    IntervalIndex<Watcher*>::Handle range = nullptr;
    // Publish scratch: the group being built for this watcher in the current revision
    // (valid while group_stamp == the hub's group_stamp_) and whether it is to be notified.
    uint64_t group_stamp = 0;
    size_t group_index = 0;
    uint64_t notify_stamp = 0;
  };

  bool BufferEmpty(const Watcher& watcher) const {
    return watcher.buffer_head == watcher.buffer.size();
  }
  const Watcher* Find(WatcherId id) const;  // REQUIRES: mutex_ held; null when unknown
  void Deliver(Watcher* watcher, Group&& group);
  // Calls match(watcher) for every watcher whose key range holds `key`. REQUIRES: mutex_ held
  template <typename Match>
  void ForEachMatching(const std::string& key, Match&& match);

  const HubOptions options_;
  mutable std::mutex mutex_;
  int64_t revision_;                                 // GUARDED_BY(mutex_)
  WatcherId next_id_ = 1;                            // GUARDED_BY(mutex_)
  std::unordered_map<WatcherId, Watcher> watchers_;  // GUARDED_BY(mutex_); nodes are stable
  // Single-key watchers by key (Watcher::key_slot is the position in the vector).
  std::unordered_map<std::string, std::vector<Watcher*>> by_key_;  // GUARDED_BY(mutex_)
  // Range watchers ("\0" range_end = unbounded).
  IntervalIndex<Watcher*> ranges_;  // GUARDED_BY(mutex_)
  // Publish scratch, kept to reuse its memory.
  uint64_t group_stamp_ = 0;                        // GUARDED_BY(mutex_)
  uint64_t notify_stamp_ = 0;                       // GUARDED_BY(mutex_)
  std::vector<std::pair<Watcher*, Group>> groups_;  // GUARDED_BY(mutex_)
  std::vector<Watcher*> to_notify_;                 // GUARDED_BY(mutex_)
  uint64_t publish_watchers_examined_ = 0;          // GUARDED_BY(mutex_)
};

}  // namespace cairn::feed
