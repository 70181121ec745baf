// IntervalIndex: key ranges [begin, end) (end may be unbounded) with a value each, answering
// "which ranges contain this key" without walking all of them.
//
// A treap (random priorities, so expected depth O(log n)) ordered by (begin, insertion
// sequence), each node augmented with the largest end in its subtree. A stabbing query skips
// every subtree whose largest end is <= the key and every right subtree whose root begins
// after the key, so it visits O((1 + matches) · log n) nodes (the CLRS interval-tree bound;
// etcd's adt.IntervalTree is the same idea on a red-black tree).
//
// Ownership: the index owns its nodes; Insert returns a handle that stays valid until it is
// passed to Remove. Thread-safety: none (the hub calls it under its lock).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <utility>

#include "src/base/check.h"

namespace cairn::feed {

template <typename Value>
class IntervalIndex {
 public:
  class Node;
  using Handle = Node*;

  IntervalIndex() = default;
  IntervalIndex(const IntervalIndex&) = delete;
  IntervalIndex& operator=(const IntervalIndex&) = delete;
  ~IntervalIndex() { Destroy(root_); }

  // Adds [begin, end), or [begin, ∞) when `unbounded`. REQUIRES: unbounded || begin < end.
  Handle Insert(std::string begin, std::string end, bool unbounded, Value value) {
    CAIRN_CHECK(unbounded || begin < end);
    auto* node = new Node(std::move(begin), std::move(end), unbounded, std::move(value),
                          next_sequence_++, static_cast<uint32_t>(random_()));
    Update(node);
    root_ = InsertAt(root_, node);
    ++size_;
    return node;
  }

  // REQUIRES: `handle` came from Insert on this index and was not removed yet.
  void Remove(Handle handle) {
    root_ = RemoveAt(root_, handle);
    --size_;
    delete handle;
  }

  // Calls visit(value) for every range containing `key`; returns the number of nodes looked at
  // (the query's cost, for tests and counters).
  template <typename Visit>
  size_t ForEachContaining(std::string_view key, Visit&& visit) const {
    size_t examined = 0;
    Stab(root_, key, visit, &examined);
    return examined;
  }

  size_t size() const { return size_; }

  class Node {
   public:
    const Value& value() const { return value_; }

   private:
    friend class IntervalIndex;
    Node(std::string begin, std::string end, bool unbounded, Value value, uint64_t sequence,
         uint32_t priority)
        : begin_(std::move(begin)),
          end_(std::move(end)),
          unbounded_(unbounded),
          value_(std::move(value)),
          sequence_(sequence),
          priority_(priority) {}

    std::string begin_;
    std::string end_;
    bool unbounded_;
    Value value_;
    uint64_t sequence_;  // ties between equal begins
    uint32_t priority_;  // heap order: a parent's priority >= its children's
    // The largest end in this subtree; null = unbounded.
    const std::string* max_end_ = nullptr;
    Node* left_ = nullptr;
    Node* right_ = nullptr;
  };

 private:
  static bool Less(const Node* a, const Node* b) {
    const int order = a->begin_.compare(b->begin_);
    return order < 0 || (order == 0 && a->sequence_ < b->sequence_);
  }

  // Whether end `a` (null = unbounded) is larger than end `b`.
  static bool EndAbove(const std::string* a, const std::string* b) {
    if (b == nullptr) return false;
    return a == nullptr || *a > *b;
  }

  static void Update(Node* node) {
    const std::string* max_end = node->unbounded_ ? nullptr : &node->end_;
    for (const Node* child : {node->left_, node->right_}) {
      if (child != nullptr && EndAbove(child->max_end_, max_end)) max_end = child->max_end_;
    }
    node->max_end_ = max_end;
  }

  // Splits `tree` into the nodes ordered before `pivot` and the others.
  static std::pair<Node*, Node*> Split(Node* tree, const Node* pivot) {
    if (tree == nullptr) return {nullptr, nullptr};
    if (Less(tree, pivot)) {
      auto [left, right] = Split(tree->right_, pivot);
      tree->right_ = left;
      Update(tree);
      return {tree, right};
    }
    auto [left, right] = Split(tree->left_, pivot);
    tree->left_ = right;
    Update(tree);
    return {left, tree};
  }

  // REQUIRES: every node of `left` is ordered before every node of `right`.
  static Node* Merge(Node* left, Node* right) {
    if (left == nullptr) return right;
    if (right == nullptr) return left;
    if (left->priority_ >= right->priority_) {
      left->right_ = Merge(left->right_, right);
      Update(left);
      return left;
    }
    right->left_ = Merge(left, right->left_);
    Update(right);
    return right;
  }

  static Node* InsertAt(Node* tree, Node* node) {
    if (tree == nullptr) return node;
    if (node->priority_ > tree->priority_) {
      auto [left, right] = Split(tree, node);
      node->left_ = left;
      node->right_ = right;
      Update(node);
      return node;
    }
    if (Less(node, tree)) {
      tree->left_ = InsertAt(tree->left_, node);
    } else {
      tree->right_ = InsertAt(tree->right_, node);
    }
    Update(tree);
    return tree;
  }

  static Node* RemoveAt(Node* tree, Node* node) {
    CAIRN_CHECK(tree != nullptr);  // the handle is in this index
    if (tree == node) return Merge(node->left_, node->right_);
    if (Less(node, tree)) {
      tree->left_ = RemoveAt(tree->left_, node);
    } else {
      tree->right_ = RemoveAt(tree->right_, node);
    }
    Update(tree);
    return tree;
  }

  template <typename Visit>
  static void Stab(const Node* tree, std::string_view key, Visit& visit, size_t* examined) {
    while (tree != nullptr) {
      ++*examined;
      // No range in this subtree ends after the key.
      if (tree->max_end_ != nullptr && std::string_view(*tree->max_end_) <= key) return;
      Stab(tree->left_, key, visit, examined);
      // This range and those to its right begin after the key.
      if (key < std::string_view(tree->begin_)) return;
      if (tree->unbounded_ || key < std::string_view(tree->end_)) visit(tree->value_);
      tree = tree->right_;
    }
  }

  static void Destroy(Node* tree) {
    while (tree != nullptr) {
      Destroy(tree->left_);
      Node* right = tree->right_;
      delete tree;
      tree = right;
    }
  }

  Node* root_ = nullptr;
  size_t size_ = 0;
  uint64_t next_sequence_ = 0;
  std::minstd_rand random_{0x5eed};  // fixed seed: the same inserts give the same shape
};

}  // namespace cairn::feed
