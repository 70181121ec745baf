// In-process tests of cairnd's gRPC services through a real gRPC channel on loopback.
#include "src/server/server.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "src/server/client_url.h"
#include "src/server/grpc_status.h"
#include "src/server/server_test_util.h"

namespace cairn::server {
namespace {

using etcdserverpb::KV;
using etcdserverpb::Maintenance;

class ServerTest : public ServerTestBase {
 protected:
  void MakeStubs(const std::shared_ptr<grpc::Channel>& channel) override {
    kv_ = KV::NewStub(channel);
    maintenance_ = Maintenance::NewStub(channel);
  }

  grpc::Status Put(const std::string& key, const std::string& value,
                   etcdserverpb::PutResponse* response = nullptr) {
    etcdserverpb::PutRequest request;
    request.set_key(key);
    request.set_value(value);
    etcdserverpb::PutResponse ignored;
    grpc::ClientContext context;
    return kv_->Put(&context, request, response ? response : &ignored);
  }

  grpc::Status Range(const etcdserverpb::RangeRequest& request,
                     etcdserverpb::RangeResponse* response) {
    grpc::ClientContext context;
    return kv_->Range(&context, request, response);
  }

  std::unique_ptr<KV::Stub> kv_;
  std::unique_ptr<Maintenance::Stub> maintenance_;
};

TEST_F(ServerTest, PutThenRangeCarriesHeaderIds) {
  StartServer();
  etcdserverpb::PutResponse put;
  ASSERT_TRUE(Put("a", "1", &put).ok());
  EXPECT_EQ(put.header().revision(), 2);
  EXPECT_EQ(put.header().cluster_id(), server_->identity().cluster_id());
  EXPECT_EQ(put.header().member_id(), server_->identity().member_id());
  EXPECT_EQ(put.header().raft_term(), 2u);  // bootstrap at term 1, elected at 2 (as etcd)
  EXPECT_NE(put.header().member_id(), 0u);

  etcdserverpb::RangeRequest request;
  request.set_key("a");
  etcdserverpb::RangeResponse range;
  ASSERT_TRUE(Range(request, &range).ok());
  ASSERT_EQ(range.kvs_size(), 1);
  EXPECT_EQ(range.kvs(0).value(), "1");
  EXPECT_EQ(range.header().revision(), 2);
  EXPECT_EQ(range.header().member_id(), server_->identity().member_id());
}

TEST_F(ServerTest, EmptyKeyIsEtcdsInvalidArgument) {
  StartServer();
  grpc::Status status = Put("", "x");
  EXPECT_EQ(status.error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(), "etcdserver: key is not provided");
}

TEST_F(ServerTest, ReversedRangeIsEmptyNotAnError) {
  StartServer();
  ASSERT_TRUE(Put("b", "1").ok());
  etcdserverpb::RangeRequest request;
  request.set_key("c");
  request.set_range_end("a");
  etcdserverpb::RangeResponse range;
  grpc::Status status = Range(request, &range);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(range.kvs_size(), 0);
}

TEST_F(ServerTest, RequestSizeLimits) {
  options_.request_bytes_max = 4096;
  StartServer();
  // Over --max-request-bytes but within gRPC's limit: etcd's own error.
  grpc::Status status = Put("k", std::string(8192, 'v'));
  EXPECT_EQ(status.error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(), "etcdserver: request is too large");
  // Over --max-request-bytes + 512 KiB: gRPC refuses the message itself.
  status = Put("k", std::string(4096 + ServerOptions::kGrpcOverheadBytes + 1, 'v'));
  EXPECT_EQ(status.error_code(), grpc::RESOURCE_EXHAUSTED);
  EXPECT_TRUE(Put("k", "small").ok());
}

TEST_F(ServerTest, CompactedRevisionIsOutOfRange) {
  StartServer();
  for (int i = 0; i < 5; i++) ASSERT_TRUE(Put("k", std::to_string(i)).ok());
  etcdserverpb::CompactionRequest compact;
  compact.set_revision(4);
  compact.set_physical(true);
  etcdserverpb::CompactionResponse compacted;
  grpc::ClientContext context;
  ASSERT_TRUE(kv_->Compact(&context, compact, &compacted).ok());
  EXPECT_EQ(compacted.header().member_id(), server_->identity().member_id());

  etcdserverpb::RangeRequest request;
  request.set_key("k");
  request.set_revision(3);
  etcdserverpb::RangeResponse range;
  grpc::Status status = Range(request, &range);
  EXPECT_EQ(status.error_code(), grpc::OUT_OF_RANGE);
  EXPECT_EQ(status.error_message(), "etcdserver: mvcc: required revision has been compacted");
}

TEST_F(ServerTest, TxnWriteAndReadOnly) {
  StartServer();
  etcdserverpb::TxnRequest txn;
  auto* compare = txn.add_compare();
  compare->set_key("t");
  compare->set_target(etcdserverpb::Compare::VERSION);
  compare->set_result(etcdserverpb::Compare::EQUAL);
  compare->set_version(0);
  auto* put = txn.add_success()->mutable_request_put();
  put->set_key("t");
  put->set_value("v");
  etcdserverpb::TxnResponse response;
  {
    grpc::ClientContext context;
    ASSERT_TRUE(kv_->Txn(&context, txn, &response).ok());
  }
  EXPECT_TRUE(response.succeeded());
  EXPECT_EQ(response.header().revision(), 2);

  etcdserverpb::TxnRequest read;
  read.add_success()->mutable_request_range()->set_key("t");
  etcdserverpb::TxnResponse read_response;
  grpc::ClientContext context;
  ASSERT_TRUE(kv_->Txn(&context, read, &read_response).ok());
  ASSERT_EQ(read_response.responses_size(), 1);
  EXPECT_EQ(read_response.responses(0).response_range().kvs(0).value(), "v");
  EXPECT_EQ(read_response.header().member_id(), server_->identity().member_id());
}

TEST_F(ServerTest, StatusReportsRevisionAndLeader) {
  StartServer();
  ASSERT_TRUE(Put("a", "1").ok());
  etcdserverpb::StatusResponse status;
  grpc::ClientContext context;
  ASSERT_TRUE(maintenance_->Status(&context, {}, &status).ok());
  EXPECT_EQ(status.header().revision(), 2);
  EXPECT_EQ(status.leader(), server_->identity().member_id());
  EXPECT_EQ(status.raftterm(), 2u);
  EXPECT_GE(status.raftappliedindex(), 1u);
  EXPECT_FALSE(status.version().empty());
}

TEST_F(ServerTest, DataSurvivesRestart) {
  StartServer();
  ASSERT_TRUE(Put("durable", "yes").ok());
  ASSERT_TRUE(server_->Shutdown().ok());
  StartServer();
  etcdserverpb::RangeRequest request;
  request.set_key("durable");
  etcdserverpb::RangeResponse range;
  ASSERT_TRUE(Range(request, &range).ok());
  ASSERT_EQ(range.kvs_size(), 1);
  EXPECT_EQ(range.kvs(0).value(), "yes");
}

TEST_F(ServerTest, ConcurrentWritesGetDistinctRevisions) {
  StartServer();
  constexpr int kThreads = 8;
  constexpr int kPutsPerThread = 50;
  std::vector<std::vector<int64_t>> revisions(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; t++) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPutsPerThread; i++) {
        etcdserverpb::PutResponse response;
        grpc::Status status =
            Put("k" + std::to_string(t) + "/" + std::to_string(i), "v", &response);
        revisions[t].push_back(status.ok() ? response.header().revision() : -1);
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  std::set<int64_t> all;
  for (const auto& per_thread : revisions) all.insert(per_thread.begin(), per_thread.end());
  // Revisions 2 .. 1 + kThreads * kPutsPerThread, each once; no failures (-1).
  ASSERT_EQ(all.size(), static_cast<size_t>(kThreads * kPutsPerThread));
  EXPECT_EQ(*all.begin(), 2);
  EXPECT_EQ(*all.rbegin(), 1 + kThreads * kPutsPerThread);
}

TEST_F(ServerTest, BusyPortIsAClearError) {
  StartServer();
  ServerOptions second = options_;
  second.data_dir = dir_ + "/second";
  second.client_addresses = server_->addresses();
  auto failed = Server::Start(second);
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(failed.status().message().find("cannot listen on"), std::string_view::npos);
}

TEST(ClientUrlTest, ParsesEtcdStyleUrls) {
  EXPECT_EQ(*ClientUrlToAddress("http://127.0.0.1:2379"), "127.0.0.1:2379");
  EXPECT_EQ(*ClientUrlToAddress("http://[::1]:2379/"), "[::1]:2379");
  auto list = ClientUrlsToAddresses("http://a:1,http://b:2");
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(list->size(), 2u);
  EXPECT_FALSE(ClientUrlToAddress("https://a:1").ok());
  EXPECT_FALSE(ClientUrlToAddress("a:1").ok());
  EXPECT_FALSE(ClientUrlToAddress("http://a").ok());
  EXPECT_FALSE(ClientUrlToAddress("http://a:99999").ok());
  EXPECT_FALSE(ClientUrlsToAddresses(",").ok());
}

TEST(GrpcStatusTest, KeepsCodeAndMessage) {
  grpc::Status s = ToGrpcStatus(Status::OutOfRange("m"));
  EXPECT_EQ(s.error_code(), grpc::OUT_OF_RANGE);
  EXPECT_EQ(s.error_message(), "m");
  EXPECT_EQ(ToGrpcStatus(Status::IoError("x")).error_code(), grpc::INTERNAL);
  EXPECT_EQ(ToGrpcStatus(Status::Corruption("x")).error_code(), grpc::DATA_LOSS);
  EXPECT_TRUE(ToGrpcStatus(Status::Ok()).ok());
}

}  // namespace
}  // namespace cairn::server
