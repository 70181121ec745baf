// lease grant, revoke, timetolive, list and keep-alive, as etcdctl's lease_command.go.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "tools/cairnctl/commands.h"
#include "tools/cairnctl/go_format.h"
#include "tools/cairnctl/printer.h"

namespace cairnctl {
namespace {

struct LeaseFlags {
  std::vector<std::string> args;
  bool keys = false;  // timetolive --keys
  bool once = false;  // keep-alive --once
};

// leaseFromArgs: a lease id in hex.
std::optional<int64_t> LeaseFromArg(const std::string& arg, Failure* failure) {
  std::string error;
  auto id = ParseGoInt(arg, 16, &error);
  if (!id) *failure = {kExitBadArgs, "bad lease ID arg (" + error + "), expecting ID in Hex"};
  return id;
}

int RunGrant(const GlobalOptions& options, const LeaseFlags& flags) {
  if (flags.args.size() != 1) {
    return ExitWithError(kExitBadArgs, "lease grant command needs TTL argument");
  }
  std::string error;
  auto ttl = ParseGoInt(flags.args[0], 10, &error);
  if (!ttl) return ExitWithError(kExitBadArgs, "bad TTL (" + error + ")");
  Connection connection(options, options.endpoints);
  etcdserverpb::LeaseGrantRequest request;
  request.set_ttl(*ttl);
  etcdserverpb::LeaseGrantResponse response;
  grpc::Status status =
      connection.lease().LeaseGrant(connection.CommandContext().get(), request, &response);
  if (!status.ok()) {
    return ExitWithError(kExitError, "failed to grant lease (" + ErrorText(status) + ")");
  }
  Printer(options.output, options.hex).LeaseGrant(response);
  return kExitSuccess;
}

int RunRevoke(const GlobalOptions& options, const LeaseFlags& flags) {
  if (flags.args.size() != 1) {
    return ExitWithError(kExitBadArgs, "lease revoke command needs 1 argument");
  }
  Failure failure;
  auto id = LeaseFromArg(flags.args[0], &failure);
  if (!id) return ExitWithError(failure.exit_code, failure.message);
  Connection connection(options, options.endpoints);
  etcdserverpb::LeaseRevokeRequest request;
  request.set_id(*id);
  etcdserverpb::LeaseRevokeResponse response;
  grpc::Status status =
      connection.lease().LeaseRevoke(connection.CommandContext().get(), request, &response);
  if (!status.ok()) {
    return ExitWithError(kExitError, "failed to revoke lease (" + ErrorText(status) + ")");
  }
  Printer(options.output, options.hex).LeaseRevoke(*id, response);
  return kExitSuccess;
}

int RunTimeToLive(const GlobalOptions& options, const LeaseFlags& flags) {
  if (flags.args.size() != 1) {
    return ExitWithError(kExitBadArgs, "lease timetolive command needs lease ID as argument");
  }
  Failure failure;
  auto id = LeaseFromArg(flags.args[0], &failure);
  if (!id) return ExitWithError(failure.exit_code, failure.message);
  Connection connection(options, options.endpoints);
  etcdserverpb::LeaseTimeToLiveRequest request;
  request.set_id(*id);
  request.set_keys(flags.keys);
  etcdserverpb::LeaseTimeToLiveResponse response;
  grpc::Status status =
      connection.lease().LeaseTimeToLive(connection.CommandContext().get(), request, &response);
  if (!status.ok()) return ExitWithError(kExitBadConnection, ErrorText(status));
  Printer(options.output, options.hex).LeaseTimeToLive(response, flags.keys);
  return kExitSuccess;
}

int RunList(const GlobalOptions& options, const LeaseFlags& flags) {
  Connection connection(options, options.endpoints);
  etcdserverpb::LeaseLeasesResponse response;
  grpc::Status status = connection.lease().LeaseLeases(
      connection.CommandContext().get(), etcdserverpb::LeaseLeasesRequest(), &response);
  if (!status.ok()) {
    return ExitWithError(kExitBadConnection, "failed to list leases (" + ErrorText(status) + ")");
  }
  Printer(options.output, options.hex).LeaseList(response);
  return kExitSuccess;
}

// Keeps the lease alive until it expires or is revoked; TTL/3 between requests (clientv3).
int RunKeepAlive(const GlobalOptions& options, const LeaseFlags& flags) {
  if (flags.args.size() != 1) {
    return ExitWithError(kExitBadArgs, "lease keep-alive command needs lease ID as argument");
  }
  Failure failure;
  auto id = LeaseFromArg(flags.args[0], &failure);
  if (!id) return ExitWithError(failure.exit_code, failure.message);
  Connection connection(options, options.endpoints);
  Printer printer(options.output, options.hex);
  auto context = flags.once ? connection.CommandContext() : connection.StreamContext();
  auto stream = connection.lease().LeaseKeepAlive(context.get());
  etcdserverpb::LeaseKeepAliveRequest request;
  request.set_id(*id);
  etcdserverpb::LeaseKeepAliveResponse response;
  while (true) {
    if (!stream->Write(request) || !stream->Read(&response)) {
      grpc::Status status = stream->Finish();
      return ExitWithError(kExitBadConnection, ErrorText(status));
    }
    if (response.ttl() <= 0) break;
    printer.LeaseKeepAlive(response);
    std::fflush(stdout);
    if (flags.once) return kExitSuccess;
    std::this_thread::sleep_for(
        std::chrono::milliseconds(std::max<int64_t>(response.ttl() * 1000 / 3, 500)));
  }
  context->TryCancel();
  if (flags.once) {
    return ExitWithError(kExitBadConnection, "etcdserver: requested lease not found");
  }
  if (!printer.json()) std::printf("lease %s expired or revoked.\n", Hex16(*id).c_str());
  return kExitSuccess;
}

}  // namespace

void AddLeaseCommands(CLI::App* app, Invocation* invocation) {
  CLI::App* lease = app->add_subcommand("lease", "Lease related commands");
  lease->require_subcommand(1);
  auto flags = std::make_shared<LeaseFlags>();
  auto add = [&](const char* name, const char* description,
                 int (*run)(const GlobalOptions&, const LeaseFlags&)) {
    CLI::App* command = lease->add_subcommand(name, description);
    command->add_option("args", flags->args);
    command->final_callback([invocation, flags, run] {
      invocation->run = [flags, run](const GlobalOptions& o) { return run(o, *flags); };
    });
    return command;
  };
  add("grant", "Creates leases", RunGrant);
  add("revoke", "Revokes leases", RunRevoke);
  add("timetolive", "Get lease information", RunTimeToLive)
      ->add_flag("--keys", flags->keys, "Get keys attached to this lease");
  add("list", "List all active leases", RunList);
  add("keep-alive", "Keeps leases alive (renew)", RunKeepAlive)
      ->add_flag("--once", flags->once,
                 "Resets the keep-alive time to its original value and exits immediately");
}

}  // namespace cairnctl
