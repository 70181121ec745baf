// Internal to src/mvcc: the read paths shared by readers (engine snapshot) and the apply
// thread (reading through the write batch), so that a Range inside a Txn and a Range served
// to a client run exactly the same code.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "etcdserverpb/rpc.pb.h"
#include "mvccpb/kv.pb.h"
#include "src/base/result.h"
#include "src/base/status.h"
#include "src/mvcc/batch_latest.h"
#include "src/mvcc/latest_cache.h"
#include "src/mvcc/mvcc_format.h"
#include "src/storage/engine.h"

namespace cairn::mvcc::internal {

// A consistent source of reads: an engine snapshot, or a write batch merged over the engine.
class View {
 public:
  virtual ~View() = default;
  virtual Result<bool> Get(storage::Family family, std::string_view key, std::string* value) = 0;
  // options.snapshot is set by the view.
  virtual std::unique_ptr<storage::Iterator> NewIterator(storage::Family family,
                                                         storage::ReadOptions options) = 0;
  // Whether the view's key count blocks (key_count_blocks.h) match its kv_latest, so that
  // counts may add them up. Not within an apply batch: a command's blocks are written when
  // it ends, after its own ranges ran.
  virtual bool has_key_count_blocks() const { return false; }
};

class SnapshotView final : public View {
 public:
  // key_count_blocks: the engine's key count blocks are maintained (KvState's engines).
  SnapshotView(storage::Engine* engine, const storage::Snapshot* snapshot,
               bool key_count_blocks = false)
      : engine_(engine), snapshot_(snapshot), key_count_blocks_(key_count_blocks) {}
  Result<bool> Get(storage::Family family, std::string_view key, std::string* value) override;
  std::unique_ptr<storage::Iterator> NewIterator(storage::Family family,
                                                 storage::ReadOptions options) override;
  bool has_key_count_blocks() const override { return key_count_blocks_; }

 private:
  storage::Engine* const engine_;
  const storage::Snapshot* const snapshot_;
  const bool key_count_blocks_;
};

// The apply thread's view: `batch` merged over `engine` (the batch's engine). A kv_latest
// key is looked up in `latest` (the batch's own writes and the records read ahead of it),
// then in `cache` (nullptr, or the cache of the engine's kv_latest as the engine last
// published it: the apply thread's own KvState), then in the engine without the batch: every
// kv_latest write of the batch must be in `latest`. The memtable and file lookups the read
// ahead and the cache save are a fifth of a write's apply time at 100k keys, two fifths at
// 10M. Iterators read the batch itself.
class BatchView final : public View {
 public:
  BatchView(storage::WriteBatch* batch, storage::Engine* engine, const BatchLatest* latest,
            LatestCache* cache = nullptr)
      : batch_(batch), engine_(engine), latest_(latest), cache_(cache) {}
  Result<bool> Get(storage::Family family, std::string_view key, std::string* value) override;
  std::unique_ptr<storage::Iterator> NewIterator(storage::Family family,
                                                 storage::ReadOptions options) override;

 private:
  storage::WriteBatch* const batch_;
  storage::Engine* const engine_;
  const BatchLatest* const latest_;
  LatestCache* const cache_;
};

// etcd's key/range_end convention: empty range_end = the single key; "\0" = every key >=
// key; otherwise [key, range_end). A reversed interval (range_end <= key) is empty.
struct KeyRange {
  enum class Kind { kSingle, kInterval, kToEnd };
  std::string_view key;
  std::string_view end;
  Kind kind = Kind::kSingle;

  static KeyRange From(std::string_view key, std::string_view range_end);
  bool Empty() const { return kind == Kind::kInterval && end <= key; }
};

// Visits the live keys of `range` at the latest state of `view` (kv_latest), in key order,
// until `visit` returns false. `record.value` views storage valid only during the call.
using LatestVisitor = std::function<bool(std::string_view key, const format::RecordView&)>;
Status VisitLatest(View* view, const KeyRange& range, const LatestVisitor& visit);

// The number of live keys of `range` at the latest state of `view`: the key count blocks
// it covers whole, and a walk of kv_latest in the partial ones (all of it when the view has
// no blocks).
Status CountLatest(View* view, const KeyRange& range, int64_t* count);

// Reads one live key at the latest state. Returns false when absent.
Result<bool> GetLatest(View* view, std::string_view key, std::string* buffer,
                       format::RecordView* record);

// The keys of `range` alive at `revision`, as etcd's index Revisions/CountRevisions: every
// live key is counted in *count; the first `limit` (all when limit <= 0) are appended to
// *kvs unless count_only. at_latest reads kv_latest (REQUIRES: revision is the view's latest
// revision); otherwise kv_history.
Status RangeKeys(View* view, const KeyRange& range, int64_t revision, bool at_latest, int64_t limit,
                 bool count_only, std::vector<mvccpb::KeyValue>* kvs, int64_t* count);

// etcd's applierV3backend.Range over storeTxnRead.rangeKeys: `current` is the view's latest
// revision (header.revision), `compacted` the compacted revision (etcd's value, -1 before
// any compaction). On success *read_revision is the revision the data was read at.
Status ExecuteRange(View* view, const etcdserverpb::RangeRequest& req, int64_t current,
                    int64_t compacted, etcdserverpb::RangeResponse* resp, int64_t* read_revision);

// etcd's applyCompare, at the latest state of `view`.
Result<bool> EvaluateCompare(View* view, const etcdserverpb::Compare& compare);

void FillKeyValue(std::string_view key, const format::RecordView& record, mvccpb::KeyValue* kv);

}  // namespace cairn::mvcc::internal
