// Internal to src/mvcc: BatchLatest, the apply thread's current records of the kv_latest keys
// an unwritten batch touched: the records read ahead of the batch (KvState::PrefetchLatest)
// and every record its commands wrote or deleted. The batch's commands read their own
// kv_latest writes from here rather than from the write batch, so RocksDB need not index
// those writes (an indexed write and a read through the index cost a tenth of a txn's apply
// time); after the engine write, the written records go to the cache of hot keys.
//
// A key BatchLatest does not know was neither read ahead nor written by the batch: its
// record is the engine's. Each command's changes are undone by RollbackCommand (a failed
// command leaves nothing) or kept by CommitCommand.
//
// Not thread-safe: the apply thread owns it.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace cairn::mvcc::internal {

// A hash of std::string keys that also looks std::string_view keys up.
struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

class BatchLatest {
 public:
  enum class Lookup { kUnknown, kPresent, kAbsent };

  // The record of `key` as the batch's commands so far left it (kPresent fills *record), or
  // kUnknown when it was neither read ahead nor written.
  Lookup Get(std::string_view key, std::string* record) const;
  bool Knows(std::string_view key) const { return entries_.find(key) != entries_.end(); }

  // Read ahead: `key`'s record before the batch (nullopt: the key does not exist). A key
  // already known keeps what it has (a write of the batch is newer).
  void AddReadAhead(std::string_view key, std::optional<std::string_view> record);

  // The running command set `key`'s record (a put) or deleted the key (record == nullptr).
  void Write(std::string_view key, const std::string* record);
  // The running command ended: keep its writes, or undo every one of them.
  void CommitCommand();
  void RollbackCommand();

  // Calls visit(key, record) for every key a committed command wrote, in no particular
  // order; record is nullptr for a deleted key.
  void ForEachWritten(
      const std::function<void(std::string_view key, const std::string* record)>& visit) const;
  // Whether Write was called since the last Clear.
  bool HasWrites() const { return writes_ > 0; }
  // Forgets everything (the batch was written or dropped).
  void Clear();

 private:
  struct Entry {
    std::string record;
    bool present = false;  // false: the key does not exist
    bool written = false;  // a command of the batch wrote it
    uint64_t command = 0;  // the last command that saved this entry's undo
  };
  struct Undo {
    std::string key;
    std::optional<Entry> before;  // nullopt: the key was unknown
  };

  std::unordered_map<std::string, Entry, StringHash, std::equal_to<>> entries_;
  // The running command's undo records, oldest first.
  std::vector<Undo> undo_;
  uint64_t command_ = 1;  // the running command's number
  size_t writes_ = 0;
};

}  // namespace cairn::mvcc::internal
