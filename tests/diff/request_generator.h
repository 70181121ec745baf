// The seeded random request sequence of the differential test. The same seed and the same
// observed state (taken from etcd's answers only) give the same requests, so a failing seed
// replays exactly. The key space is small (10 keys, so operations collide and sorts stay
// within the size where Go's sort is an insertion sort), values are short, lease IDs come
// from a small pool chosen by the client so both servers use the same IDs.
#pragma once

#include <google/protobuf/message.h>

#include <cstdint>
#include <memory>
#include <random>
#include <string>

#include "etcdserverpb/rpc.pb.h"

namespace cairn::diff {

// Both servers are started with these, so their limits are the same.
inline constexpr int64_t kMaxRequestBytes = 10000;
inline constexpr int kMaxTxnOps = 128;
// The lease ID of "grant below the minimum TTL" steps; the runner revokes it in the same step.
inline constexpr int64_t kShortLeaseId = 900;

enum class OpKind {
  kRange,
  kPut,
  kDeleteRange,
  kTxn,
  kCompact,
  kLeaseGrant,
  kLeaseRevoke,
  kLeaseTimeToLive,
  kLeaseLeases,
  kLeaseKeepAlive,
  kWatchOpen,      // request: WatchCreateRequest
  kWatchCancel,    // watch_index: which open watch
  kWatchProgress,  // watch_index: which open watch's stream
};

struct Op {
  OpKind kind = OpKind::kRange;
  std::string label;  // what the step means to do, e.g. "put", "invalid: duplicate key"
  std::unique_ptr<google::protobuf::Message> request;
  int watch_index = -1;
};

// What the generator may look at: etcd's answers so far.
struct ObservedState {
  int64_t revision = 1;
  int64_t compact_revision = 0;
  int open_watches = 0;
};

class RequestGenerator {
 public:
  explicit RequestGenerator(uint64_t seed) : random_(seed) {}
  Op Next(const ObservedState& state);

 private:
  int Uniform(int low, int high);  // inclusive
  bool Chance(int percent);
  template <typename T>
  const T& Pick(const std::vector<T>& values) {
    return values[Uniform(0, static_cast<int>(values.size()) - 1)];
  }

  std::string Key();
  std::string Value();
  int64_t LeaseId();
  void KeyRange(std::string* key, std::string* range_end);
  int64_t ReadRevision(const ObservedState& state);

  etcdserverpb::RangeRequest Range(const ObservedState& state);
  etcdserverpb::PutRequest Put();
  etcdserverpb::DeleteRangeRequest DeleteRange();
  etcdserverpb::Compare Compare(const ObservedState& state);
  etcdserverpb::RequestOp RequestOp(const ObservedState& state, int depth);
  etcdserverpb::TxnRequest Txn(const ObservedState& state, int depth);
  etcdserverpb::WatchCreateRequest WatchCreate(const ObservedState& state);
  Op Invalid(const ObservedState& state);

  std::mt19937_64 random_;
};

}  // namespace cairn::diff
