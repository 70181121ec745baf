// FaultInjectionFileSystem: an in-memory file system (MemoryFileSystem) that can lose power
// and fail operations on demand, to prove that callers sync what they claim is durable and
// survive I/O errors. Modeled on RocksDB's FaultInjectionTestFS.
//
// Crash semantics (see file_system.h for what Sync/SyncDir promise):
//   * SimulateCrash(): every byte, truncation and preallocation not covered by a later
//     WritableFile::Sync() of that file is lost: each file reverts to its synced contents.
//     Names revert to the last SyncDir() of their directory: a file created but never
//     covered by SyncDir disappears (even if its data was synced), a deleted or renamed file
//     not followed by SyncDir comes back under its old name. Directories survive.
//   * SimulateCrashWithTornWrite(random): as SimulateCrash, except that each file's unsynced
//     changes survive as a prefix in the order they were made (what a disk that persists
//     writes in order does on power loss): a random number of them whole, then a random
//     prefix (0 to all bytes) of the next write, half the time followed by random garbage
//     bytes inside the rest of that write's range; later changes are lost.
//   * After a crash, every handle opened before it is stale: its calls return IoError. Open
//     new handles (i.e. restart the component).
//   * Halt() models the instant of power loss for code that keeps running in other threads:
//     from then on every operation fails with IoError (nothing more reaches the "disk"),
//     until the next SimulateCrash*, which also ends the halt. Without it, a thread still
//     running after SimulateCrash could, for example, SyncDir the post-crash names and
//     believe that names lost in the crash are durable.
//
// Error injection: FailNth / FailAlways / SetHook make chosen operations return IoError
// before they change anything (a failed Append writes nothing, a failed Sync syncs nothing).
// OperationCount counts attempts, failed or not.
//
// Thread-safety: all methods are thread-safe. The hook runs under the file system's lock and
// must not call back into it.
#pragma once

#include <array>
#include <functional>

#include "src/env/memory_file_system.h"

namespace cairn::env {

class FaultInjectionFileSystem final : public MemoryFileSystem {
 public:
  // Decides the fate of one operation: non-OK fails it with that status.
  using Hook = std::function<Status(FileOperation operation, const std::string& path)>;

  FaultInjectionFileSystem() = default;

  void Halt();
  void SimulateCrash();
  void SimulateCrashWithTornWrite(Random& random);

  // The n-th call of `operation` from now (n = 1: the next one) fails with IoError, once.
  void FailNth(FileOperation operation, uint64_t n);
  // Every call of `operation` fails with IoError until ClearFaults().
  void FailAlways(FileOperation operation);
  // Consulted before FailNth/FailAlways for every operation; empty to remove.
  void SetHook(Hook hook);
  void ClearFaults();

  uint64_t OperationCount(FileOperation operation);
  uint64_t CrashCount();

 protected:
  Status BeforeOperation(FileOperation operation, const std::string& path) override;

 private:
  // GUARDED_BY(mutex_), all of them.
  std::array<uint64_t, kFileOperationCount> counts_{};
  std::array<uint64_t, kFileOperationCount> fail_at_count_{};  // 0: none
  std::array<bool, kFileOperationCount> fail_always_{};
  Hook hook_;
  uint64_t crash_count_ = 0;
  bool halted_ = false;
};

}  // namespace cairn::env
