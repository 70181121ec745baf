// The connection to the cluster: global flags, the gRPC channel and stubs, per-call
// contexts with etcdctl's timeouts, and etcdctl's wording for errors.
//
// One Connection per process; it is not copied. Stubs are thread-safe (gRPC's rule), so the
// lease keep-alive thread of lock/elect shares them with the main thread.
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "etcdserverpb/rpc.grpc.pb.h"
#include "v3electionpb/v3election.grpc.pb.h"
#include "v3lockpb/v3lock.grpc.pb.h"

namespace cairnctl {

// etcdctl's exit codes (etcdctl/ctlv3/command/error.go).
inline constexpr int kExitSuccess = 0;
inline constexpr int kExitError = 1;
inline constexpr int kExitBadConnection = 2;
inline constexpr int kExitInvalidInput = 3;
inline constexpr int kExitBadFeature = 4;
inline constexpr int kExitInterrupted = 5;
inline constexpr int kExitBadArgs = 128;

enum class OutputFormat { kSimple, kJson };

// What the global flags set; main.cc maps the flags onto it.
struct GlobalOptions {
  // Default: etcdctl's. An http:// or https:// prefix is accepted and dropped.
  std::vector<std::string> endpoints = {"127.0.0.1:2379"};
  OutputFormat output = OutputFormat::kSimple;
  // Print keys and values as hex (etcdctl --hex).
  bool hex = false;
  // Default: 2 s (etcdctl). Bounds connecting for long-running commands (watch, lock, ...).
  std::chrono::milliseconds dial_timeout{2000};
  // Default: 5 s (etcdctl). Bounds every short request, connecting included.
  std::chrono::milliseconds command_timeout{5000};
};

// Prints "Error: <message>" to stderr, as etcdctl's ExitWithError, and returns exit_code.
int ExitWithError(int exit_code, const std::string& message);

// etcdctl's text for a failed RPC: etcd's own errors print their message ("etcdserver:
// ..."), a deadline prints "context deadline exceeded", anything else prints Go gRPC's
// "rpc error: code = Unimplemented desc = ...".
std::string ErrorText(const grpc::Status& status);

class Connection {
 public:
  // `endpoints` may differ from options.endpoints (endpoint status asks each in turn); an
  // http:// or https:// prefix is dropped.
  Connection(const GlobalOptions& options, const std::vector<std::string>& endpoints);
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  const GlobalOptions& options() const { return options_; }

  // A context for one short request: deadline = --command-timeout, waits for the channel.
  std::unique_ptr<grpc::ClientContext> CommandContext() const;
  // A context for a stream that lives until the command ends (no deadline).
  std::unique_ptr<grpc::ClientContext> StreamContext() const;
  // Waits up to --dial-timeout for the channel to connect.
  bool WaitConnected() const;

  etcdserverpb::KV::Stub& kv() { return *kv_; }
  etcdserverpb::Watch::Stub& watch() { return *watch_; }
  etcdserverpb::Lease::Stub& lease() { return *lease_; }
  etcdserverpb::Cluster::Stub& cluster() { return *cluster_; }
  etcdserverpb::Maintenance::Stub& maintenance() { return *maintenance_; }
  v3lockpb::Lock::Stub& lock() { return *lock_; }
  v3electionpb::Election::Stub& election() { return *election_; }

 private:
  GlobalOptions options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<etcdserverpb::KV::Stub> kv_;
  std::unique_ptr<etcdserverpb::Watch::Stub> watch_;
  std::unique_ptr<etcdserverpb::Lease::Stub> lease_;
  std::unique_ptr<etcdserverpb::Cluster::Stub> cluster_;
  std::unique_ptr<etcdserverpb::Maintenance::Stub> maintenance_;
  std::unique_ptr<v3lockpb::Lock::Stub> lock_;
  std::unique_ptr<v3electionpb::Election::Stub> election_;
};

// "http://127.0.0.1:2379" -> "127.0.0.1:2379".
std::string StripScheme(const std::string& endpoint);

}  // namespace cairnctl
