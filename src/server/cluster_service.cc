#include "src/server/cluster_service.h"

#include <algorithm>
#include <random>

#include "src/server/grpc_status.h"

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

bool ValidPeerUrls(const google::protobuf::RepeatedPtrField<std::string>& urls) {
  if (urls.empty()) return false;
  for (const std::string& url : urls) {
    const bool scheme = url.starts_with("http://") || url.starts_with("https://");
    if (!scheme || url.find(':', url.find("//") + 2) == std::string::npos) return false;
  }
  return true;
}

// etcd's strict reconfiguration check: the voters that have started (published their name)
// must make a quorum of the cluster after the change.
bool EnoughStarted(const std::vector<command::Member>& members, int voters_delta,
                   uint64_t removed_id) {
  size_t voters = 0, started = 0;
  for (const command::Member& member : members) {
    if (member.is_learner()) continue;
    ++voters;
    if (!member.name().empty() && member.id() != removed_id) ++started;
  }
  const size_t after = voters + voters_delta;
  return after > 0 && started >= after / 2 + 1;
}

uint64_t NewMemberId(const std::vector<command::Member>& members, node::Membership* membership) {
  static thread_local std::mt19937_64 random(std::random_device{}());
  while (true) {
    const uint64_t id = random();
    if (id == 0 || membership->WasRemoved(id)) continue;
    if (std::none_of(members.begin(), members.end(),
                     [id](const command::Member& m) { return m.id() == id; })) {
      return id;
    }
  }
}

}  // namespace

ClusterService::ClusterService(node::Node* node, const MemberIdentity* identity)
    : node_(node), identity_(identity) {}

etcdserverpb::Member ClusterService::ToEtcd(const command::Member& member) {
  etcdserverpb::Member out;
  out.set_id(member.id());
  out.set_name(member.name());
  for (const std::string& url : member.peer_urls()) out.add_peerurls(url);
  for (const std::string& url : member.client_urls()) out.add_clienturls(url);
  out.set_islearner(member.is_learner());
  return out;
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

template <typename Response>
void ClusterService::ProposeChange(grpc::ServerUnaryReactor* reactor, raft::ConfigChangeType type,
                                   command::Member member, Response* response) {
  node_->ProposeConfigChange(
      type, std::move(member),
      [this, reactor, response](const Status& status, std::vector<command::Member>&& members) {
        if (status.ok()) {
          FillHeader(response->mutable_header());
          for (const command::Member& m : members) *response->add_members() = ToEtcd(m);
        }
        reactor->Finish(ToGrpcStatus(status));
      });
}

grpc::ServerUnaryReactor* ClusterService::MemberAdd(grpc::CallbackServerContext* context,
                                                    const etcdserverpb::MemberAddRequest* request,
                                                    etcdserverpb::MemberAddResponse* response) {
  if (!ValidPeerUrls(request->peerurls())) return Answer(context, kErrBadUrls);
  const std::vector<command::Member> members = node_->membership()->List();
  for (const command::Member& member : members) {
    for (const std::string& url : request->peerurls()) {
      if (std::find(member.peer_urls().begin(), member.peer_urls().end(), url) !=
          member.peer_urls().end()) {
        return Answer(context, kErrPeerUrlExists);
      }
    }
  }
  if (!request->islearner() && !EnoughStarted(members, +1, 0)) {
    return Answer(context, kErrNotEnoughStarted);
  }
  command::Member member;
  member.set_id(NewMemberId(members, node_->membership()));
  for (const std::string& url : request->peerurls()) member.add_peer_urls(url);
  member.set_is_learner(request->islearner());
  *response->mutable_member() = ToEtcd(member);
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  ProposeChange(reactor,
                request->islearner() ? raft::ConfigChangeType::kAddLearner
                                     : raft::ConfigChangeType::kAddVoter,
                std::move(member), response);
  return reactor;
}

grpc::ServerUnaryReactor* ClusterService::MemberRemove(
    grpc::CallbackServerContext* context, const etcdserverpb::MemberRemoveRequest* request,
    etcdserverpb::MemberRemoveResponse* response) {
  command::Member member;
  if (!node_->membership()->Get(request->id(), &member)) {
    return Answer(context, kErrMemberNotFound);
  }
  if (!member.is_learner() && !EnoughStarted(node_->membership()->List(), -1, request->id())) {
    return Answer(context, kErrNotEnoughStarted);
  }
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  ProposeChange(reactor, raft::ConfigChangeType::kRemoveNode, std::move(member), response);
  return reactor;
}

grpc::ServerUnaryReactor* ClusterService::MemberUpdate(
    grpc::CallbackServerContext* context, const etcdserverpb::MemberUpdateRequest* request,
    etcdserverpb::MemberUpdateResponse* response) {
  command::Member member;
  if (!node_->membership()->Get(request->id(), &member)) {
    return Answer(context, kErrMemberNotFound);
  }
  if (!ValidPeerUrls(request->peerurls())) return Answer(context, kErrBadUrls);
  for (const command::Member& other : node_->membership()->List()) {
    if (other.id() == member.id()) continue;
    for (const std::string& url : request->peerurls()) {
      if (std::find(other.peer_urls().begin(), other.peer_urls().end(), url) !=
          other.peer_urls().end()) {
        return Answer(context, kErrPeerUrlExists);
      }
    }
  }
  command::Command command;
  command::Member* update = command.mutable_member_peer_urls();
  update->set_id(member.id());
  for (const std::string& url : request->peerurls()) update->add_peer_urls(url);
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  node_->Propose(std::move(command),
                 [this, reactor, response](const Status& status, command::CommandResult&&) {
                   if (status.ok()) {
                     FillHeader(response->mutable_header());
                     for (const command::Member& m : node_->membership()->List()) {
                       *response->add_members() = ToEtcd(m);
                     }
                   }
                   reactor->Finish(ToGrpcStatus(status));
                 });
  return reactor;
}

grpc::ServerUnaryReactor* ClusterService::MemberList(grpc::CallbackServerContext* context,
                                                     const etcdserverpb::MemberListRequest* request,
                                                     etcdserverpb::MemberListResponse* response) {
  FillHeader(response->mutable_header());
  for (const command::Member& member : node_->membership()->List()) {
    *response->add_members() = ToEtcd(member);
  }
  return Answer(context, grpc::Status::OK);
}

grpc::ServerUnaryReactor* ClusterService::MemberPromote(
    grpc::CallbackServerContext* context, const etcdserverpb::MemberPromoteRequest* request,
    etcdserverpb::MemberPromoteResponse* response) {
  command::Member member;
  if (!node_->membership()->Get(request->id(), &member)) {
    return Answer(context, kErrMemberNotFound);
  }
  if (!member.is_learner()) return Answer(context, kErrMemberNotLearner);
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  ProposeChange(reactor, raft::ConfigChangeType::kAddVoter, std::move(member), response);
  return reactor;
}

}  // namespace cairn::server
