// Deterministic simulation of Raft groups under faults (see raft_simulation.h).
//
//   raft_sim_test                          300 seeds (the CI default)
//   CAIRN_SIM_SEEDS=5000 raft_sim_test     more seeds (starting at CAIRN_SIM_FIRST_SEED, or 1)
//   CAIRN_SIM_SEED=1234 raft_sim_test      replay exactly one seed (a failure prints it)
#include <gtest/gtest.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

#include "tests/sim/raft_simulation.h"
#include "tests/sim/sim_support.h"

namespace cairn::raft::sim {
namespace {

constexpr uint64_t kFaultPhaseMs = 10'000;
// After healing: a few election rounds with 40 ms message delays, plus catching up a
// follower that missed most of the fault phase (about 1000 entries) at inflight 1.
constexpr uint64_t kLivenessMsMax = 20'000;
// About 7 ms per seed in a Release build: 300 seeds stay far below a minute when loaded.
constexpr uint64_t kDefaultSeedCount = 300;

using sim_support::current_seed;
using sim_support::EnvOr;

SimulationResult RunSeed(uint64_t seed) {
  current_seed = seed;
  RaftSimulation simulation(seed, kFaultPhaseMs, kLivenessMsMax);
  SimulationResult result;
  try {
    result = simulation.Run();
  } catch (const std::exception& exception) {
    result.ok = false;
    result.failure = std::string("exception: ") + exception.what();
  }
  EXPECT_TRUE(result.ok) << "seed " << seed << " (" << simulation.parameters().ToString()
                         << "): " << result.failure << "\nreplay with CAIRN_SIM_SEED=" << seed;
  return result;
}

TEST(RaftSimulationTest, ManySeeds) {
  sim_support::ReportSeedOnAbort("raft simulation");
  if (std::getenv("CAIRN_SIM_SEED") != nullptr) {
    uint64_t seed = EnvOr("CAIRN_SIM_SEED", 0);
    SimulationResult result = RunSeed(seed);
    std::printf(
        "seed %llu: trace %016llx proposals=%llu committed=%llu elections=%llu "
        "crashes=%llu snapshots=%llu messages=%llu config_changes=%llu reads=%llu\n",
        static_cast<unsigned long long>(seed), static_cast<unsigned long long>(result.trace_hash),
        static_cast<unsigned long long>(result.proposals),
        static_cast<unsigned long long>(result.committed_index),
        static_cast<unsigned long long>(result.elections),
        static_cast<unsigned long long>(result.crashes),
        static_cast<unsigned long long>(result.snapshots_installed),
        static_cast<unsigned long long>(result.messages_delivered),
        static_cast<unsigned long long>(result.config_changes),
        static_cast<unsigned long long>(result.reads));
    return;
  }
  uint64_t count = EnvOr("CAIRN_SIM_SEEDS", kDefaultSeedCount);
  uint64_t first = EnvOr("CAIRN_SIM_FIRST_SEED", 1);
  uint64_t committed = 0, elections = 0, crashes = 0, snapshots = 0, config_changes = 0, reads = 0;
  size_t failures = 0;
  for (uint64_t seed = first; seed < first + count; ++seed) {
    SimulationResult result = RunSeed(seed);
    committed += result.committed_index;
    elections += result.elections;
    crashes += result.crashes;
    snapshots += result.snapshots_installed;
    config_changes += result.config_changes;
    reads += result.reads;
    if (!result.ok && ++failures >= 5) break;
  }
  // The runs must actually exercise the machinery, or the checks prove nothing.
  EXPECT_GT(committed, count * 50);
  EXPECT_GT(elections, count);
  EXPECT_GT(crashes, count / 2);
  EXPECT_GT(snapshots, count / 10);
  EXPECT_GT(config_changes, count);
  EXPECT_GT(reads, count * 50);
  std::printf(
      "%llu seeds: committed=%llu elections=%llu crashes=%llu snapshots=%llu "
      "config_changes=%llu reads=%llu\n",
      static_cast<unsigned long long>(count), static_cast<unsigned long long>(committed),
      static_cast<unsigned long long>(elections), static_cast<unsigned long long>(crashes),
      static_cast<unsigned long long>(snapshots), static_cast<unsigned long long>(config_changes),
      static_cast<unsigned long long>(reads));
}

TEST(RaftSimulationTest, SameSeedSameTrace) {
  for (uint64_t seed : {7ULL, 99ULL, 123456789ULL}) {
    SimulationResult first = RaftSimulation(seed, 3000, kLivenessMsMax).Run();
    SimulationResult second = RaftSimulation(seed, 3000, kLivenessMsMax).Run();
    EXPECT_EQ(first.trace_hash, second.trace_hash) << seed;
    EXPECT_EQ(first.committed_index, second.committed_index) << seed;
  }
  SimulationResult a = RaftSimulation(1, 3000, kLivenessMsMax).Run();
  SimulationResult b = RaftSimulation(2, 3000, kLivenessMsMax).Run();
  EXPECT_NE(a.trace_hash, b.trace_hash);
}

}  // namespace
}  // namespace cairn::raft::sim
