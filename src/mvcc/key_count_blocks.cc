#include "src/mvcc/key_count_blocks.h"

#include <iterator>
#include <set>

#include "src/base/check.h"
#include "src/mvcc/mvcc_format.h"

namespace cairn::mvcc::internal {
namespace {

using storage::Family;

std::string BlockKey(std::string_view fence) {
  std::string key(format::kMetaKeyCountBlockPrefix);
  key.append(fence);
  return key;
}

Status CorruptBlock(std::string_view what) {
  return Status::Corruption("mvcc: key count block: " + std::string(what));
}

}  // namespace

KeyCountBlocks::KeyCountBlocks(int64_t block_keys) : block_keys_(block_keys) {
  CAIRN_CHECK(block_keys >= 1);
}

Status KeyCountBlocks::Load(storage::Engine* engine, int64_t key_count) {
  blocks_.clear();
  batch_undo_.clear();
  std::shared_ptr<const storage::Snapshot> snapshot = engine->GetSnapshot();
  storage::ReadOptions options;
  options.snapshot = snapshot.get();
  options.lower_bound = format::kMetaKeyCountBlockPrefix;
  options.upper_bound = format::kMetaKeyCountBlockEnd;
  auto it = engine->NewIterator(options, Family::kMeta);
  for (it->Seek(format::kMetaKeyCountBlockPrefix); it->Valid(); it->Next()) {
    int64_t count = 0;
    if (!format::DecodeMetaRevision(it->value(), &count) || count < 0) {
      return CorruptBlock("undecodable count");
    }
    blocks_.emplace(std::string(it->key().substr(format::kMetaKeyCountBlockPrefix.size())), count);
  }
  CAIRN_RETURN_IF_ERROR(it->status());
  if (!blocks_.empty() || key_count == 0) return Status::Ok();

  // Written before the blocks existed: a fence every block_keys_ keys, from one snapshot.
  storage::ReadOptions latest_options;
  latest_options.snapshot = snapshot.get();
  latest_options.fill_cache = false;
  auto latest = engine->NewIterator(latest_options, Family::kKvLatest);
  std::string fence;
  int64_t count = 0;
  for (latest->SeekToFirst(); latest->Valid(); latest->Next()) {
    if (count == block_keys_) {
      blocks_.emplace(std::move(fence), count);
      fence.assign(latest->key());
      count = 0;
    }
    ++count;
  }
  CAIRN_RETURN_IF_ERROR(latest->status());
  blocks_.emplace(std::move(fence), count);
  // One write (a block is ~30 bytes; 10M keys make 20k blocks): a crash leaves all or none.
  auto batch = engine->NewWriteBatch();
  for (const auto& [block_fence, block_count] : blocks_) {
    batch->Put(Family::kMeta, BlockKey(block_fence), format::EncodeMetaRevision(block_count));
  }
  return engine->Write(batch.get());
}

void KeyCountBlocks::Set(std::string_view fence, std::optional<int64_t> count, Undo* undo) {
  auto it = blocks_.find(fence);
  std::optional<int64_t> before;
  if (it != blocks_.end()) before = it->second;
  undo->emplace_back(std::string(fence), before);
  if (!count) {
    if (it != blocks_.end()) blocks_.erase(it);
  } else if (it != blocks_.end()) {
    it->second = *count;
  } else {
    blocks_.emplace(std::string(fence), *count);
  }
}

void KeyCountBlocks::Rollback(Blocks* blocks, const Undo& undo) {
  for (auto it = undo.rbegin(); it != undo.rend(); ++it) {
    if (it->second) {
      (*blocks)[it->first] = *it->second;
    } else {
      blocks->erase(it->first);
    }
  }
}

Result<std::string> KeyCountBlocks::Split(View* view, const std::string& fence, int64_t count,
                                          Undo* undo) {
  auto next = blocks_.upper_bound(fence);
  storage::ReadOptions options;
  options.lower_bound = fence;
  if (next != blocks_.end()) options.upper_bound = next->first;
  auto it = view->NewIterator(Family::kKvLatest, options);
  const int64_t first_half = count / 2;
  int64_t seen = 0;
  it->Seek(fence);
  for (; it->Valid() && seen < first_half; it->Next()) ++seen;
  CAIRN_RETURN_IF_ERROR(it->status());
  if (!it->Valid() || (next != blocks_.end() && it->key() >= next->first)) {
    return CorruptBlock("a block counts " + std::to_string(count) + " keys, kv_latest has " +
                        std::to_string(seen));
  }
  std::string middle(it->key());
  Set(fence, first_half, undo);
  Set(middle, count - first_half, undo);
  return middle;
}

Status KeyCountBlocks::Apply(View* view, const std::vector<KeyCountChange>& changes) {
  if (changes.empty()) return Status::Ok();
  // Net change per key: `view` holds the command's end state, and a split walks it, so
  // the counts must reach that state before any block is split or merged.
  std::map<std::string_view, int> net;
  for (const KeyCountChange& change : changes) net[change.key] += change.delta;
  Undo undo;
  std::set<std::string> touched;
  for (const auto& [key, delta] : net) {
    if (delta == 0) continue;
    // The block holding the key: the last fence <= key ("" is below every key).
    auto it = blocks_.upper_bound(key);
    if (it == blocks_.begin()) {
      Set("", 0, &undo);
      it = blocks_.upper_bound(key);
    }
    --it;
    Set(it->first, it->second + delta, &undo);
    touched.insert(it->first);
  }
  std::vector<std::string> pending(touched.begin(), touched.end());
  while (!pending.empty()) {
    const std::string fence = std::move(pending.back());
    pending.pop_back();
    auto it = blocks_.find(fence);
    if (it == blocks_.end()) continue;  // merged into its predecessor
    const int64_t count = it->second;
    if (count < 0) {
      Rollback(&blocks_, undo);
      return CorruptBlock("a block counts fewer keys than were deleted from it");
    }
    if (count > 2 * block_keys_) {
      Result<std::string> middle = Split(view, fence, count, &undo);
      if (!middle.ok()) {
        Rollback(&blocks_, undo);
        return middle.status();
      }
      pending.push_back(fence);
      pending.push_back(std::move(middle).value());
      continue;
    }
    if (fence.empty()) continue;
    auto previous = std::prev(it);
    if (count == 0 || previous->second + count < block_keys_) {
      const std::string previous_fence = previous->first;
      const int64_t merged = previous->second + count;
      Set(fence, std::nullopt, &undo);
      Set(previous_fence, merged, &undo);
    }
  }
  for (auto& entry : undo) batch_undo_.push_back(std::move(entry));
  return Status::Ok();
}

void KeyCountBlocks::FinishBatch(storage::WriteBatch* batch) const {
  std::set<std::string_view> written;
  for (const auto& [fence, before] : batch_undo_) {
    if (!written.insert(fence).second) continue;
    auto it = blocks_.find(fence);
    if (it == blocks_.end()) {
      batch->Delete(Family::kMeta, BlockKey(fence));
    } else {
      batch->Put(Family::kMeta, BlockKey(fence), format::EncodeMetaRevision(it->second));
    }
  }
}

void KeyCountBlocks::OnBatchAborted() {
  Rollback(&blocks_, batch_undo_);
  batch_undo_.clear();
}

}  // namespace cairn::mvcc::internal
