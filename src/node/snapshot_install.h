// Snapshot install: how a follower durably replaces its state with a snapshot the leader
// sent (raft kSnapshot), so that a crash at any point leaves the member either on its old
// state or on the snapshot's, never on a mix.
//
//   1. Stage:    the snapshot becomes <data_dir>/snapshots/incoming.snap: the file the
//                transport staged (raft::Snapshot::file, already synced) is renamed there, or
//                the bytes of raft::Snapshot::data are written there (temporary file,
//                fdatasync, rename); then the directory is synced and the file verified
//                (checksums, and the applied index inside must be the Raft snapshot's index).
//   2. Mark:     <data_dir>/raft/snapshot_install (raft_log_format.h) records (index, term),
//                durably. From here on the install is committed: an open redoes 3-5.
//   3. Engine:   every engine family is replaced by the snapshot's records at once
//                (ReplaceEngineContents: streamed from the file into one SST file per family,
//                ingested atomically; readers see the old state or the new one), durable when
//                it returns (the engine is flushed: its own WAL is off). The snapshot carries
//                the applied index, the membership, the revisions, leases, alarms, auth,
//                events... everything apply reads.
//   4. Log:      the WAL is reset to hold one placeholder entry (index, term): the log
//                continues after the snapshot (RaftLogStorage::ResetToSnapshot).
//   5. Unmark:   the marker is removed (directory synced), then incoming.snap.
//
// A crash before 2 leaves the old state (the staged file, and every other file in snapshots/,
// is deleted at the next open); a crash
// after 2 is finished at the next open (FinishInterruptedSnapshotInstall, before anything
// reads the engine or the log). Steps 3 and 4 are idempotent, so a crash while redoing them is
// redone again.
//
// Thread-safety: the caller serializes these with every other writer of the engine and the
// WAL (the node runs them on its raft thread with the apply thread idle, or at open).
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "src/base/result.h"
#include "src/env/file_system.h"
#include "src/node/raft_log_format.h"
#include "src/node/snapshot.h"
#include "src/raft/types.h"
#include "src/storage/engine.h"
#include "src/wal/wal.h"

namespace cairn::node {

// <data_dir>/snapshots: the staged incoming snapshot, the leader's outgoing one, and the
// transport's received and partly received ones. Nothing there outlives a restart.
std::string SnapshotDir(const std::string& data_dir);
std::string IncomingSnapshotPath(const std::string& data_dir);
// The leader's prepared snapshot at `index`, and where it is written before it is complete.
std::string OutgoingSnapshotPath(const std::string& data_dir, uint64_t index);
std::string OutgoingSnapshotTemporaryPath(const std::string& data_dir);

// Steps 1 and 2. The snapshot is in snapshot.file (moved, not copied: REQUIRES it is on the
// data directory's file system) or in snapshot.data. Errors: the file system's; Corruption
// when the data is not a snapshot at snapshot.metadata.index (nothing is marked then, and the
// staged file is deleted).
Status StageSnapshotInstall(env::FileSystem* fs, const std::string& data_dir,
                            const raft::Snapshot& snapshot);

// Steps 3 to 5 for a staged, marked snapshot; `reset_log` performs step 4. `after_step` (may
// be empty) runs after steps 3 and 4 (tests stop the install there); its error is returned.
Result<SnapshotInfo> CompleteSnapshotInstall(
    storage::Engine* engine, env::FileSystem* fs, const std::string& data_dir,
    const InstallMarker& marker, const std::function<Status()>& reset_log,
    const std::function<Status(int step)>& after_step = nullptr);

// At open, before the engine or the WAL is read: finishes an install a crash interrupted
// (returns its marker) or removes a staged file that was never marked (returns nullopt); then
// deletes every other file in snapshots/ (outgoing, received, partly received or temporary
// ones of the previous run).
Result<std::optional<InstallMarker>> FinishInterruptedSnapshotInstall(storage::Engine* engine,
                                                                      wal::Wal* wal,
                                                                      env::FileSystem* fs,
                                                                      const std::string& data_dir);

}  // namespace cairn::node
