// Stateless checks of KV requests, done before a request is proposed to the log. They
// reproduce etcd's gRPC-layer checks (api/v3rpc/key.go) and its request-size check, with
// etcd's exact codes and messages (src/mvcc/errors.h), in etcd's order.
//
// Apply re-runs the option-independent part (ValidateTxnStructure) so that a command that
// reached the log without validation cannot break the state machine's invariants.
//
// Thread-safety: pure functions.
#pragma once

#include <cstddef>

#include "etcdserverpb/rpc.pb.h"
#include "src/base/limits.h"
#include "src/base/status.h"

namespace cairn::mvcc {

struct ValidationOptions {
  // Max of the number of compares, of success ops and of failure ops of one txn (etcd's
  // --max-txn-ops). As in etcd, a nested txn gets what its parent left: txn_ops_max minus
  // the parent's own count. Default: 128.
  size_t txn_ops_max = limits::kTxnOpsMaxDefault;
  // Max serialized request size (etcd's --max-request-bytes). Not applied to Range and to
  // read-only Txn, which etcd serves without proposing them. Default: 1.5 MiB.
  size_t request_bytes_max = limits::kRequestBytesMaxDefault;
  // Embedded API: range_end < key (range_end non-empty and not "\0") is an error. The etcd
  // server sets false: etcd returns nothing for such ranges. Applies to Range, DeleteRange
  // and, inside a Txn, to ranges, deletes and compares. Default: true.
  bool reject_reversed_range = true;
};

Status ValidateRange(const etcdserverpb::RangeRequest& req, const ValidationOptions& options);
Status ValidatePut(const etcdserverpb::PutRequest& req, const ValidationOptions& options);
Status ValidateDeleteRange(const etcdserverpb::DeleteRangeRequest& req,
                           const ValidationOptions& options);
// Static checks of every op at every level, the ops count, the nesting depth
// (limits::kTxnDepthMax), etcd's duplicate-key rule (checkIntervals), then the size.
Status ValidateTxn(const etcdserverpb::TxnRequest& req, const ValidationOptions& options);

// The part of ValidateTxn that does not depend on options: empty keys, empty ops, invalid
// sort options, nesting depth and duplicate keys. Deterministic: apply uses it.
Status ValidateTxnStructure(const etcdserverpb::TxnRequest& req);

// etcd's isTxnReadonly: true when every success and failure op is a Range (a nested Txn
// makes the txn a write txn, whatever it contains). etcd serves such a txn without the log.
bool IsTxnReadOnly(const etcdserverpb::TxnRequest& req);

}  // namespace cairn::mvcc
