// events group ...: persistent subscriptions (consumer groups) of Cairn's event store, the
// cairn.events.v1.PersistentSubscriptions service (proto/cairn/persistent.proto);
// docs/events-cli.md describes the commands and their output.
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tools/cairnctl/commands.h"
#include "tools/cairnctl/events_client.h"

namespace cairnctl {
namespace {

struct GroupFlags {
  std::vector<std::string> args;
  // Settings; empty strings are "not given".
  bool from_end = false;
  std::string after_version;
  std::string after_position;
  std::string strategy;
  std::string max_retry;
  std::string message_timeout_ms;
  std::string max_subscribers;
  std::vector<std::string> stream_prefixes;
  std::vector<std::string> type_prefixes;
  bool include_system = false;
  // read
  uint32_t buffer_size = 0;
  uint64_t max_events = 0;
  std::string nack;  // with read: nack every event with this action instead of acking
  // replay-parked
  uint32_t max_count = 0;
};

std::optional<Failure> SourceAndGroup(const GroupFlags& flags, size_t wanted) {
  if (flags.args.size() != wanted) {
    return Failure{kExitBadArgs, wanted == 2 ? "expected <source> <group>" : "too many arguments"};
  }
  return std::nullopt;
}

std::optional<Failure> ParseSmall(const std::string& text, const char* flag, uint32_t* out) {
  auto value = ParseUint64(text);
  if (!value || *value > UINT32_MAX) {
    return Failure{kExitBadArgs, std::string("invalid ") + flag + " \"" + text + "\""};
  }
  *out = static_cast<uint32_t>(*value);
  return std::nullopt;
}

const char* StrategyName(ev::ConsumerStrategy strategy) {
  switch (strategy) {
    case ev::DISPATCH_TO_SINGLE:
      return "dispatch-to-single";
    case ev::PINNED:
      return "pinned";
    default:
      return "round-robin";
  }
}

// Applies the given flags to `settings` (the others stay as they are).
std::optional<Failure> ApplySettings(const GroupFlags& flags, bool creating,
                                     ev::PersistentSubscriptionSettings* settings) {
  if (creating) {
    if (flags.from_end) settings->set_from_end(true);
    if (!flags.after_version.empty()) {
      auto version = ParseUint64(flags.after_version);
      if (!version) return Failure{kExitBadArgs, "invalid --after-version"};
      settings->set_after_version(*version);
    }
    if (!flags.after_position.empty()) {
      if (auto failure = ParsePosition(flags.after_position, "--after-position",
                                       settings->mutable_after_position())) {
        return failure;
      }
    }
  }
  if (!flags.strategy.empty()) {
    if (flags.strategy == "round-robin") {
      settings->set_strategy(ev::ROUND_ROBIN);
    } else if (flags.strategy == "dispatch-to-single") {
      settings->set_strategy(ev::DISPATCH_TO_SINGLE);
    } else if (flags.strategy == "pinned") {
      settings->set_strategy(ev::PINNED);
    } else {
      return Failure{kExitBadArgs, "invalid --strategy \"" + flags.strategy +
                                       "\" (round-robin, dispatch-to-single or pinned)"};
    }
  }
  uint32_t value = 0;
  if (!flags.max_retry.empty()) {
    if (auto failure = ParseSmall(flags.max_retry, "--max-retry", &value)) return failure;
    settings->set_max_retry_count(value);
  }
  if (!flags.message_timeout_ms.empty()) {
    if (auto failure = ParseSmall(flags.message_timeout_ms, "--message-timeout-ms", &value)) {
      return failure;
    }
    settings->set_message_timeout_ms(value);
  }
  if (!flags.max_subscribers.empty()) {
    if (auto failure = ParseSmall(flags.max_subscribers, "--max-subscribers", &value)) {
      return failure;
    }
    settings->set_max_subscriber_count(value);
  }
  if (!flags.stream_prefixes.empty() || !flags.type_prefixes.empty()) {
    settings->clear_filter();
    for (const auto& p : flags.stream_prefixes) settings->mutable_filter()->add_stream_prefixes(p);
    for (const auto& p : flags.type_prefixes) settings->mutable_filter()->add_type_prefixes(p);
  }
  if (flags.include_system) settings->set_include_system(true);
  return std::nullopt;
}

int Fail(const Failure& failure) { return ExitWithError(failure.exit_code, failure.message); }

int RunCreate(const GlobalOptions& options, const GroupFlags& flags) {
  if (auto failure = SourceAndGroup(flags, 2)) return Fail(*failure);
  ev::CreatePersistentSubscriptionRequest request;
  request.set_source(flags.args[0]);
  request.set_group(flags.args[1]);
  if (auto failure = ApplySettings(flags, /*creating=*/true, request.mutable_settings())) {
    return Fail(*failure);
  }
  EventsClient client(options);
  ev::CreatePersistentSubscriptionResponse response;
  grpc::Status status =
      client.persistent().Create(client.CommandContext().get(), request, &response);
  if (!status.ok()) return RpcFailure(status);
  EventPrinter printer(options);
  if (printer.json()) {
    printer.Json(response);
  } else {
    std::printf("group %s on %s created\n", request.group().c_str(), request.source().c_str());
  }
  return kExitSuccess;
}

int RunUpdate(const GlobalOptions& options, const GroupFlags& flags) {
  if (auto failure = SourceAndGroup(flags, 2)) return Fail(*failure);
  EventsClient client(options);
  ev::GetPersistentSubscriptionRequest get;
  get.set_source(flags.args[0]);
  get.set_group(flags.args[1]);
  ev::GetPersistentSubscriptionResponse current;
  grpc::Status status = client.persistent().Get(client.CommandContext().get(), get, &current);
  if (!status.ok()) return RpcFailure(status);
  ev::UpdatePersistentSubscriptionRequest request;
  request.set_source(flags.args[0]);
  request.set_group(flags.args[1]);
  *request.mutable_settings() = current.info().settings();
  if (auto failure = ApplySettings(flags, /*creating=*/false, request.mutable_settings())) {
    return Fail(*failure);
  }
  ev::UpdatePersistentSubscriptionResponse response;
  status = client.persistent().Update(client.CommandContext().get(), request, &response);
  if (!status.ok()) return RpcFailure(status);
  EventPrinter printer(options);
  if (printer.json()) {
    printer.Json(response);
  } else {
    std::printf("group %s on %s updated\n", request.group().c_str(), request.source().c_str());
  }
  return kExitSuccess;
}

int RunDelete(const GlobalOptions& options, const GroupFlags& flags) {
  if (auto failure = SourceAndGroup(flags, 2)) return Fail(*failure);
  ev::DeletePersistentSubscriptionRequest request;
  request.set_source(flags.args[0]);
  request.set_group(flags.args[1]);
  EventsClient client(options);
  ev::DeletePersistentSubscriptionResponse response;
  grpc::Status status =
      client.persistent().Delete(client.CommandContext().get(), request, &response);
  if (!status.ok()) return RpcFailure(status);
  EventPrinter printer(options);
  if (printer.json()) {
    printer.Json(response);
  } else {
    std::printf("group %s on %s deleted\n", request.group().c_str(), request.source().c_str());
  }
  return kExitSuccess;
}

// "<source> <group> <strategy> checkpoint=<c> parked=<n> consumers=<n> in-flight=<n> ..."
void PrintInfo(const ev::PersistentSubscriptionInfo& info) {
  std::string checkpoint = "none";
  if (info.has_checkpoint()) {
    checkpoint = info.source() == "$all" ? PositionText(info.checkpoint().position())
                                         : std::to_string(info.checkpoint().version());
  }
  std::printf(
      "%s %s %s checkpoint=%s parked=%llu replay-pending=%llu consumers=%u in-flight=%llu "
      "delivered=%llu acked=%llu nacked=%llu\n",
      info.source().c_str(), info.group().c_str(), StrategyName(info.settings().strategy()),
      checkpoint.c_str(), static_cast<unsigned long long>(info.parked_count()),
      static_cast<unsigned long long>(info.replay_pending()), info.consumers(),
      static_cast<unsigned long long>(info.in_flight()),
      static_cast<unsigned long long>(info.delivered()),
      static_cast<unsigned long long>(info.acked()),
      static_cast<unsigned long long>(info.nacked()));
}

int RunGet(const GlobalOptions& options, const GroupFlags& flags) {
  if (auto failure = SourceAndGroup(flags, 2)) return Fail(*failure);
  ev::GetPersistentSubscriptionRequest request;
  request.set_source(flags.args[0]);
  request.set_group(flags.args[1]);
  EventsClient client(options);
  ev::GetPersistentSubscriptionResponse response;
  grpc::Status status = client.persistent().Get(client.CommandContext().get(), request, &response);
  if (!status.ok()) return RpcFailure(status);
  EventPrinter printer(options);
  if (printer.json()) {
    printer.Json(response.info());
  } else {
    PrintInfo(response.info());
  }
  return kExitSuccess;
}

int RunList(const GlobalOptions& options, const GroupFlags& flags) {
  if (flags.args.size() > 1) return Fail(Failure{kExitBadArgs, "expected [<source>]"});
  ev::ListPersistentSubscriptionsRequest request;
  if (!flags.args.empty()) request.set_source(flags.args[0]);
  EventsClient client(options);
  ev::ListPersistentSubscriptionsResponse response;
  grpc::Status status = client.persistent().List(client.CommandContext().get(), request, &response);
  if (!status.ok()) return RpcFailure(status);
  EventPrinter printer(options);
  for (const auto& info : response.groups()) {
    if (printer.json()) {
      printer.Json(info);
    } else {
      PrintInfo(info);
    }
  }
  return kExitSuccess;
}

int RunReplayParked(const GlobalOptions& options, const GroupFlags& flags) {
  if (auto failure = SourceAndGroup(flags, 2)) return Fail(*failure);
  ev::ReplayParkedRequest request;
  request.set_source(flags.args[0]);
  request.set_group(flags.args[1]);
  request.set_max_count(flags.max_count);
  EventsClient client(options);
  ev::ReplayParkedResponse response;
  grpc::Status status =
      client.persistent().ReplayParked(client.CommandContext().get(), request, &response);
  if (!status.ok()) return RpcFailure(status);
  EventPrinter printer(options);
  if (printer.json()) {
    printer.Json(response);
  } else {
    std::printf("%llu parked events replayed\n",
                static_cast<unsigned long long>(response.replayed()));
  }
  return kExitSuccess;
}

// A consumer: prints each event ("<stream>@<version> <type> <position> <data>", with the retry
// count when above 0) and acks it, or nacks it with --nack; exits after --max-events.
int RunRead(const GlobalOptions& options, const GroupFlags& flags) {
  if (auto failure = SourceAndGroup(flags, 2)) return Fail(*failure);
  std::optional<ev::NackAction> nack;
  if (!flags.nack.empty()) {
    if (flags.nack == "retry") {
      nack = ev::NACK_RETRY;
    } else if (flags.nack == "park") {
      nack = ev::NACK_PARK;
    } else if (flags.nack == "skip") {
      nack = ev::NACK_SKIP;
    } else {
      return Fail(
          Failure{kExitBadArgs, "invalid --nack \"" + flags.nack + "\" (retry, park or skip)"});
    }
  }
  EventsClient client(options);
  if (!client.WaitConnected())
    return ExitWithError(kExitBadConnection, "context deadline exceeded");
  auto context = client.StreamContext();
  auto stream = client.persistent().Read(context.get());
  ev::PersistentReadRequest join;
  join.mutable_options()->set_source(flags.args[0]);
  join.mutable_options()->set_group(flags.args[1]);
  join.mutable_options()->set_buffer_size(flags.buffer_size);
  join.mutable_options()->set_consumer_name("cairnctl");
  stream->Write(join);
  EventPrinter printer(options);
  ev::PersistentReadResponse response;
  uint64_t events = 0;
  while (stream->Read(&response)) {
    if (!response.has_event()) continue;
    const ev::RecordedEvent& event = response.event().event();
    if (printer.json()) {
      printer.Json(response.event());
    } else {
      printer.Event(event);
      if (response.event().retry_count() > 0) {
        std::fprintf(stderr, "(retry %u)\n", response.event().retry_count());
      }
    }
    std::fflush(stdout);
    ev::PersistentReadRequest answer;
    if (nack.has_value()) {
      answer.mutable_nack()->add_ids(event.id());
      answer.mutable_nack()->set_action(*nack);
      answer.mutable_nack()->set_reason("cairnctl --nack");
    } else {
      answer.mutable_ack()->add_ids(event.id());
    }
    stream->Write(answer);
    if (flags.max_events > 0 && ++events >= flags.max_events) {
      // Half-close and wait for the server to end the call, so the last answer is read.
      stream->WritesDone();
      while (stream->Read(&response)) {
      }
      (void)stream->Finish();
      return kExitSuccess;
    }
  }
  grpc::Status status = stream->Finish();
  if (!status.ok()) return RpcFailure(status);
  return ExitWithError(kExitInterrupted, "the consumer was ended by the server");
}

void AddSettingsFlags(CLI::App* command, GroupFlags* flags) {
  command->add_option("--strategy", flags->strategy, "round-robin, dispatch-to-single or pinned");
  command->add_option("--max-retry", flags->max_retry,
                      "deliveries after the first before an event is parked (default 10)");
  command->add_option("--message-timeout-ms", flags->message_timeout_ms,
                      "an unacknowledged event is retried after this (default 30000)");
  command->add_option("--max-subscribers", flags->max_subscribers, "0 = no limit");
  command->add_option("--stream-prefix", flags->stream_prefixes, "$all groups: stream prefix");
  command->add_option("--type-prefix", flags->type_prefixes, "$all groups: type prefix");
  command->add_flag("--include-system", flags->include_system, "$all groups: \"$\" streams too");
}

}  // namespace

void AddGroupCommands(CLI::App* events, Invocation* invocation) {
  CLI::App* group = events->add_subcommand("group", "Persistent subscriptions (consumer groups)");
  group->require_subcommand(1);

  auto create_flags = std::make_shared<GroupFlags>();
  CLI::App* create = group->add_subcommand("create", "Creates a group on a stream or $all");
  create->add_option("args", create_flags->args, "<source> <group>");
  create->add_flag("--from-end", create_flags->from_end, "only events appended from now on");
  create->add_option("--after-version", create_flags->after_version,
                     "stream groups: start after this version");
  create->add_option("--after-position", create_flags->after_position,
                     "$all groups: start after <revision>/<index>");
  AddSettingsFlags(create, create_flags.get());
  OnRun(create, invocation, create_flags, RunCreate);

  auto update_flags = std::make_shared<GroupFlags>();
  CLI::App* update = group->add_subcommand("update", "Changes the given settings of a group");
  update->add_option("args", update_flags->args, "<source> <group>");
  AddSettingsFlags(update, update_flags.get());
  OnRun(update, invocation, update_flags, RunUpdate);

  auto delete_flags = std::make_shared<GroupFlags>();
  CLI::App* del = group->add_subcommand("delete", "Deletes a group and its progress");
  del->add_option("args", delete_flags->args, "<source> <group>");
  OnRun(del, invocation, delete_flags, RunDelete);

  auto get_flags = std::make_shared<GroupFlags>();
  CLI::App* get = group->add_subcommand("get", "Prints a group's settings and progress");
  get->add_option("args", get_flags->args, "<source> <group>");
  OnRun(get, invocation, get_flags, RunGet);

  auto list_flags = std::make_shared<GroupFlags>();
  CLI::App* list = group->add_subcommand("list", "Lists groups (of one source)");
  list->add_option("args", list_flags->args, "[<source>]");
  OnRun(list, invocation, list_flags, RunList);

  auto replay_flags = std::make_shared<GroupFlags>();
  CLI::App* replay =
      group->add_subcommand("replay-parked", "Delivers a group's parked events again");
  replay->add_option("args", replay_flags->args, "<source> <group>");
  replay->add_option("--max-count", replay_flags->max_count, "0 = up to 10000");
  OnRun(replay, invocation, replay_flags, RunReplayParked);

  auto read_flags = std::make_shared<GroupFlags>();
  CLI::App* read = group->add_subcommand("read", "Consumes a group: prints and acks events");
  read->add_option("args", read_flags->args, "<source> <group>");
  read->add_option("--buffer-size", read_flags->buffer_size, "unacknowledged events held");
  read->add_option("--max-events", read_flags->max_events, "exit 0 after this many events");
  read->add_option("--nack", read_flags->nack, "nack every event: retry, park or skip");
  OnRun(read, invocation, read_flags, RunRead);
}

}  // namespace cairnctl
