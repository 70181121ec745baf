#include "src/server/cluster_service.h"

#include <algorithm>

namespace cairn::server {
namespace {

// etcd's rpctypes errors for membership requests.
const grpc::Status kErrNotEnoughStarted(
    grpc::FAILED_PRECONDITION,
    "etcdserver: re-configuration failed due to not enough started members");
const grpc::Status kErrMemberNotFound(grpc::NOT_FOUND, "etcdserver: member not found");
const grpc::Status kErrMemberNotLearner(grpc::FAILED_PRECONDITION,
                                        "etcdserver: can only promote a learner member");
const grpc::Status kErrPeerUrlExists(grpc::FAILED_PRECONDITION,
                                     "etcdserver: Peer URLs already exists");
const grpc::Status kErrBadUrls(grpc::INVALID_ARGUMENT, "etcdserver: given member URLs are invalid");
const grpc::Status kErrNeedsRaft(grpc::FAILED_PRECONDITION,
                                 "cairn: this member runs without Raft replication; learners and "
                                 "peer URL changes need a replicated cluster");

bool ValidPeerUrls(const google::protobuf::RepeatedPtrField<std::string>& urls) {
  if (urls.empty()) return false;
  for (const std::string& url : urls) {
    const bool scheme = url.starts_with("http://") || url.starts_with("https://");
    if (!scheme || url.find(':', url.find("//") + 2) == std::string::npos) return false;
  }
  return true;
}

}  // namespace

ClusterService::ClusterService(const MemberIdentity* identity, std::string name,
                               std::vector<std::string> peer_urls,
                               std::vector<std::string> client_urls)
    : identity_(identity) {
  self_.set_id(identity->member_id());
  self_.set_name(std::move(name));
  for (std::string& url : peer_urls) self_.add_peerurls(std::move(url));
  for (std::string& url : client_urls) self_.add_clienturls(std::move(url));
}

void ClusterService::FillHeader(etcdserverpb::ResponseHeader* header) const {
  identity_->FillHeader(header);
  header->clear_revision();
}

grpc::ServerUnaryReactor* ClusterService::Answer(grpc::CallbackServerContext* context,
                                                 const grpc::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(status);
  return reactor;
}

grpc::ServerUnaryReactor* ClusterService::MemberAdd(grpc::CallbackServerContext* context,
                                                    const etcdserverpb::MemberAddRequest* request,
                                                    etcdserverpb::MemberAddResponse* response) {
  if (!ValidPeerUrls(request->peerurls())) return Answer(context, kErrBadUrls);
  for (const std::string& url : request->peerurls()) {
    if (std::find(self_.peerurls().begin(), self_.peerurls().end(), url) !=
        self_.peerurls().end()) {
      return Answer(context, kErrPeerUrlExists);
    }
  }
  return Answer(context, request->islearner() ? kErrNeedsRaft : kErrNotEnoughStarted);
}

grpc::ServerUnaryReactor* ClusterService::MemberRemove(
    grpc::CallbackServerContext* context, const etcdserverpb::MemberRemoveRequest* request,
    etcdserverpb::MemberRemoveResponse* response) {
  return Answer(context, request->id() == self_.id() ? kErrNotEnoughStarted : kErrMemberNotFound);
}

grpc::ServerUnaryReactor* ClusterService::MemberUpdate(
    grpc::CallbackServerContext* context, const etcdserverpb::MemberUpdateRequest* request,
    etcdserverpb::MemberUpdateResponse* response) {
  if (request->id() != self_.id()) return Answer(context, kErrMemberNotFound);
  if (!ValidPeerUrls(request->peerurls())) return Answer(context, kErrBadUrls);
  std::vector<std::string> wanted(request->peerurls().begin(), request->peerurls().end());
  std::vector<std::string> current(self_.peerurls().begin(), self_.peerurls().end());
  std::sort(wanted.begin(), wanted.end());
  std::sort(current.begin(), current.end());
  if (wanted != current) return Answer(context, kErrNeedsRaft);
  FillHeader(response->mutable_header());
  *response->add_members() = self_;
  return Answer(context, grpc::Status::OK);
}

grpc::ServerUnaryReactor* ClusterService::MemberList(grpc::CallbackServerContext* context,
                                                     const etcdserverpb::MemberListRequest* request,
                                                     etcdserverpb::MemberListResponse* response) {
  FillHeader(response->mutable_header());
  *response->add_members() = self_;
  return Answer(context, grpc::Status::OK);
}

grpc::ServerUnaryReactor* ClusterService::MemberPromote(
    grpc::CallbackServerContext* context, const etcdserverpb::MemberPromoteRequest* request,
    etcdserverpb::MemberPromoteResponse* response) {
  return Answer(context, request->id() == self_.id() ? kErrMemberNotLearner : kErrMemberNotFound);
}

}  // namespace cairn::server
