#include "src/storage/memory_engine.h"

#include <string>
#include <utility>
#include <vector>

#include "src/base/check.h"

namespace cairn::storage {
namespace memory_internal {

// An immutable key/value pair, shared by every tree version that holds it. `deleted` marks
// a Delete in a WriteBatch's tree; engine trees hold live entries only.
struct Entry {
  std::string key;
  std::string value;
  bool deleted = false;
};
using EntryPtr = std::shared_ptr<const Entry>;
using NodePtr = std::shared_ptr<const Node>;

// A treap node. Priorities come from a hash of the key, so the shape of a tree depends only
// on its keys: runs are deterministic and the expected depth is O(log n).
struct Node {
  EntryPtr entry;
  uint64_t priority;
  NodePtr left;
  NodePtr right;
};

namespace {

uint64_t KeyPriority(std::string_view key) {
  uint64_t h = 14695981039346656037ull;  // FNV-1a, then the splitmix64 finalizer
  for (unsigned char c : key) h = (h ^ c) * 1099511628211ull;
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebull;
  h ^= h >> 31;
  return h;
}

NodePtr MakeNode(EntryPtr entry, uint64_t priority, NodePtr left, NodePtr right) {
  return std::make_shared<const Node>(
      Node{std::move(entry), priority, std::move(left), std::move(right)});
}

const Entry* Find(const NodePtr& root, std::string_view key) {
  const Node* node = root.get();
  while (node != nullptr) {
    int c = key.compare(node->entry->key);
    if (c == 0) return node->entry.get();
    node = c < 0 ? node->left.get() : node->right.get();
  }
  return nullptr;
}

// Splits `t` into the keys < key and the keys > key. REQUIRES: key is not in t.
std::pair<NodePtr, NodePtr> Split(const NodePtr& t, std::string_view key) {
  if (t == nullptr) return {nullptr, nullptr};
  if (t->entry->key < key) {
    auto [left, right] = Split(t->right, key);
    return {MakeNode(t->entry, t->priority, t->left, std::move(left)), std::move(right)};
  }
  auto [left, right] = Split(t->left, key);
  return {std::move(left), MakeNode(t->entry, t->priority, std::move(right), t->right)};
}

// Joins two trees where every key of `a` is less than every key of `b`.
NodePtr Merge(const NodePtr& a, const NodePtr& b) {
  if (a == nullptr) return b;
  if (b == nullptr) return a;
  if (a->priority >= b->priority) {
    return MakeNode(a->entry, a->priority, a->left, Merge(a->right, b));
  }
  return MakeNode(b->entry, b->priority, Merge(a, b->left), b->right);
}

// Returns `t` with `entry` inserted, replacing an entry with the same key.
NodePtr Insert(const NodePtr& t, EntryPtr entry, uint64_t priority) {
  if (t == nullptr) return MakeNode(std::move(entry), priority, nullptr, nullptr);
  int c = std::string_view(entry->key).compare(t->entry->key);
  if (c == 0) return MakeNode(std::move(entry), t->priority, t->left, t->right);
  if (priority > t->priority) {
    // The heap order puts the new node here; the key cannot be below a lower priority.
    auto [left, right] = Split(t, entry->key);
    return MakeNode(std::move(entry), priority, std::move(left), std::move(right));
  }
  if (c < 0)
    return MakeNode(t->entry, t->priority, Insert(t->left, std::move(entry), priority), t->right);
  return MakeNode(t->entry, t->priority, t->left, Insert(t->right, std::move(entry), priority));
}

// Returns `t` without `key`; returns `t` itself when the key is absent.
NodePtr Erase(const NodePtr& t, std::string_view key) {
  if (t == nullptr) return t;
  int c = key.compare(t->entry->key);
  if (c == 0) return Merge(t->left, t->right);
  if (c < 0) {
    NodePtr left = Erase(t->left, key);
    if (left == t->left) return t;
    return MakeNode(t->entry, t->priority, std::move(left), t->right);
  }
  NodePtr right = Erase(t->right, key);
  if (right == t->right) return t;
  return MakeNode(t->entry, t->priority, t->left, std::move(right));
}

// Calls fn(entry_ptr) for every entry in key order.
template <typename Fn>
void ForEach(const NodePtr& t, Fn&& fn) {
  if (t == nullptr) return;
  ForEach(t->left, fn);
  fn(t->entry);
  ForEach(t->right, fn);
}

// A position in one tree: the path from the root to the current node (empty = invalid).
// Holds the root, so the tree and the current entry stay alive while the cursor does.
class Cursor {
 public:
  Cursor() = default;
  explicit Cursor(NodePtr root) : root_(std::move(root)) {}

  bool Valid() const { return !path_.empty(); }
  const Entry& entry() const { return *path_.back()->entry; }
  const EntryPtr& entry_ptr() const { return path_.back()->entry; }

  void SeekToFirst() {
    path_.clear();
    for (const Node* n = root_.get(); n != nullptr; n = n->left.get()) path_.push_back(n);
  }
  void SeekToLast() {
    path_.clear();
    for (const Node* n = root_.get(); n != nullptr; n = n->right.get()) path_.push_back(n);
  }
  // First key >= target (or > target when `strict`).
  void SeekAfter(std::string_view target, bool strict) {
    path_.clear();
    size_t keep = 0;
    for (const Node* n = root_.get(); n != nullptr;) {
      path_.push_back(n);
      int c = std::string_view(n->entry->key).compare(target);
      if (c > 0 || (c == 0 && !strict)) {
        keep = path_.size();
        n = n->left.get();
      } else {
        n = n->right.get();
      }
    }
    path_.resize(keep);
  }
  // Last key <= target (or < target when `strict`).
  void SeekBefore(std::string_view target, bool strict) {
    path_.clear();
    size_t keep = 0;
    for (const Node* n = root_.get(); n != nullptr;) {
      path_.push_back(n);
      int c = std::string_view(n->entry->key).compare(target);
      if (c < 0 || (c == 0 && !strict)) {
        keep = path_.size();
        n = n->right.get();
      } else {
        n = n->left.get();
      }
    }
    path_.resize(keep);
  }
  void Next() {
    CAIRN_CHECK(Valid());
    if (const Node* n = path_.back()->right.get(); n != nullptr) {
      for (; n != nullptr; n = n->left.get()) path_.push_back(n);
      return;
    }
    // Climb until we leave a left subtree; its parent is the successor.
    while (true) {
      const Node* child = path_.back();
      path_.pop_back();
      if (path_.empty() || path_.back()->left.get() == child) return;
    }
  }
  void Prev() {
    CAIRN_CHECK(Valid());
    if (const Node* n = path_.back()->left.get(); n != nullptr) {
      for (; n != nullptr; n = n->right.get()) path_.push_back(n);
      return;
    }
    while (true) {
      const Node* child = path_.back();
      path_.pop_back();
      if (path_.empty() || path_.back()->right.get() == child) return;
    }
  }

 private:
  NodePtr root_;
  std::vector<const Node*> path_;
};

// Iterates a base tree (live entries) with an optional delta tree (a WriteBatch's entries,
// deletes included) merged on top, within [lower, upper).
//
// Moving forward, both cursors sit at or after the current key and the current entry is the
// smaller of the two (the delta's on a tie); moving backward, at or before it and the
// larger. Changing direction re-seeks both cursors around the current key.
class MergedIterator final : public Iterator {
 public:
  MergedIterator(NodePtr base, NodePtr delta, const ReadOptions& options)
      : base_(std::move(base)),
        delta_(std::move(delta)),
        lower_(options.lower_bound),
        upper_(options.upper_bound) {}

  bool Valid() const override { return current_ != nullptr; }
  void SeekToFirst() override {
    if (!lower_.empty()) return Seek(lower_);
    base_.SeekToFirst();
    delta_.SeekToFirst();
    ResolveForward();
  }
  void SeekToLast() override {
    if (!upper_.empty()) return SeekBeforeUpper();
    base_.SeekToLast();
    delta_.SeekToLast();
    ResolveBackward();
  }
  void Seek(std::string_view target) override {
    if (!lower_.empty() && target < lower_) target = lower_;
    base_.SeekAfter(target, false);
    delta_.SeekAfter(target, false);
    ResolveForward();
  }
  void SeekForPrev(std::string_view target) override {
    if (!upper_.empty() && target >= upper_) return SeekBeforeUpper();
    base_.SeekBefore(target, false);
    delta_.SeekBefore(target, false);
    ResolveBackward();
  }
  void Next() override {
    CAIRN_CHECK(Valid());
    std::string_view key = current_->key;  // the entry outlives the cursor moves
    if (!forward_) {
      base_.SeekAfter(key, false);
      delta_.SeekAfter(key, false);
    }
    if (base_.Valid() && base_.entry().key == key) base_.Next();
    if (delta_.Valid() && delta_.entry().key == key) delta_.Next();
    ResolveForward();
  }
  void Prev() override {
    CAIRN_CHECK(Valid());
    std::string_view key = current_->key;
    if (forward_) {
      base_.SeekBefore(key, false);
      delta_.SeekBefore(key, false);
    }
    if (base_.Valid() && base_.entry().key == key) base_.Prev();
    if (delta_.Valid() && delta_.entry().key == key) delta_.Prev();
    ResolveBackward();
  }
  std::string_view key() const override {
    CAIRN_CHECK(Valid());
    return current_->key;
  }
  std::string_view value() const override {
    CAIRN_CHECK(Valid());
    return current_->value;
  }
  Status status() const override { return Status::Ok(); }

 private:
  void SeekBeforeUpper() {
    base_.SeekBefore(upper_, true);
    delta_.SeekBefore(upper_, true);
    ResolveBackward();
  }

  void ResolveForward() {
    forward_ = true;
    current_ = nullptr;
    while (base_.Valid() || delta_.Valid()) {
      const Entry* base = base_.Valid() ? &base_.entry() : nullptr;
      const Entry* delta = delta_.Valid() ? &delta_.entry() : nullptr;
      if (delta == nullptr || (base != nullptr && base->key < delta->key)) {
        current_ = base;
        break;
      }
      if (!delta->deleted) {
        current_ = delta;
        break;
      }
      if (base != nullptr && base->key == delta->key) base_.Next();
      delta_.Next();
    }
    if (current_ != nullptr && !upper_.empty() && current_->key >= upper_) current_ = nullptr;
  }

  void ResolveBackward() {
    forward_ = false;
    current_ = nullptr;
    while (base_.Valid() || delta_.Valid()) {
      const Entry* base = base_.Valid() ? &base_.entry() : nullptr;
      const Entry* delta = delta_.Valid() ? &delta_.entry() : nullptr;
      if (delta == nullptr || (base != nullptr && base->key > delta->key)) {
        current_ = base;
        break;
      }
      if (!delta->deleted) {
        current_ = delta;
        break;
      }
      if (base != nullptr && base->key == delta->key) base_.Prev();
      delta_.Prev();
    }
    if (current_ != nullptr && !lower_.empty() && current_->key < lower_) current_ = nullptr;
  }

  Cursor base_;
  Cursor delta_;
  const std::string lower_;  // copies: cheap, and safe whatever the caller does
  const std::string upper_;
  bool forward_ = true;
  const Entry* current_ = nullptr;
};

size_t VarintLength(uint64_t v) {
  size_t length = 1;
  for (; v >= 128; v >>= 7) ++length;
  return length;
}

}  // namespace
}  // namespace memory_internal

using memory_internal::Entry;
using memory_internal::EntryPtr;
using memory_internal::NodePtr;
using memory_internal::Tree;

namespace {

size_t FamilyIndex(Family family) {
  size_t index = static_cast<size_t>(family);
  CAIRN_CHECK(index < kFamilyCount);
  return index;
}

class MemorySnapshot final : public Snapshot {
 public:
  MemorySnapshot(const MemoryEngine* engine, const memory_internal::State& state)
      : engine(engine), trees(state.trees) {}
  const MemoryEngine* const engine;
  const std::array<Tree, kFamilyCount> trees;
};

}  // namespace

// A WriteBatch whose writes are kept in one tree per family (keyed by user key, last write
// wins, deletes marked), so reads of the batch and save points are cheap: a save point is a
// copy of the roots.
class MemoryWriteBatch final : public WriteBatch {
 public:
  explicit MemoryWriteBatch(MemoryEngine* engine) : engine_(engine) {}

  void Put(Family family, std::string_view key, std::string_view value) override {
    Add(family, Entry{std::string(key), std::string(value), false});
  }
  void Delete(Family family, std::string_view key) override {
    Add(family, Entry{std::string(key), std::string(), true});
  }
  Result<bool> Get(Family family, std::string_view key, std::string* value) override {
    const Entry* entry = memory_internal::Find(trees_[FamilyIndex(family)].root, key);
    if (entry == nullptr) return engine_->Get(ReadOptions(), family, key, value);
    if (entry->deleted) return false;
    if (value != nullptr) *value = entry->value;
    return true;
  }
  std::unique_ptr<Iterator> NewIterator(Family family, const ReadOptions& options) override {
    return std::make_unique<memory_internal::MergedIterator>(
        engine_->TreeFor(options, family).root, trees_[FamilyIndex(family)].root, options);
  }
  void SetSavePoint() override { save_points_.push_back(SavePoint{trees_, count_, byte_size_}); }
  Status RollbackToSavePoint() override {
    if (save_points_.empty()) return Status::NotFound("no save point to roll back to");
    trees_ = save_points_.back().trees;
    count_ = save_points_.back().count;
    byte_size_ = save_points_.back().byte_size;
    save_points_.pop_back();
    return Status::Ok();
  }
  void PopSavePoint() override {
    CAIRN_CHECK_MSG(!save_points_.empty(), "PopSavePoint without a save point");
    save_points_.pop_back();
  }
  size_t Count() const override { return count_; }
  size_t ByteSize() const override { return byte_size_; }
  void Clear() override {
    trees_ = {};
    save_points_.clear();
    count_ = 0;
    byte_size_ = kHeaderBytes;
  }

  const std::array<Tree, kFamilyCount>& trees() const { return trees_; }
  const MemoryEngine* engine() const { return engine_; }

 private:
  // ByteSize mimics RocksDB's WriteBatch encoding: a 12-byte header, then per record a tag,
  // the column family id and the length-prefixed key (and value).
  static constexpr size_t kHeaderBytes = 12;

  void Add(Family family, Entry entry) {
    using memory_internal::VarintLength;
    size_t index = FamilyIndex(family);
    byte_size_ += 1 + VarintLength(index + 1) + VarintLength(entry.key.size()) + entry.key.size();
    if (!entry.deleted) byte_size_ += VarintLength(entry.value.size()) + entry.value.size();
    ++count_;
    uint64_t priority = memory_internal::KeyPriority(entry.key);
    trees_[index].root = memory_internal::Insert(
        trees_[index].root, std::make_shared<const Entry>(std::move(entry)), priority);
  }

  struct SavePoint {
    std::array<Tree, kFamilyCount> trees;
    size_t count;
    size_t byte_size;
  };

  MemoryEngine* const engine_;
  std::array<Tree, kFamilyCount> trees_;
  std::vector<SavePoint> save_points_;
  size_t count_ = 0;
  size_t byte_size_ = kHeaderBytes;
};

MemoryEngine::MemoryEngine(const EngineOptions& options)
    : compaction_filter_factory_(options.compaction_filter_factory) {}

MemoryEngine::~MemoryEngine() = default;

Tree MemoryEngine::CurrentTree(Family family) const {
  std::shared_lock lock(state_mutex_);
  return current_.trees[FamilyIndex(family)];
}

Tree MemoryEngine::TreeFor(const ReadOptions& options, Family family) const {
  if (options.snapshot == nullptr) return CurrentTree(family);
  const auto* snapshot = dynamic_cast<const MemorySnapshot*>(options.snapshot);
  CAIRN_CHECK_MSG(snapshot != nullptr && snapshot->engine == this,
                  "snapshot does not belong to this engine");
  return snapshot->trees[FamilyIndex(family)];
}

Result<bool> MemoryEngine::Get(const ReadOptions& options, Family family, std::string_view key,
                               std::string* value) {
  if (options.snapshot == nullptr) {
    std::shared_lock lock(state_mutex_);
    const Entry* entry = memory_internal::Find(current_.trees[FamilyIndex(family)].root, key);
    if (entry != nullptr && value != nullptr) *value = entry->value;
    return entry != nullptr;
  }
  Tree tree = TreeFor(options, family);
  const Entry* entry = memory_internal::Find(tree.root, key);
  if (entry != nullptr && value != nullptr) *value = entry->value;
  return entry != nullptr;
}

std::unique_ptr<Iterator> MemoryEngine::NewIterator(const ReadOptions& options, Family family) {
  return std::make_unique<memory_internal::MergedIterator>(TreeFor(options, family).root, nullptr,
                                                           options);
}

std::shared_ptr<const Snapshot> MemoryEngine::GetSnapshot() {
  std::shared_lock lock(state_mutex_);
  return std::make_shared<const MemorySnapshot>(this, current_);
}

std::unique_ptr<WriteBatch> MemoryEngine::NewWriteBatch() {
  return std::make_unique<MemoryWriteBatch>(this);
}

Status MemoryEngine::Write(WriteBatch* batch) {
  auto* memory_batch = dynamic_cast<MemoryWriteBatch*>(batch);
  CAIRN_CHECK_MSG(memory_batch != nullptr && memory_batch->engine() == this,
                  "batch does not belong to this engine");
  if (memory_batch->Count() == 0) return Status::Ok();
  std::lock_guard write_lock(write_mutex_);
  memory_internal::State next;
  {
    std::shared_lock lock(state_mutex_);
    next = current_;
  }
  for (size_t index = 0; index < kFamilyCount; ++index) {
    NodePtr& root = next.trees[index].root;
    memory_internal::ForEach(memory_batch->trees()[index].root, [&](const EntryPtr& entry) {
      if (const Entry* old = memory_internal::Find(root, entry->key); old != nullptr) {
        next.size_bytes -= old->key.size() + old->value.size();
      }
      if (entry->deleted) {
        root = memory_internal::Erase(root, entry->key);
      } else {
        next.size_bytes += entry->key.size() + entry->value.size();
        root = memory_internal::Insert(root, entry, memory_internal::KeyPriority(entry->key));
      }
    });
  }
  {
    std::unique_lock lock(state_mutex_);
    std::swap(current_, next);
  }
  return Status::Ok();  // `next` (the old state) is released outside the lock
}

Status MemoryEngine::Flush() {
  std::unique_lock lock(state_mutex_);
  durable_ = current_;
  return Status::Ok();
}

Status MemoryEngine::CompactRange(Family family, std::string_view begin, std::string_view end) {
  CAIRN_RETURN_IF_ERROR(Flush());
  if (compaction_filter_factory_ == nullptr) return Status::Ok();
  std::unique_ptr<CompactionFilter> filter = compaction_filter_factory_->Create(family, true);
  if (filter == nullptr) return Status::Ok();

  // Run the filter over a fixed view without blocking writers, then drop each chosen entry
  // from the current and durable states unless a writer replaced it meanwhile.
  std::vector<EntryPtr> drops;
  memory_internal::Cursor cursor(CurrentTree(family).root);
  if (begin.empty()) {
    cursor.SeekToFirst();
  } else {
    cursor.SeekAfter(begin, false);
  }
  for (; cursor.Valid() && (end.empty() || cursor.entry().key < end); cursor.Next()) {
    const Entry& entry = cursor.entry();
    if (filter->ShouldDrop(entry.key, entry.value)) {
      drops.push_back(cursor.entry_ptr());
    }
  }
  if (drops.empty()) return Status::Ok();
  std::lock_guard write_lock(write_mutex_);
  memory_internal::State current, durable;
  {
    std::shared_lock lock(state_mutex_);
    current = current_;
    durable = durable_;
  }
  const size_t index = FamilyIndex(family);
  auto drop_from = [&](memory_internal::State* state) {
    NodePtr& root = state->trees[index].root;
    for (const EntryPtr& drop : drops) {
      const Entry* now = memory_internal::Find(root, drop->key);
      if (now != drop.get()) continue;  // rewritten or deleted meanwhile
      state->size_bytes -= now->key.size() + now->value.size();
      root = memory_internal::Erase(root, drop->key);
    }
  };
  const bool durable_is_current = durable.trees == current.trees;
  drop_from(&current);
  if (durable_is_current) {
    durable = current;
  } else {
    drop_from(&durable);
  }
  std::unique_lock lock(state_mutex_);
  std::swap(current_, current);
  std::swap(durable_, durable);
  return Status::Ok();
}

uint64_t MemoryEngine::ApproximateSizeBytes() {
  std::shared_lock lock(state_mutex_);
  return current_.size_bytes;
}

void MemoryEngine::SimulateCrash() {
  std::lock_guard write_lock(write_mutex_);
  memory_internal::State lost;
  std::unique_lock lock(state_mutex_);
  lost = std::move(current_);
  current_ = durable_;
  lock.unlock();
}

}  // namespace cairn::storage
