#include "src/raft/progress.h"

#include <algorithm>

namespace cairn::raft {

void Inflights::Add(uint64_t last_index, uint64_t size_bytes) {
  CAIRN_CHECK(!Full());
  CAIRN_CHECK(items_.empty() || last_index > items_.back().last_index);
  items_.push_back(Item{last_index, size_bytes});
  size_bytes_ += size_bytes;
}

void Inflights::FreeUpTo(uint64_t index) {
  while (!items_.empty() && items_.front().last_index <= index) {
    size_bytes_ -= items_.front().size_bytes;
    items_.pop_front();
  }
}

void Inflights::FreeFirst() {
  if (items_.empty()) return;
  FreeUpTo(items_.front().last_index);
}

void Inflights::Reset() {
  items_.clear();
  size_bytes_ = 0;
}

std::string_view ProgressStateName(ProgressState state) {
  switch (state) {
    case ProgressState::kProbe:
      return "probe";
    case ProgressState::kReplicate:
      return "replicate";
    case ProgressState::kSnapshot:
      return "snapshot";
  }
  return "unknown";
}

void Progress::BecomeProbe() {
  // Leaving kSnapshot: the peer has at least the snapshot (or the send failed and
  // pending_snapshot was cleared), so probe right after it.
  if (state == ProgressState::kSnapshot) {
    next = std::max(match + 1, pending_snapshot + 1);
  } else {
    next = match + 1;
  }
  state = ProgressState::kProbe;
  pending_snapshot = 0;
  probe_sent = false;
  inflights.Reset();
}

void Progress::BecomeReplicate() {
  state = ProgressState::kReplicate;
  next = match + 1;
  pending_snapshot = 0;
  probe_sent = false;
  inflights.Reset();
}

void Progress::BecomeSnapshot(uint64_t snapshot_index) {
  state = ProgressState::kSnapshot;
  pending_snapshot = snapshot_index;
  probe_sent = false;
  inflights.Reset();
}

void Progress::SentEntries(uint64_t last_index, uint64_t size_bytes, bool has_entries) {
  switch (state) {
    case ProgressState::kReplicate:
      if (has_entries) {
        CAIRN_CHECK(last_index >= next);
        next = last_index + 1;
        inflights.Add(last_index, size_bytes);
      }
      break;
    case ProgressState::kProbe:
      probe_sent = true;
      break;
    case ProgressState::kSnapshot:
      CAIRN_CHECK_MSG(false, "sending entries to a peer receiving a snapshot");
  }
}

bool Progress::MaybeUpdate(uint64_t index) {
  bool updated = false;
  if (match < index) {
    match = index;
    updated = true;
    probe_sent = false;
  }
  next = std::max(next, index + 1);
  return updated;
}

bool Progress::MaybeDecreaseTo(uint64_t rejected, uint64_t match_hint) {
  if (state == ProgressState::kReplicate) {
    // Appends are pipelined: a rejection at or below match is from an older append.
    if (rejected <= match) return false;
    next = match + 1;
    return true;
  }
  // kProbe (and kSnapshot): only the most recent probe, at next - 1, counts.
  if (next - 1 != rejected) return false;
  next = std::max(std::min(rejected, match_hint) + 1, match + 1);
  probe_sent = false;
  return true;
}

bool Progress::IsPaused() const {
  switch (state) {
    case ProgressState::kProbe:
      return probe_sent;
    case ProgressState::kReplicate:
      return inflights.Full();
    case ProgressState::kSnapshot:
      return true;
  }
  return true;
}

}  // namespace cairn::raft
