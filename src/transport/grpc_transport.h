// GrpcTransport: the Transport between cairnd processes, over the cairn.raft.v1.Raft gRPC
// service (proto/cairn/raft.proto); PeerService: the receiving side of that service.
//
// Sending. Each peer has a bounded queue and two threads of its own:
//   - the sender dials the peer's URLs in order (first reachable wins), opens one long-lived
//     Raft.Send client stream, and writes whatever is queued as one MessageBatch per write
//     (up to batch_bytes_max; one write in flight). When the dial or the stream fails it drops
//     the queue, reports on_unreachable, and waits (exponential backoff) before redialing;
//     while it waits, Send drops that peer's messages at once and reports on_unreachable.
//   - the snapshot sender takes kSnapshot messages (at most one at a time per peer; another
//     arriving meanwhile is reported failed) and streams each over its own connection as a
//     Raft.SendSnapshot call in chunks of at most kSnapshotChunkBytesMax — the message's data,
//     or the file its snapshot.file names, read one chunk at a time (a first pass over the file
//     computes the checksum the header announces) — then reports
//     on_snapshot_status(peer, failed). Snapshots thus never hold up heartbeats and appends.
// Blocking sync-API threads were chosen over the callback API: a peer's whole life (dial,
// stream, backoff) reads top to bottom in one function, and with a handful of peers two
// threads each cost nothing. A blocked write (a peer that stopped reading) is cut by the
// monitor thread, which cancels any write that has not completed within write_timeout_ms.
// The monitor thread is also the only thread that invokes the callbacks, so they are never
// called with a transport lock held, never from inside Send/SetPeer/RemovePeer, and never
// concurrently with each other; on_unreachable reports for one peer are coalesced.
//
// Receiving. PeerService is a grpc::Service the node registers in its peer grpc::Server
// (configured with ConfigurePeerServerBuilder). It refuses batches of another cluster or for
// another member (FAILED_PRECONDITION), decodes (INVALID_ARGUMENT on malformed input) and
// calls `deliver` for each message, in order, on a gRPC callback thread. Snapshot data goes to
// a file in the staging directory as it arrives (set_snapshot_staging_dir), or to memory.
//
// Thread-safety: GrpcTransport's methods may be called from any thread. PeerService is
// thread-safe; `deliver` is called concurrently from different peers' streams and must not
// block for long (queue the message for the node's own thread).
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "cairn/raft.grpc.pb.h"
#include "src/base/limits.h"
#include "src/base/result.h"
#include "src/base/status.h"
#include "src/transport/transport.h"

namespace cairn::transport {

// The largest raft::Message (by SizeBytes) Send queues; kSnapshot messages are exempt (their
// data travels in chunks). Raft bounds an append message's entries by its message_bytes_max
// (1 MiB by default) but always carries at least one entry, and an entry may be as large as a
// WAL record: 15 MiB holds one maximal entry plus a full message's worth of others. A larger
// message is dropped by Send (and reported unreachable) rather than sent to be refused.
inline constexpr size_t kPeerMessageBytesMax = 15 * 1024 * 1024;
static_assert(limits::kWalRecordBytesMax + 2 * 1024 * 1024 <= kPeerMessageBytesMax);

// The largest gRPC message of the Raft service, either way (the peer server's receive limit).
// A batch holds messages of at most batch_bytes_max (<= kPeerMessageBytesMax) bytes, or one
// larger message; its encoding is at most twice SizeBytes (an entry's wire framing is under
// 48 bytes against SizeBytes' 24 of header), plus batch framing.
inline constexpr size_t kWireMessageBytesMax = 32 * 1024 * 1024;
static_assert(2 * kPeerMessageBytesMax + 1024 * 1024 <= kWireMessageBytesMax);

// Snapshot data per SnapshotChunk: small enough that a chunk is far below the gRPC message
// limit and a stalled transfer is noticed chunk by chunk, large enough that per-message costs
// vanish against the copy.
inline constexpr size_t kSnapshotChunkBytesMax = 1024 * 1024;
static_assert(kSnapshotChunkBytesMax * 2 <= kWireMessageBytesMax);

// Names of the files PeerService stages received snapshots in (set_snapshot_staging_dir).
inline constexpr std::string_view kReceivingSnapshotPrefix = "receiving-";
inline constexpr std::string_view kReceivedSnapshotPrefix = "received-";

// Applies what the peer gRPC server needs for this transport: receive messages up to
// kWireMessageBytesMax (gRPC's default is 4 MiB) and accept the senders' keepalive pings
// (gRPC's default server policy answers pings more frequent than every 5 minutes on a stream
// that sends nothing back with GOAWAY, which would cut every Raft.Send stream).
void ConfigurePeerServerBuilder(grpc::ServerBuilder* builder);

struct GrpcTransportOptions {
  // This member's id (messages' `from`). REQUIRES: not raft::kNoNode. Default: none.
  raft::NodeId self_id = raft::kNoNode;
  // Sent with every batch; a receiver of another cluster refuses it. Default: 0.
  uint64_t cluster_id = 0;
  // Bound of each peer's queue, in messages and in bytes (raft::Message::SizeBytes); a message
  // that would exceed either is dropped. 4096 is etcd's stream buffer; the byte bound keeps a
  // down peer from holding more than Raft's own inflight window (64 MiB by default).
  // Default: 4096 messages, 64 MiB.
  size_t queue_messages_max = 4096;
  size_t queue_bytes_max = 64 * 1024 * 1024;
  // Most bytes of messages written as one MessageBatch (a batch always holds at least one
  // message). REQUIRES: 1..kPeerMessageBytesMax. Default: 1 MiB.
  size_t batch_bytes_max = 1024 * 1024;
  // Wait before redialing a peer after a failed dial or stream: starts at the initial value,
  // doubles per consecutive failure up to the max, resets after a successful write.
  // Default: 100 ms, 5 s.
  int64_t reconnect_backoff_initial_ms = 100;
  int64_t reconnect_backoff_max_ms = 5000;
  // How long one dial (one URL) may take to connect; a refused connection fails at once.
  // Default: 1 s.
  int64_t dial_timeout_ms = 1000;
  // A stream write (a batch, or one snapshot chunk) not completed in this time cancels the
  // stream: the peer stopped reading. Default: 5 s.
  int64_t write_timeout_ms = 5000;
  // HTTP/2 keepalive pings on idle connections, so that a peer that vanished is noticed even
  // when writes still fit in buffers; 0 disables. The receiving server must be configured with
  // ConfigurePeerServerBuilder. Default: 10 s, answered within 10 s.
  int64_t keepalive_time_ms = 10000;
  int64_t keepalive_timeout_ms = 10000;
  // Snapshot data per chunk. REQUIRES: 1..kSnapshotChunkBytesMax. Default:
  // kSnapshotChunkBytesMax.
  size_t snapshot_chunk_bytes = kSnapshotChunkBytesMax;
};

struct GrpcTransportCallbacks {
  // A message to `peer` was dropped (queue full, dial or stream failure, unknown peer):
  // the node calls RawNode::ReportUnreachable. Coalesced per peer. May be empty.
  std::function<void(raft::NodeId peer)> on_unreachable;
  // The kSnapshot message to `peer` was handed to the peer's node (failed = false) or not
  // (failed = true): the node calls RawNode::ReportSnapshot. Exactly one report per kSnapshot
  // message given to Send before Stop. May be empty.
  std::function<void(raft::NodeId peer, bool failed)> on_snapshot_status;
};

// Counters for tests and metrics; monotonic.
struct GrpcTransportStats {
  uint64_t messages_sent = 0;     // written to a stream (not necessarily delivered)
  uint64_t messages_dropped = 0;  // dropped before a write, for any reason
  uint64_t batches_sent = 0;
  uint64_t snapshots_sent = 0;  // acknowledged by the receiver
  uint64_t snapshots_failed = 0;
  uint64_t streams_opened = 0;  // successful dials (Raft.Send streams started)
};

class GrpcTransport final : public Transport {
 public:
  GrpcTransport(const GrpcTransportOptions& options, GrpcTransportCallbacks callbacks);
  // Stops (see Stop).
  ~GrpcTransport() override;
  GrpcTransport(const GrpcTransport&) = delete;
  GrpcTransport& operator=(const GrpcTransport&) = delete;

  void Send(std::vector<raft::Message> messages) override;
  void SetPeer(raft::NodeId id, std::vector<std::string> urls) override;
  // Cancels the peer's streams and joins its threads (returns within about one dial poll).
  void RemovePeer(raft::NodeId id) override;
  // Cancels every stream, joins every thread; pending snapshot reports and coalesced
  // unreachable reports are delivered before it returns; no callback runs after it returns.
  void Stop() override;

  GrpcTransportStats Stats() const;
  // Messages queued for `peer` now (0 for an unknown peer); for tests of the bound.
  size_t QueuedMessages(raft::NodeId peer) const;
  size_t QueuedBytes(raft::NodeId peer) const;

  struct Peer;  // defined in grpc_transport.cc

 private:
  std::shared_ptr<Peer> FindPeer(raft::NodeId id) const;
  void StopPeer(Peer* peer);
  void SenderLoop(Peer* peer);
  // Dials the peer's URLs in order; the channel of the first that connects, or null (none
  // did, or the peer is stopping or got new URLs). Sets the URL generation it dialed.
  std::shared_ptr<grpc::Channel> Dial(Peer* peer, uint64_t* generation, std::string* address);
  // Runs one Raft.Send stream until it fails or is cancelled; returns whether any write
  // succeeded and sets *failure to why it ended.
  bool RunStream(Peer* peer, const std::shared_ptr<grpc::Channel>& channel, uint64_t generation,
                 std::string* failure);
  void SnapshotLoop(Peer* peer);
  // Sends one kSnapshot message; true when the receiver acknowledged it.
  bool SendSnapshot(Peer* peer, raft::Message message);
  void ReportUnreachable(raft::NodeId id);
  void ReportSnapshotStatus(raft::NodeId id, bool failed);
  void MonitorLoop();
  void DispatchReports();
  void CancelStalledWrites();

  const GrpcTransportOptions options_;
  const GrpcTransportCallbacks callbacks_;

  mutable std::mutex mutex_;
  std::map<raft::NodeId, std::shared_ptr<Peer>> peers_;  // GUARDED_BY(mutex_)
  bool stopped_ = false;                                 // GUARDED_BY(mutex_)

  // Pending callback reports, drained by the monitor thread. Bounded: one unreachable flag
  // per peer; snapshot reports are one per kSnapshot message and a peer has at most one in
  // flight plus those refused while it was busy (reported at once, so the list stays short).
  std::mutex reports_mutex_;
  std::condition_variable reports_changed_;
  std::set<raft::NodeId> unreachable_pending_;  // GUARDED_BY(reports_mutex_)
  std::vector<std::pair<raft::NodeId, bool>>
      snapshot_status_pending_;    // GUARDED_BY(reports_mutex_)
  bool monitor_stopping_ = false;  // GUARDED_BY(reports_mutex_)

  mutable std::mutex stats_mutex_;
  GrpcTransportStats stats_;  // GUARDED_BY(stats_mutex_)

  std::thread monitor_;
};

// The receiving side of cairn.raft.v1.Raft. The node registers it in its peer grpc::Server and
// shuts that server down before destroying it.
class PeerService final : public raft::v1::Raft::CallbackService {
 public:
  using Deliver = std::function<void(raft::Message&&)>;

  // `snapshot_bytes_max`: snapshot data accepted per kSnapshot message when it is reassembled
  // in memory (no staging directory). Default: 4 GiB.
  PeerService(raft::NodeId self_id, uint64_t cluster_id, Deliver deliver,
              uint64_t snapshot_bytes_max = 4ull * 1024 * 1024 * 1024);
  PeerService(const PeerService&) = delete;
  PeerService& operator=(const PeerService&) = delete;

  grpc::ServerReadReactor<raft::v1::MessageBatch>* Send(grpc::CallbackServerContext* context,
                                                        raft::v1::SendResponse* response) override;
  grpc::ServerReadReactor<raft::v1::SnapshotChunk>* SendSnapshot(
      grpc::CallbackServerContext* context, raft::v1::SendResponse* response) override;
  grpc::ServerUnaryReactor* Members(grpc::CallbackServerContext* context,
                                    const raft::v1::MembersRequest* request,
                                    raft::v1::MembersResponse* response) override;

  grpc::ServerUnaryReactor* LeaseRenew(grpc::CallbackServerContext* context,
                                       const raft::v1::LeaseRenewRequest* request,
                                       raft::v1::LeaseRenewResponse* response) override;
  // Renews a lease here for LeaseRenew (the leader's lease manager). REQUIRES: set before the
  // server starts.
  using RenewLease = std::function<Result<int64_t>(int64_t id)>;
  void set_renew_lease(RenewLease renew) { renew_lease_ = std::move(renew); }

  // Streams received snapshot data to files in `dir` (the node's snapshot directory) instead
  // of memory: chunks are appended to <dir>/receiving-<index>-<n>.part as they arrive; a
  // complete, checked stream is synced and renamed to <dir>/received-<index>-<n>.snap and
  // delivered with snapshot.file set to that path (data empty) — the node then owns the file
  // and must delete or move it. A stream that fails or is cancelled part way deletes its part
  // file; files of a process that died mid-stream are for the node to delete at its next
  // start (both prefixes). snapshot_bytes_max does not apply. REQUIRES: set before the server
  // starts. Default: none (in memory).
  void set_snapshot_staging_dir(std::string dir) { snapshot_staging_dir_ = std::move(dir); }
  const std::string& snapshot_staging_dir() const { return snapshot_staging_dir_; }
  // The largest snapshot chunk received (bytes): what the receiving side holds in memory at a
  // time per stream when it stages to files. For tests of that bound.
  uint64_t snapshot_chunk_bytes_max() const { return snapshot_chunk_bytes_max_.load(); }
  void NoteSnapshotChunk(size_t size_bytes);
  // Test hook: called when a snapshot chunk arrives, before it is handled, with the data bytes
  // received before it on that stream; an error ends the stream with it, as a broken
  // connection would. REQUIRES: set before the server starts. Default: none.
  using SnapshotChunkHook = std::function<cairn::Status(uint64_t received_bytes)>;
  void set_snapshot_chunk_test_hook(SnapshotChunkHook hook) { chunk_hook_ = std::move(hook); }
  const SnapshotChunkHook& snapshot_chunk_test_hook() const { return chunk_hook_; }
  uint64_t NextStagingNumber() { return next_staging_number_.fetch_add(1); }

  // Lists the members (id, peer URLs) for Members. REQUIRES: set before the server starts.
  using ListMembers =
      std::function<std::vector<std::pair<raft::NodeId, std::vector<std::string>>>()>;
  void set_list_members(ListMembers list) { list_members_ = std::move(list); }

  // Checks the addressing of a batch or snapshot header: FAILED_PRECONDITION unless
  // cluster_id and `to` are this member's.
  cairn::Status CheckAddress(uint64_t cluster_id, raft::NodeId to) const;
  // Decodes and delivers a batch: nothing is delivered unless every message decodes and is
  // addressed to this member.
  cairn::Status DeliverBatch(raft::v1::MessageBatch* batch) const;
  uint64_t snapshot_bytes_max() const { return snapshot_bytes_max_; }
  const Deliver& deliver() const { return deliver_; }

 private:
  const raft::NodeId self_id_;
  const uint64_t cluster_id_;
  const Deliver deliver_;
  const uint64_t snapshot_bytes_max_;
  std::string snapshot_staging_dir_;
  std::atomic<uint64_t> snapshot_chunk_bytes_max_{0};
  std::atomic<uint64_t> next_staging_number_{0};
  ListMembers list_members_;
  RenewLease renew_lease_;
  SnapshotChunkHook chunk_hook_;
};

// Renews leases at another member's peer service (LeaseRenew), keeping one channel per peer
// URL. Thread-safe.
class LeaseRenewClient {
 public:
  explicit LeaseRenewClient(uint64_t cluster_id) : cluster_id_(cluster_id) {}
  // The lease's TTL; NotFound for an unknown lease; Unavailable when the peer cannot answer.
  Result<int64_t> Renew(const std::string& peer_url, int64_t id, int64_t timeout_ms);

 private:
  const uint64_t cluster_id_;
  std::mutex mutex_;
  std::map<std::string, std::unique_ptr<raft::v1::Raft::Stub>> stubs_;  // GUARDED_BY(mutex_)
};

// Asks the members at `peer_urls` (the first that answers) for the membership: (id, peer
// URLs) pairs. Unavailable when none answers within timeout_ms each.
Result<std::vector<std::pair<raft::NodeId, std::vector<std::string>>>> FetchMembers(
    const std::vector<std::string>& peer_urls, uint64_t cluster_id, int64_t timeout_ms);

}  // namespace cairn::transport
