// cairn-bench's workloads, modelled on etcd's tools/benchmark commands of the same names:
// put, range, txn-put, txn-mixed, watch, watch-latency, lease-keepalive; and the events-*
// workloads over Cairn's own event store API (events_workloads.h).
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tools/cairn-bench/bench.h"

namespace cairn::bench {

// Per-command flags (etcd's names where etcd has them).
struct WorkloadOptions {
  // range, txn-mixed reads: a fixed key (etcd's positional `key`), or random keys from the
  // key space when empty; --prefix reads [key, prefix end) — with an empty key, every key.
  std::string key;
  bool prefix = false;
  int64_t limit = 0;
  std::string consistency = "l";  // l (linearizable) | s (serializable)
  bool count_only = false;
  int txn_ops = 1;               // txn-put: puts per txn (etcd --txn-ops)
  double rw_ratio = 1;           // txn-mixed: reads per write (etcd --rw-ratio)
  int streams = 10;              // watch: Watch streams (spread over the conns)
  int watchers_per_stream = 10;  // watch: watchers per stream
  double event_wait_s = 10;      // watch: how long to wait for outstanding events
  int64_t lease_ttl_s = 60;      // lease-keepalive: TTL of each client's lease

  // events-*: see events_workloads.h.
  int event_batch = 1;                 // events per Append (--batch)
  int64_t event_streams = 1000;        // streams the appends (and reads) spread over
  std::string event_expected = "any";  // any | exact (versions tracked per stream per client)
  std::string event_stream_prefix;     // stream names: prefix + index; empty = "bench-<random>-"
  int64_t event_stream_length = 100;   // events-read: events written per stream in setup
  int event_read_count = 100;          // events-read: events per ReadStream page
  int event_subscriptions = 1;         // events-subscribe-latency: Subscribe($all) streams
};

// The measured outcome of one workload.
struct Report {
  std::string workload;
  std::vector<std::string> series;  // names of Stats::latency_ns[i]
  int primary = -1;                 // series the headline uses; -1 = all unary series merged
  Stats stats;
  double duration_s = 0;                    // first request start to last completion
  std::map<int, double> series_duration_s;  // a series timed over another phase (watch create)
  CpuTimes cpu;                             // this process, during the measured phase
  nlohmann::json extra = nlohmann::json::object();  // workload-specific figures
};

// Runs the workload `name`; false (with a message) on a setup failure. Request errors are
// counted in the report, not failures.
bool RunWorkload(const std::string& name, const Options& options,
                 const WorkloadOptions& workload_options, Report* report, std::string* error);

}  // namespace cairn::bench
