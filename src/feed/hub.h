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
// Ordering: a consumer that delivers what Take returns, in order (and the result of each
// catch-up scan before the next Take), delivers every matching event exactly once, in
// revision order, all events of one revision together.
//
// Thread-safety: all methods are thread-safe. Notify callbacks run under the hub's lock (on the
// publishing or adding thread): they must be short and must not call into the hub.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "mvccpb/kv.pb.h"

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

 private:
  struct Group {
    int64_t revision = 0;
    std::vector<mvccpb::Event> events;
  };
  struct Watcher {
    WatchSpec spec;
    Notify notify;
    // Every matching event of a revision <= queued_through is delivered, buffered, or being
    // scanned by the consumer.
    int64_t queued_through = 0;
    // Events after queued_through were not buffered: the consumer must catch up.
    bool catch_up = false;
    std::deque<Group> buffer;
    size_t buffered = 0;
  };

  void Deliver(Watcher* watcher, Group&& group);
  std::vector<Watcher*> Matching(const mvccpb::Event& event);  // REQUIRES: mutex_ held

  const HubOptions options_;
  mutable std::mutex mutex_;
  int64_t revision_;                       // GUARDED_BY(mutex_)
  WatcherId next_id_ = 1;                  // GUARDED_BY(mutex_)
  std::map<WatcherId, Watcher> watchers_;  // GUARDED_BY(mutex_)
  // Single-key watchers by key; the others (ranges) are checked one by one.
  std::unordered_multimap<std::string, WatcherId> by_key_;  // GUARDED_BY(mutex_)
  std::map<WatcherId, Watcher*> ranges_;                    // GUARDED_BY(mutex_)
};

}  // namespace cairn::feed
