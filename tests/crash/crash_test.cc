// Crash test (issue 2, "What must show" 3): a child process (crash_writer) performs durable
// writes from several threads and records each acknowledgment; this test kills it with
// SIGKILL at random moments, many times, reopens the store and checks:
//   1. every acknowledged put is present with its value, unless a later acknowledged delete
//      removed it; every acknowledged delete is absent;
//   2. each counter holds at least its last acknowledged value, and at most one more per kill
//      that landed during that counter's increment since then (an increment may be durable
//      but unacknowledged when the kill lands, and the next run starts from it);
//   3. the revision is at least every acknowledged revision;
//   4. the state equals the replay of the durable log: the log (WAL and Raft hard state)
//      copied to a fresh directory and replayed into an in-memory engine gives the same
//      revision and HashKV.
// Iterations: CAIRN_CRASH_ITERATIONS (default 25); seed: CAIRN_CRASH_SEED (default random,
// printed so that a failure can be replayed).
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <thread>
#include <vector>

#include "cairn/store.h"

extern char** environ;

namespace cairn {
namespace {

namespace fs = std::filesystem;

struct Expectations {
  std::map<std::string, std::string> present;  // key -> value
  std::set<std::string> deleted;
  // Keys whose delete may have been in flight at the kill: present or absent are both right.
  std::set<std::string> maybe_deleted;
  std::map<std::string, int64_t> counters;  // key -> last acknowledged value
  // key -> kills that landed during an increment of the counter, in the run of its last
  // acknowledged increment or later: each may have left one durable, unacknowledged increment.
  std::map<std::string, int64_t> unacknowledged_increments;
  int64_t revision_max = 0;
  size_t acks = 0;
};

// Replays the writer's per-thread logic (see crash_writer.cc) over the ack lines.
Expectations ReadAcks(const fs::path& file) {
  struct Thread {
    int64_t last_seq = -1;
    std::vector<std::string> stack;  // acknowledged puts not yet deleted, newest last
  };
  std::map<std::pair<int, int>, Thread> threads;  // (run, thread)
  std::map<std::string, int> last_increment_run;  // counter key -> run of its last acked increment
  Expectations e;
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream words(line);
    std::string kind, key;
    int run = 0, thread = 0;
    int64_t seq = 0;
    words >> kind >> run >> thread >> seq >> key;
    if (kind != "P" && kind != "D" && kind != "C") continue;
    Thread& t = threads[{run, thread}];
    EXPECT_EQ(seq, t.last_seq + 1) << "ack lines out of order: " << line;
    t.last_seq = seq;
    ++e.acks;
    if (kind == "P") {
      std::string value;
      int64_t rev = 0;
      words >> value >> rev;
      e.present[key] = value;
      t.stack.push_back(key);
      e.revision_max = std::max(e.revision_max, rev);
    } else if (kind == "D") {
      int64_t rev = 0;
      words >> rev;
      EXPECT_TRUE(!t.stack.empty() && t.stack.back() == key) << line;
      if (!t.stack.empty()) t.stack.pop_back();
      e.present.erase(key);
      e.deleted.insert(key);
      e.revision_max = std::max(e.revision_max, rev);
    } else {
      int64_t value = 0;
      words >> value;
      e.counters[key] = std::max(e.counters[key], value);
      last_increment_run[key] = std::max(last_increment_run[key], run);
    }
  }
  // The operation each thread had in flight when its run was killed (a thread that acked
  // nothing had a put in flight).
  for (const auto& [id, t] : threads) {
    const auto& [run, thread] = id;
    const int64_t next = t.last_seq + 1;
    if (next % 10 == 9) {
      const std::string counter = "counter/t" + std::to_string(thread);
      auto last = last_increment_run.find(counter);
      if (last != last_increment_run.end() && run >= last->second) {
        ++e.unacknowledged_increments[counter];
      }
    } else if (next % 7 == 6 && !t.stack.empty()) {
      e.maybe_deleted.insert(t.stack.back());
    }
  }
  return e;
}

fs::path WriterBinary() {
  return fs::read_symlink("/proc/self/exe").parent_path() / "crash_writer";
}

pid_t Spawn(const std::vector<std::string>& args) {
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = 0;
  int rc = posix_spawn(&pid, argv[0], nullptr, nullptr, argv.data(), environ);
  EXPECT_EQ(rc, 0) << "posix_spawn " << args[0];
  return pid;
}

std::unique_ptr<Store> OpenStore(const fs::path& dir, bool memory_engine,
                                 uint64_t checkpoint_entries) {
  StoreOptions options;
  options.checkpoint_interval_entries = checkpoint_entries;
  options.dir = dir.string();
  options.memory_engine = memory_engine;
  options.block_cache_bytes = 8 << 20;
  options.wal_segment_size_bytes = 256 << 10;
  auto store = Store::Open(options);
  EXPECT_TRUE(store.ok()) << store.status().ToString();
  return store.ok() ? std::move(store).value() : nullptr;
}

void CheckAcknowledged(Store* store, const Expectations& e) {
  for (const auto& [key, value] : e.present) {
    auto kv = store->Get(key);
    ASSERT_TRUE(kv.ok()) << kv.status().ToString();
    if (!kv->has_value() && e.maybe_deleted.count(key)) continue;  // its delete was in flight
    ASSERT_TRUE(kv->has_value()) << "acknowledged put lost: " << key;
    ASSERT_EQ((*kv)->value(), value) << key;
  }
  for (const auto& key : e.deleted) {
    auto kv = store->Get(key);
    ASSERT_TRUE(kv.ok());
    ASSERT_FALSE(kv->has_value()) << "acknowledged delete lost: " << key;
  }
  for (const auto& [key, value] : e.counters) {
    auto kv = store->Get(key);
    ASSERT_TRUE(kv.ok() && kv->has_value()) << "counter lost: " << key;
    int64_t stored = std::stoll((*kv)->value());
    ASSERT_GE(stored, value) << "acknowledged increment lost: " << key;
    const int64_t in_flight =
        e.unacknowledged_increments.count(key) ? e.unacknowledged_increments.at(key) : 0;
    ASSERT_LE(stored, value + in_flight)
        << "increment applied twice: " << key << " (" << in_flight
        << " kills during its increments since its last acknowledged one)";
  }
  ASSERT_GE(store->CurrentRevision(), e.revision_max);
}

// The state must equal a replay of the log from its first entry.
void CheckEqualsLogReplay(Store* store, const fs::path& dir, const fs::path& scratch) {
  fs::remove_all(scratch);
  fs::create_directories(scratch);
  fs::copy(dir / "wal", scratch / "wal", fs::copy_options::recursive);
  // The Raft hard state (term, vote) belongs to the durable log as well.
  fs::copy(dir / "raft", scratch / "raft", fs::copy_options::recursive);
  auto replayed = OpenStore(scratch, /*memory_engine=*/true, /*checkpoint_entries=*/0);
  ASSERT_NE(replayed, nullptr);
  ASSERT_EQ(replayed->CurrentRevision(), store->CurrentRevision());
  auto a = store->HashKV(0);
  auto b = replayed->HashKV(0);
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_EQ(a->hash(), b->hash()) << "state differs from the log's replay";
  ASSERT_EQ(replayed->Close().code(), StatusCode::kOk);
}

void RunCrashLoop(const std::string& name, uint64_t checkpoint_entries, bool check_replay) {
  const char* iterations_env = std::getenv("CAIRN_CRASH_ITERATIONS");
  const int iterations = iterations_env ? std::atoi(iterations_env) : 25;
  const char* seed_env = std::getenv("CAIRN_CRASH_SEED");
  const uint64_t seed = seed_env ? std::strtoull(seed_env, nullptr, 10) : std::random_device{}();
  std::printf("[crash] %s: seed %llu (CAIRN_CRASH_SEED=%llu to replay), %d iterations\n",
              name.c_str(), static_cast<unsigned long long>(seed),
              static_cast<unsigned long long>(seed), iterations);
  std::mt19937_64 random(seed);

  const fs::path root =
      fs::temp_directory_path() / ("cairn_crash_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(root);
  fs::create_directories(root);
  const fs::path dir = root / "data";
  const fs::path acks = root / "acks.log";
  size_t total_acks = 0;
  for (int i = 0; i < iterations; ++i) {
    pid_t pid = Spawn({WriterBinary().string(), dir.string(), acks.string(), std::to_string(i), "8",
                       std::to_string(checkpoint_entries)});
    // Kill at a random moment: one time in four from the spawn (often during open and
    // replay), otherwise after this writer's first acknowledgment (under write load), so that
    // a slow start (sanitizers, a busy machine) still leaves writes to check.
    const uint64_t acks_before = fs::exists(acks) ? fs::file_size(acks) : 0;
    if (random() % 4 != 0) {
      for (int waited_ms = 0; waited_ms < 20000; waited_ms += 5) {
        if (fs::exists(acks) && fs::file_size(acks) > acks_before) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20 + random() % 400));
    ASSERT_EQ(::kill(pid, SIGKILL), 0);
    int wstatus = 0;
    ASSERT_EQ(::waitpid(pid, &wstatus, 0), pid);
    ASSERT_TRUE(WIFSIGNALED(wstatus) && WTERMSIG(wstatus) == SIGKILL)
        << "crash_writer exited on its own (status " << wstatus << "): it found an error";

    Expectations e = ReadAcks(acks);
    auto store = OpenStore(dir, /*memory_engine=*/false, checkpoint_entries);
    ASSERT_NE(store, nullptr) << "iteration " << i << ", seed " << seed;
    CheckAcknowledged(store.get(), e);
    if (check_replay) CheckEqualsLogReplay(store.get(), dir, root / "replay");
    ASSERT_TRUE(store->Close().ok());
    if (::testing::Test::HasFatalFailure()) {
      ADD_FAILURE() << "iteration " << i << ", seed " << seed;
      return;
    }
    total_acks = e.acks;
  }
  std::printf("[crash] %s: %zu acknowledged writes checked across %d kills\n", name.c_str(),
              total_acks, iterations);
  EXPECT_GT(total_acks, static_cast<size_t>(iterations)) << "the writer barely wrote anything";
  fs::remove_all(root);
}

// No automatic checkpoints: the whole log is kept, so the state can be compared with a
// replay of the log from its first entry.
TEST(CrashTest, KillNineKeepsEveryAcknowledgedWriteAndEqualsLogReplay) {
  RunCrashLoop("replay", /*checkpoint_entries=*/0, /*check_replay=*/true);
}

// Frequent checkpoints: kills also land during engine flushes and WAL segment deletion.
TEST(CrashTest, KillNineDuringCheckpointsKeepsEveryAcknowledgedWrite) {
  RunCrashLoop("checkpoint", /*checkpoint_entries=*/300, /*check_replay=*/false);
}

}  // namespace
}  // namespace cairn
