// History: the client-side record of requests to an etcd-style key-value store, in the form the
// linearizability checker (checker.h) consumes. Each Operation is one request as a client saw
// it: what it asked (kind, key, value, expected mod_revision), when it asked and when it heard
// back (call_time_ns, return_time_ns), and what it heard (OpResult).
//
// The operations, as the store's v3 API would run them on a single key:
//   Put(key, value)     -> header revision R: the store revision after the put, which is also
//                          the key's new mod_revision.
//   Get(key)            -> found (value, mod_revision) or not found, plus the header revision
//                          (the store revision the read was served at).
//   Delete(key)         -> deleted count (0 or 1) plus the header revision (the new store
//                          revision when a key was deleted, the current one when none was).
//   Cas(key, X, value)  -> a Txn: if mod_revision(key) == X (X == 0: the key is absent) then
//                          Put(key, value) else Get(key). Response: succeeded, the header
//                          revision, and on failure the read (found, value, mod_revision).
//
// Outcome: kOk means the client got the response above. kIndeterminate (timeout, lost
// connection, unknown error) means the request may or may not have taken effect, at any time
// after its call: its return time is treated as +infinity and its response as unknown.
// kDefinitelyFailed means the server guarantees it had no effect (e.g. rejected before
// proposal); such operations are ignored by the checker.
//
// Times are nanoseconds from any fixed origin shared by all clients of one history (a steady
// clock, or simulated time). Only their order matters.
//
// Text format (SerializeHistory / ParseHistory): a first line "# cairn-history v1", then one
// line per operation with tab-separated fields in this order:
//   client  kind  key  value  expected  call_ns  return_ns  outcome  header  found  read_value
//   read_mod_revision  deleted  succeeded
// kind is put|get|delete|cas; outcome is ok|indeterminate|failed; return_ns is "-" unless ok;
// found and succeeded are 0|1; key, value and read_value are escaped (\\, \t, \n, \r, \xHH
// for other bytes outside 0x20..0x7e). Lines starting with '#' and empty lines are skipped.
//
// Thread-safety: Operation and History are values, not synchronized. Recorder is thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "src/base/result.h"
#include "src/base/status.h"

namespace cairn::checker {

enum class OpKind : uint8_t { kPut, kGet, kDelete, kCas };
enum class Outcome : uint8_t { kOk, kIndeterminate, kDefinitelyFailed };

std::string_view OpKindName(OpKind kind);
std::string_view OutcomeName(Outcome outcome);

// What the client heard back. Fields a kind does not use stay at their defaults.
struct OpResult {
  Outcome outcome = Outcome::kIndeterminate;
  // Put: the new revision. Get/Delete/Cas: the response header revision. Only with kOk.
  int64_t header_revision = 0;
  // Get, and the read branch of a Cas that did not succeed.
  bool found = false;
  std::string read_value;
  int64_t read_mod_revision = 0;
  // Delete: 0 or 1.
  int64_t deleted_count = 0;
  // Cas.
  bool succeeded = false;

  static OpResult Indeterminate() { return OpResult{}; }
  static OpResult DefinitelyFailed() { return OpResult{.outcome = Outcome::kDefinitelyFailed}; }
  static OpResult PutOk(int64_t revision) {
    return OpResult{.outcome = Outcome::kOk, .header_revision = revision};
  }
  static OpResult GetFound(std::string value, int64_t mod_revision, int64_t header_revision) {
    return OpResult{.outcome = Outcome::kOk,
                    .header_revision = header_revision,
                    .found = true,
                    .read_value = std::move(value),
                    .read_mod_revision = mod_revision};
  }
  static OpResult GetNotFound(int64_t header_revision) {
    return OpResult{.outcome = Outcome::kOk, .header_revision = header_revision};
  }
  static OpResult DeleteOk(int64_t deleted_count, int64_t header_revision) {
    return OpResult{.outcome = Outcome::kOk,
                    .header_revision = header_revision,
                    .deleted_count = deleted_count};
  }
  // A Cas that succeeded: header_revision is the put's revision.
  static OpResult CasSucceeded(int64_t header_revision) {
    return OpResult{.outcome = Outcome::kOk, .header_revision = header_revision, .succeeded = true};
  }
  // A Cas that failed its compare and read the key instead.
  static OpResult CasFailedFound(std::string value, int64_t mod_revision, int64_t header_revision) {
    return GetFound(std::move(value), mod_revision, header_revision);
  }
  static OpResult CasFailedNotFound(int64_t header_revision) {
    return GetNotFound(header_revision);
  }
};

// Stands for "no response yet / never": the return time of operations that are not kOk.
inline constexpr int64_t kNeverNs = std::numeric_limits<int64_t>::max();

struct Operation {
  uint32_t client_id = 0;
  OpKind kind = OpKind::kGet;
  std::string key;
  std::string value;                  // Put, Cas: the value written.
  int64_t expected_mod_revision = 0;  // Cas: the compare target; 0 = the key is absent.
  int64_t call_time_ns = 0;           // When the request was sent.
  int64_t return_time_ns = kNeverNs;  // When the response arrived; kNeverNs unless kOk.
  OpResult result;

  bool definite() const { return result.outcome == Outcome::kOk; }
  // A definite operation that created a new store revision (and so owns it).
  bool IsSuccessfulWrite() const;
  // One line for explanations, e.g. `c3 Put("k1", "v7") -> rev 15 [1200, 1900]`.
  std::string ToString() const;
};

// Builders for tests and recorders: a definite operation with its response.
Operation PutOp(uint32_t client, std::string key, std::string value, int64_t call_ns,
                int64_t return_ns, int64_t revision);
Operation GetOp(uint32_t client, std::string key, int64_t call_ns, int64_t return_ns,
                OpResult result);
Operation DeleteOp(uint32_t client, std::string key, int64_t call_ns, int64_t return_ns,
                   int64_t deleted_count, int64_t header_revision);
Operation CasOp(uint32_t client, std::string key, int64_t expected_mod_revision, std::string value,
                int64_t call_ns, int64_t return_ns, OpResult result);
// Marks an operation indeterminate (its response never arrived): return time kNeverNs.
Operation Indeterminate(Operation op);

// An append-only list of operations. Not synchronized (use Recorder from many threads).
class History {
 public:
  History() = default;

  void Append(Operation op) { ops_.push_back(std::move(op)); }
  const std::vector<Operation>& ops() const { return ops_; }
  size_t size() const { return ops_.size(); }
  const Operation& operator[](size_t i) const { return ops_[i]; }
  Operation& mutable_op(size_t i) { return ops_[i]; }

  // InvalidArgument naming the first malformed operation: a return before its call, a kOk
  // operation without a return time, a revision <= 0 where one is required, a deleted count
  // other than 0 or 1, a found read with mod_revision outside 1..header_revision.
  Status Validate() const;

 private:
  std::vector<Operation> ops_;
};

// Text form (see the file comment). ParseHistory returns InvalidArgument with the line number
// for malformed input.
std::string SerializeHistory(const History& history);
Result<History> ParseHistory(std::string_view text);
Status WriteHistoryFile(const History& history, const std::string& path);
Result<History> ReadHistoryFile(const std::string& path);

// Recorder: records operations from concurrent client threads. Invoke() stamps the call time
// and returns a handle; Complete() stamps the return time and stores the response. Operations
// never completed (the client crashed or gave up) are indeterminate in Finish().
//
// Thread-safety: all methods may be called concurrently. The clock must be safe to call from
// every thread that records, and must not go backwards.
class Recorder {
 public:
  using Handle = uint64_t;

  // now_ns: the time source, e.g. steady_clock or the simulation's clock.
  explicit Recorder(std::function<int64_t()> now_ns);
  Recorder(const Recorder&) = delete;
  Recorder& operator=(const Recorder&) = delete;

  // kind/key/value/expected_mod_revision as in Operation.
  Handle Invoke(uint32_t client_id, OpKind kind, std::string key, std::string value = {},
                int64_t expected_mod_revision = 0);
  // REQUIRES: handle came from Invoke() and has not been completed.
  // A result with outcome kIndeterminate keeps the return time at kNeverNs.
  void Complete(Handle handle, OpResult result);

  // A copy of everything recorded so far; pending operations are indeterminate.
  History Snapshot() const;

 private:
  const std::function<int64_t()> now_ns_;
  mutable std::mutex mutex_;
  std::vector<Operation> ops_;   // GUARDED_BY(mutex_)
  std::vector<bool> completed_;  // GUARDED_BY(mutex_)
};

}  // namespace cairn::checker
