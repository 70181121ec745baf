// ReadAheadFileSystem: which reads count, when a file is read ahead, and that the kernel then
// holds the whole file; and RocksDbEngine's point reads driving it.
#include "src/storage/file_read_ahead.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "src/storage/engine_test_util.h"

namespace cairn::storage::testing {
namespace {

using internal::PointReadScope;
using internal::ReadAheadFileSystem;

constexpr size_t kFileBytes = 8 << 20;

// The fraction of `path`'s pages in the page cache.
double ResidentFraction(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  CAIRN_CHECK(fd >= 0);
  struct stat status {};
  CAIRN_CHECK(fstat(fd, &status) == 0);
  const size_t size = static_cast<size_t>(status.st_size);
  if (size == 0) {
    close(fd);
    return 1.0;
  }
  void* map = mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
  CAIRN_CHECK(map != MAP_FAILED);
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  std::vector<unsigned char> resident((size + page - 1) / page);
  CAIRN_CHECK(mincore(map, size, resident.data()) == 0);
  munmap(map, size);
  close(fd);
  size_t count = 0;
  for (unsigned char flags : resident) count += flags & 1;
  return static_cast<double>(count) / static_cast<double>(resident.size());
}

// Writes back and drops `path`'s pages from the page cache.
void DropFromPageCache(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  CAIRN_CHECK(fd >= 0);
  CAIRN_CHECK(fdatasync(fd) == 0);
  CAIRN_CHECK(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED) == 0);
  close(fd);
}

bool WaitFor(const std::function<bool()>& condition) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

void WriteFile(const std::string& path, size_t bytes) {
  std::string data(bytes, '\0');
  std::mt19937_64 random(7);
  for (char& c : data) c = static_cast<char>(random());
  FILE* file = fopen(path.c_str(), "wb");
  CAIRN_CHECK(file != nullptr);
  CAIRN_CHECK(fwrite(data.data(), 1, data.size(), file) == data.size());
  CAIRN_CHECK(fclose(file) == 0);
}

// A database directory on the disk (the page cache of tmpfs cannot be dropped) holding one
// table file, opened through a ReadAheadFileSystem.
class ReadAheadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    database_ = dir_.path() + "/db";
    std::filesystem::create_directories(database_);
    table_ = database_ + "/000042.sst";
    WriteFile(table_, kFileBytes);
    options_.slow_read_micros = 0;  // every read counts as one from the disk
    options_.slow_reads_per_second = 4;
  }

  void Open() {
    file_system_ =
        std::make_shared<ReadAheadFileSystem>(rocksdb::FileSystem::Default(), database_, options_);
    ASSERT_TRUE(file_system_
                    ->NewRandomAccessFile(table_, rocksdb::FileOptions(), &file_,
                                          /*debug=*/nullptr)
                    .ok());
  }

  // Drops the table file from the page cache; false where that does not work.
  bool MakeCold() {
    DropFromPageCache(table_);
    return ResidentFraction(table_) < 0.1;
  }

  // `count` 4 KiB reads spread over the file.
  void Read(int count) {
    std::vector<char> scratch(4096);
    for (int i = 0; i < count; ++i) {
      rocksdb::Slice result;
      const uint64_t offset = (kFileBytes / 4096 / 16) * 4096 * static_cast<uint64_t>(i % 16);
      ASSERT_TRUE(
          file_
              ->Read(offset, scratch.size(), rocksdb::IOOptions(), &result, scratch.data(), nullptr)
              .ok());
      ASSERT_EQ(result.size(), scratch.size());
    }
  }

  ScratchDir dir_{"."};
  std::string database_;
  std::string table_;
  ReadAheadOptions options_;
  std::shared_ptr<ReadAheadFileSystem> file_system_;
  std::unique_ptr<rocksdb::FSRandomAccessFile> file_;
};

TEST_F(ReadAheadTest, ColdPointReadsReadTheWholeFileAhead) {
  if (!MakeCold()) GTEST_SKIP() << "the page cache of " << table_ << " cannot be dropped here";
  Open();
  {
    PointReadScope point_read;
    Read(4);
  }
  EXPECT_LT(ResidentFraction(table_), 0.5);
  ASSERT_TRUE(WaitFor([&] { return file_system_->stats().files_read_ahead == 1; }));
  EXPECT_EQ(file_system_->stats().bytes_read_ahead, kFileBytes);
  EXPECT_TRUE(WaitFor([&] { return ResidentFraction(table_) > 0.99; }))
      << "resident: " << ResidentFraction(table_);
}

TEST_F(ReadAheadTest, OnlyReadsInsideAPointReadCount) {
  Open();
  Read(100);  // an iterator's or a compaction's reads
  EXPECT_EQ(file_system_->stats().files_queued, 0u);
  PointReadScope point_read;
  Read(3);
  EXPECT_EQ(file_system_->stats().files_queued, 0u);
  { PointReadScope nested; }
  Read(1);  // the nested scope's end left the outer one active
  EXPECT_EQ(file_system_->stats().files_queued, 1u);
}

TEST_F(ReadAheadTest, ReadsFasterThanTheThresholdDoNotCount) {
  options_.slow_read_micros = 10'000'000;
  Open();
  PointReadScope point_read;
  Read(100);
  EXPECT_EQ(file_system_->stats().files_queued, 0u);
}

TEST_F(ReadAheadTest, AFileIsConsideredOnceAnInterval) {
  Open();
  PointReadScope point_read;
  Read(4);
  EXPECT_EQ(file_system_->stats().files_queued, 1u);
  ASSERT_TRUE(WaitFor([&] { return file_system_->stats().files_read_ahead == 1; }));
  Read(100);
  EXPECT_EQ(file_system_->stats().files_queued, 1u);
  EXPECT_EQ(file_system_->stats().files_read_ahead, 1u);
}

TEST_F(ReadAheadTest, NothingIsReadAheadOverTheMemoryBudget) {
  options_.memory_budget_bytes = kFileBytes - 1;
  if (!MakeCold()) GTEST_SKIP() << "the page cache of " << table_ << " cannot be dropped here";
  Open();
  PointReadScope point_read;
  Read(4);
  ASSERT_TRUE(WaitFor([&] { return file_system_->stats().files_over_budget == 1; }));
  EXPECT_EQ(file_system_->stats().files_read_ahead, 0u);
  EXPECT_LT(ResidentFraction(table_), 0.5);
}

TEST_F(ReadAheadTest, OnlyTheDatabasesTableFilesAreWatched) {
  const std::string other_file = database_ + "/000043.blob";
  const std::string nested = database_ + "/sub/000044.sst";
  std::filesystem::create_directories(database_ + "/sub");
  WriteFile(other_file, 4096 * 16);
  WriteFile(nested, 4096 * 16);
  Open();
  EXPECT_EQ(file_system_->stats().table_file_bytes, kFileBytes);
  for (const std::string& path : {other_file, nested}) {
    std::unique_ptr<rocksdb::FSRandomAccessFile> file;
    ASSERT_TRUE(
        file_system_->NewRandomAccessFile(path, rocksdb::FileOptions(), &file, nullptr).ok());
    std::vector<char> scratch(4096);
    PointReadScope point_read;
    for (int i = 0; i < 16; ++i) {
      rocksdb::Slice result;
      ASSERT_TRUE(
          file->Read(4096 * i, 4096, rocksdb::IOOptions(), &result, scratch.data(), nullptr).ok());
    }
  }
  EXPECT_EQ(file_system_->stats().files_queued, 0u);
  EXPECT_EQ(file_system_->stats().table_file_bytes, kFileBytes);
}

TEST_F(ReadAheadTest, DeletingATableFileReleasesItsBytes) {
  Open();
  EXPECT_EQ(file_system_->stats().table_file_bytes, kFileBytes);
  file_.reset();
  ASSERT_TRUE(file_system_->DeleteFile(table_, rocksdb::IOOptions(), nullptr).ok());
  EXPECT_EQ(file_system_->stats().table_file_bytes, 0u);
  EXPECT_FALSE(std::filesystem::exists(table_));
}

TEST(ReadAheadMemoryTest, MemoryAvailableIsReported) {
  EXPECT_GT(internal::MemoryAvailableBytes(), 0u);
}

// The engine's point reads (Get) of a cold table file bring the whole file into the page
// cache; its iterators do not.
TEST(RocksDbReadAheadTest, PointReadsOfAColdTableFileReadItAhead) {
  ScratchDir dir(".");
  EngineOptions options = TestOptions(dir.path() + "/db");
  options.read_ahead.slow_read_micros = 0;
  options.read_ahead.slow_reads_per_second = 8;
  options.merge_narrow_flushes = false;  // the flushed file must stay the one listed below
  options.block_cache_bytes = 0;         // every data block read comes from the file
  Result<std::unique_ptr<Engine>> opened = RocksDbEngine::Open(options);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  std::unique_ptr<Engine> engine = std::move(opened).value();
  constexpr int kKeys = 15'000;
  auto batch = engine->NewWriteBatch();
  for (int i = 0; i < kKeys; ++i) {
    batch->Put(Family::kKvLatest, "key" + std::to_string(1'000'000 + i), std::string(200, 'v'));
  }
  ASSERT_TRUE(engine->Write(batch.get()).ok());
  ASSERT_TRUE(engine->Flush().ok());
  std::vector<std::string> tables;
  for (const auto& entry : std::filesystem::directory_iterator(options.path)) {
    if (entry.path().extension() == ".sst" && entry.file_size() > (1 << 20)) {
      tables.push_back(entry.path());
    }
  }
  ASSERT_EQ(tables.size(), 1u);
  const std::string& table = tables[0];
  DropFromPageCache(table);
  if (ResidentFraction(table) >= 0.1) GTEST_SKIP() << "the page cache cannot be dropped here";

  std::unique_ptr<Iterator> iterator = engine->NewIterator(ReadOptions(), Family::kKvLatest);
  int scanned = 0;
  for (iterator->SeekToFirst(); iterator->Valid() && scanned < 2'000; iterator->Next()) ++scanned;
  ASSERT_EQ(scanned, 2'000);
  iterator.reset();
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_LT(ResidentFraction(table), 0.5) << "an iterator's reads made the file read ahead";

  for (int i = 0; i < kKeys; i += kKeys / 16) {
    EXPECT_EQ(GetOne(engine.get(), Family::kKvLatest, "key" + std::to_string(1'000'000 + i)),
              std::string(200, 'v'));
  }
  EXPECT_TRUE(WaitFor([&] { return ResidentFraction(table) > 0.99; }))
      << "resident: " << ResidentFraction(table);
  EXPECT_EQ(engine->Stats().files_read_ahead, 1u);
  EXPECT_EQ(engine->Stats().bytes_read_ahead, std::filesystem::file_size(table));
}

}  // namespace
}  // namespace cairn::storage::testing
