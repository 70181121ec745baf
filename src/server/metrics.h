// ServerMetrics: cairnd's metrics (src/base/metrics.h registry), named like etcd's where
// etcd has an equivalent so that etcd dashboards work; Cairn-only ones start with cairn_.
//
//   grpc_server_started_total, grpc_server_handled_total{grpc_type,grpc_service,grpc_method,
//   grpc_code}, grpc_server_handling_seconds   every RPC (a gRPC server interceptor)
//   etcd_disk_wal_fsync_duration_seconds, cairn_wal_sync_batch_entries   group commit
//   cairn_apply_batch_duration_seconds, cairn_apply_batch_entries          apply thread
//   etcd_debugging_mvcc_current_revision, etcd_debugging_mvcc_compact_revision,
//   etcd_mvcc_db_total_size_in_bytes, etcd_debugging_mvcc_watcher_total, cairn_lease_count,
//   etcd_server_has_leader, etcd_server_is_leader, cairn_node_failed,
//   cairn_raft_log_cache_bytes                                            gauges, read at scrape
//
// The HTTP side (/metrics, /health, /readyz, /livez) is StartHttp.
//
// Thread-safety: all of it. Lifetime: the node hooks hold a shared_ptr; the gauges read the
// node, hub and lease manager, so the HTTP server must stop before those go away.
#pragma once

#include <grpcpp/support/server_interceptor.h>

#include <memory>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "src/base/metrics.h"
#include "src/feed/hub.h"
#include "src/node/node.h"
#include "src/server/http_server.h"
#include "src/server/lease_manager.h"

namespace cairn::server {

class ServerMetrics {
 public:
  ServerMetrics();
  ~ServerMetrics();
  metrics::Registry* registry() { return &registry_; }

  // Sets the node's group-commit and apply hooks (they keep `self` alive).
  static void InstallNodeHooks(const std::shared_ptr<ServerMetrics>& self,
                               node::NodeOptions* options);
  // For grpc::ServerBuilder::experimental().SetInterceptorCreators.
  std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> NewInterceptorFactory();
  // Registers the state gauges. Pointers must stay valid while the registry is rendered.
  void AddStateGauges(node::Node* node, feed::Hub* hub, LeaseManager* leases);

  // One RPC of `method` ("/etcdserverpb.KV/Range") started / finished.
  struct MethodMetrics;
  MethodMetrics* ForMethod(const char* method, grpc::experimental::ServerRpcInfo::Type type);
  static void Finished(MethodMetrics* method, int grpc_code, double seconds);

 private:
  metrics::Registry registry_;
  metrics::Histogram* wal_fsync_seconds_;
  metrics::Histogram* wal_sync_entries_;
  metrics::Histogram* apply_seconds_;
  metrics::Histogram* apply_entries_;
  std::shared_mutex methods_mutex_;
  std::unordered_map<std::string, std::unique_ptr<MethodMetrics>> methods_;
};

// Serves /metrics, /health, /readyz and /livez for `node` on `addresses` (host:port).
Result<std::unique_ptr<HttpServer>> StartMetricsHttp(const std::vector<std::string>& addresses,
                                                     ServerMetrics* metrics, node::Node* node);

}  // namespace cairn::server
