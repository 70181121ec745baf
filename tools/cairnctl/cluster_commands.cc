// endpoint status, endpoint health, member list and snapshot save, as etcdctl's
// ep_command.go, member_command.go and snapshot_command.go.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tools/cairnctl/commands.h"
#include "tools/cairnctl/go_format.h"
#include "tools/cairnctl/go_json.h"
#include "tools/cairnctl/printer.h"

namespace cairnctl {
namespace {

int RunEndpointStatus(const GlobalOptions& options) {
  std::vector<EndpointStatus> statuses;
  bool failed = false;
  for (const std::string& endpoint : options.endpoints) {
    Connection connection(options, {endpoint});
    EndpointStatus entry{endpoint, {}};
    grpc::Status status = connection.maintenance().Status(
        connection.CommandContext().get(), etcdserverpb::StatusRequest(), &entry.status);
    if (!status.ok()) {
      std::fprintf(stderr, "Failed to get the status of endpoint %s (%s)\n", endpoint.c_str(),
                   ErrorText(status).c_str());
      failed = true;
      continue;
    }
    statuses.push_back(std::move(entry));
  }
  Printer(options.output, options.hex).EndpointStatuses(statuses);
  return failed ? kExitError : kExitSuccess;
}

// etcdctl 3.4's health check: a linearizable Get of "health" answers (permission denied
// counts as healthy). etcdctl 3.5 also reports active alarms as unhealthy; 3.4 does not.
EndpointHealth CheckHealth(const GlobalOptions& options, const std::string& endpoint) {
  Connection connection(options, {endpoint});
  auto start = std::chrono::steady_clock::now();
  etcdserverpb::RangeRequest request;
  request.set_key("health");
  etcdserverpb::RangeResponse response;
  auto context = connection.CommandContext();
  grpc::Status status = connection.kv().Range(context.get(), request, &response);
  EndpointHealth health;
  health.endpoint = endpoint;
  health.took = GoDurationString(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start)
          .count());
  if (!status.ok() && ErrorText(status) != "etcdserver: permission denied") {
    health.error = ErrorText(status);
    return health;
  }
  health.healthy = true;
  return health;
}

int RunEndpointHealth(const GlobalOptions& options) {
  std::vector<EndpointHealth> healths;
  bool unhealthy = false;
  for (const std::string& endpoint : options.endpoints) {
    healths.push_back(CheckHealth(options, endpoint));
    unhealthy |= !healths.back().healthy;
  }
  Printer(options.output, options.hex).EndpointHealths(healths);
  if (unhealthy) return ExitWithError(kExitError, "unhealthy cluster");
  return kExitSuccess;
}

int RunMemberList(const GlobalOptions& options) {
  Connection connection(options, options.endpoints);
  etcdserverpb::MemberListRequest request;
  request.set_linearizable(true);
  etcdserverpb::MemberListResponse response;
  grpc::Status status =
      connection.cluster().MemberList(connection.CommandContext().get(), request, &response);
  if (!status.ok()) return ExitWithError(kExitError, ErrorText(status));
  Printer(options.output, options.hex).MemberList(response);
  return kExitSuccess;
}

// A log line on stderr in the shape of etcdctl's zap logger (without timestamps).
void LogInfo(const std::string& message, const std::string& fields) {
  std::fprintf(stderr, "{\"level\":\"info\",\"msg\":%s%s}\n", JsonString(message).c_str(),
               fields.c_str());
}

// Streams the snapshot into <path>.part, fsyncs, closes and renames it to <path>, as
// etcdctl's snapshot.Save. Returns the byte count, or an error message.
std::optional<std::string> SaveSnapshot(Connection* connection, const std::string& endpoint,
                                        const std::string& path, uint64_t* size_bytes) {
  std::string part_path = path + ".part";
  int fd = ::open(part_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd < 0) return "could not open " + part_path + " (" + std::strerror(errno) + ")";
  LogInfo("created temporary db file", ",\"path\":" + JsonString(part_path));
  auto fail = [&](const std::string& message) {
    ::close(fd);
    ::unlink(part_path.c_str());
    return std::optional<std::string>(message);
  };
  auto context = connection->StreamContext();
  auto stream = connection->maintenance().Snapshot(context.get(), etcdserverpb::SnapshotRequest());
  LogInfo("fetching snapshot", ",\"endpoint\":" + JsonString(endpoint));
  etcdserverpb::SnapshotResponse chunk;
  *size_bytes = 0;
  while (stream->Read(&chunk)) {
    const std::string& blob = chunk.blob();
    size_t written = 0;
    while (written < blob.size()) {
      ssize_t n = ::write(fd, blob.data() + written, blob.size() - written);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return fail(std::string("write ") + part_path + ": " + std::strerror(errno));
      written += static_cast<size_t>(n);
    }
    *size_bytes += blob.size();
  }
  grpc::Status status = stream->Finish();
  if (!status.ok()) return fail(ErrorText(status));
  if (::fsync(fd) != 0) return fail(std::string("fsync: ") + std::strerror(errno));
  if (::close(fd) != 0) {
    ::unlink(part_path.c_str());
    return std::string("close: ") + std::strerror(errno);
  }
  LogInfo("fetched snapshot", ",\"endpoint\":" + JsonString(endpoint) +
                                  ",\"size\":" + JsonString(HumanizeBytes(*size_bytes)));
  if (::rename(part_path.c_str(), path.c_str()) != 0) {
    ::unlink(part_path.c_str());
    return std::string("rename: ") + std::strerror(errno);
  }
  LogInfo("saved", ",\"path\":" + JsonString(path));
  return std::nullopt;
}

int RunSnapshotSave(const GlobalOptions& options, const std::vector<std::string>& args) {
  if (args.size() != 1) return ExitWithError(kExitBadArgs, "snapshot save expects one argument");
  if (options.endpoints.size() != 1) {
    std::string list;
    for (const auto& endpoint : options.endpoints) list += (list.empty() ? "" : " ") + endpoint;
    return ExitWithError(
        kExitInterrupted,
        "snapshot must be requested to one selected node, not multiple [" + list + "]");
  }
  Connection connection(options, options.endpoints);
  uint64_t size_bytes = 0;
  if (auto error = SaveSnapshot(&connection, options.endpoints[0], args[0], &size_bytes)) {
    return ExitWithError(kExitInterrupted, *error);
  }
  std::printf("Snapshot saved at %s\n", args[0].c_str());
  return kExitSuccess;
}

}  // namespace

void AddClusterCommands(CLI::App* app, Invocation* invocation) {
  CLI::App* endpoint = app->add_subcommand("endpoint", "Endpoint related commands");
  endpoint->require_subcommand(1);
  endpoint
      ->add_subcommand("status",
                       "Prints out the status of endpoints specified in `--endpoints` flag")
      ->final_callback([invocation] { invocation->run = RunEndpointStatus; });
  endpoint
      ->add_subcommand("health",
                       "Checks the healthiness of endpoints specified in `--endpoints` flag")
      ->final_callback([invocation] { invocation->run = RunEndpointHealth; });

  CLI::App* member = app->add_subcommand("member", "Membership related commands");
  member->require_subcommand(1);
  member->add_subcommand("list", "Lists all members in the cluster")->final_callback([invocation] {
    invocation->run = RunMemberList;
  });

  auto snapshot_args = std::make_shared<std::vector<std::string>>();
  CLI::App* snapshot = app->add_subcommand("snapshot", "Manages etcd node snapshots");
  snapshot->require_subcommand(1);
  CLI::App* save =
      snapshot->add_subcommand("save", "Stores an etcd node backend snapshot to a given file");
  save->add_option("args", *snapshot_args, "<filename>");
  save->final_callback([invocation, snapshot_args] {
    invocation->run = [snapshot_args](const GlobalOptions& o) {
      return RunSnapshotSave(o, *snapshot_args);
    };
  });
}

}  // namespace cairnctl
