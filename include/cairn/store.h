// cairn::Store — Cairn's key-value state as an embedded C++ library.
//
// A Store is a directory holding a write-ahead log and a RocksDB database. It implements
// etcd v3's data model exactly: one global revision bumped by every write request, and per
// key create_revision / mod_revision / version / lease. Requests and responses are etcd's
// own protobuf messages (etcdserverpb::PutRequest, ...), so code written against etcd's
// API maps one to one; convenience calls cover the everyday cases.
//
// Durability: a write returns only after its log record was fdatasync'ed and the write was
// applied, so an acknowledged write survives kill -9 and power loss (given a disk that
// honours fdatasync). Concurrent writers share one fdatasync (group commit): throughput
// grows with the number of writers.
//
// Consistency: every read sees every write acknowledged before it started (linearizable on
// this single node) and reads one consistent revision; a Txn is atomic at one revision.
//
// Errors: validation failures return StatusCode::kInvalidArgument with etcd's exact
// message ("etcdserver: key is not provided", "etcdserver: duplicate key given in txn
// request", "etcdserver: too many operations in txn request", "etcdserver: request is too
// large"); reads below the compacted revision or above the current one return kOutOfRange
// ("etcdserver: mvcc: required revision has been compacted" / "... is a future revision").
// A request that fails changes nothing.
//
// Limits: a request (key + value + framing) is at most StoreOptions::request_bytes_max
// (1.5 MiB, etcd's default); a Txn has at most txn_ops_max compares and as many success and
// failure operations (128, etcd's default); range_end < key is rejected (etcd would answer an
// empty range; the embedded API treats it as the bug it almost always is).
//
// Thread-safety: all methods are thread-safe, except that Close() and the destructor must not
// run concurrently with other calls. One process may open a directory at a time.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "etcdserverpb/rpc.pb.h"
#include "mvccpb/kv.pb.h"
#include "src/base/result.h"

namespace cairn {

namespace env {
class FileSystem;
}
namespace node {
class Node;
}

struct StoreOptions {
  // Required: the data directory (created if missing).
  std::string dir;
  // Largest request accepted (protobuf-encoded size). Default: 1.5 MiB, etcd's default.
  size_t request_bytes_max = 1536 * 1024;
  // Most compares, and most operations per branch, in a Txn. Default: 128, etcd's default.
  size_t txn_ops_max = 128;
  // WAL segment size. Default: 64 MiB.
  size_t wal_segment_size_bytes = 64ull << 20;
  // RocksDB block cache. Default: 256 MiB.
  size_t block_cache_bytes = 256ull << 20;
  // Cache of hot keys' current values serving point reads without touching RocksDB.
  // Default: 256 MiB.
  size_t key_cache_bytes = 256ull << 20;
  // Flush state and drop covered WAL segments every this many writes; 0 keeps the whole log.
  // Default: 1,000,000.
  uint64_t checkpoint_interval_entries = 1'000'000;
  // Keep state in memory instead of RocksDB (tests; nothing survives Close). Default: false.
  bool memory_engine = false;
  // Filesystem for the WAL (tests inject faults). Default: nullptr = posix.
  env::FileSystem* filesystem = nullptr;
};

class Store {
 public:
  // Opens or creates the store in options.dir, replaying the log written since the last
  // checkpoint. Fails with a precise Status for an unreadable directory, a data directory of
  // another format version, or a corrupt log (naming the segment file and byte offset).
  static Result<std::unique_ptr<Store>> Open(const StoreOptions& options);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // etcd's KV API, request for request.
  Result<etcdserverpb::RangeResponse> Range(const etcdserverpb::RangeRequest& request);
  Result<etcdserverpb::PutResponse> Put(const etcdserverpb::PutRequest& request);
  Result<etcdserverpb::DeleteRangeResponse> DeleteRange(
      const etcdserverpb::DeleteRangeRequest& request);
  Result<etcdserverpb::TxnResponse> Txn(const etcdserverpb::TxnRequest& request);
  Result<etcdserverpb::CompactionResponse> Compact(const etcdserverpb::CompactionRequest& request);
  Result<etcdserverpb::HashKVResponse> HashKV(int64_t revision);

  // Asynchronous writes: `done` runs exactly once, on Cairn's apply thread, after the write is
  // durable and applied (or failed). It must be short and must not block; it may issue
  // further async calls. Many writes in flight share log syncs, as concurrent writers do.
  using PutCallback = std::function<void(Result<etcdserverpb::PutResponse>)>;
  using TxnCallback = std::function<void(Result<etcdserverpb::TxnResponse>)>;
  void PutAsync(const etcdserverpb::PutRequest& request, PutCallback done);
  void TxnAsync(const etcdserverpb::TxnRequest& request, TxnCallback done);

  // Convenience: Put returns the new revision; Get returns the key at `revision` (0 = now) or
  // nullopt; Delete returns the number of keys deleted ([key, range_end) when given).
  Result<int64_t> Put(std::string_view key, std::string_view value, int64_t lease = 0);
  Result<std::optional<mvccpb::KeyValue>> Get(std::string_view key, int64_t revision = 0);
  Result<int64_t> Delete(std::string_view key, std::string_view range_end = {});
  Result<int64_t> Compact(int64_t revision);

  int64_t CurrentRevision() const;
  int64_t CompactedRevision() const;

  // Waits for in-flight writes, checkpoints and closes. Later calls fail with Unavailable.
  Status Close();

 private:
  struct Impl;
  explicit Store(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace cairn
