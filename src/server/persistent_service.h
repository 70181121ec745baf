// PersistentService: persistent subscriptions (cairn.events.v1.PersistentSubscriptions) on
// gRPC's callback API.
//
//   Create, Update, Delete, ReplayParked ─▶ validate ─▶ Node::Propose ─▶ PersistentState
//   Get, List ─▶ ReadIndex ─▶ PersistentState (+ live figures of the groups served here)
//   Read (one consumer) ─▶ inputs (join, ack, nack, leave) ─▶ dispatch thread:
//       per served group a GroupDispatcher: read the source from storage, hand events to
//       consumers, expire message timeouts, propose progress (one proposal in flight per group)
//
// Events are delivered upcast (src/events/projection/upcasters.h), as reads serve them.
//
// Groups are served by the leader: a consumer that connects to a follower gets UNAVAILABLE,
// and consumers are ended with UNAVAILABLE when this member stops being the leader (the new
// leader starts from the replicated progress: at-least-once).
//
// Thread-safety: handlers run on gRPC's callback threads, dispatching on one thread of its
// own. Stop() ends every consumer (UNAVAILABLE) and must be called before the grpc::Server
// shuts down; the Node must outlive this service.
#pragma once

#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "cairn/persistent.grpc.pb.h"
#include "src/events/persistent_dispatcher.h"
#include "src/node/node.h"
#include "src/server/member_identity.h"

namespace cairn::server {

class PersistentService final : public events::v1::PersistentSubscriptions::CallbackService {
 public:
  PersistentService(node::Node* node, const MemberIdentity* identity);
  ~PersistentService() override;

  void Stop();

  grpc::ServerUnaryReactor* Create(
      grpc::CallbackServerContext* context,
      const events::v1::CreatePersistentSubscriptionRequest* request,
      events::v1::CreatePersistentSubscriptionResponse* response) override;
  grpc::ServerUnaryReactor* Update(
      grpc::CallbackServerContext* context,
      const events::v1::UpdatePersistentSubscriptionRequest* request,
      events::v1::UpdatePersistentSubscriptionResponse* response) override;
  grpc::ServerUnaryReactor* Delete(
      grpc::CallbackServerContext* context,
      const events::v1::DeletePersistentSubscriptionRequest* request,
      events::v1::DeletePersistentSubscriptionResponse* response) override;
  grpc::ServerUnaryReactor* Get(grpc::CallbackServerContext* context,
                                const events::v1::GetPersistentSubscriptionRequest* request,
                                events::v1::GetPersistentSubscriptionResponse* response) override;
  grpc::ServerUnaryReactor* List(
      grpc::CallbackServerContext* context,
      const events::v1::ListPersistentSubscriptionsRequest* request,
      events::v1::ListPersistentSubscriptionsResponse* response) override;
  grpc::ServerBidiReactor<events::v1::PersistentReadRequest, events::v1::PersistentReadResponse>*
  Read(grpc::CallbackServerContext* context) override;
  grpc::ServerUnaryReactor* ReplayParked(grpc::CallbackServerContext* context,
                                         const events::v1::ReplayParkedRequest* request,
                                         events::v1::ReplayParkedResponse* response) override;

 private:
  class Consumer;
  friend class Consumer;
  using GroupKey = std::pair<std::string, std::string>;  // (source, group)

  // What a consumer's call asks of the dispatch thread.
  struct Input {
    enum class Kind { kJoin, kAck, kNack, kLeave } kind = Kind::kJoin;
    std::shared_ptr<Consumer> consumer;
    std::vector<std::string> ids;
    events::v1::NackAction action = events::v1::NACK_RETRY;
  };

  // A group with consumers on this member (dispatch thread only).
  struct ServedGroup {
    std::unique_ptr<events::GroupDispatcher> dispatcher;
    std::map<uint64_t, std::shared_ptr<Consumer>> consumers;
    uint64_t generation = 0;
    bool source_exhausted = false;  // the last read returned less than asked
    uint64_t events_seen = 0;       // EventState::EventCount() at the last read
  };

  // Shared with proposal callbacks, which may run after this service is gone.
  struct Shared {
    std::mutex mu;
    std::condition_variable cv;
    bool stopping = false;
    bool wake = false;
    std::vector<Input> inputs;
    std::set<GroupKey> proposing;  // groups with a progress proposal in flight
    std::map<GroupKey, events::GroupDispatcher::Stats> stats;
    std::map<GroupKey, uint32_t> consumer_counts;
  };

  void Push(Input input);
  void DispatchLoop();
  void HandleInput(Input& input);
  // One round for one group: reload on a generation change, read, expire, dispatch, propose.
  // Returns false when the group is no longer served.
  bool Serve(const GroupKey& key, ServedGroup* served, int64_t now_ms);
  Status Reload(ServedGroup* served);
  Status ReadSource(ServedGroup* served);
  Status LoadReplays(ServedGroup* served);
  void EndGroup(ServedGroup* served, const grpc::Status& status);
  void FillInfo(const events::records::PersistentGroupRecord& record,
                events::v1::PersistentSubscriptionInfo* info);

  node::Node* const node_;
  const MemberIdentity* const identity_;
  const std::shared_ptr<Shared> shared_ = std::make_shared<Shared>();
  uint64_t listener_id_ = 0;
  std::map<GroupKey, ServedGroup> served_;  // dispatch thread
  std::thread dispatcher_;
};

}  // namespace cairn::server
