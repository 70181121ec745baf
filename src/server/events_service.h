// EventsService: the event store's gRPC service (cairn.events.v1.Events) on gRPC's callback
// API.
//
//   Append, DeleteStream, SetStreamMetadata, SaveSnapshot ─▶ validate ─▶ Node::Propose
//       ─▶ (apply thread) EventState::Apply* ─▶ Finish
//   ReadStream, ReadAll, GetStreamMetadata, ReadAggregate ─▶ ReadIndex ─▶ EventState read
//   Subscribe ─▶ a subscription with a cursor; the pump thread reads the next page from
//       storage whenever the subscription is idle and new events were written, and hands it
//       to the stream; the stream writes one message at a time.
//
// Subscriptions read from storage, never from an in-memory feed: delivery is gap-free and in
// order by construction (the engine holds a prefix of the log), a slow consumer costs no
// memory beyond one page, and a restart resumes from any position the client kept.
//
// Thread-safety: handlers run on gRPC's callback threads. Stop() ends every subscription
// (UNAVAILABLE) and must be called before the grpc::Server shuts down; the Node must outlive
// this service.
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <set>
#include <thread>

#include "cairn/events.grpc.pb.h"
#include "src/mvcc/validation.h"
#include "src/node/node.h"
#include "src/server/member_identity.h"

namespace cairn::server {

class EventsService final : public events::v1::Events::CallbackService {
 public:
  EventsService(node::Node* node, const MemberIdentity* identity,
                const mvcc::ValidationOptions& validation);
  ~EventsService() override;

  void Stop();

  grpc::ServerUnaryReactor* Append(grpc::CallbackServerContext* context,
                                   const events::v1::AppendRequest* request,
                                   events::v1::AppendResponse* response) override;
  grpc::ServerUnaryReactor* ReadStream(grpc::CallbackServerContext* context,
                                       const events::v1::ReadStreamRequest* request,
                                       events::v1::ReadStreamResponse* response) override;
  grpc::ServerUnaryReactor* ReadAll(grpc::CallbackServerContext* context,
                                    const events::v1::ReadAllRequest* request,
                                    events::v1::ReadAllResponse* response) override;
  grpc::ServerWriteReactor<events::v1::SubscribeResponse>* Subscribe(
      grpc::CallbackServerContext* context, const events::v1::SubscribeRequest* request) override;
  grpc::ServerUnaryReactor* SetStreamMetadata(
      grpc::CallbackServerContext* context, const events::v1::SetStreamMetadataRequest* request,
      events::v1::SetStreamMetadataResponse* response) override;
  grpc::ServerUnaryReactor* GetStreamMetadata(
      grpc::CallbackServerContext* context, const events::v1::GetStreamMetadataRequest* request,
      events::v1::GetStreamMetadataResponse* response) override;
  grpc::ServerUnaryReactor* DeleteStream(grpc::CallbackServerContext* context,
                                         const events::v1::DeleteStreamRequest* request,
                                         events::v1::DeleteStreamResponse* response) override;
  grpc::ServerUnaryReactor* SaveSnapshot(grpc::CallbackServerContext* context,
                                         const events::v1::SaveSnapshotRequest* request,
                                         events::v1::SaveSnapshotResponse* response) override;
  grpc::ServerUnaryReactor* ReadAggregate(grpc::CallbackServerContext* context,
                                          const events::v1::ReadAggregateRequest* request,
                                          events::v1::ReadAggregateResponse* response) override;
  grpc::ServerUnaryReactor* Scavenge(grpc::CallbackServerContext* context,
                                     const events::v1::ScavengeRequest* request,
                                     events::v1::ScavengeResponse* response) override;
  grpc::ServerUnaryReactor* VerifyChain(grpc::CallbackServerContext* context,
                                        const events::v1::VerifyChainRequest* request,
                                        events::v1::VerifyChainResponse* response) override;

 private:
  class Subscription;
  friend class Subscription;

  void PumpLoop();
  // Wakes the pump (a subscription became idle, or events were written).
  void Wake(bool events_written);

  node::Node* const node_;
  const MemberIdentity* const identity_;
  const mvcc::ValidationOptions validation_;

  std::mutex mu_;
  std::condition_variable pump_cv_;
  bool stopping_ = false;                                  // guarded by mu_
  bool dirty_ = false;                                     // guarded by mu_
  std::set<std::shared_ptr<Subscription>> subscriptions_;  // guarded by mu_
  std::thread pump_;
  uint64_t listener_id_ = 0;
};

}  // namespace cairn::server
