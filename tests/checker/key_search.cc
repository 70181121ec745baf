#include "tests/checker/key_search.h"

#include <algorithm>
#include <map>
#include <numeric>
#include <tuple>
#include <unordered_map>

#include "src/base/check.h"

namespace cairn::checker::internal {
namespace {

// How many operations of the deepest partial linearization an explanation shows.
constexpr size_t kLinearizedTailMax = 12;
// The deadline is read every this many loop iterations (a clock read costs ~20 ns, an
// iteration ~10-100 ns): the check overshoots its budget by well under a millisecond.
constexpr uint64_t kIterationsPerDeadlineCheck = 4096;

uint64_t Mix(uint64_t h, uint64_t v) {
  // splitmix64 finalizer over the running hash and the next word.
  uint64_t z = h ^ (v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2));
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// ---- The model of one key ----

class KeyModel {
 public:
  explicit KeyModel(const OwnedRevisions& owned) : owned_(owned) {}

  // Whether some write the key's indeterminate writes cannot be owns `revision`.
  bool IsKnownRevision(int64_t revision) const {
    return std::binary_search(owned_.definite_writes->begin(), owned_.definite_writes->end(),
                              revision) ||
           std::binary_search(owned_.other_keys.begin(), owned_.other_keys.end(), revision);
  }

  // Applies `op` to `s`. False when the response is impossible in `s`, or when `op` is
  // indeterminate and would change nothing (it is optional, so it need not be linearized).
  bool Step(const KeyOp& op, const KeyState& s, KeyState* next) const {
    if (!op.definite) return StepIndeterminate(op, s, next);
    switch (op.kind) {
      case OpKind::kPut:
        return Write(op, s, next);
      case OpKind::kGet:
        return Read(op, s, next);
      case OpKind::kDelete:
        if (op.deleted_count == 0) return !s.present && Read(op, s, next);
        return s.present && Write(op, s, next);
      case OpKind::kCas:
        return Cas(op, s, next);
    }
    return false;
  }

 private:
  // Revisions in [low, high] that no definite write owns.
  int64_t FreeRevisions(int64_t low, int64_t high) const {
    if (high < low) return 0;
    auto count = [low, high](const std::vector<int64_t>& sorted) {
      return std::upper_bound(sorted.begin(), sorted.end(), high) -
             std::lower_bound(sorted.begin(), sorted.end(), low);
    };
    return high - low + 1 - count(*owned_.definite_writes) - count(owned_.other_keys);
  }

  // The pending indeterminate writes all took revisions <= high: there must be room for them.
  bool Bound(KeyState* s, int64_t high) const {
    bool fits = s->pending_count == 0 || FreeRevisions(s->pending_min, high) >= s->pending_count;
    s->pending_count = 0;
    s->pending_min = 0;
    return fits;
  }

  // Pins the unpinned mod_revision (the last pending write) to `revision`: not below the
  // floor, owned by no definite write, with room below it for the other pending writes.
  bool Pin(KeyState* s, int64_t revision) const {
    if (revision < s->floor || IsKnownRevision(revision) ||
        FreeRevisions(s->pending_min, revision - 1) < s->pending_count - 1) {
      return false;
    }
    s->mod_revision = revision;
    s->pending_count = 0;
    s->pending_min = 0;
    return true;
  }

  // An indeterminate write: one more pending revision, above the floor.
  static void AddPending(KeyState* s) {
    s->floor += 1;
    if (s->pending_count == 0) s->pending_min = s->floor;
    s->pending_count += 1;
  }

  // The key's mod_revision equals `expected` (0: absent), pinning an unpinned one if needed.
  bool Compare(KeyState* s, int64_t expected) const {
    if (expected == 0) return !s->present;
    if (!s->present) return false;
    if (s->mod_revision == kUnpinnedRevision) return Pin(s, expected);
    return s->mod_revision == expected;
  }

  // Put, Delete of a present key, successful Cas (after its compare): a new revision.
  bool Write(const KeyOp& op, const KeyState& s, KeyState* next) const {
    KeyState bounded = s;
    if (op.header_revision <= s.floor || !Bound(&bounded, op.header_revision - 1)) return false;
    *next = KeyState{.floor = op.header_revision};
    if (op.kind != OpKind::kDelete) {
      next->present = true;
      next->value_id = op.value_id;
      next->mod_revision = op.header_revision;
    }
    return true;
  }

  // Get, Delete of an absent key (the caller checked absence), failed Cas.
  bool Read(const KeyOp& op, const KeyState& s, KeyState* next) const {
    if (op.header_revision < s.floor) return false;
    *next = s;
    bool ok = true;
    if (op.kind == OpKind::kDelete || !op.found) {
      ok = !s.present && Bound(next, op.header_revision);
    } else if (!s.present || s.value_id != op.read_value_id) {
      ok = false;
    } else if (s.mod_revision == kUnpinnedRevision) {
      ok = op.read_mod_revision <= op.header_revision && Pin(next, op.read_mod_revision);
    } else {
      ok = s.mod_revision == op.read_mod_revision && Bound(next, op.header_revision);
    }
    next->floor = op.header_revision;
    return ok;
  }

  bool Cas(const KeyOp& op, const KeyState& s, KeyState* next) const {
    if (!op.succeeded) {
      if (!Read(op, s, next)) return false;
      int64_t current = next->present ? next->mod_revision : 0;
      return current != op.expected_mod_revision;
    }
    KeyState compared = s;
    if (!Compare(&compared, op.expected_mod_revision)) return false;
    // A pinned revision of the previous write must come before this one.
    if (compared.mod_revision >= op.header_revision) return false;
    return Write(op, compared, next);
  }

  bool StepIndeterminate(const KeyOp& op, const KeyState& s, KeyState* next) const {
    *next = s;
    switch (op.kind) {
      case OpKind::kPut:
        break;
      case OpKind::kDelete:
        if (!s.present) return false;
        break;
      case OpKind::kCas:
        if (!Compare(next, op.expected_mod_revision)) return false;
        next->floor = std::max(next->floor, next->mod_revision);
        break;
      case OpKind::kGet:
        return false;  // Dropped before the search; a read without a response changes nothing.
    }
    // Real time: the write happened after everything that returned before its call.
    next->floor = std::max(next->floor, op.revision_floor_at_call);
    AddPending(next);
    next->present = op.kind != OpKind::kDelete;
    next->value_id = next->present ? op.value_id : 0;
    next->mod_revision = next->present ? kUnpinnedRevision : 0;
    return true;
  }

  const OwnedRevisions& owned_;
};

// A definite operation that created a revision (its header revision).
bool IsDefiniteWrite(const KeyOp& op) {
  return op.definite &&
         (op.kind == OpKind::kPut || (op.kind == OpKind::kDelete && op.deleted_count == 1) ||
          (op.kind == OpKind::kCas && op.succeeded));
}

// An indeterminate write whose effect does not depend on the state (see key_search.h).
bool IsIndeterminateBlindWrite(const KeyOp& op) {
  return !op.definite && (op.kind == OpKind::kPut || op.kind == OpKind::kDelete);
}
bool IsBlindWrite(const KeyOp& op) {
  return op.kind == OpKind::kPut || (!op.definite && op.kind == OpKind::kDelete);
}

// ---- The set of linearized definite operations ----

// A bitset that keeps its canonical memo form cheap: the count of leading all-ones words and
// the index of the last non-zero word. Operations are numbered in call order, so the
// linearized set is a long run of ones followed by a few bits near the frontier.
class DefiniteBits {
 public:
  explicit DefiniteBits(size_t size) : size_(size), words_((size + 63) / 64, 0) {}

  void Set(size_t i) {
    size_t w = i / 64;
    words_[w] |= uint64_t{1} << (i % 64);
    top_ = std::max<int64_t>(top_, static_cast<int64_t>(w));
    while (full_words_ < words_.size() && WordFull(full_words_)) ++full_words_;
  }
  void Clear(size_t i) {
    size_t w = i / 64;
    words_[w] &= ~(uint64_t{1} << (i % 64));
    full_words_ = std::min(full_words_, w);
    while (top_ >= 0 && words_[top_] == 0) --top_;
  }

  bool Test(size_t i) const { return (words_[i / 64] >> (i % 64)) & 1; }
  size_t full_words() const { return full_words_; }
  // Words [full_words(), tail_end()) hold every set bit outside the full prefix.
  size_t tail_end() const { return std::max(full_words_, static_cast<size_t>(top_ + 1)); }
  uint64_t word(size_t w) const { return words_[w]; }

 private:
  bool WordFull(size_t w) const {
    size_t bits = std::min<size_t>(64, size_ - w * 64);
    uint64_t mask = bits == 64 ? ~uint64_t{0} : (uint64_t{1} << bits) - 1;
    return words_[w] == mask;
  }

  size_t size_;
  std::vector<uint64_t> words_;
  size_t full_words_ = 0;
  int64_t top_ = -1;
};

// ---- Memo of visited configurations ----

// Keyed by (definite set, state without floor); each entry keeps the floor and the set of
// linearized indeterminate operations, for the dominance test in key_search.h.
class Memo {
 public:
  explicit Memo(int64_t bytes_max) : bytes_max_(bytes_max) {}

  // True when a recorded configuration dominates this one; otherwise records it (memory
  // permitting) and returns false. `indeterminate` is sorted.
  bool DominatedOrInsert(const DefiniteBits& bits, const std::vector<uint32_t>& indeterminate,
                         const KeyState& s) {
    uint64_t hash = Hash(bits, s);
    auto it = heads_.find(hash);
    int32_t head = it == heads_.end() ? -1 : it->second;
    for (int32_t e = head; e >= 0; e = entries_[e].next) {
      const Entry& entry = entries_[e];
      if (entry.floor <= s.floor && SameKey(entry, bits, s) && IsSubset(entry, indeterminate)) {
        return true;
      }
    }
    if (bytes_ > bytes_max_) return false;  // Full: stay correct, stop remembering.
    Insert(hash, head, bits, indeterminate, s);
    return false;
  }

  uint64_t entries() const { return entries_.size(); }

 private:
  struct Entry {
    int32_t next;  // Previous entry with the same hash, or -1.
    uint32_t full_words;
    uint32_t tail_begin;
    uint32_t tail_size;
    uint32_t indeterminate_begin;
    uint32_t indeterminate_size;
    uint32_t value_id;
    bool present;
    int64_t mod_revision;
    int64_t floor;
    int64_t pending_min;
    int64_t pending_count;
  };
  // Per entry, beyond its arrays: the hash map node and bucket (measured, libstdc++).
  static constexpr int64_t kMapBytesPerEntry = 48;

  static uint64_t Hash(const DefiniteBits& bits, const KeyState& s) {
    uint64_t h = Mix(bits.full_words(), s.present);
    for (size_t w = bits.full_words(); w < bits.tail_end(); ++w) h = Mix(h, bits.word(w));
    h = Mix(h, s.value_id);
    h = Mix(h, static_cast<uint64_t>(s.pending_min));
    h = Mix(h, static_cast<uint64_t>(s.pending_count));
    return Mix(h, static_cast<uint64_t>(s.mod_revision));
  }

  bool SameKey(const Entry& e, const DefiniteBits& bits, const KeyState& s) const {
    if (e.present != s.present || e.value_id != s.value_id || e.mod_revision != s.mod_revision ||
        e.pending_min != s.pending_min || e.pending_count != s.pending_count ||
        e.full_words != bits.full_words() || e.tail_size != bits.tail_end() - bits.full_words()) {
      return false;
    }
    for (uint32_t i = 0; i < e.tail_size; ++i) {
      if (tails_[e.tail_begin + i] != bits.word(e.full_words + i)) return false;
    }
    return true;
  }

  bool IsSubset(const Entry& e, const std::vector<uint32_t>& indeterminate) const {
    auto begin = indeterminates_.begin() + e.indeterminate_begin;
    return std::includes(indeterminate.begin(), indeterminate.end(), begin,
                         begin + e.indeterminate_size);
  }

  void Insert(uint64_t hash, int32_t head, const DefiniteBits& bits,
              const std::vector<uint32_t>& indeterminate, const KeyState& s) {
    CAIRN_CHECK(entries_.size() < static_cast<size_t>(INT32_MAX));
    Entry e{.next = head,
            .full_words = static_cast<uint32_t>(bits.full_words()),
            .tail_begin = static_cast<uint32_t>(tails_.size()),
            .tail_size = static_cast<uint32_t>(bits.tail_end() - bits.full_words()),
            .indeterminate_begin = static_cast<uint32_t>(indeterminates_.size()),
            .indeterminate_size = static_cast<uint32_t>(indeterminate.size()),
            .value_id = s.value_id,
            .present = s.present,
            .mod_revision = s.mod_revision,
            .floor = s.floor,
            .pending_min = s.pending_min,
            .pending_count = s.pending_count};
    for (size_t w = bits.full_words(); w < bits.tail_end(); ++w) tails_.push_back(bits.word(w));
    indeterminates_.insert(indeterminates_.end(), indeterminate.begin(), indeterminate.end());
    heads_[hash] = static_cast<int32_t>(entries_.size());
    entries_.push_back(e);
    bytes_ += static_cast<int64_t>(sizeof(Entry) + kMapBytesPerEntry + e.tail_size * 8 +
                                   e.indeterminate_size * 4);
  }

  const int64_t bytes_max_;
  int64_t bytes_ = 0;
  std::unordered_map<uint64_t, int32_t> heads_;
  std::vector<Entry> entries_;
  std::vector<uint64_t> tails_;
  std::vector<uint32_t> indeterminates_;
};

// ---- The search ----

class Search {
 public:
  Search(const std::vector<KeyOp>& ops, const OwnedRevisions& owned, const KeySearchLimits& limits);
  KeySearchResult Run();

 private:
  // A main-list node: the call or return event of a definite operation.
  struct Event {
    int64_t time_ns;
    uint32_t definite;  // Index into definite_.
    bool is_return;
  };
  // One linearized operation on the DFS stack.
  struct Frame {
    uint32_t local;  // Index into definite_ or indeterminate_.
    bool definite;
    int32_t blocking_event;  // Indeterminate: the return event that bounded the choice.
    KeyState previous;
  };
  // Where the next candidate comes from: the main list, then indeterminate operations called
  // before the first remaining return event.
  struct Cursor {
    bool in_indeterminate = false;
    int32_t node = -1;
    int32_t blocking_event = -1;
  };

  void BuildMainList();
  void BuildIndeterminateList();
  void BuildRevisionOrder();
  bool LeavesRemainingFeasible(int64_t floor, int64_t excluded_local);
  size_t FirstUnlinearized();
  bool Depends(const KeyOp& follower, const KeyOp& write) const;
  bool IndeterminateWriteIsNeeded(const KeyOp& write, int32_t blocking_event);
  bool HasLaterTwin(uint32_t local, int64_t bound_ns) const;
  bool CasCouldFollow(const std::vector<uint32_t>& cas, int64_t bound_ns,
                      int64_t expected_min) const;
  bool TryLinearize(uint32_t local, bool definite, int32_t blocking_event);
  void Undo(Cursor* cursor);
  void RecordFailure(int32_t blocking_event);
  bool OutOfTime();

  static void Unlink(std::vector<int32_t>& next, std::vector<int32_t>& prev, int32_t n) {
    next[prev[n]] = next[n];
    if (next[n] >= 0) prev[next[n]] = prev[n];
  }
  static void Relink(std::vector<int32_t>& next, std::vector<int32_t>& prev, int32_t n) {
    next[prev[n]] = n;
    if (next[n] >= 0) prev[next[n]] = n;
  }

  const std::vector<KeyOp>& ops_;
  const KeyModel model_;
  const KeySearchLimits limits_;
  std::vector<uint32_t> definite_;       // Op indices of definite operations, call order.
  std::vector<uint32_t> indeterminate_;  // Op indices of indeterminate operations, call order.

  std::vector<Event> events_;
  std::vector<int32_t> next_, prev_;                // Main list; the head is node events_.size().
  std::vector<int32_t> call_event_, return_event_;  // Per definite operation.
  std::vector<int32_t> indeterminate_next_, indeterminate_prev_;  // Head: node size().
  // Definite operations by (header revision, writes first), and the position of the first
  // one not yet linearized (maybe stale low; see LeavesRemainingFeasible).
  std::vector<uint32_t> by_revision_;
  std::vector<uint32_t> revision_position_;  // Per definite operation.
  size_t first_unlinearized_ = 0;
  // Indeterminate Cas operations (local indices, call order) that could directly follow and
  // depend on an indeterminate write: by pinning its revision (expected revision owned by no
  // definite write), or on a deleted key (expected 0).
  std::vector<uint32_t> cas_may_pin_;
  std::vector<uint32_t> cas_on_absent_;
  std::vector<bool> indeterminate_linearized_;
  // Per indeterminate operation: the next one (call order) with the same effect (kind, value,
  // expected revision), or -1. See HasLaterTwin.
  std::vector<int32_t> next_twin_;

  DefiniteBits linearized_definite_;
  std::vector<uint32_t> linearized_indeterminate_;  // Sorted.
  size_t remaining_definite_ = 0;
  KeyState state_;
  std::vector<Frame> stack_;
  Memo memo_;
  KeySearchResult result_;
  bool failure_recorded_ = false;
  uint64_t iterations_ = 0;
};

Search::Search(const std::vector<KeyOp>& ops, const OwnedRevisions& owned,
               const KeySearchLimits& limits)
    : ops_(ops),
      model_(owned),
      limits_(limits),
      linearized_definite_(0),
      memo_(limits.memo_bytes_max) {
  for (uint32_t i = 0; i < ops.size(); ++i) {
    CAIRN_CHECK(ops[i].definite || ops[i].kind != OpKind::kGet);
    (ops[i].definite ? definite_ : indeterminate_).push_back(i);
  }
  auto by_call = [&](uint32_t a, uint32_t b) {
    return ops[a].call_time_ns < ops[b].call_time_ns ||
           (ops[a].call_time_ns == ops[b].call_time_ns && a < b);
  };
  std::sort(definite_.begin(), definite_.end(), by_call);
  std::sort(indeterminate_.begin(), indeterminate_.end(), by_call);
  linearized_definite_ = DefiniteBits(definite_.size());
  remaining_definite_ = definite_.size();
  BuildMainList();
  BuildIndeterminateList();
  BuildRevisionOrder();
  indeterminate_linearized_.assign(indeterminate_.size(), false);
  next_twin_.assign(indeterminate_.size(), -1);
  std::map<std::tuple<OpKind, uint32_t, int64_t>, int32_t> last_twin;
  for (uint32_t local = 0; local < indeterminate_.size(); ++local) {
    const KeyOp& op = ops[indeterminate_[local]];
    auto [it, inserted] = last_twin.try_emplace(
        std::tuple(op.kind, op.kind == OpKind::kDelete ? 0 : op.value_id, op.expected_mod_revision),
        static_cast<int32_t>(local));
    if (!inserted) {
      next_twin_[it->second] = static_cast<int32_t>(local);
      it->second = static_cast<int32_t>(local);
    }
  }
  for (uint32_t local = 0; local < indeterminate_.size(); ++local) {
    const KeyOp& op = ops[indeterminate_[local]];
    if (op.kind != OpKind::kCas) continue;
    if (op.expected_mod_revision == 0) cas_on_absent_.push_back(local);
    if (op.expected_mod_revision != 0 && !model_.IsKnownRevision(op.expected_mod_revision)) {
      cas_may_pin_.push_back(local);
    }
  }
}

void Search::BuildRevisionOrder() {
  by_revision_.resize(definite_.size());
  std::iota(by_revision_.begin(), by_revision_.end(), 0);
  std::stable_sort(by_revision_.begin(), by_revision_.end(), [&](uint32_t a, uint32_t b) {
    const KeyOp& x = ops_[definite_[a]];
    const KeyOp& y = ops_[definite_[b]];
    if (x.header_revision != y.header_revision) return x.header_revision < y.header_revision;
    return IsDefiniteWrite(x) && !IsDefiniteWrite(y);
  });
  revision_position_.resize(definite_.size());
  for (uint32_t i = 0; i < by_revision_.size(); ++i) revision_position_[by_revision_[i]] = i;
}

// Whether every definite operation still to be linearized (other than `excluded_local`) can
// come after a point where the store revision is `floor`: reads need header >= floor, writes
// header > floor. Checking the first one in (header, writes first) order checks them all. This
// prunes choices that the model would accept but that strand an operation with a lower
// revision, which is what keeps the search near linear on busy keys.
size_t Search::FirstUnlinearized() {
  while (first_unlinearized_ < by_revision_.size() &&
         linearized_definite_.Test(by_revision_[first_unlinearized_])) {
    ++first_unlinearized_;
  }
  return first_unlinearized_;
}

bool Search::LeavesRemainingFeasible(int64_t floor, int64_t excluded_local) {
  size_t i = FirstUnlinearized();
  while (i < by_revision_.size() &&
         (by_revision_[i] == excluded_local || linearized_definite_.Test(by_revision_[i]))) {
    ++i;
  }
  if (i == by_revision_.size()) return true;
  const KeyOp& first = ops_[definite_[by_revision_[i]]];
  return IsDefiniteWrite(first) ? first.header_revision > floor : first.header_revision >= floor;
}

void Search::BuildMainList() {
  for (uint32_t d = 0; d < definite_.size(); ++d) {
    const KeyOp& op = ops_[definite_[d]];
    CAIRN_CHECK(op.call_time_ns <= op.return_time_ns);
    events_.push_back(Event{.time_ns = op.call_time_ns, .definite = d, .is_return = false});
    events_.push_back(Event{.time_ns = op.return_time_ns, .definite = d, .is_return = true});
  }
  // Calls before returns at equal times: operations that touch are concurrent.
  std::stable_sort(events_.begin(), events_.end(), [](const Event& a, const Event& b) {
    if (a.time_ns != b.time_ns) return a.time_ns < b.time_ns;
    return !a.is_return && b.is_return;
  });
  const auto n = static_cast<int32_t>(events_.size());
  next_.assign(n + 1, -1);
  prev_.assign(n + 1, -1);
  call_event_.assign(definite_.size(), -1);
  return_event_.assign(definite_.size(), -1);
  int32_t last = n;  // The head.
  for (int32_t e = 0; e < n; ++e) {
    next_[last] = e;
    prev_[e] = last;
    last = e;
    (events_[e].is_return ? return_event_ : call_event_)[events_[e].definite] = e;
  }
}

void Search::BuildIndeterminateList() {
  const auto n = static_cast<int32_t>(indeterminate_.size());
  indeterminate_next_.assign(n + 1, -1);
  indeterminate_prev_.assign(n + 1, -1);
  int32_t last = n;
  for (int32_t i = 0; i < n; ++i) {
    indeterminate_next_[last] = i;
    indeterminate_prev_[i] = last;
    last = i;
  }
}

bool Search::OutOfTime() {
  return ++iterations_ % kIterationsPerDeadlineCheck == 0 &&
         std::chrono::steady_clock::now() > limits_.deadline;
}

// Whether the definite `follower`, linearized right after the indeterminate `write`, could
// succeed because of it: it reads the written value (or, after a delete, the absence), deletes
// the key, or pins the unpinned revision with its compare.
bool Search::Depends(const KeyOp& follower, const KeyOp& write) const {
  bool reads =
      follower.kind == OpKind::kGet || (follower.kind == OpKind::kCas && !follower.succeeded);
  bool cas_succeeded = follower.kind == OpKind::kCas && follower.succeeded;
  if (write.kind == OpKind::kDelete) {
    return (reads && !follower.found) ||
           (follower.kind == OpKind::kDelete && follower.deleted_count == 0) ||
           (cas_succeeded && follower.expected_mod_revision == 0);
  }
  return (reads && follower.found && follower.read_value_id == write.value_id) ||
         (follower.kind == OpKind::kDelete && follower.deleted_count == 1) ||
         (cas_succeeded && follower.expected_mod_revision != 0 &&
          !model_.IsKnownRevision(follower.expected_mod_revision));
}

// An indeterminate write is worth linearizing now only if the operation that must come right
// after it depends on it. Anything else that could come next either fails in the state it
// leaves, or is a blind write (excluded after an indeterminate blind write, see key_search.h).
// By LeavesRemainingFeasible, a definite successor is the first remaining operation in
// revision order or, if that is a read, another read at the same header revision.
bool Search::IndeterminateWriteIsNeeded(const KeyOp& write, int32_t blocking_event) {
  int64_t bound_ns = events_[blocking_event].time_ns;
  int64_t revision_min = std::max(state_.floor, write.revision_floor_at_call) + 1;
  if (write.kind == OpKind::kDelete ? CasCouldFollow(cas_on_absent_, bound_ns, 0)
                                    : CasCouldFollow(cas_may_pin_, bound_ns, revision_min)) {
    return true;
  }
  size_t first = FirstUnlinearized();
  if (first == by_revision_.size()) return false;
  const KeyOp& head = ops_[definite_[by_revision_[first]]];
  if (IsDefiniteWrite(head)) return Depends(head, write);
  for (size_t i = first; i < by_revision_.size(); ++i) {
    const KeyOp& op = ops_[definite_[by_revision_[i]]];
    if (op.header_revision != head.header_revision) break;
    if (!linearized_definite_.Test(by_revision_[i]) && Depends(op, write)) return true;
  }
  return false;
}

// Symmetry: indeterminate operations with the same effect are interchangeable once called,
// except that a later call may carry a higher real-time revision floor. If a later-called twin,
// also called by `bound_ns` and not yet linearized, has its floor within the current floor,
// it does here exactly what `local` would, and leaves `local` (less constrained) for later:
// so only the latest such twin is tried.
bool Search::HasLaterTwin(uint32_t local, int64_t bound_ns) const {
  for (int32_t twin = next_twin_[local]; twin >= 0; twin = next_twin_[twin]) {
    const KeyOp& op = ops_[indeterminate_[twin]];
    if (op.call_time_ns > bound_ns) return false;
    if (!indeterminate_linearized_[twin]) return op.revision_floor_at_call <= state_.floor;
  }
  return false;
}

// Whether one of `cas` not yet linearized, called by `bound_ns`, expects >= expected_min.
bool Search::CasCouldFollow(const std::vector<uint32_t>& cas, int64_t bound_ns,
                            int64_t expected_min) const {
  for (uint32_t local : cas) {
    const KeyOp& op = ops_[indeterminate_[local]];
    if (op.call_time_ns > bound_ns) return false;
    if (!indeterminate_linearized_[local] && op.expected_mod_revision >= expected_min) {
      return true;
    }
  }
  return false;
}

bool Search::TryLinearize(uint32_t local, bool definite, int32_t blocking_event) {
  const KeyOp& op = ops_[definite ? definite_[local] : indeterminate_[local]];
  if (!stack_.empty() && IsBlindWrite(op)) {
    const Frame& top = stack_.back();
    if (!top.definite && IsIndeterminateBlindWrite(ops_[indeterminate_[top.local]])) {
      return false;
    }
  }
  if (!definite && (HasLaterTwin(local, events_[blocking_event].time_ns) ||
                    !IndeterminateWriteIsNeeded(op, blocking_event))) {
    return false;
  }
  ++result_.steps;
  KeyState next;
  if (!model_.Step(op, state_, &next)) return false;
  if (!LeavesRemainingFeasible(next.floor, definite ? static_cast<int64_t>(local) : -1)) {
    return false;
  }
  if (definite) {
    linearized_definite_.Set(local);
  } else {
    linearized_indeterminate_.insert(
        std::upper_bound(linearized_indeterminate_.begin(), linearized_indeterminate_.end(), local),
        local);
  }
  if (memo_.DominatedOrInsert(linearized_definite_, linearized_indeterminate_, next)) {
    if (definite) {
      linearized_definite_.Clear(local);
      first_unlinearized_ = std::min<size_t>(first_unlinearized_, revision_position_[local]);
    } else {
      linearized_indeterminate_.erase(std::lower_bound(linearized_indeterminate_.begin(),
                                                       linearized_indeterminate_.end(), local));
    }
    return false;
  }
  stack_.push_back(Frame{
      .local = local, .definite = definite, .blocking_event = blocking_event, .previous = state_});
  state_ = next;
  if (definite) {
    Unlink(next_, prev_, call_event_[local]);
    Unlink(next_, prev_, return_event_[local]);
    --remaining_definite_;
  } else {
    Unlink(indeterminate_next_, indeterminate_prev_, static_cast<int32_t>(local));
    indeterminate_linearized_[local] = true;
  }
  return true;
}

// Pops the top of the stack and points the cursor just after it.
void Search::Undo(Cursor* cursor) {
  Frame frame = stack_.back();
  stack_.pop_back();
  state_ = frame.previous;
  if (frame.definite) {
    Relink(next_, prev_, return_event_[frame.local]);
    Relink(next_, prev_, call_event_[frame.local]);
    ++remaining_definite_;
    linearized_definite_.Clear(frame.local);
    first_unlinearized_ = std::min<size_t>(first_unlinearized_, revision_position_[frame.local]);
    *cursor = Cursor{.node = next_[call_event_[frame.local]]};
  } else {
    auto node = static_cast<int32_t>(frame.local);
    Relink(indeterminate_next_, indeterminate_prev_, node);
    indeterminate_linearized_[frame.local] = false;
    linearized_indeterminate_.erase(std::lower_bound(linearized_indeterminate_.begin(),
                                                     linearized_indeterminate_.end(), frame.local));
    *cursor = Cursor{.in_indeterminate = true,
                     .node = indeterminate_next_[node],
                     .blocking_event = frame.blocking_event};
  }
}

void Search::RecordFailure(int32_t blocking_event) {
  size_t linearized = definite_.size() - remaining_definite_;
  if (failure_recorded_ && linearized <= result_.linearized_count) return;
  failure_recorded_ = true;
  result_.linearized_count = linearized;
  result_.state = state_;
  result_.blocking = definite_[events_[blocking_event].definite];
  result_.linearized_tail.clear();
  size_t first = stack_.size() > kLinearizedTailMax ? stack_.size() - kLinearizedTailMax : 0;
  for (size_t i = first; i < stack_.size(); ++i) {
    const Frame& f = stack_[i];
    result_.linearized_tail.push_back(f.definite ? definite_[f.local] : indeterminate_[f.local]);
  }
  result_.pending.clear();
  for (int32_t e = next_[events_.size()]; e != blocking_event; e = next_[e]) {
    result_.pending.push_back(definite_[events_[e].definite]);
  }
}

KeySearchResult Search::Run() {
  const auto head = static_cast<int32_t>(events_.size());
  const auto indeterminate_head = static_cast<int32_t>(indeterminate_.size());
  Cursor cursor{.node = next_[head]};
  while (remaining_definite_ > 0) {
    if (OutOfTime()) {
      result_.verdict = Verdict::kTimedOut;
      break;
    }
    if (!cursor.in_indeterminate) {
      CAIRN_CHECK(cursor.node >= 0);  // A return event remains while definite ops remain.
      const Event& event = events_[cursor.node];
      if (event.is_return) {
        cursor = Cursor{.in_indeterminate = true,
                        .node = indeterminate_next_[indeterminate_head],
                        .blocking_event = cursor.node};
      } else if (TryLinearize(event.definite, true, -1)) {
        cursor = Cursor{.node = next_[head]};
      } else {
        cursor.node = next_[cursor.node];
      }
      continue;
    }
    int64_t bound_ns = events_[cursor.blocking_event].time_ns;
    if (cursor.node >= 0 && ops_[indeterminate_[cursor.node]].call_time_ns <= bound_ns) {
      if (TryLinearize(static_cast<uint32_t>(cursor.node), false, cursor.blocking_event)) {
        cursor = Cursor{.node = next_[head]};
      } else {
        cursor.node = indeterminate_next_[cursor.node];
      }
      continue;
    }
    RecordFailure(cursor.blocking_event);
    if (stack_.empty()) {
      result_.verdict = Verdict::kNotLinearizable;
      break;
    }
    Undo(&cursor);
  }
  result_.memo_entries = memo_.entries();
  return result_;
}

}  // namespace

KeySearchResult SearchKey(const std::vector<KeyOp>& ops, const OwnedRevisions& owned,
                          const KeySearchLimits& limits) {
  Search search(ops, owned, limits);
  return search.Run();
}

std::string KeyStateToString(const KeyState& state, const std::vector<std::string>& values) {
  std::string s;
  if (!state.present) {
    s = "absent";
  } else {
    s = "present value \"" + values.at(state.value_id) + "\" mod_revision ";
    s += state.mod_revision == kUnpinnedRevision ? std::string("unknown (indeterminate write)")
                                                 : std::to_string(state.mod_revision);
  }
  return s + ", store revision >= " + std::to_string(state.floor);
}

}  // namespace cairn::checker::internal
