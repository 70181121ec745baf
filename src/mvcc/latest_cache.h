// LatestCache: a bounded cache of current-revision records of hot keys, in front of the
// engine's kv_latest family, so that point reads at the current revision cost a hash lookup
// instead of a RocksDB Get. It never holds all keys: entries are evicted (CLOCK per shard) past
// capacity_bytes, and the data set stays bounded by disk, not RAM.
//
// Coherence protocol (the apply thread is the only writer of the state):
//  * The apply thread calls Update/MarkAbsent for every key it changed, after the engine
//    write, between BeginPublish() and EndPublish(), together with publishing the new
//    revision. Readers bracket a lookup with ReadBegin()/ReadValidate(): when no publish
//    overlapped, the cached record and the revision they read belong to the same state.
//  * A reader that missed may Fill() what it read from an engine snapshot at revision
//    `read_revision`. Fill never replaces an entry (the apply thread's entry is newer or
//    equal), and is dropped when the shard evicted anything since `read_revision` (the
//    evicted entry might have been a newer version of this key).
//  * The engine may hold a batch the apply thread wrote but has not published, so a read may
//    return a state newer than the published revision. A record is safe to fill anyway: it
//    names its mod_revision, and a point read serves no cached record newer than the revision
//    it answers at. An absence is not: KvState fills one only from a snapshot whose revision
//    is published (CachedPointRange), and WarmLatest, which reads without a snapshot, fills
//    records only.
//
// Thread-safety: all methods are thread-safe; Update/MarkAbsent/BeginPublish/EndPublish are
// called by the apply thread only.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace cairn::mvcc {

class LatestCache {
 public:
  enum class Lookup { kMiss, kPresent, kAbsent };

  // capacity_bytes == 0 disables the cache (every lookup misses, updates do nothing).
  explicit LatestCache(size_t capacity_bytes, size_t shard_count = 64);
  LatestCache(const LatestCache&) = delete;
  LatestCache& operator=(const LatestCache&) = delete;

  // Readers. kPresent copies the encoded record into *record.
  Lookup Get(std::string_view key, std::string* record);
  // Get of several keys (the apply thread's read-ahead): calls visit(i, lookup, record) once
  // for each keys[i], record being valid during the call only (empty unless kPresent), in no
  // particular order, under a shard's lock (it must not call the cache). One lock per shard,
  // and the keys' buckets and entries are fetched from memory together rather than one cache
  // miss after another.
  void GetMany(std::span<const std::string_view> keys,
               const std::function<void(size_t i, Lookup lookup, std::string_view record)>& visit);
  void Fill(std::string_view key, const std::string* record_or_null, int64_t read_revision);

  // Seqlock around publishes. ReadBegin returns an even sequence, waiting out a publish in
  // progress; ReadValidate is true when no publish started since.
  uint64_t ReadBegin() const;
  bool ReadValidate(uint64_t sequence) const;

  // Apply thread only.
  void BeginPublish();
  void Update(std::string_view key, std::string_view record, int64_t revision);
  void MarkAbsent(std::string_view key, int64_t revision);
  void EndPublish();
  // Drops every entry (the state was replaced wholesale, e.g. by a Raft snapshot install);
  // fills from reads before `revision` are refused afterwards. Apply thread only, between
  // BeginPublish and EndPublish.
  void Clear(int64_t revision);

  size_t SizeBytes() const;
  bool enabled() const { return capacity_bytes_ > 0; }

 private:
  // Each shard is a chained hash table of entries that hold their key, record and hash
  // inline, so a lookup touches the bucket and the entry; eviction is CLOCK (a hit sets a bit
  // in the entry it touched anyway) instead of an LRU list that relinks neighbours on every
  // hit.
  static constexpr int kInitialBucketBits = 6;
  static constexpr size_t kInitialBuckets = size_t{1} << kInitialBucketBits;
  struct Entry {
    Entry* next = nullptr;  // in the bucket's chain
    uint64_t hash = 0;
    std::string key;
    std::string record;
    bool absent = false;
    bool referenced = true;  // CLOCK: used since the hand last passed
  };
  struct Shard {
    std::mutex mutex;
    std::vector<Entry*> buckets = std::vector<Entry*>(kInitialBuckets);  // GUARDED_BY(mutex)
    int bucket_bits = kInitialBucketBits;                                // GUARDED_BY(mutex)
    std::vector<std::unique_ptr<Entry>> entries;  // the CLOCK's circle; GUARDED_BY(mutex)
    size_t hand = 0;                              // GUARDED_BY(mutex)
    size_t bytes = 0;                             // GUARDED_BY(mutex)
    int64_t evicted_at_revision = 0;              // GUARDED_BY(mutex)
  };

  static uint64_t Hash(std::string_view key) { return std::hash<std::string_view>{}(key); }
  static size_t Bucket(const Shard& shard, uint64_t hash) {
    return (hash * 0x9E3779B97F4A7C15ULL) >> (64 - shard.bucket_bits);
  }
  static Entry* Find(Shard& shard, std::string_view key, uint64_t hash);
  static void Grow(Shard& shard);
  void EvictOne(Shard& shard, const Entry* keep, int64_t revision);

  Shard& ShardFor(uint64_t hash) { return *shards_[hash % shards_.size()]; }
  void Put(Shard& shard, std::string_view key, uint64_t hash, std::string_view record, bool absent,
           int64_t revision, bool replace);
  static size_t Charge(const Entry& e) { return e.key.size() + e.record.size() + 96; }

  const size_t capacity_bytes_;
  const size_t shard_capacity_bytes_;
  std::vector<std::unique_ptr<Shard>> shards_;
  std::atomic<uint64_t> sequence_{0};
  // Highest revision passed to Update/MarkAbsent (apply thread).
  std::atomic<int64_t> newest_revision_{0};
};

}  // namespace cairn::mvcc
