// Internal to src/mvcc: key count blocks, so that a Range's `count` at the current revision
// (etcd's CountRevisions) does not walk every key of its range.
//
// kv_latest's live keys are cut into blocks of consecutive keys; the meta family holds one
// entry per block, "kv/count/" + fence -> the number of live keys in [fence, next fence)
// (mvcc_format.h). The first fence is "", below every key. A reader adds up the blocks its
// range covers whole and walks kv_latest only in the partial blocks at its two edges
// (CountLatest in kv_read.h), from the same engine snapshot as the data.
//
// The apply thread keeps the blocks in memory too (KeyCountBlocks), so a command that
// creates or deletes keys finds their blocks without a read; the blocks a batch changed are
// written once, at the end of the batch. Once the command's net changes are counted, a block
// past 2 x block_keys is split at its middle key (one walk of the block, repeated while a
// half is still too big); an emptied block, or one that fits in its predecessor with it
// under block_keys, is merged into the predecessor.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "src/base/result.h"
#include "src/base/status.h"
#include "src/mvcc/kv_read.h"
#include "src/storage/engine.h"

namespace cairn::mvcc::internal {

// A live key created (+1) or deleted (-1) by a command, in the command's order.
struct KeyCountChange {
  std::string key;
  int delta = 0;
};

class KeyCountBlocks {
 public:
  // block_keys: the target block size (>= 1); blocks hold up to 2 x block_keys keys.
  explicit KeyCountBlocks(int64_t block_keys);

  // Reads the blocks from the engine's meta family. When there are none but the store has
  // live keys (a directory written before the blocks existed), builds them from kv_latest
  // and writes them in one engine write. Errors: engine errors, Corruption.
  Status Load(storage::Engine* engine, int64_t key_count);

  // Applies one command's changes in memory: moves the counts, splits and merges. `view`
  // reads through the batch and already holds the command's kv_latest writes. On error (a
  // read failed, or a block's keys disagree with its count: Corruption) memory is as before
  // the call.
  Status Apply(View* view, const std::vector<KeyCountChange>& changes);
  // Adds every block changed since the batch began, as it is now, to `batch`.
  void FinishBatch(storage::WriteBatch* batch) const;

  // After the batch holding the applied commands was written / dropped: forgets / undoes
  // the in-memory changes of every Apply since the last of either call.
  void OnBatchWritten() { batch_undo_.clear(); }
  void OnBatchAborted();

  size_t block_count() const { return blocks_.size(); }

 private:
  using Blocks = std::map<std::string, int64_t, std::less<>>;
  // fence -> its count before the current batch (nullopt: it did not exist).
  using Undo = std::vector<std::pair<std::string, std::optional<int64_t>>>;

  // Sets (or erases, with nullopt) a block, remembering what it was in `undo`.
  void Set(std::string_view fence, std::optional<int64_t> count, Undo* undo);
  // Splits the block at `fence` (count > 2 x block_keys_) at its middle key; returns it.
  Result<std::string> Split(View* view, const std::string& fence, int64_t count, Undo* undo);
  static void Rollback(Blocks* blocks, const Undo& undo);

  const int64_t block_keys_;
  Blocks blocks_;
  Undo batch_undo_;
};

}  // namespace cairn::mvcc::internal
