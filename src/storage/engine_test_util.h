// Test helpers shared by the storage tests: open either engine in a scratch directory, and
// short forms of the common reads and writes.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "src/base/check.h"
#include "src/storage/engine.h"
#include "src/storage/memory_engine.h"
#include "src/storage/rocksdb_engine.h"

namespace cairn::storage::testing {

enum class EngineKind { kMemory, kRocksDb };

inline std::string KindName(EngineKind kind) {
  return kind == EngineKind::kMemory ? "Memory" : "RocksDb";
}

// A fresh directory under $TEST_TMPDIR, else /dev/shm (tmpfs: RocksDB's fsyncs cost
// nothing there, which keeps the suite fast on a busy disk; the crash tests kill processes,
// not machines), else /tmp. Removed with its contents on destruction.
class ScratchDir {
 public:
  ScratchDir() : ScratchDir(DefaultBase()) {}
  // A directory under `base` (a test that needs a disk, not tmpfs, passes ".").
  explicit ScratchDir(const std::string& base) {
    std::string pattern = base + "/cairn-storage-XXXXXX";
    CAIRN_CHECK(mkdtemp(pattern.data()) != nullptr);
    path_ = pattern;
  }
  ~ScratchDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  static std::string DefaultBase() {
    if (const char* env = getenv("TEST_TMPDIR"); env != nullptr) return env;
    if (access("/dev/shm", W_OK) == 0) return "/dev/shm";
    return "/tmp";
  }

  std::string path_;
};

// Small RocksDB sizes keep the tests light.
inline EngineOptions TestOptions(const std::string& path,
                                 std::shared_ptr<CompactionFilterFactory> factory = nullptr) {
  EngineOptions options;
  options.path = path;
  options.compaction_filter_factory = std::move(factory);
  options.block_cache_bytes = 8 << 20;
  options.write_buffer_bytes = 4 << 20;
  return options;
}

// Owns an engine of either kind and its directory.
class EngineHolder {
 public:
  explicit EngineHolder(EngineKind kind, std::shared_ptr<CompactionFilterFactory> factory = nullptr)
      : kind_(kind), options_(TestOptions(dir_.path() + "/db", std::move(factory))) {
    Open();
  }
  Engine* engine() const { return engine_.get(); }
  EngineKind kind() const { return kind_; }
  // MemoryEngine only.
  MemoryEngine* memory() const { return static_cast<MemoryEngine*>(engine_.get()); }
  // RocksDB: close and open again (a clean shutdown). MemoryEngine: nothing to do.
  void Reopen() {
    if (kind_ == EngineKind::kRocksDb) {
      engine_.reset();
      Open();
    }
  }
  const EngineOptions& options() const { return options_; }

 private:
  void Open() {
    if (kind_ == EngineKind::kMemory) {
      engine_ = std::make_unique<MemoryEngine>(options_);
      return;
    }
    Result<std::unique_ptr<Engine>> opened = RocksDbEngine::Open(options_);
    CAIRN_CHECK_OK(opened.status());
    engine_ = std::move(opened).value();
  }

  const EngineKind kind_;
  ScratchDir dir_;
  const EngineOptions options_;
  std::unique_ptr<Engine> engine_;
};

inline void PutOne(Engine* engine, Family family, std::string_view key, std::string_view value) {
  auto batch = engine->NewWriteBatch();
  batch->Put(family, key, value);
  CAIRN_CHECK_OK(engine->Write(batch.get()));
}

inline void DeleteOne(Engine* engine, Family family, std::string_view key) {
  auto batch = engine->NewWriteBatch();
  batch->Delete(family, key);
  CAIRN_CHECK_OK(engine->Write(batch.get()));
}

inline std::optional<std::string> GetOne(Engine* engine, Family family, std::string_view key,
                                         const Snapshot* snapshot = nullptr) {
  ReadOptions options;
  options.snapshot = snapshot;
  std::string value;
  Result<bool> found = engine->Get(options, family, key, &value);
  CAIRN_CHECK_OK(found.status());
  if (!*found) return std::nullopt;
  return value;
}

inline std::optional<std::string> BatchGet(WriteBatch* batch, Family family, std::string_view key) {
  std::string value;
  Result<bool> found = batch->Get(family, key, &value);
  CAIRN_CHECK_OK(found.status());
  if (!*found) return std::nullopt;
  return value;
}

// prefix + decimal n (a function: GCC 12 warns falsely on `"literal" + std::to_string(n)`).
inline std::string Numbered(std::string_view prefix, int64_t n) {
  std::string out(prefix);
  out += std::to_string(n);
  return out;
}

using KeyValues = std::vector<std::pair<std::string, std::string>>;

inline KeyValues ScanForward(Iterator* it) {
  KeyValues out;
  for (it->SeekToFirst(); it->Valid(); it->Next()) out.emplace_back(it->key(), it->value());
  CAIRN_CHECK_OK(it->status());
  return out;
}

inline KeyValues ScanBackward(Iterator* it) {
  KeyValues out;
  for (it->SeekToLast(); it->Valid(); it->Prev()) out.emplace_back(it->key(), it->value());
  CAIRN_CHECK_OK(it->status());
  return out;
}

inline KeyValues ScanAll(Engine* engine, Family family, const Snapshot* snapshot = nullptr) {
  ReadOptions options;
  options.snapshot = snapshot;
  auto it = engine->NewIterator(options, family);
  return ScanForward(it.get());
}

// The key the iterator is at, or "<invalid>".
inline std::string At(const Iterator& it) {
  return it.Valid() ? std::string(it.key()) : std::string("<invalid>");
}

}  // namespace cairn::storage::testing
