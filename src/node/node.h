// Node: the write path of one Cairn member — log, group commit, apply.
//
//   Propose(command) ─▶ GroupCommitter: append to the WAL, one fdatasync per batch
//                   ─▶ apply queue (bounded, log order)
//                   ─▶ apply thread: Applier::ApplyBatch (one engine batch per group)
//                   ─▶ the proposer's callback, with the command's result
//
// A command is acknowledged only after the sync covering its log entry returned AND it was
// applied, so an acknowledged write survives kill -9 (the log is replayed on open from the
// applied index the engine persisted) and is visible to every read that starts after the
// acknowledgment.
//
// Today the log has a single voter and no Raft; the Raft issue puts the consensus core
// between Propose and the WAL and keeps the rest of this pipeline.
//
// Threads: the group-commit thread, the apply thread and a checkpoint thread (flushes the
// engine and drops WAL segments the flushed state covers). Propose and the accessors are
// thread-safe. Callbacks run on the apply thread (or the commit thread on a log error):
// they must be short and must not call back into the Node synchronously.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "cairn/command.pb.h"
#include "src/base/result.h"
#include "src/env/file_system.h"
#include "src/lease/lease_state.h"
#include "src/mvcc/kv_state.h"
#include "src/node/applier.h"
#include "src/storage/engine.h"
#include "src/wal/group_committer.h"
#include "src/wal/wal.h"

namespace cairn::node {

struct NodeOptions {
  // Required. The WAL lives in <data_dir>/wal, the engine in <data_dir>/state.
  std::string data_dir;
  // Filesystem for the WAL. Default: nullptr = the posix filesystem.
  env::FileSystem* filesystem = nullptr;
  // Default: false = RocksDB on disk; true = MemoryEngine (tests and simulation).
  bool memory_engine = false;
  // Engine tuning; `path` and the compaction filter are set by the Node.
  storage::EngineOptions engine;
  mvcc::KvStateOptions kv;
  wal::WalOptions wal;
  wal::GroupCommitter::Options group_commit;
  // Most commands applied in one engine batch. Default: 1024.
  size_t apply_batch_entries_max = 1024;
  // Most durable-but-unapplied commands held; the commit thread waits beyond. Default: 65536.
  size_t apply_queue_entries_max = 65536;
  // After this many applied entries since the last checkpoint, flush the engine and delete
  // the WAL segments it covers. 0 disables checkpoints: the whole log is kept (tests compare
  // state with a replay of it). Default: 1,000,000.
  uint64_t checkpoint_interval_entries = 1'000'000;
  // Called on the apply thread after each written batch with its events (watches).
  // Default: empty = no events are collected.
  Applier::EventSink event_sink;
  // Called on the apply thread after each successful engine batch with its duration and
  // entry count (metrics). Default: empty.
  std::function<void(double apply_seconds, size_t entries)> on_apply_batch;
};

class Node {
 public:
  using Done = std::function<void(const Status& status, command::CommandResult&& result)>;

  // Opens the engine and the WAL, then replays log entries after the persisted applied index.
  static Result<std::unique_ptr<Node>> Open(NodeOptions options);
  ~Node();
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  // Logs and applies `command`, then calls `done` exactly once. After a log or engine
  // failure the node refuses further writes with Unavailable; a command the admission check
  // refuses is answered with its error and never logged.
  void Propose(command::Command command, Done done);

  // Decides, before a command is logged, whether this member accepts it (the space quota:
  // src/server/space_quota.h). It runs on the proposer's thread and may call Propose.
  // REQUIRES: set before Propose is called concurrently (at startup).
  using Admission = std::function<Status(const command::Command& command)>;
  void SetAdmission(Admission admission) { admission_ = std::move(admission); }

  mvcc::KvState* kv() { return kv_.get(); }
  lease::LeaseState* leases() { return leases_.get(); }
  AlarmState* alarms() { return alarms_.get(); }
  storage::Engine* engine() { return engine_.get(); }
  uint64_t AppliedIndex() const { return applier_->AppliedIndex(); }
  uint64_t LogFirstIndex() const;
  // Whether a log or engine failure made the node refuse writes.
  bool Failed() const { return failed_.load(); }

  // Flushes the engine and deletes WAL segments whose entries the flushed state covers.
  Status Checkpoint();

  // Finishes queued proposals, stops the threads, then checkpoints (or, with checkpoints
  // disabled, only flushes the engine). Idempotent.
  Status Close();

 private:
  struct Proposal {
    command::Command command;
    Done done;
    uint64_t index = 0;
  };

  explicit Node(NodeOptions options) : options_(std::move(options)) {}
  Status OpenParts();
  Status Replay();
  void OnDurable(Proposal* proposal, const Status& status, uint64_t index);
  void ApplyLoop();
  void CheckpointLoop();
  void Fail(const Status& status);
  Status CurrentFailure();

  NodeOptions options_;
  Admission admission_;
  std::shared_ptr<mvcc::HistoryCompactionFilterFactory> filter_;
  std::unique_ptr<storage::Engine> engine_;
  std::unique_ptr<mvcc::KvState> kv_;
  std::unique_ptr<lease::LeaseState> leases_;
  std::unique_ptr<AlarmState> alarms_;
  std::unique_ptr<Applier> applier_;
  std::unique_ptr<wal::Wal> wal_;
  std::unique_ptr<wal::GroupCommitter> committer_;

  std::mutex mutex_;
  std::condition_variable queue_not_empty_;
  std::condition_variable queue_not_full_;
  std::condition_variable checkpoint_wanted_;
  std::deque<Proposal*> apply_queue_;  // GUARDED_BY(mutex_)
  bool stopping_ = false;              // GUARDED_BY(mutex_)
  Status failure_;                     // GUARDED_BY(mutex_)
  std::atomic<bool> failed_{false};
  std::atomic<uint64_t> checkpointed_index_{0};
  std::mutex checkpoint_mutex_;  // serializes Checkpoint()
  std::thread apply_thread_;
  std::thread checkpoint_thread_;
  bool closed_ = false;
};

}  // namespace cairn::node
