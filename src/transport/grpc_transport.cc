#include "src/transport/grpc_transport.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <deque>
#include <optional>
#include <string>
#include <utility>

#include "src/base/check.h"
#include "src/base/crc32c.h"
#include "src/base/logging.h"
#include "src/env/posix_file_system.h"
#include "src/transport/convert.h"
#include "src/transport/peer_url.h"

namespace cairn::transport {

namespace {

using SteadyClock = std::chrono::steady_clock;

// How often waits re-check for stop and URL changes, and how often the monitor looks for
// stalled writes: short enough that RemovePeer/Stop return promptly, long enough to cost
// nothing.
constexpr auto kPollInterval = std::chrono::milliseconds(20);

std::shared_ptr<spdlog::logger> Logger() {
  static const std::shared_ptr<spdlog::logger> logger = log::Get("transport");
  return logger;
}

}  // namespace

// One gRPC call whose writes the monitor watches (and RemovePeer/Stop/SetPeer cancel).
struct WatchedCall {
  grpc::ClientContext* context = nullptr;  // null when no call is in progress
  bool writing = false;
  SteadyClock::time_point write_started;
};

struct GrpcTransport::Peer {
  explicit Peer(raft::NodeId peer_id) : id(peer_id) {}

  const raft::NodeId id;
  std::mutex mutex;
  // Signalled on: a message or snapshot queued, URLs changed, stopping.
  std::condition_variable changed;
  std::vector<std::string> urls;          // GUARDED_BY(mutex)
  uint64_t urls_generation = 0;           // GUARDED_BY(mutex); bumped when the URLs change
  bool stopping = false;                  // GUARDED_BY(mutex)
  bool backing_off = false;               // GUARDED_BY(mutex); Send drops at once while set
  bool reachable = true;                  // GUARDED_BY(mutex); for logging state changes only
  std::deque<raft::Message> queue;        // GUARDED_BY(mutex)
  size_t queue_bytes = 0;                 // GUARDED_BY(mutex)
  std::optional<raft::Message> snapshot;  // GUARDED_BY(mutex); waiting for the snapshot sender
  bool snapshot_busy = false;             // GUARDED_BY(mutex); a snapshot is waiting or being sent
  WatchedCall stream_call;                // GUARDED_BY(mutex)
  WatchedCall snapshot_call;              // GUARDED_BY(mutex)
  std::thread sender;
  std::thread snapshot_sender;
};

namespace {

grpc::Status ToGrpcStatus(const Status& status) {
  if (status.ok()) return grpc::Status::OK;
  grpc::StatusCode code = grpc::StatusCode::INTERNAL;
  if (static_cast<int>(status.code()) <= static_cast<int>(StatusCode::kUnauthenticated)) {
    code = static_cast<grpc::StatusCode>(status.code());
  }
  return grpc::Status(code, std::string(status.message()));
}

// Marks a write of `call` as in progress (for the monitor's stall check). REQUIRES: lock held.
void BeginWrite(WatchedCall* call) {
  call->writing = true;
  call->write_started = SteadyClock::now();
}

// Drops the peer's queue; returns the number of messages dropped. REQUIRES: lock held.
size_t DropQueue(GrpcTransport::Peer* peer) {
  const size_t dropped = peer->queue.size();
  peer->queue.clear();
  peer->queue_bytes = 0;
  return dropped;
}

}  // namespace

void ConfigurePeerServerBuilder(grpc::ServerBuilder* builder) {
  builder->SetMaxReceiveMessageSize(static_cast<int>(kWireMessageBytesMax));
  // Accept keepalive pings down to 1 s apart, also between calls (GrpcTransportOptions'
  // keepalive_time_ms must not go below this), and never count them as abuse.
  builder->AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 1000);
  builder->AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder->AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 0);
}

// ---------------------------------------------------------------------------------------------
// GrpcTransport: public methods.

GrpcTransport::GrpcTransport(const GrpcTransportOptions& options, GrpcTransportCallbacks callbacks)
    : options_(options), callbacks_(std::move(callbacks)) {
  CAIRN_CHECK(options_.self_id != raft::kNoNode);
  CAIRN_CHECK(options_.queue_messages_max > 0 && options_.queue_bytes_max > 0);
  CAIRN_CHECK(options_.batch_bytes_max > 0 && options_.batch_bytes_max <= kPeerMessageBytesMax);
  CAIRN_CHECK(options_.reconnect_backoff_initial_ms > 0 &&
              options_.reconnect_backoff_initial_ms <= options_.reconnect_backoff_max_ms);
  CAIRN_CHECK(options_.dial_timeout_ms > 0 && options_.write_timeout_ms > 0);
  CAIRN_CHECK(options_.keepalive_time_ms == 0 || options_.keepalive_time_ms >= 1000);
  CAIRN_CHECK(options_.snapshot_chunk_bytes > 0 &&
              options_.snapshot_chunk_bytes <= kSnapshotChunkBytesMax);
  monitor_ = std::thread([this] { MonitorLoop(); });
}

GrpcTransport::~GrpcTransport() { Stop(); }

void GrpcTransport::Send(std::vector<raft::Message> messages) {
  {
    std::lock_guard lock(mutex_);
    if (stopped_) {
      std::lock_guard stats_lock(stats_mutex_);
      stats_.messages_dropped += messages.size();
      return;
    }
  }
  std::shared_ptr<Peer> peer;
  uint64_t dropped = 0;
  for (raft::Message& message : messages) {
    CAIRN_CHECK(!raft::IsLocalMessage(message.type));
    CAIRN_CHECK(message.to != raft::kNoNode && message.to != options_.self_id);
    if (peer == nullptr || peer->id != message.to) peer = FindPeer(message.to);
    if (peer == nullptr) {
      // Unknown peer (never added, removed, or the transport stopped).
      ++dropped;
      if (message.type == raft::MessageType::kSnapshot) {
        ReportSnapshotStatus(message.to, /*failed=*/true);
      } else {
        ReportUnreachable(message.to);
      }
      continue;
    }
    if (message.type == raft::MessageType::kSnapshot) {
      std::unique_lock lock(peer->mutex);
      if (peer->stopping || peer->snapshot_busy) {
        lock.unlock();
        ++dropped;
        ReportSnapshotStatus(peer->id, /*failed=*/true);
        continue;
      }
      peer->snapshot_busy = true;
      peer->snapshot = std::move(message);
      lock.unlock();
      peer->changed.notify_all();
      continue;
    }
    const size_t size_bytes = message.SizeBytes();
    if (size_bytes > kPeerMessageBytesMax) {
      Logger()->error("dropping a {}-byte {} message to {}: over the {}-byte limit", size_bytes,
                      raft::MessageTypeName(message.type), message.to, kPeerMessageBytesMax);
      ++dropped;
      ReportUnreachable(peer->id);
      continue;
    }
    std::unique_lock lock(peer->mutex);
    if (peer->stopping || peer->backing_off ||
        peer->queue.size() + 1 > options_.queue_messages_max ||
        peer->queue_bytes + size_bytes > options_.queue_bytes_max) {
      lock.unlock();
      ++dropped;
      ReportUnreachable(peer->id);
      continue;
    }
    peer->queue.push_back(std::move(message));
    peer->queue_bytes += size_bytes;
    lock.unlock();
    peer->changed.notify_all();
  }
  if (dropped > 0) {
    std::lock_guard lock(stats_mutex_);
    stats_.messages_dropped += dropped;
  }
}

void GrpcTransport::SetPeer(raft::NodeId id, std::vector<std::string> urls) {
  CAIRN_CHECK(id != raft::kNoNode && id != options_.self_id);
  std::lock_guard lock(mutex_);
  if (stopped_) return;
  auto it = peers_.find(id);
  if (it != peers_.end()) {
    Peer* peer = it->second.get();
    std::unique_lock peer_lock(peer->mutex);
    if (peer->urls == urls) return;
    peer->urls = std::move(urls);
    ++peer->urls_generation;
    // The sender redials at once; a snapshot in progress finishes on its connection.
    if (peer->stream_call.context != nullptr) peer->stream_call.context->TryCancel();
    peer_lock.unlock();
    peer->changed.notify_all();
    return;
  }
  auto peer = std::make_shared<Peer>(id);
  peer->urls = std::move(urls);
  Peer* raw = peer.get();
  peer->sender = std::thread([this, raw] { SenderLoop(raw); });
  peer->snapshot_sender = std::thread([this, raw] { SnapshotLoop(raw); });
  peers_.emplace(id, std::move(peer));
}

void GrpcTransport::RemovePeer(raft::NodeId id) {
  std::shared_ptr<Peer> peer;
  {
    std::lock_guard lock(mutex_);
    auto it = peers_.find(id);
    if (it == peers_.end()) return;
    peer = std::move(it->second);
    peers_.erase(it);
  }
  StopPeer(peer.get());
}

void GrpcTransport::Stop() {
  CAIRN_CHECK_MSG(std::this_thread::get_id() != monitor_.get_id(),
                  "GrpcTransport::Stop called from a transport callback");
  std::map<raft::NodeId, std::shared_ptr<Peer>> peers;
  {
    std::lock_guard lock(mutex_);
    if (stopped_) return;
    stopped_ = true;
    peers.swap(peers_);
  }
  for (auto& [id, peer] : peers) StopPeer(peer.get());
  {
    std::lock_guard lock(reports_mutex_);
    monitor_stopping_ = true;
  }
  reports_changed_.notify_all();
  monitor_.join();
}

GrpcTransportStats GrpcTransport::Stats() const {
  std::lock_guard lock(stats_mutex_);
  return stats_;
}

size_t GrpcTransport::QueuedMessages(raft::NodeId id) const {
  std::shared_ptr<Peer> peer = FindPeer(id);
  if (peer == nullptr) return 0;
  std::lock_guard lock(peer->mutex);
  return peer->queue.size();
}

size_t GrpcTransport::QueuedBytes(raft::NodeId id) const {
  std::shared_ptr<Peer> peer = FindPeer(id);
  if (peer == nullptr) return 0;
  std::lock_guard lock(peer->mutex);
  return peer->queue_bytes;
}

// ---------------------------------------------------------------------------------------------
// GrpcTransport: peers' threads.

std::shared_ptr<GrpcTransport::Peer> GrpcTransport::FindPeer(raft::NodeId id) const {
  std::lock_guard lock(mutex_);
  auto it = peers_.find(id);
  return it == peers_.end() ? nullptr : it->second;
}

void GrpcTransport::StopPeer(Peer* peer) {
  size_t dropped = 0;
  {
    std::lock_guard lock(peer->mutex);
    peer->stopping = true;
    dropped = DropQueue(peer);
    if (peer->stream_call.context != nullptr) peer->stream_call.context->TryCancel();
    if (peer->snapshot_call.context != nullptr) peer->snapshot_call.context->TryCancel();
  }
  peer->changed.notify_all();
  peer->sender.join();
  peer->snapshot_sender.join();
  std::lock_guard lock(stats_mutex_);
  stats_.messages_dropped += dropped;
}

void GrpcTransport::SenderLoop(Peer* peer) {
  int64_t backoff_ms = options_.reconnect_backoff_initial_ms;
  while (true) {
    uint64_t generation = 0;
    std::string address;
    std::shared_ptr<grpc::Channel> channel = Dial(peer, &generation, &address);
    bool wrote = false;
    std::string failure = "no peer URL is reachable";
    if (channel != nullptr) wrote = RunStream(peer, channel, generation, &failure);
    size_t dropped = 0;
    {
      std::lock_guard lock(peer->mutex);
      if (peer->stopping) return;
      // New URLs: redial at once, keeping the queue.
      if (peer->urls_generation != generation) continue;
      dropped = DropQueue(peer);
      peer->backing_off = true;
      if (peer->reachable) {
        peer->reachable = false;
        Logger()->warn("peer {} unreachable ({}); dropping its messages while redialing", peer->id,
                       failure);
      }
    }
    if (wrote) backoff_ms = options_.reconnect_backoff_initial_ms;
    ReportUnreachable(peer->id);
    {
      std::lock_guard lock(stats_mutex_);
      stats_.messages_dropped += dropped;
    }
    std::unique_lock lock(peer->mutex);
    peer->changed.wait_for(lock, std::chrono::milliseconds(backoff_ms),
                           [&] { return peer->stopping || peer->urls_generation != generation; });
    peer->backing_off = false;
    if (peer->stopping) return;
    lock.unlock();
    backoff_ms = std::min(backoff_ms * 2, options_.reconnect_backoff_max_ms);
  }
}

std::shared_ptr<grpc::Channel> GrpcTransport::Dial(Peer* peer, uint64_t* generation,
                                                   std::string* address_out) {
  std::vector<std::string> urls;
  {
    std::lock_guard lock(peer->mutex);
    if (peer->stopping) return nullptr;
    urls = peer->urls;
    *generation = peer->urls_generation;
  }
  auto abandon = [&] {
    std::lock_guard lock(peer->mutex);
    return peer->stopping || peer->urls_generation != *generation;
  };
  for (const std::string& url : urls) {
    Result<std::string> address = PeerUrlToAddress(url);
    if (!address.ok()) {
      Logger()->error("peer {}: {}", peer->id, address.status().ToString());
      continue;
    }
    grpc::ChannelArguments args;
    // A channel of its own per dial: the global subchannel pool would hand back a subchannel
    // still inside gRPC's own reconnect backoff from the previous attempt.
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    args.SetMaxSendMessageSize(static_cast<int>(kWireMessageBytesMax));
    if (options_.keepalive_time_ms > 0) {
      args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, static_cast<int>(options_.keepalive_time_ms));
      args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, static_cast<int>(options_.keepalive_timeout_ms));
      args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
    }
    std::shared_ptr<grpc::Channel> channel =
        grpc::CreateCustomChannel(*address, grpc::InsecureChannelCredentials(), args);
    const auto deadline = SteadyClock::now() + std::chrono::milliseconds(options_.dial_timeout_ms);
    grpc_connectivity_state state = channel->GetState(/*try_to_connect=*/true);
    while (state != GRPC_CHANNEL_READY && state != GRPC_CHANNEL_TRANSIENT_FAILURE &&
           state != GRPC_CHANNEL_SHUTDOWN && SteadyClock::now() < deadline && !abandon()) {
      const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(
          std::min(deadline - SteadyClock::now(), SteadyClock::duration(kPollInterval)));
      channel->WaitForStateChange(
          state,
          gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                       gpr_time_from_millis(std::max<int64_t>(wait.count(), 1), GPR_TIMESPAN)));
      state = channel->GetState(/*try_to_connect=*/true);
    }
    if (state == GRPC_CHANNEL_READY) {
      *address_out = *address;
      return channel;
    }
    if (abandon()) return nullptr;
  }
  return nullptr;
}

bool GrpcTransport::RunStream(Peer* peer, const std::shared_ptr<grpc::Channel>& channel,
                              uint64_t generation, std::string* failure) {
  std::unique_ptr<raft::v1::Raft::Stub> stub = raft::v1::Raft::NewStub(channel);
  grpc::ClientContext context;
  raft::v1::SendResponse response;
  {
    std::lock_guard lock(peer->mutex);
    if (peer->stopping || peer->urls_generation != generation) return false;
    peer->stream_call = WatchedCall{.context = &context};
    if (!peer->reachable) {
      peer->reachable = true;
      Logger()->info("peer {} reachable again", peer->id);
    }
  }
  std::unique_ptr<grpc::ClientWriter<raft::v1::MessageBatch>> writer =
      stub->Send(&context, &response);
  {
    std::lock_guard lock(stats_mutex_);
    ++stats_.streams_opened;
  }
  bool wrote = false;
  bool cancelled = false;
  raft::v1::MessageBatch batch;
  std::vector<raft::Message> taken;
  while (true) {
    taken.clear();
    {
      std::unique_lock lock(peer->mutex);
      peer->changed.wait(lock, [&] {
        return peer->stopping || peer->urls_generation != generation || !peer->queue.empty();
      });
      if (peer->stopping || peer->urls_generation != generation) {
        cancelled = true;
        break;
      }
      size_t batch_bytes = 0;
      while (!peer->queue.empty()) {
        const size_t size_bytes = peer->queue.front().SizeBytes();
        if (!taken.empty() && batch_bytes + size_bytes > options_.batch_bytes_max) break;
        batch_bytes += size_bytes;
        taken.push_back(std::move(peer->queue.front()));
        peer->queue.pop_front();
      }
      peer->queue_bytes -= batch_bytes;
      BeginWrite(&peer->stream_call);
    }
    batch.Clear();
    batch.set_cluster_id(options_.cluster_id);
    batch.set_to(peer->id);
    for (raft::Message& message : taken) MessageToProto(std::move(message), batch.add_messages());
    const bool ok = writer->Write(batch);
    {
      std::lock_guard lock(peer->mutex);
      peer->stream_call.writing = false;
    }
    std::lock_guard lock(stats_mutex_);
    if (!ok) {
      stats_.messages_dropped += taken.size();
      break;
    }
    wrote = true;
    stats_.messages_sent += taken.size();
    ++stats_.batches_sent;
  }
  if (cancelled) context.TryCancel();
  const grpc::Status status = writer->Finish();
  {
    std::lock_guard lock(peer->mutex);
    peer->stream_call = WatchedCall{};
  }
  if (!cancelled) {
    *failure =
        "stream ended: code " + std::to_string(status.error_code()) + ", " + status.error_message();
    if (status.error_code() == grpc::StatusCode::FAILED_PRECONDITION ||
        status.error_code() == grpc::StatusCode::INVALID_ARGUMENT) {
      Logger()->error("peer {} refused our messages: {}", peer->id, status.error_message());
    }
  }
  return wrote;
}

void GrpcTransport::SnapshotLoop(Peer* peer) {
  while (true) {
    raft::Message message;
    {
      std::unique_lock lock(peer->mutex);
      peer->changed.wait(lock, [&] { return peer->stopping || peer->snapshot.has_value(); });
      if (!peer->snapshot.has_value()) return;  // stopping, nothing pending
      message = std::move(*peer->snapshot);
      peer->snapshot.reset();
    }
    const bool delivered = SendSnapshot(peer, std::move(message));
    {
      std::lock_guard lock(stats_mutex_);
      ++(delivered ? stats_.snapshots_sent : stats_.snapshots_failed);
    }
    ReportSnapshotStatus(peer->id, /*failed=*/!delivered);
    std::lock_guard lock(peer->mutex);
    peer->snapshot_busy = false;
  }
}

namespace {

// The bytes of a kSnapshot message being sent: its `data`, or its `file` read one chunk at a
// time (never the whole file at once).
class SnapshotSource {
 public:
  // Takes the data out of `snapshot` (a file is opened and checksummed in one pass of
  // chunk-sized reads).
  static Result<SnapshotSource> Open(raft::Snapshot* snapshot, size_t chunk_bytes) {
    SnapshotSource source;
    if (snapshot->file.empty()) {
      source.data_ = std::move(snapshot->data);
      snapshot->data.clear();
      source.size_bytes_ = source.data_.size();
      source.crc32c_ = crc32c::Value(source.data_);
      return source;
    }
    CAIRN_CHECK(snapshot->data.empty());
    env::FileSystem* fs = env::PosixFileSystem::Default();
    CAIRN_ASSIGN_OR_RETURN(source.size_bytes_, fs->GetFileSize(snapshot->file));
    CAIRN_ASSIGN_OR_RETURN(source.file_, fs->NewReadableFile(snapshot->file));
    snapshot->file.clear();
    std::string chunk;
    for (uint64_t offset = 0; offset < source.size_bytes_; offset += chunk.size()) {
      CAIRN_RETURN_IF_ERROR(source.Read(offset, chunk_bytes, &chunk));
      source.crc32c_ = crc32c::Extend(source.crc32c_, chunk.data(), chunk.size());
    }
    return source;
  }

  uint64_t size_bytes() const { return size_bytes_; }
  uint32_t crc32c() const { return crc32c_; }
  // Sets *out to the (at most n) bytes at `offset`; Corruption when the file got shorter.
  Status Read(uint64_t offset, size_t n, std::string* out) const {
    const size_t size = static_cast<size_t>(std::min<uint64_t>(n, size_bytes_ - offset));
    if (file_ == nullptr) {
      out->assign(data_, static_cast<size_t>(offset), size);
      return Status::Ok();
    }
    out->clear();
    CAIRN_RETURN_IF_ERROR(file_->Read(offset, size, out));
    if (out->size() != size) return Status::Corruption("snapshot file shrank while it was sent");
    return Status::Ok();
  }

 private:
  std::string data_;
  std::unique_ptr<env::ReadableFile> file_;
  uint64_t size_bytes_ = 0;
  uint32_t crc32c_ = 0;
};

}  // namespace

bool GrpcTransport::SendSnapshot(Peer* peer, raft::Message message) {
  const uint64_t index = message.snapshot.metadata.index;
  Result<SnapshotSource> source =
      SnapshotSource::Open(&message.snapshot, options_.snapshot_chunk_bytes);
  if (!source.ok()) {
    Logger()->warn("snapshot at index {} to peer {} failed: {}", index, peer->id,
                   source.status().ToString());
    return false;
  }
  uint64_t generation = 0;
  std::string address;
  std::shared_ptr<grpc::Channel> channel = Dial(peer, &generation, &address);
  if (channel == nullptr) {
    Logger()->warn("snapshot at index {} to peer {} failed: peer unreachable", index, peer->id);
    return false;
  }
  std::unique_ptr<raft::v1::Raft::Stub> stub = raft::v1::Raft::NewStub(channel);
  grpc::ClientContext context;
  raft::v1::SendResponse response;
  {
    std::lock_guard lock(peer->mutex);
    if (peer->stopping) return false;
    peer->snapshot_call = WatchedCall{.context = &context};
  }
  const uint64_t size_bytes = source->size_bytes();
  raft::v1::SnapshotChunk chunk;
  chunk.set_cluster_id(options_.cluster_id);
  chunk.set_to(peer->id);
  chunk.set_data_size_bytes(size_bytes);
  chunk.set_data_crc32c(source->crc32c());
  MessageToProto(std::move(message), chunk.mutable_message());
  std::unique_ptr<grpc::ClientWriter<raft::v1::SnapshotChunk>> writer =
      stub->SendSnapshot(&context, &response);
  // Every write, and the final WritesDone + Finish (the receiver delivers before answering),
  // is watched by the monitor. One chunk of data is held at a time.
  uint64_t offset = 0;
  bool ok = true;
  Status read;
  do {
    read = source->Read(offset, options_.snapshot_chunk_bytes, chunk.mutable_data());
    if (!read.ok()) {
      context.TryCancel();
      ok = false;
      break;
    }
    const size_t size = chunk.data().size();
    {
      std::lock_guard lock(peer->mutex);
      if (peer->stopping) {
        context.TryCancel();
        ok = false;
        break;
      }
      BeginWrite(&peer->snapshot_call);
    }
    ok = writer->Write(chunk);
    offset += size;
    chunk.Clear();
  } while (ok && offset < size_bytes);
  if (ok) ok = writer->WritesDone();
  const grpc::Status status = writer->Finish();
  {
    std::lock_guard lock(peer->mutex);
    peer->snapshot_call = WatchedCall{};
  }
  if (!ok || !status.ok()) {
    Logger()->warn("snapshot at index {} ({} bytes) to peer {} at {} failed: {} {} {}", index,
                   size_bytes, peer->id, address, static_cast<int>(status.error_code()),
                   status.error_message(), read.ok() ? "" : read.ToString());
    return false;
  }
  Logger()->info("snapshot at index {} ({} bytes) delivered to peer {}", index, size_bytes,
                 peer->id);
  return true;
}

// ---------------------------------------------------------------------------------------------
// GrpcTransport: reports and the monitor thread.

void GrpcTransport::ReportUnreachable(raft::NodeId id) {
  {
    std::lock_guard lock(reports_mutex_);
    if (!unreachable_pending_.insert(id).second) return;  // already pending: coalesced
  }
  reports_changed_.notify_all();
}

void GrpcTransport::ReportSnapshotStatus(raft::NodeId id, bool failed) {
  {
    std::lock_guard lock(reports_mutex_);
    snapshot_status_pending_.emplace_back(id, failed);
  }
  reports_changed_.notify_all();
}

void GrpcTransport::DispatchReports() {
  std::set<raft::NodeId> unreachable;
  std::vector<std::pair<raft::NodeId, bool>> snapshot_statuses;
  {
    std::lock_guard lock(reports_mutex_);
    unreachable.swap(unreachable_pending_);
    snapshot_statuses.swap(snapshot_status_pending_);
  }
  for (raft::NodeId id : unreachable) {
    if (callbacks_.on_unreachable) callbacks_.on_unreachable(id);
  }
  for (const auto& [id, failed] : snapshot_statuses) {
    if (callbacks_.on_snapshot_status) callbacks_.on_snapshot_status(id, failed);
  }
}

void GrpcTransport::CancelStalledWrites() {
  std::vector<std::shared_ptr<Peer>> peers;
  {
    std::lock_guard lock(mutex_);
    for (const auto& [id, peer] : peers_) peers.push_back(peer);
  }
  const auto now = SteadyClock::now();
  const auto timeout = std::chrono::milliseconds(options_.write_timeout_ms);
  for (const std::shared_ptr<Peer>& peer : peers) {
    std::lock_guard lock(peer->mutex);
    for (WatchedCall* call : {&peer->stream_call, &peer->snapshot_call}) {
      if (call->context != nullptr && call->writing && now - call->write_started > timeout) {
        Logger()->warn("peer {}: a write has not completed in {} ms; cancelling the stream",
                       peer->id, options_.write_timeout_ms);
        call->context->TryCancel();
        call->writing = false;  // cancelled once
      }
    }
  }
}

void GrpcTransport::MonitorLoop() {
  while (true) {
    bool stopping = false;
    {
      std::unique_lock lock(reports_mutex_);
      reports_changed_.wait_for(lock, kPollInterval, [&] {
        return monitor_stopping_ || !unreachable_pending_.empty() ||
               !snapshot_status_pending_.empty();
      });
      stopping = monitor_stopping_;
    }
    // Every peer thread has been joined before monitor_stopping_ is set, so this last
    // dispatch delivers every report.
    DispatchReports();
    if (stopping) return;
    CancelStalledWrites();
  }
}

// ---------------------------------------------------------------------------------------------
// PeerService.

namespace {

// Reads a Raft.Send stream: each batch is checked, decoded and delivered before the next read.
class BatchReader final : public grpc::ServerReadReactor<raft::v1::MessageBatch> {
 public:
  explicit BatchReader(const PeerService* service) : service_(service) { StartRead(&batch_); }

  void OnReadDone(bool ok) override {
    if (!ok) {  // the sender closed the stream (or it was cancelled)
      Finish(grpc::Status::OK);
      return;
    }
    const Status status = service_->DeliverBatch(&batch_);
    if (!status.ok()) {
      Finish(ToGrpcStatus(status));
      return;
    }
    batch_.Clear();
    StartRead(&batch_);
  }
  void OnDone() override { delete this; }

 private:
  const PeerService* const service_;
  raft::v1::MessageBatch batch_;
};

// Reads a Raft.SendSnapshot stream: a header chunk, data chunks, then the sender's half-close,
// upon which the data is checked and the message delivered. With a staging directory the data
// is appended to <dir>/receiving-<n>.part as it arrives (one chunk in memory) and, complete
// and checked, synced and renamed to <dir>/received-<n>.snap, whose path the delivered message
// carries in snapshot.file; a stream that ends any other way deletes its part file. Without
// one the data is reassembled in memory (bounded by snapshot_bytes_max).
class SnapshotReader final : public grpc::ServerReadReactor<raft::v1::SnapshotChunk> {
 public:
  SnapshotReader(PeerService* service, grpc::CallbackServerContext* context)
      : service_(service), context_(context) {
    StartRead(&chunk_);
  }

  void OnReadDone(bool ok) override {
    const Status status = ok ? OnChunk() : OnEnd();
    if (!status.ok()) {
      Finish(ToGrpcStatus(status));
    } else if (ok) {
      chunk_.Clear();
      StartRead(&chunk_);
    } else {
      Finish(grpc::Status::OK);
    }
  }
  void OnDone() override {
    Abandon();
    delete this;
  }

 private:
  Status OnHeader() {
    CAIRN_RETURN_IF_ERROR(service_->CheckAddress(chunk_.cluster_id(), chunk_.to()));
    if (!chunk_.has_message()) {
      return Status::InvalidArgument("the first snapshot chunk carries no message");
    }
    CAIRN_ASSIGN_OR_RETURN(message_, MessageFromProto(chunk_.mutable_message()));
    if (message_.type != raft::MessageType::kSnapshot || message_.snapshot.IsEmpty() ||
        !message_.snapshot.data.empty()) {
      return Status::InvalidArgument(
          "the first snapshot chunk must carry a kSnapshot message without data");
    }
    CAIRN_RETURN_IF_ERROR(service_->CheckAddress(chunk_.cluster_id(), message_.to));
    expected_bytes_ = chunk_.data_size_bytes();
    expected_crc32c_ = chunk_.data_crc32c();
    const std::string& dir = service_->snapshot_staging_dir();
    if (dir.empty()) {
      if (expected_bytes_ > service_->snapshot_bytes_max()) {
        return Status::ResourceExhausted("snapshot of " + std::to_string(expected_bytes_) +
                                         " bytes exceeds this member's limit of " +
                                         std::to_string(service_->snapshot_bytes_max()) + " bytes");
      }
      // Reserve what was announced, within reason: the announcement is peer input.
      data_.reserve(std::min<uint64_t>(expected_bytes_, 64 * 1024 * 1024));
      return Status::Ok();
    }
    env::FileSystem* fs = env::PosixFileSystem::Default();
    CAIRN_RETURN_IF_ERROR(fs->CreateDirs(dir));
    const std::string name = std::to_string(message_.snapshot.metadata.index) + "-" +
                             std::to_string(service_->NextStagingNumber());
    part_path_ = dir + "/" + std::string(kReceivingSnapshotPrefix) + name + ".part";
    staged_path_ = dir + "/" + std::string(kReceivedSnapshotPrefix) + name + ".snap";
    CAIRN_ASSIGN_OR_RETURN(part_, fs->NewWritableFile(part_path_));
    return Status::Ok();
  }

  Status OnChunk() {
    if (service_->snapshot_chunk_test_hook()) {
      CAIRN_RETURN_IF_ERROR(service_->snapshot_chunk_test_hook()(received_bytes_));
    }
    if (!header_seen_) {
      header_seen_ = true;
      CAIRN_RETURN_IF_ERROR(OnHeader());
    } else if (chunk_.has_message() || chunk_.cluster_id() != 0 || chunk_.to() != 0) {
      return Status::InvalidArgument("a snapshot chunk after the first carries a header");
    }
    const std::string& data = chunk_.data();
    if (data.size() > kSnapshotChunkBytesMax) {
      return Status::InvalidArgument("snapshot chunk of " + std::to_string(data.size()) +
                                     " bytes exceeds the chunk limit");
    }
    if (data.size() > expected_bytes_ - received_bytes_) {
      return Status::InvalidArgument("snapshot data exceeds the announced " +
                                     std::to_string(expected_bytes_) + " bytes");
    }
    received_bytes_ += data.size();
    crc32c_ = crc32c::Extend(crc32c_, data.data(), data.size());
    service_->NoteSnapshotChunk(data.size());
    if (part_ != nullptr) return part_->Append(data);
    data_.append(data);
    return Status::Ok();
  }

  Status OnEnd() {
    if (context_->IsCancelled()) return Status::Cancelled("snapshot transfer cancelled");
    if (!header_seen_) return Status::InvalidArgument("snapshot stream ended without a header");
    if (received_bytes_ != expected_bytes_) {
      return Status::InvalidArgument("snapshot stream ended after " +
                                     std::to_string(received_bytes_) + " of " +
                                     std::to_string(expected_bytes_) + " bytes");
    }
    if (crc32c_ != expected_crc32c_) {
      return Status(StatusCode::kDataLoss, "snapshot data checksum mismatch");
    }
    if (part_ != nullptr) {
      // Durable under its final name before the node is told: the node renames it into place.
      env::FileSystem* fs = env::PosixFileSystem::Default();
      CAIRN_RETURN_IF_ERROR(part_->Sync());
      CAIRN_RETURN_IF_ERROR(part_->Close());
      part_.reset();
      CAIRN_RETURN_IF_ERROR(fs->RenameFile(part_path_, staged_path_));
      part_path_.clear();
      CAIRN_RETURN_IF_ERROR(fs->SyncDir(service_->snapshot_staging_dir()));
      message_.snapshot.file = std::move(staged_path_);
      staged_path_.clear();
    } else {
      message_.snapshot.data = std::move(data_);
    }
    service_->deliver()(std::move(message_));
    return Status::Ok();
  }

  // Deletes what an incomplete stream staged (a delivered file belongs to the node).
  void Abandon() {
    env::FileSystem* fs = env::PosixFileSystem::Default();
    if (part_ != nullptr) (void)part_->Close();
    for (const std::string* path : {&part_path_, &staged_path_}) {
      if (!path->empty() && fs->FileExists(*path)) (void)fs->DeleteFile(*path);
    }
  }

  PeerService* const service_;
  grpc::CallbackServerContext* const context_;
  raft::v1::SnapshotChunk chunk_;
  bool header_seen_ = false;
  raft::Message message_;
  uint64_t expected_bytes_ = 0;
  uint32_t expected_crc32c_ = 0;
  uint64_t received_bytes_ = 0;
  uint32_t crc32c_ = 0;
  std::string data_;                         // without a staging directory
  std::unique_ptr<env::WritableFile> part_;  // with one
  std::string part_path_;
  std::string staged_path_;
};

}  // namespace

PeerService::PeerService(raft::NodeId self_id, uint64_t cluster_id, Deliver deliver,
                         uint64_t snapshot_bytes_max)
    : self_id_(self_id),
      cluster_id_(cluster_id),
      deliver_(std::move(deliver)),
      snapshot_bytes_max_(snapshot_bytes_max) {
  CAIRN_CHECK(self_id_ != raft::kNoNode);
  CAIRN_CHECK(deliver_ != nullptr);
}

grpc::ServerReadReactor<raft::v1::MessageBatch>* PeerService::Send(
    grpc::CallbackServerContext* context, raft::v1::SendResponse* response) {
  return new BatchReader(this);
}

grpc::ServerReadReactor<raft::v1::SnapshotChunk>* PeerService::SendSnapshot(
    grpc::CallbackServerContext* context, raft::v1::SendResponse* response) {
  return new SnapshotReader(this, context);
}

void PeerService::NoteSnapshotChunk(size_t size_bytes) {
  uint64_t seen = snapshot_chunk_bytes_max_.load();
  while (size_bytes > seen && !snapshot_chunk_bytes_max_.compare_exchange_weak(seen, size_bytes)) {
  }
}

Status PeerService::CheckAddress(uint64_t cluster_id, raft::NodeId to) const {
  if (cluster_id != cluster_id_) {
    return Status::FailedPrecondition("raft message of cluster " + std::to_string(cluster_id) +
                                      " refused by member " + std::to_string(self_id_) +
                                      " of cluster " + std::to_string(cluster_id_) +
                                      " (cluster ID mismatch)");
  }
  if (to != self_id_) {
    return Status::FailedPrecondition("raft message for member " + std::to_string(to) +
                                      " reached member " + std::to_string(self_id_) +
                                      " (stale peer URL?)");
  }
  return Status::Ok();
}

Status PeerService::DeliverBatch(raft::v1::MessageBatch* batch) const {
  CAIRN_RETURN_IF_ERROR(CheckAddress(batch->cluster_id(), batch->to()));
  std::vector<raft::Message> messages;
  messages.reserve(batch->messages_size());
  for (raft::v1::Message& proto : *batch->mutable_messages()) {
    CAIRN_ASSIGN_OR_RETURN(raft::Message message, MessageFromProto(&proto));
    CAIRN_RETURN_IF_ERROR(CheckAddress(batch->cluster_id(), message.to));
    if (message.type == raft::MessageType::kSnapshot) {
      return Status::InvalidArgument("kSnapshot messages travel over SendSnapshot, not Send");
    }
    messages.push_back(std::move(message));
  }
  for (raft::Message& message : messages) deliver_(std::move(message));
  return Status::Ok();
}

grpc::ServerUnaryReactor* PeerService::Members(grpc::CallbackServerContext* context,
                                               const raft::v1::MembersRequest* request,
                                               raft::v1::MembersResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (request->cluster_id() != cluster_id_) {
    reactor->Finish(
        grpc::Status(grpc::FAILED_PRECONDITION, "cairn: the request is for cluster " +
                                                    std::to_string(request->cluster_id()) +
                                                    ", this is " + std::to_string(cluster_id_)));
    return reactor;
  }
  if (list_members_) {
    for (const auto& [id, urls] : list_members_()) {
      raft::v1::PeerMember* member = response->add_members();
      member->set_id(id);
      for (const std::string& url : urls) member->add_peer_urls(url);
    }
  }
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

Result<std::vector<std::pair<raft::NodeId, std::vector<std::string>>>> FetchMembers(
    const std::vector<std::string>& peer_urls, uint64_t cluster_id, int64_t timeout_ms) {
  std::string errors;
  for (const std::string& url : peer_urls) {
    Result<std::string> address = PeerUrlToAddress(url);
    if (!address.ok()) return address.status();
    auto channel = grpc::CreateChannel(*address, grpc::InsecureChannelCredentials());
    auto stub = raft::v1::Raft::NewStub(channel);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(timeout_ms));
    context.set_wait_for_ready(true);
    raft::v1::MembersRequest request;
    request.set_cluster_id(cluster_id);
    raft::v1::MembersResponse response;
    grpc::Status status = stub->Members(&context, request, &response);
    if (!status.ok()) {
      errors += " " + url + ": " + status.error_message() + ";";
      continue;
    }
    std::vector<std::pair<raft::NodeId, std::vector<std::string>>> members;
    for (const raft::v1::PeerMember& member : response.members()) {
      members.emplace_back(member.id(), std::vector<std::string>(member.peer_urls().begin(),
                                                                 member.peer_urls().end()));
    }
    return members;
  }
  return Status::Unavailable("no member answered with the membership:" + errors);
}

grpc::ServerUnaryReactor* PeerService::LeaseRenew(grpc::CallbackServerContext* context,
                                                  const raft::v1::LeaseRenewRequest* request,
                                                  raft::v1::LeaseRenewResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (request->cluster_id() != cluster_id_) {
    reactor->Finish(grpc::Status(grpc::FAILED_PRECONDITION, "cairn: wrong cluster id"));
    return reactor;
  }
  if (!renew_lease_) {
    reactor->Finish(grpc::Status(grpc::UNAVAILABLE, "cairn: leases are not served here"));
    return reactor;
  }
  Result<int64_t> ttl = renew_lease_(request->id());
  if (ttl.ok()) {
    response->set_ttl(*ttl);
    reactor->Finish(grpc::Status::OK);
  } else {
    const grpc::StatusCode code =
        ttl.status().code() == StatusCode::kNotFound ? grpc::NOT_FOUND : grpc::UNAVAILABLE;
    reactor->Finish(grpc::Status(code, std::string(ttl.status().message())));
  }
  return reactor;
}

Result<int64_t> LeaseRenewClient::Renew(const std::string& peer_url, int64_t id,
                                        int64_t timeout_ms) {
  raft::v1::Raft::Stub* stub = nullptr;
  {
    std::lock_guard lock(mutex_);
    auto it = stubs_.find(peer_url);
    if (it == stubs_.end()) {
      CAIRN_ASSIGN_OR_RETURN(std::string address, PeerUrlToAddress(peer_url));
      auto channel = grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
      it = stubs_.emplace(peer_url, raft::v1::Raft::NewStub(channel)).first;
    }
    stub = it->second.get();  // stubs are never removed: the pointer stays valid
  }
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(timeout_ms));
  raft::v1::LeaseRenewRequest request;
  request.set_cluster_id(cluster_id_);
  request.set_id(id);
  raft::v1::LeaseRenewResponse response;
  grpc::Status status = stub->LeaseRenew(&context, request, &response);
  if (status.ok()) return response.ttl();
  if (status.error_code() == grpc::NOT_FOUND) return Status::NotFound(status.error_message());
  return Status::Unavailable("renewing lease at the leader: " + status.error_message());
}

}  // namespace cairn::transport
