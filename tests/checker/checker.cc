#include "tests/checker/checker.h"

#include <algorithm>
#include <chrono>
#include <map>
#include <set>
#include <unordered_map>
#include <utility>

#include "src/base/check.h"
#include "tests/checker/key_search.h"

namespace cairn::checker {

std::string_view VerdictName(Verdict verdict) {
  switch (verdict) {
    case Verdict::kLinearizable:
      return "linearizable";
    case Verdict::kNotLinearizable:
      return "NOT linearizable";
    case Verdict::kTimedOut:
      return "unknown (search budget exceeded)";
    case Verdict::kInvalidHistory:
      return "invalid history";
  }
  return "?";
}

std::string CheckResult::ToString() const {
  std::string s = std::string(VerdictName(verdict));
  if (!explanation.empty()) s += "\n" + explanation;
  s += "\nstats: " + std::to_string(stats.operations) + " operations (" +
       std::to_string(stats.indeterminate_operations) + " indeterminate) on " +
       std::to_string(stats.keys) + " keys, " + std::to_string(stats.search_steps) +
       " search steps, " + std::to_string(stats.memo_entries) + " memo entries, " +
       std::to_string(stats.elapsed_ms) + " ms";
  return s;
}

namespace {

using internal::KeyOp;
using internal::KeySearchResult;

// Builds explanations that list operations by history index, within the options' limit.
class Explainer {
 public:
  Explainer(const History& history, const CheckOptions& options, CheckResult* result)
      : history_(history), options_(options), result_(result) {}

  void Fail(std::string key, std::string text) {
    result_->verdict = Verdict::kNotLinearizable;
    result_->key = std::move(key);
    result_->explanation = std::move(text);
  }
  void Append(const std::string& text) { result_->explanation += text; }
  // "  #12 c3 Put("k", "v") -> rev 7 [100, 200]\n", counted against the limit.
  void List(size_t index) {
    if (std::find(result_->operations.begin(), result_->operations.end(), index) ==
        result_->operations.end()) {
      result_->operations.push_back(index);
    }
    if (listed_ >= options_.explanation_ops_max) {
      if (listed_++ == options_.explanation_ops_max) result_->explanation += "  ...\n";
      return;
    }
    ++listed_;
    result_->explanation += "  " + Name(index) + "\n";
  }
  std::string Name(size_t index) const {
    return "#" + std::to_string(index) + " " + history_[index].ToString();
  }

 private:
  const History& history_;
  const CheckOptions& options_;
  CheckResult* result_;
  int listed_ = 0;
};

// ---- Cross-key checks ----

// A definite operation that returned a read of its key: a Get, or a Cas that failed.
bool IsDefiniteRead(const Operation& op) {
  return op.definite() &&
         (op.kind == OpKind::kGet || (op.kind == OpKind::kCas && !op.result.succeeded));
}

// Every successful write owns a distinct revision.
bool CheckRevisionsUnique(const History& history, Explainer* explain) {
  std::vector<std::pair<int64_t, size_t>> writes;
  for (size_t i = 0; i < history.size(); ++i) {
    if (history[i].IsSuccessfulWrite()) writes.emplace_back(history[i].result.header_revision, i);
  }
  std::sort(writes.begin(), writes.end());
  for (size_t i = 1; i < writes.size(); ++i) {
    if (writes[i].first != writes[i - 1].first) continue;
    explain->Fail("", "Two successful writes claim revision " + std::to_string(writes[i].first) +
                          " (each write must create its own revision):\n");
    explain->List(writes[i - 1].second);
    explain->List(writes[i].second);
    return false;
  }
  return true;
}

// If A returned before B was called, header(A) <= header(B), strictly if B writes.
bool CheckRealTimeRevisions(const History& history, Explainer* explain) {
  std::vector<size_t> by_call;
  for (size_t i = 0; i < history.size(); ++i) {
    if (history[i].definite()) by_call.push_back(i);
  }
  std::vector<size_t> by_return = by_call;
  std::stable_sort(by_call.begin(), by_call.end(), [&](size_t a, size_t b) {
    return history[a].call_time_ns < history[b].call_time_ns;
  });
  std::stable_sort(by_return.begin(), by_return.end(), [&](size_t a, size_t b) {
    return history[a].return_time_ns < history[b].return_time_ns;
  });
  size_t returned = 0;
  int64_t max_revision = 0;
  size_t max_op = 0;
  for (size_t b : by_call) {
    const Operation& op = history[b];
    for (; returned < by_return.size() &&
           history[by_return[returned]].return_time_ns < op.call_time_ns;
         ++returned) {
      const Operation& a = history[by_return[returned]];
      if (a.result.header_revision > max_revision) {
        max_revision = a.result.header_revision;
        max_op = by_return[returned];
      }
    }
    bool write = op.IsSuccessfulWrite();
    int64_t revision = op.result.header_revision;
    if (revision > max_revision || (!write && revision == max_revision) || max_revision == 0) {
      continue;
    }
    std::string rule =
        write ? "a write called after it must get a larger revision"
              : "a read called after it must see revision >= " + std::to_string(max_revision) +
                    " (stale read)";
    explain->Fail("",
                  "Revision order breaks real-time order: the first operation returned "
                  "before the second was called, so " +
                      rule + ":\n");
    explain->List(max_op);
    explain->List(b);
    return false;
  }
  return true;
}

// A found read's mod_revision, when a definite write owns it, names a write of that key and
// value (revisions are unique, so no other write can explain it).
bool CheckReadRevisionOwners(const History& history, Explainer* explain) {
  std::unordered_map<int64_t, size_t> owner;
  for (size_t i = 0; i < history.size(); ++i) {
    if (history[i].IsSuccessfulWrite()) owner[history[i].result.header_revision] = i;
  }
  for (size_t i = 0; i < history.size(); ++i) {
    const Operation& read = history[i];
    if (!IsDefiniteRead(read) || !read.result.found) continue;
    auto it = owner.find(read.result.read_mod_revision);
    if (it == owner.end()) continue;
    const Operation& write = history[it->second];
    std::string why;
    if (write.key != read.key) {
      why = "a different key";
    } else if (write.kind == OpKind::kDelete) {
      why = "a delete";
    } else if (write.value != read.result.read_value) {
      why = "a different value";
    } else {
      continue;
    }
    explain->Fail(read.key, "A read returned mod_revision " +
                                std::to_string(read.result.read_mod_revision) +
                                ", but that revision belongs to a write of " + why + ":\n");
    explain->List(it->second);
    explain->List(i);
    return false;
  }
  return true;
}

// A read returns only values that some write on its key may have written.
bool CheckValuesWritten(const History& history, Explainer* explain) {
  std::set<std::pair<std::string_view, std::string_view>> written;
  for (const Operation& op : history.ops()) {
    bool writes = op.kind == OpKind::kPut || op.kind == OpKind::kCas;
    if (writes && op.result.outcome != Outcome::kDefinitelyFailed) {
      written.emplace(op.key, op.value);
    }
  }
  for (size_t i = 0; i < history.size(); ++i) {
    const Operation& op = history[i];
    if (!IsDefiniteRead(op) || !op.result.found) continue;
    if (written.count({op.key, op.result.read_value}) != 0) continue;
    explain->Fail(op.key, "A read returned a value that no write of its key wrote:\n");
    explain->List(i);
    return false;
  }
  return true;
}

// Revisions that reads (found mod_revision) and successful Cas compares show for a key while
// no definite write owns them: an indeterminate write of that key must. Two keys cannot share
// one. Fills `owner` (revision -> key).
bool CheckUnrecordedRevisionOwners(const History& history, const std::vector<int64_t>& known,
                                   std::map<int64_t, std::string>* owner, Explainer* explain) {
  std::map<int64_t, size_t> witness;
  for (size_t i = 0; i < history.size(); ++i) {
    const Operation& op = history[i];
    int64_t revision = 0;
    if (IsDefiniteRead(op) && op.result.found) revision = op.result.read_mod_revision;
    if (op.definite() && op.kind == OpKind::kCas && op.result.succeeded) {
      revision = op.expected_mod_revision;
    }
    if (revision == 0 || std::binary_search(known.begin(), known.end(), revision)) continue;
    auto [it, inserted] = owner->emplace(revision, op.key);
    if (inserted) {
      witness[revision] = i;
      continue;
    }
    if (it->second == op.key) continue;
    explain->Fail("", "Two keys show mod_revision " + std::to_string(revision) +
                          ", which no recorded write owns; one write cannot have written both:\n");
    explain->List(witness[revision]);
    explain->List(i);
    return false;
  }
  return true;
}

// ---- Per-key search ----

struct KeyPartition {
  std::vector<KeyOp> ops;
  std::vector<std::string> values;  // By value id; id 0 is "no value".
};

// For each time, the largest header revision of a definite operation returned before it.
class RevisionFloorAtTime {
 public:
  explicit RevisionFloorAtTime(const History& history) {
    for (const Operation& op : history.ops()) {
      if (op.definite()) returns_.emplace_back(op.return_time_ns, op.result.header_revision);
    }
    std::sort(returns_.begin(), returns_.end());
    for (size_t i = 1; i < returns_.size(); ++i) {
      returns_[i].second = std::max(returns_[i].second, returns_[i - 1].second);
    }
  }
  int64_t At(int64_t time_ns) const {
    auto it = std::lower_bound(returns_.begin(), returns_.end(),
                               std::pair<int64_t, int64_t>(time_ns, INT64_MIN));
    return it == returns_.begin() ? 0 : std::prev(it)->second;
  }

 private:
  std::vector<std::pair<int64_t, int64_t>> returns_;  // (return time, running max header)
};

std::map<std::string, KeyPartition> PartitionByKey(const History& history, CheckStats* stats) {
  RevisionFloorAtTime floor_at(history);
  std::map<std::string, KeyPartition> keys;
  std::map<std::string, std::unordered_map<std::string, uint32_t>> value_ids;
  for (size_t i = 0; i < history.size(); ++i) {
    const Operation& op = history[i];
    if (op.result.outcome == Outcome::kDefinitelyFailed) continue;
    // A read without a response cannot have changed anything.
    if (!op.definite() && op.kind == OpKind::kGet) continue;
    KeyPartition& partition = keys[op.key];
    auto& ids = value_ids[op.key];
    if (partition.values.empty()) partition.values.emplace_back();
    auto intern = [&](const std::string& value) {
      auto [it, inserted] = ids.emplace(value, static_cast<uint32_t>(partition.values.size()));
      if (inserted) partition.values.push_back(value);
      return it->second;
    };
    const OpResult& r = op.result;
    KeyOp key_op{.history_index = i,
                 .kind = op.kind,
                 .definite = op.definite(),
                 .value_id = intern(op.value),
                 .expected_mod_revision = op.expected_mod_revision,
                 .call_time_ns = op.call_time_ns,
                 .return_time_ns = op.definite() ? op.return_time_ns : kNeverNs,
                 .revision_floor_at_call = op.definite() ? 0 : floor_at.At(op.call_time_ns),
                 .header_revision = r.header_revision,
                 .found = r.found,
                 .read_value_id = r.found ? intern(r.read_value) : 0,
                 .read_mod_revision = r.read_mod_revision,
                 .deleted_count = r.deleted_count,
                 .succeeded = r.succeeded};
    partition.ops.push_back(key_op);
    ++stats->operations;
    if (!op.definite()) ++stats->indeterminate_operations;
  }
  stats->keys = keys.size();
  return keys;
}

void ExplainKey(const std::string& key, const KeyPartition& partition,
                const KeySearchResult& search, Explainer* explain) {
  size_t definite = 0;
  size_t indeterminate = 0;
  for (const KeyOp& op : partition.ops) (op.definite ? definite : indeterminate)++;
  std::string text = "The operations on key \"" + key +
                     "\" cannot be linearized. The deepest partial " + "linearization placed " +
                     std::to_string(search.linearized_count) + " of " + std::to_string(definite) +
                     " operations with responses";
  explain->Fail(key, text + (search.linearized_tail.empty() ? ".\n" : ", ending with:\n"));
  for (uint32_t op : search.linearized_tail) explain->List(partition.ops[op].history_index);
  const KeyOp& blocking = partition.ops[search.blocking];
  std::string after = "That left the key " +
                      internal::KeyStateToString(search.state, partition.values) + ". Then " +
                      explain->Name(blocking.history_index) +
                      " had to take effect before it returned, but no operation called by then "
                      "fits that state (" +
                      std::to_string(indeterminate) +
                      " indeterminate operations on the key were tried too). Pending:\n";
  explain->Append(after);
  for (uint32_t op : search.pending) explain->List(partition.ops[op].history_index);
}

}  // namespace

CheckResult Check(const History& history, const CheckOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  CheckResult result;
  auto finish = [&]() {
    result.stats.elapsed_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                  std::chrono::steady_clock::now() - start)
                                  .count();
    return result;
  };
  if (Status valid = history.Validate(); !valid.ok()) {
    result.verdict = Verdict::kInvalidHistory;
    result.explanation = valid.ToString();
    return finish();
  }
  Explainer explain(history, options, &result);
  if (!CheckValuesWritten(history, &explain) || !CheckRevisionsUnique(history, &explain) ||
      !CheckRealTimeRevisions(history, &explain) || !CheckReadRevisionOwners(history, &explain)) {
    return finish();
  }
  std::vector<int64_t> known_write_revisions;
  for (const Operation& op : history.ops()) {
    if (op.IsSuccessfulWrite()) known_write_revisions.push_back(op.result.header_revision);
  }
  std::sort(known_write_revisions.begin(), known_write_revisions.end());
  std::map<int64_t, std::string> unrecorded_owner;
  if (!CheckUnrecordedRevisionOwners(history, known_write_revisions, &unrecorded_owner, &explain)) {
    return finish();
  }
  std::map<std::string, KeyPartition> keys = PartitionByKey(history, &result.stats);
  internal::KeySearchLimits limits{
      .deadline = start + std::chrono::milliseconds(options.time_budget_ms),
      .memo_bytes_max = options.memo_bytes_max};
  std::string timed_out_keys;
  for (const auto& [key, partition] : keys) {
    internal::OwnedRevisions owned{.definite_writes = &known_write_revisions};
    for (const auto& [revision, owner] : unrecorded_owner) {
      if (owner != key) owned.other_keys.push_back(revision);
    }
    KeySearchResult search = internal::SearchKey(partition.ops, owned, limits);
    result.stats.search_steps += search.steps;
    result.stats.memo_entries += search.memo_entries;
    if (search.verdict == Verdict::kNotLinearizable) {
      ExplainKey(key, partition, search, &explain);
      return finish();
    }
    if (search.verdict == Verdict::kTimedOut) timed_out_keys += " \"" + key + "\"";
  }
  if (!timed_out_keys.empty()) {
    result.verdict = Verdict::kTimedOut;
    result.explanation = "The search budget (" + std::to_string(options.time_budget_ms) +
                         " ms) ran out on keys" + timed_out_keys +
                         "; no violation was found on the keys that finished.";
  }
  return finish();
}

}  // namespace cairn::checker
