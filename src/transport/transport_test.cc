#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "src/transport/convert.h"
#include "src/transport/grpc_transport.h"
#include "src/transport/peer_url.h"

namespace cairn::transport {
namespace {

using raft::Entry;
using raft::EntryType;
using raft::Message;
using raft::MessageType;
using raft::NodeId;
using std::chrono::milliseconds;
using SteadyClock = std::chrono::steady_clock;

constexpr uint64_t kClusterId = 0xc0ffee;

// Polls `condition` until it holds or `timeout` passes; returns its last value.
bool WaitUntil(const std::function<bool()>& condition, milliseconds timeout = milliseconds(10000)) {
  const auto deadline = SteadyClock::now() + timeout;
  while (!condition()) {
    if (SteadyClock::now() > deadline) return false;
    std::this_thread::sleep_for(milliseconds(5));
  }
  return true;
}

void ExpectSameMessage(const Message& a, const Message& b) {
  EXPECT_EQ(a.type, b.type);
  EXPECT_EQ(a.from, b.from);
  EXPECT_EQ(a.to, b.to);
  EXPECT_EQ(a.term, b.term);
  EXPECT_EQ(a.log_term, b.log_term);
  EXPECT_EQ(a.index, b.index);
  EXPECT_EQ(a.commit, b.commit);
  EXPECT_EQ(a.entries, b.entries);
  EXPECT_EQ(a.snapshot, b.snapshot);
  EXPECT_EQ(a.reject, b.reject);
  EXPECT_EQ(a.reject_hint, b.reject_hint);
  EXPECT_EQ(a.context, b.context);
}

// A message with every field set to something distinct from its default.
Message FullMessage(MessageType type) {
  Message message{.type = type,
                  .from = 3,
                  .to = 7,
                  .term = 11,
                  .log_term = 10,
                  .index = 1ull << 40,
                  .commit = 99,
                  .reject = true,
                  .reject_hint = 42,
                  .context = std::string("ctx\0bytes", 9)};
  message.entries = {Entry{.term = 10, .index = 5, .type = EntryType::kNormal, .data = "put"},
                     Entry{.term = 11,
                           .index = 6,
                           .type = EntryType::kConfigChange,
                           .data = raft::EncodeConfigChange({.node_id = 4})},
                     Entry{.term = 11, .index = 7, .type = EntryType::kNormal, .data = ""}};
  message.snapshot.metadata = {.index = 4, .term = 9, .config = {{1, 3, 7}, {4, 8}}};
  message.snapshot.data = std::string("snap\0shot", 9);
  return message;
}

// Encodes, serializes, parses and decodes.
Result<Message> WireRoundTrip(const Message& message) {
  raft::v1::Message proto;
  MessageToProto(message, &proto);
  std::string bytes;
  CAIRN_CHECK(proto.SerializeToString(&bytes));
  raft::v1::Message parsed;
  CAIRN_CHECK(parsed.ParseFromString(bytes));
  return MessageFromProto(&parsed);
}

TEST(ConvertTest, EveryMessageTypeRoundTripsWithEntriesAndSnapshot) {
  for (int type = 0; type <= static_cast<int>(MessageType::kReadIndexResponse); ++type) {
    SCOPED_TRACE(type);
    const Message message = FullMessage(static_cast<MessageType>(type));
    Result<Message> decoded = WireRoundTrip(message);
    ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
    ExpectSameMessage(*decoded, message);
  }
}

TEST(ConvertTest, DefaultMessageRoundTripsWithoutSnapshot) {
  const Message message{.type = MessageType::kHeartbeat, .from = 1, .to = 2, .term = 3};
  raft::v1::Message proto;
  MessageToProto(message, &proto);
  EXPECT_FALSE(proto.has_snapshot());
  Result<Message> decoded = MessageFromProto(&proto);
  ASSERT_TRUE(decoded.ok());
  ExpectSameMessage(*decoded, message);
  EXPECT_TRUE(decoded->snapshot.IsEmpty());
}

TEST(ConvertTest, RejectsUnknownTypesAndMalformedConfigurations) {
  raft::v1::Message proto;
  MessageToProto(FullMessage(MessageType::kAppend), &proto);

  raft::v1::Message bad = proto;
  bad.set_type(static_cast<raft::v1::MessageType>(19));
  Result<Message> result = MessageFromProto(&bad);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(result.status().message().find("unknown raft message type 19"), std::string::npos);

  bad = proto;
  bad.mutable_entries(1)->set_type(static_cast<raft::v1::EntryType>(2));
  result = MessageFromProto(&bad);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(result.status().message().find("unknown raft entry type 2"), std::string::npos);

  const std::vector<std::pair<std::vector<uint64_t>, std::vector<uint64_t>>> bad_configs = {
      {{3, 1}, {}},      // unsorted voters
      {{1, 1}, {}},      // duplicate voter
      {{0, 1}, {}},      // node id 0
      {{1, 2}, {5, 4}},  // unsorted learners
      {{1, 4}, {2, 4}},  // voter and learner
  };
  for (const auto& [voters, learners] : bad_configs) {
    bad = proto;
    raft::v1::ConfigState* config = bad.mutable_snapshot()->mutable_metadata()->mutable_config();
    config->clear_voters();
    config->clear_learners();
    for (uint64_t id : voters) config->add_voters(id);
    for (uint64_t id : learners) config->add_learners(id);
    result = MessageFromProto(&bad);
    ASSERT_FALSE(result.ok()) << ::testing::PrintToString(voters);
    EXPECT_EQ(result.status().code(), StatusCode::kInvalidArgument);
  }
}

TEST(PeerUrlTest, ParsesHttpUrlsAndRefusesOthers) {
  EXPECT_EQ(PeerUrlToAddress("http://127.0.0.1:2380").value(), "127.0.0.1:2380");
  EXPECT_EQ(PeerUrlToAddress("http://node-1.example:2380/").value(), "node-1.example:2380");
  EXPECT_EQ(PeerUrlToAddress("http://[::1]:2380").value(), "[::1]:2380");
  for (const char* bad : {"https://127.0.0.1:2380", "127.0.0.1:2380", "http://127.0.0.1",
                          "http://127.0.0.1:", "http://127.0.0.1:0", "http://127.0.0.1:65536",
                          "http://127.0.0.1:23a0", "http://:2380", "http://h:2380/path",
                          "http://::1:2380", "http://[::1:2380"}) {
    Result<std::string> result = PeerUrlToAddress(bad);
    EXPECT_FALSE(result.ok()) << bad;
    if (!result.ok()) {
      EXPECT_EQ(result.status().code(), StatusCode::kInvalidArgument) << bad;
    }
  }
}

// A member's receiving side: a gRPC server with a PeerService that records what it delivers.
class PeerServer {
 public:
  // `configure`: apply ConfigurePeerServerBuilder (false: gRPC's defaults, 4 MiB messages).
  // `staging_dir`: where received snapshots are staged (empty: in memory, bounded by
  // `snapshot_bytes_max`).
  PeerServer(NodeId id, uint64_t cluster_id, bool configure = true, std::string staging_dir = "",
             uint64_t snapshot_bytes_max = 4ull * 1024 * 1024 * 1024)
      : id_(id), configure_(configure) {
    service_ = std::make_unique<PeerService>(
        id, cluster_id,
        [this](Message&& message) {
          if (block_deliver_) {
            std::unique_lock lock(mutex_);
            unblocked_.wait(lock, [&] { return !block_deliver_; });
          }
          std::lock_guard lock(mutex_);
          delivered_.push_back(std::move(message));
        },
        snapshot_bytes_max);
    service_->set_snapshot_staging_dir(std::move(staging_dir));
    Start();
  }
  PeerService* service() { return service_.get(); }
  ~PeerServer() {
    Unblock();
    Shutdown();
  }

  void Start() {
    grpc::ServerBuilder builder;
    if (configure_) ConfigurePeerServerBuilder(&builder);
    int selected_port = 0;
    builder.AddListeningPort("127.0.0.1:" + std::to_string(port_),
                             grpc::InsecureServerCredentials(), &selected_port);
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    CAIRN_CHECK(server_ != nullptr && selected_port != 0);
    port_ = selected_port;
  }
  void Shutdown() {
    if (server_ == nullptr) return;
    server_->Shutdown(std::chrono::system_clock::now() + milliseconds(100));
    server_->Wait();
    server_.reset();
  }
  std::string Url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  int port() const { return port_; }

  std::vector<Message> Delivered() {
    std::lock_guard lock(mutex_);
    return delivered_;
  }
  size_t DeliveredCount() {
    std::lock_guard lock(mutex_);
    return delivered_.size();
  }
  void BlockDeliver() { block_deliver_ = true; }
  void Unblock() {
    {
      std::lock_guard lock(mutex_);
      block_deliver_ = false;
    }
    unblocked_.notify_all();
  }

 private:
  const NodeId id_;
  const bool configure_;
  int port_ = 0;
  std::unique_ptr<PeerService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::mutex mutex_;
  std::condition_variable unblocked_;
  std::atomic<bool> block_deliver_{false};
  std::vector<Message> delivered_;
};

// Records a transport's callbacks.
struct Reports {
  std::mutex mutex;
  std::map<NodeId, int> unreachable;
  std::vector<std::pair<NodeId, bool>> snapshot_statuses;

  GrpcTransportCallbacks Callbacks() {
    return GrpcTransportCallbacks{.on_unreachable =
                                      [this](NodeId peer) {
                                        std::lock_guard lock(mutex);
                                        ++unreachable[peer];
                                      },
                                  .on_snapshot_status =
                                      [this](NodeId peer, bool failed) {
                                        std::lock_guard lock(mutex);
                                        snapshot_statuses.emplace_back(peer, failed);
                                      }};
  }
  int Unreachable(NodeId peer) {
    std::lock_guard lock(mutex);
    return unreachable.count(peer) ? unreachable[peer] : 0;
  }
  std::vector<std::pair<NodeId, bool>> SnapshotStatuses() {
    std::lock_guard lock(mutex);
    return snapshot_statuses;
  }
};

GrpcTransportOptions TestOptions(NodeId self) {
  GrpcTransportOptions options;
  options.self_id = self;
  options.cluster_id = kClusterId;
  options.reconnect_backoff_initial_ms = 20;
  options.reconnect_backoff_max_ms = 200;
  options.keepalive_time_ms = 1000;
  options.keepalive_timeout_ms = 1000;
  return options;
}

// An append from `from` to `to` whose index numbers it; payload `payload_bytes` of data.
Message Numbered(NodeId from, NodeId to, uint64_t index, size_t payload_bytes = 16) {
  return Message{
      .type = MessageType::kAppend,
      .from = from,
      .to = to,
      .term = 1,
      .index = index,
      .entries = {Entry{
          .term = 1, .index = index + 1, .data = std::string(payload_bytes, 'a' + index % 26)}}};
}

// Checks that `delivered` is strictly increasing by index (in order, no duplicates) and
// contains only messages from `from`.
void ExpectInOrder(const std::vector<Message>& delivered, NodeId from) {
  for (size_t i = 0; i < delivered.size(); ++i) {
    ASSERT_EQ(delivered[i].from, from);
    if (i > 0) {
      ASSERT_LT(delivered[i - 1].index, delivered[i].index) << "at " << i;
    }
  }
}

// A port on 127.0.0.1 where nothing listens (bound then released).
int UnusedPort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  CAIRN_CHECK(fd >= 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  CAIRN_CHECK(bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0);
  socklen_t length = sizeof(address);
  CAIRN_CHECK(getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0);
  close(fd);
  return ntohs(address.sin_port);
}

// A socket that listens but never accepts or answers: connections hang in the handshake.
class SilentListener {
 public:
  SilentListener() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    CAIRN_CHECK(fd_ >= 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CAIRN_CHECK(bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0);
    CAIRN_CHECK(listen(fd_, 16) == 0);
    socklen_t length = sizeof(address);
    CAIRN_CHECK(getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length) == 0);
    port_ = ntohs(address.sin_port);
  }
  ~SilentListener() { close(fd_); }
  std::string Url() const { return "http://127.0.0.1:" + std::to_string(port_); }

 private:
  int fd_ = -1;
  int port_ = 0;
};

TEST(GrpcTransportTest, ExchangesThousandsOfMessagesInOrderBothWays) {
  PeerServer server1(1, kClusterId);
  PeerServer server2(2, kClusterId);
  Reports reports1;
  Reports reports2;
  GrpcTransport transport1(TestOptions(1), reports1.Callbacks());
  GrpcTransport transport2(TestOptions(2), reports2.Callbacks());
  transport1.SetPeer(2, {server2.Url()});
  transport2.SetPeer(1, {server1.Url()});
  // Message 0 first, alone: while a stream is being dialed messages queue, and a slow first
  // dial on a loaded machine could let the burst below overflow the queue bound.
  transport1.Send({Numbered(1, 2, 0, 100)});
  transport2.Send({Numbered(2, 1, 0, 100)});
  ASSERT_TRUE(WaitUntil([&] { return server1.DeliveredCount() == 1; }));
  ASSERT_TRUE(WaitUntil([&] { return server2.DeliveredCount() == 1; }));
  // The senders pace themselves below the queue bound (4096): a starved sender thread on a
  // loaded machine would otherwise (rightly) drop the overflow. The bound has its own test.
  constexpr uint64_t kMessages = 5001;
  constexpr uint64_t kPerSend = 50;
  std::thread sender2([&] {
    for (uint64_t i = 1; i < kMessages; i += kPerSend) {
      std::vector<Message> messages;
      for (uint64_t j = i; j < i + kPerSend; ++j) messages.push_back(Numbered(2, 1, j, 100));
      transport2.Send(std::move(messages));
      WaitUntil([&] { return transport2.QueuedMessages(1) < 1000; });
    }
  });
  for (uint64_t i = 1; i < kMessages; i += kPerSend) {
    std::vector<Message> messages;
    for (uint64_t j = i; j < i + kPerSend; ++j) messages.push_back(Numbered(1, 2, j, 100));
    transport1.Send(std::move(messages));
    WaitUntil([&] { return transport1.QueuedMessages(2) < 1000; });
  }
  sender2.join();
  ASSERT_TRUE(WaitUntil([&] { return server2.DeliveredCount() == kMessages; }))
      << server2.DeliveredCount() << " delivered; stats dropped "
      << transport1.Stats().messages_dropped;
  ASSERT_TRUE(WaitUntil([&] { return server1.DeliveredCount() == kMessages; }))
      << server1.DeliveredCount();
  const std::vector<Message> delivered = server2.Delivered();
  ExpectInOrder(delivered, 1);
  for (uint64_t i = 0; i < kMessages; ++i) {
    ASSERT_EQ(delivered[i].index, i);
    ExpectSameMessage(delivered[i], Numbered(1, 2, i, 100));
  }
  ExpectInOrder(server1.Delivered(), 2);
  EXPECT_EQ(reports1.Unreachable(2), 0);
  EXPECT_EQ(transport1.Stats().messages_sent, kMessages);
  EXPECT_EQ(transport1.Stats().messages_dropped, 0u);
  EXPECT_LT(transport1.Stats().batches_sent, kMessages) << "queued messages are batched";
  EXPECT_EQ(transport1.Stats().streams_opened, 1u);
}

TEST(GrpcTransportTest, LargeSnapshotIsChunkedAndDeliveredIntact) {
  // gRPC's default 4 MiB receive limit: a 20 MiB snapshot only gets through in chunks.
  PeerServer server2(2, kClusterId, /*configure=*/false);
  Reports reports;
  GrpcTransport transport(TestOptions(1), reports.Callbacks());
  transport.SetPeer(2, {server2.Url()});
  std::string data(20 * 1024 * 1024 + 12345, '\0');
  std::mt19937_64 random(7);
  for (char& c : data) c = static_cast<char>(random());
  Message snapshot{.type = MessageType::kSnapshot, .from = 1, .to = 2, .term = 5};
  snapshot.snapshot.metadata = {.index = 1000, .term = 4, .config = {{1, 2, 3}, {}}};
  snapshot.snapshot.data = data;
  const Message expected = snapshot;
  // A heartbeat after it still arrives: snapshots do not hold up the stream.
  transport.Send({std::move(snapshot),
                  Message{.type = MessageType::kHeartbeat, .from = 1, .to = 2, .term = 5}});
  ASSERT_TRUE(WaitUntil([&] { return reports.SnapshotStatuses().size() == 1; }));
  EXPECT_EQ(reports.SnapshotStatuses()[0], std::make_pair(NodeId{2}, false));
  ASSERT_TRUE(WaitUntil([&] { return server2.DeliveredCount() == 2; }));
  const std::vector<Message> delivered = server2.Delivered();
  const Message* received = nullptr;
  for (const Message& message : delivered) {
    if (message.type == MessageType::kSnapshot) received = &message;
  }
  ASSERT_NE(received, nullptr);
  EXPECT_TRUE(received->snapshot.data == data) << "snapshot data differs";
  ExpectSameMessage(*received, expected);
  EXPECT_EQ(transport.Stats().snapshots_sent, 1u);
  EXPECT_EQ(transport.Stats().snapshots_failed, 0u);
}

// A directory under the system's temporary directory, removed with its contents.
class TemporaryDir {
 public:
  TemporaryDir() {
    path_ = std::filesystem::temp_directory_path() /
            ("cairn_transport_test_" + std::to_string(::getpid()) + "_" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TemporaryDir() { std::filesystem::remove_all(path_); }
  std::string path() const { return path_.string(); }
  std::vector<std::string> Files(const std::string& sub) const {
    std::vector<std::string> names;
    std::error_code error;
    for (const auto& entry : std::filesystem::directory_iterator(path_ / sub, error)) {
      names.push_back(entry.path().filename().string());
    }
    return names;
  }

 private:
  std::filesystem::path path_;
};

std::string ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// A snapshot in a file goes out read a chunk at a time and is staged to a file on the receiving
// side, which holds one chunk at a time: the receiver's in-memory bound (1 MiB) is far below
// the snapshot (5 MiB), which would be refused if it were reassembled in memory.
TEST(GrpcTransportTest, SnapshotFileIsStreamedToAStagedFile) {
  TemporaryDir dir;
  const std::string staging = dir.path() + "/staging";
  PeerServer server2(2, kClusterId, /*configure=*/true, staging, /*snapshot_bytes_max=*/1 << 20);
  Reports reports;
  GrpcTransportOptions options = TestOptions(1);
  options.snapshot_chunk_bytes = 64 * 1024;
  GrpcTransport transport(options, reports.Callbacks());
  transport.SetPeer(2, {server2.Url()});
  std::string data(5 * 1024 * 1024 + 777, '\0');
  std::mt19937_64 random(11);
  for (char& c : data) c = static_cast<char>(random());
  const std::string source = dir.path() + "/outgoing.snap";
  { std::ofstream(source, std::ios::binary) << data; }
  Message snapshot{.type = MessageType::kSnapshot, .from = 1, .to = 2, .term = 5};
  snapshot.snapshot.metadata = {.index = 1000, .term = 4, .config = {{1, 2, 3}, {}}};
  snapshot.snapshot.file = source;
  transport.Send({snapshot});
  ASSERT_TRUE(WaitUntil([&] { return reports.SnapshotStatuses().size() == 1; }));
  EXPECT_EQ(reports.SnapshotStatuses()[0], std::make_pair(NodeId{2}, false));
  ASSERT_EQ(server2.DeliveredCount(), 1u);
  const Message received = server2.Delivered()[0];
  EXPECT_TRUE(received.snapshot.data.empty());
  EXPECT_EQ(received.snapshot.metadata, snapshot.snapshot.metadata);
  ASSERT_TRUE(received.snapshot.file.starts_with(staging + "/received-1000-"))
      << received.snapshot.file;
  EXPECT_TRUE(ReadWholeFile(received.snapshot.file) == data) << "staged data differs";
  EXPECT_EQ(dir.Files("staging").size(), 1u) << "a part file was left";
  EXPECT_TRUE(ReadWholeFile(source) == data) << "the sender's file changed";
  EXPECT_GT(server2.service()->snapshot_chunk_bytes_max(), 0u);
  EXPECT_LE(server2.service()->snapshot_chunk_bytes_max(), options.snapshot_chunk_bytes);
  // The same data from memory to an in-memory receiver with that bound is refused: the bound
  // is real.
  PeerServer server3(3, kClusterId, /*configure=*/true, "", /*snapshot_bytes_max=*/1 << 20);
  transport.SetPeer(3, {server3.Url()});
  snapshot.to = 3;
  transport.Send({snapshot});
  ASSERT_TRUE(WaitUntil([&] { return reports.SnapshotStatuses().size() == 2; }));
  EXPECT_EQ(reports.SnapshotStatuses()[1], std::make_pair(NodeId{3}, true));
  EXPECT_EQ(server3.DeliveredCount(), 0u);
}

// A stream that breaks part way (the sender cancels after a few chunks) delivers nothing and
// leaves no file in the staging directory; a later complete stream is delivered.
TEST(GrpcTransportTest, BrokenSnapshotStreamLeavesNoStagedFile) {
  TemporaryDir dir;
  const std::string staging = dir.path() + "/staging";
  PeerServer server2(2, kClusterId, /*configure=*/true, staging);
  auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(server2.port()),
                                     grpc::InsecureChannelCredentials());
  auto stub = raft::v1::Raft::NewStub(channel);
  const std::string data(8 * 1024, 'x');
  {
    grpc::ClientContext context;
    raft::v1::SendResponse response;
    auto writer = stub->SendSnapshot(&context, &response);
    raft::v1::SnapshotChunk chunk;
    chunk.set_cluster_id(kClusterId);
    chunk.set_to(2);
    chunk.set_data_size_bytes(data.size() * 10);
    Message header{.type = MessageType::kSnapshot, .from = 1, .to = 2, .term = 5};
    header.snapshot.metadata = {.index = 7, .term = 4, .config = {{1, 2}, {}}};
    MessageToProto(std::move(header), chunk.mutable_message());
    for (int i = 0; i < 3; ++i) {
      chunk.set_data(data);
      ASSERT_TRUE(writer->Write(chunk));
      chunk.Clear();
    }
    ASSERT_TRUE(WaitUntil([&] {
      std::vector<std::string> files = dir.Files("staging");
      return files.size() == 1 && files[0].starts_with("receiving-7-");
    })) << "the chunks were not staged in a part file";
    context.TryCancel();
    EXPECT_FALSE(writer->Finish().ok());
  }
  ASSERT_TRUE(WaitUntil([&] { return dir.Files("staging").empty(); }))
      << "the broken stream left " << dir.Files("staging")[0];
  EXPECT_EQ(server2.DeliveredCount(), 0u);

  Reports reports;
  GrpcTransport transport(TestOptions(1), reports.Callbacks());
  transport.SetPeer(2, {server2.Url()});
  Message snapshot{.type = MessageType::kSnapshot, .from = 1, .to = 2, .term = 5};
  snapshot.snapshot.metadata = {.index = 8, .term = 4, .config = {{1, 2}, {}}};
  snapshot.snapshot.data = data;
  transport.Send({snapshot});
  ASSERT_TRUE(WaitUntil([&] { return server2.DeliveredCount() == 1; }));
  EXPECT_TRUE(ReadWholeFile(server2.Delivered()[0].snapshot.file) == data);
}

TEST(GrpcTransportTest, SnapshotToUnreachablePeerReportsFailure) {
  Reports reports;
  GrpcTransport transport(TestOptions(1), reports.Callbacks());
  transport.SetPeer(2, {"http://127.0.0.1:" + std::to_string(UnusedPort())});
  Message snapshot{.type = MessageType::kSnapshot, .from = 1, .to = 2, .term = 5};
  snapshot.snapshot.metadata.index = 10;
  snapshot.snapshot.data = "data";
  transport.Send({snapshot});
  ASSERT_TRUE(WaitUntil([&] { return reports.SnapshotStatuses().size() == 1; }));
  EXPECT_EQ(reports.SnapshotStatuses()[0], std::make_pair(NodeId{2}, true));
  // And to a peer never added.
  snapshot.to = 3;
  transport.Send({snapshot});
  ASSERT_TRUE(WaitUntil([&] { return reports.SnapshotStatuses().size() == 2; }));
  EXPECT_EQ(reports.SnapshotStatuses()[1], std::make_pair(NodeId{3}, true));
}

TEST(GrpcTransportTest, MessagesLargerThanGrpcDefaultLimitPassConfiguredServer) {
  PeerServer server2(2, kClusterId);
  Reports reports;
  GrpcTransport transport(TestOptions(1), reports.Callbacks());
  transport.SetPeer(2, {server2.Url()});
  // 9 MiB: one maximal entry and more; over gRPC's default 4 MiB limit.
  const Message big = Numbered(1, 2, 1, 9 * 1024 * 1024);
  transport.Send({big});
  ASSERT_TRUE(WaitUntil([&] { return server2.DeliveredCount() == 1; }));
  ExpectSameMessage(server2.Delivered()[0], big);
  // Over kPeerMessageBytesMax: dropped at once and reported.
  transport.Send({Numbered(1, 2, 2, kPeerMessageBytesMax)});
  ASSERT_TRUE(WaitUntil([&] { return reports.Unreachable(2) >= 1; }));
  EXPECT_EQ(transport.Stats().messages_dropped, 1u);
  EXPECT_EQ(server2.DeliveredCount(), 1u);
}

TEST(GrpcTransportTest, DownPeerIsReportedAndSendNeverBlocks) {
  Reports reports;
  GrpcTransport transport(TestOptions(1), reports.Callbacks());
  transport.SetPeer(2, {"http://127.0.0.1:" + std::to_string(UnusedPort())});
  const auto start = SteadyClock::now();
  for (uint64_t i = 0; i < 2000; ++i) transport.Send({Numbered(1, 2, i)});
  EXPECT_LT(SteadyClock::now() - start, milliseconds(500)) << "Send blocked";
  ASSERT_TRUE(WaitUntil([&] { return reports.Unreachable(2) >= 1; }));
  // Everything was dropped: nothing can have been sent, and nothing stays queued.
  ASSERT_TRUE(WaitUntil([&] { return transport.QueuedMessages(2) == 0; }));
  for (uint64_t i = 0; i < 100; ++i) transport.Send({Numbered(1, 2, 2000 + i)});
  ASSERT_TRUE(WaitUntil([&] { return transport.Stats().messages_dropped == 2100; }))
      << transport.Stats().messages_dropped;
  EXPECT_EQ(transport.Stats().messages_sent, 0u);
  // A peer never added is unreachable too.
  transport.Send({Numbered(1, 9, 1)});
  ASSERT_TRUE(WaitUntil([&] { return reports.Unreachable(9) == 1; }));
}

TEST(GrpcTransportTest, RestartedPeerGetsReconnectedAndDeliveryResumes) {
  auto server2 = std::make_unique<PeerServer>(2, kClusterId);
  Reports reports;
  GrpcTransport transport(TestOptions(1), reports.Callbacks());
  transport.SetPeer(2, {server2->Url()});
  uint64_t next = 0;
  for (; next < 100; ++next) transport.Send({Numbered(1, 2, next)});
  ASSERT_TRUE(WaitUntil([&] { return server2->DeliveredCount() == 100; }));
  const uint64_t streams_before = transport.Stats().streams_opened;

  server2->Shutdown();
  // Keep sending while it is down: the stream breaks, messages are dropped and reported.
  ASSERT_TRUE(WaitUntil([&] {
    transport.Send({Numbered(1, 2, next++)});
    std::this_thread::sleep_for(milliseconds(2));
    return reports.Unreachable(2) >= 1 && transport.Stats().messages_dropped > 0;
  }));
  server2->Start();  // same port, same service; it keeps what it delivered before
  ASSERT_TRUE(WaitUntil([&] {
    transport.Send({Numbered(1, 2, next++)});
    std::this_thread::sleep_for(milliseconds(2));
    return server2->DeliveredCount() > 150;
  })) << server2->DeliveredCount();
  EXPECT_GT(transport.Stats().streams_opened, streams_before);
  ExpectInOrder(server2->Delivered(), 1);
  // Every message is accounted for: written to a stream, or dropped.
  EXPECT_TRUE(WaitUntil([&] {
    const GrpcTransportStats stats = transport.Stats();
    return stats.messages_sent + stats.messages_dropped == next;
  })) << transport.Stats().messages_sent
      << " + " << transport.Stats().messages_dropped << " != " << next;
}

TEST(GrpcTransportTest, WrongClusterIsRefusedAndNothingDelivered) {
  PeerServer server2(2, kClusterId + 1);
  Reports reports;
  GrpcTransport transport(TestOptions(1), reports.Callbacks());
  transport.SetPeer(2, {server2.Url()});
  ASSERT_TRUE(WaitUntil([&] {
    transport.Send({Numbered(1, 2, 1)});
    std::this_thread::sleep_for(milliseconds(5));
    return reports.Unreachable(2) >= 1;
  }));
  EXPECT_EQ(server2.DeliveredCount(), 0u);

  // The status a sender sees, directly.
  auto stub = raft::v1::Raft::NewStub(grpc::CreateChannel(
      "127.0.0.1:" + std::to_string(server2.port()), grpc::InsecureChannelCredentials()));
  for (const auto& [cluster_id, to, expected] :
       std::vector<std::tuple<uint64_t, NodeId, std::string>>{
           {kClusterId, 2, "cluster ID mismatch"}, {kClusterId + 1, 3, "for member 3"}}) {
    grpc::ClientContext context;
    raft::v1::SendResponse response;
    auto writer = stub->Send(&context, &response);
    raft::v1::MessageBatch batch;
    batch.set_cluster_id(cluster_id);
    batch.set_to(to);
    MessageToProto(Numbered(1, to, 1), batch.add_messages());
    writer->Write(batch);
    writer->WritesDone();
    const grpc::Status status = writer->Finish();
    EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
    EXPECT_NE(status.error_message().find(expected), std::string::npos) << status.error_message();
  }
  EXPECT_EQ(server2.DeliveredCount(), 0u);
}

TEST(PeerServiceTest, RefusesMalformedBatchesWithoutPartialDelivery) {
  std::vector<Message> delivered;
  PeerService service(2, kClusterId, [&](Message&& m) { delivered.push_back(std::move(m)); });
  raft::v1::MessageBatch batch;
  batch.set_cluster_id(kClusterId);
  batch.set_to(2);
  MessageToProto(Numbered(1, 2, 1), batch.add_messages());
  MessageToProto(Numbered(1, 2, 2), batch.add_messages());
  batch.mutable_messages(1)->set_type(static_cast<raft::v1::MessageType>(77));
  raft::v1::MessageBatch copy = batch;
  Status status = service.DeliverBatch(&copy);
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(delivered.empty());

  batch.mutable_messages(1)->set_type(raft::v1::MESSAGE_TYPE_APPEND);
  batch.mutable_messages(1)->set_to(5);  // one message addressed elsewhere
  copy = batch;
  EXPECT_EQ(service.DeliverBatch(&copy).code(), StatusCode::kFailedPrecondition);
  EXPECT_TRUE(delivered.empty());

  batch.mutable_messages(1)->set_to(2);
  copy = batch;
  ASSERT_TRUE(service.DeliverBatch(&copy).ok());
  ASSERT_EQ(delivered.size(), 2u);
  EXPECT_EQ(delivered[0].index, 1u);
  EXPECT_EQ(delivered[1].index, 2u);
}

TEST(GrpcTransportTest, QueueBoundsHoldWhileThePeerCannotBeReached) {
  // A peer whose connection hangs in the handshake: the sender sits in its dial, messages
  // queue, and the queue must stay within its bounds.
  SilentListener silent;
  Reports reports;
  GrpcTransportOptions options = TestOptions(1);
  options.dial_timeout_ms = 10000;  // the whole test runs inside the first dial
  options.queue_messages_max = 100;
  options.queue_bytes_max = 64 * 1024;
  GrpcTransport transport(options, reports.Callbacks());
  transport.SetPeer(2, {silent.Url()});
  const auto start = SteadyClock::now();
  size_t queued_max = 0;
  size_t queued_bytes_max = 0;
  constexpr uint64_t kMessages = 10000;
  for (uint64_t i = 0; i < kMessages; ++i) {
    // 100 small messages fit the message bound; 2 KiB ones hit the byte bound first.
    transport.Send({Numbered(1, 2, i, i < kMessages / 2 ? 16 : 2048)});
    queued_max = std::max(queued_max, transport.QueuedMessages(2));
    queued_bytes_max = std::max(queued_bytes_max, transport.QueuedBytes(2));
    if (i == kMessages / 2 - 1) {
      EXPECT_EQ(transport.QueuedMessages(2), 100u);
      // Drain to compare the byte bound alone: remove and re-add the peer.
      transport.RemovePeer(2);
      transport.SetPeer(2, {silent.Url()});
    }
  }
  EXPECT_LT(SteadyClock::now() - start, milliseconds(2500)) << "Send blocked";
  EXPECT_LE(queued_max, 100u);
  EXPECT_LE(queued_bytes_max, 64u * 1024);
  const size_t per_message = Numbered(1, 2, 0, 2048).SizeBytes();
  EXPECT_EQ(transport.QueuedMessages(2), 64 * 1024 / per_message);
  EXPECT_GE(transport.Stats().messages_dropped, kMessages - 100 - 64 * 1024 / per_message);
  ASSERT_TRUE(WaitUntil([&] { return reports.Unreachable(2) >= 1; }));
  EXPECT_EQ(transport.Stats().messages_sent, 0u);
}

TEST(GrpcTransportTest, StalledReceiverIsCutByTheWriteTimeout) {
  PeerServer server2(2, kClusterId);
  Reports reports;
  GrpcTransportOptions options = TestOptions(1);
  options.write_timeout_ms = 300;
  options.queue_bytes_max = 256 * 1024 * 1024;
  options.queue_messages_max = 100000;
  GrpcTransport transport(options, reports.Callbacks());
  transport.SetPeer(2, {server2.Url()});
  transport.Send({Numbered(1, 2, 0)});
  ASSERT_TRUE(WaitUntil([&] { return server2.DeliveredCount() == 1; }));
  server2.BlockDeliver();
  // The receiver stops reading; HTTP/2 flow control soon blocks the sender's writes.
  uint64_t next = 1;
  ASSERT_TRUE(WaitUntil(
      [&] {
        std::vector<Message> messages;
        for (int i = 0; i < 16; ++i) messages.push_back(Numbered(1, 2, next++, 64 * 1024));
        transport.Send(std::move(messages));
        std::this_thread::sleep_for(milliseconds(5));
        return reports.Unreachable(2) >= 1;
      },
      milliseconds(20000)));
  server2.Unblock();
  // After the cut the sender redials and delivery resumes.
  const size_t delivered_before = server2.DeliveredCount();
  ASSERT_TRUE(WaitUntil([&] {
    transport.Send({Numbered(1, 2, next++)});
    std::this_thread::sleep_for(milliseconds(5));
    return server2.DeliveredCount() > delivered_before + 10;
  }));
  ExpectInOrder(server2.Delivered(), 1);
}

TEST(GrpcTransportTest, KeepalivePingsDoNotCutAnIdleStream) {
  // With ConfigurePeerServerBuilder the server accepts the pings. gRPC's default server policy
  // answers the fifth ping (after about 5 s here; 50 s with the default 10 s keepalive) with
  // GOAWAY too_many_pings, even while messages flow, and cuts the stream: without the
  // configuration this test fails.
  PeerServer server2(2, kClusterId);
  Reports reports;
  GrpcTransport transport(TestOptions(1), reports.Callbacks());  // keepalive every 1 s
  transport.SetPeer(2, {server2.Url()});
  transport.Send({Numbered(1, 2, 1)});
  ASSERT_TRUE(WaitUntil([&] { return server2.DeliveredCount() == 1; }));
  // Idle, then heartbeat-like traffic: each pattern must keep the one stream.
  std::this_thread::sleep_for(milliseconds(6000));
  for (uint64_t i = 2; i < 80; ++i) {
    transport.Send({Numbered(1, 2, i)});
    std::this_thread::sleep_for(milliseconds(50));
  }
  ASSERT_TRUE(WaitUntil([&] { return server2.DeliveredCount() == 79; }));
  EXPECT_EQ(transport.Stats().streams_opened, 1u);
  EXPECT_EQ(reports.Unreachable(2), 0);
}

TEST(GrpcTransportTest, NewUrlsRedirectTheStream) {
  PeerServer old_server(2, kClusterId);
  PeerServer new_server(2, kClusterId);
  Reports reports;
  GrpcTransport transport(TestOptions(1), reports.Callbacks());
  transport.SetPeer(2, {old_server.Url()});
  transport.Send({Numbered(1, 2, 1)});
  ASSERT_TRUE(WaitUntil([&] { return old_server.DeliveredCount() == 1; }));
  // The first URL is unreachable: the second one is used.
  transport.SetPeer(2, {"http://127.0.0.1:" + std::to_string(UnusedPort()), new_server.Url()});
  uint64_t next = 2;
  ASSERT_TRUE(WaitUntil([&] {
    transport.Send({Numbered(1, 2, next++)});
    std::this_thread::sleep_for(milliseconds(5));
    return new_server.DeliveredCount() >= 5;
  }));
  const size_t old_count = old_server.DeliveredCount();
  std::this_thread::sleep_for(milliseconds(100));
  transport.Send({Numbered(1, 2, next++)});
  std::this_thread::sleep_for(milliseconds(100));
  EXPECT_EQ(old_server.DeliveredCount(), old_count);
}

TEST(GrpcTransportTest, StopIsIdempotentAndLaterSendsAreDropped) {
  PeerServer server2(2, kClusterId);
  Reports reports;
  auto transport = std::make_unique<GrpcTransport>(TestOptions(1), reports.Callbacks());
  transport->SetPeer(2, {server2.Url()});
  transport->Send({Numbered(1, 2, 1)});
  ASSERT_TRUE(WaitUntil([&] { return server2.DeliveredCount() == 1; }));
  const auto start = SteadyClock::now();
  transport->Stop();
  EXPECT_LT(SteadyClock::now() - start, milliseconds(1000));
  transport->Stop();
  const int unreachable_before = reports.Unreachable(2);
  transport->Send({Numbered(1, 2, 2)});
  transport->SetPeer(3, {server2.Url()});
  std::this_thread::sleep_for(milliseconds(100));
  EXPECT_EQ(server2.DeliveredCount(), 1u);
  EXPECT_EQ(reports.Unreachable(2), unreachable_before) << "no callback after Stop";
  transport.reset();
}

}  // namespace
}  // namespace cairn::transport
