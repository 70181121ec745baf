// The workload and verification shared by the cluster history tests (cluster_history_test:
// process faults; cluster_partition_test: network partitions).
//
// HistoryClusterTest is a gtest fixture: StartCluster() starts real cairnd members
// (ClusterHarness), StartLoad() runs concurrent clients that send Put, linearizable Range,
// compare-and-swap Txn and DeleteRange on a few keys and record every request in a
// checker::Recorder, and Verify() stops the load, waits for the members to converge, adds
// final linearizable reads of every key through every active member to the history, checks
// the history (linearizable, enough load, enough operations after Healed()) and compares
// HashKV at a common revision.
//
// The cairnd binary: $CAIRN_CAIRND, else CAIRN_CAIRND_DEFAULT_PATH compiled in.
// CAIRN_CLUSTER_SEED fixes the clients' random choices (printed by every test); fault timing
// is wall-clock, so a seed makes a failure likely, not certain, to recur. A failing test
// keeps its directory (member logs, data directories, the history file for `history_check`)
// and names it.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "tests/checker/checker.h"
#include "tests/checker/history.h"
#include "tests/cluster/cluster_harness.h"

namespace cairn::cluster_test {

// Per-RPC deadline of the clients: longer than an election (500 ms) plus a ReadIndex round,
// short enough that a client stuck on a stopped or cut-off member moves on within the scenario.
inline constexpr int kRequestDeadlineMs = 1500;
inline constexpr int kLeaderWaitMs = 10'000;
inline constexpr int kConvergeWaitMs = 20'000;

int64_t NowNs();
void SleepMs(int ms);
std::chrono::system_clock::time_point DeadlineIn(int ms);

class HistoryClient;

class HistoryClusterTest : public ::testing::Test {
 protected:
  HistoryClusterTest();
  ~HistoryClusterTest() override;

  void SetUp() override;
  void TearDown() override;

  int64_t ElapsedMs() const;

  // Options for a cluster of `members` in this test's directory (the caller may change them).
  ClusterOptions Options(int members) const;
  // Starts a fresh cluster and waits for its first leader; returns the leader's index.
  int StartCluster(int members) { return StartCluster(Options(members)); }
  int StartCluster(const ClusterOptions& options);

  // Starts the clients; each starts on member (id % size) and moves on after an error.
  void StartLoad();
  // Adds a client that sends all its requests to member (also while it is stopped, down or cut
  // off).
  void StartPinnedClient(int member);
  void StopLoad();

  // Marks the moment the fault is healed; the history must have definite operations after it.
  void Healed() { healed_ns_ = NowNs(); }

  void Restart(int member);
  int WaitForLeader();
  // Polls until member target leads; returns the last leader seen.
  int WaitForLeaderToBe(int target);

  // One linearizable Range of key through member, recorded in the history by a client of its
  // own. Returns false when the request failed; else the value read ("" when absent) in *value.
  bool RecordedRead(int member, const std::string& key, std::string* value);
  // One Put of a fresh value to key through member, recorded likewise (indeterminate when it
  // fails). Returns whether it was acknowledged; the value in *value.
  bool RecordedPut(int member, const std::string& key, std::string* value);

  // After the load: every active member converges to one (revision, hash), final linearizable
  // reads of every key through every active member join the history (a lost acknowledged write
  // shows there), the history must be linearizable, and HashKV must agree at a common revision.
  void Verify();

  ClusterHarness& cluster() { return *cluster_; }
  const std::vector<std::string>& keys() const { return keys_; }
  uint64_t seed() const { return seed_; }

 private:
  // Saves the history into the test's directory (kept on failure) and returns its path.
  std::string SaveHistory(const checker::History& history);
  void CheckHistory(const checker::History& history);

  uint64_t seed_ = 0;
  std::string dir_;
  std::vector<std::string> keys_;
  std::chrono::steady_clock::time_point start_;
  std::unique_ptr<ClusterHarness> cluster_;
  checker::Recorder recorder_;
  std::atomic<bool> stop_{false};
  std::vector<std::unique_ptr<HistoryClient>> clients_;
  std::vector<std::thread> threads_;
  uint32_t next_client_id_ = 0;
  int64_t healed_ns_ = 0;
  bool history_saved_ = false;
};

}  // namespace cairn::cluster_test
