#include "src/node/node.h"

#include <pthread.h>

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <vector>

#include "src/base/logging.h"
#include "src/env/posix_file_system.h"
#include "src/events/event_format.h"
#include "src/node/snapshot.h"
#include "src/node/snapshot_install.h"
#include "src/storage/memory_engine.h"
#include "src/storage/rocksdb_engine.h"

namespace cairn::node {
namespace {

std::shared_ptr<spdlog::logger> Logger() {
  static auto logger = log::Get("node");
  return logger;
}

// Shown by top -H, perf and gdb (at most 15 characters).
void NameThread(const char* name) { pthread_setname_np(pthread_self(), name); }

// Most keys waiting for the warm thread (NodeOptions::warm_proposed_keys).
constexpr size_t kWarmKeysMax = 16384;
// While the warm thread is paused, one command in this many is still warmed, as a sample
// (NodeOptions::warm_check_keys).
constexpr uint64_t kWarmSampleEvery = 64;
// Threads reading one MultiGet's uncached keys at once (EngineOptions::read_threads + 1).
constexpr size_t kEngineReadThreads = 8;

Status NoLeaderError() { return Status::Unavailable("etcdserver: no leader"); }
Status TimeoutError() { return Status::Unavailable("etcdserver: request timed out"); }
// etcd's ErrGRPCTimeoutDueToLeaderFail: the leader changed while the write waited (a proposal
// forwarded to a leader that then failed is lost with it, or may still commit later: the
// client cannot know, as with any timeout).
Status LeaderFailTimeoutError() {
  return Status::Unavailable(
      "etcdserver: request timed out, possibly due to previous leader failure");
}
Status TooManyRequestsError() { return Status::ResourceExhausted("etcdserver: too many requests"); }
Status StoppingError() { return Status::Unavailable("cairn: the member is shutting down"); }

// Messages a leader may send before its own entries are durable (Raft thesis §10.2.1): they
// acknowledge nothing about its log. Responses (votes, append acknowledgements) wait.
bool SendableBeforePersist(raft::MessageType type) {
  switch (type) {
    case raft::MessageType::kAppend:
    case raft::MessageType::kHeartbeat:
    case raft::MessageType::kSnapshot:
    case raft::MessageType::kTimeoutNow:
      return true;
    default:
      return false;
  }
}

// Moves the values whose deadline passed out of `container` (a map, or a vector of pairs).
template <typename Container, typename Value>
void TakeExpired(Container& container, int64_t now_ms, std::vector<Value>* expired) {
  for (auto it = container.begin(); it != container.end();) {
    if (it->second.deadline_ms <= now_ms) {
      expired->push_back(std::move(it->second));
      it = container.erase(it);
    } else {
      ++it;
    }
  }
}

bool IsSoleVoter(const raft::ConfigState& config, uint64_t id) {
  return config.voters.size() == 1 && config.voters[0] == id;
}

}  // namespace

// ---------------------------------------------------------------------------------------
// Opening and bootstrap.

Result<std::unique_ptr<Node>> Node::Open(NodeOptions options) {
  if (options.data_dir.empty()) return Status::InvalidArgument("node: data_dir is required");
  if (options.member_id == raft::kNoNode) return Status::InvalidArgument("node: member id 0");
  if (options.tick_ms <= 0 || options.election_ticks < 2) {
    return Status::InvalidArgument("node: tick_ms must be positive and election_ticks >= 2");
  }
  std::unique_ptr<Node> node(new Node(std::move(options)));
  CAIRN_RETURN_IF_ERROR(node->OpenParts());
  CAIRN_RETURN_IF_ERROR(node->OpenRaft());
  node->checkpointed_index_ = node->applier_->AppliedIndex();
  node->next_request_id_ = static_cast<uint64_t>(
      std::chrono::system_clock::now().time_since_epoch() / std::chrono::nanoseconds(1));
  const uint64_t last_at_open = node->log_storage_->LastIndex();
  const bool sole_voter =
      IsSoleVoter(node->log_storage_->InitialConfigState(), node->options_.member_id) ||
      (node->membership_->Empty() && !node->options_.join_existing &&
       node->options_.initial_members.size() <= 1);
  auto start = [n = node.get()](const char* name, void (Node::*loop)()) {
    return std::thread([n, name, loop] {
      NameThread(name);
      (n->*loop)();
    });
  };
  node->apply_thread_ = start("cairn-apply", &Node::ApplyLoop);
  node->raft_thread_ = start("cairn-raft", &Node::RaftLoop);
  node->checkpoint_thread_ = start("cairn-checkpt", &Node::CheckpointLoop);
  node->snapshot_thread_ = start("cairn-snapshot", &Node::SnapshotLoop);
  for (size_t i = 0; i < node->options_.read_threads; ++i) {
    node->read_threads_.push_back(start("cairn-read", &Node::ReadLoop));
  }
  node->answer_thread_ = start("cairn-answer", &Node::AnswerLoop);
  if (node->options_.warm_proposed_keys) node->warm_thread_ = start("cairn-warm", &Node::WarmLoop);
  if (sole_voter) {
    // A single voter commits its whole log as soon as it is elected: replay it before serving,
    // so that reads after Open see every acknowledged write.
    // Its election appends one empty entry after the log.
    if (!node->WaitApplied(last_at_open + 1, node->options_.request_timeout_ms)) {
      Status failure = node->Failed() ? node->CurrentFailure()
                                      : Status::Unavailable("node: log replay did not finish");
      (void)node->Close();
      return failure;
    }
  }
  return node;
}

Status Node::OpenParts() {
  env::FileSystem* fs = options_.filesystem ? options_.filesystem : env::PosixFileSystem::Default();
  CAIRN_RETURN_IF_ERROR(fs->CreateDirs(options_.data_dir));
  filter_ = std::make_shared<mvcc::HistoryCompactionFilterFactory>();
  storage::EngineOptions engine_options = options_.engine;
  engine_options.path = options_.data_dir + "/state";
  engine_options.compaction_filter_factory = filter_;
  engine_options.sequential_key_tags[static_cast<size_t>(storage::Family::kEvents)] =
      events::format::kSequentialTags;
  engine_options.point_lookup_key_bytes[static_cast<size_t>(storage::Family::kEventIds)] =
      events::format::kIdKeyBytes;
  engine_options.sorted_batch_writes[static_cast<size_t>(storage::Family::kKvLatest)] = true;
  engine_options.sorted_batch_writes[static_cast<size_t>(storage::Family::kKvHistory)] = true;
  engine_options.scanned_only[static_cast<size_t>(storage::Family::kKvHistory)] = true;
  // The applier's read-ahead of current records (KvState::PrefetchLatest) is one MultiGet per
  // batch. Keys not in the block cache then wait for the disk; with helpers, up to this many
  // reads (the apply thread's included) wait at once instead of one after another.
  engine_options.read_threads = kEngineReadThreads - 1;
  if (options_.memory_engine) {
    engine_ = std::make_unique<storage::MemoryEngine>(engine_options);
  } else {
    CAIRN_ASSIGN_OR_RETURN(engine_, storage::RocksDbEngine::Open(engine_options));
  }
  CAIRN_ASSIGN_OR_RETURN(wal_, wal::Wal::Open(fs, options_.data_dir + "/wal", options_.wal));
  const wal::RecoveryInfo& recovery = wal_->recovery();
  if (recovery.tail_truncated) {
    Logger()->warn("wal: cut a torn tail of {} bytes at {}:{} (never acknowledged)",
                   recovery.truncated_bytes, recovery.truncated_segment, recovery.truncated_offset);
  }
  // Before anything reads the engine or the log: a snapshot install a crash interrupted is
  // finished (snapshot_install.h).
  CAIRN_ASSIGN_OR_RETURN(
      std::optional<InstallMarker> redone,
      FinishInterruptedSnapshotInstall(engine_.get(), wal_.get(), fs, options_.data_dir));
  if (redone) {
    Logger()->warn(
        "finished installing the snapshot at index {} (term {}) that a crash "
        "interrupted",
        redone->index, redone->term);
    std::lock_guard lock(snapshot_mutex_);
    ++snapshot_stats_.installed;
    snapshot_stats_.last_installed_index = redone->index;
  }
  CAIRN_ASSIGN_OR_RETURN(kv_, mvcc::KvState::Open(engine_.get(), filter_, options_.kv));
  leases_ = std::make_unique<lease::LeaseState>(engine_.get(), kv_.get());
  kv_->set_lease_index(leases_.get());
  CAIRN_ASSIGN_OR_RETURN(applier_, Applier::Open(engine_.get(), kv_.get(), options_.event_sink));
  applier_->set_events_wanted(options_.events_wanted);
  applier_->set_leases(leases_.get());
  CAIRN_ASSIGN_OR_RETURN(events_, events::EventState::Open(engine_.get(), kv_.get()));
  applier_->set_events(events_.get());
  projections_ = std::make_unique<events::projection::ProjectionDefinitions>(engine_.get());
  upcasters_ = std::make_unique<events::projection::Upcasters>(projections_.get());
  applier_->set_projections(projections_.get());
  CAIRN_ASSIGN_OR_RETURN(alarms_, AlarmState::Open(engine_.get()));
  applier_->set_alarms(alarms_.get());
  CAIRN_ASSIGN_OR_RETURN(membership_, Membership::Open(engine_.get()));
  applier_->set_membership(membership_.get());
  return Status::Ok();
}

Result<uint64_t> StoredMemberId(env::FileSystem* fs, const std::string& data_dir) {
  const std::string path = data_dir + "/raft/member_id";
  if (!fs->FileExists(path)) return uint64_t{0};
  CAIRN_ASSIGN_OR_RETURN(std::unique_ptr<env::ReadableFile> file, fs->NewReadableFile(path));
  std::string text;
  CAIRN_RETURN_IF_ERROR(file->Read(0, 64, &text));
  char* end = nullptr;
  const uint64_t id = std::strtoull(text.c_str(), &end, 16);
  if (id == 0 || end == text.c_str() || *end != '\n') {
    return Status::Corruption(path + ": not a member id");
  }
  return id;
}

Status Node::AdoptMemberId() {
  // A data directory belongs to one member for life: the id it was created with wins over
  // the one the options compute (etcd likewise keeps the id in its WAL and ignores --name).
  env::FileSystem* fs = options_.filesystem ? options_.filesystem : env::PosixFileSystem::Default();
  const std::string dir = options_.data_dir + "/raft";
  CAIRN_RETURN_IF_ERROR(fs->CreateDirs(dir));
  CAIRN_ASSIGN_OR_RETURN(uint64_t stored, StoredMemberId(fs, options_.data_dir));
  if (stored != 0) {
    if (stored != options_.member_id) {
      Logger()->warn("data dir belongs to member {:x}; serving as it (the options named {:x})",
                     stored, options_.member_id);
      options_.member_id = stored;
    }
    return Status::Ok();
  }
  const std::string path = dir + "/member_id";
  char text[24];
  std::snprintf(text, sizeof(text), "%016" PRIx64 "\n", options_.member_id);
  const std::string temporary = path + ".tmp";
  {
    CAIRN_ASSIGN_OR_RETURN(std::unique_ptr<env::WritableFile> file, fs->NewWritableFile(temporary));
    CAIRN_RETURN_IF_ERROR(file->Append(text));
    CAIRN_RETURN_IF_ERROR(file->Sync());
    CAIRN_RETURN_IF_ERROR(file->Close());
  }
  CAIRN_RETURN_IF_ERROR(fs->RenameFile(temporary, path));
  return fs->SyncDir(dir);
}

Status Node::OpenRaft() {
  CAIRN_RETURN_IF_ERROR(AdoptMemberId());
  env::FileSystem* fs = options_.filesystem ? options_.filesystem : env::PosixFileSystem::Default();
  RaftLogStorage::Options storage_options;
  storage_options.cache_bytes_max = options_.log_cache_bytes_max;
  CAIRN_ASSIGN_OR_RETURN(
      log_storage_,
      RaftLogStorage::Open(wal_.get(), fs, options_.data_dir + "/raft", membership_->Config(),
                           applier_->AppliedIndex(), storage_options));
  log_storage_->SetSnapshotSource([this] { return OutgoingSnapshot(); });
  const bool log_empty = log_storage_->LastIndex() + 1 == log_storage_->FirstIndex();
  if (membership_->Empty() && !options_.join_existing) {
    if (log_empty) {
      CAIRN_RETURN_IF_ERROR(Bootstrap());
    } else {
      CAIRN_ASSIGN_OR_RETURN(bool finished, log_storage_->FinishInterruptedBootstrap());
      if (finished) Logger()->warn("finished a bootstrap that a crash interrupted");
    }
  }
  uint64_t seed = options_.random_seed;
  if (seed == 0) {
    seed = options_.member_id ^
           static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  }
  random_ = std::make_unique<env::Random>(seed);
  raft::Config config;
  config.id = options_.member_id;
  config.election_ticks = options_.election_ticks;
  config.heartbeat_ticks = 1;
  config.storage = log_storage_.get();
  config.random = random_.get();
  config.applied = applier_->AppliedIndex();
  CAIRN_RETURN_IF_ERROR(config.Validate());
  raw_ = std::make_unique<raft::RawNode>(config);
  last_index_ = log_storage_->LastIndex();
  raft_log_first_index_ = log_storage_->FirstIndex();
  commit_index_ = log_storage_->InitialHardState().commit;
  term_ = log_storage_->InitialHardState().term;
  return Status::Ok();
}

Status Node::Bootstrap() {
  std::vector<command::Member> members = options_.initial_members;
  if (members.empty()) {
    command::Member self;
    self.set_id(options_.member_id);
    members.push_back(self);
  }
  if (std::none_of(members.begin(), members.end(),
                   [&](const command::Member& m) { return m.id() == options_.member_id; })) {
    return Status::InvalidArgument("node: this member is not in the initial cluster");
  }
  std::vector<raft::Entry> entries;
  uint64_t index = log_storage_->LastIndex();
  for (const command::Member& member : members) {
    command::ConfigChangeContext context;
    *context.mutable_member() = member;
    raft::ConfigChange change{.type = member.is_learner() ? raft::ConfigChangeType::kAddLearner
                                                          : raft::ConfigChangeType::kAddVoter,
                              .node_id = member.id(),
                              .context = context.SerializeAsString()};
    entries.push_back(raft::Entry{.term = 1,
                                  .index = ++index,
                                  .type = raft::EntryType::kConfigChange,
                                  .data = raft::EncodeConfigChange(change)});
  }
  Logger()->info("bootstrapping a new cluster of {} member(s) at log index {}", members.size(),
                 entries.front().index);
  return log_storage_->Bootstrap(entries, raft::HardState{.term = 1, .commit = index});
}

// ---------------------------------------------------------------------------------------
// Requests (any thread).

int64_t Node::NowMs() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

bool Node::RegisterWaiter(uint64_t request_id, Waiter waiter) {
  std::lock_guard lock(waiters_mutex_);
  return waiters_.emplace(request_id, std::move(waiter)).second;
}

std::optional<Node::Waiter> Node::TakeWaiter(uint64_t request_id) {
  std::lock_guard lock(waiters_mutex_);
  auto it = waiters_.find(request_id);
  if (it == waiters_.end()) return std::nullopt;
  Waiter waiter = std::move(it->second);
  waiters_.erase(it);
  return waiter;
}

void Node::FailAllWaiters(const Status& status) {
  std::unordered_map<uint64_t, Waiter> waiters;
  {
    std::lock_guard lock(waiters_mutex_);
    waiters.swap(waiters_);
  }
  for (auto& [id, waiter] : waiters) {
    if (waiter.done) waiter.done(status, {});
    if (waiter.config_done) waiter.config_done(status, {});
  }
}

void Node::Propose(command::Command command, Done done) {
  if (failed_.load(std::memory_order_acquire)) {
    done(CurrentFailure(), {});
    return;
  }
  if (admission_) {
    Status admitted = admission_(command);
    if (!admitted.ok()) {
      done(admitted, {});
      return;
    }
  }
  if (options_.warm_proposed_keys) WarmKeysOf(command);
  const uint64_t request_id = NextRequestId();
  command.set_proposer_id(options_.member_id);
  command.set_request_id(request_id);
  std::string payload = command.SerializeAsString();
  Status refused;
  {
    std::lock_guard lock(inbox_mutex_);
    refused = InboxRefusal();
    if (refused.ok()) {
      CAIRN_CHECK(
          RegisterWaiter(request_id, Waiter{.done = std::move(done),
                                            .deadline_ms = NowMs() + options_.request_timeout_ms,
                                            .leader = leader_id_.load(std::memory_order_acquire)}));
      inbox_.proposals.emplace_back(request_id, std::move(payload));
      ++inbox_requests_;
    }
  }
  if (!refused.ok()) {
    done(refused, {});
    return;
  }
  inbox_cv_.notify_one();
}

Status Node::InboxRefusal() const {
  if (raft_stopping_) return StoppingError();
  if (inbox_requests_ >= options_.inbox_requests_max) return TooManyRequestsError();
  return Status::Ok();
}

void Node::ProposeConfigChange(raft::ConfigChangeType type, command::Member member,
                               ConfigDone done) {
  if (failed_.load(std::memory_order_acquire)) {
    done(CurrentFailure(), {});
    return;
  }
  const uint64_t request_id = NextRequestId();
  command::ConfigChangeContext context;
  context.set_request_id(request_id);
  context.set_proposer_id(options_.member_id);
  *context.mutable_member() = member;
  raft::ConfigChange change{
      .type = type, .node_id = member.id(), .context = context.SerializeAsString()};
  Status refused;
  {
    std::lock_guard lock(inbox_mutex_);
    if (raft_stopping_) {
      refused = StoppingError();
    } else {
      CAIRN_CHECK(
          RegisterWaiter(request_id, Waiter{.config_done = std::move(done),
                                            .deadline_ms = NowMs() + options_.request_timeout_ms,
                                            .leader = leader_id_.load(std::memory_order_acquire)}));
      inbox_.config_changes.emplace_back(request_id, std::move(change));
    }
  }
  if (!refused.ok()) {
    done(refused, {});
    return;
  }
  inbox_cv_.notify_one();
}

void Node::ReadIndex(ReadDone done) {
  if (failed_.load(std::memory_order_acquire)) {
    done(CurrentFailure());
    return;
  }
  // A sole voter that leads cannot be deposed, and it acknowledges writes only after applying
  // them: its applied state is already linearizable.
  if (single_voter_leader_.load(std::memory_order_acquire)) {
    done(Status::Ok());
    return;
  }
  Status refused;
  {
    std::lock_guard lock(inbox_mutex_);
    refused = InboxRefusal();
    if (refused.ok()) {
      inbox_.reads.push_back(PendingRead{std::move(done), NowMs() + options_.request_timeout_ms});
      ++inbox_requests_;
    }
  }
  if (!refused.ok()) {
    done(refused);
    return;
  }
  inbox_cv_.notify_one();
}

void Node::TransferLeadership(uint64_t transferee, ReadDone done) {
  {
    std::lock_guard lock(inbox_mutex_);
    if (!raft_stopping_) {
      inbox_.transfers.emplace_back(
          transferee, PendingRead{std::move(done), NowMs() + options_.request_timeout_ms});
      inbox_cv_.notify_one();
      return;
    }
  }
  done(StoppingError());
}

void Node::Step(raft::Message message) {
  {
    std::lock_guard lock(inbox_mutex_);
    if (!raft_stopping_ && inbox_.messages.size() < options_.inbox_messages_max) {
      inbox_.messages.push_back(std::move(message));
      message.snapshot.file.clear();
    }
  }
  inbox_cv_.notify_one();
  // A dropped snapshot's staged file is ours to delete (the leader sends another).
  if (!message.snapshot.file.empty()) (void)FileSystem()->DeleteFile(message.snapshot.file);
}

void Node::ReportSnapshot(uint64_t id, bool failed) {
  {
    std::lock_guard lock(inbox_mutex_);
    if (raft_stopping_) return;
    inbox_.snapshot_reports.emplace_back(id, failed);
  }
  inbox_cv_.notify_one();
}

SnapshotStats Node::GetSnapshotStats() const {
  std::lock_guard lock(snapshot_mutex_);
  return snapshot_stats_;
}

void Node::ReportUnreachable(uint64_t id) {
  {
    std::lock_guard lock(inbox_mutex_);
    if (raft_stopping_) return;
    inbox_.unreachable.push_back(id);
  }
  inbox_cv_.notify_one();
}

RaftStatus Node::GetRaftStatus() const {
  RaftStatus status;
  status.member_id = options_.member_id;
  status.leader_id = leader_id_.load();
  status.term = term_.load();
  status.commit_index = commit_index_.load();
  status.last_index = last_index_.load();
  status.applied_index = applier_->AppliedIndex();
  command::Member self;
  status.is_learner = membership_->Get(options_.member_id, &self) && self.is_learner();
  return status;
}

bool Node::WaitApplied(uint64_t index, int64_t timeout_ms) {
  std::unique_lock lock(mutex_);
  return applied_cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] {
    return applier_->AppliedIndex() >= index || failed_.load() || stopping_;
  }) && applier_->AppliedIndex() >= index;
}

// ---------------------------------------------------------------------------------------
// The raft thread.

void Node::RaftLoop() {
  const auto tick = std::chrono::milliseconds(options_.tick_ms);
  auto next_tick = std::chrono::steady_clock::now() + tick;
  bool first = true;  // the bootstrap entries apply (and a sole voter campaigns) at once
  while (true) {
    Inbox inbox;
    bool stopping = false;
    {
      std::unique_lock lock(inbox_mutex_);
      if (!first) {
        inbox_cv_.wait_until(lock, next_tick, [&] { return raft_stopping_ || !inbox_.Empty(); });
      }
      first = false;
      std::swap(inbox, inbox_);
      inbox_requests_ = 0;
      stopping = raft_stopping_;
    }
    const auto now = std::chrono::steady_clock::now();
    bool ticked = false;
    for (int ticks = 0; now >= next_tick; next_tick += tick) {
      // After a long stall (SIGSTOP, a slow disk) at most one election timeout of ticks.
      if (++ticks <= options_.election_ticks) raw_->Tick();
      ticked = true;
    }
    if (!failed_.load()) {
      Submit(inbox);
      HandleReadies();
      // A sole voter need not wait for an election timeout (its bootstrap entries may have
      // just made it one).
      if (leader_id_.load() == raft::kNoNode && raw_->raft().role() == raft::Role::kFollower &&
          IsSoleVoter(raw_->raft().config_state(), options_.member_id)) {
        (void)raw_->Campaign();
        HandleReadies();
      }
    }
    const uint64_t generation = membership_->generation();
    if (generation != reported_members_generation_) {
      reported_members_generation_ = generation;
      if (options_.on_members_changed) options_.on_members_changed(membership_->List());
    }
    if (ticked || stopping) ExpireRequests();
    if (stopping) break;
  }
  // Whatever is still waiting will not be answered by this member.
  for (auto& [context, reads] : reads_in_flight_) {
    for (PendingRead& read : reads) read.done(StoppingError());
  }
  reads_in_flight_.clear();
  for (auto& [transferee, transfer] : transfers_) transfer.done(StoppingError());
  transfers_.clear();
  std::lock_guard lock(inbox_mutex_);
  for (auto& [index, outcome] : inbox_.compactions) outcome->set_value(StoppingError());
  inbox_.compactions.clear();
}

void Node::Submit(Inbox& inbox) {
  // The install moved away the staged file of a snapshot it took (the last HandleReadies); the
  // files of snapshots Raft refused (stale, or already covered by the log) are left.
  for (const std::string& file : stepped_snapshot_files_) {
    if (FileSystem()->FileExists(file)) (void)FileSystem()->DeleteFile(file);
  }
  stepped_snapshot_files_.clear();
  for (raft::Message& message : inbox.messages) {
    if (!message.snapshot.file.empty()) stepped_snapshot_files_.push_back(message.snapshot.file);
    Status status = raw_->Step(std::move(message));
    if (!status.ok()) Logger()->debug("dropped a peer message: {}", status.ToString());
  }
  for (uint64_t id : inbox.unreachable) raw_->ReportUnreachable(id);
  for (auto [id, failed] : inbox.snapshot_reports) {
    Logger()->info("member {:x}: snapshot to {:x} {}", options_.member_id, id,
                   failed ? "failed" : "delivered");
    raw_->ReportSnapshot(id, failed);
    std::lock_guard lock(snapshot_mutex_);
    ++(failed ? snapshot_stats_.send_failures : snapshot_stats_.sent);
  }
  for (auto& [index, outcome] : inbox.compactions) {
    outcome->set_value(log_storage_->CompactTo(index));
    raft_log_first_index_.store(log_storage_->FirstIndex());
    log_cache_bytes_.store(log_storage_->cached_bytes(), std::memory_order_relaxed);
  }
  for (size_t start = 0; start < inbox.proposals.size(); start += raft::kProposalBatchEntriesMax) {
    const size_t end = std::min(inbox.proposals.size(), start + raft::kProposalBatchEntriesMax);
    std::vector<std::string> batch;
    batch.reserve(end - start);
    for (size_t i = start; i < end; ++i) batch.push_back(std::move(inbox.proposals[i].second));
    Status status = raw_->ProposeBatch(std::move(batch));
    if (status.ok()) continue;
    if (raft::IsProposalDropped(status)) status = NoLeaderError();
    for (size_t i = start; i < end; ++i) {
      if (auto waiter = TakeWaiter(inbox.proposals[i].first)) waiter->done(status, {});
    }
  }
  for (auto& [request_id, change] : inbox.config_changes) {
    Status status = raw_->ProposeConfigChange(change);
    if (status.ok()) continue;
    if (raft::IsProposalDropped(status)) status = NoLeaderError();
    if (status.code() == StatusCode::kFailedPrecondition) {
      status = Status::FailedPrecondition("etcdserver: unhealthy cluster");
    }
    if (auto waiter = TakeWaiter(request_id)) waiter->config_done(status, {});
  }
  if (!inbox.reads.empty()) {
    if (single_voter_leader_.load()) {
      for (PendingRead& read : inbox.reads) read.done(Status::Ok());
    } else {
      // Unique across members: the leader tells apart (and deduplicates) requests by context.
      std::string context =
          std::to_string(options_.member_id) + "/" + std::to_string(++read_context_counter_);
      Status status = raw_->ReadIndex(context);
      if (!status.ok()) {
        if (raft::IsProposalDropped(status)) status = NoLeaderError();
        for (PendingRead& read : inbox.reads) read.done(status);
      } else {
        reads_in_flight_[context] = std::move(inbox.reads);
      }
    }
  }
  for (auto& [transferee, transfer] : inbox.transfers) {
    if (leader_id_.load() == transferee) {
      transfer.done(Status::Ok());
      continue;
    }
    raw_->TransferLeader(transferee);
    transfers_.emplace_back(transferee, std::move(transfer));
  }
}

void Node::HandleReadies() {
  while (raw_->HasReady()) {
    raft::Ready ready = raw_->GetReady();
    Status status = HandleReady(ready);
    if (!status.ok()) {
      Fail(status);
      FailAllWaiters(CurrentFailure());
      return;  // never Advance past state that is not durable
    }
    raw_->Advance();
  }
}

Status Node::HandleReady(raft::Ready& ready) {
  if (ready.soft_state) OnSoftState(*ready.soft_state);
  if (soft_state_.role == raft::Role::kLeader) SendMessages(ready.messages, true);
  if (!ready.snapshot.IsEmpty()) {
    CAIRN_RETURN_IF_ERROR(InstallSnapshot(ready.snapshot).WithContext("snapshot install"));
  }
  if (!ready.entries.empty()) {
    CAIRN_RETURN_IF_ERROR(log_storage_->Append(ready.entries).WithContext("wal"));
    const auto sync_start = std::chrono::steady_clock::now();
    CAIRN_RETURN_IF_ERROR(log_storage_->Sync().WithContext("wal"));
    if (options_.on_wal_sync) {
      options_.on_wal_sync(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - sync_start).count(),
          ready.entries.size());
    }
    last_index_.store(log_storage_->LastIndex(), std::memory_order_release);
  }
  if (ready.hard_state) {
    CAIRN_RETURN_IF_ERROR(log_storage_->SaveHardState(*ready.hard_state).WithContext("raft"));
    commit_index_.store(ready.hard_state->commit, std::memory_order_release);
  }
  SendMessages(ready.messages, false);
  const uint64_t term = raw_->raft().term();
  term_.store(term, std::memory_order_release);
  if (term != reported_term_) {
    reported_term_ = term;
    if (options_.on_leader_change) options_.on_leader_change(soft_state_.lead, term);
  }
  ServeReadStates(ready.read_states);
  if (!ready.committed_entries.empty()) {
    {
      std::unique_lock lock(mutex_);
      queue_not_full_.wait(lock, [&] {
        return apply_queue_.size() < options_.apply_queue_entries_max || stopping_;
      });
      for (raft::Entry& entry : ready.committed_entries) apply_queue_.push_back(entry);
    }
    queue_not_empty_.notify_one();
    if (sole_member_leader_) {
      log_storage_->ReleaseCacheThrough(ready.committed_entries.back().index);
    }
    ApplyConfigChanges(ready.committed_entries);
  }
  log_cache_bytes_.store(log_storage_->cached_bytes(), std::memory_order_relaxed);
  return Status::Ok();
}

void Node::SendMessages(std::vector<raft::Message>& messages, bool leader_messages_only) {
  if (messages.empty()) return;
  std::vector<raft::Message> out;
  if (leader_messages_only) {
    auto early = std::stable_partition(messages.begin(), messages.end(),
                                       [](const auto& m) { return SendableBeforePersist(m.type); });
    out.assign(std::make_move_iterator(messages.begin()), std::make_move_iterator(early));
    messages.erase(messages.begin(), early);
  } else {
    out = std::move(messages);
    messages.clear();
  }
  if (!out.empty() && options_.send) options_.send(std::move(out));
}

void Node::ApplyConfigChanges(const std::vector<raft::Entry>& committed) {
  bool changed = false;
  for (const raft::Entry& entry : committed) {
    if (entry.type != raft::EntryType::kConfigChange) continue;
    // Raft must see the change only once it is applied (it takes effect then, as in etcd).
    bool accepted = false;
    {
      std::unique_lock lock(mutex_);
      applied_cv_.wait(lock, [&] {
        return config_change_applied_.contains(entry.index) || failed_.load() || stopping_;
      });
      auto it = config_change_applied_.find(entry.index);
      if (it == config_change_applied_.end()) return;  // failed or stopping
      accepted = it->second;
      config_change_applied_.erase(it);
    }
    raft::ConfigChange change;
    CAIRN_CHECK(raft::DecodeConfigChange(entry.data, &change));
    if (accepted) {
      raw_->ApplyConfigChange(change);
      changed = true;
    }
  }
  if (!changed) return;
  UpdateLeaderAlone(soft_state_.role == raft::Role::kLeader);
}

void Node::UpdateLeaderAlone(bool leader) {
  const raft::ConfigState config = raw_->raft().config_state();
  const bool sole_voter = leader && IsSoleVoter(config, options_.member_id);
  single_voter_leader_.store(sole_voter);
  sole_member_leader_ = sole_voter && config.learners.empty();
}

void Node::OnSoftState(const raft::SoftState& soft_state) {
  const bool leader_changed = soft_state.lead != soft_state_.lead;
  soft_state_ = soft_state;
  leader_id_.store(soft_state.lead, std::memory_order_release);
  UpdateLeaderAlone(soft_state.role == raft::Role::kLeader);
  if (leader_changed) {
    Logger()->info("member {:x}: leader is now {:x} at term {}", options_.member_id,
                   soft_state.lead, raw_->raft().term());
    reported_term_ = raw_->raft().term();
    if (options_.on_leader_change) options_.on_leader_change(soft_state.lead, reported_term_);
    for (auto it = transfers_.begin(); it != transfers_.end();) {
      if (it->first == soft_state.lead) {
        it->second.done(Status::Ok());
        it = transfers_.erase(it);
      } else {
        ++it;
      }
    }
  }
}

void Node::ServeReadStates(std::vector<raft::ReadState>& read_states) {
  for (raft::ReadState& state : read_states) {
    auto it = reads_in_flight_.find(state.context);
    if (it == reads_in_flight_.end()) continue;
    std::vector<PendingRead> reads = std::move(it->second);
    reads_in_flight_.erase(it);
    if (applier_->AppliedIndex() >= state.index) {
      ReleaseReads(std::move(reads));
      continue;
    }
    std::lock_guard lock(reads_mutex_);
    for (PendingRead& read : reads) reads_waiting_apply_.emplace(state.index, std::move(read));
  }
  // The apply thread may have passed the index between the check and the insertion.
  ServeAppliedReads(applier_->AppliedIndex());
}

void Node::ExpireRequests() {
  const int64_t now = NowMs();
  std::vector<Waiter> expired;
  {
    std::lock_guard lock(waiters_mutex_);
    TakeExpired(waiters_, now, &expired);
  }
  const uint64_t leader = leader_id_.load(std::memory_order_acquire);
  for (Waiter& waiter : expired) {
    const Status timeout = waiter.leader != leader ? LeaderFailTimeoutError() : TimeoutError();
    if (waiter.done) waiter.done(timeout, {});
    if (waiter.config_done) waiter.config_done(timeout, {});
  }
  std::vector<PendingRead> stale;
  for (auto it = reads_in_flight_.begin(); it != reads_in_flight_.end();) {
    std::vector<PendingRead>& reads = it->second;
    if (!reads.empty() && reads.front().deadline_ms <= now) {
      for (PendingRead& read : reads) stale.push_back(std::move(read));
      it = reads_in_flight_.erase(it);
    } else {
      ++it;
    }
  }
  TakeExpired(transfers_, now, &stale);
  {
    std::lock_guard lock(reads_mutex_);
    TakeExpired(reads_waiting_apply_, now, &stale);
  }
  for (PendingRead& read : stale) read.done(TimeoutError());
}

// ---------------------------------------------------------------------------------------
// The apply thread.

void Node::ApplyLoop() {
  std::vector<raft::Entry> taken;
  while (true) {
    taken.clear();
    {
      std::unique_lock lock(mutex_);
      queue_not_empty_.wait(lock, [&] { return stopping_ || !apply_queue_.empty(); });
      if (apply_queue_.empty()) return;  // stopping and drained
      while (!apply_queue_.empty() && taken.size() < options_.apply_batch_entries_max) {
        taken.push_back(std::move(apply_queue_.front()));
        apply_queue_.pop_front();
      }
      applying_ = true;
    }
    queue_not_full_.notify_all();
    ApplyEntries(taken);
    {
      std::lock_guard lock(mutex_);
      applying_ = false;
    }
    applied_cv_.notify_all();
    if (options_.checkpoint_interval_entries > 0 &&
        applier_->AppliedIndex() - checkpointed_index_.load() >=
            options_.checkpoint_interval_entries) {
      checkpoint_wanted_.notify_one();
    }
  }
}

void Node::ApplyEntries(std::vector<raft::Entry>& taken) {
  const size_t n = taken.size();
  std::vector<command::Command> commands(n);
  std::vector<raft::ConfigChange> changes(n);
  std::vector<command::ConfigChangeContext> contexts(n);
  std::vector<command::CommandResult> results(n);
  std::vector<Status> statuses(n);
  std::vector<Applier::Entry> entries(n);
  Status decoded;
  for (size_t i = 0; i < n && decoded.ok(); ++i) {
    const raft::Entry& entry = taken[i];
    entries[i] = {.index = entry.index, .result = &results[i], .status = &statuses[i]};
    if (entry.type == raft::EntryType::kConfigChange) {
      if (!raft::DecodeConfigChange(entry.data, &changes[i]) ||
          !contexts[i].ParseFromString(changes[i].context)) {
        decoded = Status::Corruption("log entry " + std::to_string(entry.index) +
                                     " is not a configuration change");
      }
      entries[i].config_change = &changes[i];
      entries[i].member = &contexts[i].member();
    } else if (!entry.data.empty()) {
      if (!commands[i].ParseFromString(entry.data)) {
        decoded = Status::Corruption("log entry " + std::to_string(entry.index) +
                                     " does not parse as a command");
      }
      entries[i].command = &commands[i];
    }
  }
  const auto apply_start = std::chrono::steady_clock::now();
  Status applied = decoded;
  if (applied.ok()) applied = failed_.load() ? CurrentFailure() : applier_->ApplyBatch(entries);
  if (!applied.ok()) {
    Fail(applied.WithContext("apply"));
    FailAllWaiters(CurrentFailure());
    applied_cv_.notify_all();
    return;
  }
  if (options_.on_apply_batch) {
    options_.on_apply_batch(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - apply_start).count(), n);
  }
  const uint64_t self = options_.member_id;
  bool config_changed = false;
  std::vector<Answer> answers;
  for (size_t i = 0; i < n; ++i) {
    if (entries[i].config_change != nullptr) {
      config_changed = true;
      if (contexts[i].proposer_id() == self) {
        if (auto waiter = TakeWaiter(contexts[i].request_id())) {
          waiter->config_done(statuses[i], membership_->List());
        }
      }
    } else if (entries[i].command != nullptr && commands[i].proposer_id() == self) {
      if (auto waiter = TakeWaiter(commands[i].request_id())) {
        answers.push_back(
            Answer{std::move(waiter->done), std::move(statuses[i]), std::move(results[i])});
      }
    }
  }
  if (!answers.empty()) ReleaseAnswers(std::move(answers));
  {
    std::lock_guard lock(mutex_);
    if (config_changed) {
      for (size_t i = 0; i < n; ++i) {
        if (entries[i].config_change != nullptr) {
          config_change_applied_[entries[i].index] = statuses[i].ok();
        }
      }
    }
  }
  applied_cv_.notify_all();
  ServeAppliedReads(applier_->AppliedIndex());
}

void Node::ServeAppliedReads(uint64_t applied) {
  std::vector<PendingRead> ready;
  {
    std::lock_guard lock(reads_mutex_);
    auto end = reads_waiting_apply_.upper_bound(applied);
    for (auto it = reads_waiting_apply_.begin(); it != end; ++it) {
      ready.push_back(std::move(it->second));
    }
    reads_waiting_apply_.erase(reads_waiting_apply_.begin(), end);
  }
  if (!ready.empty()) ReleaseReads(std::move(ready));
}

void Node::ReleaseReads(std::vector<PendingRead> reads) {
  // The reads run on the read threads: the raft and apply threads must not wait for them.
  {
    std::lock_guard lock(read_queue_mutex_);
    if (!read_threads_stopping_) {
      for (PendingRead& read : reads) read_queue_.push_back(std::move(read.done));
      read_queue_cv_.notify_all();
      return;
    }
  }
  for (PendingRead& read : reads) read.done(Status::Ok());
}

void Node::ReadLoop() {
  std::vector<ReadDone> taken;
  while (true) {
    {
      std::unique_lock lock(read_queue_mutex_);
      read_queue_cv_.wait(lock, [&] { return read_threads_stopping_ || !read_queue_.empty(); });
      if (read_queue_.empty()) return;  // stopping and drained
      const size_t n = std::min<size_t>(read_queue_.size(), kReadBatchMax);
      for (size_t i = 0; i < n; ++i) {
        taken.push_back(std::move(read_queue_.front()));
        read_queue_.pop_front();
      }
    }
    for (ReadDone& done : taken) done(Status::Ok());
    taken.clear();
  }
}

void Node::WarmKeysOf(const command::Command& command) {
  if (warm_paused_.load(std::memory_order_relaxed) &&
      warm_sample_counter_.fetch_add(1, std::memory_order_relaxed) % kWarmSampleEvery != 0) {
    return;
  }
  std::vector<std::string_view> keys;
  AddPrefetchKeys(command, &keys);
  if (keys.empty()) return;
  bool wake = false;
  {
    std::lock_guard lock(warm_mutex_);
    // Best effort: past this many the keys are left to the apply thread.
    if (warm_stopping_ || warm_keys_.size() >= kWarmKeysMax) return;
    warm_keys_.insert(warm_keys_.end(), keys.begin(), keys.end());
    wake = warm_idle_;
    warm_idle_ = false;
  }
  if (wake) warm_cv_.notify_one();  // a busy warm thread takes the keys on its next round
}

void Node::WarmLoop() {
  std::vector<std::string> taken;
  std::vector<std::string_view> views;
  // The current judgement window (NodeOptions::warm_check_keys).
  size_t window_keys = 0;
  size_t window_warmed = 0;
  while (true) {
    {
      std::unique_lock lock(warm_mutex_);
      if (warm_keys_.empty() && !warm_stopping_) {
        warm_idle_ = true;
        warm_cv_.wait(lock, [&] { return warm_stopping_ || !warm_keys_.empty(); });
      }
      if (warm_stopping_) return;
      taken.swap(warm_keys_);
    }
    views.assign(taken.begin(), taken.end());
    size_t warmed = 0;
    Status status = kv_->WarmLatest(views, &warmed);
    if (!status.ok()) Logger()->debug("warming proposed keys: {}", status.ToString());
    window_keys += views.size();
    window_warmed += status.ok() ? warmed : views.size();
    const bool paused = warm_paused_.load(std::memory_order_relaxed);
    const size_t check_keys = std::max<size_t>(
        1, paused ? options_.warm_check_keys / kWarmSampleEvery : options_.warm_check_keys);
    if (window_keys >= check_keys) {
      if (!paused && window_warmed * 256 <= window_keys) {
        warm_paused_.store(true, std::memory_order_relaxed);
        Logger()->debug("warm thread paused: {} of {} proposed keys needed reading into the cache",
                        window_warmed, window_keys);
      } else if (paused && window_warmed * 64 > window_keys) {
        warm_paused_.store(false, std::memory_order_relaxed);
        Logger()->debug("warm thread resumed: {} of {} sampled keys needed reading into the cache",
                        window_warmed, window_keys);
      }
      window_keys = 0;
      window_warmed = 0;
    }
    taken.clear();
  }
}

void Node::ReleaseAnswers(std::vector<Answer> answers) {
  {
    std::lock_guard lock(answer_mutex_);
    if (!answers_stopping_) {
      for (Answer& answer : answers) answer_queue_.push_back(std::move(answer));
      answer_cv_.notify_one();
      return;
    }
  }
  for (Answer& answer : answers) answer.done(answer.status, std::move(answer.result));
}

void Node::AnswerLoop() {
  std::deque<Answer> taken;
  while (true) {
    {
      std::unique_lock lock(answer_mutex_);
      answer_cv_.wait(lock, [&] { return answers_stopping_ || !answer_queue_.empty(); });
      if (answer_queue_.empty()) return;  // stopping and drained
      taken.swap(answer_queue_);
    }
    for (Answer& answer : taken) answer.done(answer.status, std::move(answer.result));
    taken.clear();
  }
}

// ---------------------------------------------------------------------------------------
// Failure, checkpoints, shutdown.

Status Node::CurrentFailure() {
  std::lock_guard<std::mutex> lock(mutex_);
  return failure_;
}

void Node::Fail(const Status& status) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (failed_.load()) return;
    failure_ = Status::Unavailable("node stopped accepting writes after a storage failure: " +
                                   status.ToString());
    failed_.store(true, std::memory_order_release);
    Logger()->error("{}", failure_.message());
  }
  applied_cv_.notify_all();
}

void Node::CheckpointLoop() {
  while (true) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      checkpoint_wanted_.wait(lock, [&] {
        return stopping_ || (options_.checkpoint_interval_entries > 0 &&
                             applier_->AppliedIndex() - checkpointed_index_.load() >=
                                 options_.checkpoint_interval_entries);
      });
      if (stopping_) return;
    }
    Status status = Checkpoint();
    if (!status.ok()) Logger()->warn("checkpoint failed: {}", status.ToString());
  }
}

Status Node::Checkpoint() {
  std::lock_guard<std::mutex> lock(checkpoint_mutex_);
  // Everything applied up to `covered` was written to the engine before Flush() starts, so
  // the flush makes it durable; the log entries before it are then redundant (the entry at
  // `covered` stays: its term marks the start of the log).
  const uint64_t covered = applier_->AppliedIndex();
  CAIRN_RETURN_IF_ERROR(engine_->Flush());
  uint64_t keep_from = covered;
  if (membership_->List().size() > 1) {
    keep_from = covered > options_.cluster_log_retention_entries
                    ? covered - options_.cluster_log_retention_entries
                    : 0;
  }
  if (keep_from > 0) {
    // The log belongs to the raft thread: it compacts, and this waits for the outcome.
    auto compacted = std::make_shared<std::promise<Status>>();
    std::future<Status> outcome = compacted->get_future();
    bool posted = false;
    {
      std::lock_guard inbox_lock(inbox_mutex_);
      if (!raft_stopping_) {
        inbox_.compactions.emplace_back(keep_from, compacted);
        posted = true;
      }
    }
    if (posted) {
      inbox_cv_.notify_one();
      CAIRN_RETURN_IF_ERROR(outcome.get());
    } else if (raft_thread_stopped_.load()) {
      CAIRN_RETURN_IF_ERROR(log_storage_->CompactTo(keep_from));
    }
  }
  checkpointed_index_.store(covered);
  return Status::Ok();
}

// ---------------------------------------------------------------------------------------
// Snapshot transfer.

env::FileSystem* Node::FileSystem() const {
  return options_.filesystem ? options_.filesystem : env::PosixFileSystem::Default();
}

raft::Snapshot Node::OutgoingSnapshot() {
  std::shared_ptr<const PreparedSnapshot> prepared;
  {
    std::lock_guard lock(snapshot_mutex_);
    prepared = prepared_snapshot_;
  }
  // Fresh while the log still holds what follows it (its index is at least the compacted
  // index): the follower continues from the log after installing it.
  if (prepared && prepared->index + 1 >= log_storage_->FirstIndex()) {
    Result<uint64_t> term = log_storage_->Term(prepared->index);
    if (term.ok()) {
      return raft::Snapshot{
          .metadata = {.index = prepared->index, .term = *term, .config = prepared->config},
          .file = prepared->path};
    }
  }
  {
    std::lock_guard lock(snapshot_mutex_);
    if (snapshot_wanted_) return {};
    snapshot_wanted_ = true;
  }
  snapshot_cv_.notify_one();
  return {};  // raft retries (the follower stays in probe) until one is prepared
}

void Node::SnapshotLoop() {
  while (true) {
    {
      std::unique_lock lock(snapshot_mutex_);
      snapshot_cv_.wait(lock, [&] { return snapshot_stopping_ || snapshot_wanted_; });
      if (snapshot_stopping_) return;
    }
    const auto start = std::chrono::steady_clock::now();
    Result<std::shared_ptr<const PreparedSnapshot>> produced = ProduceSnapshot();
    std::lock_guard lock(snapshot_mutex_);
    snapshot_wanted_ = false;
    if (!produced.ok()) {
      Logger()->warn("producing a snapshot for a follower failed: {}",
                     produced.status().ToString());
      continue;
    }
    // The replaced file goes: a transfer reading it keeps its open file; one that has not
    // opened it yet fails, and Raft retries with the new one.
    if (prepared_snapshot_ && prepared_snapshot_->path != (*produced)->path) {
      (void)FileSystem()->DeleteFile(prepared_snapshot_->path);
    }
    prepared_snapshot_ = *produced;
    ++snapshot_stats_.produced;
    Logger()->info("member {:x}: prepared a snapshot at index {} ({} bytes) in {:.3f} s",
                   options_.member_id, prepared_snapshot_->index, prepared_snapshot_->size_bytes,
                   std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
}

Result<std::shared_ptr<const Node::PreparedSnapshot>> Node::ProduceSnapshot() {
  env::FileSystem* fs = FileSystem();
  const std::string dir = SnapshotDir(options_.data_dir);
  CAIRN_RETURN_IF_ERROR(fs->CreateDirs(dir));
  const std::string temporary = OutgoingSnapshotTemporaryPath(options_.data_dir);
  auto cancelled = [this] {
    std::lock_guard lock(snapshot_mutex_);
    return snapshot_stopping_;
  };
  // One consistent engine snapshot: the applied index, the membership at that index and the
  // state all come from it. The file is synced; it is read a chunk at a time, here and by the
  // transport, and never held in memory whole.
  CAIRN_ASSIGN_OR_RETURN(SnapshotInfo info, WriteSnapshot(engine_.get(), fs, temporary, cancelled));
  auto prepared = std::make_shared<PreparedSnapshot>();
  prepared->index = info.applied_index;
  prepared->size_bytes = info.size_bytes;
  auto members = [&](storage::Family family, const std::string& key,
                     const std::string& value) -> Status {
    if (family != storage::Family::kMeta || !key.starts_with(kMemberKeyPrefix)) {
      return Status::Ok();
    }
    command::Member member;
    if (!member.ParseFromString(value) || member.id() == raft::kNoNode) {
      return Status::Corruption("snapshot: malformed member record " + key);
    }
    // Member keys are ordered by id (fixed-width hex): the lists come out sorted.
    (member.is_learner() ? prepared->config.learners : prepared->config.voters)
        .push_back(member.id());
    return Status::Ok();
  };
  Result<SnapshotInfo> read = ReadSnapshotRecords(fs, temporary, members);
  Status status = read.ok() ? Status::Ok() : read.status();
  if (status.ok() && (read->size_bytes != info.size_bytes || prepared->index == 0)) {
    status = Status::Corruption("snapshot: " + temporary + " changed while it was read");
  }
  if (status.ok()) {
    prepared->path = OutgoingSnapshotPath(options_.data_dir, prepared->index);
    status = fs->RenameFile(temporary, prepared->path);
  }
  if (!status.ok()) {
    (void)fs->DeleteFile(temporary);
    return status;
  }
  return std::shared_ptr<const PreparedSnapshot>(std::move(prepared));
}

Status Node::InstallSnapshot(const raft::Snapshot& snapshot) {
  const uint64_t index = snapshot.metadata.index;
  Logger()->info(
      "member {:x}: installing the snapshot at index {} (term {}, {}) from the leader; applied "
      "index {}",
      options_.member_id, index, snapshot.metadata.term,
      snapshot.file.empty() ? std::to_string(snapshot.data.size()) + " bytes" : snapshot.file,
      applier_->AppliedIndex());
  auto after_step = [&](int step) -> Status {
    if (!options_.snapshot_install_test_hook || options_.snapshot_install_test_hook(step)) {
      return Status::Ok();
    }
    return Status::Aborted("test: snapshot install stopped after step " + std::to_string(step));
  };
  env::FileSystem* fs = FileSystem();
  CAIRN_RETURN_IF_ERROR(StageSnapshotInstall(fs, options_.data_dir, snapshot));  // steps 1, 2
  CAIRN_RETURN_IF_ERROR(after_step(2));
  {
    // Whatever was committed before the snapshot is applied first; then the engine is ours.
    std::unique_lock lock(mutex_);
    applied_cv_.wait(
        lock, [&] { return (apply_queue_.empty() && !applying_) || stopping_ || failed_.load(); });
    if (!apply_queue_.empty() || applying_) return StoppingError();
  }
  if (failed_.load()) return CurrentFailure();
  const InstallMarker marker{.index = index, .term = snapshot.metadata.term};
  // No projection page may straddle the replacement (event_state.h).
  std::unique_lock local_writes(events_->local_writes_mutex());
  CAIRN_ASSIGN_OR_RETURN(
      SnapshotInfo info,
      CompleteSnapshotInstall(
          engine_.get(), fs, options_.data_dir, marker,
          [&] { return log_storage_->ResetToSnapshot(index, snapshot.metadata.term); },
          after_step));
  CAIRN_RETURN_IF_ERROR(ReloadState());
  local_writes.unlock();
  CAIRN_RETURN_IF_ERROR(after_step(5));
  if (applier_->AppliedIndex() != index || membership_->Config() != snapshot.metadata.config) {
    return Status::Corruption("the installed snapshot's state does not match its metadata (index " +
                              std::to_string(index) + ")");
  }
  checkpointed_index_.store(index);
  last_index_.store(log_storage_->LastIndex(), std::memory_order_release);
  raft_log_first_index_.store(log_storage_->FirstIndex());
  commit_index_.store(std::max(commit_index_.load(), index), std::memory_order_release);
  {
    std::lock_guard lock(snapshot_mutex_);
    ++snapshot_stats_.installed;
    snapshot_stats_.last_installed_index = index;
  }
  Logger()->info("member {:x}: installed the snapshot at index {} ({} records, revision {})",
                 options_.member_id, index, info.records, kv_->CurrentRevision());
  if (options_.on_snapshot_installed) options_.on_snapshot_installed(index, kv_->CurrentRevision());
  applied_cv_.notify_all();
  ServeAppliedReads(index);
  return Status::Ok();
}

Status Node::ReloadState() {
  CAIRN_RETURN_IF_ERROR(kv_->Reload());
  CAIRN_RETURN_IF_ERROR(events_->Reload());
  CAIRN_RETURN_IF_ERROR(alarms_->Reload());
  CAIRN_RETURN_IF_ERROR(membership_->Reload());
  // Leases, projection definitions and upcasters read the engine on every call.
  return applier_->Reload();
}

uint64_t Node::LogFirstIndex() const { return wal_->FirstIndex(); }

Status Node::Close() {
  if (closed_) return Status::Ok();
  closed_ = true;
  // The raft thread submits what is queued (a sole voter commits it at once), then stops.
  {
    std::lock_guard lock(inbox_mutex_);
    raft_stopping_ = true;
  }
  inbox_cv_.notify_all();
  if (raft_thread_.joinable()) raft_thread_.join();
  raft_thread_stopped_.store(true);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  queue_not_empty_.notify_all();
  queue_not_full_.notify_all();
  applied_cv_.notify_all();
  checkpoint_wanted_.notify_all();
  if (apply_thread_.joinable()) apply_thread_.join();
  if (checkpoint_thread_.joinable()) checkpoint_thread_.join();
  {
    std::lock_guard lock(snapshot_mutex_);
    snapshot_stopping_ = true;
  }
  snapshot_cv_.notify_all();
  if (snapshot_thread_.joinable()) snapshot_thread_.join();
  {
    std::lock_guard lock(warm_mutex_);
    warm_stopping_ = true;
  }
  warm_cv_.notify_all();
  if (warm_thread_.joinable()) warm_thread_.join();
  {
    std::lock_guard lock(read_queue_mutex_);
    read_threads_stopping_ = true;
  }
  read_queue_cv_.notify_all();
  for (std::thread& thread : read_threads_) thread.join();  // they drain the queue first
  read_threads_.clear();
  {
    std::lock_guard lock(answer_mutex_);
    answers_stopping_ = true;
  }
  answer_cv_.notify_all();
  if (answer_thread_.joinable()) answer_thread_.join();  // it drains the queue first
  FailAllWaiters(StoppingError());
  {
    std::lock_guard lock(reads_mutex_);
    for (auto& [index, read] : reads_waiting_apply_) read.done(StoppingError());
    reads_waiting_apply_.clear();
  }
  if (failed_.load()) return CurrentFailure();
  if (!log_storage_) return Status::Ok();  // Open failed part way: nothing was written
  if (options_.checkpoint_interval_entries == 0) return engine_->Flush();  // keep the whole log
  return Checkpoint();
}

Node::~Node() {
  Status status = Close();
  if (!status.ok()) Logger()->warn("close: {}", status.ToString());
}

}  // namespace cairn::node
