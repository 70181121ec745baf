// EventState: the event store's state machine over the engine's kEvents family.
//
// Writes (apply thread): an append, a stream delete, a metadata change and a snapshot are
// each one command and take one new store revision (the KV face's revision counter, through
// KvState::ApplyTxnAtNewRevision, which also applies an append's transactional outbox). Each
// Apply* adds its writes to the applier's batch and reads through it, so commands in one
// batch see each other. A failing command leaves nothing in the batch. After the batch is
// written the applier calls OnBatchWritten (or OnBatchAborted).
//
// Semantics (docs/events.md):
//   - versions are 0-based per stream; expected version ANY / NO_STREAM / STREAM_EXISTS /
//     EXACT; a mismatch is an answer (AppendResponse.wrong_expected_version), not an error;
//   - idempotency is deterministic, from the replicated id index: an append whose event ids
//     are already the stream's events at consecutive versions, consistent with the expected
//     version, succeeds again without writing (idempotent_replay); ids reused otherwise are
//     refused (ALREADY_EXISTS);
//   - soft delete hides the stream's events (reads say NOT_FOUND) and the next append
//     continues the numbering; hard delete leaves a tombstone that refuses appends and reads;
//   - max_count, max_age and truncate_before hide events from reads at once; the bytes stay
//     on disk until a scavenge (ApplyScavenge) removes them, leaving a hash anchor;
//   - system projections "$ce-<category>" and "$et-<type>" are index entries written at
//     apply time with the event (no extra events); they read like streams;
//   - every event's hash chains to the previous event of the store (format::ChainHash).
//
// Reads run on one engine snapshot each and are thread-safe. `now_unix_nanos` decides which
// events max_age hides.
//
// Thread-safety: Apply*, OnBatchWritten and OnBatchAborted from the apply thread only;
// everything else from any thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <vector>

#include "cairn/command.pb.h"
#include "cairn/events.pb.h"
#include "cairn/events_storage.pb.h"
#include "src/base/result.h"
#include "src/events/event_format.h"
#include "src/events/persistent_state.h"
#include "src/mvcc/kv_state.h"
#include "src/storage/engine.h"

namespace cairn::events {

namespace v1 = ::cairn::events::v1;

// Bounds on what a client may send (docs/events.md). The whole request is also bounded by
// the server's request size limit (1.5 MiB by default).
struct EventLimits {
  static constexpr size_t kStreamNameBytesMax = 1024;
  static constexpr size_t kEventTypeBytesMax = 256;
  static constexpr size_t kContentTypeBytesMax = 256;
  // data + metadata of one event.
  static constexpr size_t kEventBytesMax = 1024 * 1024;
  static constexpr size_t kEventsPerAppendMax = 4096;
  static constexpr size_t kReadCountMax = 4096;
  static constexpr size_t kReadCountDefault = 100;
  static constexpr size_t kCustomMetadataBytesMax = 64 * 1024;
  static constexpr size_t kSnapshotBytesMax = 1024 * 1024;
  // A filtered ReadAll stops after scanning this many events without filling its page, so
  // one call is bounded; it answers with `next` to continue from.
  static constexpr size_t kScanPerReadMax = 20000;
  // One scavenge command (ScavengeRequest): streams examined and events removed.
  static constexpr size_t kScavengeStreamsDefault = 1000;
  static constexpr size_t kScavengeEventsDefault = 10000;
  static constexpr size_t kScavengeBoundMax = 100000;
};

// The structural checks of each request, made by the service before proposing and again at
// apply (a command must not corrupt state however it got into the log). INVALID_ARGUMENT.
Status ValidateAppend(const v1::AppendRequest& req);
Status ValidateDeleteStream(const v1::DeleteStreamRequest& req);
Status ValidateSetMetadata(const v1::SetStreamMetadataRequest& req);
Status ValidateSaveSnapshot(const v1::SaveSnapshotRequest& req);
Status ValidateScavenge(const v1::ScavengeRequest& req);
// `allow_system`: names starting with '$' ("$ce-...", "$et-...") are readable, not writable.
Status ValidateStreamName(std::string_view stream, bool allow_system);

// Data format 2 kept the id entries ("I" + id) in the kEvents family; format 3 keeps them in
// kEventIds. Moves every one, in engine batches that each put and delete the same entries,
// then flushes the engine: rerunning it after a crash finishes the move. Run at open, before
// anything reads the events.
Status MoveIdEntriesToIdFamily(storage::Engine* engine);

class EventState {
 public:
  static Result<std::unique_ptr<EventState>> Open(storage::Engine* engine, mvcc::KvState* kv);

  EventState(const EventState&) = delete;
  EventState& operator=(const EventState&) = delete;

  // ---- Apply (one thread) ----
  // Errors: INVALID_ARGUMENT (ValidateAppend; outbox ops other than put/delete_range),
  // FAILED_PRECONDITION (hard-deleted stream), ALREADY_EXISTS (an event id used elsewhere),
  // the KV errors of the outbox.
  Status ApplyAppend(storage::WriteBatch* batch, const command::EventsAppend& command,
                     v1::AppendResponse* resp, std::vector<mvccpb::Event>* kv_events);
  // Errors: INVALID_ARGUMENT, NOT_FOUND (no such stream), FAILED_PRECONDITION (hard-deleted).
  Status ApplyDeleteStream(storage::WriteBatch* batch, const v1::DeleteStreamRequest& req,
                           v1::DeleteStreamResponse* resp);
  // Errors: INVALID_ARGUMENT, FAILED_PRECONDITION (hard-deleted).
  Status ApplySetMetadata(storage::WriteBatch* batch, const v1::SetStreamMetadataRequest& req,
                          v1::SetStreamMetadataResponse* resp);
  // Errors: INVALID_ARGUMENT, NOT_FOUND (no such stream or version), FAILED_PRECONDITION.
  Status ApplySaveSnapshot(storage::WriteBatch* batch, const v1::SaveSnapshotRequest& req,
                           v1::SaveSnapshotResponse* resp);
  // Removes hidden events from disk (docs/events.md "Scavenge"): for each examined stream,
  // the versions below its first visible one (and the expired ones after it, by
  // command.now_unix_nanos) lose their "E" record and their "$ce-"/"$et-" links; their "$all"
  // entries become anchors holding the hash; their id entries stay (idempotency). A hard-deleted
  // stream also loses its aggregate snapshot. Takes no store revision (nothing readable
  // changes). REQUIRES: the batch is empty (the applier applies a scavenge in a batch of its
  // own, after PrepareScavenge). Errors: INVALID_ARGUMENT.
  Status ApplyScavenge(storage::WriteBatch* batch, const command::EventsScavenge& command,
                       v1::ScavengeResponse* resp);
  // What must happen before a scavenge is applied: `before` (this member's projection runner
  // folding every event it has not folded yet, so removals never change what a projection
  // sees). Set once by the owner of the runner; it stays until this object is destroyed.
  void SetBeforeScavenge(std::function<Status()> before);
  // Runs that hook (OK when none is set). A failure must stop the node: the scavenge is not
  // applied on this member, and it would be applied on the others.
  Status PrepareScavenge();
  void OnBatchWritten();
  void OnBatchAborted();
  // Re-reads the chain head after the engine's contents were replaced wholesale (a Raft
  // snapshot install) and wakes waiters and write listeners. Apply thread only, no batch
  // pending. Errors: Corruption for an undecodable head, engine errors.
  Status Reload();

  // Persistent subscription groups (same family, same batches).
  PersistentState* persistent() { return &persistent_; }
  const PersistentState* persistent() const { return &persistent_; }

  // ---- Reads (any thread) ----
  // Errors: INVALID_ARGUMENT, NOT_FOUND (no such stream, or soft-deleted),
  // FAILED_PRECONDITION (hard-deleted).
  Status ReadStream(const v1::ReadStreamRequest& req, int64_t now_unix_nanos,
                    v1::ReadStreamResponse* resp) const;
  Status ReadAll(const v1::ReadAllRequest& req, int64_t now_unix_nanos,
                 v1::ReadAllResponse* resp) const;
  Status GetMetadata(const v1::GetStreamMetadataRequest& req,
                     v1::GetStreamMetadataResponse* resp) const;
  Status ReadAggregate(const v1::ReadAggregateRequest& req, int64_t now_unix_nanos,
                       v1::ReadAggregateResponse* resp) const;
  Status VerifyChain(v1::VerifyChainResponse* resp) const;

  // For subscriptions: reads events of `stream` (or a "$ce-"/"$et-" stream) after version
  // `after` (nullopt: from the start), at most `count`. A stream that does not exist (yet)
  // or is soft-deleted yields nothing; a hard-deleted one FAILED_PRECONDITION.
  Status ReadStreamAfter(const std::string& stream, std::optional<uint64_t> after, size_t count,
                         int64_t now_unix_nanos, std::vector<v1::RecordedEvent>* out) const;

  // Events written so far (all batches written); waits up to `timeout` for it to exceed
  // `seen`. Returns the count.
  uint64_t WaitForEvents(uint64_t seen, std::chrono::milliseconds timeout) const;
  uint64_t EventCount() const;
  // Wakes every WaitForEvents (at shutdown).
  void WakeAll() const;
  // `listener` is called on the apply thread after each written batch that added events (it
  // must be short and must not call back into this object). Returns an id for
  // RemoveWriteListener, which returns once no call of that listener is running.
  uint64_t AddWriteListener(std::function<void()> listener);
  // Member-local writes derived from the replicated state outside the log (the projection
  // runner's pages) hold this shared; a Raft snapshot install holds it exclusively while it
  // replaces the engine's contents, so that no page read before the install is written after.
  std::shared_mutex& local_writes_mutex() const { return local_writes_mutex_; }
  void RemoveWriteListener(uint64_t id);

 private:
  struct Head {
    std::string hash;
    uint64_t events = 0;
    uint64_t next_stream_id = 1;
  };
  EventState(storage::Engine* engine, mvcc::KvState* kv, const Head& head)
      : engine_(engine), kv_(kv), pending_(head), written_(head), persistent_(engine, kv) {}

  void WriteHead(storage::WriteBatch* batch) const;

  storage::Engine* const engine_;
  mvcc::KvState* const kv_;
  Head pending_;
  Head written_;
  PersistentState persistent_;

  mutable std::mutex mu_;
  mutable std::condition_variable written_cv_;
  uint64_t published_events_ = 0;                        // guarded by mu_
  std::map<uint64_t, std::function<void()>> listeners_;  // guarded by listeners_mu_
  uint64_t next_listener_id_ = 1;                        // guarded by listeners_mu_
  mutable std::mutex listeners_mu_;
  std::mutex before_scavenge_mu_;
  std::function<Status()> before_scavenge_;  // guarded by before_scavenge_mu_
  mutable std::shared_mutex local_writes_mutex_;
};

}  // namespace cairn::events
