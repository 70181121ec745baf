// Snapshots: the whole state of a member (every engine family, meta included) as one file,
// taken from a consistent engine snapshot. Maintenance.Snapshot streams one to clients
// (`cairnctl snapshot save`, `etcdctl snapshot save`); RestoreSnapshot turns one into a
// fresh data directory that a member starts from (`cairnctl snapshot restore`).
//
// Format (docs/formats/snapshot.md): a 16-byte header (magic "CAIRNSNP", fixed32 version,
// fixed32 zero), then records (u8 kind 1, u8 family, length-prefixed key, length-prefixed
// value) in (family, key) order, a trailer (u8 kind 0xFF, fixed64 record count, fixed64
// applied index, fixed32 masked crc32c of every byte before it), zero padding to a multiple of
// 512 bytes, and the sha256 of all of that — the ending etcd's snapshot stream has, which
// `etcdctl snapshot save` checks.
//
// Thread-safety: the functions are independent; WriteSnapshot may run concurrently with
// writes to the engine (it reads a consistent engine snapshot).
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "src/base/result.h"
#include "src/env/file_system.h"
#include "src/storage/engine.h"

namespace cairn::node {

inline constexpr std::string_view kSnapshotMagic = "CAIRNSNP";
inline constexpr uint32_t kSnapshotVersion = 1;

struct SnapshotInfo {
  uint64_t applied_index = 0;  // the last log index the state includes
  uint64_t records = 0;        // engine entries, all families
  uint64_t size_bytes = 0;     // of the file
};

// Writes the engine's current state to `path` (replaced if present) and syncs it.
// `cancelled` (may be empty) is polled between records; when it returns true the file is
// deleted and Cancelled returned.
Result<SnapshotInfo> WriteSnapshot(storage::Engine* engine, env::FileSystem* fs,
                                   const std::string& path,
                                   const std::function<bool()>& cancelled = nullptr);

// Reads and checks the whole snapshot (checksum, trailer, format version) without applying
// it. Corruption names what is wrong.
Result<SnapshotInfo> VerifySnapshot(env::FileSystem* fs, const std::string& path);

// Reads and checks the whole snapshot like VerifySnapshot, calling `record` for every engine
// entry in file order (the call's error, if any, stops the read and is returned).
using SnapshotRecordFunction =
    std::function<Status(storage::Family family, const std::string& key, const std::string& value)>;
Result<SnapshotInfo> ReadSnapshotRecords(env::FileSystem* fs, const std::string& path,
                                         const SnapshotRecordFunction& record);

// Replaces the whole contents of `engine` (every family, meta included) with the snapshot's
// through one storage::ContentsReplacement (readers see the old state or the new one, never a
// mix; the new contents are durable when it returns). The records stream from the file into
// the replacement: with RocksDB they go to one SST file per family (<path>.<family>.sst,
// beside the snapshot), ingested atomically, so memory does not grow with the state. The
// snapshot is verified first; nothing is changed when it does not check out. Used by a
// follower installing a snapshot the leader sent (the install is redone from the file after a
// crash: the operation is idempotent).
Result<SnapshotInfo> ReplaceEngineContents(storage::Engine* engine, env::FileSystem* fs,
                                           const std::string& path);

// etcd's Maintenance.Hash: a crc32c over the member's replicated state read from one engine
// snapshot — the live keys with their records (kv latest family), the leases, and the alarms.
// Members that applied the same log prefix give the same hash. (History is left out: its
// compacted part is dropped lazily, at different times on different members.)
Result<uint32_t> HashState(storage::Engine* engine);

// Creates the data directory `data_dir` (which must not exist, or be empty) holding the
// snapshot's state and an empty log that continues after its applied index. The snapshot is
// verified first; the directory is built beside it and renamed into place, so a failure
// leaves no data directory behind.
Result<SnapshotInfo> RestoreSnapshot(const std::string& snapshot_path, const std::string& data_dir);

}  // namespace cairn::node
