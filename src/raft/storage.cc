#include "src/raft/storage.h"

#include <algorithm>

namespace cairn::raft {

namespace {
constexpr std::string_view kCompactedMessage = "raft: requested index is compacted";
constexpr std::string_view kUnavailableMessage = "raft: requested entry is unavailable";
}  // namespace

Status CompactedError() { return Status::OutOfRange(kCompactedMessage); }
Status UnavailableError() { return Status::Unavailable(kUnavailableMessage); }
bool IsCompacted(const Status& status) {
  return status.code() == StatusCode::kOutOfRange && status.message() == kCompactedMessage;
}
bool IsUnavailable(const Status& status) {
  return status.code() == StatusCode::kUnavailable && status.message() == kUnavailableMessage;
}

MemoryStorage::MemoryStorage() = default;

Result<std::vector<Entry>> MemoryStorage::Entries(uint64_t low, uint64_t high,
                                                  uint64_t size_bytes_max) const {
  CAIRN_CHECK(low <= high);
  if (low <= compacted_index_) return CompactedError();
  if (high > LastIndex() + 1) return UnavailableError();
  std::vector<Entry> result;
  uint64_t size_bytes = 0;
  for (uint64_t index = low; index < high; ++index) {
    const Entry& entry = entries_[index - compacted_index_ - 1];
    size_bytes += entry.SizeBytes();
    if (!result.empty() && size_bytes > size_bytes_max) break;
    result.push_back(entry);
  }
  return result;
}

Result<uint64_t> MemoryStorage::Term(uint64_t index) const {
  if (index < compacted_index_) return CompactedError();
  if (index > LastIndex()) return UnavailableError();
  if (index == compacted_index_) return compacted_term_;
  return entries_[index - compacted_index_ - 1].term;
}

void MemoryStorage::Append(const std::vector<Entry>& entries) {
  if (entries.empty()) return;
  uint64_t first = entries.front().index;
  for (size_t i = 1; i < entries.size(); ++i) {
    CAIRN_CHECK(entries[i].index == first + i);
    CAIRN_CHECK(entries[i].term >= entries[i - 1].term);
  }
  CAIRN_CHECK(first >= FirstIndex());
  CAIRN_CHECK(first <= LastIndex() + 1);
  entries_.resize(first - FirstIndex());
  entries_.insert(entries_.end(), entries.begin(), entries.end());
}

bool MemoryStorage::ApplySnapshot(const Snapshot& snapshot) {
  CAIRN_CHECK(!snapshot.IsEmpty());
  if (snapshot.metadata.index <= snapshot_.metadata.index) return false;
  snapshot_ = snapshot;
  compacted_index_ = snapshot.metadata.index;
  compacted_term_ = snapshot.metadata.term;
  entries_.clear();
  return true;
}

void MemoryStorage::CreateSnapshot(uint64_t index, const ConfigState& config, std::string data) {
  CAIRN_CHECK(index > snapshot_.metadata.index);
  CAIRN_CHECK(index >= compacted_index_ && index <= LastIndex());
  Result<uint64_t> term = Term(index);
  CAIRN_CHECK(term.ok());
  snapshot_.metadata = SnapshotMetadata{index, *term, config};
  snapshot_.data = std::move(data);
}

void MemoryStorage::Compact(uint64_t index) {
  CAIRN_CHECK(index >= compacted_index_ && index <= snapshot_.metadata.index);
  Result<uint64_t> term = Term(index);
  CAIRN_CHECK(term.ok());
  entries_.erase(entries_.begin(), entries_.begin() + (index - compacted_index_));
  compacted_index_ = index;
  compacted_term_ = *term;
}

}  // namespace cairn::raft
