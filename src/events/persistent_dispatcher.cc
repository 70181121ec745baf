#include "src/events/persistent_dispatcher.h"

#include <algorithm>

#include "src/base/check.h"

namespace cairn::events {
namespace {

// FNV-1a: a stable hash, so a stream maps to the same consumer on every member and run.
uint64_t StableHash(std::string_view s) {
  uint64_t hash = 14695981039346656037ull;
  for (char c : s) {
    hash ^= static_cast<uint8_t>(c);
    hash *= 1099511628211ull;
  }
  return hash;
}

size_t EventBytes(const v1::RecordedEvent& event) {
  return event.data().size() + event.metadata().size() + event.stream().size() + 128;
}

}  // namespace

GroupDispatcher::GroupDispatcher(PersistentState::Progress progress)
    : group_(std::move(progress.group)), all_(IsAllSource(group_.source())) {
  UpdateSettings(group_.settings());
  if (group_.has_checkpoint()) {
    checkpoint_ = ToCursorKey(group_.checkpoint(), all_);
    frontier_ = checkpoint_;
  }
  for (auto& [key, record] : progress.events) {
    if (checkpoint_.has_value() && key <= *checkpoint_) {
      pending_forget_.push_back(key);  // left over from a checkpoint that passed it
      continue;
    }
    known_.emplace(key, std::move(record));
  }
  AddReplays(progress.replays);
}

void GroupDispatcher::UpdateSettings(const v1::PersistentSubscriptionSettings& settings) {
  *group_.mutable_settings() = settings;
  max_retry_count_ = MaxRetryCount(settings);
  message_timeout_ms_ = MessageTimeoutMs(settings);
}

size_t GroupDispatcher::WantedEvents() const {
  if (window_bytes_ >= kWindowBytesMax) return 0;
  if (window_.size() >= PersistentLimits::kWindowEventsMax) return 0;
  return PersistentLimits::kWindowEventsMax - window_.size();
}

void GroupDispatcher::AddEvents(std::vector<v1::RecordedEvent> events,
                                std::optional<CursorKey> scanned_to) {
  for (v1::RecordedEvent& event : events) {
    const CursorKey key = CursorOf(event, group_.source());
    if (frontier_.has_value() && key <= *frontier_) continue;  // a stale read
    frontier_ = key;
    Entry entry;
    entry.event = std::move(event);
    auto known = known_.find(key);
    if (known != known_.end()) {
      entry.recorded = true;
      entry.retries = known->second.retries();
      if (known->second.done()) entry.state = State::kDone;
      known_.erase(known);
    }
    window_bytes_ += EventBytes(entry.event);
    const bool ready = entry.state == State::kReady;
    window_.emplace(key, std::move(entry));
    if (ready) ready_new_.push_back(Ref{false, key, 0});
  }
  if (scanned_to.has_value() && (!frontier_.has_value() || *frontier_ < *scanned_to)) {
    frontier_ = scanned_to;
  }
  // Records of events the source no longer returns (expired, deleted) are finished.
  while (!known_.empty() && frontier_.has_value() && known_.begin()->first <= *frontier_) {
    pending_forget_.push_back(known_.begin()->first);
    known_.erase(known_.begin());
  }
  AdvanceCheckpoint();
}

void GroupDispatcher::AddReplays(
    const std::vector<std::pair<uint64_t, records::ReplayRecord>>& replays) {
  for (const auto& [sequence, record] : replays) {
    if (sequence < replay_seen_next_) continue;
    replay_seen_next_ = sequence + 1;
    replays_to_load_.emplace_back(sequence, record.position());
  }
}

std::vector<std::pair<uint64_t, v1::Position>> GroupDispatcher::TakeReplaysToLoad() {
  return std::exchange(replays_to_load_, {});
}

void GroupDispatcher::AddReplayEvent(uint64_t sequence, std::optional<v1::RecordedEvent> event) {
  if (!event.has_value()) {
    pending_replay_done_.push_back(sequence);
    return;
  }
  Entry entry;
  entry.event = std::move(*event);
  replays_.emplace(sequence, std::move(entry));
  ready_replays_.push_back(Ref{true, CursorKey{}, sequence});
}

Result<uint64_t> GroupDispatcher::AddConsumer(std::string name, uint32_t buffer_size) {
  const uint32_t max = group_.settings().max_subscriber_count() == 0
                           ? PersistentLimits::kSubscribersMax
                           : group_.settings().max_subscriber_count();
  if (consumers_.size() >= max) {
    return Status::ResourceExhausted("events: persistent subscription '" + group_.group() +
                                     "' on '" + group_.source() + "' has its maximum of " +
                                     std::to_string(max) + " consumers");
  }
  if (buffer_size == 0) buffer_size = PersistentLimits::kBufferSizeDefault;
  buffer_size = std::min(buffer_size, PersistentLimits::kBufferSizeMax);
  const uint64_t id = next_consumer_id_++;
  consumers_.emplace(id, Consumer{std::move(name), buffer_size, 0});
  return id;
}

void GroupDispatcher::RemoveConsumer(uint64_t consumer) {
  if (consumers_.erase(consumer) == 0) return;
  std::vector<Ref> failed;
  for (auto& [key, entry] : window_) {
    if (entry.state == State::kInFlight && entry.consumer == consumer) {
      failed.push_back(Ref{false, key, 0});
    }
  }
  for (auto& [sequence, entry] : replays_) {
    if (entry.state == State::kInFlight && entry.consumer == consumer) {
      failed.push_back(Ref{true, CursorKey{}, sequence});
    }
  }
  for (const Ref& ref : failed) Fail(ref);
  AdvanceCheckpoint();
}

GroupDispatcher::Entry* GroupDispatcher::Find(const Ref& ref) {
  if (ref.replay) {
    auto it = replays_.find(ref.sequence);
    return it == replays_.end() ? nullptr : &it->second;
  }
  auto it = window_.find(ref.key);
  return it == window_.end() ? nullptr : &it->second;
}

void GroupDispatcher::ReleaseInFlight(Entry* entry) {
  CAIRN_CHECK(entry->state == State::kInFlight);
  auto consumer = consumers_.find(entry->consumer);
  if (consumer != consumers_.end() && consumer->second.in_flight > 0) {
    --consumer->second.in_flight;
  }
  in_flight_by_id_.erase(entry->event.id());
  --stats_.in_flight;
}

void GroupDispatcher::Fail(const Ref& ref) {
  Entry* entry = Find(ref);
  CAIRN_CHECK(entry != nullptr && entry->state == State::kInFlight);
  ReleaseInFlight(entry);
  ++entry->retries;
  if (entry->retries > max_retry_count_) {
    entry->state = State::kReady;  // Park expects a live entry
    Park(ref);
    return;
  }
  entry->state = State::kReady;
  if (!ref.replay) pending_retries_[ref.key] = entry->retries;
  ready_retries_.push_back(ref);
}

void GroupDispatcher::Park(const Ref& ref) {
  Entry* entry = Find(ref);
  CAIRN_CHECK(entry != nullptr);
  if (entry->state == State::kInFlight) ReleaseInFlight(entry);
  pending_parked_.push_back(entry->event.position());
  ++stats_.parked;
  if (ref.replay) {
    pending_replay_done_.push_back(ref.sequence);
    replays_.erase(ref.sequence);
    return;
  }
  entry->state = State::kDone;
  pending_retries_.erase(ref.key);
  pending_done_[ref.key] = true;
}

void GroupDispatcher::Finish(const Ref& ref) {
  Entry* entry = Find(ref);
  CAIRN_CHECK(entry != nullptr && entry->state == State::kInFlight);
  ReleaseInFlight(entry);
  if (ref.replay) {
    pending_replay_done_.push_back(ref.sequence);
    replays_.erase(ref.sequence);
    return;
  }
  entry->state = State::kDone;
  pending_retries_.erase(ref.key);
  pending_done_[ref.key] = true;
}

void GroupDispatcher::Ack(const std::vector<std::string>& ids) {
  for (const std::string& id : ids) {
    auto it = in_flight_by_id_.find(id);
    if (it == in_flight_by_id_.end()) continue;
    const Ref ref = it->second;
    Finish(ref);
    ++stats_.acked;
  }
  AdvanceCheckpoint();
}

void GroupDispatcher::Nack(const std::vector<std::string>& ids, v1::NackAction action) {
  for (const std::string& id : ids) {
    auto it = in_flight_by_id_.find(id);
    if (it == in_flight_by_id_.end()) continue;
    const Ref ref = it->second;
    ++stats_.nacked;
    switch (action) {
      case v1::NACK_PARK:
        Park(ref);
        break;
      case v1::NACK_SKIP:
        Finish(ref);
        break;
      default:
        Fail(ref);
        break;
    }
  }
  AdvanceCheckpoint();
}

void GroupDispatcher::Expire(int64_t now_ms) {
  std::vector<Ref> expired;
  for (auto& [key, entry] : window_) {
    if (entry.state == State::kInFlight && entry.deadline_ms <= now_ms) {
      expired.push_back(Ref{false, key, 0});
    }
  }
  for (auto& [sequence, entry] : replays_) {
    if (entry.state == State::kInFlight && entry.deadline_ms <= now_ms) {
      expired.push_back(Ref{true, CursorKey{}, sequence});
    }
  }
  for (const Ref& ref : expired) Fail(ref);
  if (!expired.empty()) AdvanceCheckpoint();
}

uint64_t GroupDispatcher::ChooseConsumer(const Entry& entry) {
  if (consumers_.empty()) return 0;
  auto has_room = [](const Consumer& c) { return c.in_flight < c.buffer_size; };
  switch (group_.settings().strategy()) {
    case v1::DISPATCH_TO_SINGLE:
      for (auto& [id, consumer] : consumers_) {
        if (has_room(consumer)) return id;
      }
      return 0;
    case v1::PINNED: {
      auto it = consumers_.begin();
      std::advance(it, StableHash(entry.event.stream()) % consumers_.size());
      return has_room(it->second) ? it->first : 0;
    }
    default: {
      // Round robin: the first consumer with room after the last one served.
      auto it = consumers_.upper_bound(round_robin_after_);
      for (size_t i = 0; i < consumers_.size(); ++i, ++it) {
        if (it == consumers_.end()) it = consumers_.begin();
        if (has_room(it->second)) {
          round_robin_after_ = it->first;
          return it->first;
        }
      }
      return 0;
    }
  }
}

void GroupDispatcher::Dispatch(int64_t now_ms, std::vector<Delivery>* out) {
  const bool pinned = group_.settings().strategy() == v1::PINNED;
  for (std::deque<Ref>* queue : {&ready_replays_, &ready_retries_, &ready_new_}) {
    std::deque<Ref> waiting;  // pinned events whose consumer is full
    while (!queue->empty()) {
      const Ref ref = queue->front();
      Entry* entry = Find(ref);
      if (entry == nullptr || entry->state != State::kReady) {
        queue->pop_front();
        continue;
      }
      const uint64_t consumer = ChooseConsumer(*entry);
      if (consumer == 0) {
        if (!pinned) break;
        waiting.push_back(ref);
        queue->pop_front();
        continue;
      }
      queue->pop_front();
      entry->state = State::kInFlight;
      entry->consumer = consumer;
      entry->deadline_ms = now_ms + message_timeout_ms_;
      ++consumers_[consumer].in_flight;
      in_flight_by_id_[entry->event.id()] = ref;
      ++stats_.in_flight;
      ++stats_.delivered;
      Delivery& delivery = out->emplace_back();
      delivery.consumer = consumer;
      v1::PersistentReadResponse::Event* message = delivery.message.mutable_event();
      *message->mutable_event() = entry->event;
      message->set_retry_count(entry->retries);
    }
    while (!waiting.empty()) {
      queue->push_front(waiting.back());
      waiting.pop_back();
    }
  }
}

void GroupDispatcher::AdvanceCheckpoint() {
  while (!window_.empty() && window_.begin()->second.state == State::kDone) {
    auto it = window_.begin();
    checkpoint_ = it->first;
    checkpoint_moved_ = true;
    if (it->second.recorded) pending_forget_.push_back(it->first);
    pending_done_.erase(it->first);
    pending_retries_.erase(it->first);
    window_bytes_ -= EventBytes(it->second.event);
    window_.erase(it);
  }
  // Nothing unhandled read: everything up to the frontier is handled (filtered-out gaps too).
  if (window_.empty() && frontier_.has_value() &&
      (!checkpoint_.has_value() || *checkpoint_ < *frontier_)) {
    checkpoint_ = frontier_;
    checkpoint_moved_ = true;
  }
  stats_.window = window_.size();
}

std::optional<command::PersistentProgress> GroupDispatcher::TakeProgress(int64_t now_ms,
                                                                         bool force) {
  const bool entries = !pending_done_.empty() || !pending_retries_.empty() ||
                       !pending_parked_.empty() || !pending_forget_.empty() ||
                       !pending_replay_done_.empty();
  const bool checkpoint_due =
      checkpoint_moved_ && (force || now_ms - last_checkpoint_ms_ >= kCheckpointIntervalMs);
  if (!entries && !checkpoint_due) return std::nullopt;
  command::PersistentProgress progress;
  progress.set_source(group_.source());
  progress.set_group(group_.group());
  progress.set_group_id(group_.group_id());
  if (checkpoint_moved_ && checkpoint_.has_value()) {
    *progress.mutable_checkpoint() = ToCursor(*checkpoint_, all_);
    checkpoint_moved_ = false;
    last_checkpoint_ms_ = now_ms;
  }
  for (const auto& [key, unused] : pending_done_) {
    *progress.add_done() = ToCursor(key, all_);
    window_.at(key).recorded = true;
  }
  for (const auto& [key, retries] : pending_retries_) {
    command::PersistentRetry* retry = progress.add_retries();
    *retry->mutable_cursor() = ToCursor(key, all_);
    retry->set_retries(retries);
    window_.at(key).recorded = true;
  }
  for (const v1::Position& position : pending_parked_) *progress.add_parked() = position;
  for (const CursorKey& key : pending_forget_) *progress.add_forget() = ToCursor(key, all_);
  for (uint64_t sequence : pending_replay_done_) progress.add_replay_done(sequence);
  pending_done_.clear();
  pending_retries_.clear();
  pending_parked_.clear();
  pending_forget_.clear();
  pending_replay_done_.clear();
  return progress;
}

}  // namespace cairn::events
