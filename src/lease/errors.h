// The lease state machine's errors: etcd's exact messages with the gRPC codes etcd returns
// them with (rpctypes.ErrGRPCLease*).
#pragma once

#include <string_view>

#include "src/base/status.h"
#include "src/mvcc/errors.h"

namespace cairn::lease {

// etcd's lease.MaxLeaseTTL: 9,000,000,000 seconds (~285 years).
inline constexpr int64_t kTtlSecondsMax = 9'000'000'000;

inline constexpr std::string_view kErrLeaseExists = "etcdserver: lease already exists";
inline constexpr std::string_view kErrLeaseTtlTooLarge = "etcdserver: too large lease TTL";

// NotFound "etcdserver: requested lease not found" (shared with mvcc's Put check).
inline Status ErrLeaseNotFound() { return mvcc::ErrLeaseNotFound(); }
inline Status ErrLeaseExists() { return Status::FailedPrecondition(kErrLeaseExists); }
inline Status ErrLeaseTtlTooLarge() { return Status::OutOfRange(kErrLeaseTtlTooLarge); }

}  // namespace cairn::lease
