#include "tests/sim/raft_simulation.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <sstream>

#include "src/base/coding.h"
#include "tests/sim/sim_support.h"

namespace cairn::raft::sim {

namespace {

constexpr uint64_t kTickMs = 10;
constexpr int kElectionTicks = 10;
// Bound on Readys completed per node per millisecond (a node with nothing new stops early).
constexpr int kReadiesPerStepMax = 64;
constexpr uint64_t kRestartDelayMsMin = 50;
constexpr uint64_t kRestartDelayMsMax = 2000;
constexpr uint64_t kLivenessProposeEveryMs = 200;

using sim_support::HashBytes;
using sim_support::Mix;

std::string EncodeState(uint64_t index, uint64_t state_hash) {
  std::string data;
  coding::PutFixed64(&data, index);
  coding::PutFixed64(&data, state_hash);
  return data;
}

template <typename T>
T Pick(env::Random& random, std::initializer_list<T> choices) {
  return *(choices.begin() + random.Uniform(choices.size()));
}

}  // namespace

std::string SimulationParameters::ToString() const {
  std::ostringstream out;
  out << "nodes=" << node_count << " drop=" << drop_probability
      << " duplicate=" << duplicate_probability << " delay_ms_max=" << delay_ms_max
      << " crash_per_ms=" << crash_per_ms_probability
      << " leader_crash_per_ms=" << leader_crash_per_ms_probability
      << " disk_latency_ms_max=" << disk_latency_ms_max << " pre_vote=" << pre_vote
      << " check_quorum=" << check_quorum << " membership_changes=" << membership_changes
      << " initial_voters=" << initial_voter_count
      << " inflight_messages_max=" << inflight_messages_max
      << " message_bytes_max=" << message_bytes_max;
  return out.str();
}

struct RaftSimulation::Node {
  NodeId id = kNoNode;
  size_t position = 0;
  // Durable: survives crashes.
  MemoryStorage storage;
  // Volatile: lost on crash.
  std::unique_ptr<env::Random> random;
  std::unique_ptr<RawNode> raw;
  std::optional<Ready> ready;  // being persisted
  uint64_t ready_done_ms = 0;
  uint64_t applied_index = 0;
  uint64_t state_hash = 0;
  uint64_t restart_at_ms = 0;
  uint64_t tick_phase_ms = 0;
};

RaftSimulation::RaftSimulation(uint64_t seed, uint64_t fault_phase_ms, uint64_t liveness_ms_max)
    : seed_(seed),
      fault_phase_ms_(fault_phase_ms),
      liveness_ms_max_(liveness_ms_max),
      random_(seed) {
  // CAIRN_SIM_VERBOSE_FROM_MS=<t>: print every message delivered from simulated time t on.
  if (const char* verbose = std::getenv("CAIRN_SIM_VERBOSE_FROM_MS")) {
    verbose_from_ms_ = std::strtoull(verbose, nullptr, 10);
  }
  SimulationParameters& p = parameters_;
  p.node_count = random_.Bernoulli(0.5) ? 3 : 5;
  p.drop_probability = Pick(random_, {0.0, 0.01, 0.05, 0.1, 0.2});
  p.duplicate_probability = Pick(random_, {0.0, 0.01, 0.05});
  p.delay_ms_max = Pick<uint64_t>(random_, {1, 5, 20, 40});
  p.disk_latency_ms_max = Pick<uint64_t>(random_, {0, 2, 10});
  p.partition_per_ms_probability = Pick(random_, {0.0, 1.0 / 3000, 1.0 / 1000});
  p.crash_per_ms_probability = Pick(random_, {0.0, 1.0 / 4000, 1.0 / 1500});
  p.leader_crash_per_ms_probability = Pick(random_, {0.0, 1.0 / 2000, 1.0 / 400});
  p.compact_per_ms_probability = Pick(random_, {0.0, 1.0 / 500, 1.0 / 100});
  p.propose_per_ms_probability = Pick(random_, {1.0 / 50, 1.0 / 10});
  p.pre_vote = random_.Bernoulli(0.75);
  p.check_quorum = random_.Bernoulli(0.75);
  p.inflight_messages_max = Pick<size_t>(random_, {1, 4, 256});
  // 256 bytes is a handful of entries per append: small enough to exercise the limit, large
  // enough that a follower 1000 entries behind catches up within the liveness bound.
  p.message_bytes_max = Pick<uint64_t>(random_, {256, 4096, 1 << 20});
  p.membership_changes = random_.Bernoulli(0.5);
  p.initial_voter_count = p.membership_changes ? Pick<size_t>(random_, {1, 2, 3}) : p.node_count;

  // Every node starts knowing the initial membership; those outside it wait to be added.
  ConfigState config;
  for (NodeId id = 1; id <= p.initial_voter_count; ++id) config.voters.push_back(id);
  config_ = config;
  partition_group_.assign(p.node_count, 0);
  for (size_t i = 0; i < p.node_count; ++i) {
    auto node = std::make_unique<Node>();
    node->id = i + 1;
    node->position = i;
    node->tick_phase_ms = random_.Uniform(kTickMs);
    node->storage.SetInitialConfig(config);
    nodes_.push_back(std::move(node));
  }
  for (auto& node : nodes_) StartNode(*node);
}

RaftSimulation::~RaftSimulation() = default;

void RaftSimulation::Fail(const std::string& what) {
  if (!result_.ok) return;
  result_.ok = false;
  result_.failure = "t=" + std::to_string(now_ms_) + "ms: " + what;
}

void RaftSimulation::Trace(uint64_t a, uint64_t b, uint64_t c, uint64_t d) {
  result_.trace_hash = Mix(Mix(Mix(Mix(result_.trace_hash, a), b), c), d);
}

void RaftSimulation::StartNode(Node& node) {
  Snapshot snapshot = node.storage.GetSnapshot();
  node.applied_index = 0;
  node.state_hash = 0;
  if (!snapshot.IsEmpty()) {
    CAIRN_CHECK(snapshot.data.size() == 16);
    node.applied_index = coding::DecodeFixed64(snapshot.data.data());
    node.state_hash = coding::DecodeFixed64(snapshot.data.data() + 8);
    CAIRN_CHECK(node.applied_index == snapshot.metadata.index);
  }
  node.random = std::make_unique<env::Random>(random_.Next64());
  Config config;
  config.id = node.id;
  config.election_ticks = kElectionTicks;
  config.heartbeat_ticks = 1;
  config.storage = &node.storage;
  config.random = node.random.get();
  config.applied = node.applied_index;
  config.pre_vote = parameters_.pre_vote;
  config.check_quorum = parameters_.check_quorum;
  config.inflight_messages_max = parameters_.inflight_messages_max;
  config.message_bytes_max = parameters_.message_bytes_max;
  config.inflight_bytes_max = parameters_.message_bytes_max * 64;
  node.raw = std::make_unique<RawNode>(config);
  node.ready.reset();
  Trace(now_ms_, 1, node.id, node.applied_index);
}

void RaftSimulation::CrashNode(Node& node) {
  // Everything not persisted is gone: the RawNode, the Ready being written, the applied
  // state machine (rebuilt from the snapshot and the log on restart).
  node.raw.reset();
  node.ready.reset();
  node.random.reset();
  node.restart_at_ms = now_ms_ + random_.UniformRange(kRestartDelayMsMin, kRestartDelayMsMax);
  ++result_.crashes;
  Trace(now_ms_, 2, node.id, 0);
}

void RaftSimulation::Partition() {
  size_t count = nodes_.size();
  if (random_.Bernoulli(0.5)) {
    std::fill(partition_group_.begin(), partition_group_.end(), 0);
    partition_group_[random_.Uniform(count)] = 1;
  } else {
    for (int& group : partition_group_) group = static_cast<int>(random_.Uniform(2));
  }
  Trace(now_ms_, 3, 0, 0);
}

void RaftSimulation::HealNetwork() {
  std::fill(partition_group_.begin(), partition_group_.end(), 0);
  Trace(now_ms_, 4, 0, 0);
}

void RaftSimulation::Send(Message message, uint64_t now_ms, bool faults) {
  uint64_t delay_ms = random_.UniformRange(1, parameters_.delay_ms_max);
  if (faults && random_.Bernoulli(parameters_.duplicate_probability)) {
    uint64_t duplicate_delay_ms = random_.UniformRange(1, parameters_.delay_ms_max);
    network_.emplace(std::make_pair(now_ms + duplicate_delay_ms, sequence_++), message);
  }
  network_.emplace(std::make_pair(now_ms + delay_ms, sequence_++), std::move(message));
}

void RaftSimulation::DeliverDue(uint64_t now_ms) {
  bool faults = now_ms < fault_phase_ms_;
  while (!network_.empty() && network_.begin()->first.first <= now_ms) {
    Message message = std::move(network_.begin()->second);
    network_.erase(network_.begin());
    CAIRN_CHECK(message.to >= 1 && message.to <= nodes_.size());
    CAIRN_CHECK(message.from >= 1 && message.from <= nodes_.size());
    Node& to = *nodes_[message.to - 1];
    Node& from = *nodes_[message.from - 1];
    bool delivered = to.raw != nullptr &&
                     partition_group_[to.position] == partition_group_[from.position] &&
                     !(faults && random_.Bernoulli(parameters_.drop_probability));
    Trace(now_ms, static_cast<uint64_t>(message.type) * 2 + delivered,
          message.from * 16 + message.to, message.term * 1000003 + message.index);
    if (verbose_from_ms_ <= now_ms) {
      std::fprintf(stderr,
                   "t=%llu %s %llu->%llu term=%llu index=%llu log_term=%llu commit=%llu "
                   "entries=%zu reject=%d hint=%llu %s\n",
                   static_cast<unsigned long long>(now_ms),
                   std::string(MessageTypeName(message.type)).c_str(),
                   static_cast<unsigned long long>(message.from),
                   static_cast<unsigned long long>(message.to),
                   static_cast<unsigned long long>(message.term),
                   static_cast<unsigned long long>(message.index),
                   static_cast<unsigned long long>(message.log_term),
                   static_cast<unsigned long long>(message.commit), message.entries.size(),
                   message.reject, static_cast<unsigned long long>(message.reject_hint),
                   delivered ? "" : "DROPPED");
    }
    bool is_snapshot = message.type == MessageType::kSnapshot;
    NodeId to_id = message.to;
    if (delivered) {
      ++result_.messages_delivered;
      Status status = to.raw->Step(std::move(message));
      (void)status;  // e.g. a response from a node this one no longer knows
      Observe(to);
    }
    // The transport tells the sender how a snapshot send ended.
    if (is_snapshot && from.raw != nullptr) {
      from.raw->ReportSnapshot(to_id, !delivered);
      Observe(from);
    }
  }
}

void RaftSimulation::Observe(Node& node) {
  if (node.raw == nullptr) return;
  const Raft& raft = node.raw->raft();
  if (raft.role() != Role::kLeader) return;
  auto [it, inserted] = leader_by_term_.emplace(raft.term(), node.id);
  if (!inserted) {
    if (it->second != node.id) {
      Fail("election safety: nodes " + std::to_string(it->second) + " and " +
           std::to_string(node.id) + " both lead term " + std::to_string(raft.term()));
    }
    return;
  }
  ++result_.elections;
  // Leader completeness: everything applied anywhere is committed, so it is in this log.
  const RaftLog& log = raft.log();
  for (const auto& [index, applied] : applied_) {
    if (index + 1 < log.FirstIndex()) continue;  // compacted, hence committed here too
    if (log.TermOrZero(index) != applied.term) {
      Fail("leader completeness: leader " + std::to_string(node.id) + " of term " +
           std::to_string(raft.term()) + " lacks committed entry " + std::to_string(index));
      return;
    }
  }
}

void RaftSimulation::Apply(Node& node, const Entry& entry) {
  if (entry.index != node.applied_index + 1) {
    Fail("node " + std::to_string(node.id) + " applied index " + std::to_string(entry.index) +
         " after " + std::to_string(node.applied_index));
    return;
  }
  uint64_t data_hash = Mix(HashBytes(entry.data), static_cast<uint64_t>(entry.type));
  uint64_t state_hash = Mix(Mix(node.state_hash, entry.index), Mix(entry.term, data_hash));
  auto [it, inserted] =
      applied_.emplace(entry.index, AppliedEntry{entry.term, data_hash, state_hash});
  if (!inserted && (it->second.term != entry.term || it->second.data_hash != data_hash ||
                    it->second.state_hash != state_hash)) {
    Fail("state machine safety: node " + std::to_string(node.id) +
         " applied a different entry at " + std::to_string(entry.index));
    return;
  }
  if (entry.type == EntryType::kConfigChange) {
    ConfigChange change;
    if (!DecodeConfigChange(entry.data, &change)) {
      Fail("undecodable configuration change at " + std::to_string(entry.index));
      return;
    }
    ConfigState config = node.raw->ApplyConfigChange(change);
    if (inserted) {
      config_ = config;
      ++result_.config_changes;
    }
  }
  node.applied_index = entry.index;
  node.state_hash = state_hash;
  result_.committed_index = std::max(result_.committed_index, entry.index);
  if (entry.data.starts_with("final-")) liveness_values_.insert(entry.data);
}

void RaftSimulation::CompleteReady(Node& node, uint64_t now_ms, bool faults) {
  Ready ready = std::move(*node.ready);
  node.ready.reset();
  HardState durable = node.storage.InitialHardState();
  if (ready.hard_state) {
    const HardState& next = *ready.hard_state;
    if (next.term < durable.term || next.commit < durable.commit) {
      Fail("durability: node " + std::to_string(node.id) + " persisted term/commit going back");
    }
    if (next.term == durable.term && durable.vote != kNoNode && next.vote != durable.vote) {
      Fail("node " + std::to_string(node.id) + " changed its vote within term " +
           std::to_string(next.term));
    }
  }
  if (!ready.snapshot.IsEmpty()) {
    const Snapshot& snapshot = ready.snapshot;
    CAIRN_CHECK(node.storage.ApplySnapshot(snapshot));
    uint64_t index = coding::DecodeFixed64(snapshot.data.data());
    uint64_t state_hash = coding::DecodeFixed64(snapshot.data.data() + 8);
    auto it = applied_.find(index);
    if (index != snapshot.metadata.index || it == applied_.end() ||
        it->second.state_hash != state_hash || it->second.term != snapshot.metadata.term) {
      Fail("snapshot at " + std::to_string(index) + " does not match the applied history");
    }
    node.applied_index = index;
    node.state_hash = state_hash;
    ++result_.snapshots_installed;
  }
  // Log matching: an (index, term) pair always names the same entry and predecessor term.
  for (size_t i = 0; i < ready.entries.size(); ++i) {
    const Entry& entry = ready.entries[i];
    std::optional<uint64_t> previous_term;
    if (i > 0) {
      previous_term = ready.entries[i - 1].term;
    } else {
      Result<uint64_t> term = node.storage.Term(entry.index - 1);
      if (term.ok()) {
        previous_term = *term;
      } else if (!IsCompacted(term.status())) {
        Fail("node " + std::to_string(node.id) + " persisted a gap before " +
             std::to_string(entry.index));
      }
    }
    uint64_t data_hash = Mix(HashBytes(entry.data), static_cast<uint64_t>(entry.type));
    auto key = std::make_pair(entry.index, entry.term);
    auto it = entries_by_index_term_.find(key);
    if (it == entries_by_index_term_.end()) {
      if (previous_term)
        entries_by_index_term_.emplace(key, LoggedEntry{data_hash, *previous_term});
    } else if (it->second.data_hash != data_hash ||
               (previous_term && it->second.previous_term != *previous_term)) {
      Fail("log matching: node " + std::to_string(node.id) + " holds a different entry at index " +
           std::to_string(entry.index) + " term " + std::to_string(entry.term));
    }
  }
  node.storage.Append(ready.entries);
  if (ready.hard_state) node.storage.SetHardState(*ready.hard_state);
  // Only now, with the state durable, may the messages go out.
  for (Message& message : ready.messages) Send(std::move(message), now_ms, faults);
  for (const Entry& entry : ready.committed_entries) Apply(node, entry);
  for (const ReadState& read : ready.read_states) CheckRead(node, read);
  node.raw->Advance();
  Trace(now_ms, 5, node.id, node.applied_index);
  Observe(node);
}

void RaftSimulation::ProcessReadies(Node& node, uint64_t now_ms, bool faults) {
  for (int i = 0; i < kReadiesPerStepMax && node.raw != nullptr; ++i) {
    if (node.ready) {
      if (now_ms < node.ready_done_ms) return;
      CompleteReady(node, now_ms, faults);
      continue;
    }
    if (!node.raw->HasReady()) return;
    node.ready = node.raw->GetReady();
    node.ready_done_ms = now_ms + random_.Uniform(parameters_.disk_latency_ms_max + 1);
  }
}

void RaftSimulation::Compact(Node& node) {
  if (node.raw == nullptr || node.ready) return;
  uint64_t index = node.applied_index;
  if (index <= node.storage.GetSnapshot().metadata.index) return;
  node.storage.CreateSnapshot(index, node.raw->raft().config_state(),
                              EncodeState(index, node.state_hash));
  // Keep a few entries so that slightly lagging followers still get appends.
  uint64_t keep = random_.Uniform(8);
  uint64_t compact_to = index > keep ? index - keep : index;
  compact_to = std::max(compact_to, node.storage.FirstIndex() - 1);
  node.storage.Compact(compact_to);
  Trace(now_ms_, 6, node.id, compact_to);
}

RaftSimulation::Node* RaftSimulation::FindLeader() {
  std::vector<Node*> leaders;
  for (auto& node : nodes_) {
    if (node->raw != nullptr && node->raw->raft().role() == Role::kLeader) {
      leaders.push_back(node.get());
    }
  }
  return leaders.empty() ? nullptr : leaders[random_.Uniform(leaders.size())];
}

void RaftSimulation::ProposeConfigChange() {
  Node* leader = FindLeader();
  if (leader == nullptr) return;
  NodeId id = 1 + random_.Uniform(nodes_.size());
  const ConfigState config = leader->raw->raft().config_state();
  bool is_voter = std::find(config.voters.begin(), config.voters.end(), id) != config.voters.end();
  bool is_learner =
      std::find(config.learners.begin(), config.learners.end(), id) != config.learners.end();
  ConfigChange change{.node_id = id};
  if (is_voter) {
    change.type =
        random_.Bernoulli(0.5) ? ConfigChangeType::kRemoveNode : ConfigChangeType::kAddLearner;
  } else if (is_learner) {
    change.type =
        random_.Bernoulli(0.7) ? ConfigChangeType::kAddVoter : ConfigChangeType::kRemoveNode;
  } else {
    change.type =
        random_.Bernoulli(0.7) ? ConfigChangeType::kAddVoter : ConfigChangeType::kAddLearner;
  }
  Status status = leader->raw->ProposeConfigChange(change);
  Trace(now_ms_, 8, id * 4 + static_cast<uint64_t>(change.type), status.ok());
  Observe(*leader);
}

void RaftSimulation::RequestRead() {
  std::vector<Node*> up;
  for (auto& node : nodes_) {
    if (node->raw != nullptr) up.push_back(node.get());
  }
  if (up.empty()) return;
  Node& node = *up[random_.Uniform(up.size())];
  std::string context = "r" + std::to_string(read_counter_++);
  reads_[context] = result_.committed_index;
  Status status = node.raw->ReadIndex(context);
  Trace(now_ms_, 9, node.id, status.ok());
}

void RaftSimulation::CheckRead(const Node& node, const ReadState& read) {
  auto it = reads_.find(read.context);
  if (it == reads_.end()) {
    Fail("node " + std::to_string(node.id) + " answered an unknown read " + read.context);
    return;
  }
  ++result_.reads;
  if (read.index < it->second) {
    Fail("linearizable read: node " + std::to_string(node.id) + " answered " + read.context +
         " at index " + std::to_string(read.index) + " but index " + std::to_string(it->second) +
         " was applied before the read was issued");
  }
}

bool RaftSimulation::ProposeFromClient(const std::string& value) {
  std::vector<Node*> up;
  std::vector<Node*> leaders;
  for (auto& node : nodes_) {
    if (node->raw == nullptr) continue;
    up.push_back(node.get());
    if (node->raw->raft().role() == Role::kLeader) leaders.push_back(node.get());
  }
  if (up.empty()) return false;
  // Clients mostly find the leader; sometimes they ask a follower, which forwards.
  std::vector<Node*>& candidates = !leaders.empty() && random_.Bernoulli(0.8) ? leaders : up;
  Node& node = *candidates[random_.Uniform(candidates.size())];
  ++result_.proposals;
  bool accepted = node.raw->Propose(value).ok();
  Trace(now_ms_, 7, node.id, accepted);
  Observe(node);
  return accepted;
}

void RaftSimulation::Step(uint64_t now_ms, bool faults) {
  now_ms_ = now_ms;
  DeliverDue(now_ms);
  for (auto& node : nodes_) {
    if (node->raw != nullptr && now_ms % kTickMs == node->tick_phase_ms) {
      node->raw->Tick();
      Observe(*node);
    }
  }
  if (faults) {
    bool partitioned = std::any_of(partition_group_.begin(), partition_group_.end(),
                                   [](int group) { return group != 0; });
    if (random_.Bernoulli(parameters_.partition_per_ms_probability)) {
      if (partitioned) {
        HealNetwork();
      } else {
        Partition();
      }
    }
    if (random_.Bernoulli(parameters_.crash_per_ms_probability)) {
      Node& node = *nodes_[random_.Uniform(nodes_.size())];
      if (node.raw != nullptr) CrashNode(node);
    }
    if (random_.Bernoulli(parameters_.leader_crash_per_ms_probability)) {
      if (Node* leader = FindLeader()) CrashNode(*leader);
    }
    if (random_.Bernoulli(1.0 / 2000)) {
      Node& node = *nodes_[random_.Uniform(nodes_.size())];
      if (node.raw != nullptr) {
        node.raw->TransferLeader(1 + random_.Uniform(nodes_.size()));
        Observe(node);
      }
    }
    if (random_.Bernoulli(parameters_.propose_per_ms_probability)) {
      (void)ProposeFromClient("p" + std::to_string(proposal_counter_++));
    }
    if (random_.Bernoulli(1.0 / 50)) RequestRead();
    if (parameters_.membership_changes && random_.Bernoulli(1.0 / 500)) ProposeConfigChange();
  }
  for (auto& node : nodes_) {
    if (node->raw == nullptr && node->restart_at_ms <= now_ms) StartNode(*node);
  }
  if (random_.Bernoulli(parameters_.compact_per_ms_probability)) {
    Compact(*nodes_[random_.Uniform(nodes_.size())]);
  }
  for (auto& node : nodes_) ProcessReadies(*node, now_ms, faults);
}

SimulationResult RaftSimulation::Run() {
  uint64_t now_ms = 0;
  for (; now_ms < fault_phase_ms_ && result_.ok; ++now_ms) Step(now_ms, /*faults=*/true);
  if (!result_.ok) return result_;

  // Recovery: heal, restart everyone, stop injecting faults. A leader must emerge and a
  // proposal must be applied on every node within liveness_ms_max_.
  HealNetwork();
  for (auto& node : nodes_) {
    if (node->raw == nullptr) StartNode(*node);
  }
  uint64_t deadline_ms = now_ms + liveness_ms_max_;
  uint64_t final_counter = 0;
  for (; now_ms < deadline_ms && result_.ok; ++now_ms) {
    if (liveness_values_.empty() && now_ms % kLivenessProposeEveryMs == 0) {
      (void)ProposeFromClient("final-" + std::to_string(final_counter++));
    }
    Step(now_ms, /*faults=*/false);
    if (liveness_values_.empty()) continue;
    // The first final value applied anywhere must reach every node.
    uint64_t final_index = 0;
    for (const auto& [index, applied] : applied_) {
      (void)applied;
      final_index = std::max(final_index, index);
    }
    // Every member (voter or learner, as of the latest applied configuration) has it.
    auto is_member = [&](NodeId id) {
      return std::find(config_.voters.begin(), config_.voters.end(), id) != config_.voters.end() ||
             std::find(config_.learners.begin(), config_.learners.end(), id) !=
                 config_.learners.end();
    };
    bool everywhere = std::all_of(nodes_.begin(), nodes_.end(), [&](const auto& node) {
      return !is_member(node->id) || node->applied_index >= final_index;
    });
    if (everywhere) return result_;
  }
  if (result_.ok) {
    std::string state;
    for (auto& node : nodes_) {
      const Raft& raft = node->raw->raft();
      state += " node" + std::to_string(node->id) + "{" + std::string(RoleName(raft.role())) +
               " term=" + std::to_string(raft.term()) + " lead=" + std::to_string(raft.lead()) +
               " last=" + std::to_string(raft.log().LastIndex()) +
               " commit=" + std::to_string(raft.log().committed()) +
               " applied=" + std::to_string(node->applied_index);
      ConfigState config = raft.config_state();
      state += " voters=";
      for (NodeId id : config.voters) state += std::to_string(id) + ",";
      state += " learners=";
      for (NodeId id : config.learners) state += std::to_string(id) + ",";
      if (raft.role() == Role::kLeader) {
        for (const auto& [id, progress] : raft.progress()) {
          state += " progress" + std::to_string(id) + "(" +
                   std::string(ProgressStateName(progress.state)) +
                   " match=" + std::to_string(progress.match) +
                   " next=" + std::to_string(progress.next) +
                   " inflight=" + std::to_string(progress.inflights.Count()) +
                   " probe_sent=" + std::to_string(progress.probe_sent) +
                   " active=" + std::to_string(progress.recent_active) + ")";
        }
      }
      state += "}";
    }
    Fail("liveness: no proposal applied on every node within " + std::to_string(liveness_ms_max_) +
         "ms after healing;" + state);
  }
  return result_;
}

}  // namespace cairn::raft::sim
