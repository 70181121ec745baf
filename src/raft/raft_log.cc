#include "src/raft/raft_log.h"

#include <algorithm>

namespace cairn::raft {

RaftLog::RaftLog(const Storage* storage) : storage_(storage) {
  CAIRN_CHECK(storage != nullptr);
  unstable_offset_ = storage->LastIndex() + 1;
  // Everything in storage up to the snapshot is applied by definition; the caller may
  // raise applied further (Config::applied).
  committed_ = storage->FirstIndex() - 1;
  applied_ = committed_;
}

uint64_t RaftLog::FirstIndex() const {
  if (unstable_snapshot_) return unstable_snapshot_->metadata.index + 1;
  return storage_->FirstIndex();
}

uint64_t RaftLog::LastIndex() const {
  if (!unstable_entries_.empty()) return unstable_offset_ + unstable_entries_.size() - 1;
  if (unstable_snapshot_) return unstable_snapshot_->metadata.index;
  return storage_->LastIndex();
}

uint64_t RaftLog::LastTerm() const {
  Result<uint64_t> term = Term(LastIndex());
  CAIRN_CHECK(term.ok());
  return *term;
}

Result<uint64_t> RaftLog::Term(uint64_t index) const {
  uint64_t dummy_index = FirstIndex() - 1;
  if (index < dummy_index) return CompactedError();
  if (index > LastIndex()) return UnavailableError();
  if (index >= unstable_offset_ && index - unstable_offset_ < unstable_entries_.size()) {
    return unstable_entries_[index - unstable_offset_].term;
  }
  if (unstable_snapshot_ && index == unstable_snapshot_->metadata.index) {
    return unstable_snapshot_->metadata.term;
  }
  return storage_->Term(index);
}

uint64_t RaftLog::TermOrZero(uint64_t index) const {
  Result<uint64_t> term = Term(index);
  return term.ok() ? *term : 0;
}

bool RaftLog::MatchTerm(uint64_t index, uint64_t term) const {
  Result<uint64_t> actual = Term(index);
  return actual.ok() && *actual == term;
}

bool RaftLog::IsUpToDate(uint64_t last_index, uint64_t last_term) const {
  uint64_t own_last_term = LastTerm();
  return last_term > own_last_term || (last_term == own_last_term && last_index >= LastIndex());
}

std::optional<uint64_t> RaftLog::MaybeAppend(uint64_t index, uint64_t log_term, uint64_t commit,
                                             const std::vector<Entry>& entries) {
  CAIRN_CHECK(index >= committed_);
  if (!MatchTerm(index, log_term)) return std::nullopt;
  uint64_t last_new_index = index + entries.size();
  // The first entry that is new or conflicts with ours; entries before it are already held.
  size_t first_new = entries.size();
  for (size_t i = 0; i < entries.size(); ++i) {
    CAIRN_CHECK(entries[i].index == index + 1 + i);
    if (!MatchTerm(entries[i].index, entries[i].term)) {
      first_new = i;
      break;
    }
  }
  if (first_new < entries.size()) {
    // Raft's Log Matching property makes a conflict at or below committed impossible.
    CAIRN_CHECK_MSG(entries[first_new].index > committed_, "conflict with a committed entry");
    Append(std::vector<Entry>(entries.begin() + first_new, entries.end()));
  }
  CommitTo(std::min(commit, last_new_index));
  return last_new_index;
}

uint64_t RaftLog::Append(const std::vector<Entry>& entries) {
  if (entries.empty()) return LastIndex();
  uint64_t first = entries.front().index;
  CAIRN_CHECK(first - 1 >= committed_);
  CAIRN_CHECK(first <= LastIndex() + 1);
  CAIRN_CHECK(entries.front().term >= TermOrZero(first - 1));
  for (size_t i = 1; i < entries.size(); ++i) {
    CAIRN_CHECK(entries[i].index == first + i);
    CAIRN_CHECK(entries[i].term >= entries[i - 1].term);
  }
  if (first == unstable_offset_ + unstable_entries_.size()) {
    unstable_entries_.insert(unstable_entries_.end(), entries.begin(), entries.end());
  } else if (first <= unstable_offset_) {
    // Replaces the whole unstable part and (once persisted) the storage suffix from first.
    unstable_offset_ = first;
    unstable_entries_ = entries;
  } else {
    unstable_entries_.resize(first - unstable_offset_);
    unstable_entries_.insert(unstable_entries_.end(), entries.begin(), entries.end());
  }
  return LastIndex();
}

uint64_t RaftLog::FindConflictByTerm(uint64_t index, uint64_t term) const {
  for (;;) {
    Result<uint64_t> entry_term = Term(index);
    if (!entry_term.ok() || *entry_term <= term || index == 0) return index;
    --index;
  }
}

Result<std::vector<Entry>> RaftLog::Slice(uint64_t low, uint64_t high,
                                          uint64_t size_bytes_max) const {
  CAIRN_CHECK(low <= high);
  if (low < FirstIndex()) return CompactedError();
  if (high > LastIndex() + 1) return UnavailableError();
  std::vector<Entry> result;
  if (low == high) return result;
  uint64_t size_bytes = 0;
  if (low < unstable_offset_) {
    uint64_t stable_high = std::min(high, unstable_offset_);
    CAIRN_ASSIGN_OR_RETURN(result, storage_->Entries(low, stable_high, size_bytes_max));
    CAIRN_CHECK(!result.empty() && result.front().index == low);
    if (result.size() < stable_high - low) return result;  // size limit reached
    for (const Entry& entry : result) size_bytes += entry.SizeBytes();
  }
  for (uint64_t index = std::max(low, unstable_offset_); index < high; ++index) {
    const Entry& entry = unstable_entries_[index - unstable_offset_];
    size_bytes += entry.SizeBytes();
    if (!result.empty() && size_bytes > size_bytes_max) break;
    result.push_back(entry);
  }
  return result;
}

Result<std::vector<Entry>> RaftLog::EntriesFrom(uint64_t low, uint64_t size_bytes_max) const {
  if (low > LastIndex()) return std::vector<Entry>();
  return Slice(low, LastIndex() + 1, size_bytes_max);
}

bool RaftLog::MaybeCommit(uint64_t index, uint64_t term) {
  if (index <= committed_ || TermOrZero(index) != term) return false;
  CommitTo(index);
  return true;
}

void RaftLog::CommitTo(uint64_t index) {
  if (index <= committed_) return;
  CAIRN_CHECK_MSG(index <= LastIndex(), "commit index beyond the last log index");
  committed_ = index;
}

void RaftLog::AppliedTo(uint64_t index) {
  CAIRN_CHECK(index >= applied_ && index <= committed_);
  applied_ = index;
}

std::vector<Entry> RaftLog::NextCommittedEntries(uint64_t size_bytes_max) const {
  uint64_t low = std::max(applied_ + 1, FirstIndex());
  if (committed_ + 1 <= low) return {};
  Result<std::vector<Entry>> entries = Slice(low, committed_ + 1, size_bytes_max);
  CAIRN_CHECK_OK(entries.status());
  return std::move(entries).value();
}

bool RaftLog::HasNextCommittedEntries() const {
  return committed_ + 1 > std::max(applied_ + 1, FirstIndex());
}

void RaftLog::StableTo(uint64_t index, uint64_t term) {
  if (index < unstable_offset_ || index - unstable_offset_ >= unstable_entries_.size()) return;
  if (unstable_entries_[index - unstable_offset_].term != term) return;
  unstable_entries_.erase(unstable_entries_.begin(),
                          unstable_entries_.begin() + (index - unstable_offset_ + 1));
  unstable_offset_ = index + 1;
}

void RaftLog::StableSnapshotTo(uint64_t index) {
  if (unstable_snapshot_ && unstable_snapshot_->metadata.index == index) {
    unstable_snapshot_.reset();
  }
}

void RaftLog::Restore(const Snapshot& snapshot) {
  CAIRN_CHECK(snapshot.metadata.index > committed_);
  committed_ = snapshot.metadata.index;
  unstable_entries_.clear();
  unstable_offset_ = snapshot.metadata.index + 1;
  unstable_snapshot_ = snapshot;
}

}  // namespace cairn::raft
