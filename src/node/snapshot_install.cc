#include "src/node/snapshot_install.h"

#include "src/base/check.h"
#include "src/node/raft_log_storage.h"

namespace cairn::node {
namespace {

std::string RaftDir(const std::string& data_dir) { return data_dir + "/raft"; }

Status DeleteIfExists(env::FileSystem* fs, const std::string& path) {
  if (!fs->FileExists(path)) return Status::Ok();
  return fs->DeleteFile(path);
}

}  // namespace

std::string SnapshotDir(const std::string& data_dir) { return data_dir + "/snapshots"; }

std::string IncomingSnapshotPath(const std::string& data_dir) {
  return SnapshotDir(data_dir) + "/incoming.snap";
}

std::string OutgoingSnapshotPath(const std::string& data_dir, uint64_t index) {
  return SnapshotDir(data_dir) + "/outgoing-" + std::to_string(index) + ".snap";
}

std::string OutgoingSnapshotTemporaryPath(const std::string& data_dir) {
  return SnapshotDir(data_dir) + "/outgoing.tmp";
}

Status StageSnapshotInstall(env::FileSystem* fs, const std::string& data_dir,
                            const raft::Snapshot& snapshot) {
  CAIRN_CHECK(!snapshot.IsEmpty());
  const std::string dir = SnapshotDir(data_dir);
  const std::string path = IncomingSnapshotPath(data_dir);
  const std::string temporary = path + ".tmp";
  CAIRN_RETURN_IF_ERROR(fs->CreateDirs(dir));
  if (!snapshot.file.empty()) {
    // The transport synced it as it staged it: only the name changes.
    CAIRN_CHECK(snapshot.data.empty());
    CAIRN_RETURN_IF_ERROR(fs->RenameFile(snapshot.file, path));
  } else {
    {
      CAIRN_ASSIGN_OR_RETURN(std::unique_ptr<env::WritableFile> file,
                             fs->NewWritableFile(temporary));
      CAIRN_RETURN_IF_ERROR(file->Append(snapshot.data));
      CAIRN_RETURN_IF_ERROR(file->Sync());
      CAIRN_RETURN_IF_ERROR(file->Close());
    }
    CAIRN_RETURN_IF_ERROR(fs->RenameFile(temporary, path));
  }
  CAIRN_RETURN_IF_ERROR(fs->SyncDir(dir));
  Result<SnapshotInfo> verified = VerifySnapshot(fs, path);
  Status bad = verified.ok() ? Status::Ok() : verified.status();
  if (bad.ok() && verified->applied_index != snapshot.metadata.index) {
    bad = Status::Corruption("the snapshot holds applied index " +
                             std::to_string(verified->applied_index) + ", the message says " +
                             std::to_string(snapshot.metadata.index));
  }
  if (!bad.ok()) {
    (void)fs->DeleteFile(path);
    return bad.WithContext("snapshot from the leader");
  }
  return WriteInstallMarkerFile(
      fs, RaftDir(data_dir),
      InstallMarker{.index = snapshot.metadata.index, .term = snapshot.metadata.term});
}

Result<SnapshotInfo> CompleteSnapshotInstall(storage::Engine* engine, env::FileSystem* fs,
                                             const std::string& data_dir,
                                             const InstallMarker& marker,
                                             const std::function<Status()>& reset_log,
                                             const std::function<Status(int step)>& after_step) {
  const std::string path = IncomingSnapshotPath(data_dir);
  CAIRN_ASSIGN_OR_RETURN(SnapshotInfo info, ReplaceEngineContents(engine, fs, path));
  if (info.applied_index != marker.index) {
    return Status::Corruption("staged snapshot " + path + " is at index " +
                              std::to_string(info.applied_index) + ", the install marker says " +
                              std::to_string(marker.index));
  }
  if (after_step) CAIRN_RETURN_IF_ERROR(after_step(3));
  CAIRN_RETURN_IF_ERROR(reset_log());
  if (after_step) CAIRN_RETURN_IF_ERROR(after_step(4));
  CAIRN_RETURN_IF_ERROR(RemoveInstallMarkerFile(fs, RaftDir(data_dir)));
  CAIRN_RETURN_IF_ERROR(DeleteIfExists(fs, path));
  return info;
}

Result<std::optional<InstallMarker>> FinishInterruptedSnapshotInstall(storage::Engine* engine,
                                                                      wal::Wal* wal,
                                                                      env::FileSystem* fs,
                                                                      const std::string& data_dir) {
  CAIRN_RETURN_IF_ERROR(fs->CreateDirs(RaftDir(data_dir)));
  CAIRN_ASSIGN_OR_RETURN(std::optional<InstallMarker> marker,
                         ReadInstallMarkerFile(fs, RaftDir(data_dir)));
  const std::string path = IncomingSnapshotPath(data_dir);
  if (!marker) {
    // Staged but never marked: the install did not commit; the old state stands.
    CAIRN_RETURN_IF_ERROR(DeleteIfExists(fs, path + ".tmp"));
    CAIRN_RETURN_IF_ERROR(DeleteIfExists(fs, path));
  } else {
    CAIRN_RETURN_IF_ERROR(CompleteSnapshotInstall(engine, fs, data_dir, *marker, [&] {
                            return RaftLogStorage::ResetWalToSnapshot(wal, marker->index,
                                                                      marker->term);
                          }).status());
  }
  // What is left belongs to transfers of the previous run: none can be resumed.
  const std::string dir = SnapshotDir(data_dir);
  if (fs->FileExists(dir)) {
    CAIRN_ASSIGN_OR_RETURN(std::vector<std::string> children, fs->GetChildren(dir));
    for (const std::string& child : children) {
      CAIRN_RETURN_IF_ERROR(fs->DeleteFile(dir + "/" + child));
    }
  }
  return marker;
}

}  // namespace cairn::node
