#include "src/server/grpc_status.h"

#include <string>

namespace cairn::server {

namespace {

// The numeric identity Cairn's header promises; checked here, where it is relied on.
static_assert(static_cast<int>(StatusCode::kInvalidArgument) == grpc::INVALID_ARGUMENT);
static_assert(static_cast<int>(StatusCode::kOutOfRange) == grpc::OUT_OF_RANGE);
static_assert(static_cast<int>(StatusCode::kUnavailable) == grpc::UNAVAILABLE);
static_assert(static_cast<int>(StatusCode::kDataLoss) == grpc::DATA_LOSS);
static_assert(static_cast<int>(StatusCode::kUnauthenticated) == grpc::UNAUTHENTICATED);

grpc::StatusCode ToGrpcCode(StatusCode code) {
  switch (code) {
    case StatusCode::kIoError:
      return grpc::INTERNAL;
    case StatusCode::kCorruption:
      return grpc::DATA_LOSS;
    default:
      break;
  }
  int value = static_cast<int>(code);
  if (value > static_cast<int>(StatusCode::kUnauthenticated)) return grpc::UNKNOWN;
  return static_cast<grpc::StatusCode>(value);
}

}  // namespace

grpc::Status ToGrpcStatus(const Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(ToGrpcCode(status.code()), std::string(status.message()));
}

}  // namespace cairn::server
