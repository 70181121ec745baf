// LockService: etcd's Lock gRPC service (/v3lockpb.Lock/*) on gRPC's callback API, with the
// semantics of etcd's server-side clientv3/concurrency Mutex:
//
//   Lock(name, lease) ─▶ Txn{if create_revision(name/<lease hex>) == 0: put it with the
//       lease, else get it} ─▶ PrefixWaiter: wait until no key under name/ was created
//       before ours ─▶ LockResponse{header, key}. If our key is gone by then (its lease
//       expired) the call fails with etcd's "mutex: session is expired". A cancelled call
//       deletes its key, as etcd's Mutex does.
//   Unlock(key) ─▶ DeleteRange(key) ─▶ UnlockResponse{header}.
//
// Lease 0 locks with key name/0 and no lease (etcd would grant a session lease instead).
//
// Thread-safety: handlers run on gRPC's callback threads; waits on the PrefixWaiter's thread.
// The Node, the identity and the waiter must outlive the grpc::Server serving this service.
#pragma once

#include <string>

#include "src/node/node.h"
#include "src/server/member_identity.h"
#include "src/server/prefix_waiter.h"
#include "v3lockpb/v3lock.grpc.pb.h"

namespace cairn::server {

// "<prefix>/<lease in lowercase hex>", the key etcd's concurrency recipes hold.
std::string RecipeKey(const std::string& name, int64_t lease);
// The range end covering every key that starts with `prefix`.
std::string PrefixEnd(const std::string& prefix);
// Reads, at the current revision, the key under `prefix` with the lowest create_revision:
// the owner of a lock or the leader of an election (etcd's waitDeletes). `response` has at
// most one kv, and the header of the read.
Status OldestUnderPrefix(mvcc::KvState* kv, const std::string& prefix,
                         etcdserverpb::RangeResponse* response);

class LockService final : public v3lockpb::Lock::CallbackService {
 public:
  LockService(node::Node* node, const MemberIdentity* identity, PrefixWaiter* waiter)
      : node_(node), identity_(identity), waiter_(waiter) {}

  grpc::ServerUnaryReactor* Lock(grpc::CallbackServerContext* context,
                                 const v3lockpb::LockRequest* request,
                                 v3lockpb::LockResponse* response) override;
  grpc::ServerUnaryReactor* Unlock(grpc::CallbackServerContext* context,
                                   const v3lockpb::UnlockRequest* request,
                                   v3lockpb::UnlockResponse* response) override;

 private:
  // Runs on the waiter's thread; true when it finished the call.
  bool CheckOwner(grpc::CallbackServerContext* context, grpc::ServerUnaryReactor* reactor,
                  const std::string& prefix, const std::string& key, int64_t revision,
                  v3lockpb::LockResponse* response, bool stopping);
  void DeleteKey(const std::string& key);

  node::Node* const node_;
  const MemberIdentity* const identity_;
  PrefixWaiter* const waiter_;
};

}  // namespace cairn::server
