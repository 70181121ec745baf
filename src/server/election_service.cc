#include "src/server/election_service.h"

#include <memory>
#include <mutex>
#include <string>
#include <utility>

#include "src/server/grpc_status.h"
#include "src/server/lock_service.h"  // RecipeKey, PrefixEnd

namespace cairn::server {

namespace {

constexpr char kNotLeader[] = "election: not leader";
constexpr char kNoLeader[] = "election: no leader";
constexpr char kMissingLeader[] = "\"leader\" field must be provided";

// The key under `name`/ with the lowest create revision (etcd's WithFirstCreate): the leader.
Status FirstCreated(node::Node* node, const std::string& name,
                    etcdserverpb::RangeResponse* response) {
  return OldestUnderPrefix(node->kv(), name + "/", response);
}

// Txn{if create_revision(key) == rev}.
command::Command GuardedByLeadership(const v3electionpb::LeaderKey& leader) {
  command::Command command;
  etcdserverpb::Compare* compare = command.mutable_txn()->add_compare();
  compare->set_key(leader.key());
  compare->set_target(etcdserverpb::Compare::CREATE);
  compare->set_result(etcdserverpb::Compare::EQUAL);
  compare->set_create_revision(leader.rev());
  return command;
}

void DeleteKey(node::Node* node, const std::string& key) {
  command::Command command;
  command.mutable_delete_range()->set_key(key);
  node->Propose(std::move(command), [](const Status&, command::CommandResult&&) {});
}

}  // namespace

grpc::ServerUnaryReactor* ElectionService::Campaign(grpc::CallbackServerContext* context,
                                                    const v3electionpb::CampaignRequest* request,
                                                    v3electionpb::CampaignResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  const std::string name = request->name();
  const std::string key = RecipeKey(name, request->lease());
  const int64_t lease = request->lease();
  command::Command command;
  etcdserverpb::TxnRequest* txn = command.mutable_txn();
  etcdserverpb::Compare* compare = txn->add_compare();
  compare->set_key(key);
  compare->set_target(etcdserverpb::Compare::CREATE);
  compare->set_result(etcdserverpb::Compare::EQUAL);
  compare->set_create_revision(0);
  etcdserverpb::PutRequest put;
  put.set_key(key);
  put.set_value(request->value());
  put.set_lease(lease);
  *txn->add_success()->mutable_request_put() = put;
  txn->add_failure()->mutable_request_range()->set_key(key);
  *txn->add_failure()->mutable_request_put() = put;
  node_->Propose(std::move(command), [this, context, reactor, response, name, key, lease](
                                         const Status& status, command::CommandResult&& result) {
    if (!status.ok()) return reactor->Finish(ToGrpcStatus(status));
    const etcdserverpb::TxnResponse& txn = result.txn();
    int64_t revision = txn.header().revision();
    if (!txn.succeeded()) {
      const auto& range = txn.responses(0).response_range();
      if (range.kvs_size() > 0) revision = range.kvs(0).create_revision();
    }
    node::Node* node = node_;
    const MemberIdentity* identity = identity_;
    waiter_->Add([=](bool stopping) {
      if (stopping || context->IsCancelled()) {
        // etcd resigns a cancelled campaign. Not when stopping: this may run on the apply
        // thread (PrefixWaiter::Add after Stop), where proposing could block.
        if (!stopping) DeleteKey(node, key);
        reactor->Finish(stopping ? grpc::Status(grpc::UNAVAILABLE, "cairn: server is stopping")
                                 : grpc::Status(grpc::CANCELLED, "context canceled"));
        return true;
      }
      // Leader once no key under the prefix was created before ours (etcd's waitDeletes).
      const std::string prefix = name + "/";
      etcdserverpb::RangeResponse earlier_response;
      Status read = OldestUnderPrefix(node->kv(), prefix, &earlier_response);
      if (read.ok() && earlier_response.kvs_size() > 0 &&
          earlier_response.kvs(0).create_revision() < revision) {
        return false;
      }
      if (!read.ok()) {
        reactor->Finish(ToGrpcStatus(read));
        return true;
      }
      *response->mutable_header() = earlier_response.header();
      identity->FillHeader(response->mutable_header());
      v3electionpb::LeaderKey* leader = response->mutable_leader();
      leader->set_name(name);
      leader->set_key(key);
      leader->set_rev(revision);
      leader->set_lease(lease);
      reactor->Finish(grpc::Status::OK);
      return true;
    });
  });
  return reactor;
}

grpc::ServerUnaryReactor* ElectionService::Proclaim(grpc::CallbackServerContext* context,
                                                    const v3electionpb::ProclaimRequest* request,
                                                    v3electionpb::ProclaimResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (!request->has_leader()) {
    reactor->Finish(grpc::Status(grpc::UNKNOWN, kMissingLeader));
    return reactor;
  }
  command::Command command = GuardedByLeadership(request->leader());
  etcdserverpb::PutRequest* put = command.mutable_txn()->add_success()->mutable_request_put();
  put->set_key(request->leader().key());
  put->set_value(request->value());
  put->set_lease(request->leader().lease());
  node_->Propose(std::move(command),
                 [this, reactor, response](const Status& status, command::CommandResult&& result) {
                   if (!status.ok()) return reactor->Finish(ToGrpcStatus(status));
                   if (!result.txn().succeeded()) {
                     return reactor->Finish(grpc::Status(grpc::UNKNOWN, kNotLeader));
                   }
                   *response->mutable_header() = result.txn().header();
                   identity_->FillHeader(response->mutable_header());
                   reactor->Finish(grpc::Status::OK);
                 });
  return reactor;
}

grpc::ServerUnaryReactor* ElectionService::Leader(grpc::CallbackServerContext* context,
                                                  const v3electionpb::LeaderRequest* request,
                                                  v3electionpb::LeaderResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  etcdserverpb::RangeResponse range;
  Status status = FirstCreated(node_, request->name(), &range);
  if (!status.ok()) {
    reactor->Finish(ToGrpcStatus(status));
  } else if (range.kvs_size() == 0) {
    reactor->Finish(grpc::Status(grpc::UNKNOWN, kNoLeader));
  } else {
    *response->mutable_header() = range.header();
    identity_->FillHeader(response->mutable_header());
    *response->mutable_kv() = range.kvs(0);
    reactor->Finish(grpc::Status::OK);
  }
  return reactor;
}

grpc::ServerUnaryReactor* ElectionService::Resign(grpc::CallbackServerContext* context,
                                                  const v3electionpb::ResignRequest* request,
                                                  v3electionpb::ResignResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (!request->has_leader()) {
    reactor->Finish(grpc::Status(grpc::UNKNOWN, kMissingLeader));
    return reactor;
  }
  command::Command command = GuardedByLeadership(request->leader());
  command.mutable_txn()->add_success()->mutable_request_delete_range()->set_key(
      request->leader().key());
  node_->Propose(std::move(command),
                 [this, reactor, response](const Status& status, command::CommandResult&& result) {
                   if (status.ok()) {
                     *response->mutable_header() = result.txn().header();
                     identity_->FillHeader(response->mutable_header());
                   }
                   reactor->Finish(ToGrpcStatus(status));
                 });
  return reactor;
}

// Sends the leader's kv whenever the leader key or its mod revision changes. The waiter's
// check and gRPC's reactions share `shared_->mutex`; OnDone clears shared_->self so a later
// check drops itself without touching the deleted reactor.
class ElectionService::ObserveReactor final
    : public grpc::ServerWriteReactor<v3electionpb::LeaderResponse> {
 public:
  struct Shared {
    std::recursive_mutex mutex;
    ObserveReactor* self = nullptr;
  };

  ObserveReactor(ElectionService* service, std::string name)
      : service_(service), name_(std::move(name)), shared_(std::make_shared<Shared>()) {
    shared_->self = this;
  }
  std::shared_ptr<Shared> shared() const { return shared_; }

  // Called with shared_->mutex held; true when the reactor needs no more checks.
  bool Poll(bool stopping) {
    if (finished_) return true;
    if (stopping) return FinishWith(grpc::Status(grpc::UNAVAILABLE, "cairn: server is stopping"));
    if (writing_) return false;
    etcdserverpb::RangeResponse range;
    Status status = FirstCreated(service_->node_, name_, &range);
    if (!status.ok()) return FinishWith(ToGrpcStatus(status));
    if (range.kvs_size() == 0) return false;
    const mvccpb::KeyValue& kv = range.kvs(0);
    if (kv.key() == last_key_ && kv.mod_revision() == last_mod_revision_) return false;
    last_key_ = kv.key();
    last_mod_revision_ = kv.mod_revision();
    out_.Clear();
    *out_.mutable_header() = range.header();
    service_->identity_->FillHeader(out_.mutable_header());
    *out_.mutable_kv() = kv;
    writing_ = true;
    StartWrite(&out_);
    return false;
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard lock(shared_->mutex);
    writing_ = false;
    if (!ok && !finished_) FinishWith(grpc::Status::OK);
  }
  void OnCancel() override {
    std::lock_guard lock(shared_->mutex);
    if (!finished_) FinishWith(grpc::Status(grpc::CANCELLED, "context canceled"));
  }
  void OnDone() override {
    {
      std::lock_guard lock(shared_->mutex);
      shared_->self = nullptr;
    }
    delete this;
  }

 private:
  bool FinishWith(const grpc::Status& status) {
    finished_ = true;
    Finish(status);
    return true;
  }

  ElectionService* const service_;
  const std::string name_;
  std::shared_ptr<Shared> shared_;
  bool finished_ = false;
  bool writing_ = false;
  std::string last_key_;
  int64_t last_mod_revision_ = 0;
  v3electionpb::LeaderResponse out_;
};

grpc::ServerWriteReactor<v3electionpb::LeaderResponse>* ElectionService::Observe(
    grpc::CallbackServerContext* /*context*/, const v3electionpb::LeaderRequest* request) {
  auto* reactor = new ObserveReactor(this, request->name());
  std::shared_ptr<ObserveReactor::Shared> shared = reactor->shared();
  waiter_->Add([shared](bool stopping) {
    std::lock_guard lock(shared->mutex);
    if (shared->self == nullptr) return true;
    return shared->self->Poll(stopping);
  });
  return reactor;
}

}  // namespace cairn::server
