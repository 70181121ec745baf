#include "src/lease/lease_state.h"

#include <gtest/gtest.h>

#include "src/lease/errors.h"
#include "src/mvcc/kv_test_util.h"

namespace cairn::lease {
namespace {

using mvcc::testing::EngineKind;

class LeaseStateTest : public ::testing::TestWithParam<EngineKind> {
 protected:
  LeaseStateTest() : store_(GetParam()) { Attach(); }

  void Attach() {
    leases_ = std::make_unique<LeaseState>(store_.engine(), store_.kv());
    store_.kv()->set_lease_index(leases_.get());
  }
  void Reopen() {
    store_.Reopen();
    Attach();
  }

  Status Grant(int64_t id, int64_t ttl, etcdserverpb::LeaseGrantResponse* resp = nullptr) {
    etcdserverpb::LeaseGrantRequest req;
    req.set_id(id);
    req.set_ttl(ttl);
    etcdserverpb::LeaseGrantResponse ignored;
    return store_.Apply([&](storage::WriteBatch* b) {
      return leases_->ApplyGrant(b, req, resp ? resp : &ignored);
    });
  }
  Status Revoke(int64_t id, etcdserverpb::LeaseRevokeResponse* resp = nullptr) {
    etcdserverpb::LeaseRevokeRequest req;
    req.set_id(id);
    etcdserverpb::LeaseRevokeResponse ignored;
    return store_.Apply([&](storage::WriteBatch* b) {
      return leases_->ApplyRevoke(b, req, resp ? resp : &ignored);
    });
  }
  Status PutWithLease(std::string_view key, int64_t lease) {
    etcdserverpb::PutRequest req;
    req.set_key(std::string(key));
    req.set_value("v");
    req.set_lease(lease);
    return store_.Put(req);
  }
  std::vector<std::string> Keys(int64_t id) {
    auto keys = leases_->Keys(id);
    CAIRN_CHECK_OK(keys.status());
    return *keys;
  }

  mvcc::testing::Store store_;
  std::unique_ptr<LeaseState> leases_;
};

TEST_P(LeaseStateTest, GrantThenDuplicateIsRejected) {
  etcdserverpb::LeaseGrantResponse resp;
  ASSERT_TRUE(Grant(7, 10, &resp).ok());
  EXPECT_EQ(resp.id(), 7);
  EXPECT_EQ(resp.ttl(), 10);
  Status again = Grant(7, 20);
  EXPECT_EQ(again.code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(again.message(), kErrLeaseExists);
  auto info = leases_->Get(7);
  ASSERT_TRUE(info.ok());
  ASSERT_TRUE(info->has_value());
  EXPECT_EQ((*info)->ttl_seconds, 10);
  EXPECT_EQ((*info)->remaining_ttl_seconds, 0);
}

TEST_P(LeaseStateTest, GrantRejectsIdZeroAndHugeTtl) {
  EXPECT_EQ(Grant(0, 10).code(), StatusCode::kNotFound);
  Status huge = Grant(1, kTtlSecondsMax + 1);
  EXPECT_EQ(huge.code(), StatusCode::kOutOfRange);
  EXPECT_EQ(huge.message(), kErrLeaseTtlTooLarge);
  EXPECT_TRUE(Grant(1, kTtlSecondsMax).ok());
}

TEST_P(LeaseStateTest, PutWithMissingLeaseIsNotFoundAndChangesNothing) {
  const int64_t before = store_.kv()->CurrentRevision();
  Status status = PutWithLease("k", 99);
  EXPECT_EQ(status.code(), StatusCode::kNotFound);
  EXPECT_EQ(status.message(), mvcc::kErrLeaseNotFound);
  EXPECT_EQ(store_.kv()->CurrentRevision(), before);
  EXPECT_EQ(store_.Get("k").count(), 0);
}

TEST_P(LeaseStateTest, AttachMoveAndDetach) {
  ASSERT_TRUE(Grant(1, 10).ok());
  ASSERT_TRUE(Grant(2, 10).ok());
  ASSERT_TRUE(PutWithLease("a", 1).ok());
  ASSERT_TRUE(PutWithLease("b", 1).ok());
  EXPECT_EQ(Keys(1), (std::vector<std::string>{"a", "b"}));
  ASSERT_TRUE(PutWithLease("a", 2).ok());  // moves a from lease 1 to lease 2
  EXPECT_EQ(Keys(1), (std::vector<std::string>{"b"}));
  EXPECT_EQ(Keys(2), (std::vector<std::string>{"a"}));
  ASSERT_TRUE(PutWithLease("b", 0).ok());  // no lease any more
  EXPECT_TRUE(Keys(1).empty());
  // ignore_lease keeps the attachment.
  etcdserverpb::PutRequest keep;
  keep.set_key("a");
  keep.set_value("v2");
  keep.set_ignore_lease(true);
  ASSERT_TRUE(store_.Put(keep).ok());
  EXPECT_EQ(Keys(2), (std::vector<std::string>{"a"}));
  store_.Delete("a");
  EXPECT_TRUE(Keys(2).empty());
}

TEST_P(LeaseStateTest, RevokeDeletesAttachedKeysAtOneRevision) {
  ASSERT_TRUE(Grant(5, 10).ok());
  ASSERT_TRUE(PutWithLease("x", 5).ok());
  ASSERT_TRUE(PutWithLease("y", 5).ok());
  ASSERT_TRUE(PutWithLease("z", 5).ok());
  store_.Put("other", "v");
  const int64_t before = store_.kv()->CurrentRevision();
  etcdserverpb::LeaseRevokeResponse resp;
  ASSERT_TRUE(Revoke(5, &resp).ok());
  EXPECT_EQ(store_.kv()->CurrentRevision(), before + 1);
  EXPECT_EQ(resp.header().revision(), before + 1);
  EXPECT_EQ(store_.Get("x", "zz").count(), 0);  // x, y and z are gone
  EXPECT_EQ(store_.Get("other").count(), 1);
  auto info = leases_->Get(5);
  ASSERT_TRUE(info.ok());
  EXPECT_FALSE(info->has_value());
  EXPECT_TRUE(Keys(5).empty());
  // The three deletions share the revision in history: reading just before sees them all.
  etcdserverpb::RangeRequest at;
  at.set_key("x");
  at.set_range_end("zz");
  at.set_revision(before);
  etcdserverpb::RangeResponse old;
  ASSERT_TRUE(store_.Range(at, &old).ok());
  EXPECT_EQ(old.count(), 3);
  Status again = Revoke(5);
  EXPECT_EQ(again.code(), StatusCode::kNotFound);
  EXPECT_EQ(again.message(), mvcc::kErrLeaseNotFound);
  // Putting with the revoked lease now fails.
  EXPECT_EQ(PutWithLease("x", 5).code(), StatusCode::kNotFound);
}

TEST_P(LeaseStateTest, RevokeWithoutKeysKeepsTheRevision) {
  ASSERT_TRUE(Grant(3, 10).ok());
  const int64_t before = store_.kv()->CurrentRevision();
  ASSERT_TRUE(Revoke(3).ok());
  EXPECT_EQ(store_.kv()->CurrentRevision(), before);
}

TEST_P(LeaseStateTest, TxnPutWithMissingLeaseRollsBack) {
  etcdserverpb::TxnRequest txn;
  auto* put = txn.add_success()->mutable_request_put();
  put->set_key("t1");
  put->set_value("v");
  auto* bad = txn.add_success()->mutable_request_put();
  bad->set_key("t2");
  bad->set_value("v");
  bad->set_lease(42);
  etcdserverpb::TxnResponse resp;
  EXPECT_EQ(store_.Txn(txn, &resp).code(), StatusCode::kNotFound);
  EXPECT_EQ(store_.Get("t1").count(), 0);
}

TEST_P(LeaseStateTest, CheckpointSurvivesReopen) {
  ASSERT_TRUE(Grant(9, 30).ok());
  ASSERT_TRUE(Grant(10, 30).ok());
  ASSERT_TRUE(PutWithLease("k", 9).ok());
  etcdserverpb::LeaseCheckpointRequest req;
  auto* c = req.add_checkpoints();
  c->set_id(9);
  c->set_remaining_ttl(17);
  auto* missing = req.add_checkpoints();
  missing->set_id(1234);  // skipped
  missing->set_remaining_ttl(5);
  etcdserverpb::LeaseCheckpointResponse resp;
  ASSERT_TRUE(
      store_.Apply([&](storage::WriteBatch* b) { return leases_->ApplyCheckpoint(b, req, &resp); })
          .ok());
  Reopen();
  auto list = leases_->List();
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].id, 9);
  EXPECT_EQ((*list)[0].ttl_seconds, 30);
  EXPECT_EQ((*list)[0].remaining_ttl_seconds, 17);
  EXPECT_EQ((*list)[1].id, 10);
  EXPECT_EQ((*list)[1].remaining_ttl_seconds, 0);
  EXPECT_EQ(Keys(9), (std::vector<std::string>{"k"}));
  ASSERT_TRUE(Revoke(9).ok());
  EXPECT_EQ(store_.Get("k").count(), 0);
}

TEST(LeaseFormatTest, RecordRoundTripAndCorruption) {
  format::LeaseRecord record{30, 12};
  std::string value = format::EncodeRecord(record);
  format::LeaseRecord decoded;
  ASSERT_TRUE(format::DecodeRecord(value, &decoded));
  EXPECT_EQ(decoded.ttl_seconds, 30);
  EXPECT_EQ(decoded.remaining_ttl_seconds, 12);
  value[3] ^= 1;
  EXPECT_FALSE(format::DecodeRecord(value, &decoded));
  EXPECT_FALSE(format::DecodeRecord("short", &decoded));
  int64_t id = 0;
  ASSERT_TRUE(format::DecodeLeaseKey(format::LeaseKey(-5), &id));
  EXPECT_EQ(id, -5);
}

INSTANTIATE_TEST_SUITE_P(Engines, LeaseStateTest,
                         ::testing::Values(EngineKind::kMemory, EngineKind::kRocksDb),
                         [](const auto& info) { return storage::testing::KindName(info.param); });

}  // namespace
}  // namespace cairn::lease
