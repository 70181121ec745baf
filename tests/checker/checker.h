// Check(): decides whether a History (history.h) of an etcd-style key-value store is
// linearizable, in the style of Knossos and Porcupine (Wing & Gong's search with Lowe's
// memoization, "Testing for linearizability", 2017; anishathalye/porcupine).
//
// How. The history is checked in two parts.
//  1. Per key (P-compositionality): the operations on each key are searched for a
//     linearization against a model of one key whose state is (present, value, mod_revision,
//     revision floor). The floor is a lower bound on the global store revision at that point
//     of the linearization, so along one key's linearization:
//       - a write's revision (Put, Delete of a present key, successful Cas) is > the floor and
//         becomes the key's mod_revision (for Put/Cas) and the new floor;
//       - a read (Get, Delete of an absent key, failed Cas) has header revision >= the floor
//         (which becomes the new floor) and returns exactly the current value and mod_revision;
//       - a Cas succeeds exactly when mod_revision == expected (0: absent).
//     Indeterminate writes may be linearized anywhere after their call, or never. Their
//     revision is unknown until a later read or Cas on the key pins it; it must exceed every
//     header revision returned before their call (real time), lie between the floors around
//     it, and not be owned by a definite write or shown as a mod_revision on another key;
//     unpinned ones must fit, with room for each, among the free revisions before the next
//     revision that bounds them. Indeterminate reads are dropped: they changed nothing.
//  2. Across keys, cheap direct checks over all definite operations:
//       - every successful write owns a distinct revision;
//       - real time orders revisions: if A returned before B was called, then
//         header(A) <= header(B), strictly if B is a successful write (this covers "no stale
//         reads" and "read revisions never go backwards");
//       - a read's mod_revision, when a definite write owns it, names a write of that key
//         and value; a mod_revision that no definite write owns is shown for one key only.
//
// Why that is sound and complete for these single-key operations. If every key has a
// linearization L_k that satisfies the model, and the cross-key checks pass, then ordering
// all definite operations by (header revision, writes before reads, return time) and merging
// in the indeterminate writes at their pinned revisions gives one global linearization: each
// L_k is non-decreasing in header revision (strictly at writes), so the merge keeps every
// key's order up to reordering reads at one revision, which all see the same state; real-time
// order is kept because the cross-key check makes header(A) <= header(B) (strict if B
// writes) whenever A precedes B, and among equal revisions sorting by return time respects
// real time. Conversely a linearizable history passes every check, since a linearization of
// the whole store projects onto each key and the global revision counter is monotonic in it.
// "Sound" here means: kNotLinearizable is only reported for histories that no etcd-like
// store could produce; kLinearizable only for histories that one could.
//
// What it does not catch (the limits of the model, not of the search):
//   - multi-key transactions, ranges, leases and watches are not modelled;
//   - revision gaps: a revision no recorded write owns is assumed to belong to an unrecorded
//     or indeterminate write, so a store that skips revisions passes;
//   - two unpinned indeterminate writes on different keys are not kept from needing the same
//     free revision (each key counts free revisions on its own);
//   - the key's version and create_revision are not modelled;
//   - every key starts absent: record histories on fresh keys.
//
// The checker was cross-checked against an unpruned whole-store search on 200,000 small
// random histories (checker_test.cc, CAIRN_CHECKER_SEEDS) with full agreement.
//
// Cost: near linear for definite operations (the header revisions nearly fix each key's
// order). Indeterminate operations are where the search can blow up: a few percent per key is
// fine; many indeterminate operations on a hot key, above all in a history that is NOT
// linearizable (the search must then exhaust the alternatives), can exceed the budget and
// yield kTimedOut — an unknown, never a pass.
//
// Thread-safety: Check() is a pure function of its arguments; calls may run concurrently.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tests/checker/history.h"

namespace cairn::checker {

struct CheckOptions {
  // Wall-clock budget for the whole check; when spent, the verdict is kTimedOut.
  // Default: 60 s (large cluster-test histories check in seconds; a search that needs a
  // minute is exploring an exponential corner, and its answer would not come anyway).
  int64_t time_budget_ms = 60'000;
  // Memory budget for the memo table of each key's search. Past it the search stops
  // memoizing (it stays correct but may slow down, and then meets the time budget).
  // Default: 1 GiB (histories of 50,000 operations need tens of MiB).
  int64_t memo_bytes_max = int64_t{1} << 30;
  // Most operations listed in a non-linearizable explanation.
  // Default: 40 (enough for the concurrent window of 50 clients without flooding a log).
  int explanation_ops_max = 40;
};

enum class Verdict : uint8_t {
  kLinearizable,
  kNotLinearizable,
  // The search budget ran out: the answer is unknown. Never treat as success.
  kTimedOut,
  // The history is malformed (History::Validate failed): a bug in the recording.
  kInvalidHistory,
};

std::string_view VerdictName(Verdict verdict);

struct CheckStats {
  size_t operations = 0;  // Definite and indeterminate operations checked.
  size_t indeterminate_operations = 0;
  size_t keys = 0;
  uint64_t search_steps = 0;  // Model steps tried, all keys.
  uint64_t memo_entries = 0;  // Memo entries created, all keys.
  int64_t elapsed_ms = 0;
};

struct CheckResult {
  Verdict verdict = Verdict::kLinearizable;
  // kNotLinearizable: which rule broke, on which key, with the operations involved (index
  // into the history, the operation, its times) and, for the per-key search, the deepest
  // partial linearization reached and the model state it left. kTimedOut/kInvalidHistory:
  // why. Empty when linearizable.
  std::string explanation;
  // kNotLinearizable: the key whose operations cannot be linearized ("" for cross-key rules).
  std::string key;
  // kNotLinearizable: indices into History::ops() of the operations in the explanation.
  std::vector<size_t> operations;
  CheckStats stats;

  bool ok() const { return verdict == Verdict::kLinearizable; }
  // The verdict, the explanation and the statistics, for a test log.
  std::string ToString() const;
};

CheckResult Check(const History& history, const CheckOptions& options = {});

}  // namespace cairn::checker
