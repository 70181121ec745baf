// MemoryEngine-specific behavior: the crash model used by simulation, and scale.
#include "src/storage/memory_engine.h"

#include <gtest/gtest.h>
#include <time.h>

#include <chrono>

#include "src/storage/engine_test_util.h"

namespace cairn::storage::testing {
namespace {

void WriteAcrossFamilies(Engine* engine, const std::string& value) {
  auto batch = engine->NewWriteBatch();
  batch->Put(Family::kMeta, "applied_index", value);
  batch->Put(Family::kKvLatest, "key-" + value, value);
  batch->Put(Family::kKvHistory, "history-" + value, value);
  CAIRN_CHECK_OK(engine->Write(batch.get()));
}

TEST(MemoryEngineTest, SimulateCrashLosesUnflushedBatchesWholesale) {
  MemoryEngine engine;
  WriteAcrossFamilies(&engine, "1");
  WriteAcrossFamilies(&engine, "2");
  ASSERT_TRUE(engine.Flush().ok());
  WriteAcrossFamilies(&engine, "3");
  DeleteOne(&engine, Family::kKvLatest, "key-1");
  std::shared_ptr<const Snapshot> before_crash = engine.GetSnapshot();

  engine.SimulateCrash();
  EXPECT_EQ(GetOne(&engine, Family::kMeta, "applied_index"), "2");
  EXPECT_EQ(ScanAll(&engine, Family::kKvLatest), (KeyValues{{"key-1", "1"}, {"key-2", "2"}}));
  EXPECT_EQ(ScanAll(&engine, Family::kKvHistory),
            (KeyValues{{"history-1", "1"}, {"history-2", "2"}}));
  // A snapshot from before the crash keeps its view (simulation may still hold one).
  EXPECT_EQ(GetOne(&engine, Family::kMeta, "applied_index", before_crash.get()), "3");

  // Crashing again without writes changes nothing; new writes then work as usual.
  engine.SimulateCrash();
  EXPECT_EQ(GetOne(&engine, Family::kMeta, "applied_index"), "2");
  WriteAcrossFamilies(&engine, "4");
  EXPECT_EQ(GetOne(&engine, Family::kMeta, "applied_index"), "4");
  ASSERT_TRUE(engine.Flush().ok());
  engine.SimulateCrash();
  EXPECT_EQ(GetOne(&engine, Family::kMeta, "applied_index"), "4");
}

TEST(MemoryEngineTest, CrashBeforeAnyFlushLosesEverything) {
  MemoryEngine engine;
  WriteAcrossFamilies(&engine, "1");
  engine.SimulateCrash();
  for (Family family : {Family::kMeta, Family::kKvLatest, Family::kKvHistory}) {
    EXPECT_EQ(ScanAll(&engine, family), KeyValues{});
  }
  EXPECT_EQ(engine.ApproximateSizeBytes(), 0u);
}

class DropAll final : public CompactionFilterFactory {
 public:
  std::unique_ptr<CompactionFilter> Create(Family family, bool full_compaction) override {
    struct Filter final : CompactionFilter {
      bool ShouldDrop(std::string_view, std::string_view) override { return true; }
    };
    return std::make_unique<Filter>();
  }
};

TEST(MemoryEngineTest, CompactRangeIsADurablePointAndItsDropsAreDurable) {
  EngineOptions options;
  options.compaction_filter_factory = std::make_shared<DropAll>();
  MemoryEngine engine(options);
  PutOne(&engine, Family::kKvHistory, "a", "1");
  PutOne(&engine, Family::kKvHistory, "b", "2");
  PutOne(&engine, Family::kKvLatest, "c", "3");
  ASSERT_TRUE(engine.CompactRange(Family::kKvHistory, "b", "").ok());
  engine.SimulateCrash();
  EXPECT_EQ(ScanAll(&engine, Family::kKvHistory), (KeyValues{{"a", "1"}}));
  EXPECT_EQ(GetOne(&engine, Family::kKvLatest, "c"), "3");
}

TEST(MemoryEngineTest, ApproximateSizeIsKeyPlusValueBytes) {
  MemoryEngine engine;
  PutOne(&engine, Family::kMeta, "ab", "cde");
  PutOne(&engine, Family::kKvLatest, "f", "");
  EXPECT_EQ(engine.ApproximateSizeBytes(), 6u);
  PutOne(&engine, Family::kMeta, "ab", "c");  // overwrite
  EXPECT_EQ(engine.ApproximateSizeBytes(), 4u);
  DeleteOne(&engine, Family::kMeta, "ab");
  EXPECT_EQ(engine.ApproximateSizeBytes(), 1u);
}

// 100k keys in batches of 100, reads, a full scan and a snapshot: all O(log n) per step.
// Guards against accidentally quadratic behaviour (100k keys would then take minutes). The
// bound is on this thread's CPU time, not wall time, so a busy machine does not fail it.
double ThreadCpuSeconds() {
  timespec now{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
  return static_cast<double>(now.tv_sec) + static_cast<double>(now.tv_nsec) * 1e-9;
}

TEST(MemoryEngineTest, HundredThousandKeysAreQuick) {
  MemoryEngine engine;
  const double start_cpu_seconds = ThreadCpuSeconds();
  constexpr int kKeys = 100'000;
  std::shared_ptr<const Snapshot> snapshot;
  for (int i = 0; i < kKeys; i += 100) {
    if (i == kKeys / 2) snapshot = engine.GetSnapshot();
    auto batch = engine.NewWriteBatch();
    for (int j = i; j < i + 100; ++j) {
      batch->Put(Family::kKvLatest, Numbered("key", (j * 7919) % kKeys), "value");
    }
    ASSERT_TRUE(engine.Write(batch.get()).ok());
  }
  for (int i = 0; i < kKeys; i += 7) {
    ASSERT_EQ(GetOne(&engine, Family::kKvLatest, Numbered("key", i)), "value");
  }
  EXPECT_EQ(ScanAll(&engine, Family::kKvLatest).size(), static_cast<size_t>(kKeys));
  EXPECT_EQ(ScanAll(&engine, Family::kKvLatest, snapshot.get()).size(),
            static_cast<size_t>(kKeys / 2));
  EXPECT_LT(ThreadCpuSeconds() - start_cpu_seconds, 10.0);
}

}  // namespace
}  // namespace cairn::storage::testing
