#include "src/server/metrics.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <mutex>

namespace cairn::server {

namespace {

// gRPC codes as Go's codes.Code.String() spells them (go-grpc-prometheus' grpc_code).
constexpr std::array<const char*, 17> kCodeNames = {
    "OK",       "Canceled",       "Unknown",          "InvalidArgument",   "DeadlineExceeded",
    "NotFound", "AlreadyExists",  "PermissionDenied", "ResourceExhausted", "FailedPrecondition",
    "Aborted",  "OutOfRange",     "Unimplemented",    "Internal",          "Unavailable",
    "DataLoss", "Unauthenticated"};

const char* TypeName(grpc::experimental::ServerRpcInfo::Type type) {
  using Type = grpc::experimental::ServerRpcInfo::Type;
  switch (type) {
    case Type::UNARY:
      return "unary";
    case Type::CLIENT_STREAMING:
      return "client_stream";
    case Type::SERVER_STREAMING:
      return "server_stream";
    case Type::BIDI_STREAMING:
      return "bidi_stream";
  }
  return "unknown";
}

class RpcInterceptor : public grpc::experimental::Interceptor {
 public:
  explicit RpcInterceptor(ServerMetrics::MethodMetrics* method)
      : method_(method), start_(std::chrono::steady_clock::now()) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_STATUS)) {
      const double seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
      ServerMetrics::Finished(method_, static_cast<int>(methods->GetSendStatus().error_code()),
                              seconds);
    }
    methods->Proceed();
  }

 private:
  ServerMetrics::MethodMetrics* const method_;
  const std::chrono::steady_clock::time_point start_;
};

class RpcInterceptorFactory : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit RpcInterceptorFactory(ServerMetrics* metrics) : metrics_(metrics) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    if (info->method() == nullptr) return nullptr;
    return new RpcInterceptor(metrics_->ForMethod(info->method(), info->type()));
  }

 private:
  ServerMetrics* const metrics_;
};

HttpServer::Response Json(int status, const std::string& body) {
  return {status, "application/json", body};
}

}  // namespace

struct ServerMetrics::MethodMetrics {
  metrics::Counter* started = nullptr;
  std::array<metrics::Counter*, kCodeNames.size()> handled{};
  metrics::Histogram* seconds = nullptr;
};

ServerMetrics::ServerMetrics()
    : wal_fsync_seconds_(registry_.GetHistogram("etcd_disk_wal_fsync_duration_seconds",
                                                "The latency distributions of fsync called by WAL.",
                                                metrics::ExponentialBuckets(0.001, 2, 14))),
      wal_sync_entries_(registry_.GetHistogram("cairn_wal_sync_batch_entries",
                                               "Log entries made durable by one WAL sync.",
                                               metrics::ExponentialBuckets(1, 2, 12))),
      apply_seconds_(registry_.GetHistogram(
          "cairn_apply_batch_duration_seconds",
          "The latency distributions of applying one batch of log entries to the engine.",
          metrics::ExponentialBuckets(0.0001, 2, 16))),
      apply_entries_(registry_.GetHistogram("cairn_apply_batch_entries",
                                            "Log entries applied in one engine batch.",
                                            metrics::ExponentialBuckets(1, 2, 12))) {}

ServerMetrics::~ServerMetrics() = default;

void ServerMetrics::InstallNodeHooks(const std::shared_ptr<ServerMetrics>& self,
                                     node::NodeOptions* options) {
  options->on_wal_sync = [self](double seconds, size_t entries) {
    self->wal_fsync_seconds_->Observe(seconds);
    self->wal_sync_entries_->Observe(static_cast<double>(entries));
  };
  options->on_apply_batch = [self](double seconds, size_t entries) {
    self->apply_seconds_->Observe(seconds);
    self->apply_entries_->Observe(static_cast<double>(entries));
  };
}

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
ServerMetrics::NewInterceptorFactory() {
  return std::make_unique<RpcInterceptorFactory>(this);
}

ServerMetrics::MethodMetrics* ServerMetrics::ForMethod(
    const char* method, grpc::experimental::ServerRpcInfo::Type type) {
  const std::string name(method);
  {
    std::shared_lock lock(methods_mutex_);
    auto it = methods_.find(name);
    if (it != methods_.end()) {
      it->second->started->Inc();
      return it->second.get();
    }
  }
  std::unique_lock lock(methods_mutex_);
  std::unique_ptr<MethodMetrics>& slot = methods_[name];
  if (!slot) {
    // "/etcdserverpb.KV/Range" → service "etcdserverpb.KV", method "Range".
    const size_t slash = name.rfind('/');
    const std::string service = name.substr(
        name.empty() ? 0 : 1, slash == std::string::npos ? std::string::npos : slash - 1);
    const std::string short_name = slash == std::string::npos ? name : name.substr(slash + 1);
    const metrics::Labels labels = {
        {"grpc_type", TypeName(type)}, {"grpc_service", service}, {"grpc_method", short_name}};
    auto created = std::make_unique<MethodMetrics>();
    created->started = registry_.GetCounter("grpc_server_started_total",
                                            "Total number of RPCs started on the server.", labels);
    for (size_t code = 0; code < kCodeNames.size(); ++code) {
      metrics::Labels with_code = labels;
      with_code.emplace_back("grpc_code", kCodeNames[code]);
      created->handled[code] = registry_.GetCounter(
          "grpc_server_handled_total",
          "Total number of RPCs completed on the server, regardless of success or failure.",
          with_code);
    }
    created->seconds = registry_.GetHistogram(
        "grpc_server_handling_seconds",
        "Histogram of response latency (seconds) of gRPC that had been application-level "
        "handled by the server.",
        metrics::DefaultSecondsBuckets(), labels);
    slot = std::move(created);
  }
  slot->started->Inc();
  return slot.get();
}

void ServerMetrics::Finished(MethodMetrics* method, int grpc_code, double seconds) {
  if (grpc_code < 0 || grpc_code >= static_cast<int>(kCodeNames.size())) grpc_code = 2;  // Unknown
  method->handled[grpc_code]->Inc();
  method->seconds->Observe(seconds);
}

void ServerMetrics::AddStateGauges(node::Node* node, feed::Hub* hub, LeaseManager* leases) {
  registry_.AddGauge("etcd_debugging_mvcc_current_revision", "The current revision of store.",
                     [node] { return static_cast<double>(node->kv()->CurrentRevision()); });
  registry_.AddGauge(
      "etcd_debugging_mvcc_compact_revision", "The revision of the last compaction in store.",
      [node] {
        // 0 until the first compaction, like etcd's (Cairn reports -1)
        return static_cast<double>(std::max<int64_t>(0, node->kv()->CompactedRevision()));
      });
  registry_.AddGauge(
      "etcd_mvcc_db_total_size_in_bytes",
      "Total size of the underlying database physically allocated in bytes.",
      [node] { return static_cast<double>(node->engine()->ApproximateSizeBytes()); });
  registry_.AddGauge(
      "cairn_storage_read_ahead_files_total",
      "Table files read whole into the page cache because point reads kept finding them cold.",
      [node] { return static_cast<double>(node->engine()->Stats().files_read_ahead); });
  registry_.AddGauge(
      "cairn_storage_read_ahead_bytes_total", "Bytes of the table files read whole.",
      [node] { return static_cast<double>(node->engine()->Stats().bytes_read_ahead); });
  registry_.AddGauge(
      "cairn_storage_narrow_flushes_merged_total",
      "Flushed L0 files merged into the base level at once because they overlapped little "
      "(keys written in order).",
      [node] { return static_cast<double>(node->engine()->Stats().narrow_flushes_merged); });
  registry_.AddGauge("etcd_debugging_mvcc_keys_total", "Total number of keys.",
                     [node] { return static_cast<double>(node->kv()->KeyCount()); });
  registry_.AddGauge("etcd_debugging_mvcc_watcher_total", "Total number of watchers.",
                     [hub] { return static_cast<double>(hub->watcher_count()); });
  registry_.AddGauge("cairn_lease_count", "Leases currently granted.",
                     [leases] { return static_cast<double>(leases->Count()); });
  registry_.AddGauge("etcd_server_has_leader",
                     "Whether or not a leader exists. 1 is existence, 0 is not.",
                     [] { return 1.0; });
  registry_.AddGauge("etcd_server_is_leader",
                     "Whether or not this member is a leader. 1 if is, 0 otherwise.",
                     [] { return 1.0; });
  registry_.AddGauge("cairn_raft_log_cache_bytes",
                     "Bytes of Raft log entries kept in memory for replication and apply (a "
                     "leader with no other member releases them as they are applied).",
                     [node] { return static_cast<double>(node->LogCacheBytes()); });
  registry_.AddGauge("cairn_node_failed",
                     "1 when a log or engine failure made the node refuse writes.",
                     [node] { return node->Failed() ? 1.0 : 0.0; });
  // Snapshot transfer (node.h SnapshotStats); monotonic, exported as gauges of totals.
  const std::pair<const char*, const char*> snapshot_metrics[] = {
      {"cairn_raft_snapshots_produced_total", "Snapshots this member wrote for followers."},
      {"cairn_raft_snapshots_sent_total", "Snapshots delivered to a follower."},
      {"cairn_raft_snapshot_send_failures_total", "Snapshots that could not be delivered."},
      {"cairn_raft_snapshots_installed_total", "Snapshots from the leader this member installed."},
      {"cairn_raft_snapshot_last_installed_index", "Raft index of the last snapshot installed."},
  };
  for (size_t i = 0; i < std::size(snapshot_metrics); ++i) {
    registry_.AddGauge(snapshot_metrics[i].first, snapshot_metrics[i].second, [node, i] {
      const node::SnapshotStats stats = node->GetSnapshotStats();
      const uint64_t values[] = {stats.produced, stats.sent, stats.send_failures, stats.installed,
                                 stats.last_installed_index};
      return static_cast<double>(values[i]);
    });
  }
}

Result<std::unique_ptr<HttpServer>> StartMetricsHttp(const std::vector<std::string>& addresses,
                                                     ServerMetrics* metrics, node::Node* node) {
  std::map<std::string, HttpServer::Handler> routes;
  routes["/metrics"] = [metrics] {
    return HttpServer::Response{200, "text/plain; version=0.0.4; charset=utf-8",
                                metrics->registry()->Render()};
  };
  routes["/health"] = [node] {
    if (node->Failed()) {
      return Json(503,
                  "{\"health\":\"false\",\"reason\":\"the node refuses writes after a log or "
                  "engine failure\"}");
    }
    // As etcd 3.5: an active alarm makes the member unhealthy, naming the alarms.
    std::string alarms;
    for (const etcdserverpb::AlarmMember& alarm : node->alarms()->List()) {
      alarms += (alarms.empty() ? "ALARM " : ",") + etcdserverpb::AlarmType_Name(alarm.alarm());
    }
    if (!alarms.empty()) return Json(503, "{\"health\":\"false\",\"reason\":\"" + alarms + "\"}");
    return Json(200, "{\"health\":\"true\",\"reason\":\"\"}");
  };
  routes["/readyz"] = [node] {
    if (node->Failed())
      return HttpServer::Response{503, "text/plain; charset=utf-8", "node failed\n"};
    return HttpServer::Response{200, "text/plain; charset=utf-8", "ok"};
  };
  routes["/livez"] = [] { return HttpServer::Response{200, "text/plain; charset=utf-8", "ok"}; };
  return HttpServer::Start(addresses, std::move(routes));
}

}  // namespace cairn::server
