#include "src/server/maintenance_service.h"

#include "src/server/grpc_status.h"

namespace cairn::server {

MaintenanceService::MaintenanceService(node::Node* node, const MemberIdentity* identity,
                                       int64_t quota_backend_bytes)
    : node_(node),
      identity_(identity),
      quota_backend_bytes_(quota_backend_bytes > 0 ? quota_backend_bytes
                                                   : kQuotaBackendBytesDefault) {}

grpc::ServerUnaryReactor* MaintenanceService::Status(grpc::CallbackServerContext* context,
                                                     const etcdserverpb::StatusRequest* request,
                                                     etcdserverpb::StatusResponse* response) {
  etcdserverpb::ResponseHeader* header = response->mutable_header();
  header->set_revision(node_->kv()->CurrentRevision());
  identity_->FillHeader(header);
  response->set_version(kEtcdVersion);
  const auto size_bytes = static_cast<int64_t>(node_->engine()->ApproximateSizeBytes());
  response->set_dbsize(size_bytes);
  response->set_dbsizeinuse(size_bytes);
  // A single voter is its own leader; the log index is the applied index (no Raft yet).
  response->set_leader(identity_->member_id());
  response->set_raftindex(node_->AppliedIndex());
  response->set_raftappliedindex(node_->AppliedIndex());
  response->set_raftterm(MemberIdentity::kRaftTerm);
  response->set_dbsizequota(quota_backend_bytes_);
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* MaintenanceService::HashKV(grpc::CallbackServerContext* context,
                                                     const etcdserverpb::HashKVRequest* request,
                                                     etcdserverpb::HashKVResponse* response) {
  cairn::Status status = node_->kv()->HashKV(request->revision(), response);
  if (status.ok()) identity_->FillHeader(response->mutable_header());
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

grpc::ServerUnaryReactor* MaintenanceService::Defragment(
    grpc::CallbackServerContext* context, const etcdserverpb::DefragmentRequest* request,
    etcdserverpb::DefragmentResponse* response) {
  etcdserverpb::ResponseHeader* header = response->mutable_header();
  header->set_revision(node_->kv()->CurrentRevision());
  identity_->FillHeader(header);
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace cairn::server
