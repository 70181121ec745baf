// GroupCommitter: many threads submit log entries; one commit thread takes whatever is
// queued (up to a batch limit), appends it with one write and makes it durable with ONE
// Wal::Sync, then acknowledges every entry of the batch. While a sync runs, new submissions
// queue up and form the next batch, so the sync rate stays at what the disk allows and the
// entry rate grows with concurrency.
//
// Callbacks run on the commit thread, after the fdatasync covering their entry returned,
// strictly in submission (= index) order, with (OK, index) or (error, 0). An entry that
// is too large fails alone with InvalidArgument; an I/O error fails its whole batch and,
// because the Wal then refuses further writes (see wal.h), every later entry too.
// Callbacks must be quick and must not call Append/Stop (they would wait for themselves).
//
// Ownership: the Wal must outlive the committer; while the committer runs it is the Wal's
// only writer (ReadFrom, FirstIndex, LastIndex stay available to other threads).
// Thread-safety: Submit, Append, Stop and stats may be called from any thread.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "src/base/result.h"
#include "src/base/status.h"
#include "src/wal/wal.h"

namespace cairn::wal {

class GroupCommitter {
 public:
  struct Options {
    // At most this many entries per batch (one write + one sync). Default: 1024.
    size_t batch_entries_max = 1024;
    // At most this many payload bytes per batch (a single larger entry forms its own batch).
    // Default: 4 MiB.
    size_t batch_bytes_max = 4ull << 20;
    // Submit blocks while this many entries are queued (backpressure). Default: 16384.
    size_t queue_entries_max = 16384;
    // Submit also blocks while this many payload bytes are queued (an entry larger than the
    // whole bound is admitted into an empty queue). Default: 64 MiB.
    size_t queue_bytes_max = 64ull << 20;
    // Called on the commit thread after each successful Wal::Sync with its duration and the
    // batch's entry count (metrics). Default: empty.
    std::function<void(double sync_seconds, size_t entries)> on_sync;
  };

  struct Stats {
    uint64_t batches = 0;            // Wal::Sync calls made, one per batch
    uint64_t entries = 0;            // entries acknowledged OK
    uint64_t entries_failed = 0;     // entries acknowledged with an error
    uint64_t batch_entries_max = 0;  // the largest batch so far
  };

  using Callback = std::function<void(const Status& status, uint64_t index)>;

  // Starts the commit thread. REQUIRES: every Options bound > 0.
  GroupCommitter(Wal* wal, Options options);
  GroupCommitter(const GroupCommitter&) = delete;
  GroupCommitter& operator=(const GroupCommitter&) = delete;
  ~GroupCommitter();  // Stop()

  // Enqueues `payload`; `done` runs later on the commit thread as described above. Blocks
  // while the queue is full. Returns Unavailable (and never runs `done`) once stopped.
  Status Submit(std::string payload, Callback done);
  // Submit and wait for durability: the entry's index, or the error.
  // REQUIRES: not called from a callback.
  Result<uint64_t> Append(std::string payload);
  // Rejects new submissions, commits everything already queued, joins the commit thread.
  // Idempotent. REQUIRES: not called from a callback.
  void Stop();

  // Runs fn(wal) as the Wal's writer, between two batches of the commit thread, and returns
  // its status: the way for other threads to TruncatePrefix (checkpoints) while the
  // committer runs. Works after Stop() too. REQUIRES: not called from a callback.
  Status RunExclusive(const std::function<Status(Wal*)>& fn);

  Stats stats() const;

 private:
  struct Pending {
    std::string payload;
    Callback done;
  };

  void Run();
  void CommitBatch(std::deque<Pending>* batch);

  Wal* const wal_;
  const Options options_;

  mutable std::mutex mutex_;
  std::condition_variable not_empty_;  // signalled when an entry is queued or on Stop
  std::condition_variable not_full_;   // signalled when the commit thread takes a batch
  std::deque<Pending> queue_;          // GUARDED_BY(mutex_)
  size_t queue_bytes_ = 0;             // GUARDED_BY(mutex_)
  bool stopping_ = false;              // GUARDED_BY(mutex_)
  Stats stats_;                        // GUARDED_BY(mutex_)

  // Held by whoever writes to the Wal: the commit thread around append + sync, or
  // RunExclusive. Callbacks run outside it.
  std::mutex writer_mutex_;
  std::mutex join_mutex_;  // serializes concurrent Stop calls
  std::thread thread_;
};

}  // namespace cairn::wal
