// AutoCompactor: etcd's --auto-compaction-mode / --auto-compaction-retention, proposing
// ordinary Compaction commands from a thread of its own.
//
//   periodic  keep `retention` of history: every retention/10 (at most 6 min) the current
//             revision is sampled; every min(retention, 1 h) the store is compacted to the
//             oldest sample still inside the window, i.e. the revision of `retention` ago.
//   revision  keep the last `retention` revisions: every 5 minutes (check_interval_ms),
//             compact to current - retention when that moved since the last compaction.
//
// A compaction that finds the revision already compacted is not an error. A failed one is
// logged and retried at the next tick.
//
// Thread-safety: Start and Stop from one thread; Stop joins (idempotent).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <thread>

#include "src/base/result.h"
#include "src/node/node.h"

namespace cairn::server {

struct AutoCompactionOptions {
  enum class Mode { kPeriodic, kRevision };
  // Default: periodic, etcd's default mode.
  Mode mode = Mode::kPeriodic;
  // periodic: the history window in ms; revision: revisions kept. 0 disables. Default: 0.
  int64_t retention = 0;
  // revision mode: how often to check. Default: 5 minutes, etcd's fixed interval.
  int64_t revision_check_interval_ms = 5 * 60 * 1000;

  // Parses etcd's flags: a bare number is hours (periodic) or revisions (revision); periodic
  // also takes a Go duration ("30m", "1h30m", "5s").
  static Result<AutoCompactionOptions> Parse(const std::string& mode, const std::string& retention);
};

class AutoCompactor {
 public:
  AutoCompactor(node::Node* node, AutoCompactionOptions options);
  ~AutoCompactor();
  AutoCompactor(const AutoCompactor&) = delete;
  AutoCompactor& operator=(const AutoCompactor&) = delete;

  // Starts the thread (nothing when retention is 0).
  void Start();
  void Stop();

  // Compactions proposed so far that succeeded (tests, logs).
  int64_t compactions() const;
  int64_t last_compacted_revision() const;

 private:
  void Run();
  // Proposes a compaction to `revision` and waits for it; true when it applied (or the
  // store was already compacted that far).
  bool Compact(int64_t revision);
  // Waits up to `ms`; false when stopping.
  bool Sleep(int64_t ms);

  node::Node* const node_;
  const AutoCompactionOptions options_;
  mutable std::mutex mutex_;
  std::condition_variable stop_signal_;
  bool stopping_ = false;       // GUARDED_BY(mutex_)
  int64_t compactions_ = 0;     // GUARDED_BY(mutex_)
  int64_t last_compacted_ = 0;  // GUARDED_BY(mutex_)
  std::thread thread_;
};

}  // namespace cairn::server
