// events ... and audit verify: a client for Cairn's event store, the cairn.events.v1.Events
// gRPC service (proto/cairn/events.proto). These are Cairn's own commands, not etcdctl's:
// docs/events-cli.md describes them and their output. Simple output prints one line per
// event, "<stream>@<version> <type> <revision>/<index> <data>"; -w json prints protobuf
// JSON, one object per line (per event for read, read-all and subscribe; per response
// otherwise).
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "cairn/events.grpc.pb.h"
#include "tools/cairnctl/commands.h"
#include "tools/cairnctl/events_client.h"

namespace cairnctl {
namespace {

namespace ev = cairn::events::v1;

// The service's page limit (events.proto: "at most 4096"); longer reads are paged.
constexpr uint32_t kPageEventsMax = 4096;
// A --batch-file is read whole into one AppendRequest; this bounds the client's memory. The
// server applies its own, smaller, per-append limit.
constexpr size_t kBatchFileEventsMax = 100000;

// ---- argument parsing ----

struct Expected {
  ev::ExpectedKind kind = ev::ANY;
  uint64_t version = 0;
  std::string text = "any";  // as given, for the error message
};

// any | no-stream | exists | <version>
std::optional<Failure> ParseExpected(const std::string& text, Expected* expected) {
  expected->text = text;
  if (text == "any") {
    expected->kind = ev::ANY;
  } else if (text == "no-stream") {
    expected->kind = ev::NO_STREAM;
  } else if (text == "exists") {
    expected->kind = ev::STREAM_EXISTS;
  } else if (auto version = ParseUint64(text)) {
    expected->kind = ev::EXACT;
    expected->version = *version;
  } else {
    return Failure{kExitBadArgs, "invalid --expected-version \"" + text +
                                     "\" (expected any, no-stream, exists or a version)"};
  }
  return std::nullopt;
}

int WrongExpectedVersion(const Expected& expected, const ev::WrongExpectedVersion& wrong) {
  std::string actual = "no stream";
  if (wrong.stream_exists()) actual = std::to_string(wrong.current_version());
  if (wrong.soft_deleted()) actual += " (deleted)";
  return ExitWithError(
      kExitError, "wrong expected version: expected " + expected.text + ", stream is at " + actual);
}

// The contents of a file, or of stdin for "-".
std::optional<std::string> ReadWholeFile(const std::string& path) {
  if (path == "-") {
    return std::string(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  }
  std::ifstream file(path, std::ios::binary);
  if (!file) return std::nullopt;
  return std::string(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>());
}

// A random (version 4) UUID in text form.
class UuidSource {
 public:
  UuidSource() : rng_((uint64_t{std::random_device{}()} << 32) ^ std::random_device{}()) {}
  std::string Next() {
    uint8_t bytes[16];
    for (int i = 0; i < 16; i += 8) {
      const uint64_t word = rng_();
      for (int j = 0; j < 8; ++j) bytes[i + j] = static_cast<uint8_t>(word >> (8 * j));
    }
    bytes[6] = (bytes[6] & 0x0f) | 0x40;  // version 4
    bytes[8] = (bytes[8] & 0x3f) | 0x80;  // RFC 4122 variant
    static const char kDigits[] = "0123456789abcdef";
    std::string text;
    for (int i = 0; i < 16; ++i) {
      if (i == 4 || i == 6 || i == 8 || i == 10) text += '-';
      text += kDigits[bytes[i] >> 4];
      text += kDigits[bytes[i] & 0xf];
    }
    return text;
  }

 private:
  std::mt19937_64 rng_;
};

// ---- --batch-file: one JSON object per line ----

// Returns the end of the JSON value starting at text[pos] (text is valid JSON: the line was
// parsed as a Struct first), or npos.
size_t SkipJsonValue(std::string_view text, size_t pos) {
  int depth = 0;
  bool in_string = false;
  for (; pos < text.size(); ++pos) {
    const char c = text[pos];
    if (in_string) {
      if (c == '\\') {
        ++pos;
      } else if (c == '"') {
        in_string = false;
        if (depth == 0) return pos + 1;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      ++depth;
    } else if (c == '}' || c == ']') {
      if (depth == 0) return pos;  // the end of the enclosing object
      if (--depth == 0) return pos + 1;
    } else if (depth == 0 && (c == ',' || c == ' ' || c == '\t' || c == '\r' || c == '\n')) {
      return pos;
    }
  }
  return depth == 0 && !in_string ? pos : std::string_view::npos;
}

size_t SkipSpace(std::string_view text, size_t pos) {
  while (pos < text.size() && (text[pos] == ' ' || text[pos] == '\t' || text[pos] == '\r')) ++pos;
  return pos;
}

// The raw text of the top-level member `key` of a valid JSON object (keys compared as
// written, escapes included).
std::optional<std::string_view> RawJsonMember(std::string_view object, std::string_view key) {
  size_t pos = SkipSpace(object, 0);
  if (pos >= object.size() || object[pos] != '{') return std::nullopt;
  for (pos = SkipSpace(object, pos + 1); pos < object.size() && object[pos] == '"';) {
    const size_t key_end = SkipJsonValue(object, pos);
    if (key_end == std::string_view::npos) return std::nullopt;
    const std::string_view name = object.substr(pos + 1, key_end - pos - 2);
    pos = SkipSpace(object, SkipSpace(object, key_end) + 1);  // past ':'
    const size_t value_end = SkipJsonValue(object, pos);
    if (value_end == std::string_view::npos) return std::nullopt;
    if (name == key) return object.substr(pos, value_end - pos);
    pos = SkipSpace(object, value_end);
    if (pos < object.size() && object[pos] == ',') pos = SkipSpace(object, pos + 1);
  }
  return std::nullopt;
}

// A member's bytes: a JSON string's contents, nothing for null, or any other JSON value's
// text as written (so {"data":{"a":1}} stores the bytes {"a":1}).
std::string MemberBytes(std::string_view line, const std::string& key,
                        const google::protobuf::Value& value) {
  if (value.kind_case() == google::protobuf::Value::kStringValue) return value.string_value();
  if (value.kind_case() == google::protobuf::Value::kNullValue) return "";
  auto raw = RawJsonMember(line, key);
  return raw ? std::string(*raw) : std::string();
}

// One line {"id","type","data","metadata","content_type"}; absent members take the
// command's flags (id: a new UUID).
std::optional<std::string> ParseBatchLine(std::string_view line, const ev::NewEvent& defaults,
                                          UuidSource* uuids, ev::NewEvent* event) {
  google::protobuf::Struct object;
  auto status = google::protobuf::util::JsonStringToMessage(std::string(line), &object);
  if (!status.ok()) return "not a JSON object (" + std::string(status.message()) + ")";
  *event = defaults;
  event->set_id(uuids->Next());
  for (const auto& [key, value] : object.fields()) {
    const bool is_string = value.kind_case() == google::protobuf::Value::kStringValue;
    if (key == "data") {
      event->set_data(MemberBytes(line, key, value));
    } else if (key == "metadata") {
      event->set_metadata(MemberBytes(line, key, value));
    } else if (key != "id" && key != "type" && key != "content_type" && key != "contentType") {
      return "unknown member \"" + key + "\"";
    } else if (!is_string) {
      return "\"" + key + "\" must be a string";
    } else if (key == "id") {
      event->set_id(value.string_value());
    } else if (key == "type") {
      event->set_type(value.string_value());
    } else {
      event->set_content_type(value.string_value());
    }
  }
  return std::nullopt;
}

std::optional<Failure> ReadBatchFile(const std::string& path, const ev::NewEvent& defaults,
                                     UuidSource* uuids, ev::AppendRequest* request) {
  auto text = ReadWholeFile(path);
  if (!text) return Failure{kExitBadArgs, "cannot read --batch-file " + path};
  std::string_view rest = *text;
  for (int line_number = 1; !rest.empty(); ++line_number) {
    const size_t newline = rest.find('\n');
    std::string_view line = rest.substr(0, newline);
    rest = newline == std::string_view::npos ? std::string_view() : rest.substr(newline + 1);
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    if (static_cast<size_t>(request->events_size()) >= kBatchFileEventsMax) {
      return Failure{kExitBadArgs, "--batch-file holds more than " +
                                       std::to_string(kBatchFileEventsMax) + " events"};
    }
    if (auto error = ParseBatchLine(line, defaults, uuids, request->add_events())) {
      return Failure{kExitBadArgs, path + ":" + std::to_string(line_number) + ": " + *error};
    }
  }
  if (request->events_size() == 0) return Failure{kExitBadArgs, path + " holds no events"};
  return std::nullopt;
}

// ---- append ----

struct AppendFlags {
  std::vector<std::string> args;
  std::string expected_version = "any";
  std::string type;
  std::string id;
  std::string data;
  std::string data_file;
  std::string metadata;
  std::string content_type;
  std::string batch_file;
};

std::optional<Failure> BuildAppend(const AppendFlags& flags, Expected* expected,
                                   ev::AppendRequest* request) {
  if (flags.args.size() != 1) return Failure{kExitBadArgs, "events append needs <stream>"};
  if (auto failure = ParseExpected(flags.expected_version, expected)) return failure;
  request->set_stream(flags.args[0]);
  request->set_expected_kind(expected->kind);
  request->set_expected_version(expected->version);
  ev::NewEvent event;
  event.set_type(flags.type);
  event.set_metadata(flags.metadata);
  event.set_content_type(flags.content_type);
  UuidSource uuids;
  if (!flags.batch_file.empty()) return ReadBatchFile(flags.batch_file, event, &uuids, request);
  event.set_id(flags.id.empty() ? uuids.Next() : flags.id);
  event.set_data(flags.data);
  if (!flags.data_file.empty()) {
    auto data = ReadWholeFile(flags.data_file);
    if (!data) return Failure{kExitBadArgs, "cannot read --data-file " + flags.data_file};
    event.set_data(*data);
  }
  *request->add_events() = std::move(event);
  return std::nullopt;
}

int RunAppend(const GlobalOptions& options, const AppendFlags& flags) {
  Expected expected;
  ev::AppendRequest request;
  if (auto failure = BuildAppend(flags, &expected, &request)) {
    return ExitWithError(failure->exit_code, failure->message);
  }
  EventsClient client(options);
  ev::AppendResponse response;
  grpc::Status status = client.stub().Append(client.CommandContext().get(), request, &response);
  if (!status.ok()) return RpcFailure(status);
  EventPrinter printer(options);
  if (printer.json()) printer.Json(response);
  if (response.has_wrong_expected_version()) {
    return WrongExpectedVersion(expected, response.wrong_expected_version());
  }
  if (!response.has_success()) return ExitWithError(kExitError, "empty answer from the server");
  if (printer.json()) return kExitSuccess;
  const ev::AppendSuccess& success = response.success();
  std::printf("appended versions %llu..%llu at position %s%s\n",
              static_cast<unsigned long long>(success.first_version()),
              static_cast<unsigned long long>(success.current_version()),
              PositionText(success.position()).c_str(),
              success.idempotent_replay() ? " (idempotent replay: already appended)" : "");
  return kExitSuccess;
}

// ---- read, read-all ----

struct ReadFlags {
  std::vector<std::string> args;
  std::string from;  // read: a version; read-all: <revision>/<index>
  bool backwards = false;
  uint64_t count = 0;  // 0 = to the end
  std::vector<std::string> stream_prefixes;
  std::vector<std::string> type_prefixes;
  bool include_system = false;
};

// How many events to ask for next: the rest of --count, at most a page.
uint32_t PageCount(uint64_t count, uint64_t printed) {
  if (count == 0) return kPageEventsMax;
  return static_cast<uint32_t>(std::min<uint64_t>(count - printed, kPageEventsMax));
}

int RunRead(const GlobalOptions& options, const ReadFlags& flags) {
  if (flags.args.size() != 1) return ExitWithError(kExitBadArgs, "events read needs <stream>");
  ev::ReadStreamRequest request;
  request.set_stream(flags.args[0]);
  request.set_direction(flags.backwards ? ev::BACKWARDS : ev::FORWARDS);
  if (!flags.from.empty()) {
    auto from = ParseUint64(flags.from);
    if (!from) return ExitWithError(kExitBadArgs, "invalid --from \"" + flags.from + "\"");
    request.set_from_version(*from);
  } else {
    request.set_from_end(flags.backwards);
  }
  EventsClient client(options);
  EventPrinter printer(options);
  for (uint64_t printed = 0; flags.count == 0 || printed < flags.count;) {
    request.set_count(PageCount(flags.count, printed));
    ev::ReadStreamResponse response;
    grpc::Status status =
        client.stub().ReadStream(client.CommandContext().get(), request, &response);
    if (!status.ok()) return RpcFailure(status);
    for (const auto& event : response.events()) printer.Event(event);
    printed += response.events_size();
    if (response.end_of_stream()) break;
    if (response.events_size() == 0) {
      return ExitWithError(kExitError, "the server returned an empty page before the end");
    }
    request.set_from_version(response.next_version());
    request.set_from_end(false);
  }
  return kExitSuccess;
}

int RunReadAll(const GlobalOptions& options, const ReadFlags& flags) {
  if (!flags.args.empty()) return ExitWithError(kExitBadArgs, "events read-all takes no arguments");
  ev::ReadAllRequest request;
  request.set_direction(flags.backwards ? ev::BACKWARDS : ev::FORWARDS);
  if (!flags.from.empty()) {
    if (auto failure = ParsePosition(flags.from, "--from", request.mutable_from())) {
      return ExitWithError(failure->exit_code, failure->message);
    }
  } else {
    request.set_from_end(flags.backwards);
  }
  for (const auto& prefix : flags.stream_prefixes)
    request.mutable_filter()->add_stream_prefixes(prefix);
  for (const auto& prefix : flags.type_prefixes)
    request.mutable_filter()->add_type_prefixes(prefix);
  request.set_include_system(flags.include_system);
  EventsClient client(options);
  EventPrinter printer(options);
  for (uint64_t printed = 0; flags.count == 0 || printed < flags.count;) {
    request.set_count(PageCount(flags.count, printed));
    ev::ReadAllResponse response;
    grpc::Status status = client.stub().ReadAll(client.CommandContext().get(), request, &response);
    if (!status.ok()) return RpcFailure(status);
    for (const auto& event : response.events()) printer.Event(event);
    printed += response.events_size();
    if (response.end()) break;
    // A filtered page may hold no events and still move on (next advances past the gap).
    if (response.events_size() == 0 && response.next().revision() == request.from().revision() &&
        response.next().index() == request.from().index() && !request.from_end()) {
      return ExitWithError(kExitError, "the server returned an empty page that does not advance");
    }
    *request.mutable_from() = response.next();
    request.set_from_end(false);
  }
  return kExitSuccess;
}

// ---- subscribe ----

struct SubscribeFlags {
  std::vector<std::string> args;
  bool all = false;
  std::string after_version;
  std::string after_position;
  bool from_end = false;
  std::vector<std::string> stream_prefixes;
  std::vector<std::string> type_prefixes;
  bool include_system = false;
  uint64_t max_events = 0;  // 0 = until interrupted
  uint32_t checkpoint_interval = 0;
};

std::optional<Failure> BuildSubscribe(const SubscribeFlags& flags, ev::SubscribeRequest* request) {
  if (flags.all == (flags.args.size() == 1) || flags.args.size() > 1) {
    return Failure{kExitBadArgs, "events subscribe needs <stream> or --all"};
  }
  const int starts = !flags.after_version.empty() + !flags.after_position.empty() + flags.from_end;
  if (starts > 1) {
    return Failure{kExitBadArgs,
                   "--after-version, --after-position and --from-end are mutually exclusive"};
  }
  if (flags.all) {
    request->set_all(true);
  } else {
    request->set_stream(flags.args[0]);
  }
  if (!flags.after_version.empty()) {
    auto version = ParseUint64(flags.after_version);
    if (!version || flags.all) {
      return Failure{kExitBadArgs, "--after-version needs a version and a <stream>"};
    }
    request->set_after_version(*version);
  }
  if (!flags.after_position.empty()) {
    if (!flags.all) return Failure{kExitBadArgs, "--after-position needs --all"};
    if (auto failure = ParsePosition(flags.after_position, "--after-position",
                                     request->mutable_after_position())) {
      return failure;
    }
  }
  if (flags.from_end) request->set_from_end(true);
  const bool filtered = !flags.stream_prefixes.empty() || !flags.type_prefixes.empty();
  if (filtered && !flags.all) return Failure{kExitBadArgs, "filters need --all"};
  for (const auto& prefix : flags.stream_prefixes)
    request->mutable_filter()->add_stream_prefixes(prefix);
  for (const auto& prefix : flags.type_prefixes)
    request->mutable_filter()->add_type_prefixes(prefix);
  request->set_include_system(flags.include_system);
  request->set_checkpoint_interval(flags.checkpoint_interval);
  return std::nullopt;
}

// Prints events as they arrive. Simple output: events on stdout, "caught up at R/I" on
// stderr (what follows is live); JSON output: every response (events, checkpoints, caught
// up) on stdout.
int RunSubscribe(const GlobalOptions& options, const SubscribeFlags& flags) {
  ev::SubscribeRequest request;
  if (auto failure = BuildSubscribe(flags, &request)) {
    return ExitWithError(failure->exit_code, failure->message);
  }
  EventsClient client(options);
  if (!client.WaitConnected())
    return ExitWithError(kExitBadConnection, "context deadline exceeded");
  EventPrinter printer(options);
  auto context = client.StreamContext();
  auto reader = client.stub().Subscribe(context.get(), request);
  ev::SubscribeResponse response;
  uint64_t events = 0;
  while (reader->Read(&response)) {
    if (printer.json()) {
      printer.Json(response);
    } else if (response.has_event()) {
      printer.Event(response.event());
    } else if (response.has_caught_up()) {
      std::fprintf(stderr, "caught up at %s\n", PositionText(response.caught_up()).c_str());
    }
    std::fflush(stdout);
    if (response.has_event() && flags.max_events > 0 && ++events >= flags.max_events) {
      context->TryCancel();
      reader->Finish();
      return kExitSuccess;
    }
  }
  grpc::Status status = reader->Finish();
  if (!status.ok()) return RpcFailure(status);
  return ExitWithError(kExitInterrupted, "the subscription was ended by the server");
}

// ---- metadata get|set ----

struct MetadataFlags {
  std::vector<std::string> args;
  std::string max_age_s;  // empty = keep the current value
  std::string max_count;
  std::string truncate_before;
  std::string custom;
  bool custom_set = false;
};

std::string LimitText(uint64_t value, const char* unit) {
  return value == 0 ? "none" : std::to_string(value) + unit;
}

void PrintMetadata(const std::string& stream, const ev::GetStreamMetadataResponse& response,
                   const EventPrinter& printer) {
  const char* deleted = response.hard_deleted() ? "hard" : response.soft_deleted() ? "soft" : "no";
  std::printf("stream: %s\n", stream.c_str());
  std::printf("current version: %s\n", response.stream_exists()
                                           ? std::to_string(response.current_version()).c_str()
                                           : "no stream");
  std::printf("deleted: %s\n", deleted);
  const ev::StreamMetadata& metadata = response.metadata();
  std::printf("max age: %s\n", LimitText(metadata.max_age_seconds(), " s").c_str());
  std::printf("max count: %s\n", LimitText(metadata.max_count(), "").c_str());
  std::printf("truncate before: %s\n", LimitText(metadata.truncate_before(), "").c_str());
  std::printf("custom: %s\n", printer.Bytes(metadata.custom()).c_str());
}

int RunMetadataGet(const GlobalOptions& options, const MetadataFlags& flags) {
  if (flags.args.size() != 1) {
    return ExitWithError(kExitBadArgs, "events metadata get needs <stream>");
  }
  EventsClient client(options);
  ev::GetStreamMetadataRequest request;
  request.set_stream(flags.args[0]);
  ev::GetStreamMetadataResponse response;
  grpc::Status status =
      client.stub().GetStreamMetadata(client.CommandContext().get(), request, &response);
  if (!status.ok()) return RpcFailure(status);
  EventPrinter printer(options);
  if (printer.json()) {
    printer.Json(response);
  } else {
    PrintMetadata(flags.args[0], response, printer);
  }
  return kExitSuccess;
}

// Sets the fields given and keeps the others: reads the metadata, changes it, writes it whole
// (SetStreamMetadata replaces everything). Not atomic against a concurrent set.
int RunMetadataSet(const GlobalOptions& options, const MetadataFlags& flags) {
  if (flags.args.size() != 1) {
    return ExitWithError(kExitBadArgs, "events metadata set needs <stream>");
  }
  EventsClient client(options);
  ev::GetStreamMetadataRequest get;
  get.set_stream(flags.args[0]);
  ev::GetStreamMetadataResponse current;
  grpc::Status status =
      client.stub().GetStreamMetadata(client.CommandContext().get(), get, &current);
  if (!status.ok()) return RpcFailure(status);
  ev::SetStreamMetadataRequest request;
  request.set_stream(flags.args[0]);
  ev::StreamMetadata* metadata = request.mutable_metadata();
  *metadata = current.metadata();
  const std::pair<const std::string*, void (ev::StreamMetadata::*)(uint64_t)> fields[] = {
      {&flags.max_age_s, &ev::StreamMetadata::set_max_age_seconds},
      {&flags.max_count, &ev::StreamMetadata::set_max_count},
      {&flags.truncate_before, &ev::StreamMetadata::set_truncate_before}};
  for (const auto& [text, setter] : fields) {
    if (text->empty()) continue;
    auto value = ParseUint64(*text);
    if (!value) return ExitWithError(kExitBadArgs, "invalid number \"" + *text + "\"");
    (metadata->*setter)(*value);
  }
  if (flags.custom_set) metadata->set_custom(flags.custom);
  ev::SetStreamMetadataResponse response;
  status = client.stub().SetStreamMetadata(client.CommandContext().get(), request, &response);
  if (!status.ok()) return RpcFailure(status);
  EventPrinter printer(options);
  if (printer.json()) {
    printer.Json(response);
  } else {
    std::printf("OK\n");
  }
  return kExitSuccess;
}

// ---- delete ----

struct DeleteFlags {
  std::vector<std::string> args;
  bool hard = false;
  std::string expected_version = "any";
};

int RunDelete(const GlobalOptions& options, const DeleteFlags& flags) {
  if (flags.args.size() != 1) return ExitWithError(kExitBadArgs, "events delete needs <stream>");
  Expected expected;
  if (auto failure = ParseExpected(flags.expected_version, &expected)) {
    return ExitWithError(failure->exit_code, failure->message);
  }
  ev::DeleteStreamRequest request;
  request.set_stream(flags.args[0]);
  request.set_expected_kind(expected.kind);
  request.set_expected_version(expected.version);
  request.set_hard(flags.hard);
  EventsClient client(options);
  ev::DeleteStreamResponse response;
  grpc::Status status =
      client.stub().DeleteStream(client.CommandContext().get(), request, &response);
  if (!status.ok()) return RpcFailure(status);
  EventPrinter printer(options);
  if (printer.json()) printer.Json(response);
  if (response.has_wrong_expected_version()) {
    return WrongExpectedVersion(expected, response.wrong_expected_version());
  }
  if (!printer.json()) {
    std::printf("%s %s at position %s\n", flags.hard ? "hard-deleted" : "deleted",
                flags.args[0].c_str(), PositionText(response.position()).c_str());
  }
  return kExitSuccess;
}

// ---- snapshot save, aggregate ----

struct SnapshotFlags {
  std::vector<std::string> args;  // <stream> <version> <data>
  std::string type;
};

int RunSnapshotSave(const GlobalOptions& options, const SnapshotFlags& flags) {
  if (flags.args.size() != 3) {
    return ExitWithError(kExitBadArgs, "events snapshot save needs <stream> <version> <data>");
  }
  auto version = ParseUint64(flags.args[1]);
  if (!version) return ExitWithError(kExitBadArgs, "invalid version \"" + flags.args[1] + "\"");
  ev::SaveSnapshotRequest request;
  request.set_stream(flags.args[0]);
  request.set_version(*version);
  request.set_data(flags.args[2]);
  request.set_type(flags.type);
  EventsClient client(options);
  ev::SaveSnapshotResponse response;
  grpc::Status status =
      client.stub().SaveSnapshot(client.CommandContext().get(), request, &response);
  if (!status.ok()) return RpcFailure(status);
  EventPrinter printer(options);
  if (printer.json()) {
    printer.Json(response);
  } else {
    std::printf("snapshot saved for %s at version %llu\n", flags.args[0].c_str(),
                static_cast<unsigned long long>(*version));
  }
  return kExitSuccess;
}

struct AggregateFlags {
  std::vector<std::string> args;
  uint32_t count = 0;
};

// "snapshot <stream>@<version> <type> <data>" (or "no snapshot"), then the events after it.
int RunAggregate(const GlobalOptions& options, const AggregateFlags& flags) {
  if (flags.args.size() != 1) return ExitWithError(kExitBadArgs, "events aggregate needs <stream>");
  ev::ReadAggregateRequest request;
  request.set_stream(flags.args[0]);
  request.set_count(flags.count);
  EventsClient client(options);
  ev::ReadAggregateResponse response;
  grpc::Status status =
      client.stub().ReadAggregate(client.CommandContext().get(), request, &response);
  if (!status.ok()) return RpcFailure(status);
  EventPrinter printer(options);
  if (printer.json()) {
    printer.Json(response);
    return kExitSuccess;
  }
  if (response.has_snapshot()) {
    const ev::Snapshot& snapshot = response.snapshot();
    std::printf("snapshot %s@%llu %s %s\n", flags.args[0].c_str(),
                static_cast<unsigned long long>(snapshot.version()), snapshot.type().c_str(),
                printer.Bytes(snapshot.data()).c_str());
  } else {
    std::printf("no snapshot\n");
  }
  for (const auto& event : response.events()) printer.Event(event);
  if (!response.end_of_stream()) {
    std::printf("more events follow (current version %llu)\n",
                static_cast<unsigned long long>(response.current_version()));
  }
  return kExitSuccess;
}

// ---- audit verify ----

int RunAuditVerify(const GlobalOptions& options) {
  EventsClient client(options);
  ev::VerifyChainRequest request;
  ev::VerifyChainResponse response;
  grpc::Status status =
      client.stub().VerifyChain(client.CommandContext().get(), request, &response);
  if (!status.ok()) return RpcFailure(status);
  EventPrinter printer(options);
  if (printer.json()) {
    printer.Json(response);
  } else if (response.ok()) {
    std::printf("ok: %llu events verified",
                static_cast<unsigned long long>(response.events_checked()));
    if (response.events_scavenged() > 0) {
      std::printf(" (%llu scavenged: hash anchors)",
                  static_cast<unsigned long long>(response.events_scavenged()));
    }
    std::printf("\n");
  } else {
    std::printf("broken at position %s (stream %s version %llu): %s\n",
                PositionText(response.broken_at()).c_str(), response.broken_stream().c_str(),
                static_cast<unsigned long long>(response.broken_version()),
                response.reason().c_str());
  }
  return response.ok() ? kExitSuccess : kExitError;
}

// ---- scavenge ----

struct ScavengeFlags {
  uint32_t max_streams = 0;
  uint32_t max_events = 0;
  std::string from;
  bool once = false;
};

// Runs a whole pass (one slice per RPC, each a replicated command) unless --once.
int RunScavenge(const GlobalOptions& options, const ScavengeFlags& flags) {
  EventsClient client(options);
  ev::ScavengeRequest request;
  request.set_from_stream(flags.from);
  request.set_max_streams(flags.max_streams);
  request.set_max_events(flags.max_events);
  ev::ScavengeResponse total;
  uint64_t slices = 0;
  for (;;) {
    ev::ScavengeResponse response;
    grpc::Status status = client.stub().Scavenge(client.CommandContext().get(), request, &response);
    if (!status.ok()) return RpcFailure(status);
    ++slices;
    total.set_streams_examined(total.streams_examined() + response.streams_examined());
    total.set_events_removed(total.events_removed() + response.events_removed());
    total.set_bytes_removed(total.bytes_removed() + response.bytes_removed());
    *total.mutable_header() = response.header();
    total.set_next_stream(response.next_stream());
    if (flags.once || response.next_stream().empty()) break;
    request.set_from_stream(response.next_stream());
  }
  EventPrinter printer(options);
  if (printer.json()) {
    printer.Json(total);
    return kExitSuccess;
  }
  std::printf("scavenged: %llu streams examined, %llu events removed (%llu bytes) in %llu %s\n",
              static_cast<unsigned long long>(total.streams_examined()),
              static_cast<unsigned long long>(total.events_removed()),
              static_cast<unsigned long long>(total.bytes_removed()),
              static_cast<unsigned long long>(slices), slices == 1 ? "slice" : "slices");
  if (!total.next_stream().empty()) {
    std::printf("continue with --from '%s'\n", total.next_stream().c_str());
  }
  return kExitSuccess;
}

// ---- registration ----

void AddAppend(CLI::App* events, Invocation* invocation) {
  auto flags = std::make_shared<AppendFlags>();
  CLI::App* append = events->add_subcommand("append", "Appends events to a stream");
  append->add_option("args", flags->args, "<stream>");
  append->add_option("--expected-version", flags->expected_version,
                     "any, no-stream, exists or the stream's current version");
  append->add_option("--type", flags->type, "event type");
  auto* id = append->add_option("--id", flags->id, "event id (UUID); default: a random one");
  auto* data = append->add_option("--data", flags->data, "event data");
  auto* data_file =
      append->add_option("--data-file", flags->data_file, "event data file (-: stdin)");
  append->add_option("--metadata", flags->metadata, "event metadata");
  append->add_option("--content-type", flags->content_type, "default: application/json");
  append
      ->add_option("--batch-file", flags->batch_file,
                   "one JSON object per line {\"id\",\"type\",\"data\",\"metadata\"}, all "
                   "appended at once")
      ->excludes(id)
      ->excludes(data)
      ->excludes(data_file);
  data->excludes(data_file);
  OnRun(append, invocation, flags, RunAppend);
}

void AddRead(CLI::App* events, Invocation* invocation) {
  auto flags = std::make_shared<ReadFlags>();
  CLI::App* read = events->add_subcommand("read", "Reads a stream");
  read->add_option("args", flags->args, "<stream>");
  read->add_option("--from", flags->from,
                   "first version (default: the start; the end with --backwards)");
  read->add_flag("--backwards", flags->backwards, "read from newest to oldest");
  read->add_option("--count", flags->count, "events to print; 0 = all");
  OnRun(read, invocation, flags, RunRead);

  auto all_flags = std::make_shared<ReadFlags>();
  CLI::App* read_all = events->add_subcommand("read-all", "Reads every stream in position order");
  read_all->add_option("--from", all_flags->from, "first position <revision>/<index>");
  read_all->add_flag("--backwards", all_flags->backwards, "read from newest to oldest");
  read_all->add_option("--count", all_flags->count, "events to print; 0 = all");
  read_all->add_option("--stream-prefix", all_flags->stream_prefixes,
                       "only streams with this prefix");
  read_all->add_option("--type-prefix", all_flags->type_prefixes, "only types with this prefix");
  read_all->add_flag("--include-system", all_flags->include_system, "include \"$\" streams");
  OnRun(read_all, invocation, all_flags, RunReadAll);
}

void AddSubscribe(CLI::App* events, Invocation* invocation) {
  auto flags = std::make_shared<SubscribeFlags>();
  CLI::App* subscribe = events->add_subcommand(
      "subscribe", "Prints a stream's (or every stream's) events as they are appended");
  subscribe->add_option("args", flags->args, "<stream>");
  subscribe->add_flag("--all", flags->all, "subscribe to every stream ($all)");
  subscribe->add_option("--after-version", flags->after_version, "start after this version");
  subscribe->add_option("--after-position", flags->after_position,
                        "with --all: start after <revision>/<index>");
  subscribe->add_flag("--from-end", flags->from_end, "only events appended from now on");
  subscribe->add_option("--stream-prefix", flags->stream_prefixes, "with --all: stream prefix");
  subscribe->add_option("--type-prefix", flags->type_prefixes, "with --all: type prefix");
  subscribe->add_flag("--include-system", flags->include_system, "include \"$\" streams");
  subscribe->add_option("--max-events", flags->max_events, "exit 0 after this many events");
  subscribe->add_option("--checkpoint-interval", flags->checkpoint_interval,
                        "filtered --all: events scanned per checkpoint (-w json shows them)");
  OnRun(subscribe, invocation, flags, RunSubscribe);
}

void AddMetadata(CLI::App* events, Invocation* invocation) {
  CLI::App* metadata = events->add_subcommand("metadata", "Stream metadata (retention)");
  metadata->require_subcommand(1);
  auto get_flags = std::make_shared<MetadataFlags>();
  CLI::App* get = metadata->add_subcommand("get", "Prints a stream's metadata and state");
  get->add_option("args", get_flags->args, "<stream>");
  OnRun(get, invocation, get_flags, RunMetadataGet);

  auto flags = std::make_shared<MetadataFlags>();
  CLI::App* set = metadata->add_subcommand("set", "Sets the given fields, keeps the others");
  set->add_option("args", flags->args, "<stream>");
  set->add_option("--max-age", flags->max_age_s, "seconds; 0 = no limit");
  set->add_option("--max-count", flags->max_count, "events kept; 0 = no limit");
  set->add_option("--truncate-before", flags->truncate_before, "versions below are dropped");
  set->add_option("--custom", flags->custom, "user metadata bytes")
      ->each([flags](const std::string&) { flags->custom_set = true; });
  OnRun(set, invocation, flags, RunMetadataSet);
}

void AddSnapshotAndAggregate(CLI::App* events, Invocation* invocation) {
  CLI::App* snapshot = events->add_subcommand("snapshot", "Aggregate snapshots");
  snapshot->require_subcommand(1);
  auto snapshot_flags = std::make_shared<SnapshotFlags>();
  CLI::App* save = snapshot->add_subcommand("save", "Saves a snapshot folding events 0..version");
  save->add_option("args", snapshot_flags->args, "<stream> <version> <data>");
  save->add_option("--type", snapshot_flags->type, "snapshot type");
  OnRun(save, invocation, snapshot_flags, RunSnapshotSave);

  auto flags = std::make_shared<AggregateFlags>();
  CLI::App* aggregate =
      events->add_subcommand("aggregate", "Prints the latest snapshot and the events after it");
  aggregate->add_option("args", flags->args, "<stream>");
  aggregate->add_option("--count", flags->count, "events after the snapshot; 0 = 4096");
  OnRun(aggregate, invocation, flags, RunAggregate);
}

}  // namespace

void AddEventsCommands(CLI::App* app, Invocation* invocation) {
  CLI::App* events = app->add_subcommand("events", "Event store commands (Cairn only)");
  events->require_subcommand(1);
  AddAppend(events, invocation);
  AddRead(events, invocation);
  AddSubscribe(events, invocation);
  AddMetadata(events, invocation);
  auto delete_flags = std::make_shared<DeleteFlags>();
  CLI::App* del = events->add_subcommand("delete", "Deletes a stream (soft, or --hard)");
  del->add_option("args", delete_flags->args, "<stream>");
  del->add_flag("--hard", delete_flags->hard, "tombstone: later appends and reads are refused");
  del->add_option("--expected-version", delete_flags->expected_version,
                  "any, no-stream, exists or the stream's current version");
  OnRun(del, invocation, delete_flags, RunDelete);
  AddSnapshotAndAggregate(events, invocation);
  AddGroupCommands(events, invocation);
  auto scavenge_flags = std::make_shared<ScavengeFlags>();
  CLI::App* scavenge = events->add_subcommand(
      "scavenge", "Removes hidden (expired, truncated, deleted) events from disk");
  scavenge->add_option("--max-streams", scavenge_flags->max_streams,
                       "streams examined per slice; 0 = 1000");
  scavenge->add_option("--max-events", scavenge_flags->max_events,
                       "events removed per slice; 0 = 10000");
  scavenge->add_option("--from", scavenge_flags->from, "stream to start at (resume)");
  scavenge->add_flag("--once", scavenge_flags->once, "one slice only");
  OnRun(scavenge, invocation, scavenge_flags, RunScavenge);

  CLI::App* audit = app->add_subcommand("audit", "Event store audit (Cairn only)");
  audit->require_subcommand(1);
  audit->add_subcommand("verify", "Re-walks the events' hash chain")->final_callback([invocation] {
    invocation->run = RunAuditVerify;
  });
}

}  // namespace cairnctl
