// KvService: etcd's KV gRPC service (/etcdserverpb.KV/*) on gRPC's callback API.
//
//   Range, read-only Txn ─▶ validate ─▶ KvState read on one engine snapshot ─▶ Finish
//   Put, DeleteRange, Txn, Compact ─▶ validate ─▶ Node::Propose ─▶ (apply thread) Finish
//
// Requests are checked with etcd's rules, limits and messages (mvcc::Validate*, with
// reject_reversed_range = false: etcd answers a reversed range with nothing). A write is
// answered when it is durable and applied; many writes in flight share one log sync.
// Responses carry the revision the state machine set plus cluster_id, member_id and
// raft_term from MemberIdentity.
//
// Thread-safety: handlers run on gRPC's callback threads, concurrently. The Node's done
// callbacks run on the apply thread: they only fill the response and call Finish (short,
// non-blocking); slow follow-up work (physical compaction) goes to the BackgroundWorker.
// The Node, the identity and the worker must outlive the grpc::Server serving this service.
#pragma once

#include "etcdserverpb/rpc.grpc.pb.h"
#include "src/mvcc/validation.h"
#include "src/node/node.h"
#include "src/server/background_worker.h"
#include "src/server/member_identity.h"

namespace cairn::server {

class KvService final : public etcdserverpb::KV::CallbackService {
 public:
  KvService(node::Node* node, const MemberIdentity* identity, BackgroundWorker* worker,
            const mvcc::ValidationOptions& validation);

  grpc::ServerUnaryReactor* Range(grpc::CallbackServerContext* context,
                                  const etcdserverpb::RangeRequest* request,
                                  etcdserverpb::RangeResponse* response) override;
  grpc::ServerUnaryReactor* Put(grpc::CallbackServerContext* context,
                                const etcdserverpb::PutRequest* request,
                                etcdserverpb::PutResponse* response) override;
  grpc::ServerUnaryReactor* DeleteRange(grpc::CallbackServerContext* context,
                                        const etcdserverpb::DeleteRangeRequest* request,
                                        etcdserverpb::DeleteRangeResponse* response) override;
  grpc::ServerUnaryReactor* Txn(grpc::CallbackServerContext* context,
                                const etcdserverpb::TxnRequest* request,
                                etcdserverpb::TxnResponse* response) override;
  grpc::ServerUnaryReactor* Compact(grpc::CallbackServerContext* context,
                                    const etcdserverpb::CompactionRequest* request,
                                    etcdserverpb::CompactionResponse* response) override;

 private:
  // Proposes `command`; when it applied, moves take(result) into *response, fills the
  // header and finishes `reactor` with the command's status.
  template <typename Response, typename Take>
  void ProposeAndFinish(grpc::ServerUnaryReactor* reactor, command::Command command,
                        Response* response, Take take);
  // Runs a physical compaction on the worker, then finishes `reactor`.
  void CompactPhysicallyAndFinish(grpc::ServerUnaryReactor* reactor);

  node::Node* const node_;
  const MemberIdentity* const identity_;
  BackgroundWorker* const worker_;
  const mvcc::ValidationOptions validation_;
};

}  // namespace cairn::server
