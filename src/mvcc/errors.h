// The errors of the MVCC state machine. Messages for the etcd API are etcd's exact strings
// (clients match on them, e.g. clientv3 maps them back to rpctypes errors); the status codes
// are the gRPC codes etcd returns with them. Cairn's own additions say "cairn:".
#pragma once

#include <string>
#include <string_view>

#include "src/base/limits.h"
#include "src/base/status.h"

namespace cairn::mvcc {

// InvalidArgument.
inline constexpr std::string_view kErrEmptyKey = "etcdserver: key is not provided";
inline constexpr std::string_view kErrValueProvided = "etcdserver: value is provided";
inline constexpr std::string_view kErrLeaseProvided = "etcdserver: lease is provided";
inline constexpr std::string_view kErrKeyNotFound = "etcdserver: key not found";
inline constexpr std::string_view kErrTooManyOps = "etcdserver: too many operations in txn request";
inline constexpr std::string_view kErrDuplicateKey =
    "etcdserver: duplicate key given in txn request";
inline constexpr std::string_view kErrRequestTooLarge = "etcdserver: request is too large";
inline constexpr std::string_view kErrInvalidSortOption = "etcdserver: invalid sort option";
// Cairn's own: the embedded API rejects range_end < key (etcd silently returns nothing).
inline constexpr std::string_view kErrReversedRange = "cairn: range_end must be greater than key";
// Cairn's own: etcd bounds nesting only through the request size.
inline constexpr std::string_view kErrTxnTooDeep =
    "cairn: txn nesting is deeper than the limit of 16 levels";
static_assert(limits::kTxnDepthMax == 16, "update kErrTxnTooDeep");

// OutOfRange.
inline constexpr std::string_view kErrCompacted =
    "etcdserver: mvcc: required revision has been compacted";
inline constexpr std::string_view kErrFutureRev =
    "etcdserver: mvcc: required revision is a future revision";

// NotFound: a Put names a lease that does not exist (the lease module uses it too).
inline constexpr std::string_view kErrLeaseNotFound = "etcdserver: requested lease not found";

// ResourceExhausted / DataLoss: an active NOSPACE or CORRUPT alarm refuses the request
// (etcd's capped and corrupt appliers; src/node/alarm_state.h).
inline constexpr std::string_view kErrNoSpace = "etcdserver: mvcc: database space exceeded";
inline constexpr std::string_view kErrCorrupt = "etcdserver: corrupt cluster";

inline Status ErrEmptyKey() { return Status::InvalidArgument(kErrEmptyKey); }
inline Status ErrValueProvided() { return Status::InvalidArgument(kErrValueProvided); }
inline Status ErrLeaseProvided() { return Status::InvalidArgument(kErrLeaseProvided); }
inline Status ErrKeyNotFound() { return Status::InvalidArgument(kErrKeyNotFound); }
inline Status ErrTooManyOps() { return Status::InvalidArgument(kErrTooManyOps); }
inline Status ErrDuplicateKey() { return Status::InvalidArgument(kErrDuplicateKey); }
inline Status ErrRequestTooLarge() { return Status::InvalidArgument(kErrRequestTooLarge); }
inline Status ErrInvalidSortOption() { return Status::InvalidArgument(kErrInvalidSortOption); }
inline Status ErrReversedRange() { return Status::InvalidArgument(kErrReversedRange); }
inline Status ErrTxnTooDeep() { return Status::InvalidArgument(kErrTxnTooDeep); }
inline Status ErrCompacted() { return Status::OutOfRange(kErrCompacted); }
inline Status ErrFutureRev() { return Status::OutOfRange(kErrFutureRev); }
inline Status ErrLeaseNotFound() { return Status::NotFound(kErrLeaseNotFound); }
inline Status ErrNoSpace() { return Status::ResourceExhausted(kErrNoSpace); }
inline Status ErrCorrupt() { return {StatusCode::kDataLoss, kErrCorrupt}; }

}  // namespace cairn::mvcc
