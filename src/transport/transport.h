// Transport: how a Raft node sends messages to its peers. The node hands over the messages of
// each raft::Ready (after the Ready's state is durable); the transport delivers them to the
// peers' nodes, which Step them. Delivery is best effort — Raft retries whatever is lost — but
// messages from one node to one peer that arrive do so in the order they were sent.
//
// Implementations: GrpcTransport (grpc_transport.h) between processes; the simulation
// (tests/sim) uses its own in-memory network.
//
// Thread-safety: every method may be called from any thread.
#pragma once

#include <string>
#include <vector>

#include "src/raft/types.h"

namespace cairn::transport {

class Transport {
 public:
  virtual ~Transport() = default;

  // Queues messages to their `to` peers and returns at once (never blocks on the network).
  // Messages to one peer are sent in order; when a peer's queue is full or the peer cannot be
  // reached, its messages are dropped and on_unreachable(peer) is reported (Raft retries).
  // REQUIRES: no local message types (raft::IsLocalMessage); `to` is neither 0 nor self.
  virtual void Send(std::vector<raft::Message> messages) = 0;

  // Adds or updates a peer's URLs ("http://host:port"; the first reachable one is used).
  virtual void SetPeer(raft::NodeId id, std::vector<std::string> urls) = 0;

  // Stops sending to `id`; its queued messages are dropped. Unknown ids are ignored.
  virtual void RemovePeer(raft::NodeId id) = 0;

  // Stops sender threads/streams; later Sends are dropped. Idempotent.
  virtual void Stop() = 0;
};

}  // namespace cairn::transport
