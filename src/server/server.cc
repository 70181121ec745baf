#include "src/server/server.h"

#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_builder.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <cstdlib>
#include <future>
#include <set>
#include <thread>

#include "src/base/logging.h"
#include "src/env/posix_file_system.h"
#include "src/node/snapshot_install.h"

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
  // On disk, log segments are written as zeros ahead of use: an fdatasync then writes only
  // the data (wal.h).
  node_options.wal.zero_filled_segments = true;
  CAIRN_RETURN_IF_ERROR(ConfigureRaft(options, &node_options));
  auto stored_id = node::StoredMemberId(env::PosixFileSystem::Default(), options.data_dir);
  if (!stored_id.ok()) return stored_id.status();
  if (*stored_id != 0) {
    node_options.member_id = *stored_id;
  }
  std::vector<std::pair<uint64_t, std::vector<std::string>>> running_members;
  if (*stored_id == 0 && options.join_existing_cluster) {
    CAIRN_ASSIGN_OR_RETURN(running_members, FetchRunningMembers(options));
    CAIRN_ASSIGN_OR_RETURN(node_options.member_id, FindAddedMemberId(options, running_members));
  }
  const MemberIdentity identity(options.name, options.cluster_token, node_options.member_id);
  transport::GrpcTransportOptions transport_options;
  transport_options.self_id = identity.member_id();
  transport_options.cluster_id = identity.cluster_id();
  // A restarted member should hear from the leader within about an election timeout.
  transport_options.reconnect_backoff_max_ms = options.election_timeout_ms;
  // The node is opened after the transport; its callbacks find it through this slot.
  auto node_slot = std::make_shared<std::atomic<node::Node*>>(nullptr);
  auto identity_slot = std::make_shared<std::atomic<const MemberIdentity*>>(nullptr);
  transport::GrpcTransportCallbacks transport_callbacks;
  transport_callbacks.on_unreachable = [node_slot](raft::NodeId id) {
    if (node::Node* node = node_slot->load()) node->ReportUnreachable(id);
  };
  transport_callbacks.on_snapshot_status = [node_slot](raft::NodeId id, bool failed) {
    if (node::Node* node = node_slot->load()) node->ReportSnapshot(id, failed);
  };
  auto transport =
      std::make_shared<transport::GrpcTransport>(transport_options, std::move(transport_callbacks));
  // A joining member answers the leader before it has applied any membership.
  for (const auto& [id, urls] : running_members) {
    if (id != node_options.member_id) transport->SetPeer(id, urls);
  }
  node_options.send = [transport](std::vector<raft::Message>&& messages) {
    transport->Send(std::move(messages));
  };
  node_options.on_members_changed = [transport, self = identity.member_id(),
                                     known = std::make_shared<std::set<uint64_t>>()](
                                        const std::vector<command::Member>& members) {
    std::set<uint64_t> current;
    for (const command::Member& member : members) {
      if (member.id() == self) continue;
      current.insert(member.id());
      transport->SetPeer(member.id(), std::vector<std::string>(member.peer_urls().begin(),
                                                               member.peer_urls().end()));
    }
    for (uint64_t id : *known) {
      if (!current.contains(id)) transport->RemovePeer(id);
    }
    *known = std::move(current);
  };
  node_options.on_leader_change = [identity_slot](uint64_t, uint64_t term) {
    if (const MemberIdentity* identity = identity_slot->load()) identity->set_raft_term(term);
  };
  auto metrics = std::make_shared<ServerMetrics>();
  ServerMetrics::InstallNodeHooks(metrics, &node_options);
  // The hub is built with the Server (after the node opened); until then events are dropped.
  auto hub_slot = std::make_shared<std::atomic<feed::Hub*>>(nullptr);
  auto waiter_slot = std::make_shared<std::atomic<PrefixWaiter*>>(nullptr);
  // Without watchers a batch builds no events; a watcher added while such a batch was
  // applied reads its revisions from storage (JumpTo), as after a snapshot install.
  node_options.events_wanted = [hub_slot] {
    feed::Hub* hub = hub_slot->load();
    return hub != nullptr && hub->watcher_count() > 0;
  };
  node_options.event_sink = [hub_slot, waiter_slot](int64_t revision,
                                                    std::vector<mvccpb::Event>* events) {
    if (feed::Hub* hub = hub_slot->load()) {
      if (events != nullptr) {
        hub->Publish(revision, *events);
      } else {
        hub->JumpTo(revision);
      }
    }
    if (PrefixWaiter* waiter = waiter_slot->load()) waiter->Notify();
  };
  // Test hook (tests/cluster/cluster_snapshot_test.cc): pause a snapshot install after the
  // engine was replaced and before the log is reset, so that a test can kill -9 the member
  // there. Not a user setting.
  if (const char* pause = std::getenv("CAIRN_TEST_SNAPSHOT_INSTALL_PAUSE_MS")) {
    const auto pause_ms = std::chrono::milliseconds(std::atoll(pause));
    node_options.snapshot_install_test_hook = [pause_ms](int step) {
      if (step == 3) std::this_thread::sleep_for(pause_ms);
      return true;
    };
  }
  // A snapshot install replaced the state under the watchers: they catch up from storage.
  node_options.on_snapshot_installed = [hub_slot, waiter_slot](uint64_t, int64_t revision) {
    if (feed::Hub* hub = hub_slot->load()) hub->JumpTo(revision);
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
  server->transport_ = transport;
  server->node_slot_ = node_slot;
  node_slot->store(server->node_.get());
  identity_slot->store(&server->identity_);
  server->identity_.set_raft_term(std::max<uint64_t>(server->node_->Term(), 1));
  hub_slot->store(server->hub_.get());
  server->waiter_slot_ = waiter_slot;
  server->metrics_ = metrics;
  metrics->AddStateGauges(server->node_.get(), server->hub_.get(), server->lease_manager_.get());
  SpaceQuota* quota = server->space_quota_.get();
  server->node_->SetAdmission(
      [quota](const command::Command& command) { return quota->Admit(command); });
  server->lease_renew_client_ =
      std::make_unique<transport::LeaseRenewClient>(server->identity_.cluster_id());
  server->lease_manager_->set_renew_forwarder([s = server.get()](int64_t id) -> Result<int64_t> {
    command::Member leader;
    if (s->node_->LeaderId() == 0 || !s->node_->membership()->Get(s->node_->LeaderId(), &leader) ||
        leader.peer_urls().empty()) {
      return Status::Unavailable("etcdserver: no leader");
    }
    return s->lease_renew_client_->Renew(leader.peer_urls(0), id, 1000);
  });
  Status leases = server->lease_manager_->Start();
  if (!leases.ok()) {
    (void)server->Shutdown();
    return leases.WithContext("restoring leases");
  }
  Status listening = server->ListenPeers();
  if (listening.ok()) listening = server->Listen();
  if (!listening.ok()) {
    (void)server->Shutdown();
    return listening;
  }
  server->StartPublishing();
  server->auto_compactor_->Start();
  return server;
}

Server::Server(const ServerOptions& options, std::unique_ptr<node::Node> node)
    : options_(options),
      identity_(options.name, options.cluster_token, node->member_id()),
      node_(std::move(node)),
      space_quota_(std::make_unique<SpaceQuota>(node_.get(), identity_.member_id(),
                                                options.quota_backend_bytes)),
      kv_service_(
          std::make_unique<KvService>(node_.get(), &identity_, &worker_, ValidationFor(options))),
      maintenance_service_(std::make_unique<MaintenanceService>(
          node_.get(), &identity_, space_quota_.get(), &worker_, options.data_dir + "/tmp")),
      cluster_service_(std::make_unique<ClusterService>(node_.get(), &identity_)),
      auto_compactor_(std::make_unique<AutoCompactor>(node_.get(), options.auto_compaction)),
      lease_manager_(std::make_unique<LeaseManager>(node_.get(), nullptr, options.lease)),
      lease_service_(std::make_unique<LeaseService>(node_.get(), lease_manager_.get(), &identity_)),
      hub_(std::make_unique<feed::Hub>(node_->kv()->CurrentRevision(), options.watch_hub)),
      watch_service_(std::make_unique<WatchService>(node_.get(), hub_.get(), &identity_,
                                                    WatchOptionsFor(options))),
      events_service_(
          std::make_unique<EventsService>(node_.get(), &identity_, ValidationFor(options))),
      persistent_service_(std::make_unique<PersistentService>(node_.get(), &identity_)),
      projections_service_(std::make_unique<ProjectionsService>(node_.get(), &identity_)) {}

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
  builder.RegisterService(events_service_.get());
  builder.RegisterService(persistent_service_.get());
  builder.RegisterService(projections_service_.get());
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

Status Server::ConfigureRaft(const ServerOptions& options, node::NodeOptions* node_options) {
  if (options.heartbeat_interval_ms <= 0 ||
      options.election_timeout_ms < 2 * options.heartbeat_interval_ms) {
    return Status::InvalidArgument(
        "--election-timeout must be at least twice --heartbeat-interval, and both positive");
  }
  node_options->member_id = MemberIdentity::MemberIdFor(options.name, options.cluster_token);
  node_options->tick_ms = options.heartbeat_interval_ms;
  node_options->election_ticks =
      static_cast<int>(options.election_timeout_ms / options.heartbeat_interval_ms);
  node_options->join_existing = options.join_existing_cluster;
  node_options->request_timeout_ms = 5000 + 2 * options.election_timeout_ms;
  node_options->checkpoint_interval_entries = options.snapshot_count;
  node_options->cluster_log_retention_entries = options.snapshot_catchup_entries;
  auto member_for = [&](const std::string& name, const std::vector<std::string>& peer_urls) {
    command::Member member;
    member.set_id(MemberIdentity::MemberIdFor(name, options.cluster_token));
    member.set_name(name);
    for (const std::string& url : peer_urls) member.add_peer_urls(url);
    // Client URLs are published by each member after it starts (PublishAttributes): the
    // bootstrap entries must be identical on every member.
    return member;
  };
  if (options.initial_cluster.empty()) {
    node_options->initial_members.push_back(member_for(options.name, options.advertise_peer_urls));
    return Status::Ok();
  }
  bool self_listed = false;
  for (const auto& [name, peer_urls] : options.initial_cluster) {
    self_listed = self_listed || name == options.name;
    node_options->initial_members.push_back(member_for(name, peer_urls));
  }
  if (!self_listed) {
    return Status::InvalidArgument("--initial-cluster has no member named \"" + options.name +
                                   "\" (--name)");
  }
  return Status::Ok();
}

Result<std::vector<std::pair<uint64_t, std::vector<std::string>>>> Server::FetchRunningMembers(
    const ServerOptions& options) {
  // etcd's join: ask the running members for the membership.
  std::vector<std::string> others;
  for (const auto& [name, urls] : options.initial_cluster) {
    if (name == options.name) continue;
    others.insert(others.end(), urls.begin(), urls.end());
  }
  if (others.empty()) {
    return Status::InvalidArgument(
        "--initial-cluster-state existing needs --initial-cluster to name the running members");
  }
  const MemberIdentity identity(options.name, options.cluster_token);
  return transport::FetchMembers(others, identity.cluster_id(), 3000);
}

Result<uint64_t> Server::FindAddedMemberId(
    const ServerOptions& options,
    const std::vector<std::pair<uint64_t, std::vector<std::string>>>& members) {
  // The id MemberAdd gave our peer URLs.
  for (const auto& [id, urls] : members) {
    for (const std::string& url : urls) {
      if (std::find(options.advertise_peer_urls.begin(), options.advertise_peer_urls.end(), url) !=
          options.advertise_peer_urls.end()) {
        return id;
      }
    }
  }
  return Status::FailedPrecondition(
      "no member of the running cluster has the peer URLs of this member "
      "(--initial-advertise-peer-urls); add it first with `member add`");
}

Status Server::ListenPeers() {
  if (options_.peer_addresses.empty()) return Status::Ok();
  peer_service_ =
      std::make_unique<transport::PeerService>(identity_.member_id(), identity_.cluster_id(),
                                               [node_slot = node_slot_](raft::Message&& message) {
                                                 if (node::Node* node = node_slot->load())
                                                   node->Step(std::move(message));
                                               });
  peer_service_->set_snapshot_staging_dir(node::SnapshotDir(options_.data_dir));
  peer_service_->set_renew_lease(
      [manager = lease_manager_.get()](int64_t id) { return manager->RenewHere(id); });
  peer_service_->set_list_members([node = node_.get()] {
    std::vector<std::pair<raft::NodeId, std::vector<std::string>>> members;
    for (const command::Member& member : node->membership()->List()) {
      members.emplace_back(member.id(), std::vector<std::string>(member.peer_urls().begin(),
                                                                 member.peer_urls().end()));
    }
    return members;
  });
  grpc::ServerBuilder builder;
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  transport::ConfigurePeerServerBuilder(&builder);
  std::vector<int> ports(options_.peer_addresses.size(), 0);
  for (size_t i = 0; i < options_.peer_addresses.size(); i++) {
    builder.AddListeningPort(options_.peer_addresses[i], grpc::InsecureServerCredentials(),
                             &ports[i]);
  }
  builder.RegisterService(peer_service_.get());
  peer_server_ = builder.BuildAndStart();
  for (size_t i = 0; i < ports.size(); i++) {
    if (peer_server_ == nullptr || ports[i] == 0) {
      return Status::Unavailable("cannot listen for peers on " + options_.peer_addresses[i] +
                                 ": the address is in use or not available");
    }
    peer_addresses_.push_back(WithPort(options_.peer_addresses[i], ports[i]));
  }
  return Status::Ok();
}

Status Server::PublishAttributes() {
  command::Member stored;
  const bool known = node_->membership()->Get(identity_.member_id(), &stored);
  std::vector<std::string> stored_urls(stored.client_urls().begin(), stored.client_urls().end());
  if (known && stored.name() == options_.name && stored_urls == options_.advertise_client_urls) {
    return Status::Ok();
  }
  command::Command command;
  command::Member* attributes = command.mutable_member_attributes();
  attributes->set_id(identity_.member_id());
  attributes->set_name(options_.name);
  for (const std::string& url : options_.advertise_client_urls) attributes->add_client_urls(url);
  auto outcome = std::make_shared<std::promise<Status>>();
  std::future<Status> published = outcome->get_future();
  node_->Propose(std::move(command), [outcome](const Status& status, command::CommandResult&&) {
    outcome->set_value(status);
  });
  return published.get();
}

void Server::StartPublishing() {
  // A member publishes its name and client URLs once it can reach a leader (etcd's
  // publish); a member added by MemberAdd has neither until then. A sole voter leads
  // already: it publishes before serving.
  if (node_->IsLeader() && PublishAttributes().ok()) return;
  publisher_ = std::thread([this] {
    std::unique_lock lock(publisher_mutex_);
    while (!publisher_stopping_) {
      lock.unlock();
      Status status = PublishAttributes();
      lock.lock();
      if (status.ok()) return;
      publisher_cv_.wait_for(lock, std::chrono::milliseconds(500));
    }
  });
}

Status Server::Shutdown() {
  {
    std::lock_guard lock(publisher_mutex_);
    publisher_stopping_ = true;
  }
  publisher_cv_.notify_all();
  if (auto_compactor_) auto_compactor_->Stop();          // it waits on the node
  if (metrics_http_) metrics_http_->Stop();              // its gauges read the parts stopped below
  if (watch_service_) watch_service_->Stop();            // watch streams never end by themselves
  if (events_service_) events_service_->Stop();          // nor do event subscriptions
  if (persistent_service_) persistent_service_->Stop();  // nor persistent consumers
  if (projections_service_) projections_service_->Stop();  // the runner reads the engine
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
  if (peer_server_) {
    peer_server_->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(500));
    peer_server_->Wait();
    peer_server_.reset();
  }
  Status closed = node_->Close();  // a pending publish fails now, so the publisher ends
  if (publisher_.joinable()) publisher_.join();
  if (node_slot_) node_slot_->store(nullptr);
  if (transport_) transport_->Stop();
  node_.reset();
  if (!closed.ok()) log::Get("server")->error("closing the node: {}", closed.ToString());
  return closed;
}

}  // namespace cairn::server
