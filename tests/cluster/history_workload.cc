#include "tests/cluster/history_workload.h"

#include <stdlib.h>

#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <random>

#include "etcdserverpb/rpc.grpc.pb.h"

namespace cairn::cluster_test {

using checker::OpKind;
using checker::OpResult;
using checker::Recorder;

namespace {

constexpr int kClients = 6;
constexpr int kKeys = 8;
// After a failed request a client tries the next member after this pause (no busy loop
// against a dead member while the others elect).
constexpr int kRetryPauseMs = 20;
// How long a client waits for a connection to its member before trying the next one (a live
// member on loopback connects in about a millisecond; a stopped one never does).
constexpr int kConnectWaitMs = 200;
// Definite operations that must complete after the fault healed: the cluster is available
// again, and the history covers the recovery.
constexpr int kHealedOperationsMin = 20;

std::string CairndPath() {
  if (const char* path = std::getenv("CAIRN_CAIRND"); path != nullptr && *path != '\0') {
    return path;
  }
#ifdef CAIRN_CAIRND_DEFAULT_PATH
  return CAIRN_CAIRND_DEFAULT_PATH;
#else
  return "";
#endif
}

uint64_t SeedForTest() {
  if (const char* seed = std::getenv("CAIRN_CLUSTER_SEED"); seed != nullptr && *seed != '\0') {
    return std::strtoull(seed, nullptr, 10);
  }
  return std::random_device{}();
}

}  // namespace

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void SleepMs(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

std::chrono::system_clock::time_point DeadlineIn(int ms) {
  return std::chrono::system_clock::now() + std::chrono::milliseconds(ms);
}

// One client: a thread with its own channel and stub, bound to one member at a time and moving to
// the next member after an error. It records each request in the shared Recorder.
class HistoryClient {
 public:
  // pinned_member >= 0: the client sends every request to that member and never moves.
  HistoryClient(uint32_t id, uint64_t seed, ClusterHarness* cluster, Recorder* recorder,
                const std::vector<std::string>* keys, int pinned_member = -1)
      : id_(id),
        random_(seed),
        cluster_(cluster),
        recorder_(recorder),
        keys_(keys),
        pinned_(pinned_member >= 0) {
    Bind(pinned_ ? pinned_member : static_cast<int>(id % cluster->size()));
  }

  // Runs requests until *stop.
  void Run(const std::atomic<bool>* stop) {
    while (!stop->load()) {
      // A member this client cannot connect to gets no request: it could only add
      // indeterminate writes that never reached anyone (and slow the checker down).
      if (!pinned_ && channel_->GetState(/*try_to_connect=*/true) != GRPC_CHANNEL_READY &&
          !channel_->WaitForConnected(DeadlineIn(kConnectWaitMs))) {
        NextMember();
        continue;
      }
      const std::string& key = (*keys_)[random_() % keys_->size()];
      const int choice = static_cast<int>(random_() % 100);
      const bool ok = choice < 30   ? Put(key)
                      : choice < 60 ? Get(key)
                      : choice < 85 ? Cas(key)
                                    : Delete(key);
      if (!ok) NextMember();
    }
  }

  // One linearizable read of key through member, recorded (the final reads after healing);
  // the value read in *value ("" when absent).
  bool ReadThrough(int member, const std::string& key, std::string* value = nullptr) {
    Bind(member);
    if (!Get(key)) return false;
    if (value != nullptr) *value = last_value_[key];
    return true;
  }

  // One put of a fresh value to key through member, recorded; the value in *value.
  bool PutThrough(int member, const std::string& key, std::string* value) {
    Bind(member);
    if (!Put(key)) return false;
    *value = last_value_[key];
    return true;
  }

 private:
  void Bind(int member) {
    member_ = member;
    // Its own channel (own connection), not the harness's shared one: a client's stuck or
    // broken connection is its own.
    channel_ = MakeLoopbackChannel(cluster_->ClientAddress(member));
    stub_ = etcdserverpb::KV::NewStub(channel_);
  }

  void NextMember() {
    SleepMs(kRetryPauseMs);
    if (pinned_) return;
    Bind((member_ + 1) % cluster_->size());
  }

  std::string FreshValue() { return "c" + std::to_string(id_) + "-" + std::to_string(++sequence_); }

  bool Put(const std::string& key) {
    etcdserverpb::PutRequest request;
    request.set_key(key);
    request.set_value(FreshValue());
    const Recorder::Handle handle = recorder_->Invoke(id_, OpKind::kPut, key, request.value());
    grpc::ClientContext context;
    context.set_deadline(DeadlineIn(kRequestDeadlineMs));
    etcdserverpb::PutResponse response;
    const grpc::Status status = stub_->Put(&context, request, &response);
    if (!status.ok()) {
      // The proposal may have been committed even so: the put stays indeterminate.
      recorder_->Complete(handle, OpResult::Indeterminate());
      return false;
    }
    recorder_->Complete(handle, OpResult::PutOk(response.header().revision()));
    last_mod_revision_[key] = response.header().revision();
    last_value_[key] = request.value();
    return true;
  }

  bool Get(const std::string& key) {
    etcdserverpb::RangeRequest request;
    request.set_key(key);
    request.set_serializable(false);
    const Recorder::Handle handle = recorder_->Invoke(id_, OpKind::kGet, key);
    grpc::ClientContext context;
    context.set_deadline(DeadlineIn(kRequestDeadlineMs));
    etcdserverpb::RangeResponse response;
    const grpc::Status status = stub_->Range(&context, request, &response);
    if (!status.ok()) {
      // A read changes nothing: failed is exact.
      recorder_->Complete(handle, OpResult::DefinitelyFailed());
      return false;
    }
    recorder_->Complete(handle, ReadResult(response.kvs(), response.header().revision(), key));
    return true;
  }

  bool Cas(const std::string& key) {
    const int64_t expected = last_mod_revision_[key];
    etcdserverpb::TxnRequest request;
    etcdserverpb::Compare* compare = request.add_compare();
    compare->set_key(key);
    compare->set_target(etcdserverpb::Compare::MOD);
    compare->set_result(etcdserverpb::Compare::EQUAL);
    compare->set_mod_revision(expected);
    etcdserverpb::PutRequest* put = request.add_success()->mutable_request_put();
    put->set_key(key);
    put->set_value(FreshValue());
    request.add_failure()->mutable_request_range()->set_key(key);
    const Recorder::Handle handle =
        recorder_->Invoke(id_, OpKind::kCas, key, put->value(), expected);
    grpc::ClientContext context;
    context.set_deadline(DeadlineIn(kRequestDeadlineMs));
    etcdserverpb::TxnResponse response;
    const grpc::Status status = stub_->Txn(&context, request, &response);
    if (!status.ok()) {
      recorder_->Complete(handle, OpResult::Indeterminate());
      return false;
    }
    const int64_t header_revision = response.header().revision();
    if (response.succeeded()) {
      recorder_->Complete(handle, OpResult::CasSucceeded(header_revision));
      last_mod_revision_[key] = header_revision;
      return true;
    }
    if (response.responses_size() != 1 || !response.responses(0).has_response_range()) {
      ADD_FAILURE() << "Txn failure branch without its range response: "
                    << response.ShortDebugString();
      recorder_->Complete(handle, OpResult::Indeterminate());
      return true;
    }
    recorder_->Complete(
        handle, ReadResult(response.responses(0).response_range().kvs(), header_revision, key));
    return true;
  }

  bool Delete(const std::string& key) {
    etcdserverpb::DeleteRangeRequest request;
    request.set_key(key);
    const Recorder::Handle handle = recorder_->Invoke(id_, OpKind::kDelete, key);
    grpc::ClientContext context;
    context.set_deadline(DeadlineIn(kRequestDeadlineMs));
    etcdserverpb::DeleteRangeResponse response;
    const grpc::Status status = stub_->DeleteRange(&context, request, &response);
    if (!status.ok()) {
      recorder_->Complete(handle, OpResult::Indeterminate());
      return false;
    }
    recorder_->Complete(handle,
                        OpResult::DeleteOk(response.deleted(), response.header().revision()));
    if (response.deleted() > 0) last_mod_revision_[key] = 0;
    return true;
  }

  // The result of a read of key (a Range, or the failure branch of a Cas); remembers the
  // mod_revision for the next Cas.
  OpResult ReadResult(const google::protobuf::RepeatedPtrField<mvccpb::KeyValue>& kvs,
                      int64_t header_revision, const std::string& key) {
    if (kvs.empty()) {
      last_mod_revision_[key] = 0;
      last_value_[key].clear();
      return OpResult::GetNotFound(header_revision);
    }
    last_mod_revision_[key] = kvs[0].mod_revision();
    last_value_[key] = kvs[0].value();
    return OpResult::GetFound(kvs[0].value(), kvs[0].mod_revision(), header_revision);
  }

  const uint32_t id_;
  std::mt19937_64 random_;
  ClusterHarness* const cluster_;
  Recorder* const recorder_;
  const std::vector<std::string>* const keys_;
  const bool pinned_;
  int member_ = 0;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<etcdserverpb::KV::Stub> stub_;
  uint64_t sequence_ = 0;
  std::map<std::string, int64_t> last_mod_revision_;  // 0: absent or unknown.
  std::map<std::string, std::string> last_value_;     // The last value read of each key.
};

HistoryClusterTest::HistoryClusterTest() : recorder_(NowNs) {}

HistoryClusterTest::~HistoryClusterTest() = default;

void HistoryClusterTest::SetUp() {
  seed_ = SeedForTest();
  std::cout << "CAIRN_CLUSTER_SEED=" << seed_ << "\n";
  std::string pattern = (std::filesystem::temp_directory_path() / "cairn-cluster-XXXXXX");
  ASSERT_NE(mkdtemp(pattern.data()), nullptr);
  dir_ = pattern;
  for (int i = 0; i < kKeys; ++i) keys_.push_back("key" + std::to_string(i));
  start_ = std::chrono::steady_clock::now();
}

void HistoryClusterTest::TearDown() {
  StopLoad();
  if (HasFailure() && !history_saved_) {
    std::cerr << "history saved to " << SaveHistory(recorder_.Snapshot()) << "\n";
  }
  if (cluster_ != nullptr && HasFailure()) {
    std::cerr << "member logs (directory kept: " << dir_ << ")\n" << cluster_->LogTails();
  }
  cluster_.reset();  // Kills the members before their directories go.
  if (!HasFailure()) {
    std::error_code error;
    std::filesystem::remove_all(dir_, error);
  }
  std::cout << "scenario took " << ElapsedMs() << " ms\n";
}

int64_t HistoryClusterTest::ElapsedMs() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                               start_)
      .count();
}

ClusterOptions HistoryClusterTest::Options(int members) const {
  ClusterOptions options;
  options.cairnd_path = CairndPath();
  options.dir = dir_;
  options.members = members;
  return options;
}

int HistoryClusterTest::StartCluster(const ClusterOptions& options) {
  EXPECT_TRUE(!options.cairnd_path.empty() && std::filesystem::exists(options.cairnd_path))
      << "no cairnd binary (set CAIRN_CAIRND): \"" << options.cairnd_path << "\"";
  cluster_ = std::make_unique<ClusterHarness>(options);
  std::string error;
  EXPECT_TRUE(cluster_->Start(&error)) << error;
  const int leader = cluster_->WaitForLeader(kLeaderWaitMs);
  EXPECT_GE(leader, 0) << "no leader within " << kLeaderWaitMs << " ms:\n"
                       << cluster_->DescribeMembers();
  return leader;
}

void HistoryClusterTest::StartLoad() {
  stop_ = false;
  for (int i = 0; i < kClients; ++i) {
    const uint32_t id = next_client_id_++;
    clients_.push_back(
        std::make_unique<HistoryClient>(id, seed_ * 1000 + id, cluster_.get(), &recorder_, &keys_));
    threads_.emplace_back([client = clients_.back().get(), this] { client->Run(&stop_); });
  }
}

void HistoryClusterTest::StartPinnedClient(int member) {
  const uint32_t id = next_client_id_++;
  clients_.push_back(std::make_unique<HistoryClient>(id, seed_ * 1000 + id, cluster_.get(),
                                                     &recorder_, &keys_, member));
  threads_.emplace_back([client = clients_.back().get(), this] { client->Run(&stop_); });
}

void HistoryClusterTest::StopLoad() {
  stop_ = true;
  for (std::thread& thread : threads_) thread.join();
  threads_.clear();
}

void HistoryClusterTest::Restart(int member) {
  std::string error;
  ASSERT_TRUE(cluster_->Restart(member, &error)) << error;
}

int HistoryClusterTest::WaitForLeader() {
  const int leader = cluster_->WaitForLeader(kLeaderWaitMs);
  EXPECT_GE(leader, 0) << "no leader within " << kLeaderWaitMs << " ms:\n"
                       << cluster_->DescribeMembers();
  return leader;
}

int HistoryClusterTest::WaitForLeaderToBe(int target) {
  int leader = -1;
  for (int attempt = 0; attempt < 60 && leader != target; ++attempt) {
    leader = cluster_->LeaderIndex();
    if (leader != target) SleepMs(50);
  }
  return leader;
}

bool HistoryClusterTest::RecordedRead(int member, const std::string& key, std::string* value) {
  const uint32_t id = next_client_id_++;
  HistoryClient reader(id, seed_ * 1000 + id, cluster_.get(), &recorder_, &keys_, member);
  return reader.ReadThrough(member, key, value);
}

bool HistoryClusterTest::RecordedPut(int member, const std::string& key, std::string* value) {
  const uint32_t id = next_client_id_++;
  HistoryClient writer(id, seed_ * 1000 + id, cluster_.get(), &recorder_, &keys_, member);
  return writer.PutThrough(member, key, value);
}

void HistoryClusterTest::Verify() {
  StopLoad();
  std::string error;
  EXPECT_TRUE(cluster_->WaitConverged(kConvergeWaitMs, &error)) << error;
  const std::vector<int> active = cluster_->ActiveMembers();
  const uint32_t id = next_client_id_++;
  HistoryClient reader(id, seed_, cluster_.get(), &recorder_, &keys_);
  for (int member : active) {
    for (const std::string& key : keys_) {
      EXPECT_TRUE(reader.ReadThrough(member, key)) << "final read of " << key << " on m" << member;
    }
  }
  CheckHistory(recorder_.Snapshot());
  std::map<int, MemberHash> hashes;
  ASSERT_TRUE(cluster_->HashKvAll(&hashes, &error)) << error;
  ASSERT_EQ(hashes.size(), active.size()) << cluster_->DescribeMembers();
  for (const auto& [member, hash] : hashes) {
    EXPECT_EQ(hash, hashes.begin()->second)
        << "m" << member << " HashKV(" << hash.revision << ") = " << hash.hash << ", m"
        << hashes.begin()->first << " has " << hashes.begin()->second.hash;
  }
}

std::string HistoryClusterTest::SaveHistory(const checker::History& history) {
  const std::string path = dir_ + "/history.txt";
  const Status written = checker::WriteHistoryFile(history, path);
  history_saved_ = true;
  return written.ok() ? path : path + " (not written: " + std::string(written.message()) + ")";
}

void HistoryClusterTest::CheckHistory(const checker::History& history) {
  size_t ok = 0, ok_writes = 0, healed_ok = 0, indeterminate = 0;
  for (const checker::Operation& op : history.ops()) {
    if (op.result.outcome == checker::Outcome::kIndeterminate) ++indeterminate;
    if (!op.definite()) continue;
    ++ok;
    if (op.IsSuccessfulWrite()) ++ok_writes;
    if (op.call_time_ns > healed_ns_) ++healed_ok;
  }
  const checker::CheckResult result = checker::Check(history);
  std::cout << "history: " << history.size() << " operations, " << ok << " ok (" << ok_writes
            << " writes), " << indeterminate << " indeterminate, " << healed_ok
            << " ok after healing; " << checker::VerdictName(result.verdict) << " (checked in "
            << result.stats.elapsed_ms << " ms)\n";
  EXPECT_GE(ok_writes, 50u) << "too little load to say anything";
  EXPECT_GE(healed_ok, static_cast<size_t>(kHealedOperationsMin))
      << "the cluster served too little after the fault healed";
  if (!result.ok()) {
    ADD_FAILURE() << "history saved to " << SaveHistory(history)
                  << " (re-check: history_check FILE)\n"
                  << result.ToString();
  }
}

}  // namespace cairn::cluster_test
