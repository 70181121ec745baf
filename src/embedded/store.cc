#include "cairn/store.h"

#include <condition_variable>
#include <mutex>

#include "src/mvcc/validation.h"
#include "src/node/node.h"

namespace cairn {

struct Store::Impl {
  StoreOptions options;
  mvcc::ValidationOptions validation;
  std::unique_ptr<node::Node> node;

  // Proposes `command` and waits for its result.
  Result<command::CommandResult> Propose(command::Command command) {
    struct Waiter {
      std::mutex mutex;
      std::condition_variable done;
      bool finished = false;
      Status status;
      command::CommandResult result;
    } waiter;
    node->Propose(std::move(command),
                  [&waiter](const Status& status, command::CommandResult&& result) {
                    std::lock_guard<std::mutex> lock(waiter.mutex);
                    waiter.status = status;
                    waiter.result = std::move(result);
                    waiter.finished = true;
                    waiter.done.notify_one();
                  });
    std::unique_lock<std::mutex> lock(waiter.mutex);
    waiter.done.wait(lock, [&] { return waiter.finished; });
    if (!waiter.status.ok()) return waiter.status;
    return std::move(waiter.result);
  }

  Status CheckOpen() const {
    return node ? Status::Ok() : Status::Unavailable("cairn: store is closed");
  }
};

Store::Store(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Store::~Store() { (void)Close(); }

Result<std::unique_ptr<Store>> Store::Open(const StoreOptions& options) {
  if (options.dir.empty()) return Status::InvalidArgument("cairn: StoreOptions.dir is required");
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->validation.request_bytes_max = options.request_bytes_max;
  impl->validation.txn_ops_max = options.txn_ops_max;
  impl->validation.reject_reversed_range = true;
  node::NodeOptions node_options;
  node_options.data_dir = options.dir;
  node_options.filesystem = options.filesystem;
  node_options.memory_engine = options.memory_engine;
  node_options.engine.block_cache_bytes = options.block_cache_bytes;
  node_options.kv.latest_cache_bytes = options.key_cache_bytes;
  node_options.wal.segment_size_bytes = options.wal_segment_size_bytes;
  node_options.checkpoint_interval_entries = options.checkpoint_interval_entries;
  CAIRN_ASSIGN_OR_RETURN(impl->node, node::Node::Open(std::move(node_options)));
  return std::unique_ptr<Store>(new Store(std::move(impl)));
}

Result<etcdserverpb::RangeResponse> Store::Range(const etcdserverpb::RangeRequest& request) {
  CAIRN_RETURN_IF_ERROR(impl_->CheckOpen());
  CAIRN_RETURN_IF_ERROR(mvcc::ValidateRange(request, impl_->validation));
  etcdserverpb::RangeResponse response;
  CAIRN_RETURN_IF_ERROR(impl_->node->kv()->Range(request, &response));
  return response;
}

Result<etcdserverpb::PutResponse> Store::Put(const etcdserverpb::PutRequest& request) {
  CAIRN_RETURN_IF_ERROR(impl_->CheckOpen());
  CAIRN_RETURN_IF_ERROR(mvcc::ValidatePut(request, impl_->validation));
  command::Command command;
  *command.mutable_put() = request;
  CAIRN_ASSIGN_OR_RETURN(command::CommandResult result, impl_->Propose(std::move(command)));
  return std::move(*result.mutable_put());
}

Result<etcdserverpb::DeleteRangeResponse> Store::DeleteRange(
    const etcdserverpb::DeleteRangeRequest& request) {
  CAIRN_RETURN_IF_ERROR(impl_->CheckOpen());
  CAIRN_RETURN_IF_ERROR(mvcc::ValidateDeleteRange(request, impl_->validation));
  command::Command command;
  *command.mutable_delete_range() = request;
  CAIRN_ASSIGN_OR_RETURN(command::CommandResult result, impl_->Propose(std::move(command)));
  return std::move(*result.mutable_delete_range());
}

Result<etcdserverpb::TxnResponse> Store::Txn(const etcdserverpb::TxnRequest& request) {
  CAIRN_RETURN_IF_ERROR(impl_->CheckOpen());
  CAIRN_RETURN_IF_ERROR(mvcc::ValidateTxn(request, impl_->validation));
  command::Command command;
  *command.mutable_txn() = request;
  CAIRN_ASSIGN_OR_RETURN(command::CommandResult result, impl_->Propose(std::move(command)));
  return std::move(*result.mutable_txn());
}

Result<etcdserverpb::CompactionResponse> Store::Compact(
    const etcdserverpb::CompactionRequest& request) {
  CAIRN_RETURN_IF_ERROR(impl_->CheckOpen());
  command::Command command;
  *command.mutable_compaction() = request;
  CAIRN_ASSIGN_OR_RETURN(command::CommandResult result, impl_->Propose(std::move(command)));
  if (request.physical()) CAIRN_RETURN_IF_ERROR(impl_->node->kv()->CompactPhysically());
  return std::move(*result.mutable_compaction());
}

void Store::PutAsync(const etcdserverpb::PutRequest& request, PutCallback done) {
  Status valid = impl_->CheckOpen();
  if (valid.ok()) valid = mvcc::ValidatePut(request, impl_->validation);
  if (!valid.ok()) return done(valid);
  command::Command command;
  *command.mutable_put() = request;
  impl_->node->Propose(std::move(command),
                       [done = std::move(done)](const Status& status, command::CommandResult&& r) {
                         if (!status.ok()) return done(status);
                         done(std::move(*r.mutable_put()));
                       });
}

void Store::TxnAsync(const etcdserverpb::TxnRequest& request, TxnCallback done) {
  Status valid = impl_->CheckOpen();
  if (valid.ok()) valid = mvcc::ValidateTxn(request, impl_->validation);
  if (!valid.ok()) return done(valid);
  command::Command command;
  *command.mutable_txn() = request;
  impl_->node->Propose(std::move(command),
                       [done = std::move(done)](const Status& status, command::CommandResult&& r) {
                         if (!status.ok()) return done(status);
                         done(std::move(*r.mutable_txn()));
                       });
}

Result<etcdserverpb::HashKVResponse> Store::HashKV(int64_t revision) {
  CAIRN_RETURN_IF_ERROR(impl_->CheckOpen());
  etcdserverpb::HashKVResponse response;
  CAIRN_RETURN_IF_ERROR(impl_->node->kv()->HashKV(revision, &response));
  return response;
}

Result<int64_t> Store::Put(std::string_view key, std::string_view value, int64_t lease) {
  etcdserverpb::PutRequest request;
  request.set_key(key.data(), key.size());
  request.set_value(value.data(), value.size());
  request.set_lease(lease);
  CAIRN_ASSIGN_OR_RETURN(etcdserverpb::PutResponse response, Put(request));
  return response.header().revision();
}

Result<std::optional<mvccpb::KeyValue>> Store::Get(std::string_view key, int64_t revision) {
  etcdserverpb::RangeRequest request;
  request.set_key(key.data(), key.size());
  request.set_revision(revision);
  CAIRN_ASSIGN_OR_RETURN(etcdserverpb::RangeResponse response, Range(request));
  if (response.kvs_size() == 0) return std::optional<mvccpb::KeyValue>();
  return std::optional<mvccpb::KeyValue>(std::move(*response.mutable_kvs(0)));
}

Result<int64_t> Store::Delete(std::string_view key, std::string_view range_end) {
  etcdserverpb::DeleteRangeRequest request;
  request.set_key(key.data(), key.size());
  request.set_range_end(range_end.data(), range_end.size());
  CAIRN_ASSIGN_OR_RETURN(etcdserverpb::DeleteRangeResponse response, DeleteRange(request));
  return response.deleted();
}

Result<int64_t> Store::Compact(int64_t revision) {
  etcdserverpb::CompactionRequest request;
  request.set_revision(revision);
  CAIRN_ASSIGN_OR_RETURN(etcdserverpb::CompactionResponse response, Compact(request));
  return response.header().revision();
}

int64_t Store::CurrentRevision() const {
  return impl_->node ? impl_->node->kv()->CurrentRevision() : 0;
}

int64_t Store::CompactedRevision() const {
  return impl_->node ? impl_->node->kv()->CompactedRevision() : 0;
}

Status Store::Close() {
  if (!impl_->node) return Status::Ok();
  Status status = impl_->node->Close();
  impl_->node.reset();
  return status;
}

}  // namespace cairn
