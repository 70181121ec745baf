// In-process tests of the Lock and Election services through a real gRPC channel.
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <future>
#include <string>

#include "src/server/server.h"

namespace cairn::server {
namespace {

using std::chrono::milliseconds;

class LockServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "cairn_lock_test_XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    ServerOptions options;
    options.data_dir = dir_ + "/data";
    options.client_addresses = {"127.0.0.1:0"};
    auto server = Server::Start(options);
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(*server);
    auto channel = grpc::CreateChannel(server_->addresses()[0], grpc::InsecureChannelCredentials());
    kv_ = etcdserverpb::KV::NewStub(channel);
    lease_ = etcdserverpb::Lease::NewStub(channel);
    lock_ = v3lockpb::Lock::NewStub(channel);
    election_ = v3electionpb::Election::NewStub(channel);
  }
  void TearDown() override {
    server_.reset();
    std::filesystem::remove_all(dir_);
  }

  int64_t Grant() {
    etcdserverpb::LeaseGrantRequest request;
    request.set_ttl(60);
    etcdserverpb::LeaseGrantResponse response;
    grpc::ClientContext context;
    EXPECT_TRUE(lease_->LeaseGrant(&context, request, &response).ok());
    return response.id();
  }

  grpc::Status Lock(const std::string& name, int64_t lease, v3lockpb::LockResponse* response,
                    milliseconds timeout = milliseconds(10000)) {
    v3lockpb::LockRequest request;
    request.set_name(name);
    request.set_lease(lease);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + timeout);
    return lock_->Lock(&context, request, response);
  }

  grpc::Status Unlock(const std::string& key) {
    v3lockpb::UnlockRequest request;
    request.set_key(key);
    v3lockpb::UnlockResponse response;
    grpc::ClientContext context;
    return lock_->Unlock(&context, request, &response);
  }

  int64_t CountPrefix(const std::string& prefix) {
    etcdserverpb::RangeRequest request;
    request.set_key(prefix);
    request.set_range_end(PrefixEnd(prefix));
    request.set_count_only(true);
    etcdserverpb::RangeResponse response;
    grpc::ClientContext context;
    EXPECT_TRUE(kv_->Range(&context, request, &response).ok());
    return response.count();
  }

  grpc::Status Campaign(const std::string& name, int64_t lease, const std::string& value,
                        v3electionpb::CampaignResponse* response) {
    v3electionpb::CampaignRequest request;
    request.set_name(name);
    request.set_lease(lease);
    request.set_value(value);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + milliseconds(10000));
    return election_->Campaign(&context, request, response);
  }

  grpc::Status Leader(const std::string& name, v3electionpb::LeaderResponse* response) {
    v3electionpb::LeaderRequest request;
    request.set_name(name);
    grpc::ClientContext context;
    return election_->Leader(&context, request, response);
  }

  grpc::Status Proclaim(const v3electionpb::LeaderKey& leader, const std::string& value) {
    v3electionpb::ProclaimRequest request;
    *request.mutable_leader() = leader;
    request.set_value(value);
    v3electionpb::ProclaimResponse response;
    grpc::ClientContext context;
    return election_->Proclaim(&context, request, &response);
  }

  std::string dir_;
  std::unique_ptr<Server> server_;
  std::unique_ptr<etcdserverpb::KV::Stub> kv_;
  std::unique_ptr<etcdserverpb::Lease::Stub> lease_;
  std::unique_ptr<v3lockpb::Lock::Stub> lock_;
  std::unique_ptr<v3electionpb::Election::Stub> election_;
};

TEST(RecipeKeyTest, NameSlashLeaseHex) {
  EXPECT_EQ(RecipeKey("lk", 0x694d7a1b2c3d4e5f), "lk/694d7a1b2c3d4e5f");
  EXPECT_EQ(RecipeKey("lk", 0), "lk/0");
  EXPECT_EQ(PrefixEnd("a/"), "a0");
  EXPECT_EQ(PrefixEnd(std::string("a\xff", 2)), "b");
}

TEST_F(LockServiceTest, SecondLockWaitsForUnlock) {
  const int64_t first = Grant(), second = Grant();
  v3lockpb::LockResponse held;
  ASSERT_TRUE(Lock("mylock", first, &held).ok());
  EXPECT_EQ(held.key(), RecipeKey("mylock", first));
  EXPECT_GT(held.header().revision(), 1);
  EXPECT_EQ(held.header().member_id(), server_->identity().member_id());

  v3lockpb::LockResponse waited;
  auto waiter = std::async(std::launch::async, [&] { return Lock("mylock", second, &waited); });
  EXPECT_EQ(waiter.wait_for(milliseconds(300)), std::future_status::timeout);
  // Locking again with the held lease is a no-op that returns the same key at once.
  v3lockpb::LockResponse again;
  ASSERT_TRUE(Lock("mylock", first, &again).ok());
  EXPECT_EQ(again.key(), held.key());

  ASSERT_TRUE(Unlock(held.key()).ok());
  ASSERT_EQ(waiter.wait_for(milliseconds(5000)), std::future_status::ready);
  ASSERT_TRUE(waiter.get().ok());
  EXPECT_EQ(waited.key(), RecipeKey("mylock", second));
  ASSERT_TRUE(Unlock(waited.key()).ok());
  EXPECT_EQ(CountPrefix("mylock/"), 0);
}

TEST_F(LockServiceTest, RevokedLeaseReleasesTheLock) {
  const int64_t first = Grant(), second = Grant();
  v3lockpb::LockResponse held, waited;
  ASSERT_TRUE(Lock("l", first, &held).ok());
  auto waiter = std::async(std::launch::async, [&] { return Lock("l", second, &waited); });
  EXPECT_EQ(waiter.wait_for(milliseconds(200)), std::future_status::timeout);
  etcdserverpb::LeaseRevokeRequest revoke;
  revoke.set_id(first);
  etcdserverpb::LeaseRevokeResponse revoked;
  grpc::ClientContext context;
  ASSERT_TRUE(lease_->LeaseRevoke(&context, revoke, &revoked).ok());
  ASSERT_EQ(waiter.wait_for(milliseconds(5000)), std::future_status::ready);
  EXPECT_TRUE(waiter.get().ok());
}

TEST_F(LockServiceTest, CancelledLockRemovesItsKey) {
  const int64_t first = Grant(), second = Grant();
  v3lockpb::LockResponse held, timed_out;
  ASSERT_TRUE(Lock("c", first, &held).ok());
  grpc::Status status = Lock("c", second, &timed_out, milliseconds(200));
  EXPECT_EQ(status.error_code(), grpc::DEADLINE_EXCEEDED);
  for (int i = 0; i < 200 && CountPrefix("c/") != 1; i++) {
    std::this_thread::sleep_for(milliseconds(10));
  }
  EXPECT_EQ(CountPrefix("c/"), 1);
}

TEST_F(LockServiceTest, ElectionCampaignProclaimObserveResign) {
  v3electionpb::LeaderResponse none;
  grpc::Status status = Leader("e", &none);
  EXPECT_FALSE(status.ok());
  EXPECT_EQ(status.error_message(), "election: no leader");

  const int64_t first = Grant(), second = Grant();
  v3electionpb::CampaignResponse won;
  ASSERT_TRUE(Campaign("e", first, "a", &won).ok());
  EXPECT_EQ(won.leader().name(), "e");
  EXPECT_EQ(won.leader().key(), RecipeKey("e", first));
  EXPECT_EQ(won.leader().lease(), first);
  EXPECT_GT(won.leader().rev(), 1);

  // Campaigning again with the same lease returns the same leadership at once.
  v3electionpb::CampaignResponse again;
  ASSERT_TRUE(Campaign("e", first, "a", &again).ok());
  EXPECT_EQ(again.leader().rev(), won.leader().rev());

  v3electionpb::LeaderResponse leader;
  ASSERT_TRUE(Leader("e", &leader).ok());
  EXPECT_EQ(leader.kv().value(), "a");
  EXPECT_EQ(leader.kv().create_revision(), won.leader().rev());

  grpc::ClientContext observe_context;
  v3electionpb::LeaderRequest observe_request;
  observe_request.set_name("e");
  auto observer = election_->Observe(&observe_context, observe_request);
  v3electionpb::LeaderResponse seen;
  ASSERT_TRUE(observer->Read(&seen));
  EXPECT_EQ(seen.kv().value(), "a");

  v3electionpb::CampaignResponse second_won;
  auto campaigner =
      std::async(std::launch::async, [&] { return Campaign("e", second, "b", &second_won); });
  EXPECT_EQ(campaigner.wait_for(milliseconds(300)), std::future_status::timeout);

  ASSERT_TRUE(Proclaim(won.leader(), "a2").ok());
  ASSERT_TRUE(observer->Read(&seen));
  EXPECT_EQ(seen.kv().value(), "a2");
  v3electionpb::LeaderKey stale = won.leader();
  stale.set_rev(stale.rev() + 1000);
  status = Proclaim(stale, "x");
  EXPECT_FALSE(status.ok());
  EXPECT_EQ(status.error_message(), "election: not leader");

  v3electionpb::ResignRequest resign;
  *resign.mutable_leader() = won.leader();
  v3electionpb::ResignResponse resigned;
  grpc::ClientContext resign_context;
  ASSERT_TRUE(election_->Resign(&resign_context, resign, &resigned).ok());
  ASSERT_EQ(campaigner.wait_for(milliseconds(5000)), std::future_status::ready);
  ASSERT_TRUE(campaigner.get().ok());
  EXPECT_EQ(second_won.leader().key(), RecipeKey("e", second));
  ASSERT_TRUE(observer->Read(&seen));
  EXPECT_EQ(seen.kv().value(), "b");
  observe_context.TryCancel();
  v3electionpb::LeaderResponse rest;
  while (observer->Read(&rest)) {
  }
  (void)observer->Finish();
}

TEST_F(LockServiceTest, ShutdownEndsWaitingCalls) {
  const int64_t first = Grant(), second = Grant();
  v3lockpb::LockResponse held, waited;
  ASSERT_TRUE(Lock("s", first, &held).ok());
  auto waiter = std::async(std::launch::async, [&] { return Lock("s", second, &waited); });
  EXPECT_EQ(waiter.wait_for(milliseconds(200)), std::future_status::timeout);
  EXPECT_TRUE(server_->Shutdown().ok());
  ASSERT_EQ(waiter.wait_for(milliseconds(5000)), std::future_status::ready);
  EXPECT_FALSE(waiter.get().ok());
}

}  // namespace
}  // namespace cairn::server
