// Applier: applies committed commands to the state machines, in log order, exactly once.
//
// A group of consecutive log entries is applied into ONE engine WriteBatch together with the
// new applied index, and written atomically. After a crash the engine therefore holds the
// state of some prefix of the log whose last index is the persisted applied index, and the
// node replays the log from there: nothing is applied twice, nothing is skipped.
//
// A command that fails (e.g. compacted revision, ignore_value on a missing key) leaves no
// trace in state: its error is returned to its proposer and the applied index still moves
// past it, deterministically on every replica.
//
// Thread-safety: ApplyBatch is called from one thread at a time. AppliedIndex() may be read
// from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <span>

#include "cairn/command.pb.h"
#include "src/base/result.h"
#include "src/mvcc/kv_state.h"
#include "src/storage/engine.h"

namespace cairn::node {

// Meta keys owned by the node (the mvcc module owns "kv/").
inline constexpr std::string_view kAppliedIndexKey = "node/applied_index";
inline constexpr std::string_view kFormatVersionKey = "node/format_version";
// Version of the whole data directory layout (WAL + engine families). Bumped on any
// incompatible change; an unknown version refuses to open.
inline constexpr uint64_t kFormatVersion = 1;

class Applier {
 public:
  struct Entry {
    uint64_t index = 0;
    const command::Command* command = nullptr;
    // Outputs, one per entry.
    command::CommandResult* result = nullptr;
    Status* status = nullptr;
  };

  // Reads the persisted applied index and checks the format version (a fresh engine is
  // stamped with kFormatVersion).
  static Result<std::unique_ptr<Applier>> Open(storage::Engine* engine, mvcc::KvState* kv);

  Applier(const Applier&) = delete;
  Applier& operator=(const Applier&) = delete;

  uint64_t AppliedIndex() const { return applied_index_.load(std::memory_order_acquire); }

  // REQUIRES: entries[i].index == AppliedIndex() + 1 + i.
  // Per-command outcomes go to entry.status / entry.result. A non-OK return means the engine
  // write failed: nothing of the batch is applied and the node must stop.
  Status ApplyBatch(std::span<Entry> entries);

 private:
  Applier(storage::Engine* engine, mvcc::KvState* kv, uint64_t applied_index)
      : engine_(engine), kv_(kv), applied_index_(applied_index) {}
  Status ApplyOne(storage::WriteBatch* batch, const command::Command& command,
                  command::CommandResult* result);

  storage::Engine* const engine_;
  mvcc::KvState* const kv_;
  std::atomic<uint64_t> applied_index_;
};

}  // namespace cairn::node
