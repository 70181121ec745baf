#include "src/mvcc/compaction_filter.h"

#include <string>

namespace cairn::mvcc {
namespace {

class HistoryCompactionFilter final : public storage::CompactionFilter {
 public:
  HistoryCompactionFilter(int64_t compacted, bool full_compaction)
      : compacted_(compacted), full_compaction_(full_compaction) {}

  bool ShouldDrop(std::string_view key, std::string_view value) override {
    std::string_view escaped_key;
    int64_t main = 0;
    format::HistoryKind kind;
    // Anything not understood is kept: dropping is the only irreversible decision.
    if (!format::SplitHistoryKey(key, &escaped_key, &main)) return false;
    if (!format::DecodeHistoryKind(value, &kind)) return false;
    if (escaped_key != previous_escaped_key_) {
      previous_escaped_key_.assign(escaped_key);
      seen_entry_at_or_below_compacted_ = false;
    }
    if (main > compacted_) return false;
    if (seen_entry_at_or_below_compacted_) return true;
    seen_entry_at_or_below_compacted_ = true;
    return kind == format::HistoryKind::kTombstone && full_compaction_;
  }

 private:
  const int64_t compacted_;
  const bool full_compaction_;
  std::string previous_escaped_key_;
  // Whether this compaction already saw an entry <= compacted_ of previous_escaped_key_.
  bool seen_entry_at_or_below_compacted_ = false;
};

}  // namespace

std::unique_ptr<storage::CompactionFilter> NewHistoryCompactionFilter(int64_t compacted,
                                                                      bool full_compaction) {
  return std::make_unique<HistoryCompactionFilter>(compacted, full_compaction);
}

std::unique_ptr<storage::CompactionFilter> HistoryCompactionFilterFactory::Create(
    storage::Family family, bool full_compaction) {
  int64_t compacted = compacted_revision_.load();
  if (family != storage::Family::kKvHistory || compacted <= 0) return nullptr;
  return NewHistoryCompactionFilter(compacted, full_compaction);
}

void HistoryCompactionFilterFactory::SetCompactedRevision(int64_t revision) {
  int64_t current = compacted_revision_.load();
  while (revision > current && !compacted_revision_.compare_exchange_weak(current, revision)) {
  }
}

}  // namespace cairn::mvcc
