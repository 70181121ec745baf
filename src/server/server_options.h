// ServerOptions: everything cairnd's flags configure, as one plain struct. tools/cairnd maps
// flags onto it in one place; tests build it directly.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "src/base/limits.h"
#include "src/feed/hub.h"
#include "src/server/auto_compactor.h"
#include "src/server/lease_manager.h"

namespace cairn::server {

struct ServerOptions {
  // Member name (etcd's --name); with cluster_token it determines member and cluster ids.
  // Default: "default", etcd's default.
  std::string name = "default";
  // etcd's --initial-cluster-token. Default: "etcd-cluster", etcd's default.
  std::string cluster_token = "etcd-cluster";
  // Required: the data directory (created if missing).
  std::string data_dir;
  // Client addresses to serve, as host:port (port 0 = any free port; see Server::ports()).
  // Default: 127.0.0.1:2379, etcd's default.
  std::vector<std::string> client_addresses = {"127.0.0.1:2379"};
  // Addresses (host:port, port 0 = any free port) serving /metrics, /health and /readyz over
  // HTTP (etcd's --listen-metrics-urls). Default: none.
  std::vector<std::string> metrics_addresses;
  // etcd's --max-request-bytes: larger write requests fail with "etcdserver: request is too
  // large"; gRPC refuses messages larger than this plus kGrpcOverheadBytes. Default: 1.5 MiB.
  size_t request_bytes_max = limits::kRequestBytesMaxDefault;
  // etcd's --max-txn-ops. Default: 128.
  size_t txn_ops_max = limits::kTxnOpsMaxDefault;
  // etcd's --quota-backend-bytes: beyond it writes raise the NOSPACE alarm (space_quota.h).
  // Default: 0 = etcd's default of 2 GiB; negative disables the quota.
  int64_t quota_backend_bytes = 0;
  // etcd's --advertise-client-urls and --initial-advertise-peer-urls, as MemberList shows
  // them. Defaults: etcd's.
  std::vector<std::string> advertise_client_urls = {"http://localhost:2379"};
  std::vector<std::string> advertise_peer_urls = {"http://localhost:2380"};
  // etcd's --initial-cluster: every member of a new cluster as (name, peer URLs). Default:
  // empty = this member alone, with advertise_peer_urls.
  std::vector<std::pair<std::string, std::vector<std::string>>> initial_cluster;
  // etcd's --initial-cluster-state existing: join a running cluster that added this member
  // (MemberAdd) instead of bootstrapping one. Default: false ("new").
  bool join_existing_cluster = false;
  // Addresses (host:port) serving the Raft peer service (etcd's --listen-peer-urls). Default:
  // none — a member alone needs no peer listener; cairnd sets it when the flag is given or
  // the initial cluster has more than one member.
  std::vector<std::string> peer_addresses;
  // etcd's --heartbeat-interval and --election-timeout. Defaults: 100 ms and 1000 ms.
  int64_t heartbeat_interval_ms = 100;
  int64_t election_timeout_ms = 1000;
  // etcd's --snapshot-count: applied entries between checkpoints (engine flush + log
  // compaction; node.h checkpoint_interval_entries). Default: 100,000 (etcd 3.4's).
  uint64_t snapshot_count = 100'000;
  // etcd's --snapshot-catchup-entries: entries a checkpoint keeps below the applied index for
  // followers that lag by less; one further behind is sent a snapshot. Default: 5000.
  uint64_t snapshot_catchup_entries = 5000;
  // etcd's --auto-compaction-mode and --auto-compaction-retention. Default: off.
  AutoCompactionOptions auto_compaction;
  // How long Shutdown lets in-flight requests finish before cancelling them. Default: 5 s.
  int64_t shutdown_deadline_ms = 5000;
  // Lease expiry ticks, checkpoints and the minimum TTL (lease_manager.h).
  LeaseManagerOptions lease;
  // etcd's --watch-progress-notify-interval; 0 disables. Default: 10 minutes.
  int64_t watch_progress_notify_interval_ms = 10 * 60 * 1000;
  // Per-watcher buffer bound before catch-up from storage (src/feed/hub.h).
  feed::HubOptions watch_hub;

  // etcd lets gRPC accept messages this much larger than --max-request-bytes, so that an
  // oversized request gets etcd's own error instead of gRPC's RESOURCE_EXHAUSTED.
  static constexpr size_t kGrpcOverheadBytes = 512 * 1024;
};

}  // namespace cairn::server
