// Maintenance (Alarm and the space quota, Hash, Snapshot, Defragment, MoveLeader), Cluster
// and auto compaction, over real gRPC channels to a Server.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <thread>

#include "etcdserverpb/rpc.grpc.pb.h"
#include "src/node/snapshot.h"
#include "src/server/server_test_util.h"

namespace cairn::server {
namespace {

class MaintenanceServiceTest : public ServerTestBase {
 protected:
  void MakeStubs(const std::shared_ptr<grpc::Channel>& channel) override {
    kv_ = etcdserverpb::KV::NewStub(channel);
    maintenance_ = etcdserverpb::Maintenance::NewStub(channel);
    cluster_ = etcdserverpb::Cluster::NewStub(channel);
    lease_ = etcdserverpb::Lease::NewStub(channel);
  }

  grpc::Status Put(const std::string& key, const std::string& value) {
    grpc::ClientContext context;
    etcdserverpb::PutRequest request;
    request.set_key(key);
    request.set_value(value);
    etcdserverpb::PutResponse response;
    return kv_->Put(&context, request, &response);
  }

  grpc::Status Alarm(etcdserverpb::AlarmRequest::AlarmAction action, etcdserverpb::AlarmType type,
                     etcdserverpb::AlarmResponse* response) {
    grpc::ClientContext context;
    etcdserverpb::AlarmRequest request;
    request.set_action(action);
    request.set_alarm(type);
    request.set_memberid(server_->identity().member_id());
    return maintenance_->Alarm(&context, request, response);
  }

  etcdserverpb::StatusResponse EndpointStatus() {
    grpc::ClientContext context;
    etcdserverpb::StatusResponse response;
    EXPECT_TRUE(maintenance_->Status(&context, {}, &response).ok());
    return response;
  }

  uint32_t Hash() {
    grpc::ClientContext context;
    etcdserverpb::HashResponse response;
    EXPECT_TRUE(maintenance_->Hash(&context, {}, &response).ok());
    return response.hash();
  }

  std::unique_ptr<etcdserverpb::KV::Stub> kv_;
  std::unique_ptr<etcdserverpb::Maintenance::Stub> maintenance_;
  std::unique_ptr<etcdserverpb::Cluster::Stub> cluster_;
  std::unique_ptr<etcdserverpb::Lease::Stub> lease_;
};

TEST_F(MaintenanceServiceTest, AlarmActivateCapsWritesAndDisarmLiftsIt) {
  StartServer();
  etcdserverpb::AlarmResponse listed;
  ASSERT_TRUE(Alarm(etcdserverpb::AlarmRequest::GET, etcdserverpb::NONE, &listed).ok());
  EXPECT_EQ(listed.alarms_size(), 0);
  ASSERT_TRUE(Put("a", "1").ok());

  etcdserverpb::AlarmResponse armed;
  ASSERT_TRUE(Alarm(etcdserverpb::AlarmRequest::ACTIVATE, etcdserverpb::NOSPACE, &armed).ok());
  ASSERT_EQ(armed.alarms_size(), 1);
  EXPECT_EQ(armed.alarms(0).alarm(), etcdserverpb::NOSPACE);
  grpc::Status refused = Put("b", "2");
  EXPECT_EQ(refused.error_code(), grpc::RESOURCE_EXHAUSTED);
  EXPECT_EQ(refused.error_message(), "etcdserver: mvcc: database space exceeded");
  {
    grpc::ClientContext context;
    etcdserverpb::LeaseGrantRequest grant;
    grant.set_ttl(60);
    etcdserverpb::LeaseGrantResponse granted;
    EXPECT_EQ(lease_->LeaseGrant(&context, grant, &granted).error_code(), grpc::RESOURCE_EXHAUSTED);
  }
  const etcdserverpb::StatusResponse status = EndpointStatus();
  ASSERT_EQ(status.errors_size(), 1);
  EXPECT_EQ(status.errors(0),
            "memberID:" + std::to_string(server_->identity().member_id()) + " alarm:NOSPACE ");
  etcdserverpb::AlarmResponse nospace_only;
  ASSERT_TRUE(Alarm(etcdserverpb::AlarmRequest::GET, etcdserverpb::NOSPACE, &nospace_only).ok());
  EXPECT_EQ(nospace_only.alarms_size(), 1);
  etcdserverpb::AlarmResponse corrupt_only;
  ASSERT_TRUE(Alarm(etcdserverpb::AlarmRequest::GET, etcdserverpb::CORRUPT, &corrupt_only).ok());
  EXPECT_EQ(corrupt_only.alarms_size(), 0);

  RestartServer();  // the alarm is state: it survives a restart
  EXPECT_EQ(Put("b", "2").error_code(), grpc::RESOURCE_EXHAUSTED);
  etcdserverpb::AlarmResponse disarmed;
  ASSERT_TRUE(Alarm(etcdserverpb::AlarmRequest::DEACTIVATE, etcdserverpb::NOSPACE, &disarmed).ok());
  EXPECT_EQ(disarmed.alarms_size(), 1);
  EXPECT_TRUE(Put("b", "2").ok());
  EXPECT_EQ(EndpointStatus().errors_size(), 0);
}

TEST_F(MaintenanceServiceTest, QuotaRaisesNospaceAndKeepsEveryAcknowledgedWrite) {
  options_.quota_backend_bytes = 4 << 20;
  StartServer();
  EXPECT_EQ(EndpointStatus().dbsizequota(), 4 << 20);
  const std::string value(64 << 10, 'v');
  int acknowledged = 0;
  grpc::Status refused;
  for (int i = 0; i < 1000; ++i) {
    refused = Put("key" + std::to_string(i), value);
    if (!refused.ok()) break;
    ++acknowledged;
  }
  ASSERT_EQ(refused.error_code(), grpc::RESOURCE_EXHAUSTED) << refused.error_message();
  EXPECT_EQ(refused.error_message(), "etcdserver: mvcc: database space exceeded");
  EXPECT_GT(acknowledged, 10);  // 4 MiB of quota holds dozens of 64 KiB values
  // However fast the puts come, the estimate adds the cost of each write admitted since the
  // last size sample: no more than 4 MiB / 64 KiB of them.
  EXPECT_LE(acknowledged, 64);
  // The alarm is raised through the log; wait for it to apply.
  etcdserverpb::AlarmResponse alarms;
  for (int i = 0; i < 100 && alarms.alarms_size() == 0; ++i) {
    alarms.Clear();
    ASSERT_TRUE(Alarm(etcdserverpb::AlarmRequest::GET, etcdserverpb::NONE, &alarms).ok());
    if (alarms.alarms_size() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_EQ(alarms.alarms_size(), 1);
  EXPECT_EQ(alarms.alarms(0).memberid(), server_->identity().member_id());
  // Small writes are refused too; reads and deletes work; nothing acknowledged is lost.
  EXPECT_EQ(Put("small", "x").error_code(), grpc::RESOURCE_EXHAUSTED);
  {
    grpc::ClientContext context;
    etcdserverpb::RangeRequest range;
    range.set_key("key");
    range.set_range_end("kez");
    range.set_count_only(true);
    etcdserverpb::RangeResponse response;
    ASSERT_TRUE(kv_->Range(&context, range, &response).ok());
    EXPECT_EQ(response.count(), acknowledged);
  }
  {
    grpc::ClientContext context;
    etcdserverpb::DeleteRangeRequest del;
    del.set_key("key");
    del.set_range_end("kez");
    etcdserverpb::DeleteRangeResponse deleted;
    ASSERT_TRUE(kv_->DeleteRange(&context, del, &deleted).ok());
    EXPECT_EQ(deleted.deleted(), acknowledged);
  }
}

TEST_F(MaintenanceServiceTest, HashFollowsTheStateAndSurvivesRestart) {
  StartServer();
  const uint32_t empty = Hash();
  ASSERT_TRUE(Put("a", "1").ok());
  const uint32_t one = Hash();
  EXPECT_NE(one, empty);
  RestartServer();
  EXPECT_EQ(Hash(), one);
  ASSERT_TRUE(Put("a", "2").ok());
  EXPECT_NE(Hash(), one);
}

TEST_F(MaintenanceServiceTest, SnapshotStreamsARestorableSnapshot) {
  StartServer();
  for (int i = 0; i < 500; ++i) {
    ASSERT_TRUE(Put("k" + std::to_string(i), std::string(200, 'a' + i % 26)).ok());
  }
  const std::string path = dir_ + "/saved.snapshot";
  {
    grpc::ClientContext context;
    auto reader = maintenance_->Snapshot(&context, {});
    etcdserverpb::SnapshotResponse chunk;
    std::ofstream out(path, std::ios::binary);
    uint64_t received = 0, last_remaining = UINT64_MAX;
    int chunks = 0;
    while (reader->Read(&chunk)) {
      ASSERT_LE(chunk.blob().size(), MaintenanceService::kSnapshotChunkBytes);
      ASSERT_LT(chunk.remaining_bytes(), last_remaining);
      last_remaining = chunk.remaining_bytes();
      EXPECT_EQ(chunk.header().revision(), 501);
      received += chunk.blob().size();
      out << chunk.blob();
      ++chunks;
    }
    ASSERT_TRUE(reader->Finish().ok());
    EXPECT_EQ(last_remaining, 0u);
    EXPECT_GT(chunks, 1);
    out.close();
    EXPECT_EQ(received, std::filesystem::file_size(path));
  }
  // The staging file goes when the server finishes the call (just after the client's Finish).
  const std::string staged = options_.data_dir + "/tmp/snapshot-1.cairnsnap";
  for (int i = 0; i < 200 && std::filesystem::exists(staged); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_FALSE(std::filesystem::exists(staged));
  const uint32_t hash = Hash();
  // Restore into a new data directory and serve it: same state, same revision.
  const std::string restored = dir_ + "/restored";
  auto info = node::RestoreSnapshot(path, restored);
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  ASSERT_TRUE(server_->Shutdown().ok());
  server_.reset();
  options_.data_dir = restored;
  StartServer();
  EXPECT_EQ(Hash(), hash);
  grpc::ClientContext context;
  etcdserverpb::RangeRequest range;
  range.set_key("k499");
  etcdserverpb::RangeResponse response;
  ASSERT_TRUE(kv_->Range(&context, range, &response).ok());
  ASSERT_EQ(response.kvs_size(), 1);
  EXPECT_EQ(response.kvs(0).mod_revision(), 501);
  EXPECT_EQ(response.header().revision(), 501);
}

TEST_F(MaintenanceServiceTest, SnapshotCancelledByTheClientLeavesNoStagingFile) {
  StartServer();
  for (int i = 0; i < 200; ++i)
    ASSERT_TRUE(Put("k" + std::to_string(i), std::string(1000, 'x')).ok());
  {
    grpc::ClientContext context;
    auto reader = maintenance_->Snapshot(&context, {});
    etcdserverpb::SnapshotResponse chunk;
    ASSERT_TRUE(reader->Read(&chunk));
    context.TryCancel();
    while (reader->Read(&chunk)) {
    }
    EXPECT_EQ(reader->Finish().error_code(), grpc::CANCELLED);
  }
  // The server cleans up once the call is done; it stays healthy.
  for (int i = 0; i < 100 && !std::filesystem::is_empty(options_.data_dir + "/tmp"); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(std::filesystem::is_empty(options_.data_dir + "/tmp"));
  EXPECT_TRUE(Put("after", "ok").ok());
}

TEST_F(MaintenanceServiceTest, DefragmentCompactsAndMoveLeaderOnlyToItself) {
  StartServer();
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(Put("k", std::string(1000, 'x')).ok());
  {
    grpc::ClientContext context;
    etcdserverpb::DefragmentResponse response;
    ASSERT_TRUE(maintenance_->Defragment(&context, {}, &response).ok());
    EXPECT_EQ(response.header().revision(), 101);
  }
  {
    grpc::ClientContext context;
    etcdserverpb::MoveLeaderRequest request;
    request.set_targetid(server_->identity().member_id());
    etcdserverpb::MoveLeaderResponse response;
    EXPECT_TRUE(maintenance_->MoveLeader(&context, request, &response).ok());
  }
  grpc::ClientContext context;
  etcdserverpb::MoveLeaderRequest request;
  request.set_targetid(12345);
  etcdserverpb::MoveLeaderResponse response;
  grpc::Status moved = maintenance_->MoveLeader(&context, request, &response);
  EXPECT_EQ(moved.error_code(), grpc::FAILED_PRECONDITION);
  EXPECT_EQ(moved.error_message(), "etcdserver: bad leader transferee");
}

TEST_F(MaintenanceServiceTest, ClusterListsTheMemberAndAnswersChangesAsEtcdDoes) {
  options_.name = "node-a";
  options_.advertise_client_urls = {"http://127.0.0.1:2379"};
  options_.advertise_peer_urls = {"http://127.0.0.1:2380"};
  StartServer();
  const uint64_t self = server_->identity().member_id();
  {
    grpc::ClientContext context;
    etcdserverpb::MemberListResponse response;
    ASSERT_TRUE(cluster_->MemberList(&context, {}, &response).ok());
    ASSERT_EQ(response.members_size(), 1);
    EXPECT_EQ(response.members(0).id(), self);
    EXPECT_EQ(response.members(0).name(), "node-a");
    EXPECT_EQ(response.members(0).peerurls(0), "http://127.0.0.1:2380");
    EXPECT_EQ(response.members(0).clienturls(0), "http://127.0.0.1:2379");
    EXPECT_EQ(response.header().member_id(), self);
    EXPECT_EQ(response.header().revision(), 0);
  }
  auto expect = [](const grpc::Status& status, grpc::StatusCode code, const std::string& message) {
    EXPECT_EQ(status.error_code(), code) << status.error_message();
    EXPECT_EQ(status.error_message(), message);
  };
  {
    grpc::ClientContext context;
    etcdserverpb::MemberAddRequest request;
    request.add_peerurls("http://127.0.0.1:3380");
    etcdserverpb::MemberAddResponse response;
    expect(cluster_->MemberAdd(&context, request, &response), grpc::FAILED_PRECONDITION,
           "etcdserver: re-configuration failed due to not enough started members");
  }
  {
    grpc::ClientContext context;
    etcdserverpb::MemberAddRequest request;
    request.add_peerurls("http://127.0.0.1:2380");
    etcdserverpb::MemberAddResponse response;
    expect(cluster_->MemberAdd(&context, request, &response), grpc::FAILED_PRECONDITION,
           "etcdserver: Peer URLs already exists");
  }
  {
    grpc::ClientContext context;
    etcdserverpb::MemberAddRequest request;
    request.add_peerurls("not a url");
    etcdserverpb::MemberAddResponse response;
    expect(cluster_->MemberAdd(&context, request, &response), grpc::INVALID_ARGUMENT,
           "etcdserver: given member URLs are invalid");
  }
  {
    grpc::ClientContext context;
    etcdserverpb::MemberRemoveRequest request;
    request.set_id(self);
    etcdserverpb::MemberRemoveResponse response;
    expect(cluster_->MemberRemove(&context, request, &response), grpc::FAILED_PRECONDITION,
           "etcdserver: re-configuration failed due to not enough started members");
  }
  {
    grpc::ClientContext context;
    etcdserverpb::MemberRemoveRequest request;
    request.set_id(self + 1);
    etcdserverpb::MemberRemoveResponse response;
    expect(cluster_->MemberRemove(&context, request, &response), grpc::NOT_FOUND,
           "etcdserver: member not found");
  }
  {
    grpc::ClientContext context;
    etcdserverpb::MemberPromoteRequest request;
    request.set_id(self);
    etcdserverpb::MemberPromoteResponse response;
    expect(cluster_->MemberPromote(&context, request, &response), grpc::FAILED_PRECONDITION,
           "etcdserver: can only promote a learner member");
  }
  {
    grpc::ClientContext context;
    etcdserverpb::MemberUpdateRequest request;
    request.set_id(self);
    request.add_peerurls("http://127.0.0.1:2380");
    etcdserverpb::MemberUpdateResponse response;
    ASSERT_TRUE(cluster_->MemberUpdate(&context, request, &response).ok());
    EXPECT_EQ(response.members_size(), 1);
  }
}

TEST_F(MaintenanceServiceTest, RevisionAutoCompactionKeepsTheLastRevisions) {
  options_.auto_compaction.mode = AutoCompactionOptions::Mode::kRevision;
  options_.auto_compaction.retention = 5;
  options_.auto_compaction.revision_check_interval_ms = 20;
  StartServer();
  for (int i = 0; i < 30; ++i) ASSERT_TRUE(Put("k", std::to_string(i)).ok());  // revision 31
  for (int i = 0; i < 200 && server_->node()->kv()->CompactedRevision() != 26; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(server_->node()->kv()->CompactedRevision(), 26);
  grpc::ClientContext context;
  etcdserverpb::RangeRequest range;
  range.set_key("k");
  range.set_revision(25);
  etcdserverpb::RangeResponse response;
  grpc::Status old = kv_->Range(&context, range, &response);
  EXPECT_EQ(old.error_code(), grpc::OUT_OF_RANGE);
}

TEST_F(MaintenanceServiceTest, PeriodicAutoCompactionCompactsToTheRevisionOfOneWindowAgo) {
  options_.auto_compaction.mode = AutoCompactionOptions::Mode::kPeriodic;
  options_.auto_compaction.retention = 500;  // ms
  StartServer();
  ASSERT_TRUE(Put("k", "before").ok());  // revision 2
  std::this_thread::sleep_for(std::chrono::milliseconds(800));
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(Put("k", std::to_string(i)).ok());  // revisions 3..7
  // After a further window the compactor reaches back at most 500 ms: the revisions written
  // just now survive until then, and everything before them is compacted.
  for (int i = 0; i < 300 && server_->node()->kv()->CompactedRevision() < 7; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(server_->node()->kv()->CompactedRevision(), 7);
  EXPECT_GE(server_->auto_compactor().compactions(), 1);
}

TEST(AutoCompactionOptionsTest, ParsesEtcdFlagValues) {
  auto hours = AutoCompactionOptions::Parse("periodic", "1");
  ASSERT_TRUE(hours.ok());
  EXPECT_EQ(hours->retention, 3600 * 1000);
  auto duration = AutoCompactionOptions::Parse("periodic", "30m");
  ASSERT_TRUE(duration.ok());
  EXPECT_EQ(duration->retention, 30 * 60 * 1000);
  auto revisions = AutoCompactionOptions::Parse("revision", "1000");
  ASSERT_TRUE(revisions.ok());
  EXPECT_EQ(revisions->mode, AutoCompactionOptions::Mode::kRevision);
  EXPECT_EQ(revisions->retention, 1000);
  EXPECT_FALSE(AutoCompactionOptions::Parse("revision", "1h").ok());
  EXPECT_FALSE(AutoCompactionOptions::Parse("sometimes", "1").ok());
  EXPECT_FALSE(AutoCompactionOptions::Parse("periodic", "soon").ok());
}

}  // namespace
}  // namespace cairn::server
