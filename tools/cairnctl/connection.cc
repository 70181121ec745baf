#include "tools/cairnctl/connection.h"

#include <cstdio>

namespace cairnctl {
namespace {

// Go gRPC's codes.Code.String().
const char* GoCodeName(grpc::StatusCode code) {
  static const char* const kNames[] = {
      "OK",       "Canceled",       "Unknown",          "InvalidArgument",   "DeadlineExceeded",
      "NotFound", "AlreadyExists",  "PermissionDenied", "ResourceExhausted", "FailedPrecondition",
      "Aborted",  "OutOfRange",     "Unimplemented",    "Internal",          "Unavailable",
      "DataLoss", "Unauthenticated"};
  int index = static_cast<int>(code);
  return index >= 0 && index < 17 ? kNames[index] : "Unknown";
}

bool IsIpv4HostPort(const std::string& endpoint) {
  size_t colon = endpoint.rfind(':');
  if (colon == std::string::npos || colon == 0) return false;
  return endpoint.find_first_not_of("0123456789.") == colon;
}

// gRPC target for host:port endpoints. Several IPv4 endpoints become one "ipv4:" target, and
// gRPC picks the first that answers; with host names only the first endpoint is used.
std::string TargetFor(const std::vector<std::string>& endpoints) {
  if (endpoints.size() == 1) return endpoints[0];
  std::string target = "ipv4:";
  for (size_t i = 0; i < endpoints.size(); ++i) {
    if (!IsIpv4HostPort(endpoints[i])) return endpoints[0];
    if (i > 0) target += ",";
    target += endpoints[i];
  }
  return target;
}

}  // namespace

int ExitWithError(int exit_code, const std::string& message) {
  std::fprintf(stderr, "Error: %s\n", message.c_str());
  return exit_code;
}

std::string ErrorText(const grpc::Status& status) {
  const std::string& message = status.error_message();
  if (message.rfind("etcdserver: ", 0) == 0) return message;
  if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
    return "context deadline exceeded";
  }
  if (status.error_code() == grpc::StatusCode::CANCELLED) return "context canceled";
  return std::string("rpc error: code = ") + GoCodeName(status.error_code()) + " desc = " + message;
}

std::string StripScheme(const std::string& endpoint) {
  for (const char* scheme : {"http://", "https://", "unix://"}) {
    if (endpoint.rfind(scheme, 0) == 0) return endpoint.substr(std::string(scheme).size());
  }
  return endpoint;
}

Connection::Connection(const GlobalOptions& options, const std::vector<std::string>& endpoints)
    : options_(options) {
  grpc::ChannelArguments arguments;
  arguments.SetMaxReceiveMessageSize(-1);
  arguments.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  arguments.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 500);
  // Endpoints from a member list (endpoint --cluster) keep their scheme for printing.
  std::vector<std::string> addresses;
  for (const std::string& endpoint : endpoints) addresses.push_back(StripScheme(endpoint));
  channel_ = grpc::CreateCustomChannel(TargetFor(addresses), grpc::InsecureChannelCredentials(),
                                       arguments);
  kv_ = etcdserverpb::KV::NewStub(channel_);
  watch_ = etcdserverpb::Watch::NewStub(channel_);
  lease_ = etcdserverpb::Lease::NewStub(channel_);
  cluster_ = etcdserverpb::Cluster::NewStub(channel_);
  maintenance_ = etcdserverpb::Maintenance::NewStub(channel_);
  lock_ = v3lockpb::Lock::NewStub(channel_);
  election_ = v3electionpb::Election::NewStub(channel_);
}

std::unique_ptr<grpc::ClientContext> Connection::CommandContext() const {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() + options_.command_timeout);
  context->set_wait_for_ready(true);
  return context;
}

std::unique_ptr<grpc::ClientContext> Connection::StreamContext() const {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_wait_for_ready(true);
  return context;
}

bool Connection::WaitConnected() const {
  return channel_->WaitForConnected(std::chrono::system_clock::now() + options_.dial_timeout);
}

}  // namespace cairnctl
