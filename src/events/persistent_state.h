// PersistentState: the replicated state of persistent subscription groups (consumer groups)
// over the engine's kEvents family (docs/events.md, "Persistent subscriptions").
//
// A group is (source, group name). Its record holds the settings and the checkpoint:
// every event of the source up to the checkpoint is handled (acked, skipped or parked). Beyond
// the checkpoint, "R" records say which events are already handled and how often the others
// failed, so a dispatcher that starts again (a new leader, a restart) redelivers exactly the
// events that are not handled yet, with their retry counts. Parked events go to the group's
// parked stream ("$persistentsubscription-<source>::<group>-parked", an index stream like
// "$ce-"); ReplayParked moves them to "U" records that the dispatcher delivers again.
//
// The dispatcher (src/events/persistent_dispatcher.h) decides; this class only records what
// the replicated commands say, deterministically. None of these commands takes a new store
// revision: consumer progress is not a change of the data.
//
// Thread-safety: Apply*, OnBatchWritten and OnBatchAborted from the apply thread only; reads
// from any thread (each on one engine snapshot).
#pragma once

#include <atomic>
#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "cairn/command.pb.h"
#include "cairn/events_storage.pb.h"
#include "cairn/persistent.pb.h"
#include "src/base/result.h"
#include "src/mvcc/kv_state.h"
#include "src/storage/engine.h"

namespace cairn::events {

namespace v1 = ::cairn::events::v1;

struct PersistentLimits {
  static constexpr size_t kGroupNameBytesMax = 256;
  static constexpr size_t kConsumerNameBytesMax = 256;
  // Connected consumers per group: each holds a gRPC stream and a share of the window.
  static constexpr uint32_t kSubscribersMax = 128;
  static constexpr uint32_t kRetryCountDefault = 10;
  static constexpr uint32_t kRetryCountMax = 1000;
  static constexpr uint32_t kMessageTimeoutMsDefault = 30'000;
  static constexpr uint32_t kMessageTimeoutMsMax = 24 * 3600 * 1000;
  static constexpr uint32_t kBufferSizeDefault = 10;
  static constexpr uint32_t kBufferSizeMax = 1000;
  // Events a group holds between its checkpoint and its read frontier: bounds the memory of a
  // group whose oldest event is stuck with a slow consumer (at most this many "R" records).
  static constexpr size_t kWindowEventsMax = 4096;
  // One ReplayParked moves at most this many parked events (bounds one apply).
  static constexpr uint32_t kReplayPerCallMax = 10'000;
  // Entries of one progress command (bounds one apply); well above what one window produces.
  static constexpr size_t kProgressEntriesMax = 4 * kWindowEventsMax;
};

// A place in a group's source, comparable: (version, 0) for a stream source (the link number
// for "$ce-"/"$et-" sources), (revision, index) for "$all".
struct CursorKey {
  uint64_t major = 0;
  uint32_t minor = 0;
  auto operator<=>(const CursorKey&) const = default;
};

bool IsAllSource(std::string_view source);
CursorKey ToCursorKey(const v1::Cursor& cursor, bool all);
v1::Cursor ToCursor(const CursorKey& key, bool all);
// Where `event` sits in the group's source.
CursorKey CursorOf(const v1::RecordedEvent& event, std::string_view source);

// INVALID_ARGUMENT "events: ..." for malformed requests; made by the service before proposing
// and again at apply.
Status ValidatePersistentSource(std::string_view source);
Status ValidateGroupName(std::string_view group);
Status ValidatePersistentSettings(std::string_view source,
                                  const v1::PersistentSubscriptionSettings& settings);
Status ValidateCreatePersistent(const v1::CreatePersistentSubscriptionRequest& req);
Status ValidateUpdatePersistent(const v1::UpdatePersistentSubscriptionRequest& req);
Status ValidateDeletePersistent(const v1::DeletePersistentSubscriptionRequest& req);
Status ValidateReplayParked(const v1::ReplayParkedRequest& req);
uint32_t MaxRetryCount(const v1::PersistentSubscriptionSettings& settings);
uint32_t MessageTimeoutMs(const v1::PersistentSubscriptionSettings& settings);

Status ErrGroupNotFound(std::string_view source, std::string_view group);

class PersistentState {
 public:
  PersistentState(storage::Engine* engine, mvcc::KvState* kv) : engine_(engine), kv_(kv) {}

  PersistentState(const PersistentState&) = delete;
  PersistentState& operator=(const PersistentState&) = delete;

  // ---- Apply (one thread) ----
  // Errors: INVALID_ARGUMENT, ALREADY_EXISTS.
  Status ApplyCreate(storage::WriteBatch* batch, const v1::CreatePersistentSubscriptionRequest& req,
                     v1::CreatePersistentSubscriptionResponse* resp);
  // Errors: INVALID_ARGUMENT, NOT_FOUND.
  Status ApplyUpdate(storage::WriteBatch* batch, const v1::UpdatePersistentSubscriptionRequest& req,
                     v1::UpdatePersistentSubscriptionResponse* resp);
  Status ApplyDelete(storage::WriteBatch* batch, const v1::DeletePersistentSubscriptionRequest& req,
                     v1::DeletePersistentSubscriptionResponse* resp);
  // A progress command for a group that is gone (or re-created) is answered `stale` and
  // changes nothing. Errors: INVALID_ARGUMENT (malformed entries).
  Status ApplyProgress(storage::WriteBatch* batch, const command::PersistentProgress& progress,
                       command::PersistentProgressResult* result);
  // Errors: INVALID_ARGUMENT, NOT_FOUND.
  Status ApplyReplayParked(storage::WriteBatch* batch, const v1::ReplayParkedRequest& req,
                           v1::ReplayParkedResponse* resp);
  void OnBatchWritten();
  void OnBatchAborted() { changed_in_batch_ = false; }

  // ---- Reads (any thread) ----
  Result<std::optional<records::PersistentGroupRecord>> GetGroup(std::string_view source,
                                                                 std::string_view group) const;
  // Groups of `source` (every group when empty), in key order.
  Status ListGroups(std::string_view source,
                    std::vector<records::PersistentGroupRecord>* out) const;
  // The parked stream's length (events parked so far, including replayed ones).
  Result<uint64_t> ParkedCount(std::string_view source, std::string_view group) const;

  // Everything a dispatcher needs to start, from one snapshot.
  struct Progress {
    records::PersistentGroupRecord group;
    std::vector<std::pair<CursorKey, records::PersistentEventRecord>> events;  // key order
    std::vector<std::pair<uint64_t, records::ReplayRecord>> replays;           // sequence order
  };
  // NOT_FOUND when the group does not exist.
  Status LoadProgress(std::string_view source, std::string_view group, Progress* out) const;

  // Changes whenever a batch created, updated, deleted a group or queued a replay; a dispatcher
  // polls it to notice.
  uint64_t Generation() const { return generation_.load(std::memory_order_acquire); }
  // The engine's contents were replaced (a Raft snapshot install): bumps the generation so
  // that dispatchers re-read every group. Apply thread only.
  void OnStateReplaced() {
    changed_in_batch_ = false;
    generation_.fetch_add(1, std::memory_order_acq_rel);
  }

 private:
  Result<std::optional<records::PersistentGroupRecord>> LoadGroup(storage::WriteBatch* batch,
                                                                  std::string_view source,
                                                                  std::string_view group);

  storage::Engine* const engine_;
  mvcc::KvState* const kv_;
  bool changed_in_batch_ = false;  // apply thread
  std::atomic<uint64_t> generation_{0};
};

}  // namespace cairn::events
