// WAL micro benchmarks on the real disk.
//
//   BM_RawWriteSync/<mode>        4 KiB pwrite + fdatasync latency, without the WAL; mode 0:
//                                 the file grows, 1: fallocated (unwritten extents), 2: the file
//                                 was filled with zeros first (overwrite in place).
//   BM_WalAppendSync/<n>/<prealloc>  n Wal::Append of 256-byte payloads, then one Sync.
//   BM_WalAppendBatchSync/<n>     the same with one AppendBatch (one pwrite) per Sync.
//   BM_GroupCommit/threads:<t>    t threads each calling GroupCommitter::Append (256 bytes):
//                                 durable appends per second.
//   BM_GroupCommitAsync/<k>       one thread keeping k entries in flight with Submit.
//
// The directory is $CAIRN_BENCH_DIR, else $TMPDIR, else /tmp; it must be on the real disk
// (the benchmark reports the file system type and warns on tmpfs). Run:
//   build-wal/bin/wal_bench --benchmark_counters_tabular=true
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "src/base/check.h"
#include "src/base/logging.h"
#include "src/env/posix_file_system.h"
#include "src/wal/group_committer.h"
#include "src/wal/wal.h"

namespace cairn::wal {
namespace {

constexpr size_t kPayloadBytes = 256;
constexpr size_t kRawWriteBytes = 4096;
constexpr off_t kRawFileBytes = 64 << 20;

const std::string& BenchRoot() {
  static const std::string root = [] {
    const char* dir = std::getenv("CAIRN_BENCH_DIR");
    if (dir == nullptr || *dir == '\0') dir = std::getenv("TMPDIR");
    if (dir == nullptr || *dir == '\0') dir = "/tmp";
    std::string path = std::string(dir) + "/cairn_wal_bench_" + std::to_string(::getpid());
    std::filesystem::create_directories(path);
    return path;
  }();
  return root;
}

std::string FileSystemType(const std::string& path) {
  struct statfs info;
  if (::statfs(path.c_str(), &info) != 0) return "unknown";
  switch (static_cast<unsigned long>(info.f_type)) {
    case 0xEF53:
      return "ext4";
    case 0x01021994:
      return "tmpfs (NOT a real disk: numbers are meaningless)";
    case 0x58465342:
      return "xfs";
    case 0x9123683E:
      return "btrfs";
    case 0x794c7630:
      return "overlayfs";
  }
  char hex[32];
  std::snprintf(hex, sizeof(hex), "0x%lx", static_cast<unsigned long>(info.f_type));
  return hex;
}

std::string FreshDir(const std::string& name) {
  std::string dir = BenchRoot() + "/" + name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

void ReportLatency(benchmark::State& state, std::vector<double>* micros) {
  if (micros->empty()) return;
  std::sort(micros->begin(), micros->end());
  auto at = [&](double q) { return (*micros)[static_cast<size_t>(q * (micros->size() - 1))]; };
  state.counters["p50_us"] = at(0.50);
  state.counters["p99_us"] = at(0.99);
}

void BM_RawWriteSync(benchmark::State& state) {
  const int mode = static_cast<int>(state.range(0));
  const std::string path = FreshDir("raw") + "/file";
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  CAIRN_CHECK(fd >= 0);
  if (mode == 1) CAIRN_CHECK(::fallocate(fd, 0, 0, kRawFileBytes) == 0);
  if (mode == 2) {
    const std::string zeros(1 << 20, '\0');
    for (off_t offset = 0; offset < kRawFileBytes; offset += static_cast<off_t>(zeros.size())) {
      CAIRN_CHECK(::pwrite(fd, zeros.data(), zeros.size(), offset) ==
                  static_cast<ssize_t>(zeros.size()));
    }
    CAIRN_CHECK(::fsync(fd) == 0);
  }
  const std::string block(kRawWriteBytes, 'w');
  std::vector<double> micros;
  off_t offset = 0;
  for (auto _ : state) {
    if (offset + static_cast<off_t>(kRawWriteBytes) > kRawFileBytes) {
      state.PauseTiming();
      offset = 0;
      if (mode == 0) CAIRN_CHECK(::ftruncate(fd, 0) == 0 && ::fsync(fd) == 0);
      state.ResumeTiming();
    }
    const auto start = std::chrono::steady_clock::now();
    CAIRN_CHECK(::pwrite(fd, block.data(), block.size(), offset) ==
                static_cast<ssize_t>(block.size()));
    CAIRN_CHECK(::fdatasync(fd) == 0);
    micros.push_back(
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start)
            .count());
    offset += static_cast<off_t>(kRawWriteBytes);
  }
  ::close(fd);
  ReportLatency(state, &micros);
  state.SetItemsProcessed(state.iterations());
  state.SetLabel(mode == 0 ? "growing file" : mode == 1 ? "fallocated" : "zero-filled");
}
BENCHMARK(BM_RawWriteSync)->Arg(0)->Arg(1)->Arg(2)->UseRealTime()->MinTime(1.0);

void BM_WalAppendSync(benchmark::State& state) {
  const int64_t entries = state.range(0);
  WalOptions options;
  options.preallocate = state.range(1) != 0;
  auto wal = Wal::Open(env::PosixFileSystem::Default(), FreshDir("append"), options);
  CAIRN_CHECK_OK(wal.status());
  const std::string payload(kPayloadBytes, 'p');
  std::vector<double> micros;
  for (auto _ : state) {
    const auto start = std::chrono::steady_clock::now();
    for (int64_t i = 0; i < entries; ++i) CAIRN_CHECK((*wal)->Append(payload).ok());
    CAIRN_CHECK_OK((*wal)->Sync());
    micros.push_back(
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start)
            .count());
  }
  ReportLatency(state, &micros);
  state.SetItemsProcessed(state.iterations() * entries);
  state.SetBytesProcessed(state.iterations() * entries * static_cast<int64_t>(kPayloadBytes));
  state.SetLabel(options.preallocate ? "preallocated" : "growing");
}
BENCHMARK(BM_WalAppendSync)
    ->ArgsProduct({benchmark::CreateRange(1, 1024, 2), {1, 0}})
    ->ArgNames({"entries", "prealloc"})
    ->UseRealTime();

// The same with one AppendBatch (one pwrite) instead of n Append calls.
void BM_WalAppendBatchSync(benchmark::State& state) {
  const int64_t entries = state.range(0);
  auto wal = Wal::Open(env::PosixFileSystem::Default(), FreshDir("batch"), WalOptions());
  CAIRN_CHECK_OK(wal.status());
  const std::string payload(kPayloadBytes, 'p');
  const std::vector<std::string_view> batch(static_cast<size_t>(entries), payload);
  for (auto _ : state) {
    CAIRN_CHECK((*wal)->AppendBatch(batch).ok());
    CAIRN_CHECK_OK((*wal)->Sync());
  }
  state.SetItemsProcessed(state.iterations() * entries);
}
BENCHMARK(BM_WalAppendBatchSync)->Arg(1)->Arg(64)->Arg(1024)->ArgNames({"entries"})->UseRealTime();

struct Shared {
  std::unique_ptr<Wal> wal;
  std::unique_ptr<GroupCommitter> committer;
};
Shared* shared = nullptr;

void BM_GroupCommit(benchmark::State& state) {
  if (state.thread_index() == 0) {
    auto wal = Wal::Open(env::PosixFileSystem::Default(), FreshDir("group"), WalOptions());
    CAIRN_CHECK_OK(wal.status());
    shared = new Shared;
    shared->wal = std::move(wal).value();
    shared->committer =
        std::make_unique<GroupCommitter>(shared->wal.get(), GroupCommitter::Options());
  }
  const std::string payload(kPayloadBytes, 'g');
  for (auto _ : state) {
    auto index = shared->committer->Append(payload);
    CAIRN_CHECK(index.ok());
    benchmark::DoNotOptimize(index);
  }
  state.SetItemsProcessed(state.iterations());
  if (state.thread_index() == 0) {
    shared->committer->Stop();
    const GroupCommitter::Stats stats = shared->committer->stats();
    state.counters["entries_per_sync"] = static_cast<double>(stats.entries) /
                                         static_cast<double>(std::max<uint64_t>(stats.batches, 1));
    delete shared;
    shared = nullptr;
  }
}
BENCHMARK(BM_GroupCommit)->Threads(1)->Threads(8)->Threads(64)->UseRealTime()->MinTime(1.0);

// One producer thread keeps up to `inflight` entries submitted (callbacks release slots):
// how a Raft driver that never blocks a thread per entry uses the committer.
void BM_GroupCommitAsync(benchmark::State& state) {
  const int64_t inflight_max = state.range(0);
  auto wal = Wal::Open(env::PosixFileSystem::Default(), FreshDir("async"), WalOptions());
  CAIRN_CHECK_OK(wal.status());
  GroupCommitter committer(wal->get(), GroupCommitter::Options());
  std::mutex mutex;
  std::condition_variable slot_freed;
  int64_t inflight = 0;  // GUARDED_BY(mutex)
  const std::string payload(kPayloadBytes, 'a');
  auto done = [&](const Status& status, uint64_t) {
    CAIRN_CHECK_OK(status);
    std::lock_guard<std::mutex> lock(mutex);
    if (inflight-- == inflight_max) slot_freed.notify_one();
  };
  for (auto _ : state) {
    {
      std::unique_lock<std::mutex> lock(mutex);
      slot_freed.wait(lock, [&] { return inflight < inflight_max; });
      ++inflight;
    }
    CAIRN_CHECK_OK(committer.Submit(payload, done));
  }
  committer.Stop();  // drains the entries still in flight
  state.SetItemsProcessed(state.iterations());
  const GroupCommitter::Stats stats = committer.stats();
  state.counters["entries_per_sync"] = static_cast<double>(stats.entries) /
                                       static_cast<double>(std::max<uint64_t>(stats.batches, 1));
}
BENCHMARK(BM_GroupCommitAsync)
    ->Arg(64)
    ->Arg(1024)
    ->ArgNames({"inflight"})
    ->UseRealTime()
    ->MinTime(1.0);

}  // namespace
}  // namespace cairn::wal

int main(int argc, char** argv) {
  cairn::log::SetLevel("warn");
  benchmark::Initialize(&argc, argv);
  const std::string& root = cairn::wal::BenchRoot();
  benchmark::AddCustomContext("bench_dir", root);
  benchmark::AddCustomContext("bench_filesystem", cairn::wal::FileSystemType(root));
  benchmark::AddCustomContext("payload_bytes", std::to_string(cairn::wal::kPayloadBytes));
  benchmark::AddCustomContext("segment_size_bytes",
                              std::to_string(cairn::wal::WalOptions().segment_size_bytes));
  if (cairn::wal::FileSystemType(root).starts_with("tmpfs")) {
    std::fprintf(stderr, "WARNING: %s is tmpfs; set CAIRN_BENCH_DIR to a directory on disk\n",
                 root.c_str());
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  std::filesystem::remove_all(root);
  return 0;
}
