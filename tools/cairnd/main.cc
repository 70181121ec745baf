// cairnd: Cairn's etcd v3-compatible server. Flags follow etcd's names and defaults so that
// existing scripts work; flags for features still to come are accepted and say so in --help.
//
// Exit status: 0 after a graceful shutdown (SIGTERM/SIGINT), 1 when startup fails (bad flag
// values, data dir unusable, address in use), 2 for unknown flags.
#include <absl/synchronization/mutex.h>
#include <signal.h>

#include <CLI/CLI.hpp>
#include <cctype>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "src/base/logging.h"
#include "src/server/client_url.h"
#include "src/server/duration.h"
#include "src/server/server.h"

namespace {

using cairn::server::ServerOptions;

// Raft cluster flags (etcd's names and meanings).
struct ClusterFlags {
  std::string listen_peer_urls = "http://localhost:2380";
  std::string initial_cluster;
  std::string initial_cluster_state = "new";
  int64_t heartbeat_interval_ms = ServerOptions{}.heartbeat_interval_ms;
  int64_t election_timeout_ms = ServerOptions{}.election_timeout_ms;
  uint64_t snapshot_count = ServerOptions{}.snapshot_count;
  uint64_t snapshot_catchup_entries = ServerOptions{}.snapshot_catchup_entries;
};

struct Flags {
  ServerOptions server;
  std::string listen_client_urls = "http://127.0.0.1:2379";
  std::string advertise_client_urls = "http://localhost:2379";
  std::string initial_advertise_peer_urls = "http://localhost:2380";
  std::string auto_compaction_mode = "periodic";
  std::string auto_compaction_retention = "0";
  std::string listen_metrics_urls = "http://127.0.0.1:2381";
  std::string log_level = "info";
  std::string watch_progress_notify_interval = "10m";
  ClusterFlags cluster;
};

void AddFlags(CLI::App* app, Flags* flags) {
  ServerOptions& s = flags->server;
  s.data_dir = "./cairn-data";
  app->add_option("--name", s.name, "Human-readable name for this member")->capture_default_str();
  app->add_option("--data-dir", s.data_dir, "Path to the data directory")->capture_default_str();
  app->add_option("--listen-client-urls", flags->listen_client_urls,
                  "Comma-separated http://host:port URLs to serve clients on (port 0: any free "
                  "port, printed at startup)")
      ->capture_default_str();
  app->add_option("--advertise-client-urls", flags->advertise_client_urls,
                  "Comma-separated client URLs advertised to the cluster (MemberList)")
      ->capture_default_str();
  app->add_option("--initial-cluster-token", s.cluster_token,
                  "Cluster token; with --name it determines the cluster and member ids")
      ->capture_default_str();
  app->add_option("--max-request-bytes", s.request_bytes_max,
                  "Largest client request accepted, in bytes")
      ->capture_default_str();
  app->add_option("--max-txn-ops", s.txn_ops_max, "Most operations in one transaction")
      ->capture_default_str();
  app->add_option("--quota-backend-bytes", s.quota_backend_bytes,
                  "Database size beyond which writes raise the NOSPACE alarm and fail until it "
                  "is disarmed (0 = 2 GiB, etcd's default; at most 8 GiB; negative: no quota)")
      ->capture_default_str();
  app->add_option("--log-level", flags->log_level, "trace, debug, info, warn, error or off")
      ->capture_default_str();
  ClusterFlags& c = flags->cluster;
  app->add_option("--listen-peer-urls", c.listen_peer_urls,
                  "Comma-separated http://host:port URLs to serve Raft peers on (listened on "
                  "when given, or when --initial-cluster names more than one member)")
      ->capture_default_str();
  app->add_option("--initial-advertise-peer-urls", flags->initial_advertise_peer_urls,
                  "Comma-separated peer URLs advertised to the cluster (MemberList)")
      ->capture_default_str();
  app->add_option("--initial-cluster", c.initial_cluster,
                  "Members of a new cluster: name=http://host:port,... (default: this member "
                  "alone, --name=--initial-advertise-peer-urls)");
  app->add_option("--initial-cluster-state", c.initial_cluster_state,
                  "new: bootstrap the --initial-cluster; existing: join a running cluster that "
                  "added this member (member add)")
      ->capture_default_str();
  app->add_option("--heartbeat-interval", c.heartbeat_interval_ms,
                  "Raft heartbeat interval (one tick), in milliseconds")
      ->capture_default_str();
  app->add_option("--election-timeout", c.election_timeout_ms,
                  "Raft election timeout, in milliseconds")
      ->capture_default_str();
  app->add_option("--snapshot-count", c.snapshot_count,
                  "Applied entries between checkpoints (engine flush and Raft log compaction); "
                  "0 keeps the whole log")
      ->capture_default_str();
  app->add_option("--snapshot-catchup-entries", c.snapshot_catchup_entries,
                  "Raft log entries kept below the applied index at a checkpoint for slow "
                  "followers; a follower further behind is sent a snapshot")
      ->capture_default_str();
  app->add_option("--auto-compaction-mode", flags->auto_compaction_mode,
                  "periodic: keep the history of the retention period; revision: keep the last "
                  "retention revisions")
      ->capture_default_str();
  app->add_option("--auto-compaction-retention", flags->auto_compaction_retention,
                  "Auto compaction retention: hours or a duration (e.g. 30m) for periodic, a "
                  "revision count for revision; 0 disables")
      ->capture_default_str();
  app->add_option("--listen-metrics-urls", flags->listen_metrics_urls,
                  "Comma-separated http://host:port URLs serving /metrics, /health and /readyz "
                  "(port 0: any free port, printed at startup; empty: none)")
      ->capture_default_str();
  app->add_option("--watch-progress-notify-interval", flags->watch_progress_notify_interval,
                  "Interval of progress notifications to watchers that asked (Go duration, "
                  "e.g. 10m, 30s, 500ms; 0 disables)")
      ->capture_default_str();
}

int Fail(const std::string& message) {
  std::fprintf(stderr, "cairnd: %s\n", message.c_str());
  return 1;
}

// Blocks SIGINT and SIGTERM in this and every later thread, so that WaitForSignal receives
// them instead of a thread started by gRPC or RocksDB.
sigset_t BlockShutdownSignals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  return signals;
}

int WaitForSignal(const sigset_t& signals) {
  int signal_number = 0;
  while (sigwait(&signals, &signal_number) != 0) {
  }
  return signal_number;
}

std::vector<std::string> SplitCommas(const std::string& text) {
  std::vector<std::string> items;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t comma = std::min(text.find(',', start), text.size());
    if (comma > start) items.push_back(text.substr(start, comma - start));
    start = comma + 1;
  }
  return items;
}

std::string Join(const std::vector<std::string>& items) {
  std::string joined;
  for (const std::string& item : items) joined += (joined.empty() ? "" : ",") + item;
  return joined;
}

// Maps the cluster flags onto the server options; returns an error message or "".
std::string ApplyClusterFlags(const CLI::App& app, const ClusterFlags& flags,
                              ServerOptions* server) {
  std::map<std::string, std::vector<std::string>> by_name;
  std::vector<std::string> order;
  for (const std::string& item : SplitCommas(flags.initial_cluster)) {
    const size_t equals = item.find('=');
    if (equals == 0 || equals == std::string::npos || equals + 1 == item.size()) {
      return "--initial-cluster: \"" + item + "\" is not name=http://host:port";
    }
    const std::string name = item.substr(0, equals);
    if (!by_name.contains(name)) order.push_back(name);
    by_name[name].push_back(item.substr(equals + 1));
  }
  for (const std::string& name : order) server->initial_cluster.emplace_back(name, by_name[name]);
  if (!order.empty() && !by_name.contains(server->name)) {
    return "--initial-cluster has no member named \"" + server->name + "\" (--name)";
  }
  if (flags.initial_cluster_state != "new" && flags.initial_cluster_state != "existing") {
    return "--initial-cluster-state must be new or existing";
  }
  server->join_existing_cluster = flags.initial_cluster_state == "existing";
  server->heartbeat_interval_ms = flags.heartbeat_interval_ms;
  server->election_timeout_ms = flags.election_timeout_ms;
  server->snapshot_count = flags.snapshot_count;
  server->snapshot_catchup_entries = flags.snapshot_catchup_entries;
  const bool listen =
      app.count("--listen-peer-urls") > 0 || order.size() > 1 || server->join_existing_cluster;
  if (listen) {
    auto peers = cairn::server::ClientUrlsToAddresses(flags.listen_peer_urls);
    if (!peers.ok()) return "--listen-peer-urls: " + std::string(peers.status().message());
    server->peer_addresses = *peers;
  }
  return "";
}

}  // namespace

int main(int argc, char** argv) {
  // Debian's Abseil is built without NDEBUG, so every absl::Mutex (gRPC's locks) would keep a
  // lock graph for deadlock detection: measurable CPU per request. Cairn's own locks are std.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  CLI::App app{"cairnd: Cairn's etcd v3-compatible key-value server"};
  Flags flags;
  AddFlags(&app, &flags);
  CLI11_PARSE(app, argc, argv);

  if (!cairn::log::SetLevel(flags.log_level)) return Fail("unknown --log-level " + flags.log_level);
  auto addresses = cairn::server::ClientUrlsToAddresses(flags.listen_client_urls);
  if (!addresses.ok())
    return Fail("--listen-client-urls: " + std::string(addresses.status().message()));
  flags.server.client_addresses = *addresses;
  if (!flags.listen_metrics_urls.empty()) {
    auto metrics = cairn::server::ClientUrlsToAddresses(flags.listen_metrics_urls);
    if (!metrics.ok())
      return Fail("--listen-metrics-urls: " + std::string(metrics.status().message()));
    flags.server.metrics_addresses = *metrics;
  }
  auto advertised = cairn::server::ClientUrlsToAddresses(flags.advertise_client_urls);
  if (!advertised.ok()) {
    return Fail("--advertise-client-urls: " + std::string(advertised.status().message()));
  }
  flags.server.advertise_client_urls = SplitCommas(flags.advertise_client_urls);
  flags.server.advertise_peer_urls = SplitCommas(flags.initial_advertise_peer_urls);
  std::string cluster_error = ApplyClusterFlags(app, flags.cluster, &flags.server);
  if (!cluster_error.empty()) return Fail(cluster_error);
  auto compaction = cairn::server::AutoCompactionOptions::Parse(flags.auto_compaction_mode,
                                                                flags.auto_compaction_retention);
  if (!compaction.ok()) return Fail(std::string(compaction.status().message()));
  flags.server.auto_compaction = *compaction;
  if (flags.server.request_bytes_max == 0) return Fail("--max-request-bytes must be positive");
  if (flags.server.txn_ops_max == 0) return Fail("--max-txn-ops must be positive");
  flags.server.watch_progress_notify_interval_ms =
      cairn::server::ParseDurationMs(flags.watch_progress_notify_interval);
  if (flags.server.watch_progress_notify_interval_ms < 0) {
    return Fail("--watch-progress-notify-interval: not a duration: " +
                flags.watch_progress_notify_interval);
  }

  const sigset_t signals = BlockShutdownSignals();
  auto logger = cairn::log::Get("cairnd");
  auto server = cairn::server::Server::Start(flags.server);
  if (!server.ok()) return Fail(server.status().ToString());
  logger->info("member {} ({:016x}) serving etcd v3 clients on {}", flags.server.name,
               (*server)->identity().member_id(), Join((*server)->addresses()));
  if (!(*server)->peer_addresses().empty()) {
    logger->info("serving Raft peers on {}", Join((*server)->peer_addresses()));
  }
  if (!(*server)->metrics_addresses().empty()) {
    std::vector<std::string> urls;
    for (const std::string& address : (*server)->metrics_addresses())
      urls.push_back("http://" + address);
    logger->info("serving /metrics, /health and /readyz on {}", Join(urls));
  }

  const int signal_number = WaitForSignal(signals);
  logger->info("received {}, shutting down", signal_number == SIGINT ? "SIGINT" : "SIGTERM");
  cairn::Status closed = (*server)->Shutdown();
  if (!closed.ok()) return Fail("shutdown: " + closed.ToString());
  logger->info("stopped");
  return 0;
}
