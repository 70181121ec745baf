// cairn-bench: an etcd v3 API load generator (asynchronous gRPC, many requests in flight over
// a configurable number of connections), modelled on etcd's tools/benchmark. It speaks only
// the etcd v3 API, so it measures etcd and Cairn alike. See tools/cairn-bench/README.md.
#include <absl/synchronization/mutex.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "tools/cairn-bench/workloads.h"

namespace cairn::bench {
namespace {

const char* CodeName(int code) {
  static const char* const kNames[] = {"OK",
                                       "CANCELLED",
                                       "UNKNOWN",
                                       "INVALID_ARGUMENT",
                                       "DEADLINE_EXCEEDED",
                                       "NOT_FOUND",
                                       "ALREADY_EXISTS",
                                       "PERMISSION_DENIED",
                                       "RESOURCE_EXHAUSTED",
                                       "FAILED_PRECONDITION",
                                       "ABORTED",
                                       "OUT_OF_RANGE",
                                       "UNIMPLEMENTED",
                                       "INTERNAL",
                                       "UNAVAILABLE",
                                       "DATA_LOSS",
                                       "UNAUTHENTICATED"};
  return code >= 0 && code < 17 ? kNames[code] : "UNKNOWN_CODE";
}

double Ms(uint64_t ns) { return static_cast<double>(ns) / 1e6; }

nlohmann::json LatencyJson(const Histogram& h) {
  return {{"count", h.count()},
          {"avg", h.Mean() / 1e6},
          {"min", Ms(h.min())},
          {"p50", Ms(h.Percentile(0.50))},
          {"p90", Ms(h.Percentile(0.90))},
          {"p99", Ms(h.Percentile(0.99))},
          {"p99_9", Ms(h.Percentile(0.999))},
          {"max", Ms(h.max())}};
}

nlohmann::json ReportJson(const Report& report, const Options& options,
                          const WorkloadOptions& workload) {
  nlohmann::json out;
  out["workload"] = report.workload;
  out["config"] = {{"endpoints", options.endpoints},
                   {"conns", options.conns},
                   {"clients", options.clients},
                   {"threads", options.threads},
                   {"total", options.total},
                   {"duration_s", options.duration_s},
                   {"rate", options.rate},
                   {"key_size", options.key_size},
                   {"val_size", options.val_size},
                   {"key_space_size", options.key_space_size},
                   {"sequential_keys", options.sequential_keys},
                   {"key", workload.key},
                   {"prefix", workload.prefix},
                   {"limit", workload.limit},
                   {"consistency", workload.consistency},
                   {"txn_ops", workload.txn_ops},
                   {"rw_ratio", workload.rw_ratio},
                   {"streams", workload.streams},
                   {"watchers_per_stream", workload.watchers_per_stream}};
  if (report.workload.rfind("events-", 0) == 0) {
    out["config"]["batch"] = workload.event_batch;
    out["config"]["event_streams"] = workload.event_streams;
    out["config"]["expected"] = workload.event_expected;
    out["config"]["stream_length"] = workload.event_stream_length;
    out["config"]["read_count"] = workload.event_read_count;
    out["config"]["subscriptions"] = workload.event_subscriptions;
  }
  const Stats& stats = report.stats;
  Histogram primary;
  uint64_t errors = 0;
  for (size_t i = 0; i < report.series.size(); ++i) {
    errors += stats.errors[i];
    if (report.primary < 0 || report.primary == static_cast<int>(i))
      primary.Merge(stats.latency_ns[i]);
    const auto timed = report.series_duration_s.find(static_cast<int>(i));
    const double duration_s =
        timed == report.series_duration_s.end() ? report.duration_s : timed->second;
    out["series"][report.series[i]] = {
        {"ok", stats.latency_ns[i].count()},
        {"errors", stats.errors[i]},
        {"throughput_per_s", duration_s > 0 ? stats.latency_ns[i].count() / duration_s : 0.0},
        {"latency_ms", LatencyJson(stats.latency_ns[i])}};
  }
  out["primary"] = report.primary < 0 ? "all" : report.series[report.primary];
  out["duration_s"] = report.duration_s;
  out["ok"] = primary.count();
  out["errors"] = errors;
  out["throughput_per_s"] = report.duration_s > 0 ? primary.count() / report.duration_s : 0.0;
  out["latency_ms"] = LatencyJson(primary);
  out["errors_by_code"] = nlohmann::json::object();
  for (const auto& [code, count] : stats.errors_by_code) {
    out["errors_by_code"][CodeName(code)] = {{"count", count},
                                             {"example", stats.error_example.at(code)}};
  }
  // Client CPU per request counts every request the process sent or received (all series).
  uint64_t requests = errors;
  for (size_t i = 0; i < report.series.size(); ++i) requests += stats.latency_ns[i].count();
  const double cpu_us = static_cast<double>(report.cpu.user_us + report.cpu.system_us);
  out["client_cpu"] = {{"user_s", report.cpu.user_us / 1e6},
                       {"system_s", report.cpu.system_us / 1e6},
                       {"us_per_request", requests > 0 ? cpu_us / requests : 0.0},
                       {"cores", report.duration_s > 0 ? cpu_us / 1e6 / report.duration_s : 0.0}};
  if (stats.keys_returned > 0) out["keys_returned"] = stats.keys_returned;
  for (const auto& [key, value] : report.extra.items()) out[key] = value;
  return out;
}

void PrintSimple(const nlohmann::json& out) {
  std::printf("workload %s  config %s\n", out["workload"].get<std::string>().c_str(),
              out["config"].dump().c_str());
  std::printf("duration %.3f s  ok %llu  errors %llu  throughput %.1f/s (%s)\n",
              out["duration_s"].get<double>(), out["ok"].get<unsigned long long>(),
              out["errors"].get<unsigned long long>(), out["throughput_per_s"].get<double>(),
              out["primary"].get<std::string>().c_str());
  for (const auto& [name, series] : out["series"].items()) {
    const auto& l = series["latency_ms"];
    std::printf(
        "  %-9s ok %-9llu err %-6llu %10.1f/s  latency ms avg %.3f p50 %.3f p90 %.3f p99 %.3f "
        "p99.9 %.3f max %.3f\n",
        name.c_str(), series["ok"].get<unsigned long long>(),
        series["errors"].get<unsigned long long>(), series["throughput_per_s"].get<double>(),
        l["avg"].get<double>(), l["p50"].get<double>(), l["p90"].get<double>(),
        l["p99"].get<double>(), l["p99_9"].get<double>(), l["max"].get<double>());
  }
  for (const auto& [code, error] : out["errors_by_code"].items()) {
    std::printf("  error %s x%llu (e.g. %s)\n", code.c_str(),
                error["count"].get<unsigned long long>(),
                error["example"].get<std::string>().c_str());
  }
  const auto& cpu = out["client_cpu"];
  std::printf("client cpu %.2f us/request (user %.2f s, system %.2f s, %.2f cores)\n",
              cpu["us_per_request"].get<double>(), cpu["user_s"].get<double>(),
              cpu["system_s"].get<double>(), cpu["cores"].get<double>());
  for (const auto& [key, value] : out.items()) {
    static const char* const kShown[] = {
        "workload", "config", "duration_s",     "ok",         "errors",    "throughput_per_s",
        "primary",  "series", "errors_by_code", "client_cpu", "latency_ms"};
    if (std::find(std::begin(kShown), std::end(kShown), key) != std::end(kShown)) continue;
    std::printf("%s %s\n", key.c_str(), value.dump().c_str());
  }
}

void AddReadFlags(CLI::App* command, WorkloadOptions* workload) {
  command->add_option("--key", workload->key,
                      "fixed key to read (etcd's positional key); default: random keys from "
                      "the key space");
  command->add_flag("--prefix", workload->prefix,
                    "read the range [key, prefix end) (with no --key: every key)");
  command->add_option("--limit", workload->limit, "maximum keys returned per read");
  command->add_option("--consistency", workload->consistency, "l (linearizable) or s")
      ->check(CLI::IsMember({"l", "s"}));
  command->add_flag("--count-only", workload->count_only, "count the range, return no keys");
}

// events-append, events-read, events-subscribe-latency (Cairn's Events API only).
void AddEventsCommands(CLI::App* app, WorkloadOptions* workload) {
  auto* append = app->add_subcommand("events-append", "Append of --batch events to a stream");
  auto* read = app->add_subcommand("events-read", "ReadStream pages over pre-written streams");
  auto* subscribe = app->add_subcommand(
      "events-subscribe-latency", "Subscribe($all from end) streams, then appends; event latency");
  for (CLI::App* command : {append, read, subscribe}) {
    command->add_option("--batch", workload->event_batch, "events per Append (1..1000)");
    command->add_option("--streams", workload->event_streams, "streams written (and read)");
    command->add_option("--stream-prefix", workload->event_stream_prefix,
                        "stream names: prefix + index (default: bench-<random>-)");
  }
  for (CLI::App* command : {append, subscribe}) {
    command
        ->add_option("--expected", workload->event_expected,
                     "any, or exact: each client tracks the versions of its own streams")
        ->check(CLI::IsMember({"any", "exact"}));
  }
  read->add_option("--stream-length", workload->event_stream_length,
                   "events written per stream in the setup phase");
  read->add_option("--count", workload->event_read_count, "events per ReadStream page");
  subscribe->add_option("--subscriptions", workload->event_subscriptions,
                        "Subscribe($all) streams, spread over the conns");
  subscribe->add_option("--event-wait", workload->event_wait_s,
                        "seconds to wait for events after the last append");
}

int Main(int argc, char** argv) {
  // As in cairnd: no deadlock-detection lock graph in gRPC's absl::Mutex (Debian's Abseil is a
  // debug build), so the client takes less of the cores it shares with the server.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  CLI::App app{"cairn-bench: etcd v3 API benchmark (etcd tools/benchmark workloads)"};
  app.require_subcommand(1);
  app.fallthrough();  // global flags may follow the subcommand too
  Options options;
  WorkloadOptions workload;
  app.add_option("--endpoints", options.endpoints, "host:port list (comma separated)")
      ->delimiter(',');
  app.add_option("--conns", options.conns, "gRPC connections")->check(CLI::PositiveNumber);
  app.add_option("--clients", options.clients, "requests in flight in total")
      ->check(CLI::PositiveNumber);
  app.add_option("--threads", options.threads, "polling threads (completion queues)")
      ->check(CLI::Range(1, 64));
  app.add_option("--total", options.total, "requests to send; 0 = until --duration");
  app.add_option("--duration", options.duration_s, "seconds to send for; 0 = until --total");
  app.add_option("--rate", options.rate, "request starts per second; 0 = unlimited");
  app.add_option("--key-size", options.key_size, "key bytes")->check(CLI::PositiveNumber);
  app.add_option("--val-size", options.val_size, "value bytes")->check(CLI::NonNegativeNumber);
  app.add_option("--key-space-size", options.key_space_size, "distinct keys")
      ->check(CLI::PositiveNumber);
  app.add_flag("--sequential-keys", options.sequential_keys, "keys 0, 1, 2, ... not random");
  app.add_option("--seed", options.seed, "random seed");
  app.add_option("--server-pid", options.server_pid,
                 "report this local server's VmRSS/VmHWM (and memory per watcher)");
  app.add_option("-w,--write-out", options.write_out, "simple or json")
      ->check(CLI::IsMember({"simple", "json"}));

  app.add_subcommand("put", "Put random (or sequential) keys");
  AddReadFlags(app.add_subcommand("range", "Range: one key (fixed or random) or a prefix"),
               &workload);
  app.add_subcommand("txn-put", "Txn of --txn-ops puts")
      ->add_option("--txn-ops", workload.txn_ops, "puts per txn")
      ->check(CLI::Range(1, 128));
  auto* mixed = app.add_subcommand("txn-mixed", "Txns of one read or one put, --rw-ratio");
  mixed->add_option("--rw-ratio", workload.rw_ratio, "reads per write")
      ->check(CLI::NonNegativeNumber);
  AddReadFlags(mixed, &workload);
  for (const char* name : {"watch", "watch-latency"}) {
    auto* watch = app.add_subcommand(
        name, std::string(name) == "watch"
                  ? "streams x watchers (watcher i on key i mod key space), then puts"
                  : "streams x watchers all on one key, then puts");
    watch->add_option("--streams", workload.streams, "Watch streams")->check(CLI::PositiveNumber);
    watch
        ->add_option("--watchers-per-stream,--watch-per-stream", workload.watchers_per_stream,
                     "watchers per stream")
        ->check(CLI::PositiveNumber);
    watch->add_option("--event-wait", workload.event_wait_s,
                      "seconds to wait for events after the last put");
  }
  app.add_subcommand("lease-keepalive", "KeepAlive round trips, one lease and stream per client")
      ->add_option("--ttl", workload.lease_ttl_s, "lease TTL seconds");
  AddEventsCommands(&app, &workload);
  CLI11_PARSE(app, argc, argv);

  if (options.total <= 0 && options.duration_s <= 0) {
    std::cerr << "cairn-bench: set --total or --duration\n";
    return 2;
  }
  if (!KeyCodec(options.key_size, options.key_space_size).Valid()) {
    std::cerr << "cairn-bench: --key-space-size does not fit in --key-size bytes\n";
    return 2;
  }
  const std::string name = app.get_subcommands().front()->get_name();
  Report report;
  std::string error;
  const bool ok = RunWorkload(name, options, workload, &report, &error);
  if (!ok && report.series.empty()) {  // failed before any request was sent
    std::cerr << "cairn-bench: " << error << "\n";
    return 1;
  }
  const nlohmann::json out = ReportJson(report, options, workload);
  if (options.write_out == "json") {
    std::cout << out.dump(2) << "\n";
  } else {
    PrintSimple(out);
  }
  if (!ok) {
    std::cerr << "cairn-bench: " << error << "\n";
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace cairn::bench

int main(int argc, char** argv) { return cairn::bench::Main(argc, argv); }
