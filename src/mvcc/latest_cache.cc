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

LatestCache::Entry* LatestCache::Find(Shard& shard, std::string_view key, uint64_t hash) {
  for (Entry* entry = shard.buckets[Bucket(shard, hash)]; entry != nullptr; entry = entry->next) {
    if (entry->hash == hash && entry->key == key) return entry;
  }
  return nullptr;
}

void LatestCache::Grow(Shard& shard) {
  std::vector<Entry*> buckets(shard.buckets.size() * 2);
  shard.buckets.swap(buckets);
  ++shard.bucket_bits;
  for (Entry* head : buckets) {
    while (head != nullptr) {
      Entry* next = head->next;
      Entry*& bucket = shard.buckets[Bucket(shard, head->hash)];
      head->next = bucket;
      bucket = head;
      head = next;
    }
  }
}

LatestCache::Lookup LatestCache::Get(std::string_view key, std::string* record) {
  if (!enabled()) return Lookup::kMiss;
  const uint64_t hash = Hash(key);
  Shard& shard = ShardFor(hash);
  std::lock_guard<std::mutex> lock(shard.mutex);
  Entry* entry = Find(shard, key, hash);
  if (entry == nullptr) return Lookup::kMiss;
  entry->referenced = true;
  if (entry->absent) return Lookup::kAbsent;
  record->assign(entry->record);
  return Lookup::kPresent;
}

void LatestCache::GetMany(
    std::span<const std::string_view> keys,
    const std::function<void(size_t i, Lookup lookup, std::string_view record)>& visit) {
  if (!enabled()) {
    for (size_t i = 0; i < keys.size(); ++i) visit(i, Lookup::kMiss, {});
    return;
  }
  struct Item {
    uint64_t hash;
    size_t shard;
    size_t index;
    size_t bucket;
  };
  std::vector<Item> items(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    const uint64_t hash = Hash(keys[i]);
    items[i] = {hash, hash % shards_.size(), i, 0};
    // The shards never move: their lines (mutex, bucket pointer) load while we go on.
    __builtin_prefetch(shards_[items[i].shard].get());
  }
  std::sort(items.begin(), items.end(),
            [](const Item& a, const Item& b) { return a.shard < b.shard; });
  for (size_t begin = 0; begin < items.size();) {
    size_t end = begin + 1;
    while (end < items.size() && items[end].shard == items[begin].shard) ++end;
    Shard& shard = *shards_[items[begin].shard];
    std::lock_guard<std::mutex> lock(shard.mutex);
    // Three passes over the shard's keys, so that their cache misses overlap: the bucket
    // slots, then the first entry of each chain, then the lookups.
    for (size_t k = begin; k < end; ++k) {
      items[k].bucket = Bucket(shard, items[k].hash);
      __builtin_prefetch(&shard.buckets[items[k].bucket]);
    }
    for (size_t k = begin; k < end; ++k) {
      if (const Entry* head = shard.buckets[items[k].bucket]) __builtin_prefetch(head);
    }
    for (size_t k = begin; k < end; ++k) {
      Entry* entry = Find(shard, keys[items[k].index], items[k].hash);
      if (entry == nullptr) {
        visit(items[k].index, Lookup::kMiss, {});
        continue;
      }
      entry->referenced = true;
      visit(items[k].index, entry->absent ? Lookup::kAbsent : Lookup::kPresent,
            entry->absent ? std::string_view() : std::string_view(entry->record));
    }
    begin = end;
  }
}

void LatestCache::Put(Shard& shard, std::string_view key, uint64_t hash, std::string_view record,
                      bool absent, int64_t revision, bool replace) {
  Entry* entry = Find(shard, key, hash);
  if (entry != nullptr) {
    if (!replace) return;
    shard.bytes -= Charge(*entry);
    entry->record.assign(record);
    entry->absent = absent;
    entry->referenced = true;
    shard.bytes += Charge(*entry);
  } else {
    if (shard.entries.size() >= shard.buckets.size()) Grow(shard);
    auto owned = std::make_unique<Entry>();
    entry = owned.get();
    entry->hash = hash;
    entry->key.assign(key);
    entry->record.assign(record);
    entry->absent = absent;
    Entry*& bucket = shard.buckets[Bucket(shard, hash)];
    entry->next = bucket;
    bucket = entry;
    shard.entries.push_back(std::move(owned));
    shard.bytes += Charge(*entry);
  }
  while (shard.bytes > shard_capacity_bytes_ && shard.entries.size() > 1) {
    EvictOne(shard, entry, revision);
  }
}

// Advances the hand past entries used since it last passed (clearing their bit) to the first
// one that was not, other than `keep`, and evicts it.
void LatestCache::EvictOne(Shard& shard, const Entry* keep, int64_t revision) {
  while (true) {
    if (shard.hand >= shard.entries.size()) shard.hand = 0;
    Entry* victim = shard.entries[shard.hand].get();
    if (victim == keep) {
      ++shard.hand;
      continue;
    }
    if (victim->referenced) {
      victim->referenced = false;
      ++shard.hand;
      continue;
    }
    Entry** link = &shard.buckets[Bucket(shard, victim->hash)];
    while (*link != victim) link = &(*link)->next;
    *link = victim->next;
    shard.bytes -= Charge(*victim);
    // The last entry takes the victim's place in the circle; the hand looks at it next.
    shard.entries[shard.hand] = std::move(shard.entries.back());
    shard.entries.pop_back();
    // Any version of the victim is at most the newest revision the apply thread published.
    shard.evicted_at_revision =
        std::max(shard.evicted_at_revision, std::max(revision, newest_revision_.load()));
    return;
  }
}

void LatestCache::Fill(std::string_view key, const std::string* record_or_null,
                       int64_t read_revision) {
  if (!enabled()) return;
  const uint64_t hash = Hash(key);
  Shard& shard = ShardFor(hash);
  std::lock_guard<std::mutex> lock(shard.mutex);
  // An eviction after the read may have dropped a newer version of this key.
  if (shard.evicted_at_revision > read_revision) return;
  Put(shard, key, hash, record_or_null ? std::string_view(*record_or_null) : std::string_view(),
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
  const uint64_t hash = Hash(key);
  Shard& shard = ShardFor(hash);
  std::lock_guard<std::mutex> lock(shard.mutex);
  Put(shard, key, hash, record, /*absent=*/false, revision, /*replace=*/true);
}

void LatestCache::MarkAbsent(std::string_view key, int64_t revision) {
  if (!enabled()) return;
  newest_revision_.store(revision);
  const uint64_t hash = Hash(key);
  Shard& shard = ShardFor(hash);
  std::lock_guard<std::mutex> lock(shard.mutex);
  Put(shard, key, hash, {}, /*absent=*/true, revision, /*replace=*/true);
}

void LatestCache::Clear(int64_t revision) {
  for (auto& shard : shards_) {
    std::lock_guard lock(shard->mutex);
    shard->buckets.assign(kInitialBuckets, nullptr);
    shard->bucket_bits = kInitialBucketBits;
    shard->entries.clear();
    shard->hand = 0;
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
