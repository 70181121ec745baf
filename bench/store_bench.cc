// Embedded store benchmarks (issue 2, "What must show" 5). Not part of `make test`.
//
//   BM_DurablePut/threads:64   durable puts (fdatasync before acknowledging), 8-byte keys,
//                              256-byte values, 64 concurrent writers sharing group commit
//   BM_PointGet/threads:2      gets at the current revision on a 1M-key store
//   BM_Range1000               range of 1,000 consecutive keys
//
// Data lives in $CAIRN_BENCH_DIR (default ./cairn-bench-data), on the real disk; it is
// deleted first. Run: build/bin/store_bench [--benchmark_filter=...]
#include <benchmark/benchmark.h>

#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <mutex>
#include <random>
#include <thread>

#include "cairn/store.h"
#include "src/base/coding.h"

namespace {

constexpr int kLoadedKeys = 1'000'000;
constexpr size_t kValueBytes = 256;

std::string Key(uint64_t i) {
  std::string key;
  cairn::coding::PutBigEndian64(&key, i);
  return key;
}

std::string BenchDir(const char* name) {
  const char* root = std::getenv("CAIRN_BENCH_DIR");
  return std::string(root ? root : "./cairn-bench-data") + "/" + name;
}

std::unique_ptr<cairn::Store> OpenFresh(const char* name) {
  std::string dir = BenchDir(name);
  std::filesystem::remove_all(dir);
  cairn::StoreOptions options;
  options.dir = dir;
  options.block_cache_bytes = 1ull << 30;
  options.key_cache_bytes = 1ull << 30;  // holds the whole 1M-key read set
  auto store = cairn::Store::Open(options);
  if (!store.ok()) {
    std::fprintf(stderr, "open %s: %s\n", dir.c_str(), store.status().ToString().c_str());
    std::exit(1);
  }
  return std::move(store).value();
}

// ---- durable puts ----------------------------------------------------------------------

std::unique_ptr<cairn::Store> g_put_store;
std::atomic<uint64_t> g_put_counter{0};

void BM_DurablePut(benchmark::State& state) {
  if (state.thread_index() == 0) {
    g_put_store.reset();  // the previous run's store must release its lock first
    g_put_store = OpenFresh("put");
  }
  // Google Benchmark starts all threads' loops together, after thread 0's setup above.
  const std::string value(kValueBytes, 'v');
  for (auto _ : state) {
    auto rev = g_put_store->Put(Key(g_put_counter.fetch_add(1)), value);
    if (!rev.ok()) {
      state.SkipWithError(rev.status().ToString().c_str());
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
  if (state.thread_index() == 0) {
    state.counters["key_bytes"] = 8;
    state.counters["value_bytes"] = kValueBytes;
  }
}
BENCHMARK(BM_DurablePut)->Threads(1)->Threads(64)->UseRealTime()->MinTime(3.0);

// 64 writes kept in flight through the async API: each completion issues the next write, so
// no thread blocks per write (the other way to have 64 concurrent writers).
void BM_DurablePutAsync(benchmark::State& state) {
  auto store = OpenFresh("put_async");
  const int in_flight = static_cast<int>(state.range(0));
  constexpr int kPerIteration = 20000;
  const std::string value(kValueBytes, 'v');
  std::atomic<uint64_t> counter{0};
  for (auto _ : state) {
    std::mutex mutex;
    std::condition_variable finished;
    int issued = 0, completed = 0;
    bool failed = false;
    std::function<void()> issue_next;
    issue_next = [&] {
      etcdserverpb::PutRequest request;
      request.set_key(Key(counter.fetch_add(1)));
      request.set_value(value);
      store->PutAsync(request, [&](cairn::Result<etcdserverpb::PutResponse> response) {
        bool again = false;
        {
          std::lock_guard<std::mutex> lock(mutex);
          if (!response.ok()) failed = true;
          ++completed;
          if (issued < kPerIteration && !failed) {
            ++issued;
            again = true;
          }
          if (completed == issued) finished.notify_one();
        }
        if (again) issue_next();
      });
    };
    {
      std::lock_guard<std::mutex> lock(mutex);
      issued = in_flight;
    }
    for (int i = 0; i < in_flight; ++i) issue_next();
    std::unique_lock<std::mutex> lock(mutex);
    finished.wait(lock, [&] { return completed == issued && (issued == kPerIteration || failed); });
    if (failed) {
      state.SkipWithError("async put failed");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations() * kPerIteration);
}
BENCHMARK(BM_DurablePutAsync)->Arg(64)->UseRealTime()->MinTime(3.0);

// ---- reads on a 1M-key store ---------------------------------------------------------------

std::unique_ptr<cairn::Store> g_read_store;
std::once_flag g_read_loaded;

void LoadReadStore() {
  g_read_store = OpenFresh("read");
  const std::string value(kValueBytes, 'v');
  constexpr int kPerTxn = 128;
  constexpr int kLoaders = 8;
  std::vector<std::thread> loaders;
  for (int t = 0; t < kLoaders; ++t) {
    loaders.emplace_back([&, t] {
      for (int base = t * kPerTxn; base < kLoadedKeys; base += kPerTxn * kLoaders) {
        etcdserverpb::TxnRequest txn;
        for (int i = base; i < std::min(base + kPerTxn, kLoadedKeys); ++i) {
          auto* put = txn.add_success()->mutable_request_put();
          put->set_key(Key(i));
          put->set_value(value);
        }
        auto response = g_read_store->Txn(txn);
        if (!response.ok()) {
          std::fprintf(stderr, "load: %s\n", response.status().ToString().c_str());
          std::exit(1);
        }
      }
    });
  }
  for (auto& loader : loaders) loader.join();
}

void BM_PointGet(benchmark::State& state) {
  std::call_once(g_read_loaded, LoadReadStore);
  std::mt19937_64 random(state.thread_index() + 1);
  for (auto _ : state) {
    auto kv = g_read_store->Get(Key(random() % kLoadedKeys));
    if (!kv.ok() || !kv->has_value()) {
      state.SkipWithError("get failed or key missing");
      break;
    }
    benchmark::DoNotOptimize(kv);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_PointGet)->Threads(1)->Threads(2)->UseRealTime()->MinTime(3.0);

void BM_Range1000(benchmark::State& state) {
  std::call_once(g_read_loaded, LoadReadStore);
  std::mt19937_64 random(7);
  for (auto _ : state) {
    uint64_t start = random() % (kLoadedKeys - 1000);
    etcdserverpb::RangeRequest request;
    request.set_key(Key(start));
    request.set_range_end(Key(start + 1000));
    auto response = g_read_store->Range(request);
    if (!response.ok() || response->kvs_size() != 1000) {
      state.SkipWithError("range failed or short");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations() * 1000);
}
BENCHMARK(BM_Range1000)->UseRealTime()->MinTime(3.0);

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  // Close the stores before static destruction tears down what they use (RocksDB, spdlog).
  g_put_store.reset();
  g_read_store.reset();
  return 0;
}
