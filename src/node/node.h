// Node: one Cairn member — the Raft core driven over the WAL, the peers and the applier.
//
//   Propose(command) ─▶ inbox ─▶ raft thread: RawNode::ProposeBatch (a follower forwards to
//                       the leader) ─▶ Ready: append entries to the WAL + one fdatasync for the
//                       whole batch (the leader sends its appends to followers first, so its
//                       own sync runs in parallel with replication), hard state if term/vote
//                       changed, then the messages that acknowledge it
//                   ─▶ committed entries ─▶ apply thread: Applier::ApplyBatch (one engine batch
//                       per group) ─▶ the proposer's callback, with the command's result
//
// A single member is a one-voter Raft group: there is no separate single-node path. A command
// is acknowledged only after it was committed (durable on a quorum) AND applied here, so an
// acknowledged write survives kill -9 and is visible to every read that starts after the
// acknowledgment on this member. Linearizable reads call ReadIndex first (node.ReadIndex).
//
// Membership lives in the state machine (membership.h) and changes through Raft
// configuration changes, one at a time. A new cluster is bootstrapped by writing its initial
// members as configuration-change entries 1..n on every member (etcd does the same).
//
// Threads: the raft thread (ticks, messages, proposals, persistence), the apply thread, the
// answer thread, a checkpoint thread and the read threads. Every public method is thread-safe.
// Callbacks run on the raft, apply, answer or read threads: they must be short and must not
// call back into the Node synchronously. Propose callbacks of applied writes run on the answer
// thread, in log order; ReadIndex callbacks run on a read thread (or the caller's, on a sole
// voter).
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "cairn/command.pb.h"
#include "src/base/result.h"
#include "src/env/file_system.h"
#include "src/env/random.h"
#include "src/events/projection/projection_definitions.h"
#include "src/events/projection/upcasters.h"
#include "src/lease/lease_state.h"
#include "src/mvcc/kv_state.h"
#include "src/node/applier.h"
#include "src/node/membership.h"
#include "src/node/raft_log_storage.h"
#include "src/raft/raw_node.h"
#include "src/storage/engine.h"
#include "src/wal/wal.h"

namespace cairn::node {

struct NodeOptions {
  // Required. The WAL lives in <data_dir>/wal, the engine in <data_dir>/state, the Raft hard
  // state in <data_dir>/raft.
  std::string data_dir;
  // Filesystem for the WAL and the hard state. Default: nullptr = the posix filesystem.
  env::FileSystem* filesystem = nullptr;
  // Default: false = RocksDB on disk; true = MemoryEngine (tests and simulation).
  bool memory_engine = false;
  // Engine tuning; `path` and the compaction filter are set by the Node.
  storage::EngineOptions engine;
  mvcc::KvStateOptions kv;
  wal::WalOptions wal;

  // This member's Raft id (etcd's member ID) when the data directory is new; an existing
  // directory keeps the id it was created with (<data_dir>/raft/member_id). REQUIRES: != 0.
  // Default: 1.
  uint64_t member_id = 1;
  // The members of a new cluster (etcd's --initial-cluster), written as the first log entries
  // when the data directory holds no membership and no log. Default: empty = this member
  // alone (id member_id, no name or URLs).
  std::vector<command::Member> initial_members;
  // etcd's --initial-cluster-state existing: this member was added to a running cluster and
  // waits for the leader to send it the log; it never bootstraps. Default: false.
  bool join_existing = false;
  // Length of a Raft tick (etcd's --heartbeat-interval). Default: 100 ms.
  int64_t tick_ms = 100;
  // Election timeout in ticks (etcd's --election-timeout / --heartbeat-interval). Default: 10.
  int election_ticks = 10;
  // A proposal or read not answered within this long fails with "etcdserver: request timed
  // out" (etcd: 5 s + 2 election timeouts). Default: 7000 ms.
  int64_t request_timeout_ms = 7000;
  // Proposals and reads queued for the raft thread beyond which new ones fail with
  // "etcdserver: too many requests". Default: 65536.
  size_t inbox_requests_max = 65536;
  // Peer messages queued for the raft thread beyond which new ones are dropped (Raft
  // retries). Default: 16384.
  size_t inbox_messages_max = 16384;
  // Seed of the election-timeout jitter. Default: 0 = derived from member_id and the clock.
  uint64_t random_seed = 0;

  // Most commands applied in one engine batch. Default: 1024.
  size_t apply_batch_entries_max = 1024;
  // Most committed-but-unapplied entries queued; the raft thread waits beyond. Default: 65536.
  size_t apply_queue_entries_max = 65536;
  // After this many applied entries since the last checkpoint, flush the engine and delete
  // the WAL segments it covers. 0 disables checkpoints: the whole log is kept (tests compare
  // state with a replay of it). Default: 100,000 (etcd 3.4's --snapshot-count).
  uint64_t checkpoint_interval_entries = 100'000;
  // With more than one member, a checkpoint keeps at least this many entries below the
  // applied index so that a follower that lags by less catches up from the log; one further
  // behind is sent a snapshot of the state (etcd's --snapshot-catchup-entries). Default: 5000.
  uint64_t cluster_log_retention_entries = 5000;
  // Threads that run linearizable reads once their read index is applied (a sole voter's
  // reads run on the caller's thread instead). Default: 2.
  size_t read_threads = 2;
  // Read the current records of the keys a proposed put or txn writes into the cache of hot
  // keys (KvState::WarmLatest) on a thread of their own while the log entry is made durable,
  // so that the apply thread does not wait for the disk. Default: true.
  bool warm_proposed_keys = true;
  // The warm thread judges its use over this many keys: when nearly all of them (all but 1 in
  // 256) needed no reading (the cache held them, or the engine did not: a new key's absence is
  // not cached), it pauses and only samples one command in kWarmSampleEvery, and resumes when
  // a sample of warm_check_keys / kWarmSampleEvery keys shows keys it read into the cache
  // (more than 1 in 64). Waking it for nothing costs more than it saves: its wakeups and lock
  // handoffs slowed txn-put over a new key space by about 5 % (docs/benchmarks.md, session
  // 26). Default: 4096.
  size_t warm_check_keys = 4096;
  // Most bytes of recent log entries kept in memory for replication. Default: 64 MiB.
  uint64_t log_cache_bytes_max = 64ull << 20;

  // Called on the apply thread after each written batch with its events (watches), and
  // before each batch to ask whether its events are wanted (applier.h). Default: empty.
  Applier::EventSink event_sink;
  Applier::EventsWanted events_wanted;
  // Called on the apply thread after each successful engine batch (metrics). Default: empty.
  std::function<void(double apply_seconds, size_t entries)> on_apply_batch;
  // Called on the raft thread after each WAL fdatasync with its duration and the entries it
  // made durable (metrics). Default: empty.
  std::function<void(double sync_seconds, size_t entries)> on_wal_sync;
  // Sends Raft messages to peers (the transport); called on the raft thread, must not block.
  // Default: empty = messages to other members are dropped.
  std::function<void(std::vector<raft::Message>&& messages)> send;
  // Called on the raft thread when the applied membership changed (and once at start): the
  // server points the transport at the members' peer URLs.
  std::function<void(const std::vector<command::Member>& members)> on_members_changed;
  // Called on the raft thread when the known leader or the term changed.
  std::function<void(uint64_t leader_id, uint64_t term)> on_leader_change;
  // Called on the raft thread after this member installed a snapshot the leader sent, with its
  // index and the store revision it holds (the server moves watchers to catch-up). Default:
  // empty.
  std::function<void(uint64_t index, int64_t revision)> on_snapshot_installed;
  // Test hook: called between the steps of a snapshot install (snapshot_install.h) with the
  // step just done (1..5); returning false stops the install there as a crash would (the node
  // fails and refuses writes). Default: empty.
  std::function<bool(int step)> snapshot_install_test_hook;
};

// Snapshot transfer counters (metrics, tests); monotonic.
struct SnapshotStats {
  uint64_t produced = 0;       // leader: snapshots written for followers
  uint64_t sent = 0;           // leader: delivered to a follower's node (transport report)
  uint64_t send_failures = 0;  // leader: not delivered
  uint64_t installed = 0;      // follower: installed (including one redone at open)
  uint64_t last_installed_index = 0;
};

// What Maintenance.Status and metrics report.
struct RaftStatus {
  uint64_t member_id = 0;
  uint64_t leader_id = 0;  // 0: no leader known
  uint64_t term = 0;
  uint64_t commit_index = 0;
  uint64_t last_index = 0;
  uint64_t applied_index = 0;
  bool is_learner = false;
};

// The member id a data directory was created with (<data_dir>/raft/member_id), or 0 for a
// directory no member has opened yet.
Result<uint64_t> StoredMemberId(env::FileSystem* fs, const std::string& data_dir);

class Node {
 public:
  using Done = std::function<void(const Status& status, command::CommandResult&& result)>;
  using ConfigDone =
      std::function<void(const Status& status, std::vector<command::Member>&& members)>;
  using ReadDone = std::function<void(const Status& status)>;

  // Opens the engine, the WAL and the Raft state; bootstraps a new cluster if the data
  // directory is fresh (see NodeOptions). A single voter replays its log before Open returns.
  static Result<std::unique_ptr<Node>> Open(NodeOptions options);
  ~Node();
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  // Replicates and applies `command`, then calls `done` exactly once. Errors: Unavailable
  // "etcdserver: no leader" when no leader is known, "etcdserver: request timed out" after
  // request_timeout_ms, ResourceExhausted "etcdserver: too many requests" when the inbox is
  // full; after a log or engine failure, Unavailable. A command the admission check refuses
  // is answered with its error and never logged.
  void Propose(command::Command command, Done done);

  // Proposes a membership change; `change.context` is ignored (the member describes it).
  // `done` receives the member list after the change was applied here.
  void ProposeConfigChange(raft::ConfigChangeType type, command::Member member, ConfigDone done);

  // Calls `done` once a read of the local state is linearizable: the leader confirmed its
  // leadership and this member applied everything committed before the request.
  void ReadIndex(ReadDone done);

  // Asks the leader to hand leadership to `transferee`; `done` runs when it has (OK) or after
  // request_timeout_ms.
  void TransferLeadership(uint64_t transferee, ReadDone done);

  // A message from a peer (the transport's receive path).
  void Step(raft::Message message);
  // Transport feedback.
  void ReportUnreachable(uint64_t id);
  // The kSnapshot message to `id` was delivered (failed = false) or not.
  void ReportSnapshot(uint64_t id, bool failed);
  SnapshotStats GetSnapshotStats() const;
  // Bytes of Raft log entries cached in memory (RaftLogStorage::cached_bytes), as of the raft
  // thread's last Ready or compaction.
  uint64_t LogCacheBytes() const { return log_cache_bytes_.load(std::memory_order_relaxed); }

  // Decides, before a command is logged, whether this member accepts it (the space quota:
  // src/server/space_quota.h). It runs on the proposer's thread and may call Propose.
  // REQUIRES: set before Propose is called concurrently (at startup).
  using Admission = std::function<Status(const command::Command& command)>;
  void SetAdmission(Admission admission) { admission_ = std::move(admission); }

  mvcc::KvState* kv() { return kv_.get(); }
  lease::LeaseState* leases() { return leases_.get(); }
  events::EventState* events() { return events_.get(); }
  // User projection and upcaster definitions (replicated), and the upcasting read path.
  events::projection::ProjectionDefinitions* projections() { return projections_.get(); }
  events::projection::Upcasters* upcasters() { return upcasters_.get(); }
  AlarmState* alarms() { return alarms_.get(); }
  Membership* membership() { return membership_.get(); }
  storage::Engine* engine() { return engine_.get(); }
  uint64_t member_id() const { return options_.member_id; }
  uint64_t AppliedIndex() const { return applier_->AppliedIndex(); }
  // Whether the warm thread is paused because the cache held the keys (warm_check_keys).
  bool warm_paused() const { return warm_paused_.load(std::memory_order_relaxed); }
  // The first index the WAL holds (segments are dropped whole).
  uint64_t LogFirstIndex() const;
  // The first index the Raft log serves (RaftLogStorage::FirstIndex); a follower that needs an
  // earlier entry is sent a snapshot.
  uint64_t RaftLogFirstIndex() const { return raft_log_first_index_.load(); }
  RaftStatus GetRaftStatus() const;
  uint64_t LeaderId() const { return leader_id_.load(std::memory_order_acquire); }
  bool IsLeader() const { return LeaderId() == options_.member_id; }
  uint64_t Term() const { return term_.load(std::memory_order_acquire); }
  // Whether a log or engine failure made the node refuse writes.
  bool Failed() const { return failed_.load(); }
  // Blocks until AppliedIndex() >= index or the timeout passes; returns whether it got there.
  bool WaitApplied(uint64_t index, int64_t timeout_ms);

  // Flushes the engine and deletes WAL segments whose entries the flushed state covers.
  Status Checkpoint();

  // Stops the raft thread (pending requests fail with Unavailable), applies what was
  // committed, then checkpoints (or, with checkpoints disabled, only flushes the engine).
  // Idempotent.
  Status Close();

 private:
  struct Waiter {
    Done done;
    ConfigDone config_done;
    int64_t deadline_ms = 0;
    uint64_t leader = 0;  // the leader known when it was proposed (its timeout error says so)
  };
  struct PendingRead {
    ReadDone done;
    int64_t deadline_ms = 0;
  };
  struct Inbox {
    std::vector<std::pair<uint64_t, std::string>> proposals;  // (request id, payload)
    std::vector<std::pair<uint64_t, raft::ConfigChange>> config_changes;
    std::vector<PendingRead> reads;
    std::vector<raft::Message> messages;
    std::vector<uint64_t> unreachable;
    std::vector<std::pair<uint64_t, bool>> snapshot_reports;  // (peer, failed)
    std::vector<std::pair<uint64_t, PendingRead>> transfers;
    // (index, outcome): log compactions the checkpoint thread waits for.
    std::vector<std::pair<uint64_t, std::shared_ptr<std::promise<Status>>>> compactions;
    bool Empty() const {
      return proposals.empty() && config_changes.empty() && reads.empty() && messages.empty() &&
             unreachable.empty() && transfers.empty() && compactions.empty() &&
             snapshot_reports.empty();
    }
  };

  explicit Node(NodeOptions options) : options_(std::move(options)) {}
  Status OpenParts();
  Status AdoptMemberId();
  Status OpenRaft();
  Status Bootstrap();
  uint64_t NextRequestId() { return next_request_id_.fetch_add(1, std::memory_order_relaxed); }
  bool RegisterWaiter(uint64_t request_id, Waiter waiter);
  // Why the inbox refuses a request now (stopping, full), or OK. REQUIRES: inbox_mutex_ held.
  Status InboxRefusal() const;
  std::optional<Waiter> TakeWaiter(uint64_t request_id);
  void FailAllWaiters(const Status& status);
  int64_t NowMs() const;

  // Raft thread.
  void RaftLoop();
  void Submit(Inbox& inbox);
  void HandleReadies();
  Status HandleReady(raft::Ready& ready);
  void SendMessages(std::vector<raft::Message>& messages, bool leader_messages_only);
  void ApplyConfigChanges(const std::vector<raft::Entry>& committed);
  void OnSoftState(const raft::SoftState& soft_state);
  // Sets single_voter_leader_ and sole_member_leader_ from the current configuration.
  void UpdateLeaderAlone(bool leader);
  void ExpireRequests();
  void ServeReadStates(std::vector<raft::ReadState>& read_states);

  // Apply thread.
  void ApplyLoop();
  void ApplyEntries(std::vector<raft::Entry>& entries);
  void ServeAppliedReads(uint64_t applied);
  // Hands reads whose index is applied to the read threads.
  void ReleaseReads(std::vector<PendingRead> reads);
  void ReadLoop();
  // A write's answer. The answer thread runs them in the order of the log, so that the apply
  // thread goes on applying while they are sent (gRPC's Finish is most of their cost).
  struct Answer {
    Done done;
    Status status;
    command::CommandResult result;
  };
  void ReleaseAnswers(std::vector<Answer> answers);
  void AnswerLoop();
  // Queues the keys `command` will read for the warm thread (NodeOptions::warm_proposed_keys).
  void WarmKeysOf(const command::Command& command);
  void WarmLoop();
  static constexpr size_t kReadBatchMax = 256;

  // Snapshots for followers (leader): the raft thread asks OutgoingSnapshot (the log
  // storage's snapshot source); the snapshot thread produces one when none is fresh, as a file
  // (OutgoingSnapshotPath) that the kSnapshot message names and the transport streams.
  struct PreparedSnapshot {
    uint64_t index = 0;
    raft::ConfigState config;
    std::string path;
    uint64_t size_bytes = 0;
  };
  raft::Snapshot OutgoingSnapshot();
  void SnapshotLoop();
  Result<std::shared_ptr<const PreparedSnapshot>> ProduceSnapshot();
  // Installing a snapshot from the leader (follower, raft thread).
  Status InstallSnapshot(const raft::Snapshot& snapshot);
  // Re-reads every in-memory state derived from the engine (after an install).
  Status ReloadState();
  env::FileSystem* FileSystem() const;

  void CheckpointLoop();
  void Fail(const Status& status);
  Status CurrentFailure();

  NodeOptions options_;
  Admission admission_;
  std::shared_ptr<mvcc::HistoryCompactionFilterFactory> filter_;
  std::unique_ptr<storage::Engine> engine_;
  std::unique_ptr<mvcc::KvState> kv_;
  std::unique_ptr<lease::LeaseState> leases_;
  std::unique_ptr<events::EventState> events_;
  std::unique_ptr<events::projection::ProjectionDefinitions> projections_;
  std::unique_ptr<events::projection::Upcasters> upcasters_;
  std::unique_ptr<AlarmState> alarms_;
  std::unique_ptr<Membership> membership_;
  std::unique_ptr<Applier> applier_;
  std::unique_ptr<wal::Wal> wal_;
  std::unique_ptr<RaftLogStorage> log_storage_;
  std::unique_ptr<env::Random> random_;
  std::unique_ptr<raft::RawNode> raw_;  // raft thread only (after Open)

  std::atomic<uint64_t> next_request_id_{1};
  std::atomic<uint64_t> leader_id_{0};
  std::atomic<uint64_t> term_{0};
  std::atomic<uint64_t> commit_index_{0};
  std::atomic<uint64_t> last_index_{0};
  std::atomic<uint64_t> raft_log_first_index_{0};
  std::atomic<uint64_t> log_cache_bytes_{0};
  std::atomic<bool> single_voter_leader_{false};
  // Raft thread: leader with no other member (voter or learner). Nobody reads its applied
  // entries back, so the log cache releases them once they are handed to the apply thread.
  bool sole_member_leader_ = false;

  // Requests waiting for their entries to apply, by request id.
  std::mutex waiters_mutex_;
  std::unordered_map<uint64_t, Waiter> waiters_;  // GUARDED_BY(waiters_mutex_)

  // Raft thread inbox.
  std::mutex inbox_mutex_;
  std::condition_variable inbox_cv_;
  Inbox inbox_;                 // GUARDED_BY(inbox_mutex_)
  size_t inbox_requests_ = 0;   // GUARDED_BY(inbox_mutex_)
  bool raft_stopping_ = false;  // GUARDED_BY(inbox_mutex_)
  std::thread raft_thread_;
  std::atomic<bool> raft_thread_stopped_{false};

  // Raft thread state.
  uint64_t read_context_counter_ = 0;
  std::map<std::string, std::vector<PendingRead>> reads_in_flight_;  // by ReadIndex context
  std::vector<std::pair<uint64_t, PendingRead>> transfers_;          // (transferee, done)
  raft::SoftState soft_state_;
  uint64_t reported_term_ = 0;
  uint64_t reported_members_generation_ = 0;

  // Reads waiting for the apply thread to reach their index.
  std::mutex reads_mutex_;
  std::multimap<uint64_t, PendingRead> reads_waiting_apply_;  // GUARDED_BY(reads_mutex_)

  // Apply queue (raft thread → apply thread).
  std::mutex mutex_;
  std::condition_variable queue_not_empty_;
  std::condition_variable queue_not_full_;
  std::condition_variable applied_cv_;
  std::condition_variable checkpoint_wanted_;
  std::deque<raft::Entry> apply_queue_;  // GUARDED_BY(mutex_)
  bool stopping_ = false;                // GUARDED_BY(mutex_)
  Status failure_;                       // GUARDED_BY(mutex_)
  // Outcome of applied configuration changes not yet taken by the raft thread, by index.
  std::map<uint64_t, bool> config_change_applied_;  // GUARDED_BY(mutex_)
  std::atomic<bool> failed_{false};
  std::atomic<uint64_t> checkpointed_index_{0};
  std::mutex checkpoint_mutex_;  // serializes Checkpoint()
  // Reads ready to run (read threads).
  std::mutex read_queue_mutex_;
  std::condition_variable read_queue_cv_;
  std::deque<ReadDone> read_queue_;     // GUARDED_BY(read_queue_mutex_)
  bool read_threads_stopping_ = false;  // GUARDED_BY(read_queue_mutex_)
  std::vector<std::thread> read_threads_;
  // Applied writes' answers, in log order (answer thread).
  std::mutex answer_mutex_;
  std::condition_variable answer_cv_;
  std::deque<Answer> answer_queue_;  // GUARDED_BY(answer_mutex_)
  bool answers_stopping_ = false;    // GUARDED_BY(answer_mutex_)
  std::thread answer_thread_;
  // Keys of proposed commands to read into the cache of hot keys (warm thread).
  std::mutex warm_mutex_;
  std::condition_variable warm_cv_;
  std::vector<std::string> warm_keys_;  // GUARDED_BY(warm_mutex_)
  bool warm_idle_ = false;              // GUARDED_BY(warm_mutex_): waiting for keys
  // Paused (NodeOptions::warm_check_keys): only sampled commands are queued.
  std::atomic<bool> warm_paused_{false};
  std::atomic<uint64_t> warm_sample_counter_{0};
  bool warm_stopping_ = false;  // GUARDED_BY(warm_mutex_)
  std::thread warm_thread_;
  bool applying_ = false;  // GUARDED_BY(mutex_): the apply thread holds entries
  // Snapshot production (leader).
  mutable std::mutex snapshot_mutex_;
  std::condition_variable snapshot_cv_;
  bool snapshot_wanted_ = false;                               // GUARDED_BY(snapshot_mutex_)
  bool snapshot_stopping_ = false;                             // GUARDED_BY(snapshot_mutex_)
  std::shared_ptr<const PreparedSnapshot> prepared_snapshot_;  // GUARDED_BY(snapshot_mutex_)
  SnapshotStats snapshot_stats_;                               // GUARDED_BY(snapshot_mutex_)
  std::thread snapshot_thread_;
  // Follower, raft thread only: the files of the kSnapshot messages stepped in the last round
  // (the transport's staged copies); those the install did not take are deleted next round.
  std::vector<std::string> stepped_snapshot_files_;
  std::thread apply_thread_;
  std::thread checkpoint_thread_;
  bool closed_ = false;
};

}  // namespace cairn::node
