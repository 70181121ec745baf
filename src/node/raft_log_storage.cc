#include "src/node/raft_log_storage.h"

#include <algorithm>

#include "src/node/raft_log_format.h"

namespace cairn::node {

Result<std::unique_ptr<RaftLogStorage>> RaftLogStorage::Open(wal::Wal* wal, env::FileSystem* fs,
                                                             std::string raft_dir,
                                                             raft::ConfigState config,
                                                             uint64_t applied_index,
                                                             Options options) {
  std::unique_ptr<RaftLogStorage> storage(
      new RaftLogStorage(wal, fs, std::move(raft_dir), options));
  CAIRN_RETURN_IF_ERROR(fs->CreateDirs(storage->raft_dir_));
  CAIRN_ASSIGN_OR_RETURN(storage->saved_hard_state_, ReadHardStateFile(fs, storage->raft_dir_));
  CAIRN_RETURN_IF_ERROR(storage->LoadTerms());
  const uint64_t last = storage->last_index_;
  if (applied_index > last) {
    return Status::Corruption("the raft log ends at index " + std::to_string(last) +
                              " but the state was applied up to index " +
                              std::to_string(applied_index) +
                              ": the log lost acknowledged entries");
  }
  if (applied_index < storage->compacted_index_) {
    return Status::Corruption(
        "the raft log starts after index " + std::to_string(storage->compacted_index_) +
        " but the state was applied only up to index " + std::to_string(applied_index));
  }
  raft::HardState hard_state = storage->saved_hard_state_;
  if (hard_state.commit > last) {
    return Status::Corruption("the raft hard state commits index " +
                              std::to_string(hard_state.commit) + " but the log ends at " +
                              std::to_string(last));
  }
  hard_state.commit = std::max(hard_state.commit, applied_index);
  storage->initial_hard_state_ = hard_state;
  storage->initial_config_ = std::move(config);
  return storage;
}

Status RaftLogStorage::LoadTerms() {
  last_index_ = wal_->LastIndex();
  const uint64_t first = wal_->FirstIndex();
  if (last_index_ < first) {
    // An empty log: fresh, or restored from a snapshot (it continues after the snapshot's
    // applied index, whose term is unknown and irrelevant to the new cluster: 0).
    compacted_index_ = first - 1;
    return Status::Ok();
  }
  CAIRN_RETURN_IF_ERROR(wal_->ReadFrom(first, [&](uint64_t index, std::string_view payload) {
    CAIRN_ASSIGN_OR_RETURN(uint64_t term, DecodeRaftEntryTerm(index, payload));
    if (!term_runs_.empty() && term < term_runs_.back().second) {
      return Status::Corruption("raft log entry " + std::to_string(index) + " has term " +
                                std::to_string(term) + ", lower than the entry before it");
    }
    RecordTerm(index, term);
    return Status::Ok();
  }));
  if (first > 1) {
    compacted_index_ = first;
    compacted_term_ = term_runs_.front().second;
  }
  return Status::Ok();
}

void RaftLogStorage::RecordTerm(uint64_t index, uint64_t term) {
  if (term_runs_.empty() || term_runs_.back().second != term) term_runs_.emplace_back(index, term);
}

void RaftLogStorage::TruncateTermsAfter(uint64_t last_index_kept) {
  while (!term_runs_.empty() && term_runs_.back().first > last_index_kept) term_runs_.pop_back();
}

Result<uint64_t> RaftLogStorage::Term(uint64_t index) const {
  if (index < compacted_index_) return raft::CompactedError();
  if (index > last_index_) return raft::UnavailableError();
  if (index == compacted_index_) return compacted_term_;
  auto run = std::upper_bound(term_runs_.begin(), term_runs_.end(), index,
                              [](uint64_t i, const auto& r) { return i < r.first; });
  CAIRN_CHECK(run != term_runs_.begin());
  return std::prev(run)->second;
}

Result<std::vector<raft::Entry>> RaftLogStorage::Entries(uint64_t low, uint64_t high,
                                                         uint64_t size_bytes_max) const {
  if (low <= compacted_index_) return raft::CompactedError();
  if (high > last_index_ + 1) return raft::UnavailableError();
  CAIRN_CHECK(low <= high);
  std::vector<raft::Entry> entries;
  uint64_t size_bytes = 0;
  auto full = [&](const raft::Entry& next) {
    return !entries.empty() && size_bytes + next.SizeBytes() > size_bytes_max;
  };
  if (!cache_.empty() && low >= cache_.front().index) {
    for (uint64_t index = low; index < high; ++index) {
      const raft::Entry& entry = cache_[index - cache_.front().index];
      if (full(entry)) break;
      size_bytes += entry.SizeBytes();
      entries.push_back(entry);
    }
    return entries;
  }
  if (low == high) return entries;
  const Status stop = Status::Aborted("enough entries");
  Status status = wal_->ReadFrom(low, [&](uint64_t index, std::string_view payload) {
    if (index >= high) return stop;
    raft::Entry entry;
    CAIRN_RETURN_IF_ERROR(DecodeRaftEntry(index, payload, &entry));
    if (full(entry)) return stop;
    size_bytes += entry.SizeBytes();
    entries.push_back(std::move(entry));
    return Status::Ok();
  });
  if (!status.ok() && status.code() != stop.code()) return status;
  return entries;
}

Status RaftLogStorage::Append(const std::vector<raft::Entry>& entries) {
  if (entries.empty()) return Status::Ok();
  const uint64_t first = entries.front().index;
  CAIRN_CHECK(first > compacted_index_ && first <= last_index_ + 1);
  if (first <= last_index_) {
    CAIRN_RETURN_IF_ERROR(wal_->TruncateSuffix(first - 1));
    TruncateTermsAfter(first - 1);
    while (!cache_.empty() && cache_.back().index >= first) {
      cache_bytes_ -= cache_.back().SizeBytes();
      cache_.pop_back();
    }
    last_index_ = first - 1;
  }
  std::vector<std::string> payloads;
  payloads.reserve(entries.size());
  for (const raft::Entry& entry : entries) payloads.push_back(EncodeRaftEntry(entry));
  std::vector<std::string_view> views(payloads.begin(), payloads.end());
  CAIRN_ASSIGN_OR_RETURN(uint64_t appended, wal_->AppendBatch(views));
  CAIRN_CHECK(appended == first);
  for (const raft::Entry& entry : entries) RecordTerm(entry.index, entry.term);
  last_index_ = entries.back().index;
  CacheAppend(entries);
  return Status::Ok();
}

void RaftLogStorage::CacheAppend(const std::vector<raft::Entry>& entries) {
  if (!cache_.empty() && cache_.back().index + 1 != entries.front().index) {
    cache_.clear();
    cache_bytes_ = 0;
  }
  for (const raft::Entry& entry : entries) {
    cache_.push_back(entry);
    cache_bytes_ += entry.SizeBytes();
  }
  while (cache_bytes_ > options_.cache_bytes_max && cache_.size() > 1) {
    cache_bytes_ -= cache_.front().SizeBytes();
    cache_.pop_front();
  }
}

Status RaftLogStorage::SaveHardState(const raft::HardState& hard_state) {
  if (hard_state.term == saved_hard_state_.term && hard_state.vote == saved_hard_state_.vote) {
    return Status::Ok();
  }
  CAIRN_RETURN_IF_ERROR(WriteHardStateFile(fs_, raft_dir_, hard_state));
  saved_hard_state_ = hard_state;
  return Status::Ok();
}

Status RaftLogStorage::CompactTo(uint64_t index) {
  index = std::min(index, last_index_);
  if (index <= compacted_index_) return Status::Ok();
  CAIRN_RETURN_IF_ERROR(wal_->TruncatePrefix(index));
  // The core stops reading below `index` now, whether or not the WAL could drop the segments
  // (it keeps the active one): a follower that needs older entries is sent a snapshot. A
  // restart starts again from the WAL's first entry, which is only more than needed.
  const uint64_t first = index;
  CAIRN_ASSIGN_OR_RETURN(compacted_term_, Term(first));
  compacted_index_ = first;
  auto run = std::upper_bound(term_runs_.begin(), term_runs_.end(), first,
                              [](uint64_t i, const auto& r) { return i < r.first; });
  term_runs_.erase(term_runs_.begin(), std::prev(run));
  term_runs_.front().first = first;
  ReleaseCacheThrough(compacted_index_);
  return Status::Ok();
}

void RaftLogStorage::ReleaseCacheThrough(uint64_t index) {
  while (!cache_.empty() && cache_.front().index <= index) {
    cache_bytes_ -= cache_.front().SizeBytes();
    cache_.pop_front();
  }
}

Status RaftLogStorage::ResetWalToSnapshot(wal::Wal* wal, uint64_t index, uint64_t term) {
  if (index < 2) return Status::InvalidArgument("raft log: a snapshot at index < 2");
  CAIRN_RETURN_IF_ERROR(wal->Reset(index));
  const std::string placeholder =
      EncodeRaftEntry(raft::Entry{.term = term, .index = index, .type = raft::EntryType::kNormal});
  const std::string_view payloads[] = {placeholder};
  CAIRN_ASSIGN_OR_RETURN(uint64_t appended, wal->AppendBatch(payloads));
  CAIRN_CHECK(appended == index);
  CAIRN_RETURN_IF_ERROR(wal->Sync());
  CAIRN_CHECK(wal->FirstIndex() == index && wal->LastIndex() == index);
  return Status::Ok();
}

Status RaftLogStorage::ResetToSnapshot(uint64_t index, uint64_t term) {
  CAIRN_RETURN_IF_ERROR(ResetWalToSnapshot(wal_, index, term));
  compacted_index_ = index;
  compacted_term_ = term;
  last_index_ = index;
  term_runs_.assign(1, {index, term});
  cache_.clear();
  cache_bytes_ = 0;
  return Status::Ok();
}

Status RaftLogStorage::Bootstrap(const std::vector<raft::Entry>& entries,
                                 const raft::HardState& hard_state) {
  CAIRN_CHECK(last_index_ == compacted_index_ && !entries.empty() &&
              entries.front().index == last_index_ + 1);
  CAIRN_RETURN_IF_ERROR(Append(entries));
  CAIRN_RETURN_IF_ERROR(Sync());
  CAIRN_RETURN_IF_ERROR(SaveHardState(hard_state));
  initial_hard_state_ = hard_state;
  return Status::Ok();
}

Result<bool> RaftLogStorage::FinishInterruptedBootstrap() {
  if (initial_hard_state_.term != 0 || compacted_index_ != 0 || last_index_ == 0) return false;
  CAIRN_ASSIGN_OR_RETURN(std::vector<raft::Entry> entries, Entries(1, last_index_ + 1, UINT64_MAX));
  if (entries.size() != last_index_) return false;
  for (const raft::Entry& entry : entries) {
    if (entry.term != 1 || entry.type != raft::EntryType::kConfigChange) return false;
  }
  const raft::HardState hard_state{.term = 1, .commit = last_index_};
  CAIRN_RETURN_IF_ERROR(SaveHardState(hard_state));
  initial_hard_state_ = hard_state;
  return true;
}

}  // namespace cairn::node
