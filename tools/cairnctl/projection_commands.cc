// projection ... and upcaster ...: a client for Cairn's user projections and upcasters, the
// cairn.events.v1.Projections gRPC service (proto/cairn/projections.proto). Cairn's own
// commands; docs/events-cli.md describes them and their output. -w json prints protobuf JSON.
#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>

#include <charconv>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cairn/projections.grpc.pb.h"
#include "tools/cairnctl/commands.h"

namespace cairnctl {
namespace {

namespace ev = cairn::events::v1;

// The Projections stub on a channel of its own (Connection carries the etcd API stubs only),
// with the deadlines of the rest of cairnctl.
class ProjectionsClient {
 public:
  explicit ProjectionsClient(const GlobalOptions& options) : options_(options) {
    grpc::ChannelArguments arguments;
    arguments.SetMaxReceiveMessageSize(-1);
    channel_ = grpc::CreateCustomChannel(options.endpoints.at(0),
                                         grpc::InsecureChannelCredentials(), arguments);
    stub_ = ev::Projections::NewStub(channel_);
  }
  ev::Projections::Stub& stub() { return *stub_; }
  std::unique_ptr<grpc::ClientContext> Context() const {
    auto context = std::make_unique<grpc::ClientContext>();
    context->set_deadline(std::chrono::system_clock::now() + options_.command_timeout);
    context->set_wait_for_ready(true);
    return context;
  }

 private:
  GlobalOptions options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<ev::Projections::Stub> stub_;
};

int RpcFailure(const grpc::Status& status) {
  const grpc::StatusCode code = status.error_code();
  if (code == grpc::StatusCode::DEADLINE_EXCEEDED || code == grpc::StatusCode::CANCELLED ||
      status.error_message().empty()) {
    return ExitWithError(kExitError, ErrorText(status));
  }
  return ExitWithError(kExitError, status.error_message());
}

void PrintJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions print_options;
  print_options.always_print_primitive_fields = true;
  std::string text;
  auto status = google::protobuf::util::MessageToJsonString(message, &text, print_options);
  if (!status.ok()) text = "{\"error\":\"cannot print as JSON\"}";
  std::printf("%s\n", text.c_str());
}

std::string PositionText(const ev::Position& position) {
  return std::to_string(position.revision()) + "/" + std::to_string(position.index());
}

const char* StatusText(ev::ProjectionStatus status) {
  switch (status) {
    case ev::RUNNING:
      return "running";
    case ev::STOPPED:
      return "stopped";
    case ev::FAULTED:
      return "faulted";
    default:
      return "unknown";
  }
}

struct Flags {
  std::vector<std::string> args;
  std::string source;
  std::string file;
  bool stopped = false;
};

// The Lua source from --source or --file (- = stdin).
std::optional<std::string> Source(const Flags& flags, std::string* error) {
  if (!flags.source.empty() && !flags.file.empty()) {
    *error = "give --source or --file, not both";
    return std::nullopt;
  }
  if (!flags.source.empty()) return flags.source;
  if (flags.file.empty()) {
    *error = "the Lua source is required (--source or --file)";
    return std::nullopt;
  }
  if (flags.file == "-") {
    return std::string(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  }
  std::ifstream file(flags.file, std::ios::binary);
  if (!file) {
    *error = "cannot read " + flags.file;
    return std::nullopt;
  }
  return std::string(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>());
}

std::optional<uint32_t> ParseVersion(const std::string& text) {
  uint32_t value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || error != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

// Prints OK (or the response as JSON) after a change.
int Changed(const GlobalOptions& options, const grpc::Status& status,
            const ev::ProjectionsChangeResponse& response) {
  if (!status.ok()) return RpcFailure(status);
  if (options.output == OutputFormat::kJson) {
    PrintJson(response);
  } else {
    std::printf("OK\n");
  }
  return kExitSuccess;
}

int RunCreateOrUpdate(const GlobalOptions& options, const Flags& flags, bool create) {
  const char* what = create ? "projection create" : "projection update";
  if (flags.args.size() != 1)
    return ExitWithError(kExitBadArgs, std::string(what) + " needs <name>");
  std::string error;
  std::optional<std::string> source = Source(flags, &error);
  if (!source) return ExitWithError(kExitBadArgs, error);
  ProjectionsClient client(options);
  ev::ProjectionsChangeResponse response;
  grpc::Status status;
  if (create) {
    ev::CreateProjectionRequest request;
    request.set_name(flags.args[0]);
    request.set_source(*source);
    request.set_stopped(flags.stopped);
    status = client.stub().Create(client.Context().get(), request, &response);
  } else {
    ev::UpdateProjectionRequest request;
    request.set_name(flags.args[0]);
    request.set_source(*source);
    status = client.stub().Update(client.Context().get(), request, &response);
  }
  return Changed(options, status, response);
}

int RunCreate(const GlobalOptions& options, const Flags& flags) {
  return RunCreateOrUpdate(options, flags, /*create=*/true);
}
int RunUpdate(const GlobalOptions& options, const Flags& flags) {
  return RunCreateOrUpdate(options, flags, /*create=*/false);
}

// delete, stop, start, reset: one name.
template <typename Request>
int RunNamed(const GlobalOptions& options, const Flags& flags, const char* what,
             grpc::Status (ev::Projections::Stub::*method)(grpc::ClientContext*, const Request&,
                                                           ev::ProjectionsChangeResponse*)) {
  if (flags.args.size() != 1) {
    return ExitWithError(kExitBadArgs, std::string("projection ") + what + " needs <name>");
  }
  Request request;
  request.set_name(flags.args[0]);
  ProjectionsClient client(options);
  ev::ProjectionsChangeResponse response;
  grpc::Status status = (client.stub().*method)(client.Context().get(), request, &response);
  return Changed(options, status, response);
}

int RunDelete(const GlobalOptions& o, const Flags& f) {
  return RunNamed<ev::DeleteProjectionRequest>(o, f, "delete", &ev::Projections::Stub::Delete);
}
int RunStop(const GlobalOptions& o, const Flags& f) {
  return RunNamed<ev::StopProjectionRequest>(o, f, "stop", &ev::Projections::Stub::Stop);
}
int RunStart(const GlobalOptions& o, const Flags& f) {
  return RunNamed<ev::StartProjectionRequest>(o, f, "start", &ev::Projections::Stub::Start);
}
int RunReset(const GlobalOptions& o, const Flags& f) {
  return RunNamed<ev::ResetProjectionRequest>(o, f, "reset", &ev::Projections::Stub::Reset);
}

// "<name> <status> checkpoint <r>/<i> (head <r>/<i>) seen N folded N partitions N"
void PrintInfoLine(const ev::ProjectionInfo& info) {
  std::printf("%s %s checkpoint %s (head %s) seen %llu folded %llu partitions %llu\n",
              info.name().c_str(), StatusText(info.status()),
              info.has_checkpoint() ? PositionText(info.checkpoint()).c_str() : "none",
              info.has_head() ? PositionText(info.head()).c_str() : "none",
              static_cast<unsigned long long>(info.events_seen()),
              static_cast<unsigned long long>(info.events_folded()),
              static_cast<unsigned long long>(info.partitions()));
}

int RunGet(const GlobalOptions& options, const Flags& flags) {
  if (flags.args.size() != 1) return ExitWithError(kExitBadArgs, "projection get needs <name>");
  ev::GetProjectionRequest request;
  request.set_name(flags.args[0]);
  ProjectionsClient client(options);
  ev::GetProjectionResponse response;
  grpc::Status status = client.stub().Get(client.Context().get(), request, &response);
  if (!status.ok()) return RpcFailure(status);
  if (options.output == OutputFormat::kJson) {
    PrintJson(response);
    return kExitSuccess;
  }
  PrintInfoLine(response.projection());
  if (response.projection().status() == ev::FAULTED) {
    const ev::ProjectionFault& fault = response.projection().fault();
    if (fault.stream().empty()) {
      std::printf("fault: %s\n", fault.error().c_str());
    } else {
      std::printf("fault at %s@%llu (%s, position %s): %s\n", fault.stream().c_str(),
                  static_cast<unsigned long long>(fault.version()), fault.event_type().c_str(),
                  PositionText(fault.position()).c_str(), fault.error().c_str());
    }
  }
  return kExitSuccess;
}

int RunList(const GlobalOptions& options, const Flags&) {
  ProjectionsClient client(options);
  ev::ListProjectionsResponse response;
  grpc::Status status =
      client.stub().List(client.Context().get(), ev::ListProjectionsRequest(), &response);
  if (!status.ok()) return RpcFailure(status);
  if (options.output == OutputFormat::kJson) {
    PrintJson(response);
    return kExitSuccess;
  }
  for (const auto& info : response.projections()) PrintInfoLine(info);
  return kExitSuccess;
}

int RunState(const GlobalOptions& options, const Flags& flags) {
  if (flags.args.empty() || flags.args.size() > 2) {
    return ExitWithError(kExitBadArgs, "projection state needs <name> [<partition>]");
  }
  ev::GetProjectionStateRequest request;
  request.set_name(flags.args[0]);
  if (flags.args.size() == 2) request.set_partition(flags.args[1]);
  ProjectionsClient client(options);
  ev::GetProjectionStateResponse response;
  grpc::Status status = client.stub().GetState(client.Context().get(), request, &response);
  if (!status.ok()) return RpcFailure(status);
  if (options.output == OutputFormat::kJson) {
    PrintJson(response);
  } else if (response.found()) {
    std::printf("%s\n", response.state().c_str());
  } else {
    std::printf("no state\n");
  }
  return kExitSuccess;
}

int RunUpcasterSet(const GlobalOptions& options, const Flags& flags) {
  std::optional<uint32_t> version =
      flags.args.size() == 2 ? ParseVersion(flags.args[1]) : std::nullopt;
  if (!version) {
    return ExitWithError(kExitBadArgs, "upcaster set needs <event-type> <from-schema-version>");
  }
  std::string error;
  std::optional<std::string> source = Source(flags, &error);
  if (!source) return ExitWithError(kExitBadArgs, error);
  ev::SetUpcasterRequest request;
  request.set_event_type(flags.args[0]);
  request.set_from_schema_version(*version);
  request.set_source(*source);
  ProjectionsClient client(options);
  ev::ProjectionsChangeResponse response;
  return Changed(options, client.stub().SetUpcaster(client.Context().get(), request, &response),
                 response);
}

int RunUpcasterDelete(const GlobalOptions& options, const Flags& flags) {
  std::optional<uint32_t> version =
      flags.args.size() == 2 ? ParseVersion(flags.args[1]) : std::nullopt;
  if (!version) {
    return ExitWithError(kExitBadArgs, "upcaster delete needs <event-type> <from-schema-version>");
  }
  ev::DeleteUpcasterRequest request;
  request.set_event_type(flags.args[0]);
  request.set_from_schema_version(*version);
  ProjectionsClient client(options);
  ev::ProjectionsChangeResponse response;
  return Changed(options, client.stub().DeleteUpcaster(client.Context().get(), request, &response),
                 response);
}

int RunUpcasterList(const GlobalOptions& options, const Flags&) {
  ProjectionsClient client(options);
  ev::ListUpcastersResponse response;
  grpc::Status status =
      client.stub().ListUpcasters(client.Context().get(), ev::ListUpcastersRequest(), &response);
  if (!status.ok()) return RpcFailure(status);
  if (options.output == OutputFormat::kJson) {
    PrintJson(response);
    return kExitSuccess;
  }
  for (const auto& upcaster : response.upcasters()) {
    std::printf("%s v%u -> v%u (%zu bytes of Lua)\n", upcaster.event_type().c_str(),
                upcaster.from_schema_version(), upcaster.from_schema_version() + 1,
                upcaster.source().size());
  }
  return kExitSuccess;
}

CLI::App* AddCommand(CLI::App* parent, Invocation* invocation, const char* name,
                     const char* description, const char* args,
                     int (*run)(const GlobalOptions&, const Flags&), bool with_source = false,
                     bool with_stopped = false) {
  auto flags = std::make_shared<Flags>();
  CLI::App* command = parent->add_subcommand(name, description);
  command->add_option("args", flags->args, args);
  if (with_source) {
    command->add_option("--source", flags->source, "the Lua source");
    command->add_option("--file", flags->file, "a file holding the Lua source (-: stdin)");
  }
  if (with_stopped) command->add_flag("--stopped", flags->stopped, "create it stopped");
  command->final_callback([invocation, flags, run] {
    invocation->run = [flags, run](const GlobalOptions& o) { return run(o, *flags); };
  });
  return command;
}

}  // namespace

void AddProjectionCommands(CLI::App* app, Invocation* invocation) {
  CLI::App* projection = app->add_subcommand("projection", "User projections in Lua (Cairn only)");
  projection->require_subcommand(1);
  AddCommand(projection, invocation, "create", "Creates a projection", "<name>", RunCreate,
             /*with_source=*/true, /*with_stopped=*/true);
  AddCommand(projection, invocation, "update",
             "Replaces a projection's source (it folds again from the first event)", "<name>",
             RunUpdate, /*with_source=*/true);
  AddCommand(projection, invocation, "delete", "Deletes a projection and its states", "<name>",
             RunDelete);
  AddCommand(projection, invocation, "stop", "Pauses a projection at its checkpoint", "<name>",
             RunStop);
  AddCommand(projection, invocation, "start", "Resumes a stopped projection", "<name>", RunStart);
  AddCommand(projection, invocation, "reset",
             "Discards the states and the fault; folds again from the first event", "<name>",
             RunReset);
  AddCommand(projection, invocation, "get", "Status, progress and fault of a projection", "<name>",
             RunGet);
  AddCommand(projection, invocation, "list", "Every projection, one line each", "", RunList);
  AddCommand(projection, invocation, "state", "The state of one partition as JSON",
             "<name> [<partition>]", RunState);

  CLI::App* upcaster =
      app->add_subcommand("upcaster", "Lua upcasters applied on read (Cairn only)");
  upcaster->require_subcommand(1);
  AddCommand(upcaster, invocation, "set", "Sets the upcaster of an event type and schema version",
             "<event-type> <from-schema-version>", RunUpcasterSet, /*with_source=*/true);
  AddCommand(upcaster, invocation, "delete", "Deletes an upcaster",
             "<event-type> <from-schema-version>", RunUpcasterDelete);
  AddCommand(upcaster, invocation, "list", "Every upcaster, one line each", "", RunUpcasterList);
}

}  // namespace cairnctl
