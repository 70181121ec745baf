// Every bound in Cairn lives here, with the reason for its value. Anything a client can send
// or a queue can hold is bounded; tests exercise each bound.
#pragma once

#include <cstddef>
#include <cstdint>

namespace cairn::limits {

// etcd's default --max-request-bytes is 1.5 MiB; clients written against etcd size their
// requests to fit it, so Cairn accepts exactly what etcd accepts by default.
inline constexpr size_t kRequestBytesMaxDefault = 1536 * 1024;

// A key is at most the request limit (etcd has no separate key limit; a smaller one would
// break drop-in compatibility). Keys of this size work but cost: each is stored in full in
// both kv_latest and every kv_history entry.
inline constexpr size_t kKeySizeBytesMax = kRequestBytesMaxDefault;
inline constexpr size_t kValueSizeBytesMax = kRequestBytesMaxDefault;

// etcd's default --max-txn-ops: the number of compares, and separately of success and of
// failure operations, allowed in one Txn (checked at every nesting level).
inline constexpr size_t kTxnOpsMaxDefault = 128;

// Nesting depth of Txn inside Txn. etcd bounds it only through the request size; Cairn
// bounds recursion explicitly so that validation and apply cannot overflow the stack.
inline constexpr size_t kTxnDepthMax = 16;

// A WAL record payload may hold one command of at most the request limit plus framing of
// the command envelope; 8 MiB leaves room for larger internal commands (e.g. lease
// expiry batches) while bounding reader buffers.
inline constexpr size_t kWalRecordBytesMax = 8 * 1024 * 1024;

static_assert(kKeySizeBytesMax <= kWalRecordBytesMax);
static_assert(kValueSizeBytesMax <= kWalRecordBytesMax);

}  // namespace cairn::limits
