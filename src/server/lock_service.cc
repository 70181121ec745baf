#include "src/server/lock_service.h"

#include <cstdio>
#include <utility>

#include "src/server/grpc_status.h"

namespace cairn::server {

std::string RecipeKey(const std::string& name, int64_t lease) {
  char hex[32];
  std::snprintf(hex, sizeof(hex), "%llx",
                static_cast<unsigned long long>(static_cast<uint64_t>(lease)));
  return name + "/" + hex;
}

std::string PrefixEnd(const std::string& prefix) {
  std::string end = prefix;
  while (!end.empty()) {
    auto& last = reinterpret_cast<unsigned char&>(end.back());
    if (last < 0xff) {
      last++;
      return end;
    }
    end.pop_back();
  }
  return std::string(1, '\0');  // every key
}

Status OldestUnderPrefix(mvcc::KvState* kv, const std::string& prefix,
                         etcdserverpb::RangeResponse* response) {
  etcdserverpb::RangeRequest oldest;
  oldest.set_key(prefix);
  oldest.set_range_end(PrefixEnd(prefix));
  oldest.set_sort_target(etcdserverpb::RangeRequest::CREATE);
  oldest.set_sort_order(etcdserverpb::RangeRequest::ASCEND);
  oldest.set_limit(1);
  return kv->Range(oldest, response);
}

grpc::ServerUnaryReactor* LockService::Lock(grpc::CallbackServerContext* context,
                                            const v3lockpb::LockRequest* request,
                                            v3lockpb::LockResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  const std::string prefix = request->name() + "/";
  const std::string key = RecipeKey(request->name(), request->lease());
  command::Command command;
  etcdserverpb::TxnRequest* txn = command.mutable_txn();
  etcdserverpb::Compare* compare = txn->add_compare();
  compare->set_key(key);
  compare->set_target(etcdserverpb::Compare::CREATE);
  compare->set_result(etcdserverpb::Compare::EQUAL);
  compare->set_create_revision(0);
  etcdserverpb::PutRequest* put = txn->add_success()->mutable_request_put();
  put->set_key(key);
  put->set_lease(request->lease());
  txn->add_failure()->mutable_request_range()->set_key(key);
  node_->Propose(std::move(command), [this, context, reactor, response, prefix, key](
                                         const Status& status, command::CommandResult&& result) {
    if (!status.ok()) return reactor->Finish(ToGrpcStatus(status));
    const etcdserverpb::TxnResponse& txn = result.txn();
    int64_t revision = txn.header().revision();
    if (!txn.succeeded()) {
      const auto& range = txn.responses(0).response_range();
      if (range.kvs_size() == 0) {  // deleted between compare and read: cannot happen
        return reactor->Finish(grpc::Status(grpc::UNKNOWN, "mutex: session is expired"));
      }
      revision = range.kvs(0).create_revision();
    }
    waiter_->Add([=, this](bool stopping) {
      return CheckOwner(context, reactor, prefix, key, revision, response, stopping);
    });
  });
  return reactor;
}

bool LockService::CheckOwner(grpc::CallbackServerContext* context,
                             grpc::ServerUnaryReactor* reactor, const std::string& prefix,
                             const std::string& key, int64_t revision,
                             v3lockpb::LockResponse* response, bool stopping) {
  if (stopping || context->IsCancelled()) {
    // As etcd's Mutex, a cancelled waiter removes its key. Not when stopping: this may run
    // on the apply thread (PrefixWaiter::Add after Stop), where proposing could block.
    if (!stopping) DeleteKey(key);
    reactor->Finish(stopping ? grpc::Status(grpc::UNAVAILABLE, "cairn: server is stopping")
                             : grpc::Status(grpc::CANCELLED, "context canceled"));
    return true;
  }
  // Any key under the prefix created before ours still holds or waits for the lock.
  etcdserverpb::RangeResponse earlier_response;
  Status status = OldestUnderPrefix(node_->kv(), prefix, &earlier_response);
  if (status.ok() && earlier_response.kvs_size() > 0 &&
      earlier_response.kvs(0).create_revision() < revision) {
    return false;
  }
  etcdserverpb::RangeRequest mine;
  mine.set_key(key);
  etcdserverpb::RangeResponse mine_response;
  if (status.ok()) status = node_->kv()->Range(mine, &mine_response);
  if (!status.ok()) {
    reactor->Finish(ToGrpcStatus(status));
  } else if (mine_response.kvs_size() == 0 || mine_response.kvs(0).create_revision() != revision) {
    reactor->Finish(grpc::Status(grpc::UNKNOWN, "mutex: session is expired"));
  } else {
    *response->mutable_header() = mine_response.header();
    identity_->FillHeader(response->mutable_header());
    response->set_key(key);
    reactor->Finish(grpc::Status::OK);
  }
  return true;
}

void LockService::DeleteKey(const std::string& key) {
  command::Command command;
  command.mutable_delete_range()->set_key(key);
  node_->Propose(std::move(command), [](const Status&, command::CommandResult&&) {});
}

grpc::ServerUnaryReactor* LockService::Unlock(grpc::CallbackServerContext* context,
                                              const v3lockpb::UnlockRequest* request,
                                              v3lockpb::UnlockResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  command::Command command;
  command.mutable_delete_range()->set_key(request->key());
  node_->Propose(std::move(command),
                 [this, reactor, response](const Status& status, command::CommandResult&& result) {
                   if (status.ok()) {
                     *response->mutable_header() = result.delete_range().header();
                     identity_->FillHeader(response->mutable_header());
                   }
                   reactor->Finish(ToGrpcStatus(status));
                 });
  return reactor;
}

}  // namespace cairn::server
