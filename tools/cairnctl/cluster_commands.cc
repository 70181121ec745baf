// endpoint status/health (and --cluster for every endpoint command), member
// add/remove/update/promote/list and snapshot save, as etcdctl's ep_command.go,
// member_command.go and snapshot_command.go.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
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

// `endpoint --cluster`: the client URLs of every member (MemberList through --endpoints), as
// etcdctl's endpointsFromCluster; they keep their scheme, which etcdctl prints. nullopt after
// printing the error.
std::optional<std::vector<std::string>> EndpointsFromCluster(const GlobalOptions& options) {
  Connection connection(options, options.endpoints);
  etcdserverpb::MemberListRequest request;
  request.set_linearizable(true);
  etcdserverpb::MemberListResponse response;
  grpc::Status status =
      connection.cluster().MemberList(connection.CommandContext().get(), request, &response);
  if (!status.ok()) {
    ExitWithError(kExitError,
                  "failed to fetch endpoints from etcd cluster member list: " + ErrorText(status));
    return std::nullopt;
  }
  std::vector<std::string> endpoints;
  for (const auto& member : response.members()) {
    for (const std::string& url : member.clienturls()) endpoints.push_back(url);
  }
  return endpoints;
}

// Go's strings.TrimSpace (ASCII).
std::string TrimSpace(const std::string& text) {
  size_t begin = 0, end = text.size();
  while (begin < end && std::isspace(static_cast<unsigned char>(text[begin]))) ++begin;
  while (end > begin && std::isspace(static_cast<unsigned char>(text[end - 1]))) --end;
  return text.substr(begin, end - begin);
}

// clientv3's fail-fast check of peer URLs (etcd's types.NewURLs over Go's url.Parse), for the
// forms people mistype: no scheme, another scheme, no port, a path. Returns the error.
std::optional<std::string> CheckPeerUrl(const std::string& url) {
  const std::string text = TrimSpace(url);
  // url.Parse's getScheme: a letter, then letters, digits, '+', '-', '.' up to ':'.
  size_t colon = std::string::npos;
  if (!text.empty() && std::isalpha(static_cast<unsigned char>(text[0]))) {
    for (size_t i = 1; i < text.size(); ++i) {
      const char c = text[i];
      if (c == ':') {
        colon = i;
        break;
      }
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '+' && c != '-' && c != '.') break;
    }
  } else if (!text.empty() && text[0] == ':') {
    return "parse " + GoQuote(text) + ": missing protocol scheme";
  }
  std::string scheme = colon == std::string::npos ? "" : text.substr(0, colon);
  std::transform(scheme.begin(), scheme.end(), scheme.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  const std::string rest = colon == std::string::npos ? text : text.substr(colon + 1);
  if (scheme.empty()) {
    const size_t first_colon = rest.find(':');
    if (first_colon != std::string::npos && first_colon < rest.find('/')) {
      return "parse " + GoQuote(text) + ": first path segment in URL cannot contain colon";
    }
  }
  if (scheme != "http" && scheme != "https" && scheme != "unix" && scheme != "unixs") {
    return "URL scheme must be http, https, unix, or unixs: " + url;
  }
  std::string host, path;
  if (rest.rfind("//", 0) == 0) {
    const size_t slash = rest.find('/', 2);
    host = rest.substr(2, slash == std::string::npos ? std::string::npos : slash - 2);
    path = slash == std::string::npos ? "" : rest.substr(slash);
  }
  // net.SplitHostPort: a port after the last ':' ("[v6]:port" for IPv6).
  const size_t port_colon = host.rfind(':');
  if (port_colon == std::string::npos ||
      (host.find(':') != port_colon && (host.empty() || host[0] != '['))) {
    return "URL address does not have the form \"host:port\": " + url;
  }
  if (!path.empty()) return "URL must not contain a path: " + url;
  return std::nullopt;
}

std::vector<std::string> SplitComma(const std::string& text) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    const size_t comma = text.find(',', start);
    parts.push_back(
        text.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    if (comma == std::string::npos) return parts;
    start = comma + 1;
  }
}

// Peer URLs from --peer-urls, checked as clientv3 checks them before sending. Prints the
// error and returns nullopt when one is bad.
std::optional<std::vector<std::string>> PeerUrls(const std::string& flag) {
  std::vector<std::string> urls = SplitComma(flag);
  for (const std::string& url : urls) {
    if (auto error = CheckPeerUrl(url)) {
      ExitWithError(kExitError, *error);
      return std::nullopt;
    }
  }
  return urls;
}

// The member id argument of remove/update/promote: exactly one, in hex. Prints the error.
std::optional<uint64_t> MemberIdArgument(const std::vector<std::string>& args) {
  if (args.size() != 1) {
    ExitWithError(kExitBadArgs, "member ID is not provided");
    return std::nullopt;
  }
  std::string error;
  std::optional<uint64_t> id = ParseGoUint(args[0], 16, &error);
  if (!id) ExitWithError(kExitBadArgs, "bad member ID arg (" + error + "), expecting ID in Hex");
  return id;
}

void PrintMemberChange(const GlobalOptions& options, const std::string& verb, uint64_t id,
                       const etcdserverpb::ResponseHeader& header,
                       const google::protobuf::Message& response) {
  if (options.output == OutputFormat::kJson) {
    std::printf("%s\n", ProtoToGoJson(response).c_str());
    return;
  }
  std::printf("Member %s %s cluster %s\n", HexSpacePadded16(id).c_str(), verb.c_str(),
              HexSpacePadded16(header.cluster_id()).c_str());
}

// The lines etcdctl prints after `member add` (simple output) for starting the new member:
// the member list as seen by the member that answered the add (re-read after a quorum Get if
// the list came from another member).
int PrintNewMemberEnvironment(Connection* connection, const std::string& name,
                              const std::string& peer_urls_flag,
                              const etcdserverpb::MemberAddResponse& added) {
  uint64_t answered_by = added.header().member_id();
  etcdserverpb::MemberListResponse list;
  // Bounded: etcdctl loops until the two answers come from one member.
  for (int attempt = 0; attempt < 10; ++attempt) {
    list.Clear();
    grpc::Status status = connection->cluster().MemberList(
        connection->CommandContext().get(), etcdserverpb::MemberListRequest(), &list);
    if (!status.ok()) return ExitWithError(kExitError, ErrorText(status));
    if (list.header().member_id() == answered_by) break;
    etcdserverpb::RangeRequest get;
    get.set_key("_");
    etcdserverpb::RangeResponse got;
    status = connection->kv().Range(connection->CommandContext().get(), get, &got);
    if (!status.ok()) return ExitWithError(kExitError, ErrorText(status));
    answered_by = got.header().member_id();
  }
  std::string initial_cluster;
  for (const auto& member : list.members()) {
    for (const std::string& url : member.peerurls()) {
      const std::string& member_name = member.id() == added.member().id() ? name : member.name();
      initial_cluster += (initial_cluster.empty() ? "" : ",") + member_name + "=" + url;
    }
  }
  std::printf("\nETCD_NAME=%s\n", GoQuote(name).c_str());
  std::printf("ETCD_INITIAL_CLUSTER=%s\n", GoQuote(initial_cluster).c_str());
  std::printf("ETCD_INITIAL_ADVERTISE_PEER_URLS=%s\n", GoQuote(peer_urls_flag).c_str());
  std::printf("ETCD_INITIAL_CLUSTER_STATE=\"existing\"\n");
  return kExitSuccess;
}

int RunMemberAdd(const GlobalOptions& options, const std::vector<std::string>& args,
                 const std::string& peer_urls_flag, bool learner) {
  if (args.empty()) return ExitWithError(kExitBadArgs, "member name not provided");
  if (args.size() > 1) {
    std::string message = "too many arguments";
    for (const std::string& arg : args) {
      std::string lower = arg;
      std::transform(lower.begin(), lower.end(), lower.begin(),
                     [](unsigned char c) { return std::tolower(c); });
      if (lower.rfind("http", 0) == 0) message += ", did you mean --peer-urls=" + arg;
    }
    return ExitWithError(kExitBadArgs, message);
  }
  if (peer_urls_flag.empty()) return ExitWithError(kExitBadArgs, "member peer urls not provided");
  Connection connection(options, options.endpoints);
  std::optional<std::vector<std::string>> urls = PeerUrls(peer_urls_flag);
  if (!urls) return kExitError;
  etcdserverpb::MemberAddRequest request;
  for (const std::string& url : *urls) request.add_peerurls(url);
  request.set_islearner(learner);
  etcdserverpb::MemberAddResponse response;
  grpc::Status status =
      connection.cluster().MemberAdd(connection.CommandContext().get(), request, &response);
  if (!status.ok()) return ExitWithError(kExitError, ErrorText(status));
  PrintMemberChange(options, "added to", response.member().id(), response.header(), response);
  if (options.output == OutputFormat::kJson) return kExitSuccess;
  return PrintNewMemberEnvironment(&connection, args[0], peer_urls_flag, response);
}

int RunMemberRemove(const GlobalOptions& options, const std::vector<std::string>& args) {
  std::optional<uint64_t> id = MemberIdArgument(args);
  if (!id) return kExitBadArgs;
  Connection connection(options, options.endpoints);
  etcdserverpb::MemberRemoveRequest request;
  request.set_id(*id);
  etcdserverpb::MemberRemoveResponse response;
  grpc::Status status =
      connection.cluster().MemberRemove(connection.CommandContext().get(), request, &response);
  if (!status.ok()) return ExitWithError(kExitError, ErrorText(status));
  PrintMemberChange(options, "removed from", *id, response.header(), response);
  return kExitSuccess;
}

int RunMemberUpdate(const GlobalOptions& options, const std::vector<std::string>& args,
                    const std::string& peer_urls_flag) {
  std::optional<uint64_t> id = MemberIdArgument(args);
  if (!id) return kExitBadArgs;
  if (peer_urls_flag.empty()) return ExitWithError(kExitBadArgs, "member peer urls not provided");
  Connection connection(options, options.endpoints);
  std::optional<std::vector<std::string>> urls = PeerUrls(peer_urls_flag);
  if (!urls) return kExitError;
  etcdserverpb::MemberUpdateRequest request;
  request.set_id(*id);
  for (const std::string& url : *urls) request.add_peerurls(url);
  etcdserverpb::MemberUpdateResponse response;
  grpc::Status status =
      connection.cluster().MemberUpdate(connection.CommandContext().get(), request, &response);
  if (!status.ok()) return ExitWithError(kExitError, ErrorText(status));
  PrintMemberChange(options, "updated in", *id, response.header(), response);
  return kExitSuccess;
}

int RunMemberPromote(const GlobalOptions& options, const std::vector<std::string>& args) {
  std::optional<uint64_t> id = MemberIdArgument(args);
  if (!id) return kExitBadArgs;
  Connection connection(options, options.endpoints);
  etcdserverpb::MemberPromoteRequest request;
  request.set_id(*id);
  etcdserverpb::MemberPromoteResponse response;
  grpc::Status status =
      connection.cluster().MemberPromote(connection.CommandContext().get(), request, &response);
  if (!status.ok()) return ExitWithError(kExitError, ErrorText(status));
  PrintMemberChange(options, "promoted in", *id, response.header(), response);
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
  // --cluster belongs to `endpoint` and so to all its subcommands (etcdctl's persistent flag),
  // hashkv included (added by AddMaintenanceCommands).
  endpoint->fallthrough();
  auto use_cluster = std::make_shared<bool>(false);
  endpoint->add_flag("--cluster", *use_cluster, "use all endpoints from the cluster member list");
  endpoint
      ->add_subcommand("status",
                       "Prints out the status of endpoints specified in `--endpoints` flag")
      ->final_callback([invocation] { invocation->run = RunEndpointStatus; });
  endpoint
      ->add_subcommand("health",
                       "Checks the healthiness of endpoints specified in `--endpoints` flag")
      ->final_callback([invocation] { invocation->run = RunEndpointHealth; });
  // Runs after the chosen subcommand's callback: with --cluster, the subcommand runs on the
  // member list's client URLs instead of --endpoints.
  endpoint->final_callback([invocation, use_cluster] {
    if (!*use_cluster || !invocation->run) return;
    invocation->run = [run = invocation->run](const GlobalOptions& options) {
      std::optional<std::vector<std::string>> endpoints = EndpointsFromCluster(options);
      if (!endpoints) return kExitError;
      GlobalOptions cluster_options = options;
      cluster_options.endpoints = *endpoints;
      return run(cluster_options);
    };
  });

  CLI::App* member = app->add_subcommand("member", "Membership related commands");
  member->require_subcommand(1);
  member->add_subcommand("list", "Lists all members in the cluster")->final_callback([invocation] {
    invocation->run = RunMemberList;
  });
  auto member_args = std::make_shared<std::vector<std::string>>();
  auto peer_urls = std::make_shared<std::string>();
  auto learner = std::make_shared<bool>(false);
  CLI::App* add = member->add_subcommand("add", "Adds a member into the cluster");
  add->add_option("args", *member_args, "<memberName>");
  add->add_option("--peer-urls", *peer_urls, "comma separated peer URLs for the new member.");
  add->add_flag("--learner", *learner, "indicates if the new member is raft learner");
  add->final_callback([invocation, member_args, peer_urls, learner] {
    invocation->run = [member_args, peer_urls, learner](const GlobalOptions& o) {
      return RunMemberAdd(o, *member_args, *peer_urls, *learner);
    };
  });
  CLI::App* remove = member->add_subcommand("remove", "Removes a member from the cluster");
  remove->add_option("args", *member_args, "<memberID>");
  remove->final_callback([invocation, member_args] {
    invocation->run = [member_args](const GlobalOptions& o) {
      return RunMemberRemove(o, *member_args);
    };
  });
  CLI::App* update = member->add_subcommand("update", "Updates a member in the cluster");
  update->add_option("args", *member_args, "<memberID>");
  update->add_option("--peer-urls", *peer_urls,
                     "comma separated peer URLs for the updated member.");
  update->final_callback([invocation, member_args, peer_urls] {
    invocation->run = [member_args, peer_urls](const GlobalOptions& o) {
      return RunMemberUpdate(o, *member_args, *peer_urls);
    };
  });
  CLI::App* promote =
      member->add_subcommand("promote", "Promotes a non-voting member in the cluster");
  promote->add_option("args", *member_args, "<memberID>");
  promote->final_callback([invocation, member_args] {
    invocation->run = [member_args](const GlobalOptions& o) {
      return RunMemberPromote(o, *member_args);
    };
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
