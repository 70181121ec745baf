// One behavioural suite run against every FileSystem implementation, so that the in-memory
// file systems used by tests and the simulation behave like the real one.
#include "src/env/file_system.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <thread>

#include "src/env/fault_injection_file_system.h"
#include "src/env/memory_file_system.h"
#include "src/env/posix_file_system.h"

namespace cairn::env {
namespace {

enum class Kind { kPosix, kMemory, kFaultInjection };

std::string TempDirBase() {
  const char* tmp = std::getenv("TMPDIR");
  return tmp != nullptr && *tmp != '\0' ? tmp : "/tmp";
}

class FileSystemTest : public ::testing::TestWithParam<Kind> {
 protected:
  void SetUp() override {
    switch (GetParam()) {
      case Kind::kPosix: {
        std::string pattern = JoinPath(TempDirBase(), "cairn_env_test_XXXXXX");
        ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
        root_ = pattern;
        fs_ = PosixFileSystem::Default();
        break;
      }
      case Kind::kMemory:
        owned_ = std::make_unique<MemoryFileSystem>();
        break;
      case Kind::kFaultInjection:
        owned_ = std::make_unique<FaultInjectionFileSystem>();
        break;
    }
    if (owned_ != nullptr) {
      fs_ = owned_.get();
      root_ = "/test_root";
      ASSERT_TRUE(fs_->CreateDirs(root_).ok());
    }
  }
  void TearDown() override {
    if (GetParam() == Kind::kPosix) std::filesystem::remove_all(root_);
  }

  std::string Path(std::string_view name) const { return JoinPath(root_, name); }

  void WriteFile(const std::string& path, std::string_view contents) {
    auto file = fs_->NewWritableFile(path);
    ASSERT_TRUE(file.ok()) << file.status().ToString();
    ASSERT_TRUE((*file)->Append(contents).ok());
    ASSERT_TRUE((*file)->Sync().ok());
    ASSERT_TRUE((*file)->Close().ok());
  }

  std::string ReadAll(const std::string& path) {
    auto file = fs_->NewReadableFile(path);
    EXPECT_TRUE(file.ok()) << file.status().ToString();
    if (!file.ok()) return "";
    std::string out;
    EXPECT_TRUE((*file)->Read(0, 1 << 20, &out).ok());
    return out;
  }

  std::unique_ptr<FileSystem> owned_;
  FileSystem* fs_ = nullptr;
  std::string root_;
};

TEST_P(FileSystemTest, WriteThenReadBack) {
  const std::string path = Path("a");
  auto file = fs_->NewWritableFile(path);
  ASSERT_TRUE(file.ok());
  EXPECT_EQ((*file)->Size(), 0u);
  ASSERT_TRUE((*file)->Append("hello ").ok());
  ASSERT_TRUE((*file)->Append("world").ok());
  EXPECT_EQ((*file)->Size(), 11u);
  ASSERT_TRUE((*file)->Sync().ok());
  ASSERT_TRUE((*file)->Close().ok());

  EXPECT_TRUE(fs_->FileExists(path));
  auto size = fs_->GetFileSize(path);
  ASSERT_TRUE(size.ok());
  EXPECT_EQ(*size, 11u);

  auto reader = fs_->NewReadableFile(path);
  ASSERT_TRUE(reader.ok());
  std::string out;
  ASSERT_TRUE((*reader)->Read(6, 5, &out).ok());
  EXPECT_EQ(out, "world");
  ASSERT_TRUE((*reader)->Read(6, 100, &out).ok());  // short read at end of file
  EXPECT_EQ(out, "world");
  ASSERT_TRUE((*reader)->Read(11, 10, &out).ok());
  EXPECT_EQ(out, "");
  ASSERT_TRUE((*reader)->Read(500, 10, &out).ok());
  EXPECT_EQ(out, "");
}

TEST_P(FileSystemTest, NewWritableFileTruncatesAndReopenAppends) {
  const std::string path = Path("f");
  WriteFile(path, "0123456789");
  WriteFile(path, "abc");
  EXPECT_EQ(ReadAll(path), "abc");

  auto file = fs_->ReopenWritableFile(path);
  ASSERT_TRUE(file.ok());
  EXPECT_EQ((*file)->Size(), 3u);
  ASSERT_TRUE((*file)->Append("def").ok());
  ASSERT_TRUE((*file)->Close().ok());
  EXPECT_EQ(ReadAll(path), "abcdef");

  auto missing = fs_->ReopenWritableFile(Path("missing"));
  EXPECT_TRUE(missing.status().Is(StatusCode::kNotFound)) << missing.status().ToString();
}

TEST_P(FileSystemTest, ReopenAtAPositionOverwritesInPlace) {
  const std::string path = Path("z");
  WriteFile(path, std::string(16, '0'));
  auto file = fs_->ReopenWritableFileAt(path, 0);
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  EXPECT_EQ((*file)->Size(), 0u);
  ASSERT_TRUE((*file)->Append("head").ok());
  EXPECT_EQ((*file)->Size(), 4u);
  ASSERT_TRUE((*file)->Sync().ok());
  ASSERT_TRUE((*file)->Close().ok());
  EXPECT_EQ(ReadAll(path), "head000000000000");  // the size and the rest are kept

  auto middle = fs_->ReopenWritableFileAt(path, 14);
  ASSERT_TRUE(middle.ok());
  ASSERT_TRUE((*middle)->Append("tail").ok());  // past the end: the file grows
  ASSERT_TRUE((*middle)->Close().ok());
  EXPECT_EQ(ReadAll(path), "head0000000000tail");

  EXPECT_TRUE(fs_->ReopenWritableFileAt(path, 19).status().Is(StatusCode::kInvalidArgument));
  EXPECT_TRUE(fs_->ReopenWritableFileAt(Path("missing"), 0).status().Is(StatusCode::kNotFound));
}

TEST_P(FileSystemTest, PreallocateExtendsWithZerosWithoutMovingPosition) {
  const std::string path = Path("p");
  auto file = fs_->NewWritableFile(path);
  ASSERT_TRUE(file.ok());
  ASSERT_TRUE((*file)->Append("head").ok());
  ASSERT_TRUE((*file)->Preallocate(4096).ok());
  EXPECT_EQ((*file)->Size(), 4u);
  EXPECT_EQ(*fs_->GetFileSize(path), 4096u);
  ASSERT_TRUE((*file)->Append("tail").ok());  // written in place, not after the zeros
  EXPECT_EQ((*file)->Size(), 8u);
  ASSERT_TRUE((*file)->Sync().ok());
  EXPECT_EQ(*fs_->GetFileSize(path), 4096u);
  ASSERT_TRUE((*file)->Preallocate(16).ok());  // never shrinks
  ASSERT_TRUE((*file)->Close().ok());

  std::string contents = ReadAll(path);
  ASSERT_EQ(contents.size(), 4096u);
  EXPECT_EQ(contents.substr(0, 8), "headtail");
  EXPECT_TRUE(std::all_of(contents.begin() + 8, contents.end(), [](char c) { return c == 0; }));
}

TEST_P(FileSystemTest, DirectoriesAndChildren) {
  const std::string dir = Path("x/y/z");
  ASSERT_TRUE(fs_->CreateDirs(dir).ok());
  ASSERT_TRUE(fs_->CreateDirs(dir).ok());  // idempotent
  EXPECT_TRUE(fs_->FileExists(dir));
  WriteFile(JoinPath(dir, "one"), "1");
  WriteFile(JoinPath(dir, "two"), "2");
  ASSERT_TRUE(fs_->CreateDirs(JoinPath(dir, "sub")).ok());

  auto children = fs_->GetChildren(dir);
  ASSERT_TRUE(children.ok());
  std::sort(children->begin(), children->end());
  EXPECT_EQ(*children, (std::vector<std::string>{"one", "sub", "two"}));
  EXPECT_TRUE(fs_->SyncDir(dir).ok());

  auto missing = fs_->GetChildren(Path("nope"));
  EXPECT_TRUE(missing.status().Is(StatusCode::kNotFound));
  auto orphan = fs_->NewWritableFile(Path("nope/file"));
  EXPECT_TRUE(orphan.status().Is(StatusCode::kNotFound));
}

TEST_P(FileSystemTest, DeleteRenameTruncate) {
  const std::string a = Path("a");
  const std::string b = Path("b");
  WriteFile(a, "aaaa");
  WriteFile(b, "bb");
  ASSERT_TRUE(fs_->RenameFile(a, b).ok());  // replaces b
  EXPECT_FALSE(fs_->FileExists(a));
  EXPECT_EQ(ReadAll(b), "aaaa");

  ASSERT_TRUE(fs_->TruncateFile(b, 2).ok());
  EXPECT_EQ(ReadAll(b), "aa");
  ASSERT_TRUE(fs_->TruncateFile(b, 5).ok());
  EXPECT_EQ(ReadAll(b), std::string("aa\0\0\0", 5));

  ASSERT_TRUE(fs_->DeleteFile(b).ok());
  EXPECT_FALSE(fs_->FileExists(b));
  Status again = fs_->DeleteFile(b);
  EXPECT_TRUE(again.Is(StatusCode::kNotFound));
  EXPECT_NE(again.message().find(b), std::string_view::npos) << again.ToString();
  EXPECT_TRUE(fs_->GetFileSize(b).status().Is(StatusCode::kNotFound));
  EXPECT_TRUE(fs_->NewReadableFile(b).status().Is(StatusCode::kNotFound));
  EXPECT_TRUE(fs_->TruncateFile(b, 0).Is(StatusCode::kNotFound));
  EXPECT_TRUE(fs_->RenameFile(b, a).Is(StatusCode::kNotFound));
}

TEST_P(FileSystemTest, ReaderSeesBytesAppendedConcurrently) {
  const std::string path = Path("concurrent");
  auto writer = fs_->NewWritableFile(path);
  ASSERT_TRUE(writer.ok());
  auto reader = fs_->NewReadableFile(path);
  ASSERT_TRUE(reader.ok());
  constexpr int kChunks = 200;
  std::atomic<uint64_t> written{0};
  std::thread thread([&] {
    for (int i = 0; i < kChunks; ++i) {
      ASSERT_TRUE((*writer)->Append(std::string(100, static_cast<char>('a' + i % 26))).ok());
      written.store((*writer)->Size(), std::memory_order_release);
    }
  });
  std::string out;
  while (written.load(std::memory_order_acquire) < kChunks * 100u) {
    uint64_t visible = written.load(std::memory_order_acquire);
    ASSERT_TRUE((*reader)->Read(0, visible, &out).ok());
    ASSERT_EQ(out.size(), visible);  // everything Append returned is readable
    for (uint64_t i = 0; i < visible; ++i) {
      ASSERT_EQ(out[i], static_cast<char>('a' + (i / 100) % 26));
    }
  }
  thread.join();
}

INSTANTIATE_TEST_SUITE_P(AllFileSystems, FileSystemTest,
                         ::testing::Values(Kind::kPosix, Kind::kMemory, Kind::kFaultInjection),
                         [](const ::testing::TestParamInfo<Kind>& info) {
                           switch (info.param) {
                             case Kind::kPosix:
                               return "Posix";
                             case Kind::kMemory:
                               return "Memory";
                             case Kind::kFaultInjection:
                               return "FaultInjection";
                           }
                           return "Unknown";
                         });

TEST(PosixFileSystemTest, ErrorsCarryPathAndReason) {
  auto file = PosixFileSystem::Default()->NewReadableFile("/nonexistent-cairn-dir/file");
  ASSERT_FALSE(file.ok());
  EXPECT_TRUE(file.status().Is(StatusCode::kNotFound));
  EXPECT_NE(file.status().message().find("/nonexistent-cairn-dir/file"), std::string_view::npos);
  EXPECT_NE(file.status().message().find("No such file"), std::string_view::npos);

  auto dir_as_file = PosixFileSystem::Default()->NewWritableFile("/");
  ASSERT_FALSE(dir_as_file.ok());
  EXPECT_TRUE(dir_as_file.status().Is(StatusCode::kIoError)) << dir_as_file.status().ToString();
}

TEST(PathTest, JoinDirBase) {
  EXPECT_EQ(JoinPath("a", "b"), "a/b");
  EXPECT_EQ(JoinPath("a/", "b"), "a/b");
  EXPECT_EQ(DirName("a/b/c"), "a/b");
  EXPECT_EQ(DirName("c"), ".");
  EXPECT_EQ(DirName("/c"), "/");
  EXPECT_EQ(BaseName("a/b/c"), "c");
  EXPECT_EQ(BaseName("c"), "c");
}

}  // namespace
}  // namespace cairn::env
