// Progress: the leader's view of one peer's log — how far it matches (match), what to send
// next (next), and the flow-control state:
//   kProbe      one append in flight at a time until the follower's position is found;
//   kReplicate  appends are pipelined optimistically, bounded by Inflights;
//   kSnapshot   a snapshot is on the way; nothing else is sent until it is acknowledged.
//
// Thread-safety: not thread-safe; owned by one Raft.
#pragma once

#include <cstdint>
#include <deque>
#include <string_view>

#include "src/base/check.h"

namespace cairn::raft {

// The append messages sent to one follower and not yet acknowledged, each with the last
// index it carried and its size. Bounded by count and by bytes (Config).
class Inflights {
 public:
  Inflights(size_t count_max, uint64_t size_bytes_max)
      : count_max_(count_max), size_bytes_max_(size_bytes_max) {
    CAIRN_CHECK(count_max > 0);
  }

  // REQUIRES: !Full(); last_index above every recorded one.
  void Add(uint64_t last_index, uint64_t size_bytes);
  // Frees every message whose last index is <= index (acknowledged).
  void FreeUpTo(uint64_t index);
  // Frees the oldest message: a heartbeat response proves the peer is alive, so one more
  // append may go out even if responses to earlier ones were lost.
  void FreeFirst();
  void Reset();
  bool Full() const { return items_.size() >= count_max_ || size_bytes_ >= size_bytes_max_; }
  size_t Count() const { return items_.size(); }
  uint64_t SizeBytes() const { return size_bytes_; }

 private:
  struct Item {
    uint64_t last_index;
    uint64_t size_bytes;
  };
  size_t count_max_;
  uint64_t size_bytes_max_;
  std::deque<Item> items_;
  uint64_t size_bytes_ = 0;
};

enum class ProgressState : uint8_t { kProbe, kReplicate, kSnapshot };
std::string_view ProgressStateName(ProgressState state);

struct Progress {
  Progress(uint64_t next_index, size_t inflight_count_max, uint64_t inflight_bytes_max)
      : next(next_index), inflights(inflight_count_max, inflight_bytes_max) {}

  // Highest index known to be replicated on the peer.
  uint64_t match = 0;
  // Next index to send. Invariant: match < next.
  uint64_t next = 1;
  ProgressState state = ProgressState::kProbe;
  // kSnapshot: the index of the snapshot being sent.
  uint64_t pending_snapshot = 0;
  // Heard from the peer since the last check-quorum round.
  bool recent_active = false;
  // kProbe: an append was sent and no response received since (one probe per heartbeat).
  bool probe_sent = false;
  bool is_learner = false;
  Inflights inflights;

  void BecomeProbe();
  void BecomeReplicate();
  void BecomeSnapshot(uint64_t snapshot_index);
  // An append carrying entries up to last_index (or none: last_index = next - 1) was sent.
  void SentEntries(uint64_t last_index, uint64_t size_bytes, bool has_entries);
  // The peer acknowledged up to index. Returns whether match advanced.
  bool MaybeUpdate(uint64_t index);
  // The peer rejected an append at `rejected`, hinting it may match at `match_hint`.
  // Returns false when the rejection is stale (already superseded).
  bool MaybeDecreaseTo(uint64_t rejected, uint64_t match_hint);
  // Whether sending appends to this peer must wait.
  bool IsPaused() const;
};

}  // namespace cairn::raft
