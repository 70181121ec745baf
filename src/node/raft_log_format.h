// The node's Raft persistence formats (docs/formats/raft.md):
//
// 1. A Raft entry inside a WAL record. The WAL index is the Raft index, so the payload holds
//    the rest of the entry:
//
//      payload := version:u8 (=1) | type:u8 (raft::EntryType) | term:varint64 | data
//
//    An empty `data` with type kNormal is the empty entry a new leader appends.
//
// 2. The hard state file, <data_dir>/raft/hard_state: the Raft term and vote that must be
//    durable before a vote or append acknowledgement is sent, and the last commit index that
//    was known when it was written (the commit index is volatile state in Raft; on restart the
//    node raises it to the applied index it finds in the engine):
//
//      file := magic "CAIRNHS1" | version:u32 (=1) | term:u64 | vote:u64 | commit:u64 |
//              crc32c:u32 over everything before it          (fixed-width little endian)
//
//    It is replaced atomically: written to hard_state.tmp, synced, renamed, directory synced.
//
// 3. The snapshot install marker, <data_dir>/raft/snapshot_install: present exactly while a
//    follower installs a snapshot the leader sent (node.h, "Snapshot install"). It names the
//    snapshot's last index and term; the snapshot file itself is <data_dir>/snapshots/
//    incoming.snap, durable before the marker is written.
//
//      file := magic "CAIRNSI1" | version:u32 (=1) | index:u64 | term:u64 |
//              crc32c:u32 over everything before it          (fixed-width little endian)
//
//    Written like the hard state (temporary file, sync, rename, directory sync).
//
// Thread-safety: pure functions; WriteHardStateFile must not run concurrently with itself on
// the same directory.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "src/base/result.h"
#include "src/env/file_system.h"
#include "src/raft/types.h"

namespace cairn::node {

inline constexpr uint8_t kRaftEntryFormatVersion = 1;
inline constexpr std::string_view kHardStateMagic = "CAIRNHS1";
inline constexpr uint32_t kHardStateFormatVersion = 1;
inline constexpr size_t kHardStateFileBytes = 8 + 4 + 8 + 8 + 8 + 4;
inline constexpr std::string_view kHardStateFileName = "hard_state";
inline constexpr std::string_view kInstallMarkerMagic = "CAIRNSI1";
inline constexpr uint32_t kInstallMarkerFormatVersion = 1;
inline constexpr size_t kInstallMarkerFileBytes = 8 + 4 + 8 + 8 + 4;
inline constexpr std::string_view kInstallMarkerFileName = "snapshot_install";

// The WAL payload of `entry` (its index is the WAL index).
std::string EncodeRaftEntry(const raft::Entry& entry);
// Decodes a WAL payload into *entry (index set to `index`). Corruption on a malformed payload.
Status DecodeRaftEntry(uint64_t index, std::string_view payload, raft::Entry* entry);
// The term of a WAL payload without copying its data.
Result<uint64_t> DecodeRaftEntryTerm(uint64_t index, std::string_view payload);

std::string EncodeHardState(const raft::HardState& hard_state);
Result<raft::HardState> DecodeHardState(std::string_view bytes);

// Reads <dir>/hard_state; an empty HardState when the file does not exist (a fresh member).
// Corruption naming the file when it exists but does not check out.
Result<raft::HardState> ReadHardStateFile(env::FileSystem* fs, const std::string& dir);
// Durably replaces <dir>/hard_state (see above). REQUIRES: dir exists.
Status WriteHardStateFile(env::FileSystem* fs, const std::string& dir,
                          const raft::HardState& hard_state);

// The snapshot a member is installing (see 3. above).
struct InstallMarker {
  uint64_t index = 0;
  uint64_t term = 0;
};
std::string EncodeInstallMarker(const InstallMarker& marker);
Result<InstallMarker> DecodeInstallMarker(std::string_view bytes);
// Reads <dir>/snapshot_install: nullopt when absent; Corruption naming the file when it does
// not check out.
Result<std::optional<InstallMarker>> ReadInstallMarkerFile(env::FileSystem* fs,
                                                           const std::string& dir);
// Durably writes / removes <dir>/snapshot_install. REQUIRES: dir exists.
Status WriteInstallMarkerFile(env::FileSystem* fs, const std::string& dir,
                              const InstallMarker& marker);
Status RemoveInstallMarkerFile(env::FileSystem* fs, const std::string& dir);

}  // namespace cairn::node
