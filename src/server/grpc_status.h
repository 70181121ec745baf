// Maps Cairn's Status to grpc::Status. Cairn's codes mirror gRPC's numerically, and messages
// for the etcd API are already etcd's exact strings, so the mapping keeps both unchanged;
// only Cairn's own codes are translated (kIoError → INTERNAL, kCorruption → DATA_LOSS).
//
// Thread-safety: pure function.
#pragma once

#include <grpcpp/support/status.h>

#include "src/base/status.h"

namespace cairn::server {

grpc::Status ToGrpcStatus(const Status& status);

}  // namespace cairn::server
