// RaftSimulation: a deterministic, single-threaded simulation of a Raft group (3 or 5
// nodes) driven by one 64-bit seed. Simulated time advances in milliseconds; nodes tick
// every 10 ms (with per-node phase offsets). The in-memory network drops, delays (and so
// reorders), duplicates and partitions messages; nodes crash — at random and, in some
// seeds, aimed at the current leader — losing everything not yet persisted (including a
// Ready being written), and restart from their MemoryStorage; nodes compact their logs,
// so lagging followers need snapshots. Persisting a Ready takes
// simulated disk time, during which the node keeps receiving messages and ticks. Clients
// propose (mostly to the leader, sometimes to followers, which forward), issue ReadIndex
// requests, ask for leader transfers, and — in half the seeds — change the membership one
// node at a time (add/remove voters and learners, promote, demote, remove the leader).
//
// After every step the Raft safety properties are checked:
//   election safety      at most one leader per term;
//   log matching         an (index, term) pair always names the same entry and the same
//                        predecessor term, so equal pairs mean equal prefixes;
//   leader completeness  a new leader holds every entry any node has applied;
//   state machine safety no two nodes apply different entries at one index; snapshots
//                        installed match the applied history at their index;
//   durability           persisted term and commit never go backwards, nor a vote within
//                        a term; messages leave only after the Ready's state is persisted;
//   linearizable reads   a ReadIndex answer is >= every index applied anywhere before the
//                        request was issued.
// After the fault phase, the network heals and every node restarts; liveness requires a
// leader and a committed, applied-everywhere proposal within a bounded simulated time.
//
// Same seed, same run: every choice comes from the seed, containers are ordered, and
// SimulationResult::trace_hash digests the event sequence so tests can check replay.
//
// Not simulated here (a later node-level simulation will): torn or partially synced WAL
// writes — a Ready is persisted atomically or not at all.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "src/env/random.h"
#include "src/raft/raw_node.h"

namespace cairn::raft::sim {

// Parameters drawn from the seed (printed with a failure).
struct SimulationParameters {
  size_t node_count = 3;
  double drop_probability = 0;
  double duplicate_probability = 0;
  uint64_t delay_ms_max = 1;
  uint64_t disk_latency_ms_max = 0;
  double partition_per_ms_probability = 0;
  double crash_per_ms_probability = 0;
  // Crashes aimed at the current leader: leader churn is where commit rules matter.
  double leader_crash_per_ms_probability = 0;
  double compact_per_ms_probability = 0;
  double propose_per_ms_probability = 0;
  bool pre_vote = true;
  bool check_quorum = true;
  // Membership changes: the group starts with initial_voter_count voters (nodes 1..n); the
  // other nodes wait to be added.
  bool membership_changes = false;
  size_t initial_voter_count = 3;
  size_t inflight_messages_max = 256;
  uint64_t message_bytes_max = 1024;

  std::string ToString() const;
};

struct SimulationResult {
  bool ok = true;
  std::string failure;  // the first violated property, with context
  uint64_t trace_hash = 0;
  uint64_t proposals = 0;
  uint64_t committed_index = 0;  // highest index applied anywhere
  uint64_t elections = 0;        // distinct terms with a leader
  uint64_t crashes = 0;
  uint64_t snapshots_installed = 0;
  uint64_t messages_delivered = 0;
  uint64_t config_changes = 0;  // applied
  uint64_t reads = 0;           // ReadIndex answers checked
};

class RaftSimulation {
 public:
  // The fault phase lasts fault_phase_ms of simulated time; then liveness_ms_max is the
  // bound for recovery.
  RaftSimulation(uint64_t seed, uint64_t fault_phase_ms, uint64_t liveness_ms_max);
  ~RaftSimulation();
  RaftSimulation(const RaftSimulation&) = delete;
  RaftSimulation& operator=(const RaftSimulation&) = delete;

  SimulationResult Run();
  const SimulationParameters& parameters() const { return parameters_; }

 private:
  struct Node;
  struct InFlight {
    uint64_t deliver_time_ms;
    uint64_t sequence;
    Message message;
  };

  void Step(uint64_t now_ms, bool faults);
  void StartNode(Node& node);
  void CrashNode(Node& node);
  void Partition();
  void HealNetwork();
  void Send(Message message, uint64_t now_ms, bool faults);
  void DeliverDue(uint64_t now_ms);
  void ProcessReadies(Node& node, uint64_t now_ms, bool faults);
  void CompleteReady(Node& node, uint64_t now_ms, bool faults);
  void Compact(Node& node);
  bool ProposeFromClient(const std::string& value);
  void ProposeConfigChange();
  void RequestRead();
  void CheckRead(const Node& node, const ReadState& read);
  Node* FindLeader();
  void Apply(Node& node, const Entry& entry);
  void Observe(Node& node);
  void Fail(const std::string& what);
  void Trace(uint64_t a, uint64_t b, uint64_t c, uint64_t d);

  uint64_t seed_;
  uint64_t fault_phase_ms_;
  uint64_t liveness_ms_max_;
  env::Random random_;
  SimulationParameters parameters_;
  std::vector<std::unique_ptr<Node>> nodes_;
  std::map<std::pair<uint64_t, uint64_t>, Message> network_;  // (deliver time, seq)
  uint64_t sequence_ = 0;
  std::vector<int> partition_group_;  // per node index
  uint64_t now_ms_ = 0;
  uint64_t verbose_from_ms_ = UINT64_MAX;

  // Global history for the checks.
  std::map<uint64_t, NodeId> leader_by_term_;
  struct LoggedEntry {
    uint64_t data_hash;
    uint64_t previous_term;
  };
  std::map<std::pair<uint64_t, uint64_t>, LoggedEntry> entries_by_index_term_;
  struct AppliedEntry {
    uint64_t term;
    uint64_t data_hash;
    uint64_t state_hash;  // hash chain of everything applied up to here
  };
  std::map<uint64_t, AppliedEntry> applied_;  // by index
  uint64_t proposal_counter_ = 0;
  uint64_t read_counter_ = 0;
  // ReadIndex requests: context -> the highest index applied anywhere when it was issued.
  // Every answer must be at least that (reads observe every acknowledged write).
  std::map<std::string, uint64_t> reads_;
  // Membership as of the highest applied index.
  ConfigState config_;
  std::set<std::string> liveness_values_;
  SimulationResult result_;
};

}  // namespace cairn::raft::sim
