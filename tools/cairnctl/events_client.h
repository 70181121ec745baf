// The event store's client side for cairnctl: a channel of its own to Cairn's event store
// services (cairn.events.v1.Events, PersistentSubscriptions), output helpers shared by
// `events ...` and `events group ...`, and the registration helper of their commands.
#pragma once

#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>

#include <charconv>
#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cairn/events.grpc.pb.h"
#include "cairn/persistent.grpc.pb.h"
#include "tools/cairnctl/commands.h"

namespace cairnctl {

namespace ev = cairn::events::v1;

// ---- connection ----

// The Events stub on a channel of its own: Connection (connection.h) carries the etcd API
// stubs only. Same channel arguments and timeouts as Connection.
class EventsClient {
 public:
  explicit EventsClient(const GlobalOptions& options) : options_(options) {
    grpc::ChannelArguments arguments;
    arguments.SetMaxReceiveMessageSize(-1);
    arguments.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
    arguments.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 500);
    channel_ = grpc::CreateCustomChannel(Target(options.endpoints),
                                         grpc::InsecureChannelCredentials(), arguments);
    stub_ = ev::Events::NewStub(channel_);
    persistent_ = ev::PersistentSubscriptions::NewStub(channel_);
  }
  EventsClient(const EventsClient&) = delete;
  EventsClient& operator=(const EventsClient&) = delete;

  ev::Events::Stub& stub() { return *stub_; }
  ev::PersistentSubscriptions::Stub& persistent() { return *persistent_; }

  // A short request: deadline = --command-timeout, waits for the channel to connect.
  std::unique_ptr<grpc::ClientContext> CommandContext() const {
    auto context = std::make_unique<grpc::ClientContext>();
    context->set_deadline(std::chrono::system_clock::now() + options_.command_timeout);
    context->set_wait_for_ready(true);
    return context;
  }
  // A subscription: connecting is bounded by --dial-timeout, the stream is not.
  std::unique_ptr<grpc::ClientContext> StreamContext() const {
    auto context = std::make_unique<grpc::ClientContext>();
    context->set_wait_for_ready(true);
    return context;
  }
  bool WaitConnected() const {
    return channel_->WaitForConnected(std::chrono::system_clock::now() + options_.dial_timeout);
  }

 private:
  // Several IPv4 endpoints become one "ipv4:" target (gRPC picks one that answers), as
  // Connection does; otherwise the first endpoint.
  static std::string Target(const std::vector<std::string>& endpoints) {
    if (endpoints.size() == 1) return endpoints[0];
    std::string target = "ipv4:";
    for (size_t i = 0; i < endpoints.size(); ++i) {
      const std::string& endpoint = endpoints[i];
      const size_t colon = endpoint.rfind(':');
      if (colon == std::string::npos || endpoint.find_first_not_of("0123456789.") != colon) {
        return endpoints[0];
      }
      target += (i > 0 ? "," : "") + endpoint;
    }
    return target;
  }

  GlobalOptions options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<ev::Events::Stub> stub_;
  std::unique_ptr<ev::PersistentSubscriptions::Stub> persistent_;
};

// The server's own message: the event store's errors are Cairn's, there is no etcdctl text
// to match. Deadlines and cancellation read as in the rest of cairnctl.
inline std::string EventsErrorText(const grpc::Status& status) {
  const grpc::StatusCode code = status.error_code();
  if (code == grpc::StatusCode::DEADLINE_EXCEEDED || code == grpc::StatusCode::CANCELLED ||
      status.error_message().empty()) {
    return ErrorText(status);
  }
  return status.error_message();
}

inline int RpcFailure(const grpc::Status& status) {
  return ExitWithError(kExitError, EventsErrorText(status));
}

// ---- output ----

inline std::string PositionText(const ev::Position& position) {
  return std::to_string(position.revision()) + "/" + std::to_string(position.index());
}

class EventPrinter {
 public:
  explicit EventPrinter(const GlobalOptions& options)
      : json_(options.output == OutputFormat::kJson), hex_(options.hex) {}

  bool json() const { return json_; }

  // One JSON object on one line. Fields with default values are printed too, so that
  // version 0 and index 0 are visible.
  void Json(const google::protobuf::Message& message) const {
    google::protobuf::util::JsonPrintOptions print_options;
    print_options.always_print_primitive_fields = true;
    std::string text;
    auto status = google::protobuf::util::MessageToJsonString(message, &text, print_options);
    if (!status.ok()) text = "{\"error\":\"cannot print as JSON\"}";
    std::printf("%s\n", text.c_str());
  }

  // "<stream>@<version> <type> <revision>/<index> <data>", or the event as JSON.
  void Event(const ev::RecordedEvent& event) const {
    if (json_) return Json(event);
    std::printf("%s@%llu %s %s %s\n", event.stream().c_str(),
                static_cast<unsigned long long>(event.version()), event.type().c_str(),
                PositionText(event.position()).c_str(), Bytes(event.data()).c_str());
  }

  // Byte strings as they are, or in hex with --hex.
  std::string Bytes(const std::string& bytes) const {
    if (!hex_) return bytes;
    static const char kDigits[] = "0123456789abcdef";
    std::string out;
    for (unsigned char c : bytes) {
      out += kDigits[c >> 4];
      out += kDigits[c & 0xf];
    }
    return out;
  }

 private:
  bool json_;
  bool hex_;
};

inline std::optional<uint64_t> ParseUint64(std::string_view text) {
  uint64_t value = 0;
  const char* end = text.data() + text.size();
  auto [ptr, error] = std::from_chars(text.data(), end, value);
  if (text.empty() || error != std::errc() || ptr != end) return std::nullopt;
  return value;
}

// "<revision>/<index>", or "<revision>" for index 0.
inline std::optional<Failure> ParsePosition(const std::string& text, const char* flag,
                                            ev::Position* position) {
  const size_t slash = text.find('/');
  auto revision = ParseUint64(std::string_view(text).substr(0, slash));
  std::optional<uint64_t> index = 0;
  if (slash != std::string::npos) index = ParseUint64(std::string_view(text).substr(slash + 1));
  if (!revision || !index || *index > UINT32_MAX) {
    return Failure{kExitBadArgs, std::string("invalid ") + flag + " \"" + text +
                                     "\" (expected <revision>/<index>)"};
  }
  position->set_revision(*revision);
  position->set_index(static_cast<uint32_t>(*index));
  return std::nullopt;
}

// Registers `command`'s callback: run(options, *flags).
template <typename Flags>
void OnRun(CLI::App* command, Invocation* invocation, std::shared_ptr<Flags> flags,
           int (*run)(const GlobalOptions&, const Flags&)) {
  command->final_callback([invocation, flags, run] {
    invocation->run = [flags, run](const GlobalOptions& o) { return run(o, *flags); };
  });
}

}  // namespace cairnctl
