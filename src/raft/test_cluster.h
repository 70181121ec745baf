// TestCluster: a synchronous, loss-free harness for raft unit tests. Each node has a
// MemoryStorage, its own seeded Random and a RawNode; Stabilize() processes Readys and
// delivers messages until nothing is left, except across cut links.
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <map>
#include <memory>
#include <set>
#include <utility>
#include <vector>

#include "src/raft/raw_node.h"

namespace cairn::raft::testing {

struct TestNode {
  NodeId id = kNoNode;
  MemoryStorage storage;
  std::unique_ptr<env::Random> random;
  std::unique_ptr<RawNode> node;
  std::vector<Entry> applied;  // normal entries applied, in order
  std::vector<ReadState> read_states;
};

class TestCluster {
 public:
  // Nodes 1..size, all voters. `adjust` may change each node's Config and storage first.
  explicit TestCluster(size_t size, std::function<void(Config&, MemoryStorage&)> adjust = {})
      : adjust_(std::move(adjust)) {
    ConfigState config;
    for (NodeId id = 1; id <= size; ++id) config.voters.push_back(id);
    for (NodeId id = 1; id <= size; ++id) {
      auto node = std::make_unique<TestNode>();
      node->id = id;
      node->storage.SetInitialConfig(config);
      nodes_[id] = std::move(node);
      Start(id);
    }
  }

  // (Re)creates the RawNode of `id` from its storage, as after a restart.
  void Start(NodeId id) {
    TestNode& node = *nodes_.at(id);
    Config config;
    config.id = id;
    config.election_ticks = 10;
    config.heartbeat_ticks = 1;
    config.storage = &node.storage;
    node.random = std::make_unique<env::Random>(id * 7919);
    config.random = node.random.get();
    if (adjust_) adjust_(config, node.storage);
    node.node = std::make_unique<RawNode>(config);
  }

  // Adds a node that knows `config` but is not (yet) in it, as a joining node would.
  void AddNode(NodeId id, const ConfigState& config) {
    auto node = std::make_unique<TestNode>();
    node->id = id;
    node->storage.SetInitialConfig(config);
    nodes_[id] = std::move(node);
    Start(id);
  }

  TestNode& at(NodeId id) { return *nodes_.at(id); }
  RawNode& node(NodeId id) { return *nodes_.at(id)->node; }
  const Raft& raft(NodeId id) { return nodes_.at(id)->node->raft(); }

  void Cut(NodeId a, NodeId b) {
    cut_.insert({a, b});
    cut_.insert({b, a});
  }
  void Isolate(NodeId id) {
    for (auto& [other, node] : nodes_) {
      if (other != id) Cut(id, other);
    }
  }
  void Heal() { cut_.clear(); }
  // Messages for which `filter` returns true are dropped.
  void SetDropFilter(std::function<bool(const Message&)> filter) { drop_ = std::move(filter); }

  // Handles every pending Ready; returns the messages they carried.
  std::vector<Message> ProcessReadies() {
    std::vector<Message> out;
    for (auto& [id, node] : nodes_) {
      while (node->node->HasReady()) {
        Ready ready = node->node->GetReady();
        if (!ready.snapshot.IsEmpty()) node->storage.ApplySnapshot(ready.snapshot);
        node->storage.Append(ready.entries);
        if (ready.hard_state) node->storage.SetHardState(*ready.hard_state);
        for (const Entry& entry : ready.committed_entries) {
          if (entry.type == EntryType::kConfigChange) {
            ConfigChange change;
            EXPECT_TRUE(DecodeConfigChange(entry.data, &change));
            node->node->ApplyConfigChange(change);
          } else if (!entry.data.empty()) {
            node->applied.push_back(entry);
          }
        }
        for (ReadState& read : ready.read_states) node->read_states.push_back(read);
        for (Message& message : ready.messages) out.push_back(std::move(message));
        node->node->Advance();
      }
    }
    return out;
  }

  // Delivers messages (and the ones they cause) until none is left. Returns how many were
  // delivered.
  size_t Stabilize() {
    size_t delivered = 0;
    for (;;) {
      std::vector<Message> messages = ProcessReadies();
      if (messages.empty()) return delivered;
      for (Message& message : messages) {
        sent_.push_back(message);
        if (cut_.contains({message.from, message.to})) continue;
        if (drop_ && drop_(message)) continue;
        if (!nodes_.contains(message.to)) continue;
        ++delivered;
        NodeId from = message.from;
        NodeId to = message.to;
        bool is_snapshot = message.type == MessageType::kSnapshot;
        Status status = node(to).Step(std::move(message));
        (void)status;
        // The transport reports a delivered snapshot back to the sender.
        if (is_snapshot && nodes_.contains(from)) node(from).ReportSnapshot(to, false);
      }
    }
  }

  void Tick(NodeId id, int ticks = 1) {
    for (int i = 0; i < ticks; ++i) node(id).Tick();
  }
  void TickAll(int ticks = 1) {
    for (int i = 0; i < ticks; ++i) {
      for (auto& [id, node] : nodes_) node->node->Tick();
      Stabilize();
    }
  }
  void Elect(NodeId id) {
    ASSERT_TRUE(node(id).Campaign().ok());
    Stabilize();
    ASSERT_EQ(raft(id).role(), Role::kLeader);
  }
  void Propose(NodeId id, std::string data) {
    ASSERT_TRUE(node(id).Propose(std::move(data)).ok());
    Stabilize();
  }
  // Messages seen by Stabilize since the last ClearSent (delivered or not).
  const std::vector<Message>& sent() const { return sent_; }
  void ClearSent() { sent_.clear(); }
  size_t size() const { return nodes_.size(); }

 private:
  std::function<void(Config&, MemoryStorage&)> adjust_;
  std::map<NodeId, std::unique_ptr<TestNode>> nodes_;
  std::set<std::pair<NodeId, NodeId>> cut_;
  std::function<bool(const Message&)> drop_;
  std::vector<Message> sent_;
};

// Entries with the given terms at indexes 1, 2, ...
inline std::vector<Entry> EntriesWithTerms(const std::vector<uint64_t>& terms) {
  std::vector<Entry> entries;
  for (size_t i = 0; i < terms.size(); ++i) {
    entries.push_back(Entry{.term = terms[i], .index = i + 1, .data = "x"});
  }
  return entries;
}

}  // namespace cairn::raft::testing
