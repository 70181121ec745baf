#include "src/env/fault_injection_file_system.h"

#include <gtest/gtest.h>

namespace cairn::env {
namespace {

class FaultInjectionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(fs_.CreateDirs("/d").ok());
    ASSERT_TRUE(fs_.SyncDir("/d").ok());
  }

  std::unique_ptr<WritableFile> Create(const std::string& path) {
    auto file = fs_.NewWritableFile(path);
    EXPECT_TRUE(file.ok());
    return std::move(file).value();
  }
  std::string Contents(const std::string& path) {
    auto contents = fs_.ReadWholeFile(path);
    EXPECT_TRUE(contents.ok()) << contents.status().ToString();
    return contents.ok() ? *contents : "";
  }

  FaultInjectionFileSystem fs_;
};

TEST_F(FaultInjectionTest, CrashKeepsExactlyTheSyncedBytes) {
  auto file = Create("/d/f");
  ASSERT_TRUE(fs_.SyncDir("/d").ok());
  ASSERT_TRUE(file->Append("durable").ok());
  ASSERT_TRUE(file->Sync().ok());
  ASSERT_TRUE(file->Append("-lost").ok());
  EXPECT_EQ(Contents("/d/f"), "durable-lost");
  EXPECT_EQ(fs_.UnsyncedChangeCount(), 1u);

  fs_.SimulateCrash();
  EXPECT_EQ(Contents("/d/f"), "durable");
  EXPECT_EQ(fs_.UnsyncedChangeCount(), 0u);
  EXPECT_EQ(fs_.CrashCount(), 1u);
  // The old handle is stale; a new one continues from the surviving end.
  EXPECT_TRUE(file->Append("x").Is(StatusCode::kIoError));
  EXPECT_TRUE(file->Sync().Is(StatusCode::kIoError));
  auto reopened = fs_.ReopenWritableFile("/d/f");
  ASSERT_TRUE(reopened.ok());
  EXPECT_EQ((*reopened)->Size(), 7u);
}

TEST_F(FaultInjectionTest, TruncateAndPreallocateAreDurableOnlyAfterSync) {
  auto file = Create("/d/f");
  ASSERT_TRUE(fs_.SyncDir("/d").ok());
  ASSERT_TRUE(file->Append("0123456789").ok());
  ASSERT_TRUE(file->Sync().ok());
  ASSERT_TRUE(fs_.TruncateFile("/d/f", 4).ok());
  ASSERT_TRUE(file->Preallocate(64).ok());
  fs_.SimulateCrash();
  EXPECT_EQ(Contents("/d/f"), "0123456789");

  auto again = fs_.ReopenWritableFile("/d/f");
  ASSERT_TRUE(again.ok());
  ASSERT_TRUE(fs_.TruncateFile("/d/f", 4).ok());
  ASSERT_TRUE((*again)->Preallocate(8).ok());
  ASSERT_TRUE((*again)->Sync().ok());
  fs_.SimulateCrash();
  EXPECT_EQ(Contents("/d/f"), std::string("0123\0\0\0\0", 8));
}

TEST_F(FaultInjectionTest, NamesAreDurableOnlyAfterSyncDir) {
  auto never_dir_synced = Create("/d/new");
  ASSERT_TRUE(never_dir_synced->Append("data").ok());
  ASSERT_TRUE(never_dir_synced->Sync().ok());  // data synced, name not
  auto kept = Create("/d/kept");
  ASSERT_TRUE(kept->Append("k").ok());
  ASSERT_TRUE(kept->Sync().ok());
  ASSERT_TRUE(fs_.CreateDirs("/d2").ok());
  auto elsewhere = Create("/d2/other");  // a SyncDir of /d does not cover /d2
  ASSERT_TRUE(fs_.SyncDir("/d").ok());
  ASSERT_TRUE(fs_.DeleteFile("/d/new").ok());                 // deletion not dir-synced: comes back
  ASSERT_TRUE(fs_.RenameFile("/d/kept", "/d/renamed").ok());  // rename reverts

  fs_.SimulateCrash();
  EXPECT_EQ(Contents("/d/new"), "data");
  EXPECT_EQ(Contents("/d/kept"), "k");
  EXPECT_FALSE(fs_.FileExists("/d/renamed"));
  EXPECT_FALSE(fs_.FileExists("/d2/other"));
  EXPECT_TRUE(fs_.FileExists("/d2"));  // directories are durable on creation

  ASSERT_TRUE(fs_.DeleteFile("/d/new").ok());
  ASSERT_TRUE(fs_.SyncDir("/d").ok());
  fs_.SimulateCrash();
  EXPECT_FALSE(fs_.FileExists("/d/new"));
}

TEST_F(FaultInjectionTest, TornWriteKeepsAPrefixOfUnsyncedBytes) {
  const std::string synced(100, 's');
  std::string unsynced;
  for (int i = 0; i < 3; ++i) unsynced += std::string(50, static_cast<char>('a' + i));
  int kept_nothing = 0, kept_partial = 0, kept_all = 0, with_garbage = 0;
  for (uint64_t seed = 1; seed <= 3000; ++seed) {
    FaultInjectionFileSystem fs;
    ASSERT_TRUE(fs.CreateDirs("/d").ok());
    auto file = fs.NewWritableFile("/d/f");
    ASSERT_TRUE(file.ok());
    ASSERT_TRUE(fs.SyncDir("/d").ok());
    ASSERT_TRUE((*file)->Append(synced).ok());
    ASSERT_TRUE((*file)->Sync().ok());
    for (int i = 0; i < 3; ++i) ASSERT_TRUE((*file)->Append(unsynced.substr(50 * i, 50)).ok());
    Random random(seed);
    fs.SimulateCrashWithTornWrite(random);

    std::string contents = *fs.ReadWholeFile("/d/f");
    ASSERT_GE(contents.size(), synced.size()) << "seed " << seed;
    ASSERT_LE(contents.size(), synced.size() + unsynced.size()) << "seed " << seed;
    ASSERT_EQ(contents.substr(0, synced.size()), synced) << "seed " << seed;
    std::string tail = contents.substr(synced.size());
    size_t matching = 0;
    while (matching < tail.size() && tail[matching] == unsynced[matching]) ++matching;
    // Whatever does not match the intended bytes is garbage confined to the one torn write.
    ASSERT_LE(tail.size() - matching, 50u) << "seed " << seed;
    if (matching < tail.size()) ++with_garbage;
    if (tail.empty())
      ++kept_nothing;
    else if (tail == unsynced)
      ++kept_all;
    else
      ++kept_partial;
  }
  EXPECT_GT(kept_nothing, 0);
  EXPECT_GT(kept_partial, 0);
  EXPECT_GT(kept_all, 0);
  EXPECT_GT(with_garbage, 0);
}

TEST_F(FaultInjectionTest, TornCrashIsDeterministicPerSeed) {
  auto run = [](uint64_t seed) {
    FaultInjectionFileSystem fs;
    EXPECT_TRUE(fs.CreateDirs("/d").ok());
    auto file = fs.NewWritableFile("/d/f");
    EXPECT_TRUE(fs.SyncDir("/d").ok());
    for (int i = 0; i < 10; ++i) EXPECT_TRUE((*file)->Append(std::string(37, 'x')).ok());
    Random random(seed);
    fs.SimulateCrashWithTornWrite(random);
    return *fs.ReadWholeFile("/d/f");
  };
  EXPECT_EQ(run(42), run(42));
}

TEST_F(FaultInjectionTest, FailNthFailsOnceAndChangesNothing) {
  auto file = Create("/d/f");
  fs_.FailNth(FileOperation::kAppend, 2);
  ASSERT_TRUE(file->Append("one").ok());
  Status failed = file->Append("two");
  EXPECT_TRUE(failed.Is(StatusCode::kIoError));
  EXPECT_NE(failed.message().find("/d/f"), std::string_view::npos);
  EXPECT_EQ(file->Size(), 3u);
  ASSERT_TRUE(file->Append("three").ok());
  EXPECT_EQ(Contents("/d/f"), "onethree");

  fs_.FailNth(FileOperation::kSync, 1);
  EXPECT_TRUE(file->Sync().Is(StatusCode::kIoError));
  ASSERT_TRUE(fs_.SyncDir("/d").ok());
  fs_.SimulateCrash();  // the failed sync made nothing durable
  EXPECT_EQ(Contents("/d/f"), "");
  EXPECT_EQ(fs_.OperationCount(FileOperation::kAppend), 3u);
  EXPECT_EQ(fs_.OperationCount(FileOperation::kSync), 1u);
}

TEST_F(FaultInjectionTest, FailAlwaysAndHook) {
  fs_.FailAlways(FileOperation::kSyncDir);
  EXPECT_TRUE(fs_.SyncDir("/d").Is(StatusCode::kIoError));
  EXPECT_TRUE(fs_.SyncDir("/d").Is(StatusCode::kIoError));
  fs_.ClearFaults();
  EXPECT_TRUE(fs_.SyncDir("/d").ok());

  fs_.SetHook([](FileOperation operation, const std::string& path) {
    if (operation == FileOperation::kNewWritableFile && path.ends_with(".bad")) {
      return Status::IoError("no space left on device");
    }
    return Status::Ok();
  });
  EXPECT_TRUE(fs_.NewWritableFile("/d/x.bad").status().Is(StatusCode::kIoError));
  EXPECT_TRUE(fs_.NewWritableFile("/d/x.good").ok());
}

TEST_F(FaultInjectionTest, HaltFailsEverythingUntilTheCrash) {
  auto file = Create("/d/f");
  ASSERT_TRUE(file->Append("synced").ok());
  ASSERT_TRUE(file->Sync().ok());
  fs_.Halt();
  EXPECT_TRUE(file->Append("more").Is(StatusCode::kIoError));
  EXPECT_TRUE(fs_.SyncDir("/d").Is(StatusCode::kIoError));  // the name never becomes durable
  EXPECT_TRUE(fs_.NewWritableFile("/d/g").status().Is(StatusCode::kIoError));
  fs_.SimulateCrash();
  EXPECT_FALSE(fs_.FileExists("/d/f"));
  EXPECT_TRUE(fs_.NewWritableFile("/d/g").ok());
}

}  // namespace
}  // namespace cairn::env
