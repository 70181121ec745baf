#include "src/feed/hub.h"

#include <algorithm>
#include <utility>

#include "src/base/check.h"

namespace cairn::feed {

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
  watcher.spec = spec;
  watcher.notify = std::move(notify);
  if (spec.start_revision <= 0) {
    watcher.queued_through = revision_;
  } else {
    watcher.queued_through = spec.start_revision - 1;
    watcher.catch_up = spec.start_revision <= revision_;
  }
  if (spec.range_end.empty()) {
    by_key_.emplace(spec.key, id);
  } else {
    ranges_[id] = &watcher;
  }
  if (watcher.catch_up) watcher.notify();
  return id;
}

void Hub::Remove(WatcherId id) {
  std::lock_guard lock(mutex_);
  auto found = watchers_.find(id);
  if (found == watchers_.end()) return;
  if (found->second.spec.range_end.empty()) {
    auto [begin, end] = by_key_.equal_range(found->second.spec.key);
    for (auto it = begin; it != end; ++it) {
      if (it->second == id) {
        by_key_.erase(it);
        break;
      }
    }
  } else {
    ranges_.erase(id);
  }
  watchers_.erase(found);
}

std::vector<Hub::Watcher*> Hub::Matching(const mvccpb::Event& event) {
  std::vector<Watcher*> matching;
  auto [begin, end] = by_key_.equal_range(event.kv().key());
  for (auto it = begin; it != end; ++it) matching.push_back(&watchers_.at(it->second));
  for (auto& [id, watcher] : ranges_) {
    if (watcher->spec.ContainsKey(event.kv().key())) matching.push_back(watcher);
  }
  return matching;
}

void Hub::Deliver(Watcher* watcher, Group&& group) {
  if (watcher->buffered > 0 &&
      watcher->buffered + group.events.size() > options_.watcher_buffer_events_max) {
    // Too far behind: stop buffering; the consumer reads the rest from storage.
    watcher->catch_up = true;
    return;
  }
  watcher->buffered += group.events.size();
  watcher->queued_through = group.revision;
  watcher->buffer.push_back(std::move(group));
}

void Hub::Publish(int64_t revision, const std::vector<mvccpb::Event>& events) {
  std::lock_guard lock(mutex_);
  CAIRN_CHECK(revision >= revision_);
  std::vector<Watcher*> touched;
  size_t begin = 0;
  while (begin < events.size()) {
    // One revision's events: [begin, end).
    const int64_t group_revision = events[begin].kv().mod_revision();
    CAIRN_CHECK(group_revision > revision_ && group_revision <= revision);
    size_t end = begin;
    std::map<Watcher*, Group> groups;
    for (; end < events.size() && events[end].kv().mod_revision() == group_revision; ++end) {
      for (Watcher* watcher : Matching(events[end])) {
        if (watcher->catch_up || group_revision <= watcher->queued_through) continue;
        if (!watcher->spec.Wants(events[end])) continue;
        Group& group = groups[watcher];
        group.revision = group_revision;
        group.events.push_back(events[end]);
        if (!watcher->spec.prev_kv) group.events.back().clear_prev_kv();
      }
    }
    for (auto& [watcher, group] : groups) {
      Deliver(watcher, std::move(group));
      touched.push_back(watcher);
    }
    begin = end;
  }
  for (auto& [id, watcher] : watchers_) {
    if (!watcher.catch_up) watcher.queued_through = std::max(watcher.queued_through, revision);
  }
  revision_ = revision;
  std::sort(touched.begin(), touched.end());
  touched.erase(std::unique(touched.begin(), touched.end()), touched.end());
  for (Watcher* watcher : touched) watcher->notify();
}

int64_t Hub::revision() const {
  std::lock_guard lock(mutex_);
  return revision_;
}

Hub::Taken Hub::Take(WatcherId id, size_t events_max) {
  std::lock_guard lock(mutex_);
  Taken taken;
  auto found = watchers_.find(id);
  if (found == watchers_.end()) return taken;
  Watcher& watcher = found->second;
  if (!watcher.buffer.empty()) {
    taken.kind = Taken::Kind::kEvents;
    while (!watcher.buffer.empty() &&
           (taken.events.empty() ||
            taken.events.size() + watcher.buffer.front().events.size() <= events_max)) {
      Group& group = watcher.buffer.front();
      watcher.buffered -= group.events.size();
      for (auto& event : group.events) taken.events.push_back(std::move(event));
      watcher.buffer.pop_front();
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
  watcher.buffered = 0;
  watcher.catch_up = true;
  watcher.queued_through = scanned_through;
}

bool Hub::Synced(WatcherId id) const {
  std::lock_guard lock(mutex_);
  auto found = watchers_.find(id);
  if (found == watchers_.end()) return false;
  const Watcher& watcher = found->second;
  return watcher.buffer.empty() && !watcher.catch_up && watcher.queued_through >= revision_;
}

std::optional<int64_t> Hub::SyncedRevision(const std::vector<WatcherId>& ids) const {
  std::lock_guard lock(mutex_);
  for (WatcherId id : ids) {
    auto found = watchers_.find(id);
    if (found == watchers_.end()) continue;  // removed: nothing more to deliver
    const Watcher& watcher = found->second;
    if (!watcher.buffer.empty() || watcher.catch_up || watcher.queued_through < revision_) {
      return std::nullopt;
    }
  }
  return revision_;
}

size_t Hub::watcher_count() const {
  std::lock_guard lock(mutex_);
  return watchers_.size();
}

size_t Hub::buffered_events(WatcherId id) const {
  std::lock_guard lock(mutex_);
  auto found = watchers_.find(id);
  return found == watchers_.end() ? 0 : found->second.buffered;
}

bool Hub::catching_up(WatcherId id) const {
  std::lock_guard lock(mutex_);
  auto found = watchers_.find(id);
  return found != watchers_.end() && found->second.catch_up;
}

}  // namespace cairn::feed
