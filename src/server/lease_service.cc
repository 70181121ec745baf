#include "src/server/lease_service.h"

#include <utility>

#include "src/server/grpc_status.h"

namespace cairn::server {
namespace {

using KeepAliveRequest = etcdserverpb::LeaseKeepAliveRequest;
using KeepAliveResponse = etcdserverpb::LeaseKeepAliveResponse;

// One keep-alive stream: read a request, answer it, read the next (one write in flight, so
// the memory per stream is bounded by one request and one response).
class KeepAliveReactor final : public grpc::ServerBidiReactor<KeepAliveRequest, KeepAliveResponse> {
 public:
  KeepAliveReactor(LeaseManager* manager, const MemberIdentity* identity, node::Node* node)
      : manager_(manager), identity_(identity), node_(node) {
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status::OK);
      return;
    }
    response_.Clear();
    response_.set_id(request_.id());
    Result<int64_t> ttl = manager_->Renew(request_.id());
    response_.set_ttl(ttl.ok() ? *ttl : 0);  // etcd: TTL 0 for a missing lease, no error
    response_.mutable_header()->set_revision(node_->kv()->CurrentRevision());
    identity_->FillHeader(response_.mutable_header());
    StartWrite(&response_);
  }

  void OnWriteDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status::OK);
      return;
    }
    StartRead(&request_);
  }

  void OnDone() override { delete this; }

 private:
  LeaseManager* const manager_;
  const MemberIdentity* const identity_;
  node::Node* const node_;
  KeepAliveRequest request_;
  KeepAliveResponse response_;
};

}  // namespace

void LeaseService::FillHeader(etcdserverpb::ResponseHeader* header) const {
  header->set_revision(node_->kv()->CurrentRevision());
  identity_->FillHeader(header);
}

grpc::ServerUnaryReactor* LeaseService::LeaseGrant(grpc::CallbackServerContext* context,
                                                   const etcdserverpb::LeaseGrantRequest* request,
                                                   etcdserverpb::LeaseGrantResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  manager_->Grant(*request, [this, reactor, response](const Status& status,
                                                      etcdserverpb::LeaseGrantResponse&& result) {
    if (status.ok()) {
      *response = std::move(result);
      identity_->FillHeader(response->mutable_header());
    }
    reactor->Finish(ToGrpcStatus(status));
  });
  return reactor;
}

grpc::ServerUnaryReactor* LeaseService::LeaseRevoke(grpc::CallbackServerContext* context,
                                                    const etcdserverpb::LeaseRevokeRequest* request,
                                                    etcdserverpb::LeaseRevokeResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  manager_->Revoke(
      request->id(),
      [this, reactor, response](const Status& status, etcdserverpb::LeaseRevokeResponse&& result) {
        if (status.ok()) {
          *response = std::move(result);
          identity_->FillHeader(response->mutable_header());
        }
        reactor->Finish(ToGrpcStatus(status));
      });
  return reactor;
}

grpc::ServerBidiReactor<KeepAliveRequest, KeepAliveResponse>* LeaseService::LeaseKeepAlive(
    grpc::CallbackServerContext* context) {
  return new KeepAliveReactor(manager_, identity_, node_);
}

grpc::ServerUnaryReactor* LeaseService::LeaseTimeToLive(
    grpc::CallbackServerContext* context, const etcdserverpb::LeaseTimeToLiveRequest* request,
    etcdserverpb::LeaseTimeToLiveResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  response->set_id(request->id());
  FillHeader(response->mutable_header());
  auto info = node_->leases()->Get(request->id());
  if (!info.ok()) {
    reactor->Finish(ToGrpcStatus(info.status()));
    return reactor;
  }
  std::optional<int64_t> remaining = manager_->RemainingSeconds(request->id());
  if (!info->has_value() || !remaining.has_value()) {
    response->set_ttl(-1);  // etcd: a missing lease is TTL -1, not an error
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
  response->set_ttl(*remaining);
  response->set_grantedttl((*info)->ttl_seconds);
  if (request->keys()) {
    auto keys = node_->leases()->Keys(request->id());
    if (!keys.ok()) {
      reactor->Finish(ToGrpcStatus(keys.status()));
      return reactor;
    }
    for (std::string& key : *keys) response->add_keys(std::move(key));
  }
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* LeaseService::LeaseLeases(grpc::CallbackServerContext* context,
                                                    const etcdserverpb::LeaseLeasesRequest* request,
                                                    etcdserverpb::LeaseLeasesResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  FillHeader(response->mutable_header());
  auto leases = node_->leases()->List();
  if (!leases.ok()) {
    reactor->Finish(ToGrpcStatus(leases.status()));
    return reactor;
  }
  std::vector<int64_t> ids;
  for (const lease::LeaseInfo& info : *leases) ids.push_back(info.id);
  manager_->SortByExpiry(&ids);
  for (int64_t id : ids) response->add_leases()->set_id(id);
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace cairn::server
