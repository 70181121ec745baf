#include "src/feed/hub.h"

#include <algorithm>
#include <utility>

#include "src/base/check.h"

namespace cairn::feed {

namespace {

// A consumed buffer prefix is dropped once it is this long and at least half the vector.
constexpr size_t kBufferHeadCompactMin = 32;
// An emptied buffer keeps at most this capacity (groups) for the next burst.
constexpr size_t kBufferCapacityKeptMax = 64;

}  // namespace

bool WatchSpec::ContainsKey(const std::string& k) const {
  if (range_end.empty()) return k == key;
  if (range_end == std::string(1, '\0')) return k >= key;
  return k >= key && k < range_end;
}

bool WatchSpec::Wants(const mvccpb::Event& event) const {
  if (no_put && event.type() == mvccpb::Event::PUT) return false;
  if (no_delete && event.type() == mvccpb::Event::DELETE) return false;
  return ContainsKey(event.kv().key());
}

void FilterEvents(const WatchSpec& spec, const std::vector<mvccpb::Event>& events,
                  std::vector<mvccpb::Event>* out) {
  for (const mvccpb::Event& event : events) {
    if (!spec.Wants(event)) continue;
    out->push_back(event);
    if (!spec.prev_kv) out->back().clear_prev_kv();
  }
}

Hub::Hub(int64_t revision, const HubOptions& options) : options_(options), revision_(revision) {
  CAIRN_CHECK(options_.watcher_buffer_events_max > 0);
}

Hub::WatcherId Hub::Add(const WatchSpec& spec, Notify notify, int64_t* revision) {
  std::lock_guard lock(mutex_);
  if (revision != nullptr) *revision = revision_;
  WatcherId id = next_id_++;
  Watcher& watcher = watchers_[id];
  watcher.id = id;
  watcher.spec = spec;
  watcher.notify = std::move(notify);
  if (spec.start_revision <= 0) {
    watcher.queued_through = revision_;
  } else {
    watcher.queued_through = spec.start_revision - 1;
    watcher.catch_up = spec.start_revision <= revision_;
  }
  if (spec.range_end.empty()) {
    std::vector<Watcher*>& slots = by_key_[spec.key];
    watcher.key_slot = slots.size();
    slots.push_back(&watcher);
  } else {
    const bool unbounded = spec.range_end == std::string(1, '\0');
    // An empty range (key >= range_end) matches nothing and is not indexed.
    if (unbounded || spec.key < spec.range_end) {
      watcher.range =
          ranges_.Insert(spec.key, unbounded ? std::string() : spec.range_end, unbounded, &watcher);
    }
  }
  if (watcher.catch_up) watcher.notify();
  return id;
}

void Hub::Remove(WatcherId id) {
  std::lock_guard lock(mutex_);
  auto found = watchers_.find(id);
  if (found == watchers_.end()) return;
  Watcher& watcher = found->second;
  if (watcher.spec.range_end.empty()) {
    auto slots = by_key_.find(watcher.spec.key);
    CAIRN_CHECK(slots != by_key_.end() && watcher.key_slot < slots->second.size() &&
                slots->second[watcher.key_slot] == &watcher);
    // Swap-remove: O(1) however many watchers share the key.
    Watcher* last = slots->second.back();
    slots->second[watcher.key_slot] = last;
    last->key_slot = watcher.key_slot;
    slots->second.pop_back();
    if (slots->second.empty()) by_key_.erase(slots);
  } else if (watcher.range != nullptr) {
    ranges_.Remove(watcher.range);
  }
  watchers_.erase(found);
}

template <typename Match>
void Hub::ForEachMatching(const std::string& key, Match&& match) {
  auto slots = by_key_.find(key);
  if (slots != by_key_.end()) {
    publish_watchers_examined_ += slots->second.size();
    for (Watcher* watcher : slots->second) match(watcher);
  }
  publish_watchers_examined_ +=
      ranges_.ForEachContaining(key, [&match](Watcher* watcher) { match(watcher); });
}

void Hub::Deliver(Watcher* watcher, Group&& group) {
  if (watcher->buffered > 0 &&
      watcher->buffered + group.events.size() > options_.watcher_buffer_events_max) {
    // Too far behind: stop buffering; the consumer reads the rest from storage. Its position
    // becomes explicit (revision_ is still the revision before this batch).
    watcher->catch_up = true;
    watcher->queued_through = std::max(watcher->queued_through, revision_);
    return;
  }
  watcher->buffered += group.events.size();
  watcher->queued_through = group.revision;
  watcher->buffer.push_back(std::move(group));
}

void Hub::Publish(int64_t revision, const std::vector<mvccpb::Event>& events) {
  std::lock_guard lock(mutex_);
  CAIRN_CHECK(revision >= revision_);
  ++notify_stamp_;
  to_notify_.clear();
  size_t begin = 0;
  while (begin < events.size()) {
    // One revision's events: [begin, end), gathered per matching watcher into groups_.
    const int64_t group_revision = events[begin].kv().mod_revision();
    CAIRN_CHECK(group_revision > revision_ && group_revision <= revision);
    ++group_stamp_;
    groups_.clear();
    size_t end = begin;
    for (; end < events.size() && events[end].kv().mod_revision() == group_revision; ++end) {
      const mvccpb::Event& event = events[end];
      ForEachMatching(event.kv().key(), [&](Watcher* watcher) {
        if (watcher->catch_up || group_revision <= watcher->queued_through) return;
        if (!watcher->spec.Wants(event)) return;
        if (watcher->group_stamp != group_stamp_) {
          watcher->group_stamp = group_stamp_;
          watcher->group_index = groups_.size();
          groups_.emplace_back(watcher, Group{.revision = group_revision, .events = {}});
        }
        std::vector<mvccpb::Event>& group_events = groups_[watcher->group_index].second.events;
        group_events.push_back(event);
        if (!watcher->spec.prev_kv) group_events.back().clear_prev_kv();
      });
    }
    for (auto& [watcher, group] : groups_) {
      Deliver(watcher, std::move(group));
      if (watcher->notify_stamp != notify_stamp_) {
        watcher->notify_stamp = notify_stamp_;
        to_notify_.push_back(watcher);
      }
    }
    begin = end;
  }
  // Every live watcher not in to_notify_ had nothing in this batch: it is synced through
  // `revision` without being touched.
  revision_ = revision;
  groups_.clear();
  for (Watcher* watcher : to_notify_) watcher->notify();
}

void Hub::JumpTo(int64_t revision) {
  std::lock_guard lock(mutex_);
  CAIRN_CHECK(revision >= revision_);
  if (revision == revision_) return;
  to_notify_.clear();
  for (auto& [id, watcher] : watchers_) {
    if (watcher.catch_up) continue;
    watcher.catch_up = true;
    watcher.queued_through = std::max(watcher.queued_through, revision_);
    to_notify_.push_back(&watcher);
  }
  revision_ = revision;
  for (Watcher* watcher : to_notify_) watcher->notify();
}

int64_t Hub::revision() const {
  std::lock_guard lock(mutex_);
  return revision_;
}

const Hub::Watcher* Hub::Find(WatcherId id) const {
  auto found = watchers_.find(id);
  return found == watchers_.end() ? nullptr : &found->second;
}

Hub::Taken Hub::Take(WatcherId id, size_t events_max) {
  std::lock_guard lock(mutex_);
  Taken taken;
  auto found = watchers_.find(id);
  if (found == watchers_.end()) return taken;
  Watcher& watcher = found->second;
  if (!BufferEmpty(watcher)) {
    taken.kind = Taken::Kind::kEvents;
    while (!BufferEmpty(watcher)) {
      Group& group = watcher.buffer[watcher.buffer_head];
      if (!taken.events.empty() && taken.events.size() + group.events.size() > events_max) break;
      watcher.buffered -= group.events.size();
      for (auto& event : group.events) taken.events.push_back(std::move(event));
      ++watcher.buffer_head;
    }
    if (BufferEmpty(watcher)) {
      watcher.buffer.clear();
      watcher.buffer_head = 0;
      if (watcher.buffer.capacity() > kBufferCapacityKeptMax) watcher.buffer.shrink_to_fit();
    } else if (watcher.buffer_head >= kBufferHeadCompactMin &&
               watcher.buffer_head * 2 >= watcher.buffer.size()) {
      watcher.buffer.erase(watcher.buffer.begin(),
                           watcher.buffer.begin() + static_cast<ptrdiff_t>(watcher.buffer_head));
      watcher.buffer_head = 0;
    }
    return taken;
  }
  if (!watcher.catch_up) return taken;
  watcher.catch_up = false;
  if (watcher.queued_through >= revision_) return taken;
  // Scan (queued_through, revision_]; live events after revision_ are buffered meanwhile.
  taken.kind = Taken::Kind::kCatchUp;
  taken.after_revision = watcher.queued_through;
  taken.through_revision = revision_;
  watcher.queued_through = revision_;
  return taken;
}

void Hub::CatchUpScanned(WatcherId id, int64_t through_revision, int64_t scanned_through) {
  std::lock_guard lock(mutex_);
  auto found = watchers_.find(id);
  if (found == watchers_.end() || scanned_through >= through_revision) return;
  // Stopped early: forget what was buffered after it; the next catch-up rereads it.
  Watcher& watcher = found->second;
  watcher.buffer.clear();
  watcher.buffer_head = 0;
  watcher.buffered = 0;
  watcher.catch_up = true;
  watcher.queued_through = scanned_through;
}

bool Hub::Synced(WatcherId id) const {
  std::lock_guard lock(mutex_);
  const Watcher* watcher = Find(id);
  // A live watcher is synced through revision_ (see Watcher::queued_through).
  return watcher != nullptr && BufferEmpty(*watcher) && !watcher->catch_up;
}

std::optional<int64_t> Hub::SyncedRevision(const std::vector<WatcherId>& ids) const {
  std::lock_guard lock(mutex_);
  for (WatcherId id : ids) {
    const Watcher* watcher = Find(id);
    if (watcher == nullptr) continue;  // removed: nothing more to deliver
    if (!BufferEmpty(*watcher) || watcher->catch_up) return std::nullopt;
  }
  return revision_;
}

size_t Hub::watcher_count() const {
  std::lock_guard lock(mutex_);
  return watchers_.size();
}

size_t Hub::buffered_events(WatcherId id) const {
  std::lock_guard lock(mutex_);
  const Watcher* watcher = Find(id);
  return watcher == nullptr ? 0 : watcher->buffered;
}

bool Hub::catching_up(WatcherId id) const {
  std::lock_guard lock(mutex_);
  const Watcher* watcher = Find(id);
  return watcher != nullptr && watcher->catch_up;
}

uint64_t Hub::publish_watchers_examined() const {
  std::lock_guard lock(mutex_);
  return publish_watchers_examined_;
}

}  // namespace cairn::feed
