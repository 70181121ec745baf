#include "src/server/server.h"

#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_builder.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>

#include "src/base/logging.h"

namespace cairn::server {

namespace {

mvcc::ValidationOptions ValidationFor(const ServerOptions& options) {
  mvcc::ValidationOptions validation;
  validation.request_bytes_max = options.request_bytes_max;
  validation.txn_ops_max = options.txn_ops_max;
  validation.reject_reversed_range = false;  // etcd answers reversed ranges with nothing
  return validation;
}

WatchServiceOptions WatchOptionsFor(const ServerOptions& options) {
  WatchServiceOptions watch;
  watch.progress_notify_interval_ms = options.watch_progress_notify_interval_ms;
  watch.fragment_bytes_max = options.request_bytes_max;
  return watch;
}

// "host:port" with the port replaced by `port`.
std::string WithPort(const std::string& address, int port) {
  return address.substr(0, address.rfind(':') + 1) + std::to_string(port);
}

}  // namespace

Result<std::unique_ptr<Server>> Server::Start(const ServerOptions& options) {
  if (options.data_dir.empty()) return Status::InvalidArgument("cairnd: a data dir is required");
  node::NodeOptions node_options;
  node_options.data_dir = options.data_dir;
  auto metrics = std::make_shared<ServerMetrics>();
  ServerMetrics::InstallNodeHooks(metrics, &node_options);
  // The hub is built with the Server (after the node opened); until then events are dropped.
  auto hub_slot = std::make_shared<std::atomic<feed::Hub*>>(nullptr);
  auto waiter_slot = std::make_shared<std::atomic<PrefixWaiter*>>(nullptr);
  node_options.event_sink = [hub_slot, waiter_slot](int64_t revision,
                                                    std::vector<mvccpb::Event>&& events) {
    if (feed::Hub* hub = hub_slot->load()) hub->Publish(revision, events);
    if (PrefixWaiter* waiter = waiter_slot->load()) waiter->Notify();
  };
  auto node = node::Node::Open(std::move(node_options));
  if (!node.ok()) {
    std::string context = "cannot open data dir \"" + options.data_dir + "\"";
    if (node.status().message().find("LOCK") != std::string_view::npos) {
      context += " (is another cairnd using it?)";
    }
    return node.status().WithContext(context);
  }
  std::unique_ptr<Server> server(new Server(options, std::move(*node)));
  hub_slot->store(server->hub_.get());
  server->waiter_slot_ = waiter_slot;
  server->metrics_ = metrics;
  metrics->AddStateGauges(server->node_.get(), server->hub_.get(), server->lease_manager_.get());
  SpaceQuota* quota = server->space_quota_.get();
  server->node_->SetAdmission(
      [quota](const command::Command& command) { return quota->Admit(command); });
  Status leases = server->lease_manager_->Start();
  if (!leases.ok()) {
    (void)server->Shutdown();
    return leases.WithContext("restoring leases");
  }
  Status listening = server->Listen();
  if (!listening.ok()) {
    (void)server->Shutdown();
    return listening;
  }
  server->auto_compactor_->Start();
  return server;
}

Server::Server(const ServerOptions& options, std::unique_ptr<node::Node> node)
    : options_(options),
      identity_(options.name, options.cluster_token),
      node_(std::move(node)),
      space_quota_(std::make_unique<SpaceQuota>(node_.get(), identity_.member_id(),
                                                options.quota_backend_bytes)),
      kv_service_(
          std::make_unique<KvService>(node_.get(), &identity_, &worker_, ValidationFor(options))),
      maintenance_service_(std::make_unique<MaintenanceService>(
          node_.get(), &identity_, space_quota_.get(), &worker_, options.data_dir + "/tmp")),
      cluster_service_(std::make_unique<ClusterService>(
          &identity_, options.name, options.advertise_peer_urls, options.advertise_client_urls)),
      auto_compactor_(std::make_unique<AutoCompactor>(node_.get(), options.auto_compaction)),
      lease_manager_(std::make_unique<LeaseManager>(node_.get(), nullptr, options.lease)),
      lease_service_(std::make_unique<LeaseService>(node_.get(), lease_manager_.get(), &identity_)),
      hub_(std::make_unique<feed::Hub>(node_->kv()->CurrentRevision(), options.watch_hub)),
      watch_service_(std::make_unique<WatchService>(node_.get(), hub_.get(), &identity_,
                                                    WatchOptionsFor(options))) {}

Server::~Server() { (void)Shutdown(); }

Status Server::Listen() {
  grpc::ServerBuilder builder;
  // Without this, gRPC sets SO_REUSEPORT and a second server would share a busy port.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  const size_t receive_bytes_max =
      std::min<size_t>(options_.request_bytes_max + ServerOptions::kGrpcOverheadBytes, INT_MAX);
  builder.SetMaxReceiveMessageSize(static_cast<int>(receive_bytes_max));
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> creators;
  creators.push_back(metrics_->NewInterceptorFactory());
  builder.experimental().SetInterceptorCreators(std::move(creators));
  std::vector<int> ports(options_.client_addresses.size(), 0);
  for (size_t i = 0; i < options_.client_addresses.size(); i++) {
    builder.AddListeningPort(options_.client_addresses[i], grpc::InsecureServerCredentials(),
                             &ports[i]);
  }
  builder.RegisterService(kv_service_.get());
  builder.RegisterService(maintenance_service_.get());
  builder.RegisterService(cluster_service_.get());
  builder.RegisterService(lease_service_.get());
  builder.RegisterService(watch_service_.get());
  lock_waiter_ = std::make_unique<PrefixWaiter>();
  waiter_slot_->store(lock_waiter_.get());
  lock_service_ = std::make_unique<LockService>(node_.get(), &identity_, lock_waiter_.get());
  election_service_ =
      std::make_unique<ElectionService>(node_.get(), &identity_, lock_waiter_.get());
  builder.RegisterService(lock_service_.get());
  builder.RegisterService(election_service_.get());
  grpc_server_ = builder.BuildAndStart();
  for (size_t i = 0; i < ports.size(); i++) {
    if (grpc_server_ == nullptr || ports[i] == 0) {
      return Status::Unavailable("cannot listen on " + options_.client_addresses[i] +
                                 ": the address is in use or not available");
    }
    addresses_.push_back(WithPort(options_.client_addresses[i], ports[i]));
  }
  if (!options_.metrics_addresses.empty()) {
    auto http = StartMetricsHttp(options_.metrics_addresses, metrics_.get(), node_.get());
    if (!http.ok()) return http.status();
    metrics_http_ = std::move(*http);
  }
  return Status::Ok();
}

const std::vector<std::string>& Server::metrics_addresses() const {
  static const std::vector<std::string> kNone;
  return metrics_http_ ? metrics_http_->addresses() : kNone;
}

Status Server::Shutdown() {
  if (auto_compactor_) auto_compactor_->Stop();  // it waits on the node
  if (metrics_http_) metrics_http_->Stop();      // its gauges read the parts stopped below
  if (watch_service_) watch_service_->Stop();    // watch streams never end by themselves
  if (waiter_slot_) waiter_slot_->store(nullptr);
  if (lock_waiter_) lock_waiter_->Stop();  // finishes waiting Lock/Campaign/Observe calls
  if (grpc_server_) {
    grpc_server_->Shutdown(std::chrono::system_clock::now() +
                           std::chrono::milliseconds(options_.shutdown_deadline_ms));
    grpc_server_->Wait();
    grpc_server_.reset();
  }
  if (lease_manager_) lease_manager_->Stop();  // its final checkpoint needs the node
  worker_.Stop();
  if (!node_) return Status::Ok();
  Status closed = node_->Close();
  node_.reset();
  if (!closed.ok()) log::Get("server")->error("closing the node: {}", closed.ToString());
  return closed;
}

}  // namespace cairn::server
