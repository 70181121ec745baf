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
#include <functional>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "cairn/command.pb.h"
#include "src/base/result.h"
#include "src/events/event_state.h"
#include "src/events/projection/projection_definitions.h"
#include "src/lease/lease_state.h"
#include "src/mvcc/kv_state.h"
#include "src/node/alarm_state.h"
#include "src/node/membership.h"
#include "src/raft/types.h"
#include "src/storage/engine.h"

namespace cairn::node {

// Meta keys owned by the node (the mvcc module owns "kv/").
inline constexpr std::string_view kAppliedIndexKey = "node/applied_index";
inline constexpr std::string_view kFormatVersionKey = "node/format_version";
// Version of the whole data directory layout (WAL + engine families). Bumped on any
// incompatible change; an unknown version refuses to open.
// Version 2: WAL entries are Raft entries (docs/formats/raft.md) and the membership lives in
// meta.
// Version 3: the event id entries live in their own family (kEventIds); a version-2 directory
// is upgraded at open (events::MoveIdEntriesToIdFamily).
// Version 4: the meta family holds key count blocks ("kv/count/", src/mvcc/key_count_blocks.h),
// which an older binary would not maintain; KvState::Open builds them for a version-3
// directory, which is then stamped 4.
inline constexpr uint64_t kFormatVersion = 4;

// Appends the kv_latest keys `command` reads first (KvState::PrefetchLatest): a put's key; a
// txn's single-key compares and its top-level puts. Others (ranges, nested txns) read as they
// go. The views point into `command`.
void AddPrefetchKeys(const command::Command& command, std::vector<std::string_view>* keys);

class Applier {
 public:
  // A log entry to apply: a command, a configuration change (config_change and member set),
  // or neither (the empty entry a new leader appends).
  struct Entry {
    uint64_t index = 0;
    const command::Command* command = nullptr;
    const raft::ConfigChange* config_change = nullptr;
    const command::Member* member = nullptr;
    // Outputs, one per entry.
    command::CommandResult* result = nullptr;
    Status* status = nullptr;
  };

  // Receives, after each successful engine write, the store revision and all events of the
  // batch in order (for watches; the sink may move them out), or nullptr when the batch built
  // none because the events-wanted check said nobody wanted them: then anyone who started
  // watching meanwhile must read the batch's revisions from storage. Runs on the apply
  // thread: must be short.
  using EventSink = std::function<void(int64_t revision, std::vector<mvccpb::Event>* events)>;
  // Asked on the apply thread before each batch: false = the batch builds no events (a
  // store without watchers saves a copy of every changed key and value). Empty = always true.
  using EventsWanted = std::function<bool()>;

  // Reads the persisted applied index and checks the format version (a fresh engine is
  // stamped with kFormatVersion). `sink` may be empty.
  static Result<std::unique_ptr<Applier>> Open(storage::Engine* engine, mvcc::KvState* kv,
                                               EventSink sink = nullptr);

  Applier(const Applier&) = delete;
  Applier& operator=(const Applier&) = delete;

  uint64_t AppliedIndex() const { return applied_index_.load(std::memory_order_acquire); }
  // Re-reads the applied index after the engine's contents were replaced wholesale (a Raft
  // snapshot install). REQUIRES: no ApplyBatch running. Errors: engine errors.
  Status Reload();

  // REQUIRES: entries[i].index == AppliedIndex() + 1 + i.
  // Per-command outcomes go to entry.status / entry.result. A non-OK return means the engine
  // write failed: nothing of the batch is applied and the node must stop.
  // A scavenge command (events) is applied in an engine batch of its own: the entries before
  // it are written first, so what it reads and what the projection runner folds before it
  // (EventState::PrepareScavenge) is the engine's state.
  Status ApplyBatch(std::span<Entry> entries);

  // The lease state machine for lease_* commands (they fail without it). Set before applying.
  void set_leases(lease::LeaseState* leases) { leases_ = leases; }
  // The alarm state: alarm commands change it, and its active alarms cap what is applied
  // (alarm_state.h). Without it alarm commands fail and nothing is capped.
  void set_alarms(AlarmState* alarms) { alarms_ = alarms; }
  // The membership that configuration changes and member_attributes commands change.
  void set_membership(Membership* membership) { membership_ = membership; }
  // The event store for events_* commands (they fail without it).
  void set_events(events::EventState* events) { events_ = events; }
  // User projection and upcaster definitions for projections commands (they fail without).
  void set_projections(events::projection::ProjectionDefinitions* projections) {
    projections_ = projections;
  }
  // Whether the next batch's events are wanted (EventsWanted). Set before applying.
  void set_events_wanted(EventsWanted wanted) { events_wanted_ = std::move(wanted); }

 private:
  // Applies `entries` (a barrier only first) in one engine batch.
  Status ApplyGroup(std::span<Entry> entries);
  Applier(storage::Engine* engine, mvcc::KvState* kv, uint64_t applied_index, EventSink sink)
      : engine_(engine), kv_(kv), sink_(std::move(sink)), applied_index_(applied_index) {}
  // `events` (may be null) receives the command's events.
  Status ApplyOne(storage::WriteBatch* batch, const command::Command& command,
                  command::CommandResult* result, std::vector<mvccpb::Event>* events);

  Status ApplyLease(storage::WriteBatch* batch, const command::Command& command,
                    command::CommandResult* result, std::vector<mvccpb::Event>* events);
  Status ApplyEvents(storage::WriteBatch* batch, const command::Command& command,
                     command::CommandResult* result, std::vector<mvccpb::Event>* events);

  storage::Engine* const engine_;
  mvcc::KvState* const kv_;
  const EventSink sink_;
  EventsWanted events_wanted_;
  lease::LeaseState* leases_ = nullptr;
  AlarmState* alarms_ = nullptr;
  Membership* membership_ = nullptr;
  events::EventState* events_ = nullptr;
  events::projection::ProjectionDefinitions* projections_ = nullptr;
  std::atomic<uint64_t> applied_index_;
};

}  // namespace cairn::node
