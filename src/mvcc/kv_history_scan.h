// ScanHistory: the logical history of a key range as watch events, read from kv_history.
//
// Returns the events of the keys in [key, range_end) (etcd's key/range_end convention,
// "\0" = to the end) whose revision is in (after_revision, through_revision], ordered by
// revision then sub-revision, the order in which the commands applied them. Each event has
// prev_kv set when the key's previous entry is a put still stored (a watcher that did not ask
// for it strips it).
//
// Bounded: at most events_max events plus the events of one revision are held. When more
// match, the newest revisions are left out and *scanned_through says the last revision
// whose events are all returned (< through_revision); the caller scans again from there.
//
// Reads one engine snapshot; thread-safe. Revisions at or below the compacted revision may be
// partially missing (the compaction filter drops them): the caller checks the compacted
// revision after the scan.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "mvccpb/kv.pb.h"
#include "src/base/status.h"
#include "src/storage/engine.h"

namespace cairn::mvcc {

struct HistoryScan {
  std::vector<mvccpb::Event> events;
  // Every event with revision <= scanned_through is in `events`.
  int64_t scanned_through = 0;
};

// REQUIRES: after_revision < through_revision; events_max > 0.
Status ScanHistory(storage::Engine* engine, std::string_view key, std::string_view range_end,
                   int64_t after_revision, int64_t through_revision, size_t events_max,
                   HistoryScan* scan);

}  // namespace cairn::mvcc
