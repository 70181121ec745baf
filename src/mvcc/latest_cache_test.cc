#include "src/mvcc/latest_cache.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace cairn::mvcc {
namespace {

TEST(LatestCacheTest, UpdateGetAndAbsent) {
  LatestCache cache(1 << 20);
  std::string record;
  EXPECT_EQ(cache.Get("a", &record), LatestCache::Lookup::kMiss);
  cache.BeginPublish();
  cache.Update("a", "record-a", 2);
  cache.MarkAbsent("b", 2);
  cache.EndPublish();
  EXPECT_EQ(cache.Get("a", &record), LatestCache::Lookup::kPresent);
  EXPECT_EQ(record, "record-a");
  EXPECT_EQ(cache.Get("b", &record), LatestCache::Lookup::kAbsent);
}

TEST(LatestCacheTest, FillNeverReplacesAnApplyThreadEntry) {
  LatestCache cache(1 << 20);
  cache.Update("a", "new", 5);
  std::string old = "old";
  cache.Fill("a", &old, 4);  // a reader's older snapshot
  std::string record;
  ASSERT_EQ(cache.Get("a", &record), LatestCache::Lookup::kPresent);
  EXPECT_EQ(record, "new");
}

TEST(LatestCacheTest, FillAfterANewerEvictionIsDropped) {
  // One shard of ~300 bytes: a second entry evicts the first.
  LatestCache cache(300, /*shard_count=*/1);
  cache.Update("a", std::string(100, 'x'), 7);
  cache.Update("b", std::string(100, 'y'), 8);  // evicts "a" at revision 8
  std::string record;
  EXPECT_EQ(cache.Get("a", &record), LatestCache::Lookup::kMiss);
  std::string stale = "value of a read at revision 6";
  cache.Fill("a", &stale, 6);  // might predate the evicted version: must not be cached
  EXPECT_EQ(cache.Get("a", &record), LatestCache::Lookup::kMiss);
  cache.Fill("a", &stale, 8);  // read after the eviction: safe to cache
  EXPECT_EQ(cache.Get("a", &record), LatestCache::Lookup::kPresent);
}

TEST(LatestCacheTest, StaysWithinCapacity) {
  LatestCache cache(64 << 10, /*shard_count=*/4);
  for (int i = 0; i < 10000; ++i) cache.Update("key" + std::to_string(i), std::string(50, 'v'), i);
  EXPECT_LE(cache.SizeBytes(), 64u << 10);
  EXPECT_GT(cache.SizeBytes(), 32u << 10);
}

// Eviction prefers entries nobody used since the last eviction: a read keeps an older entry
// in while newer ones that were not read go (first in, first out would evict it third).
TEST(LatestCacheTest, AnEntryReadSinceTheLastEvictionOutlivesUnreadOnes) {
  const std::string value(100, 'v');  // each entry charges 1 + 100 + 96 bytes
  LatestCache cache(4 * 197, /*shard_count=*/1);
  for (const char* key : {"a", "b", "c", "d", "e"}) cache.Update(key, value, 1);
  std::string record;
  EXPECT_EQ(cache.Get("a", &record), LatestCache::Lookup::kMiss);  // the oldest went first
  ASSERT_EQ(cache.Get("c", &record), LatestCache::Lookup::kPresent);
  cache.Update("f", value, 2);
  cache.Update("g", value, 3);
  EXPECT_EQ(cache.Get("c", &record), LatestCache::Lookup::kPresent);
  EXPECT_EQ(cache.Get("b", &record), LatestCache::Lookup::kMiss);
  EXPECT_EQ(cache.Get("d", &record), LatestCache::Lookup::kMiss);
  for (const char* key : {"e", "f", "g"}) {
    EXPECT_EQ(cache.Get(key, &record), LatestCache::Lookup::kPresent) << key;
  }
  EXPECT_EQ(cache.SizeBytes(), 4u * 197);
}

// Many keys per shard: the buckets grow and every key stays findable; updates replace.
TEST(LatestCacheTest, ManyKeysStayFindableAsTheTableGrows) {
  LatestCache cache(64 << 20, /*shard_count=*/2);
  for (int i = 0; i < 20000; ++i) cache.Update("key" + std::to_string(i), std::to_string(i), i);
  for (int i = 0; i < 20000; i += 2) cache.Update("key" + std::to_string(i), "even", 20000 + i);
  std::string record;
  for (int i = 0; i < 20000; ++i) {
    ASSERT_EQ(cache.Get("key" + std::to_string(i), &record), LatestCache::Lookup::kPresent) << i;
    EXPECT_EQ(record, i % 2 == 0 ? "even" : std::to_string(i));
  }
  EXPECT_EQ(cache.Get("key20000", &record), LatestCache::Lookup::kMiss);
  cache.BeginPublish();
  cache.Clear(50000);
  cache.EndPublish();
  EXPECT_EQ(cache.Get("key1", &record), LatestCache::Lookup::kMiss);
  EXPECT_EQ(cache.SizeBytes(), 0u);
}

TEST(LatestCacheTest, ReadValidateFailsAcrossAPublish) {
  LatestCache cache(1 << 20);
  uint64_t sequence = cache.ReadBegin();
  EXPECT_TRUE(cache.ReadValidate(sequence));
  cache.BeginPublish();
  cache.EndPublish();
  EXPECT_FALSE(cache.ReadValidate(sequence));
}

// GetMany answers each key exactly as Get does (present with its record, absent, missing),
// once per key, across shards and within one, and marks the entries it found as used.
TEST(LatestCacheTest, GetManyAnswersEachKeyLikeGet) {
  for (size_t shards : {size_t{1}, size_t{4}, size_t{64}}) {
    LatestCache cache(1 << 20, shards);
    cache.BeginPublish();
    for (int i = 0; i < 300; ++i) {
      const std::string key = "k" + std::to_string(i);
      if (i % 3 == 0) cache.Update(key, "record-" + std::to_string(i), 2);
      if (i % 3 == 1) cache.MarkAbsent(key, 2);
    }
    cache.EndPublish();
    std::vector<std::string> owned;
    for (int i = 0; i < 300; i += 2) owned.push_back("k" + std::to_string(i));
    owned.push_back("never");
    std::vector<std::string_view> keys(owned.begin(), owned.end());
    std::vector<int> visits(keys.size());
    std::vector<std::pair<LatestCache::Lookup, std::string>> answers(keys.size());
    cache.GetMany(keys, [&](size_t i, LatestCache::Lookup lookup, std::string_view record) {
      ASSERT_LT(i, keys.size());
      ++visits[i];
      answers[i] = {lookup, std::string(record)};
    });
    for (size_t i = 0; i < keys.size(); ++i) {
      std::string expected_record;
      EXPECT_EQ(answers[i].first, cache.Get(keys[i], &expected_record)) << keys[i];
      EXPECT_EQ(answers[i].second, expected_record) << keys[i];
    }
    EXPECT_EQ(visits, std::vector<int>(keys.size(), 1)) << shards << " shards";
  }
}

TEST(LatestCacheTest, DisabledCacheMissesAlways) {
  LatestCache cache(0);
  EXPECT_FALSE(cache.enabled());
  cache.Update("a", "r", 1);
  std::string record;
  EXPECT_EQ(cache.Get("a", &record), LatestCache::Lookup::kMiss);
}

}  // namespace
}  // namespace cairn::mvcc
