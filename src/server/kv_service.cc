#include "src/server/kv_service.h"

#include <utility>

#include "src/server/grpc_status.h"

namespace cairn::server {

KvService::KvService(node::Node* node, const MemberIdentity* identity, BackgroundWorker* worker,
                     const mvcc::ValidationOptions& validation)
    : node_(node), identity_(identity), worker_(worker), validation_(validation) {}

namespace {

// Moves a write request into its command instead of copying it (for a txn of puts, a copy of
// every key and value). gRPC's callback API owns the request, does not read it after the
// handler, and allocates it mutable; the handlers below do not read it after this either.
template <typename Request>
void MoveRequest(const Request* request, Request* into) {
  into->Swap(const_cast<Request*>(request));
}

}  // namespace

template <typename Response, typename Take>
void KvService::ProposeAndFinish(grpc::ServerUnaryReactor* reactor, command::Command command,
                                 Response* response, Take take) {
  // Runs on the apply thread (or, when the node refuses the write, right here).
  node_->Propose(std::move(command), [this, reactor, response, take](
                                         const Status& status, command::CommandResult&& result) {
    if (status.ok()) {
      *response = std::move(take(result));
      identity_->FillHeader(response->mutable_header());
    }
    reactor->Finish(ToGrpcStatus(status));
  });
}

grpc::ServerUnaryReactor* KvService::Range(grpc::CallbackServerContext* context,
                                           const etcdserverpb::RangeRequest* request,
                                           etcdserverpb::RangeResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  Status status = mvcc::ValidateRange(*request, validation_);
  if (!status.ok() || request->serializable()) {
    // A serializable read serves this member's applied state, which may lag the leader.
    if (status.ok()) status = node_->kv()->Range(*request, response);
    if (status.ok()) identity_->FillHeader(response->mutable_header());
    reactor->Finish(ToGrpcStatus(status));
    return reactor;
  }
  // Linearizable: wait for the read index (at once on a sole voter), then read.
  node_->ReadIndex([this, reactor, request, response](const Status& ready) {
    Status status = ready;
    if (status.ok()) status = node_->kv()->Range(*request, response);
    if (status.ok()) identity_->FillHeader(response->mutable_header());
    reactor->Finish(ToGrpcStatus(status));
  });
  return reactor;
}

grpc::ServerUnaryReactor* KvService::Put(grpc::CallbackServerContext* context,
                                         const etcdserverpb::PutRequest* request,
                                         etcdserverpb::PutResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  Status status = mvcc::ValidatePut(*request, validation_);
  if (!status.ok()) {
    reactor->Finish(ToGrpcStatus(status));
    return reactor;
  }
  command::Command command;
  MoveRequest(request, command.mutable_put());
  ProposeAndFinish(
      reactor, std::move(command), response,
      [](command::CommandResult & r) -> auto& { return *r.mutable_put(); });
  return reactor;
}

grpc::ServerUnaryReactor* KvService::DeleteRange(grpc::CallbackServerContext* context,
                                                 const etcdserverpb::DeleteRangeRequest* request,
                                                 etcdserverpb::DeleteRangeResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  Status status = mvcc::ValidateDeleteRange(*request, validation_);
  if (!status.ok()) {
    reactor->Finish(ToGrpcStatus(status));
    return reactor;
  }
  command::Command command;
  MoveRequest(request, command.mutable_delete_range());
  ProposeAndFinish(
      reactor, std::move(command), response,
      [](command::CommandResult & r) -> auto& { return *r.mutable_delete_range(); });
  return reactor;
}

grpc::ServerUnaryReactor* KvService::Txn(grpc::CallbackServerContext* context,
                                         const etcdserverpb::TxnRequest* request,
                                         etcdserverpb::TxnResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  Status status = mvcc::ValidateTxn(*request, validation_);
  if (status.ok() && mvcc::IsTxnReadOnly(*request)) {
    // etcd serves a read-only txn without the log, at one snapshot, after a read index.
    node_->ReadIndex([this, reactor, request, response](const Status& ready) {
      Status status = ready;
      if (status.ok()) status = node_->kv()->ReadOnlyTxn(*request, response);
      if (status.ok()) identity_->FillHeader(response->mutable_header());
      reactor->Finish(ToGrpcStatus(status));
    });
    return reactor;
  } else if (status.ok()) {
    command::Command command;
    MoveRequest(request, command.mutable_txn());
    ProposeAndFinish(
        reactor, std::move(command), response,
        [](command::CommandResult & r) -> auto& { return *r.mutable_txn(); });
    return reactor;
  }
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

grpc::ServerUnaryReactor* KvService::Compact(grpc::CallbackServerContext* context,
                                             const etcdserverpb::CompactionRequest* request,
                                             etcdserverpb::CompactionResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  command::Command command;
  *command.mutable_compaction() = *request;
  const bool physical = request->physical();
  node_->Propose(std::move(command), [this, reactor, response, physical](
                                         const Status& status, command::CommandResult&& result) {
    if (status.ok()) {
      *response = std::move(*result.mutable_compaction());
      identity_->FillHeader(response->mutable_header());
    }
    if (status.ok() && physical) return CompactPhysicallyAndFinish(reactor);
    reactor->Finish(ToGrpcStatus(status));
  });
  return reactor;
}

void KvService::CompactPhysicallyAndFinish(grpc::ServerUnaryReactor* reactor) {
  mvcc::KvState* kv = node_->kv();
  bool queued =
      worker_->Submit([kv, reactor] { reactor->Finish(ToGrpcStatus(kv->CompactPhysically())); });
  if (!queued) {
    reactor->Finish(grpc::Status(grpc::UNAVAILABLE,
                                 "cairn: too many physical compactions in progress; the "
                                 "compaction is recorded and proceeds in the background"));
  }
}

}  // namespace cairn::server
