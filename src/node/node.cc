#include "src/node/node.h"

#include <chrono>
#include <vector>

#include "src/base/logging.h"
#include "src/env/posix_file_system.h"
#include "src/storage/memory_engine.h"
#include "src/storage/rocksdb_engine.h"

namespace cairn::node {
namespace {

std::shared_ptr<spdlog::logger> Logger() {
  static auto logger = log::Get("node");
  return logger;
}

}  // namespace

Result<std::unique_ptr<Node>> Node::Open(NodeOptions options) {
  if (options.data_dir.empty()) return Status::InvalidArgument("node: data_dir is required");
  std::unique_ptr<Node> node(new Node(std::move(options)));
  CAIRN_RETURN_IF_ERROR(node->OpenParts());
  CAIRN_RETURN_IF_ERROR(node->Replay());
  node->committer_ =
      std::make_unique<wal::GroupCommitter>(node->wal_.get(), node->options_.group_commit);
  node->checkpointed_index_ = node->applier_->AppliedIndex();
  node->apply_thread_ = std::thread([n = node.get()] { n->ApplyLoop(); });
  node->checkpoint_thread_ = std::thread([n = node.get()] { n->CheckpointLoop(); });
  return node;
}

Status Node::OpenParts() {
  env::FileSystem* fs = options_.filesystem ? options_.filesystem : env::PosixFileSystem::Default();
  CAIRN_RETURN_IF_ERROR(fs->CreateDirs(options_.data_dir));
  filter_ = std::make_shared<mvcc::HistoryCompactionFilterFactory>();
  storage::EngineOptions engine_options = options_.engine;
  engine_options.path = options_.data_dir + "/state";
  engine_options.compaction_filter_factory = filter_;
  if (options_.memory_engine) {
    engine_ = std::make_unique<storage::MemoryEngine>(engine_options);
  } else {
    CAIRN_ASSIGN_OR_RETURN(engine_, storage::RocksDbEngine::Open(engine_options));
  }
  CAIRN_ASSIGN_OR_RETURN(kv_, mvcc::KvState::Open(engine_.get(), filter_, options_.kv));
  leases_ = std::make_unique<lease::LeaseState>(engine_.get(), kv_.get());
  kv_->set_lease_index(leases_.get());
  CAIRN_ASSIGN_OR_RETURN(applier_, Applier::Open(engine_.get(), kv_.get(), options_.event_sink));
  applier_->set_leases(leases_.get());
  CAIRN_ASSIGN_OR_RETURN(alarms_, AlarmState::Open(engine_.get()));
  applier_->set_alarms(alarms_.get());
  CAIRN_ASSIGN_OR_RETURN(wal_, wal::Wal::Open(fs, options_.data_dir + "/wal", options_.wal));
  const wal::RecoveryInfo& recovery = wal_->recovery();
  if (recovery.tail_truncated) {
    Logger()->warn("wal: cut a torn tail of {} bytes at {}:{} (never acknowledged)",
                   recovery.truncated_bytes, recovery.truncated_segment, recovery.truncated_offset);
  }
  return Status::Ok();
}

Status Node::Replay() {
  const uint64_t applied = applier_->AppliedIndex();
  const uint64_t first = wal_->FirstIndex();
  const uint64_t last = wal_->LastIndex();
  if (last < applied) {
    return Status::Corruption("wal ends at index " + std::to_string(last) +
                              " but the state was applied up to index " + std::to_string(applied) +
                              ": the log lost acknowledged entries");
  }
  if (last > applied && first > applied + 1) {
    return Status::Corruption("wal starts at index " + std::to_string(first) +
                              " but the state was applied only up to index " +
                              std::to_string(applied));
  }
  if (last == applied) return Status::Ok();
  Logger()->info("replaying wal entries {}..{}", applied + 1, last);

  std::vector<command::Command> commands;
  std::vector<command::CommandResult> results;
  std::vector<Status> statuses;
  uint64_t batch_first = applied + 1;
  auto flush_batch = [&]() -> Status {
    std::vector<Applier::Entry> entries(commands.size());
    results.assign(commands.size(), {});
    statuses.assign(commands.size(), Status());
    for (size_t i = 0; i < commands.size(); ++i) {
      entries[i] = {batch_first + i, &commands[i], &results[i], &statuses[i]};
    }
    CAIRN_RETURN_IF_ERROR(applier_->ApplyBatch(entries));
    batch_first += commands.size();
    commands.clear();
    return Status::Ok();
  };
  Status status = wal_->ReadFrom(applied + 1, [&](uint64_t index, std::string_view payload) {
    CAIRN_CHECK(index == batch_first + commands.size());
    command::Command command;
    if (!command.ParseFromArray(payload.data(), static_cast<int>(payload.size()))) {
      return Status::Corruption("wal entry " + std::to_string(index) +
                                " does not parse as a command");
    }
    commands.push_back(std::move(command));
    if (commands.size() >= options_.apply_batch_entries_max) return flush_batch();
    return Status::Ok();
  });
  CAIRN_RETURN_IF_ERROR(status);
  CAIRN_RETURN_IF_ERROR(flush_batch());
  if (applier_->AppliedIndex() != last) {
    return Status::Corruption("replay stopped at index " +
                              std::to_string(applier_->AppliedIndex()) + ", wal ends at " +
                              std::to_string(last));
  }
  return Status::Ok();
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
  auto* proposal = new Proposal{std::move(command), std::move(done)};
  std::string payload = proposal->command.SerializeAsString();
  Status submitted = committer_->Submit(std::move(payload),
                                        [this, proposal](const Status& status, uint64_t index) {
                                          OnDurable(proposal, status, index);
                                        });
  if (!submitted.ok()) {
    proposal->done(submitted, {});
    delete proposal;
  }
}

void Node::OnDurable(Proposal* proposal, const Status& status, uint64_t index) {
  if (!status.ok()) Fail(status.WithContext("wal"));
  if (failed_.load(std::memory_order_acquire)) {
    proposal->done(CurrentFailure(), {});
    delete proposal;
    return;
  }
  proposal->index = index;
  std::unique_lock<std::mutex> lock(mutex_);
  queue_not_full_.wait(lock,
                       [&] { return apply_queue_.size() < options_.apply_queue_entries_max; });
  apply_queue_.push_back(proposal);
  queue_not_empty_.notify_one();
}

Status Node::CurrentFailure() {
  std::lock_guard<std::mutex> lock(mutex_);
  return failure_;
}

void Node::Fail(const Status& status) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (failed_.load()) return;
  failure_ = Status::Unavailable("node stopped accepting writes after a storage failure: " +
                                 status.ToString());
  failed_.store(true, std::memory_order_release);
  Logger()->error("{}", failure_.message());
}

void Node::ApplyLoop() {
  std::vector<Proposal*> taken;
  std::vector<Applier::Entry> entries;
  std::vector<command::CommandResult> results;
  std::vector<Status> statuses;
  while (true) {
    taken.clear();
    {
      std::unique_lock<std::mutex> lock(mutex_);
      queue_not_empty_.wait(lock, [&] { return stopping_ || !apply_queue_.empty(); });
      if (apply_queue_.empty()) return;  // stopping and drained
      while (!apply_queue_.empty() && taken.size() < options_.apply_batch_entries_max) {
        taken.push_back(apply_queue_.front());
        apply_queue_.pop_front();
      }
      queue_not_full_.notify_all();
    }
    entries.resize(taken.size());
    results.assign(taken.size(), {});
    statuses.assign(taken.size(), Status());
    for (size_t i = 0; i < taken.size(); ++i) {
      entries[i] = {taken[i]->index, &taken[i]->command, &results[i], &statuses[i]};
    }
    const auto apply_start = std::chrono::steady_clock::now();
    Status applied =
        failed_.load() ? Status::Unavailable("node failed") : applier_->ApplyBatch(entries);
    if (applied.ok() && options_.on_apply_batch) {
      options_.on_apply_batch(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - apply_start).count(),
          entries.size());
    }
    if (!applied.ok()) Fail(applied.WithContext("apply"));
    for (size_t i = 0; i < taken.size(); ++i) {
      if (applied.ok()) {
        taken[i]->done(statuses[i], std::move(results[i]));
      } else {
        taken[i]->done(CurrentFailure(), {});
      }
      delete taken[i];
    }
    if (options_.checkpoint_interval_entries > 0 &&
        applier_->AppliedIndex() - checkpointed_index_.load() >=
            options_.checkpoint_interval_entries) {
      checkpoint_wanted_.notify_one();
    }
  }
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
  // the flush makes it durable; the log entries up to it are then redundant.
  const uint64_t covered = applier_->AppliedIndex();
  CAIRN_RETURN_IF_ERROR(engine_->Flush());
  CAIRN_RETURN_IF_ERROR(committer_->RunExclusive(
      [covered](wal::Wal* wal) { return wal->TruncatePrefix(covered + 1); }));
  checkpointed_index_.store(covered);
  return Status::Ok();
}

uint64_t Node::LogFirstIndex() const { return wal_->FirstIndex(); }

Status Node::Close() {
  if (closed_) return Status::Ok();
  closed_ = true;
  // Drain: the committer finishes queued entries (their callbacks enqueue for apply), then
  // the apply thread drains the queue and exits.
  if (committer_) committer_->Stop();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  queue_not_empty_.notify_all();
  checkpoint_wanted_.notify_all();
  if (apply_thread_.joinable()) apply_thread_.join();
  if (checkpoint_thread_.joinable()) checkpoint_thread_.join();
  if (failed_.load()) return CurrentFailure();
  if (!committer_) return Status::Ok();  // Open failed part way: nothing was written
  if (options_.checkpoint_interval_entries == 0) return engine_->Flush();  // keep the whole log
  return Checkpoint();
}

Node::~Node() {
  Status status = Close();
  if (!status.ok()) Logger()->warn("close: {}", status.ToString());
}

}  // namespace cairn::node
