#include "tests/sim/node_simulation.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <deque>
#include <sstream>

#include "cairn/command.pb.h"
#include "src/env/fault_injection_file_system.h"
#include "src/lease/lease_state.h"
#include "src/mvcc/kv_state.h"
#include "src/node/alarm_state.h"
#include "src/node/applier.h"
#include "src/node/membership.h"
#include "src/node/node.h"
#include "src/node/raft_log_storage.h"
#include "src/storage/memory_engine.h"
#include "src/wal/wal.h"
#include "tests/sim/sim_support.h"

namespace cairn::node::sim {

namespace {

constexpr uint64_t kTickMs = 10;
constexpr int kElectionTicks = 10;
// Bound on Readys handled per member per simulated millisecond.
constexpr int kReadiesPerStepMax = 64;
// A restarted process never sees a message sent to its previous incarnation: the transport's
// streams die with the process. Restarting later than the longest message delay models that
// (ReadIndex contexts, for one, start again from 1 after a restart).
constexpr uint64_t kRestartDelayMsMin = 50;
constexpr uint64_t kRestartDelayMsMax = 1000;
// NodeOptions::inbox_messages_max: peer messages queued beyond it are dropped.
constexpr size_t kInboxMessagesMax = 16384;
constexpr uint64_t kClientPauseMsMax = 20;
constexpr size_t kScratchKeys = 4;

using sim_support::HashBytes;
using sim_support::Mix;

template <typename T>
T Pick(env::Random& random, std::initializer_list<T> choices) {
  return *(choices.begin() + random.Uniform(choices.size()));
}

// Node.cc: messages a leader may send before its own entries are durable.
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

std::string Id(uint64_t id) { return std::to_string(id); }

}  // namespace

std::string NodeSimulationParameters::ToString() const {
  std::ostringstream out;
  out << "nodes=" << node_count << " drop=" << drop_probability
      << " duplicate=" << duplicate_probability << " delay_ms_max=" << delay_ms_max
      << " disk_latency_ms_max=" << disk_latency_ms_max << " apply_lag_ms_max=" << apply_lag_ms_max
      << " partition_per_ms=" << partition_per_ms_probability
      << " crash_per_ms=" << crash_per_ms_probability
      << " leader_crash_per_ms=" << leader_crash_per_ms_probability
      << " mid_write_crash_per_ms=" << mid_write_crash_per_ms_probability
      << " power_loss_per_ms=" << power_loss_per_ms_probability
      << " torn_write=" << torn_write_probability
      << " checkpoint_interval=" << checkpoint_interval_entries
      << " log_retention=" << log_retention_entries << " wal_segment=" << wal_segment_size_bytes
      << " clients=" << client_count << " keys=" << key_count
      << " request_timeout_ms=" << request_timeout_ms
      << " response_loss=" << response_loss_probability;
  return out.str();
}

struct NodeSimulation::Member {
  raft::NodeId id = raft::kNoNode;
  size_t position = 0;
  std::string data_dir;
  uint64_t tick_phase_ms = 0;

  // The disk: survives crashes.
  env::FaultInjectionFileSystem fs;
  std::shared_ptr<mvcc::HistoryCompactionFilterFactory> filter;
  std::unique_ptr<storage::MemoryEngine> engine;
  // Power loss inside a file operation: the mutating_operations-th one fails, and every later
  // one, until the member crashes (0: not armed).
  uint64_t mutating_operations = 0;
  uint64_t power_loss_at_operation = 0;
  bool power_lost = false;
  // What this member made durable, checked when it restarts.
  bool member_id_written = false;
  raft::HardState saved_hard_state;  // term and vote as the hard state file holds them
  uint64_t durable_last_index = 0;   // synced and not truncated since
  uint64_t durable_last_term = 0;

  // The process: lost on a crash.
  bool up = false;
  uint64_t restart_at_ms = 0;
  std::unique_ptr<mvcc::KvState> kv;
  std::unique_ptr<lease::LeaseState> leases;
  std::unique_ptr<AlarmState> alarms;
  std::unique_ptr<Membership> membership;
  std::unique_ptr<Applier> applier;
  std::unique_ptr<wal::Wal> wal;
  std::unique_ptr<RaftLogStorage> log_storage;
  std::unique_ptr<env::Random> random;
  std::unique_ptr<raft::RawNode> raw;
  raft::SoftState soft_state;
  // The Ready being written: its entries are appended (not yet synced) until ready_done_ms.
  std::optional<raft::Ready> ready;
  uint64_t ready_done_ms = 0;
  int ticks_pending = 0;
  // The raft thread's inbox, taken while no Ready is being written.
  std::vector<raft::Message> inbox_messages;
  std::vector<Proposal> inbox_proposals;
  std::vector<ClientRef> inbox_reads;
  raft::NodeId inbox_transfer = raft::kNoNode;
  uint64_t compact_to = 0;  // a checkpoint's log compaction, run by the raft thread
  // Requests waiting here.
  std::map<uint64_t, ClientRef> waiters;  // by request id
  uint64_t read_context_counter = 0;
  std::map<std::string, std::vector<ClientRef>> reads_in_flight;  // by ReadIndex context
  std::multimap<uint64_t, ClientRef> reads_waiting_apply;         // by read index
  // The apply thread's queue.
  std::deque<raft::Entry> apply_queue;
  uint64_t apply_at_ms = 0;
  std::map<uint64_t, bool> config_change_applied;  // index -> accepted
  uint64_t checkpointed_index = 0;
  uint64_t state_hash = 0;  // the applied_ chain at the applied index
  uint64_t applied_before_crash = 0;

  uint64_t AppliedIndex() const { return applier ? applier->AppliedIndex() : 0; }
};

struct NodeSimulation::Client {
  size_t index = 0;
  bool pending = false;
  uint64_t serial = 0;
  std::optional<checker::Recorder::Handle> handle;  // none: an unrecorded scratch request
  checker::OpKind kind = checker::OpKind::kGet;
  std::string key;
  bool write = false;
  bool final_request = false;  // the recovery phase's write
  checker::Outcome last_outcome = checker::Outcome::kIndeterminate;
  uint64_t deadline_ms = 0;
  uint64_t next_request_ms = 0;
  uint64_t sequence = 0;
  std::map<std::string, int64_t> last_mod_revision;  // for the next Cas; 0: absent/unknown
};

NodeSimulation::NodeSimulation(uint64_t seed, uint64_t fault_phase_ms, uint64_t liveness_ms_max)
    : fault_phase_ms_(fault_phase_ms), liveness_ms_max_(liveness_ms_max), random_(seed) {
  NodeSimulationParameters& p = parameters_;
  p.node_count = random_.Bernoulli(0.5) ? 3 : 5;
  p.drop_probability = Pick(random_, {0.0, 0.01, 0.05, 0.1});
  p.duplicate_probability = Pick(random_, {0.0, 0.01, 0.05});
  p.delay_ms_max = Pick<uint64_t>(random_, {1, 5, 20, 40});
  p.disk_latency_ms_max = Pick<uint64_t>(random_, {0, 2, 10, 30});
  p.apply_lag_ms_max = Pick<uint64_t>(random_, {0, 3, 20});
  p.partition_per_ms_probability = Pick(random_, {0.0, 1.0 / 2000, 1.0 / 700});
  p.crash_per_ms_probability = Pick(random_, {0.0, 1.0 / 2000, 1.0 / 700});
  p.leader_crash_per_ms_probability = Pick(random_, {0.0, 1.0 / 1500, 1.0 / 500});
  p.mid_write_crash_per_ms_probability = Pick(random_, {0.0, 1.0 / 1000, 1.0 / 300});
  p.power_loss_per_ms_probability = Pick(random_, {0.0, 1.0 / 1000, 1.0 / 300});
  p.torn_write_probability = Pick(random_, {0.0, 0.5, 1.0});
  p.checkpoint_interval_entries = Pick<uint64_t>(random_, {10, 50, 200, 1'000'000});
  p.log_retention_entries = Pick<uint64_t>(random_, {20, 300, 1'000'000});
  p.wal_segment_size_bytes = Pick<size_t>(random_, {4096, 16384});
  p.client_count = Pick<size_t>(random_, {3, 5, 8});
  p.key_count = Pick<size_t>(random_, {3, 6, 10});
  p.request_timeout_ms = Pick<uint64_t>(random_, {300, 1000});
  p.response_loss_probability = Pick(random_, {0.0, 0.02});

  recorder_ = std::make_unique<checker::Recorder>([this] { return NowNs(); });
  partition_group_.assign(p.node_count, 0);
  for (size_t i = 0; i < p.node_count; ++i) {
    auto member = std::make_unique<Member>();
    member->id = i + 1;
    member->position = i;
    member->data_dir = "/member" + Id(member->id);
    member->tick_phase_ms = random_.Uniform(kTickMs);
    Member* raw_member = member.get();
    member->fs.SetHook([raw_member](env::FileOperation operation, const std::string& path) {
      return PowerLossHook(*raw_member, operation, path);
    });
    // Now and then the power fails during a member's first start (bootstrap).
    if (random_.Bernoulli(p.power_loss_per_ms_probability * 100)) {
      member->power_loss_at_operation = 1 + random_.Uniform(40);
    }
    members_.push_back(std::move(member));
  }
  for (size_t i = 0; i < p.client_count; ++i) {
    auto client = std::make_unique<Client>();
    client->index = i;
    clients_.push_back(std::move(client));
  }
}

NodeSimulation::~NodeSimulation() = default;

Status NodeSimulation::PowerLossHook(Member& m, env::FileOperation operation,
                                     const std::string& path) {
  switch (operation) {
    case env::FileOperation::kNewReadableFile:
    case env::FileOperation::kRead:
    case env::FileOperation::kGetFileSize:
    case env::FileOperation::kGetChildren:
    case env::FileOperation::kClose:
      return Status::Ok();  // changes nothing on disk
    default:
      break;
  }
  ++m.mutating_operations;
  if (m.power_loss_at_operation != 0 && m.mutating_operations >= m.power_loss_at_operation) {
    m.power_lost = true;
  }
  if (!m.power_lost) return Status::Ok();
  return Status::IoError("simulated power loss: " + std::string(FileOperationName(operation)) +
                         " " + path);
}

bool NodeSimulation::CrashIfPowerLost(Member& m) {
  if (!m.power_lost) return false;
  ++result_.power_losses;
  Trace(now_ms_, 16, m.id, m.mutating_operations);
  CrashMember(m);
  return true;
}

checker::History NodeSimulation::history() const { return recorder_->Snapshot(); }

int64_t NodeSimulation::NowNs() {
  CAIRN_CHECK(now_ns_offset_ + 1 < 1'000'000);
  return static_cast<int64_t>(now_ms_ * 1'000'000 + ++now_ns_offset_);
}

void NodeSimulation::Fail(const std::string& what) {
  if (!result_.ok) return;
  result_.ok = false;
  result_.failure = "t=" + std::to_string(now_ms_) + "ms: " + what;
}

void NodeSimulation::Trace(uint64_t a, uint64_t b, uint64_t c, uint64_t d) {
  result_.trace_hash = Mix(Mix(Mix(Mix(result_.trace_hash, a), b), c), d);
}

// ---------------------------------------------------------------------------------------
// Starting, crashing and restarting members.

Status NodeSimulation::OpenMember(Member& m) {
  // Node::OpenParts.
  CAIRN_RETURN_IF_ERROR(m.fs.CreateDirs(m.data_dir));
  if (m.engine == nullptr) {
    m.filter = std::make_shared<mvcc::HistoryCompactionFilterFactory>();
    storage::EngineOptions engine_options;
    engine_options.path = m.data_dir + "/state";
    engine_options.compaction_filter_factory = m.filter;
    m.engine = std::make_unique<storage::MemoryEngine>(engine_options);
  }
  CAIRN_ASSIGN_OR_RETURN(m.kv, mvcc::KvState::Open(m.engine.get(), m.filter));
  m.leases = std::make_unique<lease::LeaseState>(m.engine.get(), m.kv.get());
  m.kv->set_lease_index(m.leases.get());
  CAIRN_ASSIGN_OR_RETURN(m.applier, Applier::Open(m.engine.get(), m.kv.get()));
  m.applier->set_leases(m.leases.get());
  CAIRN_ASSIGN_OR_RETURN(m.alarms, AlarmState::Open(m.engine.get()));
  m.applier->set_alarms(m.alarms.get());
  CAIRN_ASSIGN_OR_RETURN(m.membership, Membership::Open(m.engine.get()));
  m.applier->set_membership(m.membership.get());
  wal::WalOptions wal_options;
  wal_options.segment_size_bytes = parameters_.wal_segment_size_bytes;
  CAIRN_ASSIGN_OR_RETURN(m.wal, wal::Wal::Open(&m.fs, m.data_dir + "/wal", wal_options));

  // Node::AdoptMemberId (private in node.cc): the same file, written the same way (temporary
  // file, sync, rename, directory sync), and read back with the public StoredMemberId.
  const std::string raft_dir = m.data_dir + "/raft";
  CAIRN_RETURN_IF_ERROR(m.fs.CreateDirs(raft_dir));
  CAIRN_ASSIGN_OR_RETURN(uint64_t stored_id, StoredMemberId(&m.fs, m.data_dir));
  if (stored_id == 0) {
    if (m.member_id_written) Fail("durability: member " + Id(m.id) + " lost its member id file");
    char text[24];
    std::snprintf(text, sizeof(text), "%016" PRIx64 "\n", m.id);
    const std::string path = raft_dir + "/member_id";
    {
      CAIRN_ASSIGN_OR_RETURN(std::unique_ptr<env::WritableFile> file,
                             m.fs.NewWritableFile(path + ".tmp"));
      CAIRN_RETURN_IF_ERROR(file->Append(text));
      CAIRN_RETURN_IF_ERROR(file->Sync());
      CAIRN_RETURN_IF_ERROR(file->Close());
    }
    CAIRN_RETURN_IF_ERROR(m.fs.RenameFile(path + ".tmp", path));
    CAIRN_RETURN_IF_ERROR(m.fs.SyncDir(raft_dir));
    m.member_id_written = true;
  } else if (stored_id != m.id) {
    Fail("member " + Id(m.id) + " reads member id " + Id(stored_id));
  }

  // Node::OpenRaft.
  CAIRN_ASSIGN_OR_RETURN(
      m.log_storage, RaftLogStorage::Open(m.wal.get(), &m.fs, raft_dir, m.membership->Config(),
                                          m.applier->AppliedIndex(), RaftLogStorage::Options{}));
  const bool log_empty = m.log_storage->LastIndex() + 1 == m.log_storage->FirstIndex();
  if (m.membership->Empty() && log_empty) CAIRN_RETURN_IF_ERROR(Bootstrap(m));
  if (m.membership->Empty() && !log_empty) {
    CAIRN_ASSIGN_OR_RETURN(bool finished, m.log_storage->FinishInterruptedBootstrap());
    // The hard state it wrote is saved like any other (the durability check compares it).
    if (finished) m.saved_hard_state = m.log_storage->InitialHardState();
  }
  m.random = std::make_unique<env::Random>(random_.Next64());
  raft::Config config;
  config.id = m.id;
  config.election_ticks = kElectionTicks;
  config.heartbeat_ticks = 1;
  config.storage = m.log_storage.get();
  config.random = m.random.get();
  config.applied = m.applier->AppliedIndex();
  CAIRN_RETURN_IF_ERROR(config.Validate());
  m.raw = std::make_unique<raft::RawNode>(config);
  m.soft_state = raft::SoftState{};
  return Status::Ok();
}

Status NodeSimulation::Bootstrap(Member& m) {
  // Node::Bootstrap: the initial members as configuration changes 1..n, committed.
  std::vector<raft::Entry> entries;
  uint64_t index = m.log_storage->LastIndex();
  for (const auto& other : members_) {
    command::ConfigChangeContext context;
    context.mutable_member()->set_id(other->id);
    context.mutable_member()->set_name("m" + Id(other->id));
    raft::ConfigChange change{.type = raft::ConfigChangeType::kAddVoter,
                              .node_id = other->id,
                              .context = context.SerializeAsString()};
    entries.push_back(raft::Entry{.term = 1,
                                  .index = ++index,
                                  .type = raft::EntryType::kConfigChange,
                                  .data = raft::EncodeConfigChange(change)});
  }
  CheckLogMatching(m, entries);
  const raft::HardState hard_state{.term = 1, .commit = index};
  CAIRN_RETURN_IF_ERROR(m.log_storage->Bootstrap(entries, hard_state));
  m.saved_hard_state = hard_state;
  m.durable_last_index = index;
  m.durable_last_term = 1;
  return Status::Ok();
}

void NodeSimulation::StartMember(Member& m) {
  Status status = OpenMember(m);
  if (!status.ok()) {
    if (CrashIfPowerLost(m)) return;
    Fail("member " + Id(m.id) + " failed to restart: " + status.ToString());
    return;
  }
  m.up = true;
  const uint64_t applied = m.applier->AppliedIndex();
  CheckAfterRestart(m, applied);
  m.checkpointed_index = applied;
  Trace(now_ms_, 1, m.id, applied);
}

void NodeSimulation::CheckAfterRestart(Member& m, uint64_t applied) {
  const std::string who = "durability: member " + Id(m.id) + " restarted with ";
  const raft::HardState hard_state = m.log_storage->InitialHardState();
  if (hard_state.term != m.saved_hard_state.term || hard_state.vote != m.saved_hard_state.vote) {
    Fail(who + "term " + Id(hard_state.term) + " vote " + Id(hard_state.vote) + ", but it saved " +
         Id(m.saved_hard_state.term) + "/" + Id(m.saved_hard_state.vote));
  }
  if (m.log_storage->LastIndex() < m.durable_last_index) {
    Fail(who + "its log ending at " + Id(m.log_storage->LastIndex()) + ", but it synced up to " +
         Id(m.durable_last_index));
  } else if (m.durable_last_index > 0) {
    Result<uint64_t> term = m.log_storage->Term(m.durable_last_index);
    if (term.ok() && *term != m.durable_last_term) {
      Fail(who + "term " + Id(*term) + " at index " + Id(m.durable_last_index) +
           ", but it synced " + Id(m.durable_last_term));
    }
  }
  // What the log holds now is on disk (the crash kept it, and Wal::Open syncs the tail it
  // recovered): a torn crash may have kept more than was synced before it.
  m.durable_last_index = m.log_storage->LastIndex();
  Result<uint64_t> last_term = m.log_storage->Term(m.durable_last_index);
  m.durable_last_term = last_term.ok() ? *last_term : 0;
  m.state_hash = 0;
  if (applied > 0) {
    auto entry = applied_.find(applied);
    auto revision = revision_by_index_.find(applied);
    if (entry == applied_.end() || revision == revision_by_index_.end()) {
      Fail(who + "applied index " + Id(applied) + ", which it never applied");
      return;
    }
    m.state_hash = entry->second.state_hash;
    if (m.kv->CurrentRevision() != revision->second) {
      Fail(who + "revision " + std::to_string(m.kv->CurrentRevision()) + " at applied index " +
           Id(applied) + "; it had revision " + std::to_string(revision->second) + " there");
    }
  }
}

void NodeSimulation::CrashMember(Member& m) {
  // Power loss first, so that nothing the dying process still does reaches the disk.
  const bool torn = random_.Bernoulli(parameters_.torn_write_probability);
  if (torn) {
    m.fs.SimulateCrashWithTornWrite(random_);
    ++result_.torn_crashes;
  } else {
    m.fs.SimulateCrash();
  }
  if (m.engine != nullptr) m.engine->SimulateCrash();
  m.power_lost = false;
  m.power_loss_at_operation = 0;
  m.applied_before_crash = std::max(m.applied_before_crash, m.AppliedIndex());
  // Clients lose their connections: proposals that reached Raft may still commit; those still
  // in the inbox never will; reads change nothing.
  for (const Proposal& proposal : m.inbox_proposals) {
    auto it = m.waiters.find(proposal.request_id);
    if (it == m.waiters.end()) continue;
    Respond(it->second, checker::OpResult::DefinitelyFailed(), true);
    m.waiters.erase(it);
  }
  for (auto& [request_id, ref] : m.waiters) Respond(ref, checker::OpResult::Indeterminate(), true);
  for (const ClientRef& ref : m.inbox_reads)
    Respond(ref, checker::OpResult::Indeterminate(), false);
  for (auto& [context, refs] : m.reads_in_flight) {
    for (const ClientRef& ref : refs) Respond(ref, checker::OpResult::Indeterminate(), false);
  }
  for (auto& [index, ref] : m.reads_waiting_apply) {
    Respond(ref, checker::OpResult::Indeterminate(), false);
  }
  m.raw.reset();
  m.log_storage.reset();
  m.wal.reset();
  m.applier.reset();
  m.membership.reset();
  m.alarms.reset();
  m.leases.reset();
  m.kv.reset();
  m.random.reset();
  m.ready.reset();
  m.ticks_pending = 0;
  m.inbox_messages.clear();
  m.inbox_proposals.clear();
  m.inbox_reads.clear();
  m.inbox_transfer = raft::kNoNode;
  m.compact_to = 0;
  m.waiters.clear();
  m.reads_in_flight.clear();
  m.reads_waiting_apply.clear();
  m.apply_queue.clear();
  m.config_change_applied.clear();
  m.up = false;
  m.restart_at_ms = now_ms_ + random_.UniformRange(kRestartDelayMsMin, kRestartDelayMsMax);
  ++result_.crashes;
  Trace(now_ms_, 2, m.id, torn);
}

// ---------------------------------------------------------------------------------------
// The raft thread of a member (Node::RaftLoop, Submit, HandleReady).

void NodeSimulation::ProcessMember(Member& m) {
  ApplyDue(m, false);
  for (int i = 0; i < kReadiesPerStepMax && m.up && result_.ok; ++i) {
    if (m.ready) {
      if (now_ms_ < m.ready_done_ms) break;
      CompleteReady(m);
      continue;
    }
    for (; m.ticks_pending > 0; --m.ticks_pending) m.raw->Tick();
    Submit(m);
    if (!m.up || !m.raw->HasReady()) break;  // a power loss may have crashed it
    StartReady(m);
  }
  if (m.up) ApplyDue(m, false);
}

void NodeSimulation::Submit(Member& m) {
  for (raft::Message& message : m.inbox_messages) {
    Status status = m.raw->Step(std::move(message));
    (void)status;  // e.g. a response from a member this one does not know yet
  }
  m.inbox_messages.clear();
  if (m.compact_to > 0) {
    Status status = m.log_storage->CompactTo(m.compact_to);
    if (!status.ok()) {
      if (CrashIfPowerLost(m)) return;
      Fail("member " + Id(m.id) + " compaction: " + status.ToString());
    }
    Trace(now_ms_, 6, m.id, m.compact_to);
    m.compact_to = 0;
  }
  if (!m.inbox_proposals.empty()) {
    std::vector<std::string> batch;
    for (Proposal& proposal : m.inbox_proposals) batch.push_back(std::move(proposal.payload));
    Status status = m.raw->ProposeBatch(std::move(batch));
    Trace(now_ms_, 7, m.id, status.ok());
    if (!status.ok()) {
      // A dropped proposal never entered a log (Node answers "etcdserver: no leader").
      const bool dropped = raft::IsProposalDropped(status);
      for (const Proposal& proposal : m.inbox_proposals) {
        auto it = m.waiters.find(proposal.request_id);
        if (it == m.waiters.end()) continue;
        Respond(
            it->second,
            dropped ? checker::OpResult::DefinitelyFailed() : checker::OpResult::Indeterminate(),
            true);
        m.waiters.erase(it);
      }
    }
    m.inbox_proposals.clear();
  }
  if (!m.inbox_reads.empty()) {
    const std::string context = Id(m.id) + "/" + Id(++m.read_context_counter);
    Status status = m.raw->ReadIndex(context);
    Trace(now_ms_, 9, m.id, status.ok());
    if (status.ok()) {
      m.reads_in_flight[context] = std::move(m.inbox_reads);
    } else {
      for (const ClientRef& ref : m.inbox_reads) {
        Respond(ref, checker::OpResult::DefinitelyFailed(), false);
      }
    }
    m.inbox_reads.clear();
  }
  if (m.inbox_transfer != raft::kNoNode) {
    m.raw->TransferLeader(m.inbox_transfer);
    m.inbox_transfer = raft::kNoNode;
  }
  Observe(m);
}

void NodeSimulation::StartReady(Member& m) {
  raft::Ready ready = m.raw->GetReady();
  if (ready.soft_state) m.soft_state = *ready.soft_state;
  if (m.soft_state.role == raft::Role::kLeader) {
    // The leader replicates while its own write is in progress (node.cc SendMessages).
    auto early = std::stable_partition(ready.messages.begin(), ready.messages.end(),
                                       [](const auto& x) { return SendableBeforePersist(x.type); });
    std::vector<raft::Message> out(std::make_move_iterator(ready.messages.begin()),
                                   std::make_move_iterator(early));
    ready.messages.erase(ready.messages.begin(), early);
    Send(m, out);
  }
  if (!ready.snapshot.IsEmpty()) {
    Fail("member " + Id(m.id) + " was sent a snapshot, which the node cannot install");
    return;
  }
  if (!ready.entries.empty()) {
    CheckLogMatching(m, ready.entries);
    const uint64_t first = ready.entries.front().index;
    if (first <= m.durable_last_index) {
      // RaftLogStorage::Append truncates the conflicting suffix durably before appending.
      Result<uint64_t> term = m.log_storage->Term(first - 1);
      m.durable_last_index = first - 1;
      m.durable_last_term = term.ok() ? *term : 0;
    }
    Status status = m.log_storage->Append(ready.entries);
    if (!status.ok()) {
      if (CrashIfPowerLost(m)) return;
      Fail("member " + Id(m.id) + " wal append: " + status.ToString());
      return;
    }
  }
  m.ready = std::move(ready);
  m.ready_done_ms = now_ms_ + random_.Uniform(parameters_.disk_latency_ms_max + 1);
}

void NodeSimulation::CompleteReady(Member& m) {
  raft::Ready ready = std::move(*m.ready);
  m.ready.reset();
  if (!ready.entries.empty()) {
    Status status = m.log_storage->Sync();
    if (!status.ok()) {
      if (CrashIfPowerLost(m)) return;
      Fail("member " + Id(m.id) + " wal sync: " + status.ToString());
      return;
    }
    m.durable_last_index = m.log_storage->LastIndex();
    Result<uint64_t> term = m.log_storage->Term(m.durable_last_index);
    m.durable_last_term = term.ok() ? *term : 0;
  }
  if (ready.hard_state) {
    const raft::HardState& next = *ready.hard_state;
    const raft::HardState& saved = m.saved_hard_state;
    if (next.term < saved.term) {
      Fail("durability: member " + Id(m.id) + " persists term " + Id(next.term) + " after " +
           Id(saved.term));
    }
    if (next.term == saved.term && saved.vote != raft::kNoNode && next.vote != saved.vote) {
      Fail("member " + Id(m.id) + " changed its vote within term " + Id(next.term));
    }
    Status status = m.log_storage->SaveHardState(next);
    if (!status.ok()) {
      if (CrashIfPowerLost(m)) return;
      Fail("member " + Id(m.id) + " hard state: " + status.ToString());
      return;
    }
    if (next.term != saved.term || next.vote != saved.vote) m.saved_hard_state = next;
  }
  Send(m, ready.messages);
  ServeReadStates(m, ready.read_states);
  bool config_changes = false;
  if (!ready.committed_entries.empty()) {
    if (m.apply_queue.empty()) {
      m.apply_at_ms = now_ms_ + random_.Uniform(parameters_.apply_lag_ms_max + 1);
    }
    for (raft::Entry& entry : ready.committed_entries) {
      config_changes = config_changes || entry.type == raft::EntryType::kConfigChange;
      m.apply_queue.push_back(entry);
    }
  }
  if (config_changes) {
    // Node::ApplyConfigChanges: Raft sees a change only once it is applied.
    ApplyDue(m, true);
    if (!result_.ok) return;
    for (const raft::Entry& entry : ready.committed_entries) {
      if (entry.type != raft::EntryType::kConfigChange) continue;
      auto it = m.config_change_applied.find(entry.index);
      CAIRN_CHECK(it != m.config_change_applied.end());
      raft::ConfigChange change;
      CAIRN_CHECK(raft::DecodeConfigChange(entry.data, &change));
      if (it->second) m.raw->ApplyConfigChange(change);
      m.config_change_applied.erase(it);
    }
  }
  m.raw->Advance();
  Trace(now_ms_, 5, m.id, m.log_storage->LastIndex());
  Observe(m);
}

void NodeSimulation::ServeReadStates(Member& m, std::vector<raft::ReadState>& read_states) {
  for (raft::ReadState& state : read_states) {
    auto it = m.reads_in_flight.find(state.context);
    if (it == m.reads_in_flight.end()) continue;
    std::vector<ClientRef> refs = std::move(it->second);
    m.reads_in_flight.erase(it);
    for (const ClientRef& ref : refs) {
      if (m.AppliedIndex() >= state.index) {
        ServeRead(m, ref);
      } else {
        m.reads_waiting_apply.emplace(state.index, ref);
      }
    }
  }
}

void NodeSimulation::CheckLogMatching(Member& m, const std::vector<raft::Entry>& entries) {
  for (size_t i = 0; i < entries.size(); ++i) {
    const raft::Entry& entry = entries[i];
    std::optional<uint64_t> previous_term;
    if (i > 0) {
      previous_term = entries[i - 1].term;
    } else if (entry.index == 1) {
      previous_term = 0;
    } else {
      Result<uint64_t> term = m.log_storage->Term(entry.index - 1);
      if (term.ok()) previous_term = *term;
    }
    const uint64_t data_hash = Mix(HashBytes(entry.data), static_cast<uint64_t>(entry.type));
    auto key = std::make_pair(entry.index, entry.term);
    auto it = entries_by_index_term_.find(key);
    if (it == entries_by_index_term_.end()) {
      if (previous_term)
        entries_by_index_term_.emplace(key, LoggedEntry{data_hash, *previous_term});
    } else if (it->second.data_hash != data_hash ||
               (previous_term && it->second.previous_term != *previous_term)) {
      Fail("log matching: member " + Id(m.id) + " holds a different entry at index " +
           Id(entry.index) + " term " + Id(entry.term));
    }
  }
}

void NodeSimulation::Observe(Member& m) {
  if (!m.up || m.raw == nullptr) return;
  const raft::Raft& raft = m.raw->raft();
  if (raft.role() != raft::Role::kLeader) return;
  auto [it, inserted] = leader_by_term_.emplace(raft.term(), m.id);
  if (!inserted) {
    if (it->second != m.id) {
      Fail("election safety: members " + Id(it->second) + " and " + Id(m.id) + " both lead term " +
           Id(raft.term()));
    }
    return;
  }
  ++result_.elections;
  Trace(now_ms_, 3, m.id, raft.term());
  // Leader completeness: everything applied anywhere is committed, so it is in this log.
  const raft::RaftLog& log = raft.log();
  for (const auto& [index, applied] : applied_) {
    if (index + 1 < log.FirstIndex()) continue;  // compacted, hence committed here too
    if (log.TermOrZero(index) != applied.term) {
      Fail("leader completeness: leader " + Id(m.id) + " of term " + Id(raft.term()) +
           " lacks committed entry " + Id(index));
      return;
    }
  }
}

bool NodeSimulation::Stranded(const Member& leader, const Member& m) const {
  // The leader would have to send entries it compacted: only a snapshot could help.
  const raft::Raft& raft = leader.raw->raft();
  auto progress = raft.progress().find(m.id);
  return progress != raft.progress().end() && progress->second.next < raft.log().FirstIndex();
}

NodeSimulation::Member* NodeSimulation::FindLeader() {
  std::vector<Member*> leaders;
  for (auto& m : members_) {
    if (m->up && m->raw->raft().role() == raft::Role::kLeader) leaders.push_back(m.get());
  }
  return leaders.empty() ? nullptr : leaders[random_.Uniform(leaders.size())];
}

// ---------------------------------------------------------------------------------------
// The apply thread of a member (Node::ApplyLoop, ApplyEntries) and checkpoints.

void NodeSimulation::ApplyDue(Member& m, bool all) {
  if (m.apply_queue.empty() || (!all && now_ms_ < m.apply_at_ms)) return;
  std::vector<raft::Entry> batch;
  while (!m.apply_queue.empty() && m.up && result_.ok) {
    // Batch boundaries depend on timing in the node: any size up to its limit.
    const size_t size = 1 + random_.Uniform(std::min<size_t>(m.apply_queue.size(), 1024));
    batch.clear();
    for (size_t i = 0; i < size; ++i) {
      batch.push_back(std::move(m.apply_queue.front()));
      m.apply_queue.pop_front();
    }
    ApplyEntries(m, batch);
  }
}

void NodeSimulation::ApplyEntries(Member& m, std::vector<raft::Entry>& taken) {
  const size_t n = taken.size();
  if (taken.front().index != m.AppliedIndex() + 1) {
    Fail("member " + Id(m.id) + " applies index " + Id(taken.front().index) + " after " +
         Id(m.AppliedIndex()));
    return;
  }
  std::vector<command::Command> commands(n);
  std::vector<raft::ConfigChange> changes(n);
  std::vector<command::ConfigChangeContext> contexts(n);
  std::vector<command::CommandResult> results(n);
  std::vector<Status> statuses(n);
  std::vector<Applier::Entry> entries(n);
  for (size_t i = 0; i < n; ++i) {
    const raft::Entry& entry = taken[i];
    entries[i] = {.index = entry.index, .result = &results[i], .status = &statuses[i]};
    if (entry.type == raft::EntryType::kConfigChange) {
      if (!raft::DecodeConfigChange(entry.data, &changes[i]) ||
          !contexts[i].ParseFromString(changes[i].context)) {
        Fail("log entry " + Id(entry.index) + " is not a configuration change");
        return;
      }
      entries[i].config_change = &changes[i];
      entries[i].member = &contexts[i].member();
    } else if (!entry.data.empty()) {
      if (!commands[i].ParseFromString(entry.data)) {
        Fail("log entry " + Id(entry.index) + " does not parse as a command");
        return;
      }
      entries[i].command = &commands[i];
    }
  }
  Status applied = m.applier->ApplyBatch(entries);
  if (!applied.ok()) {
    Fail("member " + Id(m.id) + " apply: " + applied.ToString());
    return;
  }
  // State machine safety: the same entry and the same result at every index, everywhere.
  for (size_t i = 0; i < n; ++i) {
    const raft::Entry& entry = taken[i];
    const uint64_t data_hash = Mix(HashBytes(entry.data), static_cast<uint64_t>(entry.type));
    const uint64_t result_hash =
        Mix(static_cast<uint64_t>(statuses[i].code()), HashBytes(results[i].SerializeAsString()));
    const uint64_t state_hash =
        Mix(Mix(m.state_hash, entry.index), Mix(entry.term, Mix(data_hash, result_hash)));
    auto [it, inserted] =
        applied_.emplace(entry.index, AppliedEntry{entry.term, data_hash, state_hash});
    if (!inserted && (it->second.term != entry.term || it->second.data_hash != data_hash ||
                      it->second.state_hash != state_hash)) {
      Fail("state machine safety: member " + Id(m.id) + " applied a different entry or result at " +
           Id(entry.index));
      return;
    }
    m.state_hash = state_hash;
    if (entry.index <= m.applied_before_crash) ++result_.replayed_entries;
    result_.applied_index = std::max(result_.applied_index, entry.index);
  }
  const uint64_t last = taken.back().index;
  auto [revision, inserted] = revision_by_index_.emplace(last, m.kv->CurrentRevision());
  if (!inserted && revision->second != m.kv->CurrentRevision()) {
    Fail("state machine safety: member " + Id(m.id) + " is at revision " +
         std::to_string(m.kv->CurrentRevision()) + " after index " + Id(last) + ", another at " +
         std::to_string(revision->second));
    return;
  }
  Trace(now_ms_, 10, m.id, last);
  // Answer the proposers waiting here.
  for (size_t i = 0; i < n; ++i) {
    if (entries[i].config_change != nullptr) {
      m.config_change_applied[entries[i].index] = statuses[i].ok();
    } else if (entries[i].command != nullptr && commands[i].proposer_id() == m.id) {
      auto it = m.waiters.find(commands[i].request_id());
      if (it == m.waiters.end()) continue;
      const ClientRef ref = it->second;
      m.waiters.erase(it);
      CompleteWrite(ref, statuses[i], results[i], entries[i].index);
    }
  }
  MaybeCheckpoint(m);
  auto end = m.reads_waiting_apply.upper_bound(m.AppliedIndex());
  std::vector<ClientRef> ready;
  for (auto it = m.reads_waiting_apply.begin(); it != end; ++it) ready.push_back(it->second);
  m.reads_waiting_apply.erase(m.reads_waiting_apply.begin(), end);
  for (const ClientRef& ref : ready) ServeRead(m, ref);
}

void NodeSimulation::MaybeCheckpoint(Member& m) {
  // Node::Checkpoint, run by its checkpoint thread at some point after the interval passed.
  const uint64_t covered = m.AppliedIndex();
  if (covered - m.checkpointed_index < parameters_.checkpoint_interval_entries) return;
  if (!random_.Bernoulli(0.5)) return;
  Status status = m.engine->Flush();
  if (!status.ok()) {
    Fail("member " + Id(m.id) + " flush: " + status.ToString());
    return;
  }
  const uint64_t retention = parameters_.log_retention_entries;
  const uint64_t keep_from = covered > retention ? covered - retention : 0;
  if (keep_from > 0) m.compact_to = std::max(m.compact_to, keep_from);
  m.checkpointed_index = covered;
  ++result_.checkpoints;
  Trace(now_ms_, 11, m.id, covered);
}

// ---------------------------------------------------------------------------------------
// Network.

void NodeSimulation::Send(const Member& from, std::vector<raft::Message>& messages) {
  const bool faults = now_ms_ < fault_phase_ms_;
  for (raft::Message& message : messages) {
    // Durability: what a message acknowledges is on disk before it leaves. A Ready's messages
    // may come from several terms; those of a term the saved hard state has moved past are
    // covered by it (the member can no longer act in that term), as in Raft with a slow
    // network.
    const raft::HardState& saved = from.saved_hard_state;
    if (message.type == raft::MessageType::kAppendResponse && !message.reject &&
        message.term == saved.term && message.index > from.durable_last_index) {
      Fail("durability: member " + Id(from.id) + " acknowledges index " + Id(message.index) +
           " in term " + Id(message.term) + " but has synced only up to " +
           Id(from.durable_last_index));
    }
    if (message.type == raft::MessageType::kVoteResponse && !message.reject &&
        (message.term > saved.term || (message.term == saved.term && saved.vote != message.to))) {
      Fail("durability: member " + Id(from.id) + " grants its vote to " + Id(message.to) +
           " in term " + Id(message.term) + " but saved term " + Id(saved.term) + " vote " +
           Id(saved.vote));
    }
    const uint64_t delay_ms = random_.UniformRange(1, parameters_.delay_ms_max);
    // The transport (gRPC streams) never delivers a message twice. Raft tolerates duplicates
    // of everything except a forwarded proposal, which would be appended twice: a client
    // whose request was duplicated would see its write applied twice (no client sessions).
    if (faults && message.type != raft::MessageType::kPropose &&
        random_.Bernoulli(parameters_.duplicate_probability)) {
      const uint64_t duplicate_delay_ms = random_.UniformRange(1, parameters_.delay_ms_max);
      network_.emplace(std::make_pair(now_ms_ + duplicate_delay_ms, sequence_++), message);
    }
    network_.emplace(std::make_pair(now_ms_ + delay_ms, sequence_++), std::move(message));
  }
  messages.clear();
}

void NodeSimulation::DeliverDue() {
  const bool faults = now_ms_ < fault_phase_ms_;
  while (!network_.empty() && network_.begin()->first.first <= now_ms_) {
    raft::Message message = std::move(network_.begin()->second);
    network_.erase(network_.begin());
    CAIRN_CHECK(message.to >= 1 && message.to <= members_.size());
    CAIRN_CHECK(message.from >= 1 && message.from <= members_.size());
    Member& to = *members_[message.to - 1];
    const Member& from = *members_[message.from - 1];
    const bool delivered = to.up &&
                           partition_group_[to.position] == partition_group_[from.position] &&
                           !(faults && random_.Bernoulli(parameters_.drop_probability)) &&
                           to.inbox_messages.size() < kInboxMessagesMax;
    Trace(now_ms_, static_cast<uint64_t>(message.type) * 2 + delivered,
          message.from * 16 + message.to, message.term * 1000003 + message.index);
    if (!delivered) continue;
    ++result_.messages_delivered;
    to.inbox_messages.push_back(std::move(message));
  }
}

void NodeSimulation::Partition() {
  const size_t count = members_.size();
  if (random_.Bernoulli(0.5)) {
    std::fill(partition_group_.begin(), partition_group_.end(), 0);
    partition_group_[random_.Uniform(count)] = 1;
  } else {
    for (int& group : partition_group_) group = static_cast<int>(random_.Uniform(2));
  }
  Trace(now_ms_, 12, 0, 0);
}

void NodeSimulation::HealNetwork() {
  std::fill(partition_group_.begin(), partition_group_.end(), 0);
  Trace(now_ms_, 13, 0, 0);
}

// ---------------------------------------------------------------------------------------
// Clients.

bool NodeSimulation::ClientIdle(const Client& client) const {
  return !client.pending && client.next_request_ms <= now_ms_;
}

void NodeSimulation::IssueRequest(Client& client) {
  std::vector<Member*> up;
  for (auto& m : members_) {
    if (m->up) up.push_back(m.get());
  }
  if (up.empty()) return;
  Member& m = *up[random_.Uniform(up.size())];
  client.pending = true;
  ++client.serial;
  client.deadline_ms = now_ms_ + parameters_.request_timeout_ms;
  client.handle.reset();
  const ClientRef ref{client.index, client.serial};
  const uint32_t client_id = static_cast<uint32_t>(client.index);
  auto fresh_value = [&] { return "c" + Id(client.index) + "-" + Id(++client.sequence); };
  const uint64_t choice = client.final_request ? 0 : random_.Uniform(100);
  client.key = client.final_request ? "final" : "k" + Id(random_.Uniform(parameters_.key_count));
  Trace(now_ms_, 20 + choice, client.index, m.id);
  command::Command command;
  if (choice < 30) {
    client.kind = checker::OpKind::kPut;
    client.write = true;
    etcdserverpb::PutRequest* put = command.mutable_put();
    put->set_key(client.key);
    put->set_value(fresh_value());
    client.handle = recorder_->Invoke(client_id, client.kind, client.key, put->value());
  } else if (choice < 55) {
    client.kind = checker::OpKind::kGet;
    client.write = false;
    client.handle = recorder_->Invoke(client_id, client.kind, client.key);
    m.inbox_reads.push_back(ref);
    return;
  } else if (choice < 75) {
    client.kind = checker::OpKind::kCas;
    client.write = true;
    const int64_t expected = client.last_mod_revision[client.key];
    etcdserverpb::TxnRequest* txn = command.mutable_txn();
    etcdserverpb::Compare* compare = txn->add_compare();
    compare->set_key(client.key);
    compare->set_target(etcdserverpb::Compare::MOD);
    compare->set_result(etcdserverpb::Compare::EQUAL);
    compare->set_mod_revision(expected);
    etcdserverpb::PutRequest* put = txn->add_success()->mutable_request_put();
    put->set_key(client.key);
    put->set_value(fresh_value());
    txn->add_failure()->mutable_request_range()->set_key(client.key);
    client.handle = recorder_->Invoke(client_id, client.kind, client.key, put->value(), expected);
  } else if (choice < 92) {
    // The range form of a single-key delete: [key, key + "\0") holds only key.
    client.kind = checker::OpKind::kDelete;
    client.write = true;
    etcdserverpb::DeleteRangeRequest* request = command.mutable_delete_range();
    request->set_key(client.key);
    request->set_range_end(client.key + std::string(1, '\0'));
    client.handle = recorder_->Invoke(client_id, client.kind, client.key);
  } else {
    // Scratch keys the checker does not see: a Put, or a DeleteRange over several of them.
    client.kind = checker::OpKind::kPut;
    client.write = true;
    if (choice < 96) {
      etcdserverpb::PutRequest* put = command.mutable_put();
      put->set_key("s/" + Id(random_.Uniform(kScratchKeys)));
      put->set_value(fresh_value());
    } else {
      etcdserverpb::DeleteRangeRequest* request = command.mutable_delete_range();
      request->set_key("s/" + Id(random_.Uniform(kScratchKeys)));
      request->set_range_end("s/" + Id(kScratchKeys));
    }
  }
  SendProposal(client, m, std::move(command));
}

void NodeSimulation::SendProposal(Client& client, Member& m, command::Command command) {
  // Node::Propose: the member stamps the command so that it recognizes it when applied.
  const uint64_t request_id = next_request_id_++;
  command.set_proposer_id(m.id);
  command.set_request_id(request_id);
  m.waiters.emplace(request_id, ClientRef{client.index, client.serial});
  m.inbox_proposals.push_back(Proposal{request_id, command.SerializeAsString()});
}

checker::Outcome NodeSimulation::Respond(const ClientRef& ref, checker::OpResult result,
                                         bool write) {
  Client& client = *clients_[ref.client];
  if (!client.pending || client.serial != ref.serial) {
    return checker::Outcome::kDefinitelyFailed;  // it gave up already
  }
  CAIRN_CHECK(client.write == write);
  if (result.outcome == checker::Outcome::kOk &&
      random_.Bernoulli(parameters_.response_loss_probability)) {
    result = checker::OpResult::Indeterminate();  // the reply was lost on its way
  }
  if (!write && result.outcome == checker::Outcome::kIndeterminate) {
    result = checker::OpResult::DefinitelyFailed();  // a read changes nothing
  }
  client.pending = false;
  client.final_request = false;
  client.last_outcome = result.outcome;
  client.next_request_ms = now_ms_ + random_.Uniform(kClientPauseMsMax + 1);
  Trace(now_ms_, 14, ref.client, static_cast<uint64_t>(result.outcome));
  const checker::Outcome outcome = result.outcome;
  if (!client.handle) return outcome;
  if (result.outcome == checker::Outcome::kOk) {
    if (write) ++result_.acknowledged;
    if (!write) ++result_.reads;
    const std::string& key = client.key;
    switch (client.kind) {
      case checker::OpKind::kPut:
        client.last_mod_revision[key] = result.header_revision;
        break;
      case checker::OpKind::kDelete:
        if (result.deleted_count > 0) client.last_mod_revision[key] = 0;
        break;
      case checker::OpKind::kCas:
      case checker::OpKind::kGet:
        client.last_mod_revision[key] =
            result.succeeded ? result.header_revision : result.read_mod_revision;
        break;
    }
  }
  recorder_->Complete(*client.handle, std::move(result));
  return outcome;
}

void NodeSimulation::CompleteWrite(const ClientRef& ref, const Status& status,
                                   const command::CommandResult& response, uint64_t index) {
  Client& client = *clients_[ref.client];
  if (!client.pending || client.serial != ref.serial) return;
  if (!status.ok()) {
    Fail("client " + Id(ref.client) + "'s command at index " + Id(index) +
         " failed to apply: " + status.ToString());
    return;
  }
  checker::OpResult result{.outcome = checker::Outcome::kOk};
  if (!client.handle) {
    Respond(ref, std::move(result), true);  // a scratch request
    return;
  }
  switch (client.kind) {
    case checker::OpKind::kPut:
      result = checker::OpResult::PutOk(response.put().header().revision());
      break;
    case checker::OpKind::kDelete:
      result = checker::OpResult::DeleteOk(response.delete_range().deleted(),
                                           response.delete_range().header().revision());
      break;
    case checker::OpKind::kCas: {
      const etcdserverpb::TxnResponse& txn = response.txn();
      const int64_t header = txn.header().revision();
      if (txn.succeeded()) {
        result = checker::OpResult::CasSucceeded(header);
      } else if (txn.responses_size() != 1 || !txn.responses(0).has_response_range()) {
        Fail("a failed Cas without its range response: " + txn.ShortDebugString());
        return;
      } else if (txn.responses(0).response_range().kvs().empty()) {
        result = checker::OpResult::CasFailedNotFound(header);
      } else {
        const mvccpb::KeyValue& kv = txn.responses(0).response_range().kvs(0);
        result = checker::OpResult::CasFailedFound(kv.value(), kv.mod_revision(), header);
      }
      break;
    }
    case checker::OpKind::kGet:
      Fail("a read was answered as a write");
      return;
  }
  const bool final_request = client.final_request;
  if (Respond(ref, std::move(result), true) == checker::Outcome::kOk && final_request) {
    final_index_ = index;
  }
}

void NodeSimulation::ServeRead(Member& m, const ClientRef& ref) {
  Client& client = *clients_[ref.client];
  if (!client.pending || client.serial != ref.serial) return;
  etcdserverpb::RangeRequest request;
  request.set_key(client.key);
  etcdserverpb::RangeResponse response;
  Status status = m.kv->Range(request, &response);
  if (!status.ok()) {
    Fail("member " + Id(m.id) + " range: " + status.ToString());
    return;
  }
  const int64_t header = response.header().revision();
  if (response.kvs().empty()) {
    Respond(ref, checker::OpResult::GetNotFound(header), false);
  } else {
    const mvccpb::KeyValue& kv = response.kvs(0);
    Respond(ref, checker::OpResult::GetFound(kv.value(), kv.mod_revision(), header), false);
  }
}

void NodeSimulation::ExpireRequests() {
  for (auto& client : clients_) {
    if (!client->pending || now_ms_ < client->deadline_ms) continue;
    // No answer in time: the outcome is unknown (the member may still apply it).
    const bool write = client->write;
    Respond(ClientRef{client->index, client->serial}, checker::OpResult::Indeterminate(), write);
  }
}

// ---------------------------------------------------------------------------------------
// The run.

void NodeSimulation::Step(bool faults) {
  now_ns_offset_ = 0;
  DeliverDue();
  for (auto& m : members_) {
    if (m->up && now_ms_ % kTickMs == m->tick_phase_ms) {
      m->ticks_pending = std::min(m->ticks_pending + 1, kElectionTicks);
    }
  }
  if (faults) {
    const bool partitioned = std::any_of(partition_group_.begin(), partition_group_.end(),
                                         [](int group) { return group != 0; });
    if (random_.Bernoulli(parameters_.partition_per_ms_probability)) {
      if (partitioned) {
        HealNetwork();
      } else {
        Partition();
      }
    }
    if (random_.Bernoulli(parameters_.crash_per_ms_probability)) {
      Member& m = *members_[random_.Uniform(members_.size())];
      if (m.up) CrashMember(m);
    }
    if (random_.Bernoulli(parameters_.leader_crash_per_ms_probability)) {
      if (Member* leader = FindLeader()) CrashMember(*leader);
    }
    if (random_.Bernoulli(parameters_.power_loss_per_ms_probability)) {
      // The power fails during one of the member's next few file operations.
      Member& m = *members_[random_.Uniform(members_.size())];
      if (m.up && m.power_loss_at_operation == 0) {
        m.power_loss_at_operation = m.mutating_operations + 1 + random_.Uniform(8);
      }
    }
    if (random_.Bernoulli(parameters_.mid_write_crash_per_ms_probability)) {
      // Between a Ready's WAL write and its fdatasync: the window where what is not durable
      // yet must not have been acknowledged to anyone.
      std::vector<Member*> writing;
      for (auto& m : members_) {
        if (m->up && m->ready) writing.push_back(m.get());
      }
      if (!writing.empty()) CrashMember(*writing[random_.Uniform(writing.size())]);
    }
    if (random_.Bernoulli(1.0 / 2000)) {
      Member& m = *members_[random_.Uniform(members_.size())];
      if (m.up) m.inbox_transfer = 1 + random_.Uniform(members_.size());
    }
  }
  for (auto& m : members_) {
    if (!m->up && m->restart_at_ms <= now_ms_ && result_.ok) StartMember(*m);
  }
  ExpireRequests();
  if (clients_active_) {
    for (auto& client : clients_) {
      if (ClientIdle(*client)) IssueRequest(*client);
    }
  }
  for (auto& m : members_) {
    if (m->up && result_.ok) ProcessMember(*m);
  }
}

NodeSimulationResult NodeSimulation::Run() {
  for (auto& m : members_) StartMember(*m);
  for (; now_ms_ < fault_phase_ms_ && result_.ok; ++now_ms_) Step(/*faults=*/true);
  if (result_.ok && RecoveryPhase()) FinalChecks();
  const checker::History history = recorder_->Snapshot();
  result_.operations = history.size();
  for (const checker::Operation& op : history.ops()) {
    if (op.result.outcome == checker::Outcome::kIndeterminate) ++result_.indeterminate;
  }
  return result_;
}

bool NodeSimulation::RecoveryPhase() {
  // Heal, restart everyone, stop the random requests; then one client writes until a write is
  // acknowledged, that write must reach every member, and every key is read once more.
  HealNetwork();
  for (auto& m : members_) {
    m->power_loss_at_operation = 0;
    if (!m->up) StartMember(*m);
  }
  if (!result_.ok) return false;
  clients_active_ = false;
  Client& client = *clients_[0];
  const uint64_t deadline_ms = now_ms_ + liveness_ms_max_;
  size_t next_key = 0;
  bool reading = false;
  enum class Stage { kDrain, kWrite, kReplicate, kRead } stage = Stage::kDrain;
  for (; now_ms_ < deadline_ms && result_.ok; ++now_ms_) {
    Step(/*faults=*/false);
    if (!result_.ok) return false;
    if (stage == Stage::kDrain) {
      if (std::all_of(clients_.begin(), clients_.end(), [](auto& c) { return !c->pending; })) {
        stage = Stage::kWrite;
      }
    } else if (stage == Stage::kWrite) {
      if (final_index_ > 0) {
        stage = Stage::kReplicate;
      } else if (ClientIdle(client)) {
        client.final_request = true;
        IssueRequest(client);
      }
    } else if (stage == Stage::kReplicate) {
      Member* leader = FindLeader();
      if (leader == nullptr) continue;
      uint64_t stranded = 0;
      bool everywhere = true;
      for (auto& m : members_) {
        if (Stranded(*leader, *m)) {
          ++stranded;
        } else if (m->AppliedIndex() < final_index_) {
          everywhere = false;
        }
      }
      if (everywhere) {
        result_.stranded_members = stranded;
        stage = Stage::kRead;
      }
    } else if (ClientIdle(client)) {
      // A linearizable read of every key, the final one included, through random members;
      // a read that failed is sent again.
      if (reading && client.last_outcome == checker::Outcome::kOk) ++next_key;
      reading = false;
      if (next_key > parameters_.key_count) return true;
      Member& m = *members_[random_.Uniform(members_.size())];
      client.pending = true;
      ++client.serial;
      client.deadline_ms = now_ms_ + parameters_.request_timeout_ms;
      client.kind = checker::OpKind::kGet;
      client.write = false;
      client.key = next_key < parameters_.key_count ? "k" + Id(next_key) : "final";
      client.handle = recorder_->Invoke(0, client.kind, client.key);
      m.inbox_reads.push_back(ClientRef{0, client.serial});
      reading = true;
    }
  }
  std::string state;
  for (auto& m : members_) {
    const raft::Raft& raft = m->raw->raft();
    state += " member" + Id(m->id) + "{" + std::string(raft::RoleName(raft.role())) +
             " term=" + Id(raft.term()) + " lead=" + Id(raft.lead()) +
             " first=" + Id(m->log_storage->FirstIndex()) +
             " last=" + Id(m->log_storage->LastIndex()) + " commit=" + Id(raft.log().committed()) +
             " applied=" + Id(m->AppliedIndex());
    if (raft.role() == raft::Role::kLeader) {
      for (const auto& [id, progress] : raft.progress()) {
        state += " progress" + Id(id) + "(" + std::string(raft::ProgressStateName(progress.state)) +
                 " match=" + Id(progress.match) + " next=" + Id(progress.next) + ")";
      }
    }
    state += "}";
  }
  Fail("liveness: recovery did not finish within " + Id(liveness_ms_max_) +
       "ms after healing (final write index " + Id(final_index_) + ", keys read " + Id(next_key) +
       ");" + state);
  return false;
}

void NodeSimulation::FinalChecks() {
  Member* leader = FindLeader();
  std::vector<Member*> current;
  for (auto& m : members_) {
    if (leader == nullptr || !Stranded(*leader, *m)) current.push_back(m.get());
  }
  // Replicas agree: the same HashKV at a revision all of them reached.
  int64_t revision = INT64_MAX;
  for (Member* m : current) revision = std::min(revision, m->kv->CurrentRevision());
  std::optional<uint32_t> hash;
  for (Member* m : current) {
    etcdserverpb::HashKVResponse response;
    Status status = m->kv->HashKV(revision, &response);
    if (!status.ok()) {
      Fail("member " + Id(m->id) + " HashKV: " + status.ToString());
      return;
    }
    if (hash && *hash != response.hash()) {
      Fail("state machine safety: members disagree on HashKV at revision " +
           std::to_string(revision));
      return;
    }
    hash = response.hash();
  }
  Trace(now_ms_, 15, revision, hash.value_or(0));
  // The whole history is linearizable: nothing acknowledged was lost, no read was stale.
  checker::CheckOptions options;
  options.time_budget_ms = 60'000;
  const checker::CheckResult check = checker::Check(recorder_->Snapshot(), options);
  result_.check_stats = check.stats;
  if (!check.ok()) Fail("history: " + check.ToString());
}

}  // namespace cairn::node::sim
