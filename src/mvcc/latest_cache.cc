#include "src/mvcc/latest_cache.h"

#include <algorithm>
#include <thread>

#include "src/base/check.h"

namespace cairn::mvcc {

LatestCache::LatestCache(size_t capacity_bytes, size_t shard_count)
    : capacity_bytes_(capacity_bytes),
      shard_capacity_bytes_(shard_count ? capacity_bytes / shard_count : 0) {
  CAIRN_CHECK(shard_count > 0);
  for (size_t i = 0; i < shard_count; ++i) shards_.push_back(std::make_unique<Shard>());
}

LatestCache::Shard& LatestCache::ShardFor(std::string_view key) {
  return *shards_[std::hash<std::string_view>{}(key) % shards_.size()];
}

LatestCache::Lookup LatestCache::Get(std::string_view key, std::string* record) {
  if (!enabled()) return Lookup::kMiss;
  Shard& shard = ShardFor(key);
  std::lock_guard<std::mutex> lock(shard.mutex);
  auto it = shard.index.find(key);
  if (it == shard.index.end()) return Lookup::kMiss;
  shard.lru.splice(shard.lru.begin(), shard.lru, it->second);
  if (it->second->absent) return Lookup::kAbsent;
  record->assign(it->second->record);
  return Lookup::kPresent;
}

void LatestCache::Put(Shard& shard, std::string_view key, std::string_view record, bool absent,
                      int64_t revision, bool replace) {
  auto it = shard.index.find(key);
  if (it != shard.index.end()) {
    if (!replace) return;
    Entry& entry = *it->second;
    shard.bytes -= Charge(entry);
    entry.record.assign(record);
    entry.absent = absent;
    shard.bytes += Charge(entry);
    shard.lru.splice(shard.lru.begin(), shard.lru, it->second);
  } else {
    shard.lru.push_front(Entry{std::string(key), std::string(record), absent});
    shard.index.emplace(shard.lru.front().key, shard.lru.begin());
    shard.bytes += Charge(shard.lru.front());
  }
  while (shard.bytes > shard_capacity_bytes_ && shard.lru.size() > 1) {
    Entry& victim = shard.lru.back();
    shard.bytes -= Charge(victim);
    shard.index.erase(victim.key);
    shard.lru.pop_back();
    // Any version of the victim is at most the newest revision the apply thread published.
    shard.evicted_at_revision =
        std::max(shard.evicted_at_revision, std::max(revision, newest_revision_.load()));
  }
}

void LatestCache::Fill(std::string_view key, const std::string* record_or_null,
                       int64_t read_revision) {
  if (!enabled()) return;
  Shard& shard = ShardFor(key);
  std::lock_guard<std::mutex> lock(shard.mutex);
  // An eviction after the read may have dropped a newer version of this key.
  if (shard.evicted_at_revision > read_revision) return;
  Put(shard, key, record_or_null ? std::string_view(*record_or_null) : std::string_view(),
      record_or_null == nullptr, read_revision, /*replace=*/false);
}

uint64_t LatestCache::ReadBegin() const {
  while (true) {
    uint64_t sequence = sequence_.load(std::memory_order_acquire);
    if ((sequence & 1) == 0) return sequence;
    std::this_thread::yield();
  }
}

bool LatestCache::ReadValidate(uint64_t sequence) const {
  std::atomic_thread_fence(std::memory_order_acquire);
  return sequence_.load(std::memory_order_relaxed) == sequence;
}

void LatestCache::BeginPublish() {
  sequence_.fetch_add(1, std::memory_order_acq_rel);
  CAIRN_CHECK((sequence_.load(std::memory_order_relaxed) & 1) == 1);
}

void LatestCache::EndPublish() { sequence_.fetch_add(1, std::memory_order_release); }

void LatestCache::Update(std::string_view key, std::string_view record, int64_t revision) {
  if (!enabled()) return;
  newest_revision_.store(revision);
  Shard& shard = ShardFor(key);
  std::lock_guard<std::mutex> lock(shard.mutex);
  Put(shard, key, record, /*absent=*/false, revision, /*replace=*/true);
}

void LatestCache::MarkAbsent(std::string_view key, int64_t revision) {
  if (!enabled()) return;
  newest_revision_.store(revision);
  Shard& shard = ShardFor(key);
  std::lock_guard<std::mutex> lock(shard.mutex);
  Put(shard, key, {}, /*absent=*/true, revision, /*replace=*/true);
}

void LatestCache::Clear(int64_t revision) {
  for (auto& shard : shards_) {
    std::lock_guard lock(shard->mutex);
    shard->index.clear();
    shard->lru.clear();
    shard->bytes = 0;
    shard->evicted_at_revision = std::max(shard->evicted_at_revision, revision);
  }
  if (newest_revision_.load() < revision) newest_revision_.store(revision);
}

size_t LatestCache::SizeBytes() const {
  size_t total = 0;
  for (const auto& shard : shards_) {
    std::lock_guard<std::mutex> lock(shard->mutex);
    total += shard->bytes;
  }
  return total;
}

}  // namespace cairn::mvcc
