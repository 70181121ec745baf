// RocksDbEngine-specific behavior: persistence across reopen, atomic flush, crash recovery,
// column family layout, and how CompactRange drives the compaction filter.
#include "src/storage/rocksdb_engine.h"

#include <gtest/gtest.h>
#include <rocksdb/db.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <set>

#include "src/storage/engine_test_util.h"

namespace cairn::storage::testing {
namespace {

std::unique_ptr<Engine> OpenOrDie(const EngineOptions& options) {
  Result<std::unique_ptr<Engine>> opened = RocksDbEngine::Open(options);
  CAIRN_CHECK_OK(opened.status());
  return std::move(opened).value();
}

void WriteAcrossFamilies(Engine* engine, const std::string& tag, int keys) {
  auto batch = engine->NewWriteBatch();
  for (int i = 0; i < keys; ++i) {
    std::string key = tag + "/" + std::to_string(i);
    batch->Put(Family::kMeta, key, tag);
    batch->Put(Family::kKvLatest, key, tag);
    batch->Put(Family::kKvHistory, key, tag);
  }
  CAIRN_CHECK_OK(engine->Write(batch.get()));
}

// How many of the tag's keys each family holds.
std::vector<int> CountAcrossFamilies(Engine* engine, const std::string& tag, int keys) {
  std::vector<int> counts;
  for (Family family : {Family::kMeta, Family::kKvLatest, Family::kKvHistory}) {
    int count = 0;
    for (int i = 0; i < keys; ++i) {
      if (GetOne(engine, family, tag + "/" + std::to_string(i)) == tag) ++count;
    }
    counts.push_back(count);
  }
  return counts;
}

TEST(RocksDbEngineTest, CreatesOneColumnFamilyPerFamily) {
  ScratchDir dir;
  EngineOptions options = TestOptions(dir.path() + "/db");
  OpenOrDie(options).reset();
  std::vector<std::string> names;
  ASSERT_TRUE(rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions(), options.path, &names).ok());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"default", "event_ids", "events", "kv_history",
                                             "kv_latest", "lease", "meta"}));
}

// A point-lookup family (hash memtable) still reads like any other: point reads, and
// iterators in key order over the memtable, SST files and an apply batch together.
TEST(RocksDbEngineTest, PointLookupFamilyReadsAndIteratesInKeyOrder) {
  ScratchDir dir;
  EngineOptions options = TestOptions(dir.path() + "/db");
  constexpr size_t kKeyBytes = 9;
  options.point_lookup_key_bytes[static_cast<size_t>(Family::kEventIds)] = kKeyBytes;
  std::unique_ptr<Engine> engine = OpenOrDie(options);
  std::mt19937_64 random(7);
  std::map<std::string, std::string> model;
  auto put_random = [&](int n) {
    auto batch = engine->NewWriteBatch();
    for (int i = 0; i < n; ++i) {
      std::string key = "I";
      for (size_t b = 1; b < kKeyBytes; ++b) key.push_back(static_cast<char>(random()));
      std::string value = std::to_string(i);
      batch->Put(Family::kEventIds, key, value);
      model[key] = value;
    }
    CAIRN_CHECK_OK(engine->Write(batch.get()));
  };
  put_random(2000);
  CAIRN_CHECK_OK(engine->Flush());  // some in SST files, some in the memtable
  put_random(2000);
  auto expect_in_order = [&](Iterator* it, const std::map<std::string, std::string>& expected) {
    auto want = expected.begin();
    for (it->SeekToFirst(); it->Valid(); it->Next(), ++want) {
      ASSERT_NE(want, expected.end());
      ASSERT_EQ(it->key(), want->first);
      ASSERT_EQ(it->value(), want->second);
    }
    ASSERT_TRUE(it->status().ok());
    EXPECT_EQ(want, expected.end());
  };
  expect_in_order(engine->NewIterator(ReadOptions{}, Family::kEventIds).get(), model);
  for (const auto& [key, value] : model)
    ASSERT_EQ(GetOne(engine.get(), Family::kEventIds, key), value);
  EXPECT_FALSE(*engine->Get(ReadOptions{}, Family::kEventIds, "I-missing", nullptr));

  // Through an apply batch: its own writes merge into the order.
  auto batch = engine->NewWriteBatch();
  std::map<std::string, std::string> with_batch = model;
  batch->Put(Family::kEventIds, "I00000000", "first");
  with_batch["I00000000"] = "first";
  batch->Delete(Family::kEventIds, model.rbegin()->first);
  with_batch.erase(model.rbegin()->first);
  expect_in_order(batch->NewIterator(Family::kEventIds, ReadOptions{}).get(), with_batch);
  std::string value;
  ASSERT_TRUE(*batch->Get(Family::kEventIds, "I00000000", &value));
  EXPECT_EQ(value, "first");

  // And after a reopen (everything in SST files).
  engine.reset();
  engine = OpenOrDie(options);
  expect_in_order(engine->NewIterator(ReadOptions{}, Family::kEventIds).get(), model);
}

// A scanned-only family (history) keeps no Bloom filter in its SST files, the other families
// do; its point reads and iterators answer as before, from the memtable and from files.
TEST(RocksDbEngineTest, ScannedOnlyFamilyHasNoFilterAndReadsAsBefore) {
  ScratchDir dir;
  EngineOptions options = TestOptions(dir.path() + "/db");
  options.scanned_only[static_cast<size_t>(Family::kKvHistory)] = true;
  std::unique_ptr<Engine> engine = OpenOrDie(options);
  WriteAcrossFamilies(engine.get(), "flushed", 100);
  CAIRN_CHECK_OK(engine->Flush());
  WriteAcrossFamilies(engine.get(), "memtable", 100);
  for (const char* tag : {"flushed", "memtable"}) {
    EXPECT_EQ(CountAcrossFamilies(engine.get(), tag, 100), (std::vector<int>{100, 100, 100}));
  }
  EXPECT_FALSE(*engine->Get(ReadOptions{}, Family::kKvHistory, "flushed/missing", nullptr));
  EXPECT_EQ(ScanAll(engine.get(), Family::kKvHistory).size(), 200u);
  engine.reset();

  // Look at the files' table properties.
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  std::vector<std::string> names;
  ASSERT_TRUE(rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions(), options.path, &names).ok());
  for (const std::string& name : names)
    descriptors.emplace_back(name, rocksdb::ColumnFamilyOptions());
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* db = nullptr;
  ASSERT_TRUE(
      rocksdb::DB::OpenForReadOnly(rocksdb::DBOptions(), options.path, descriptors, &handles, &db)
          .ok());
  std::map<std::string, std::set<std::string>> filters;  // family -> filter policy names
  for (rocksdb::ColumnFamilyHandle* handle : handles) {
    rocksdb::TablePropertiesCollection tables;
    ASSERT_TRUE(db->GetPropertiesOfAllTables(handle, &tables).ok());
    for (const auto& [file, properties] : tables) {
      filters[handle->GetName()].insert(properties->filter_policy_name);
    }
  }
  for (rocksdb::ColumnFamilyHandle* handle : handles) delete handle;
  delete db;
  EXPECT_EQ(filters["kv_history"], (std::set<std::string>{""}));
  ASSERT_EQ(filters["kv_latest"].size(), 1u);
  EXPECT_NE(*filters["kv_latest"].begin(), "");

  engine = OpenOrDie(options);
  EXPECT_EQ(CountAcrossFamilies(engine.get(), "flushed", 100), (std::vector<int>{100, 100, 100}));
}

// With read threads, MultiGet answers from the cache what it can and reads the other keys on
// several threads. A block cache of 0 bytes keeps nothing, so the flushed keys all take the
// helpers; the answers must be Get's, at the latest state and at a snapshot, in any key order.
TEST(RocksDbEngineTest, MultiGetOnReadThreadsAnswersEachKeyAsGetWould) {
  ScratchDir dir;
  EngineOptions options = TestOptions(dir.path() + "/db");
  options.block_cache_bytes = 0;
  options.read_threads = 3;
  std::unique_ptr<Engine> engine = OpenOrDie(options);
  constexpr int kKeys = 3000;
  auto key_of = [](int i) {
    char key[16];
    std::snprintf(key, sizeof key, "k/%05d", i);
    return std::string(key);
  };
  auto batch = engine->NewWriteBatch();
  for (int i = 0; i < kKeys; ++i) batch->Put(Family::kKvLatest, key_of(i), "v1-" + key_of(i));
  CAIRN_CHECK_OK(engine->Write(batch.get()));
  CAIRN_CHECK_OK(engine->Flush());
  std::shared_ptr<const Snapshot> before = engine->GetSnapshot();
  batch = engine->NewWriteBatch();
  for (int i = 0; i < kKeys; i += 2) batch->Put(Family::kKvLatest, key_of(i), "v2-" + key_of(i));
  for (int i = 0; i < kKeys; i += 7) batch->Delete(Family::kKvLatest, key_of(i));
  CAIRN_CHECK_OK(engine->Write(batch.get()));
  CAIRN_CHECK_OK(engine->Flush());
  batch = engine->NewWriteBatch();  // these stay in the memtable
  for (int i = 0; i < kKeys; i += 5) batch->Put(Family::kKvLatest, key_of(i), "v3-" + key_of(i));
  CAIRN_CHECK_OK(engine->Write(batch.get()));

  std::vector<std::string> owned;
  for (int i = 0; i < kKeys; ++i) owned.push_back(key_of(i));
  for (int i = 0; i < 100; ++i) owned.push_back("k/absent/" + std::to_string(i));
  std::vector<std::string_view> keys(owned.begin(), owned.end());
  ReadOptions at_snapshot;
  at_snapshot.snapshot = before.get();
  for (bool shuffled : {false, true}) {
    if (shuffled) std::shuffle(keys.begin(), keys.end(), std::mt19937(7));
    for (const ReadOptions& read : {ReadOptions(), at_snapshot}) {
      std::vector<std::optional<std::string>> values;
      ASSERT_TRUE(engine->MultiGet(read, Family::kKvLatest, keys, &values).ok());
      ASSERT_EQ(values.size(), keys.size());
      int present = 0;
      for (size_t i = 0; i < keys.size(); ++i) {
        std::string value;
        Result<bool> found = engine->Get(read, Family::kKvLatest, keys[i], &value);
        ASSERT_TRUE(found.ok());
        ASSERT_EQ(values[i].has_value(), *found) << keys[i];
        if (*found) {
          ASSERT_EQ(*values[i], value) << keys[i];
          ++present;
        }
      }
      // The snapshot sees every first write; now, the keys deleted and not written again
      // (multiples of 7 but not of 5) are gone.
      const int deleted = (kKeys + 6) / 7 - (kKeys + 34) / 35;
      EXPECT_EQ(present, read.snapshot != nullptr ? kKeys : kKeys - deleted);
    }
  }
  EXPECT_EQ(GetOne(engine.get(), Family::kKvLatest, key_of(10)), "v3-" + key_of(10));
  EXPECT_EQ(GetOne(engine.get(), Family::kKvLatest, key_of(12)), "v2-" + key_of(12));
}

// Families written in key order (sorted_batch_writes) end up exactly as written: the sort
// keeps the order of one key's writes (put, delete, put again in one batch), and the other
// families' records keep theirs.
TEST(RocksDbEngineTest, SortedBatchWritesKeepEachKeysLastWrite) {
  ScratchDir dir;
  EngineOptions options = TestOptions(dir.path() + "/db");
  options.sorted_batch_writes[static_cast<size_t>(Family::kKvLatest)] = true;
  options.sorted_batch_writes[static_cast<size_t>(Family::kKvHistory)] = true;
  std::unique_ptr<Engine> engine = OpenOrDie(options);
  std::mt19937_64 random(11);
  const std::array<Family, 3> families = {Family::kKvLatest, Family::kKvHistory, Family::kMeta};
  std::array<std::map<std::string, std::string>, 3> model;
  for (int round = 0; round < 60; ++round) {
    auto batch = engine->NewWriteBatch();
    // 8 to 80 records over 30 keys: most batches write some key more than once.
    const int records = 8 + static_cast<int>(random() % 73);
    for (int i = 0; i < records; ++i) {
      const size_t f = random() % families.size();
      std::string key = "k" + std::to_string(random() % 30);
      if (random() % 4 == 0) {
        batch->Delete(families[f], key);
        model[f].erase(key);
      } else {
        std::string value = std::to_string(round) + "." + std::to_string(i);
        batch->Put(families[f], key, value);
        model[f][key] = value;
      }
    }
    ASSERT_TRUE(engine->Write(batch.get()).ok());
    if (round == 30) {
      ASSERT_TRUE(engine->Flush().ok());
    }
    for (size_t f = 0; f < families.size(); ++f) {
      ASSERT_EQ(ScanAll(engine.get(), families[f]), KeyValues(model[f].begin(), model[f].end()))
          << "round " << round << ", family " << FamilyName(families[f]);
    }
  }
  engine.reset();
  engine = OpenOrDie(options);
  for (size_t f = 0; f < families.size(); ++f) {
    EXPECT_EQ(ScanAll(engine.get(), families[f]), KeyValues(model[f].begin(), model[f].end()));
  }
}

TEST(RocksDbEngineTest, OpensADatabaseWithAnUnknownFamily) {
  ScratchDir dir;
  EngineOptions options = TestOptions(dir.path() + "/db");
  {
    rocksdb::Options raw;
    raw.create_if_missing = true;
    rocksdb::DB* db = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(raw, options.path, &db).ok());
    rocksdb::ColumnFamilyHandle* handle = nullptr;
    ASSERT_TRUE(db->CreateColumnFamily(rocksdb::ColumnFamilyOptions(), "future", &handle).ok());
    ASSERT_TRUE(db->DestroyColumnFamilyHandle(handle).ok());
    delete db;
  }
  std::unique_ptr<Engine> engine = OpenOrDie(options);
  PutOne(engine.get(), Family::kMeta, "k", "v");
  EXPECT_EQ(GetOne(engine.get(), Family::kMeta, "k"), "v");
}

TEST(RocksDbEngineTest, OpenFailsCleanly) {
  EXPECT_EQ(RocksDbEngine::Open(EngineOptions()).status().code(), StatusCode::kInvalidArgument);
  ScratchDir dir;
  std::string file = dir.path() + "/not-a-directory";
  std::ofstream(file) << "x";
  Result<std::unique_ptr<Engine>> opened = RocksDbEngine::Open(TestOptions(file + "/db"));
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.status().code(), StatusCode::kIoError) << opened.status().ToString();
}

TEST(RocksDbEngineTest, ReopenKeepsFlushedData) {
  ScratchDir dir;
  EngineOptions options = TestOptions(dir.path() + "/db");
  std::unique_ptr<Engine> engine = OpenOrDie(options);
  WriteAcrossFamilies(engine.get(), "flushed", 100);
  ASSERT_TRUE(engine->Flush().ok());
  DeleteOne(engine.get(), Family::kKvLatest, "flushed/7");
  ASSERT_TRUE(engine->Flush().ok());
  engine.reset();
  engine = OpenOrDie(options);
  EXPECT_EQ(CountAcrossFamilies(engine.get(), "flushed", 100), (std::vector<int>{100, 99, 100}));
}

TEST(RocksDbEngineTest, CleanCloseKeepsUnflushedData) {
  ScratchDir dir;
  EngineOptions options = TestOptions(dir.path() + "/db");
  std::unique_ptr<Engine> engine = OpenOrDie(options);
  WriteAcrossFamilies(engine.get(), "unflushed", 10);
  engine.reset();
  engine = OpenOrDie(options);
  EXPECT_EQ(CountAcrossFamilies(engine.get(), "unflushed", 10), (std::vector<int>{10, 10, 10}));
}

TEST(RocksDbEngineTest, AtomicFlushPersistsEveryFamily) {
  ScratchDir dir;
  EngineOptions options = TestOptions(dir.path() + "/db");
  std::unique_ptr<Engine> engine = OpenOrDie(options);
  for (int batch = 0; batch < 20; ++batch) {
    WriteAcrossFamilies(engine.get(), "batch" + std::to_string(batch), 50);
  }
  ASSERT_TRUE(engine->Flush().ok());
  engine.reset();
  engine = OpenOrDie(options);
  for (int batch = 0; batch < 20; ++batch) {
    EXPECT_EQ(CountAcrossFamilies(engine.get(), "batch" + std::to_string(batch), 50),
              (std::vector<int>{50, 50, 50}));
  }
}

// The child half of CrashLosesUnflushedBatchesWholesale, run in a fresh process (a forked
// copy of a process that already ran RocksDB would inherit its thread pools without their
// threads): writes, flushes, writes more and dies without closing.
constexpr char kCrashChildEnv[] = "CAIRN_STORAGE_CRASH_CHILD_DB";

TEST(RocksDbEngineTest, CrashChildProcess) {
  const char* path = getenv(kCrashChildEnv);
  if (path == nullptr) GTEST_SKIP() << "runs only as the child of the crash test";
  std::unique_ptr<Engine> engine = OpenOrDie(TestOptions(path));
  WriteAcrossFamilies(engine.get(), "flushed", 100);
  if (!engine->Flush().ok()) _exit(2);
  WriteAcrossFamilies(engine.get(), "lost", 100);
  _exit(0);  // no destructor: a crash
}

// The flushed batches survive in every family; the unflushed one is gone from every family
// (RocksDB's WAL is off and nothing flushed it).
TEST(RocksDbEngineTest, CrashLosesUnflushedBatchesWholesale) {
  ScratchDir dir;
  EngineOptions options = TestOptions(dir.path() + "/db");
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    setenv(kCrashChildEnv, options.path.c_str(), 1);
    execl("/proc/self/exe", "storage_test", "--gtest_filter=RocksDbEngineTest.CrashChildProcess",
          static_cast<char*>(nullptr));
    _exit(3);
  }
  int wait_status = 0;
  ASSERT_EQ(waitpid(child, &wait_status, 0), child);
  ASSERT_TRUE(WIFEXITED(wait_status));
  ASSERT_EQ(WEXITSTATUS(wait_status), 0);

  std::unique_ptr<Engine> engine = OpenOrDie(options);
  EXPECT_EQ(CountAcrossFamilies(engine.get(), "flushed", 100), (std::vector<int>{100, 100, 100}));
  EXPECT_EQ(CountAcrossFamilies(engine.get(), "lost", 100), (std::vector<int>{0, 0, 0}));
}

// Records every filter RocksDB creates: its full_compaction flag and the keys it was shown.
class RecordingFactory final : public CompactionFilterFactory {
 public:
  struct Record {
    bool full_compaction;
    std::vector<std::string> keys;
  };

  std::unique_ptr<CompactionFilter> Create(Family family, bool full_compaction) override {
    if (family != Family::kKvHistory || !enabled) return nullptr;
    std::lock_guard lock(mutex_);
    records_.push_back(std::make_shared<Record>(Record{full_compaction, {}}));
    return std::make_unique<Filter>(this, records_.back());
  }
  std::vector<Record> records() {
    std::lock_guard lock(mutex_);
    std::vector<Record> out;
    for (const auto& record : records_) out.push_back(*record);
    return out;
  }
  void clear() {
    std::lock_guard lock(mutex_);
    records_.clear();
  }
  std::atomic<bool> enabled = true;

 private:
  struct Filter final : CompactionFilter {
    Filter(RecordingFactory* factory, std::shared_ptr<Record> record)
        : factory(factory), record(std::move(record)) {}
    bool ShouldDrop(std::string_view key, std::string_view value) override {
      std::lock_guard lock(factory->mutex_);
      record->keys.emplace_back(key);
      return value.starts_with("drop");
    }
    RecordingFactory* factory;
    std::shared_ptr<Record> record;
  };

  std::mutex mutex_;
  std::vector<std::shared_ptr<Record>> records_;
};

std::string Key(int i) {
  char key[8];
  snprintf(key, sizeof(key), "k%03d", i);
  return key;
}

// With data in two files and a range covering only one, the last step of CompactRange is a
// full compaction restricted to the range: the filter sees exactly the keys in range, and
// drop-values just outside the range (in the same file) survive.
TEST(RocksDbEngineTest, CompactRangeLastStepIsFullAndSeesOnlyTheRange) {
  ScratchDir dir;
  auto factory = std::make_shared<RecordingFactory>();
  EngineOptions options = TestOptions(dir.path() + "/db", factory);
  // The factory records every compaction's filter, and the test expects CompactRange's
  // alone: the engine's merges of flushed files (merge_narrow_flushes) are compactions too.
  options.merge_narrow_flushes = false;
  std::unique_ptr<Engine> engine = OpenOrDie(options);
  auto write = [&](int from, int to) {
    auto batch = engine->NewWriteBatch();
    for (int i = from; i < to; ++i) batch->Put(Family::kKvHistory, Key(i), "drop");
    CAIRN_CHECK_OK(engine->Write(batch.get()));
  };
  write(0, 50);
  // Move the first file to the bottommost level without dropping anything yet.
  factory->enabled = false;
  ASSERT_TRUE(engine->CompactRange(Family::kKvHistory, "", "").ok());
  factory->enabled = true;
  write(50, 100);
  ASSERT_TRUE(engine->Flush().ok());  // a second file, in L0

  factory->clear();
  ASSERT_TRUE(engine->CompactRange(Family::kKvHistory, Key(10), Key(20)).ok());
  bool saw_restricted_full = false;
  for (const RecordingFactory::Record& record : factory->records()) {
    if (!record.full_compaction) continue;
    saw_restricted_full = true;
    for (const std::string& key : record.keys) {
      EXPECT_TRUE(key >= Key(10) && key < Key(20)) << key;
    }
  }
  EXPECT_TRUE(saw_restricted_full);
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(GetOne(engine.get(), Family::kKvHistory, Key(i)).has_value(), i < 10 || i >= 20) << i;
  }
}

TEST(RocksDbEngineTest, SnapshotsAndIteratorsCanOutliveWritesAndFlushes) {
  ScratchDir dir;
  std::unique_ptr<Engine> engine = OpenOrDie(TestOptions(dir.path() + "/db"));
  PutOne(engine.get(), Family::kKvLatest, "a", "1");
  std::shared_ptr<const Snapshot> snapshot = engine->GetSnapshot();
  ReadOptions at_snapshot;
  at_snapshot.snapshot = snapshot.get();
  auto it = engine->NewIterator(at_snapshot, Family::kKvLatest);
  for (int i = 0; i < 1000; ++i) PutOne(engine.get(), Family::kKvLatest, "a", std::to_string(i));
  ASSERT_TRUE(engine->Flush().ok());
  EXPECT_EQ(ScanForward(it.get()), (KeyValues{{"a", "1"}}));
  EXPECT_EQ(GetOne(engine.get(), Family::kKvLatest, "a", snapshot.get()), "1");
  EXPECT_EQ(GetOne(engine.get(), Family::kKvLatest, "a"), "999");
}

}  // namespace
}  // namespace cairn::storage::testing
