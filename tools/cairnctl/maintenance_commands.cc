// alarm list/disarm, defrag, endpoint hashkv, move-leader (etcdctl's alarm_command.go,
// defrag_command.go, ep_command.go, move_leader_command.go) and `snapshot restore`, which
// turns a snapshot from `snapshot save` into a data directory cairnd starts from.
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "src/node/snapshot.h"
#include "tools/cairnctl/commands.h"
#include "tools/cairnctl/go_format.h"
#include "tools/cairnctl/go_json.h"

namespace cairnctl {
namespace {

void PrintAlarms(const GlobalOptions& options, const etcdserverpb::AlarmResponse& response) {
  if (options.output == OutputFormat::kJson) {
    std::printf("%s\n", ProtoToGoJson(response).c_str());
    return;
  }
  // etcdctl prints each AlarmMember with %+v: the gogoproto text form.
  for (const etcdserverpb::AlarmMember& alarm : response.alarms()) {
    std::printf("memberID:%llu alarm:%s \n", static_cast<unsigned long long>(alarm.memberid()),
                etcdserverpb::AlarmType_Name(alarm.alarm()).c_str());
  }
}

int RunAlarmList(const GlobalOptions& options) {
  Connection connection(options, options.endpoints);
  etcdserverpb::AlarmRequest request;
  request.set_action(etcdserverpb::AlarmRequest::GET);
  etcdserverpb::AlarmResponse response;
  grpc::Status status =
      connection.maintenance().Alarm(connection.CommandContext().get(), request, &response);
  if (!status.ok()) return ExitWithError(kExitError, ErrorText(status));
  PrintAlarms(options, response);
  return kExitSuccess;
}

// clientv3's AlarmDisarm with an empty member: list the alarms, deactivate each.
int RunAlarmDisarm(const GlobalOptions& options) {
  Connection connection(options, options.endpoints);
  etcdserverpb::AlarmRequest list;
  list.set_action(etcdserverpb::AlarmRequest::GET);
  etcdserverpb::AlarmResponse active;
  grpc::Status status =
      connection.maintenance().Alarm(connection.CommandContext().get(), list, &active);
  if (!status.ok()) return ExitWithError(kExitError, ErrorText(status));
  etcdserverpb::AlarmResponse disarmed;
  for (const etcdserverpb::AlarmMember& alarm : active.alarms()) {
    etcdserverpb::AlarmRequest request;
    request.set_action(etcdserverpb::AlarmRequest::DEACTIVATE);
    request.set_memberid(alarm.memberid());
    request.set_alarm(alarm.alarm());
    etcdserverpb::AlarmResponse response;
    status = connection.maintenance().Alarm(connection.CommandContext().get(), request, &response);
    if (!status.ok()) return ExitWithError(kExitError, ErrorText(status));
    *disarmed.mutable_header() = response.header();
    for (const auto& member : response.alarms()) *disarmed.add_alarms() = member;
  }
  PrintAlarms(options, disarmed);
  return kExitSuccess;
}

int RunDefrag(const GlobalOptions& options) {
  bool failed = false;
  for (const std::string& endpoint : options.endpoints) {
    Connection connection(options, {endpoint});
    etcdserverpb::DefragmentResponse response;
    grpc::Status status = connection.maintenance().Defragment(
        connection.CommandContext().get(), etcdserverpb::DefragmentRequest(), &response);
    if (!status.ok()) {
      std::fprintf(stderr, "Failed to defragment etcd member[%s] (%s)\n", endpoint.c_str(),
                   ErrorText(status).c_str());
      failed = true;
      continue;
    }
    std::printf("Finished defragmenting etcd member[%s]\n", endpoint.c_str());
  }
  return failed ? kExitError : kExitSuccess;
}

int RunHashKv(const GlobalOptions& options, int64_t revision) {
  std::string json;
  bool failed = false;
  for (const std::string& endpoint : options.endpoints) {
    Connection connection(options, {endpoint});
    etcdserverpb::HashKVRequest request;
    request.set_revision(revision);
    etcdserverpb::HashKVResponse response;
    grpc::Status status =
        connection.maintenance().HashKV(connection.CommandContext().get(), request, &response);
    if (!status.ok()) {
      std::fprintf(stderr, "Failed to get the hash of endpoint %s (%s)\n", endpoint.c_str(),
                   ErrorText(status).c_str());
      failed = true;
      continue;
    }
    if (options.output == OutputFormat::kJson) {
      JsonObject entry;
      entry.Add("Endpoint", JsonString(endpoint));
      entry.Add("HashKV", ProtoToGoJson(response));
      json += (json.empty() ? "" : ",") + entry.Finish();
    } else {
      std::printf("%s, %u\n", endpoint.c_str(), response.hash());
    }
  }
  if (options.output == OutputFormat::kJson) std::printf("[%s]\n", json.c_str());
  return failed ? kExitError : kExitSuccess;
}

// etcdctl's move-leader: find the leader among the endpoints, ask it to transfer.
int RunMoveLeader(const GlobalOptions& options, const std::vector<std::string>& args) {
  if (args.size() != 1) {
    return ExitWithError(kExitBadArgs, "move-leader command needs 1 argument");
  }
  uint64_t target = 0;
  try {
    size_t used = 0;
    target = std::stoull(args[0], &used, 16);
    if (used != args[0].size()) throw std::invalid_argument(args[0]);
  } catch (const std::exception&) {
    return ExitWithError(kExitBadArgs,
                         "strconv.ParseUint: parsing \"" + args[0] + "\": invalid syntax");
  }
  for (const std::string& endpoint : options.endpoints) {
    Connection connection(options, {endpoint});
    etcdserverpb::StatusResponse status_response;
    grpc::Status status = connection.maintenance().Status(
        connection.CommandContext().get(), etcdserverpb::StatusRequest(), &status_response);
    if (!status.ok()) return ExitWithError(kExitError, ErrorText(status));
    if (status_response.leader() != status_response.header().member_id()) continue;
    etcdserverpb::MoveLeaderRequest request;
    request.set_targetid(target);
    etcdserverpb::MoveLeaderResponse response;
    status =
        connection.maintenance().MoveLeader(connection.CommandContext().get(), request, &response);
    if (!status.ok()) return ExitWithError(kExitError, ErrorText(status));
    std::printf("Leadership transferred from %llx to %llx\n",
                static_cast<unsigned long long>(status_response.leader()),
                static_cast<unsigned long long>(target));
    return kExitSuccess;
  }
  return ExitWithError(
      kExitError, "no leader endpoint given at [" + [&] {
        std::string list;
        for (const auto& endpoint : options.endpoints) list += (list.empty() ? "" : " ") + endpoint;
        return list;
      }() + "]");
}

int RunSnapshotRestore(const std::vector<std::string>& args, const std::string& data_dir) {
  if (args.size() != 1) {
    return ExitWithError(kExitBadArgs, "snapshot restore requires exactly one argument");
  }
  auto restored = cairn::node::RestoreSnapshot(args[0], data_dir);
  if (!restored.ok()) return ExitWithError(kExitError, restored.status().ToString());
  std::printf("Restored snapshot %s into %s (applied index %llu, %llu records, %s)\n",
              args[0].c_str(), data_dir.c_str(),
              static_cast<unsigned long long>(restored->applied_index),
              static_cast<unsigned long long>(restored->records),
              HumanizeBytes(restored->size_bytes).c_str());
  return kExitSuccess;
}

}  // namespace

void AddMaintenanceCommands(CLI::App* app, Invocation* invocation) {
  CLI::App* alarm = app->add_subcommand("alarm", "Alarm related commands");
  alarm->require_subcommand(1);
  alarm->add_subcommand("list", "Lists all alarms")->final_callback([invocation] {
    invocation->run = RunAlarmList;
  });
  alarm->add_subcommand("disarm", "Disarms all alarms")->final_callback([invocation] {
    invocation->run = RunAlarmDisarm;
  });

  app->add_subcommand("defrag", "Defragments the storage of the etcd members with given endpoints")
      ->final_callback([invocation] { invocation->run = RunDefrag; });

  CLI::App* endpoint = app->get_subcommand("endpoint");
  auto hash_revision = std::make_shared<int64_t>(0);
  CLI::App* hashkv = endpoint->add_subcommand(
      "hashkv", "Prints the KV history hash for each endpoint in --endpoints");
  hashkv->add_option("--rev", *hash_revision, "maximum revision to hash (default: all revisions)");
  hashkv->final_callback([invocation, hash_revision] {
    invocation->run = [hash_revision](const GlobalOptions& o) {
      return RunHashKv(o, *hash_revision);
    };
  });

  auto move_args = std::make_shared<std::vector<std::string>>();
  CLI::App* move =
      app->add_subcommand("move-leader", "Transfers leadership to another etcd cluster member.");
  move->add_option("args", *move_args, "<transferee-member-id>");
  move->final_callback([invocation, move_args] {
    invocation->run = [move_args](const GlobalOptions& o) { return RunMoveLeader(o, *move_args); };
  });

  CLI::App* snapshot = app->get_subcommand("snapshot");
  auto restore_args = std::make_shared<std::vector<std::string>>();
  auto data_dir = std::make_shared<std::string>("default.etcd");
  CLI::App* restore = snapshot->add_subcommand(
      "restore", "Restores a snapshot from `snapshot save` into a new data directory");
  restore->add_option("args", *restore_args, "<filename>");
  restore->add_option("--data-dir", *data_dir, "Path to the data directory to create")
      ->capture_default_str();
  restore->final_callback([invocation, restore_args, data_dir] {
    invocation->run = [restore_args, data_dir](const GlobalOptions&) {
      return RunSnapshotRestore(*restore_args, *data_dir);
    };
  });
}

}  // namespace cairnctl
