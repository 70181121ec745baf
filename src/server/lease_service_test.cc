// The Lease service through a real gRPC channel: grant, keep-alive stream, time-to-live with
// keys, list, revoke, expiry (bounded time) and remaining TTLs across a restart.
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <thread>

#include "src/server/server.h"
#include "src/server/server_test_util.h"

namespace cairn::server {
namespace {

using etcdserverpb::KV;
using etcdserverpb::Lease;

class LeaseServiceTest : public ServerTestBase {
 protected:
  void SetUp() override {
    ServerTestBase::SetUp();
    options_.lease.tick_ms = 50;
  }
  void MakeStubs(const std::shared_ptr<grpc::Channel>& channel) override {
    kv_ = KV::NewStub(channel);
    lease_ = Lease::NewStub(channel);
  }

  etcdserverpb::LeaseGrantResponse Grant(int64_t ttl, int64_t id = 0) {
    etcdserverpb::LeaseGrantRequest request;
    request.set_ttl(ttl);
    request.set_id(id);
    etcdserverpb::LeaseGrantResponse response;
    grpc::ClientContext context;
    grpc::Status status = lease_->LeaseGrant(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response;
  }
  grpc::Status Put(const std::string& key, int64_t lease) {
    etcdserverpb::PutRequest request;
    request.set_key(key);
    request.set_value("v");
    request.set_lease(lease);
    etcdserverpb::PutResponse response;
    grpc::ClientContext context;
    return kv_->Put(&context, request, &response);
  }
  int64_t Count(const std::string& key) {
    etcdserverpb::RangeRequest request;
    request.set_key(key);
    etcdserverpb::RangeResponse response;
    grpc::ClientContext context;
    EXPECT_TRUE(kv_->Range(&context, request, &response).ok());
    return response.count();
  }
  etcdserverpb::LeaseTimeToLiveResponse TimeToLive(int64_t id, bool keys = false) {
    etcdserverpb::LeaseTimeToLiveRequest request;
    request.set_id(id);
    request.set_keys(keys);
    etcdserverpb::LeaseTimeToLiveResponse response;
    grpc::ClientContext context;
    EXPECT_TRUE(lease_->LeaseTimeToLive(&context, request, &response).ok());
    return response;
  }
  grpc::Status Revoke(int64_t id) {
    etcdserverpb::LeaseRevokeRequest request;
    request.set_id(id);
    etcdserverpb::LeaseRevokeResponse response;
    grpc::ClientContext context;
    return lease_->LeaseRevoke(&context, request, &response);
  }

  std::unique_ptr<KV::Stub> kv_;
  std::unique_ptr<Lease::Stub> lease_;
};

TEST_F(LeaseServiceTest, GrantRaisesToMinimumTtlAndRejectsDuplicates) {
  StartServer();
  etcdserverpb::LeaseGrantResponse granted = Grant(1);
  EXPECT_GT(granted.id(), 0);
  EXPECT_EQ(granted.ttl(), 2);  // etcd's minimum with default election settings
  EXPECT_NE(granted.header().member_id(), 0u);
  EXPECT_EQ(Grant(60, 12345).id(), 12345);
  etcdserverpb::LeaseGrantRequest again;
  again.set_id(12345);
  again.set_ttl(60);
  etcdserverpb::LeaseGrantResponse response;
  grpc::ClientContext context;
  grpc::Status status = lease_->LeaseGrant(&context, again, &response);
  EXPECT_EQ(status.error_code(), grpc::FAILED_PRECONDITION);
  EXPECT_EQ(status.error_message(), "etcdserver: lease already exists");
}

TEST_F(LeaseServiceTest, PutWithMissingLeaseIsNotFound) {
  StartServer();
  grpc::Status status = Put("k", 777);
  EXPECT_EQ(status.error_code(), grpc::NOT_FOUND);
  EXPECT_EQ(status.error_message(), "etcdserver: requested lease not found");
}

TEST_F(LeaseServiceTest, TimeToLiveListAndRevoke) {
  StartServer();
  const int64_t id = Grant(60).id();
  ASSERT_TRUE(Put("a", id).ok());
  ASSERT_TRUE(Put("b", id).ok());
  auto ttl = TimeToLive(id, true);
  EXPECT_EQ(ttl.id(), id);
  EXPECT_EQ(ttl.grantedttl(), 60);
  EXPECT_GT(ttl.ttl(), 55);
  EXPECT_LE(ttl.ttl(), 60);
  ASSERT_EQ(ttl.keys_size(), 2);
  EXPECT_EQ(ttl.keys(0), "a");
  EXPECT_EQ(ttl.keys(1), "b");

  etcdserverpb::LeaseLeasesResponse leases;
  grpc::ClientContext context;
  ASSERT_TRUE(lease_->LeaseLeases(&context, {}, &leases).ok());
  ASSERT_EQ(leases.leases_size(), 1);
  EXPECT_EQ(leases.leases(0).id(), id);

  ASSERT_TRUE(Revoke(id).ok());
  EXPECT_EQ(Count("a"), 0);
  EXPECT_EQ(Count("b"), 0);
  EXPECT_EQ(TimeToLive(id).ttl(), -1);
  grpc::Status again = Revoke(id);
  EXPECT_EQ(again.error_code(), grpc::NOT_FOUND);
  EXPECT_EQ(again.error_message(), "etcdserver: requested lease not found");
}

// Regression (tests/diff against etcd 3.4): a plain Put looks the lease up before the key
// (applyPut); a txn checks its puts op by op, key then lease (checkRequestPut).
TEST_F(LeaseServiceTest, MissingLeaseAndMissingKeyErrorOrder) {
  StartServer();
  etcdserverpb::PutRequest put;
  put.set_key("missing");
  put.set_lease(777);
  put.set_ignore_value(true);
  etcdserverpb::PutResponse put_response;
  grpc::ClientContext put_context;
  EXPECT_EQ(kv_->Put(&put_context, put, &put_response).error_message(),
            "etcdserver: requested lease not found");

  auto txn_error = [&](const std::vector<etcdserverpb::PutRequest>& puts) {
    etcdserverpb::TxnRequest txn;
    for (const auto& p : puts) *txn.add_success()->mutable_request_put() = p;
    etcdserverpb::TxnResponse response;
    grpc::ClientContext context;
    return kv_->Txn(&context, txn, &response).error_message();
  };
  EXPECT_EQ(txn_error({put}), "etcdserver: key not found");
  etcdserverpb::PutRequest lease_only;
  lease_only.set_key("other");
  lease_only.set_lease(777);
  EXPECT_EQ(txn_error({lease_only, put}), "etcdserver: requested lease not found");
}

// Regression (tests/diff against etcd 3.4): LeaseLeases lists leases soonest expiry first,
// as etcd's lessor.Leases() does, not by ID.
TEST_F(LeaseServiceTest, LeasesAreListedByExpiry) {
  StartServer();
  Grant(300, 1);
  Grant(60, 2);
  Grant(120, 3);
  Grant(60, 4);
  etcdserverpb::LeaseLeasesResponse leases;
  grpc::ClientContext context;
  ASSERT_TRUE(lease_->LeaseLeases(&context, {}, &leases).ok());
  ASSERT_EQ(leases.leases_size(), 4);
  EXPECT_EQ(leases.leases(0).id(), 2);
  EXPECT_EQ(leases.leases(1).id(), 4);
  EXPECT_EQ(leases.leases(2).id(), 3);
  EXPECT_EQ(leases.leases(3).id(), 1);
}

TEST_F(LeaseServiceTest, KeepAliveStreamRefreshesAndMissingLeaseAnswersZero) {
  StartServer();
  const int64_t id = Grant(3).id();
  grpc::ClientContext context;
  auto stream = lease_->LeaseKeepAlive(&context);
  // Keep the lease alive well past its TTL.
  for (int i = 0; i < 8; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    etcdserverpb::LeaseKeepAliveRequest request;
    request.set_id(id);
    ASSERT_TRUE(stream->Write(request));
    etcdserverpb::LeaseKeepAliveResponse response;
    ASSERT_TRUE(stream->Read(&response));
    EXPECT_EQ(response.id(), id);
    EXPECT_EQ(response.ttl(), 3);
  }
  EXPECT_GE(TimeToLive(id).ttl(), 1);
  etcdserverpb::LeaseKeepAliveRequest missing;
  missing.set_id(424242);
  ASSERT_TRUE(stream->Write(missing));
  etcdserverpb::LeaseKeepAliveResponse response;
  ASSERT_TRUE(stream->Read(&response));
  EXPECT_EQ(response.id(), 424242);
  EXPECT_EQ(response.ttl(), 0);
  stream->WritesDone();
  EXPECT_TRUE(stream->Finish().ok());
}

TEST_F(LeaseServiceTest, ExpiryDeletesKeysWithinBoundedTime) {
  StartServer();
  const int64_t id = Grant(2).id();
  ASSERT_TRUE(Put("e1", id).ok());
  ASSERT_TRUE(Put("e2", id).ok());
  ASSERT_TRUE(Put("keep", 0).ok());
  const auto start = std::chrono::steady_clock::now();
  while (Count("e1") + Count("e2") > 0) {
    ASSERT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5))
        << "the lease did not expire within TTL + 3 s";
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(1500));
  EXPECT_EQ(Count("keep"), 1);
  EXPECT_EQ(TimeToLive(id).ttl(), -1);
}

TEST_F(LeaseServiceTest, RemainingTtlSurvivesRestart) {
  StartServer();
  const int64_t id = Grant(30).id();
  ASSERT_TRUE(Put("r", id).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(2200));
  RestartServer();
  auto ttl = TimeToLive(id, true);
  EXPECT_GT(ttl.ttl(), 0);
  EXPECT_LT(ttl.ttl(), 29);  // not reset to the full 30 s
  EXPECT_EQ(ttl.grantedttl(), 30);
  ASSERT_EQ(ttl.keys_size(), 1);
  // A second restart keeps counting down rather than jumping back.
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  RestartServer();
  EXPECT_LT(TimeToLive(id).ttl(), ttl.ttl());
  EXPECT_GT(TimeToLive(id).ttl(), 0);
}

TEST_F(LeaseServiceTest, PeriodicCheckpointRecordsRemainingTtl) {
  options_.lease.checkpoint_interval_ms = 200;
  StartServer();
  const int64_t id = Grant(30).id();
  std::this_thread::sleep_for(std::chrono::milliseconds(1600));
  // Without a graceful stop: the state alone must already hold a remaining TTL < 30.
  auto info = server_->node()->leases()->Get(id);
  ASSERT_TRUE(info.ok());
  ASSERT_TRUE(info->has_value());
  EXPECT_GT((*info)->remaining_ttl_seconds, 0);
  EXPECT_LT((*info)->remaining_ttl_seconds, 30);
}

}  // namespace
}  // namespace cairn::server
