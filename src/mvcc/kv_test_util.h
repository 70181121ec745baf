// Test helpers for src/mvcc: a KvState over either engine, with one-command shorthands.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "src/base/check.h"
#include "src/mvcc/compaction_filter.h"
#include "src/mvcc/kv_state.h"
#include "src/storage/engine_test_util.h"

namespace cairn::mvcc::testing {

using storage::testing::EngineKind;

inline std::string Z(std::string_view s) { return std::string(s); }
// "\0" as a std::string (a literal would stop at the NUL).
inline std::string Nul() { return std::string(1, '\0'); }

// A KvState and its engine; each shorthand applies one command in its own batch.
class Store {
 public:
  explicit Store(EngineKind kind, const KvStateOptions& options = {})
      : filter_(std::make_shared<HistoryCompactionFilterFactory>()),
        holder_(kind, filter_),
        options_(options) {
    Open();
  }

  void Open() {
    kv_.reset();
    auto opened = KvState::Open(holder_.engine(), filter_, options_);
    CAIRN_CHECK_OK(opened.status());
    kv_ = std::move(opened).value();
  }
  // Flush, close the engine (RocksDB) and reopen engine and KvState.
  void Reopen() {
    kv_.reset();
    CAIRN_CHECK_OK(holder_.engine()->Flush());
    holder_.Reopen();
    Open();
  }

  KvState* kv() { return kv_.get(); }
  storage::Engine* engine() { return holder_.engine(); }
  HistoryCompactionFilterFactory* filter() { return filter_.get(); }

  // Runs `apply` on a fresh batch and writes it when it succeeds.
  template <typename F>
  Status Apply(F&& apply) {
    auto batch = engine()->NewWriteBatch();
    Status status = apply(batch.get());
    if (!status.ok()) {
      EXPECT_EQ(batch->Count(), 0u) << "a failed command left writes in the batch";
      kv_->OnBatchAborted();
      return status;
    }
    kv_->FinishBatch(batch.get());
    CAIRN_CHECK_OK(engine()->Write(batch.get()));
    kv_->OnBatchWritten();
    return status;
  }

  Status Put(const etcdserverpb::PutRequest& req, etcdserverpb::PutResponse* resp = nullptr) {
    etcdserverpb::PutResponse ignored;
    return Apply([&](storage::WriteBatch* b) {
      return kv_->ApplyPut(b, req, resp != nullptr ? resp : &ignored);
    });
  }
  etcdserverpb::PutResponse Put(std::string_view key, std::string_view value, int64_t lease = 0) {
    etcdserverpb::PutRequest req;
    req.set_key(Z(key));
    req.set_value(Z(value));
    req.set_lease(lease);
    etcdserverpb::PutResponse resp;
    CAIRN_CHECK_OK(Put(req, &resp));
    return resp;
  }
  etcdserverpb::DeleteRangeResponse Delete(std::string_view key, std::string_view range_end = {},
                                           bool prev_kv = false) {
    etcdserverpb::DeleteRangeRequest req;
    req.set_key(Z(key));
    req.set_range_end(Z(range_end));
    req.set_prev_kv(prev_kv);
    etcdserverpb::DeleteRangeResponse resp;
    CAIRN_CHECK_OK(
        Apply([&](storage::WriteBatch* b) { return kv_->ApplyDeleteRange(b, req, &resp); }));
    return resp;
  }
  Status Txn(const etcdserverpb::TxnRequest& req, etcdserverpb::TxnResponse* resp) {
    return Apply([&](storage::WriteBatch* b) { return kv_->ApplyTxn(b, req, resp); });
  }
  Status Compact(int64_t revision) {
    etcdserverpb::CompactionRequest req;
    req.set_revision(revision);
    etcdserverpb::CompactionResponse resp;
    return Apply([&](storage::WriteBatch* b) { return kv_->ApplyCompaction(b, req, &resp); });
  }
  Status Range(const etcdserverpb::RangeRequest& req, etcdserverpb::RangeResponse* resp) {
    return kv_->Range(req, resp);
  }
  etcdserverpb::RangeResponse Get(std::string_view key, std::string_view range_end = {},
                                  int64_t revision = 0) {
    etcdserverpb::RangeRequest req;
    req.set_key(Z(key));
    req.set_range_end(Z(range_end));
    req.set_revision(revision);
    etcdserverpb::RangeResponse resp;
    CAIRN_CHECK_OK(kv_->Range(req, &resp));
    return resp;
  }

 private:
  std::shared_ptr<HistoryCompactionFilterFactory> filter_;
  storage::testing::EngineHolder holder_;
  const KvStateOptions options_;
  std::unique_ptr<KvState> kv_;
};

inline etcdserverpb::RequestOp PutOp(std::string_view key, std::string_view value = "v") {
  etcdserverpb::RequestOp op;
  op.mutable_request_put()->set_key(Z(key));
  op.mutable_request_put()->set_value(Z(value));
  return op;
}
inline etcdserverpb::RequestOp DeleteOp(std::string_view key, std::string_view range_end = {}) {
  etcdserverpb::RequestOp op;
  op.mutable_request_delete_range()->set_key(Z(key));
  op.mutable_request_delete_range()->set_range_end(Z(range_end));
  return op;
}
inline etcdserverpb::RequestOp RangeOp(std::string_view key, std::string_view range_end = {},
                                       int64_t revision = 0) {
  etcdserverpb::RequestOp op;
  op.mutable_request_range()->set_key(Z(key));
  op.mutable_request_range()->set_range_end(Z(range_end));
  op.mutable_request_range()->set_revision(revision);
  return op;
}
inline etcdserverpb::RequestOp TxnOp(const etcdserverpb::TxnRequest& txn) {
  etcdserverpb::RequestOp op;
  *op.mutable_request_txn() = txn;
  return op;
}

// The keys of a response, in order.
inline std::vector<std::string> Keys(const etcdserverpb::RangeResponse& resp) {
  std::vector<std::string> keys;
  for (const auto& kv : resp.kvs()) keys.push_back(kv.key());
  return keys;
}

// Number of raw entries in a family (no MVCC interpretation).
inline size_t RawCount(storage::Engine* engine, storage::Family family) {
  return storage::testing::ScanAll(engine, family).size();
}

}  // namespace cairn::mvcc::testing
