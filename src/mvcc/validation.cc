#include "src/mvcc/validation.h"

#include <algorithm>
#include <iterator>
#include <map>
#include <set>
#include <string>
#include <utility>

#include "src/mvcc/errors.h"

namespace cairn::mvcc {
namespace {

using etcdserverpb::RequestOp;
using etcdserverpb::TxnRequest;
using RequestOps = google::protobuf::RepeatedPtrField<RequestOp>;

// What the checks of one txn level need besides the request.
struct CheckContext {
  bool check_reversed = false;
};

bool IsReversed(const std::string& key, const std::string& range_end) {
  if (range_end.empty() || range_end == std::string_view("\0", 1)) return false;
  return range_end < key;
}

Status CheckRange(const etcdserverpb::RangeRequest& req, const CheckContext& context) {
  if (req.key().empty()) return ErrEmptyKey();
  if (!etcdserverpb::RangeRequest_SortOrder_IsValid(req.sort_order())) {
    return ErrInvalidSortOption();
  }
  if (!etcdserverpb::RangeRequest_SortTarget_IsValid(req.sort_target())) {
    return ErrInvalidSortOption();
  }
  if (context.check_reversed && IsReversed(req.key(), req.range_end())) {
    return ErrReversedRange();
  }
  return Status::Ok();
}

Status CheckPut(const etcdserverpb::PutRequest& req) {
  if (req.key().empty()) return ErrEmptyKey();
  if (req.ignore_value() && !req.value().empty()) return ErrValueProvided();
  if (req.ignore_lease() && req.lease() != 0) return ErrLeaseProvided();
  return Status::Ok();
}

Status CheckDelete(const etcdserverpb::DeleteRangeRequest& req, const CheckContext& context) {
  if (req.key().empty()) return ErrEmptyKey();
  if (context.check_reversed && IsReversed(req.key(), req.range_end())) {
    return ErrReversedRange();
  }
  return Status::Ok();
}

Status CheckTxn(const TxnRequest& req, int64_t ops_max, size_t depth, const CheckContext& context);

// etcd's checkRequestOp. An op with nothing set is etcd's ErrGRPCKeyNotFound.
Status CheckRequestOp(const RequestOp& op, int64_t ops_max, size_t depth,
                      const CheckContext& context) {
  switch (op.request_case()) {
    case RequestOp::kRequestRange:
      return CheckRange(op.request_range(), context);
    case RequestOp::kRequestPut:
      return CheckPut(op.request_put());
    case RequestOp::kRequestDeleteRange:
      return CheckDelete(op.request_delete_range(), context);
    case RequestOp::kRequestTxn:
      if (depth + 1 > limits::kTxnDepthMax) return ErrTxnTooDeep();
      return CheckTxn(op.request_txn(), ops_max, depth + 1, context);
    case RequestOp::REQUEST_NOT_SET:
      break;
  }
  return ErrKeyNotFound();
}

// etcd's checkTxnRequest: a nested txn may use what its parent left of the ops budget.
Status CheckTxn(const TxnRequest& req, int64_t ops_max, size_t depth, const CheckContext& context) {
  int64_t ops = std::max({req.compare_size(), req.success_size(), req.failure_size()});
  if (ops > ops_max) return ErrTooManyOps();
  for (const auto& compare : req.compare()) {
    if (compare.key().empty()) return ErrEmptyKey();
    if (context.check_reversed && IsReversed(compare.key(), compare.range_end())) {
      return ErrReversedRange();
    }
  }
  for (const auto& op : req.success()) {
    CAIRN_RETURN_IF_ERROR(CheckRequestOp(op, ops_max - ops, depth, context));
  }
  for (const auto& op : req.failure()) {
    CAIRN_RETURN_IF_ERROR(CheckRequestOp(op, ops_max - ops, depth, context));
  }
  return Status::Ok();
}

// Delete intervals as etcd's checkIntervals builds them: [key, range_end), or the point
// [key, key + "\0") for an empty range_end. A range_end of "\0" gives [key, "\0"), which
// contains no non-empty key: etcd does not treat "delete everything >= key" as covering
// later puts (a known etcd quirk, reproduced because clients depend on what etcd accepts).
// etcd keeps them in an interval tree; only "does any interval contain this key" is ever
// asked, so the union of the intervals, kept merged, answers the same in O(log n).
class IntervalUnion {
 public:
  void Insert(std::string begin, std::string end) {
    if (end <= begin) return;  // empty: contains no key
    auto it = merged_.upper_bound(begin);
    if (it != merged_.begin()) {
      auto previous = std::prev(it);
      if (previous->second >= begin) {
        begin = previous->first;
        if (previous->second > end) end = previous->second;
        merged_.erase(previous);
      }
    }
    while (it != merged_.end() && it->first <= end) {
      if (it->second > end) end = it->second;
      it = merged_.erase(it);
    }
    merged_.emplace(std::move(begin), std::move(end));
  }
  void InsertAll(const IntervalUnion& other) {
    for (const auto& [begin, end] : other.merged_) Insert(begin, end);
  }
  bool Contains(const std::string& key) const {
    auto it = merged_.upper_bound(key);
    if (it == merged_.begin()) return false;
    return key < std::prev(it)->second;
  }

 private:
  std::map<std::string, std::string> merged_;  // begin -> end, disjoint, not touching
};

struct PutsAndDeletes {
  std::set<std::string> puts;
  IntervalUnion deletes;
};

// etcd's checkIntervals (api/v3rpc/key.go), step by step.
Status CheckIntervals(const RequestOps& ops, PutsAndDeletes* out) {
  for (const auto& op : ops) {
    if (op.request_case() != RequestOp::kRequestDeleteRange) continue;
    const auto& del = op.request_delete_range();
    if (!del.range_end().empty()) {
      out->deletes.Insert(del.key(), del.range_end());
    } else {
      out->deletes.Insert(del.key(), del.key() + std::string(1, '\0'));
    }
  }
  for (const auto& op : ops) {
    if (op.request_case() != RequestOp::kRequestTxn) continue;
    PutsAndDeletes then_branch;
    PutsAndDeletes else_branch;
    CAIRN_RETURN_IF_ERROR(CheckIntervals(op.request_txn().success(), &then_branch));
    CAIRN_RETURN_IF_ERROR(CheckIntervals(op.request_txn().failure(), &else_branch));
    for (const auto& key : then_branch.puts) {
      if (out->puts.count(key) > 0 || out->deletes.Contains(key)) return ErrDuplicateKey();
      out->puts.insert(key);
    }
    for (const auto& key : else_branch.puts) {
      // The same nested txn's success and failure are mutually exclusive.
      if (out->puts.count(key) > 0 && then_branch.puts.count(key) == 0) {
        return ErrDuplicateKey();
      }
      if (out->deletes.Contains(key)) return ErrDuplicateKey();
      out->puts.insert(key);
    }
    out->deletes.InsertAll(then_branch.deletes);
    out->deletes.InsertAll(else_branch.deletes);
  }
  for (const auto& op : ops) {
    if (op.request_case() != RequestOp::kRequestPut) continue;
    const std::string& key = op.request_put().key();
    if (out->puts.count(key) > 0 || out->deletes.Contains(key)) return ErrDuplicateKey();
    out->puts.insert(key);
  }
  return Status::Ok();
}

Status CheckSize(const google::protobuf::Message& req, const ValidationOptions& options) {
  if (req.ByteSizeLong() > options.request_bytes_max) return ErrRequestTooLarge();
  return Status::Ok();
}

Status CheckTxnAll(const TxnRequest& req, int64_t ops_max, const CheckContext& context) {
  CAIRN_RETURN_IF_ERROR(CheckTxn(req, ops_max, 0, context));
  // After the per-op checks, as etcd does ("to avoid quadratic blowup").
  PutsAndDeletes success;
  CAIRN_RETURN_IF_ERROR(CheckIntervals(req.success(), &success));
  PutsAndDeletes failure;
  return CheckIntervals(req.failure(), &failure);
}

}  // namespace

Status ValidateRange(const etcdserverpb::RangeRequest& req, const ValidationOptions& options) {
  return CheckRange(req, CheckContext{options.reject_reversed_range});
}

Status ValidatePut(const etcdserverpb::PutRequest& req, const ValidationOptions& options) {
  CAIRN_RETURN_IF_ERROR(CheckPut(req));
  return CheckSize(req, options);
}

Status ValidateDeleteRange(const etcdserverpb::DeleteRangeRequest& req,
                           const ValidationOptions& options) {
  CAIRN_RETURN_IF_ERROR(CheckDelete(req, CheckContext{options.reject_reversed_range}));
  return CheckSize(req, options);
}

Status ValidateTxn(const TxnRequest& req, const ValidationOptions& options) {
  int64_t ops_max = static_cast<int64_t>(std::min<size_t>(options.txn_ops_max, INT64_MAX));
  CAIRN_RETURN_IF_ERROR(CheckTxnAll(req, ops_max, CheckContext{options.reject_reversed_range}));
  if (IsTxnReadOnly(req)) return Status::Ok();
  return CheckSize(req, options);
}

Status ValidateTxnStructure(const TxnRequest& req) {
  return CheckTxnAll(req, INT64_MAX, CheckContext{false});
}

bool IsTxnReadOnly(const TxnRequest& req) {
  auto is_range = [](const RequestOp& op) { return op.request_case() == RequestOp::kRequestRange; };
  return std::all_of(req.success().begin(), req.success().end(), is_range) &&
         std::all_of(req.failure().begin(), req.failure().end(), is_range);
}

}  // namespace cairn::mvcc
