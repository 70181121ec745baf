#include "src/mvcc/validation.h"

#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "src/mvcc/errors.h"
#include "src/mvcc/kv_test_util.h"

namespace cairn::mvcc {
namespace {

using etcdserverpb::TxnRequest;
using testing::DeleteOp;
using testing::Nul;
using testing::PutOp;
using testing::RangeOp;
using testing::TxnOp;

const ValidationOptions kDefaults;

ValidationOptions EtcdServerOptions() {
  ValidationOptions options;
  options.reject_reversed_range = false;
  return options;
}

void ExpectError(const Status& status, StatusCode code, std::string_view message) {
  EXPECT_EQ(status.code(), code) << status.ToString();
  EXPECT_EQ(status.message(), message);
}

TEST(ValidationTest, RangeErrors) {
  etcdserverpb::RangeRequest req;
  ExpectError(ValidateRange(req, kDefaults), StatusCode::kInvalidArgument,
              "etcdserver: key is not provided");
  req.set_key("a");
  EXPECT_TRUE(ValidateRange(req, kDefaults).ok());
  req.set_sort_order(static_cast<etcdserverpb::RangeRequest::SortOrder>(7));
  ExpectError(ValidateRange(req, kDefaults), StatusCode::kInvalidArgument,
              "etcdserver: invalid sort option");
  req.set_sort_order(etcdserverpb::RangeRequest::DESCEND);
  req.set_sort_target(static_cast<etcdserverpb::RangeRequest::SortTarget>(9));
  ExpectError(ValidateRange(req, kDefaults), StatusCode::kInvalidArgument,
              "etcdserver: invalid sort option");
  req.set_sort_target(etcdserverpb::RangeRequest::VALUE);
  req.set_key("b");
  req.set_range_end("a");
  ExpectError(ValidateRange(req, kDefaults), StatusCode::kInvalidArgument,
              "cairn: range_end must be greater than key");
  EXPECT_TRUE(ValidateRange(req, EtcdServerOptions()).ok());
  req.set_range_end(Nul());  // all keys >= key: not reversed
  EXPECT_TRUE(ValidateRange(req, kDefaults).ok());
  req.set_range_end("b");  // empty, not reversed
  EXPECT_TRUE(ValidateRange(req, kDefaults).ok());
  // Range has no size limit (etcd serves it without the log).
  req.set_key(std::string(2 << 20, 'k'));
  req.set_range_end("");
  EXPECT_TRUE(ValidateRange(req, kDefaults).ok());
}

TEST(ValidationTest, PutErrors) {
  etcdserverpb::PutRequest req;
  ExpectError(ValidatePut(req, kDefaults), StatusCode::kInvalidArgument,
              "etcdserver: key is not provided");
  req.set_key("k");
  req.set_ignore_value(true);
  req.set_value("v");
  ExpectError(ValidatePut(req, kDefaults), StatusCode::kInvalidArgument,
              "etcdserver: value is provided");
  req.clear_value();
  EXPECT_TRUE(ValidatePut(req, kDefaults).ok());
  req.set_ignore_lease(true);
  req.set_lease(5);
  ExpectError(ValidatePut(req, kDefaults), StatusCode::kInvalidArgument,
              "etcdserver: lease is provided");
  req.set_lease(0);
  EXPECT_TRUE(ValidatePut(req, kDefaults).ok());

  etcdserverpb::PutRequest big;
  big.set_key("k");
  big.set_value(std::string(limits::kRequestBytesMaxDefault, 'v'));
  ExpectError(ValidatePut(big, kDefaults), StatusCode::kInvalidArgument,
              "etcdserver: request is too large");
  big.set_value(std::string(limits::kRequestBytesMaxDefault - 16, 'v'));
  EXPECT_TRUE(ValidatePut(big, kDefaults).ok());
  ValidationOptions small;
  small.request_bytes_max = 10;
  ExpectError(ValidatePut(big, small), StatusCode::kInvalidArgument,
              "etcdserver: request is too large");
}

TEST(ValidationTest, DeleteRangeErrors) {
  etcdserverpb::DeleteRangeRequest req;
  ExpectError(ValidateDeleteRange(req, kDefaults), StatusCode::kInvalidArgument,
              "etcdserver: key is not provided");
  req.set_key("b");
  req.set_range_end("a");
  ExpectError(ValidateDeleteRange(req, kDefaults), StatusCode::kInvalidArgument,
              "cairn: range_end must be greater than key");
  EXPECT_TRUE(ValidateDeleteRange(req, EtcdServerOptions()).ok());
  req.set_range_end(std::string(limits::kRequestBytesMaxDefault, 'z'));
  ExpectError(ValidateDeleteRange(req, kDefaults), StatusCode::kInvalidArgument,
              "etcdserver: request is too large");
}

TEST(ValidationTest, TxnOpsLimitPerListAndNested) {
  ValidationOptions options;
  options.txn_ops_max = 3;
  TxnRequest txn;
  for (int i = 0; i < 3; ++i) *txn.add_success() = PutOp(storage::testing::Numbered("k", i));
  for (int i = 0; i < 3; ++i) *txn.add_failure() = PutOp(storage::testing::Numbered("k", i));
  for (int i = 0; i < 3; ++i) txn.add_compare()->set_key("c");
  EXPECT_TRUE(ValidateTxn(txn, options).ok());
  *txn.add_failure() = PutOp("k9");
  ExpectError(ValidateTxn(txn, options), StatusCode::kInvalidArgument,
              "etcdserver: too many operations in txn request");

  // A nested txn gets what its parent left: 3 - 2 = 1 here, as in etcd's checkTxnRequest.
  TxnRequest nested;
  *nested.add_success() = PutOp("n1");
  TxnRequest outer;
  *outer.add_success() = TxnOp(nested);
  *outer.add_success() = PutOp("o1");
  EXPECT_TRUE(ValidateTxn(outer, options).ok());
  *outer.mutable_success(0)->mutable_request_txn()->add_success() = PutOp("n2");
  ExpectError(ValidateTxn(outer, options), StatusCode::kInvalidArgument,
              "etcdserver: too many operations in txn request");
}

TEST(ValidationTest, TxnStaticErrorsAtEveryLevel) {
  TxnRequest txn;
  txn.add_compare();  // empty compare key
  ExpectError(ValidateTxn(txn, kDefaults), StatusCode::kInvalidArgument,
              "etcdserver: key is not provided");

  TxnRequest nested;
  *nested.add_failure() = PutOp("");
  TxnRequest outer;
  *outer.add_success() = TxnOp(nested);
  ExpectError(ValidateTxn(outer, kDefaults), StatusCode::kInvalidArgument,
              "etcdserver: key is not provided");

  TxnRequest empty_op;
  empty_op.add_success();  // RequestOp with nothing set: etcd answers "key not found"
  ExpectError(ValidateTxn(empty_op, kDefaults), StatusCode::kInvalidArgument,
              "etcdserver: key not found");

  TxnRequest bad_put;
  *bad_put.add_success() = PutOp("k", "v");
  bad_put.mutable_success(0)->mutable_request_put()->set_ignore_value(true);
  ExpectError(ValidateTxn(bad_put, kDefaults), StatusCode::kInvalidArgument,
              "etcdserver: value is provided");

  TxnRequest reversed;
  *reversed.add_success() = RangeOp("b", "a");
  ExpectError(ValidateTxn(reversed, kDefaults), StatusCode::kInvalidArgument,
              "cairn: range_end must be greater than key");
  EXPECT_TRUE(ValidateTxn(reversed, EtcdServerOptions()).ok());
  TxnRequest reversed_compare;
  auto* compare = reversed_compare.add_compare();
  compare->set_key("b");
  compare->set_range_end("a");
  ExpectError(ValidateTxn(reversed_compare, kDefaults), StatusCode::kInvalidArgument,
              "cairn: range_end must be greater than key");
}

TEST(ValidationTest, TxnDepthLimit) {
  TxnRequest txn;
  *txn.add_success() = PutOp("leaf");
  for (size_t i = 0; i < limits::kTxnDepthMax; ++i) {
    TxnRequest outer;
    *outer.add_success() = TxnOp(txn);
    txn = outer;
  }
  EXPECT_TRUE(ValidateTxn(txn, kDefaults).ok());  // kTxnDepthMax levels of nesting
  TxnRequest deeper;
  *deeper.add_failure() = TxnOp(txn);
  ExpectError(ValidateTxn(deeper, kDefaults), StatusCode::kInvalidArgument,
              "cairn: txn nesting is deeper than the limit of 16 levels");
  EXPECT_FALSE(ValidateTxnStructure(deeper).ok());
}

Status Check(std::initializer_list<etcdserverpb::RequestOp> success) {
  TxnRequest txn;
  for (const auto& op : success) *txn.add_success() = op;
  return ValidateTxn(txn, kDefaults);
}

TxnRequest Nested(std::initializer_list<etcdserverpb::RequestOp> success,
                  std::initializer_list<etcdserverpb::RequestOp> failure = {}) {
  TxnRequest txn;
  for (const auto& op : success) *txn.add_success() = op;
  for (const auto& op : failure) *txn.add_failure() = op;
  return txn;
}

TEST(ValidationTest, DuplicateKeysAtOneLevel) {
  const std::string_view dup = "etcdserver: duplicate key given in txn request";
  ExpectError(Check({PutOp("a"), PutOp("a")}), StatusCode::kInvalidArgument, dup);
  ExpectError(Check({PutOp("b"), DeleteOp("a", "c")}), StatusCode::kInvalidArgument, dup);
  ExpectError(Check({DeleteOp("b"), PutOp("b")}), StatusCode::kInvalidArgument, dup);
  EXPECT_TRUE(Check({PutOp("c"), DeleteOp("a", "c")}).ok());          // end is exclusive
  EXPECT_TRUE(Check({DeleteOp("a", "c"), DeleteOp("b", "d")}).ok());  // deletes may overlap
  EXPECT_TRUE(Check({PutOp("a"), RangeOp("a"), PutOp("b")}).ok());
  // Point delete is [key, key+"\0"): key+"\0" itself is outside.
  EXPECT_TRUE(Check({DeleteOp("a"), PutOp(std::string("a") + Nul())}).ok());
  // etcd quirk: a delete with range_end "\0" is the interval [key, "\0"), empty for keys
  // above "\0", so it never conflicts with a put.
  EXPECT_TRUE(Check({DeleteOp("a", Nul()), PutOp("b")}).ok());
  EXPECT_TRUE(Check({DeleteOp(Nul(), Nul()), PutOp("b")}).ok());
  // Success and failure are checked separately.
  TxnRequest both = Nested({PutOp("a")}, {PutOp("a")});
  EXPECT_TRUE(ValidateTxn(both, kDefaults).ok());
}

TEST(ValidationTest, DuplicateKeysAcrossNesting) {
  const std::string_view dup = "etcdserver: duplicate key given in txn request";
  // Nested success put vs outer put / outer delete.
  ExpectError(Check({TxnOp(Nested({PutOp("a")})), PutOp("a")}), StatusCode::kInvalidArgument, dup);
  ExpectError(Check({DeleteOp("a", "z"), TxnOp(Nested({PutOp("b")}))}),
              StatusCode::kInvalidArgument, dup);
  // A nested failure put may repeat its own success put (mutually exclusive)...
  EXPECT_TRUE(Check({TxnOp(Nested({PutOp("a")}, {PutOp("a")}))}).ok());
  // ...but not another nested txn's put.
  ExpectError(Check({TxnOp(Nested({PutOp("a")})), TxnOp(Nested({}, {PutOp("a")}))}),
              StatusCode::kInvalidArgument, dup);
  ExpectError(Check({TxnOp(Nested({PutOp("a")})), TxnOp(Nested({PutOp("a")}))}),
              StatusCode::kInvalidArgument, dup);
  // Nested deletes (from either branch) merge into this level's deletes.
  ExpectError(Check({TxnOp(Nested({}, {DeleteOp("a", "c")})), PutOp("b")}),
              StatusCode::kInvalidArgument, dup);
  // etcd's order asymmetry: a nested txn's deletes merge after its own puts are checked, so
  // they constrain the puts of LATER sibling txns but not of earlier ones.
  ExpectError(Check({TxnOp(Nested({DeleteOp("a", "c")})), TxnOp(Nested({PutOp("b")}))}),
              StatusCode::kInvalidArgument, dup);
  EXPECT_TRUE(Check({TxnOp(Nested({PutOp("b")})), TxnOp(Nested({DeleteOp("a", "c")}))}).ok());
  // Two levels deep.
  TxnRequest inner = Nested({PutOp("x")});
  ExpectError(Check({TxnOp(Nested({TxnOp(inner)})), PutOp("x")}), StatusCode::kInvalidArgument,
              dup);
  // Nested delete vs nested put in the same nested txn.
  ExpectError(Check({TxnOp(Nested({DeleteOp("a"), PutOp("a")}))}), StatusCode::kInvalidArgument,
              dup);
}

TEST(ValidationTest, TxnSizeOnlyForWriteTxns) {
  TxnRequest read_only;
  *read_only.add_success() = RangeOp(std::string(limits::kRequestBytesMaxDefault, 'k'));
  EXPECT_TRUE(IsTxnReadOnly(read_only));
  EXPECT_TRUE(ValidateTxn(read_only, kDefaults).ok());
  TxnRequest write = read_only;
  *write.add_failure() = PutOp("k");
  EXPECT_FALSE(IsTxnReadOnly(write));
  ExpectError(ValidateTxn(write, kDefaults), StatusCode::kInvalidArgument,
              "etcdserver: request is too large");
  // A nested txn makes a txn a write txn for etcd, whatever it holds.
  TxnRequest nested_reads;
  *nested_reads.add_success() = TxnOp(Nested({RangeOp("a")}));
  EXPECT_FALSE(IsTxnReadOnly(nested_reads));
}

TEST(ValidationTest, CheckOrderMatchesEtcd) {
  // Static checks of every op come before the duplicate check.
  TxnRequest txn;
  *txn.add_success() = PutOp("a");
  *txn.add_success() = PutOp("a");
  *txn.add_failure() = PutOp("");
  ExpectError(ValidateTxn(txn, kDefaults), StatusCode::kInvalidArgument,
              "etcdserver: key is not provided");
}

// etcd's checkIntervals translated literally, with a plain list of intervals (etcd's affine
// comparison: an empty end is +infinity; point deletes are [key, key + "\0")).
struct NaiveIntervals {
  std::set<std::string> puts;
  std::vector<std::pair<std::string, std::string>> deletes;
  bool Hit(const std::string& key) const {
    for (const auto& [begin, end] : deletes) {
      if (begin <= key && (end.empty() || key < end)) return true;
    }
    return false;
  }
};

bool NaiveCheck(const google::protobuf::RepeatedPtrField<etcdserverpb::RequestOp>& ops,
                NaiveIntervals* out) {
  for (const auto& op : ops) {
    if (!op.has_request_delete_range()) continue;
    const auto& del = op.request_delete_range();
    out->deletes.emplace_back(del.key(),
                              del.range_end().empty() ? del.key() + Nul() : del.range_end());
  }
  for (const auto& op : ops) {
    if (!op.has_request_txn()) continue;
    NaiveIntervals then_branch;
    NaiveIntervals else_branch;
    if (!NaiveCheck(op.request_txn().success(), &then_branch)) return false;
    if (!NaiveCheck(op.request_txn().failure(), &else_branch)) return false;
    for (const auto& key : then_branch.puts) {
      if (out->puts.count(key) > 0 || out->Hit(key)) return false;
      out->puts.insert(key);
    }
    for (const auto& key : else_branch.puts) {
      if (out->puts.count(key) > 0 && then_branch.puts.count(key) == 0) return false;
      if (out->Hit(key)) return false;
      out->puts.insert(key);
    }
    for (const auto& d : then_branch.deletes) out->deletes.push_back(d);
    for (const auto& d : else_branch.deletes) out->deletes.push_back(d);
  }
  for (const auto& op : ops) {
    if (!op.has_request_put()) continue;
    const std::string& key = op.request_put().key();
    if (out->puts.count(key) > 0 || out->Hit(key)) return false;
    out->puts.insert(key);
  }
  return true;
}

TxnRequest GenWrites(int depth) {
  static const std::vector<std::string> keys = {"a", std::string("a\0", 2), "ab", "b", "c"};
  static const std::vector<std::string> ends = {"", "", std::string(1, '\0'), "b", "c", "d", "a"};
  TxnRequest txn;
  for (auto* ops : {txn.mutable_success(), txn.mutable_failure()}) {
    int n = *rc::gen::inRange(0, 4);
    for (int i = 0; i < n; ++i) {
      int kind = *rc::gen::inRange(0, depth < 3 ? 3 : 2);
      if (kind == 0) {
        *ops->Add() = PutOp(*rc::gen::elementOf(keys));
      } else if (kind == 1) {
        *ops->Add() = DeleteOp(*rc::gen::elementOf(keys), *rc::gen::elementOf(ends));
      } else {
        *ops->Add() = TxnOp(GenWrites(depth + 1));
      }
    }
  }
  return txn;
}

RC_GTEST_PROP(ValidationPropertyTest, DuplicateCheckMatchesEtcdsAlgorithm, ()) {
  TxnRequest txn = GenWrites(0);
  NaiveIntervals success;
  NaiveIntervals failure;
  bool naive_ok = NaiveCheck(txn.success(), &success) && NaiveCheck(txn.failure(), &failure);
  Status status = ValidateTxn(txn, EtcdServerOptions());
  RC_TAG(naive_ok);
  if (naive_ok) {
    RC_ASSERT(status.ok());
  } else {
    RC_ASSERT(status.message() == kErrDuplicateKey);
  }
}

}  // namespace
}  // namespace cairn::mvcc
