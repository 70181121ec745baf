// Internal to the checker: the search for a linearization of the operations on one key
// (see checker.h for the model). Not part of the public API.
//
// Algorithm: Wing & Gong's depth-first search over Porcupine's doubly linked entry list
// (call and return events sorted by time; an operation can be linearized next if its call
// entry comes before the first remaining return entry; lifting removes both of its entries,
// unlifting puts them back), with memoization of visited configurations as in Lowe.
//
// Indeterminate operations have no return entry: they are optional (linearizing one later or
// never is always allowed, since nothing follows them in real time). The search uses that:
//   - they sit in their own list and are tried only after every pending definite operation,
//     so the search linearizes one only when the definite operations need it;
//   - a configuration is (definite set D, indeterminate set I, state S); the memo key is
//     (D, S without floor) and a new configuration is pruned when a visited one with the same
//     key had I' subset of I and floor' <= floor (it had every option this one has);
//   - an indeterminate blind write (Put, Delete) is never followed directly by another blind
//     write: that second write would hide the first, and the same path without the first is
//     explored too (and dominates it);
//   - an indeterminate operation whose linearization would change nothing (a Delete of an
//     absent key, a Cas whose compare fails) is not linearized.
//
// Thread-safety: SearchKey is a pure function; concurrent calls are fine.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "tests/checker/checker.h"
#include "tests/checker/history.h"

namespace cairn::checker::internal {

// mod_revision of a key written by an indeterminate operation whose revision is not pinned.
inline constexpr int64_t kUnpinnedRevision = -1;

// One operation on the key, with its values interned (0 = no value).
struct KeyOp {
  size_t history_index = 0;
  OpKind kind = OpKind::kGet;
  bool definite = true;
  uint32_t value_id = 0;              // Put, Cas: the value written.
  int64_t expected_mod_revision = 0;  // Cas.
  int64_t call_time_ns = 0;
  int64_t return_time_ns = kNeverNs;  // kNeverNs for indeterminate operations.
  // Indeterminate writes: the largest header revision of any definite operation (any key)
  // that returned before this one was called. Its revision, if it took effect, is larger.
  int64_t revision_floor_at_call = 0;
  // Response, definite operations only.
  int64_t header_revision = 0;
  bool found = false;
  uint32_t read_value_id = 0;
  int64_t read_mod_revision = 0;
  int64_t deleted_count = 0;
  bool succeeded = false;
};

struct KeyState {
  bool present = false;
  uint32_t value_id = 0;
  int64_t mod_revision = 0;  // 0 when absent; kUnpinnedRevision: see above.
  int64_t floor = 0;         // Lower bound of the store revision at this point.
  // Indeterminate writes linearized since the last operation that bounded their revisions
  // from above: they took distinct revisions >= pending_min that no definite write owns, and
  // the next bound (a header revision, or a pinned one) must leave room for them.
  int64_t pending_min = 0;
  int64_t pending_count = 0;
};

struct KeySearchLimits {
  std::chrono::steady_clock::time_point deadline;
  int64_t memo_bytes_max = 0;
};

struct KeySearchResult {
  Verdict verdict = Verdict::kLinearizable;  // kLinearizable, kNotLinearizable or kTimedOut.
  // kNotLinearizable: the deepest failure point of the search. The search had linearized
  // `linearized_count` definite operations, ending with `linearized_tail` (indices into the
  // ops, oldest first), and reached `state`; then none of `pending` (definite operations
  // whose call came before `blocking`'s return) nor any indeterminate operation could be
  // linearized, so `blocking` could not be.
  size_t linearized_count = 0;
  std::vector<uint32_t> linearized_tail;
  KeyState state;
  uint32_t blocking = 0;
  std::vector<uint32_t> pending;
  uint64_t steps = 0;
  uint64_t memo_entries = 0;
};

// Revisions an indeterminate write on the key cannot take, both sorted and disjoint:
// those of definite writes (any key), and those that reads or successful Cas compares on
// other keys show as a mod_revision (so an indeterminate write of that other key owns them).
struct OwnedRevisions {
  const std::vector<int64_t>* definite_writes = nullptr;
  std::vector<int64_t> other_keys;
};

KeySearchResult SearchKey(const std::vector<KeyOp>& ops, const OwnedRevisions& owned,
                          const KeySearchLimits& limits);

// "absent @floor 7" or "present \"v\" mod 5 @floor 7", values from `values` (by id).
std::string KeyStateToString(const KeyState& state, const std::vector<std::string>& values);

}  // namespace cairn::checker::internal
