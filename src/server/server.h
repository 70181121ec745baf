// Server: cairnd's etcd-compatible gRPC server — a node::Node (log → apply) plus the gRPC
// services over it (KV, Maintenance), listening on the client addresses.
//
// Lifecycle: Start opens the data directory (replaying the log), binds every address, then
// serves. Shutdown stops accepting requests, lets in-flight ones finish (up to
// options.shutdown_deadline_ms, then cancels them), stops the background worker, and closes
// the node (log synced, state checkpointed). A failed Start leaves nothing running.
//
// Thread-safety: addresses() is thread-safe. Shutdown may be called from any thread, once
// or more; it must not run concurrently with itself or the destructor.
#pragma once

#include <grpcpp/server.h>

#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "src/base/result.h"
#include "src/feed/hub.h"
#include "src/node/node.h"
#include "src/server/auto_compactor.h"
#include "src/server/background_worker.h"
#include "src/server/cluster_service.h"
#include "src/server/election_service.h"
#include "src/server/events_service.h"
#include "src/server/kv_service.h"
#include "src/server/lease_manager.h"
#include "src/server/lease_service.h"
#include "src/server/lock_service.h"
#include "src/server/maintenance_service.h"
#include "src/server/member_identity.h"
#include "src/server/metrics.h"
#include "src/server/persistent_service.h"
#include "src/server/prefix_waiter.h"
#include "src/server/projections_service.h"
#include "src/server/server_options.h"
#include "src/server/space_quota.h"
#include "src/server/watch_service.h"
#include "src/transport/grpc_transport.h"

namespace cairn::server {

class Server {
 public:
  // Errors: the Node's open errors (unwritable or incompatible data directory, corrupt log);
  // Unavailable naming the address when one cannot be bound (port in use, unknown host).
  static Result<std::unique_ptr<Server>> Start(const ServerOptions& options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // The addresses served, as host:port with the port actually bound (differs from the
  // options when they asked for port 0).
  const std::vector<std::string>& addresses() const { return addresses_; }
  const MemberIdentity& identity() const { return identity_; }
  const AutoCompactor& auto_compactor() const { return *auto_compactor_; }
  node::Node* node() { return node_.get(); }
  // The metrics HTTP addresses served (host:port, bound port), in options order.
  const std::vector<std::string>& metrics_addresses() const;

  // The peer addresses served (host:port, bound port); empty without a peer listener.
  const std::vector<std::string>& peer_addresses() const { return peer_addresses_; }

  // Returns the node's close status.
  Status Shutdown();

 private:
  Server(const ServerOptions& options, std::unique_ptr<node::Node> node);
  // Maps the Raft and membership options onto the node's.
  static Status ConfigureRaft(const ServerOptions& options, node::NodeOptions* node_options);
  Status Listen();
  Status ListenPeers();
  // --initial-cluster-state existing on a fresh data dir: the running members (id, peer
  // URLs), and among them the id MemberAdd gave this member.
  static Result<std::vector<std::pair<uint64_t, std::vector<std::string>>>> FetchRunningMembers(
      const ServerOptions& options);
  static Result<uint64_t> FindAddedMemberId(
      const ServerOptions& options,
      const std::vector<std::pair<uint64_t, std::vector<std::string>>>& members);
  // Proposes this member's name and client URLs unless the membership already holds them.
  Status PublishAttributes();
  void StartPublishing();

  const ServerOptions options_;
  const MemberIdentity identity_;
  std::unique_ptr<node::Node> node_;
  BackgroundWorker worker_;
  std::unique_ptr<SpaceQuota> space_quota_;  // Node admission (set in Start)
  std::unique_ptr<KvService> kv_service_;
  std::unique_ptr<MaintenanceService> maintenance_service_;
  std::unique_ptr<ClusterService> cluster_service_;
  std::unique_ptr<AutoCompactor> auto_compactor_;
  std::unique_ptr<LeaseManager> lease_manager_;
  std::unique_ptr<LeaseService> lease_service_;
  std::unique_ptr<feed::Hub> hub_;  // fed by the node's event sink (see Start)
  std::unique_ptr<WatchService> watch_service_;
  std::unique_ptr<EventsService> events_service_;
  std::unique_ptr<PersistentService> persistent_service_;
  std::unique_ptr<ProjectionsService> projections_service_;  // runs this member's projections
  std::unique_ptr<PrefixWaiter> lock_waiter_;  // Lock and Election waits (built in Listen)
  // Where the node's event sink finds lock_waiter_ to notify of applied writes.
  std::shared_ptr<std::atomic<PrefixWaiter*>> waiter_slot_;
  std::unique_ptr<LockService> lock_service_;
  std::unique_ptr<ElectionService> election_service_;
  std::unique_ptr<grpc::Server> grpc_server_;
  std::vector<std::string> addresses_;
  // Raft peers: the transport (also held by the node's send hook) and the peer listener.
  std::shared_ptr<transport::GrpcTransport> transport_;
  std::shared_ptr<std::atomic<node::Node*>> node_slot_;  // where peer callbacks find the node
  std::unique_ptr<transport::PeerService> peer_service_;
  std::unique_ptr<transport::LeaseRenewClient> lease_renew_client_;  // follower keep-alives
  std::unique_ptr<grpc::Server> peer_server_;
  std::vector<std::string> peer_addresses_;
  std::thread publisher_;
  std::mutex publisher_mutex_;
  std::condition_variable publisher_cv_;
  bool publisher_stopping_ = false;           // GUARDED_BY(publisher_mutex_)
  std::shared_ptr<ServerMetrics> metrics_;    // also held by the node's hooks
  std::unique_ptr<HttpServer> metrics_http_;  // /metrics, /health, /readyz; stopped first
};

}  // namespace cairn::server
