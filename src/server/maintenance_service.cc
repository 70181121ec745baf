#include "src/server/maintenance_service.h"

#include <fmt/format.h>

#include <filesystem>
#include <mutex>

#include "src/base/logging.h"
#include "src/env/posix_file_system.h"
#include "src/node/snapshot.h"
#include "src/server/grpc_status.h"

namespace cairn::server {
namespace {

// etcd's rpctypes.ErrGRPCBadLeaderTransferee.
constexpr std::string_view kErrBadLeaderTransferee = "etcdserver: bad leader transferee";

// etcd prints an alarm in Status.errors as the gogoproto text form of AlarmMember.
std::string AlarmText(const etcdserverpb::AlarmMember& alarm) {
  return fmt::format("memberID:{} alarm:{} ", alarm.memberid(),
                     etcdserverpb::AlarmType_Name(alarm.alarm()));
}

}  // namespace

// Streams one snapshot: the background worker writes it to a staging file, then each
// completed write sends the next chunk. Only one thread advances the stream at a time (the
// worker, then OnWriteDone); the mutex orders that with OnCancel.
class MaintenanceService::SnapshotReactor final
    : public grpc::ServerWriteReactor<etcdserverpb::SnapshotResponse> {
 public:
  SnapshotReactor(MaintenanceService* service, std::string path)
      : service_(service), path_(std::move(path)) {
    if (!service_->worker_->Submit([this] { Build(); })) {
      std::lock_guard lock(mutex_);
      built_ = true;
      finished_ = true;
      Finish(grpc::Status(grpc::UNAVAILABLE, "cairn: the server is busy or stopping"));
    }
  }

  void OnWriteDone(bool ok) override {
    {
      std::lock_guard lock(mutex_);
      writing_ = false;
    }
    if (!ok) {
      FinishOnce(grpc::Status(grpc::CANCELLED, "cairn: snapshot stream broken"));
      return;
    }
    SendNext();
  }

  void OnCancel() override {
    bool finish = false;
    {
      std::lock_guard lock(mutex_);
      cancelled_ = true;
      finish = built_ && !writing_;
    }
    if (finish) FinishOnce(grpc::Status(grpc::CANCELLED, "cairn: snapshot cancelled"));
  }

  void OnDone() override {
    file_.reset();
    (void)env::PosixFileSystem::Default()->DeleteFile(path_);
    delete this;
  }

 private:
  // On the background worker.
  void Build() {
    env::FileSystem* fs = env::PosixFileSystem::Default();
    auto info = node::WriteSnapshot(service_->node_->engine(), fs, path_,
                                    [this] { return cancelled_.load(); });
    grpc::Status failure;
    if (info.ok()) {
      total_bytes_ = info->size_bytes;
      auto file = fs->NewReadableFile(path_);
      if (file.ok()) {
        file_ = std::move(*file);
      } else {
        failure = ToGrpcStatus(file.status());
      }
      log::Get("server")->info("snapshot of applied index {} ({} bytes, {} records) streaming",
                               info->applied_index, info->size_bytes, info->records);
    } else {
      failure = ToGrpcStatus(info.status());
    }
    {
      std::lock_guard lock(mutex_);
      built_ = true;
      if (cancelled_) failure = grpc::Status(grpc::CANCELLED, "cairn: snapshot cancelled");
    }
    if (!failure.ok()) {
      FinishOnce(failure);
      return;
    }
    SendNext();
  }

  void SendNext() {
    if (sent_bytes_ == total_bytes_) {
      FinishOnce(grpc::Status::OK);
      return;
    }
    const size_t n = std::min<uint64_t>(kSnapshotChunkBytes, total_bytes_ - sent_bytes_);
    response_.Clear();
    cairn::Status read = file_->Read(sent_bytes_, n, response_.mutable_blob());
    if (read.ok() && response_.blob().size() != n) {
      read = cairn::Status::IoError("snapshot staging file shrank");
    }
    if (!read.ok()) {
      FinishOnce(ToGrpcStatus(read));
      return;
    }
    sent_bytes_ += n;
    response_.set_remaining_bytes(total_bytes_ - sent_bytes_);
    service_->FillHeader(response_.mutable_header());
    bool cancelled = false;
    {
      std::lock_guard lock(mutex_);
      if (finished_) return;
      cancelled = cancelled_;
      writing_ = !cancelled;
    }
    if (cancelled) {
      FinishOnce(grpc::Status(grpc::CANCELLED, "cairn: snapshot cancelled"));
      return;
    }
    StartWrite(&response_);
  }

  void FinishOnce(const grpc::Status& status) {
    {
      std::lock_guard lock(mutex_);
      if (finished_) return;
      finished_ = true;
    }
    Finish(status);
  }

  MaintenanceService* const service_;
  const std::string path_;
  std::unique_ptr<env::ReadableFile> file_;
  uint64_t total_bytes_ = 0;
  uint64_t sent_bytes_ = 0;
  etcdserverpb::SnapshotResponse response_;
  std::mutex mutex_;
  std::atomic<bool> cancelled_{false};  // also read by WriteSnapshot without the mutex
  bool built_ = false;                  // GUARDED_BY(mutex_)
  bool writing_ = false;                // GUARDED_BY(mutex_)
  bool finished_ = false;               // GUARDED_BY(mutex_)
};

MaintenanceService::MaintenanceService(node::Node* node, const MemberIdentity* identity,
                                       const SpaceQuota* quota, BackgroundWorker* worker,
                                       std::string snapshot_dir)
    : node_(node),
      identity_(identity),
      quota_(quota),
      worker_(worker),
      snapshot_dir_(std::move(snapshot_dir)) {
  std::error_code error;
  std::filesystem::remove_all(snapshot_dir_, error);  // streams cut short by a crash
}

void MaintenanceService::FillHeader(etcdserverpb::ResponseHeader* header) const {
  header->set_revision(node_->kv()->CurrentRevision());
  identity_->FillHeader(header);
}

grpc::ServerUnaryReactor* MaintenanceService::Alarm(grpc::CallbackServerContext* context,
                                                    const etcdserverpb::AlarmRequest* request,
                                                    etcdserverpb::AlarmResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (request->action() == etcdserverpb::AlarmRequest::GET) {
    for (etcdserverpb::AlarmMember& alarm : node_->alarms()->List()) {
      if (request->alarm() != etcdserverpb::NONE && alarm.alarm() != request->alarm()) continue;
      *response->add_alarms() = std::move(alarm);
    }
    FillHeader(response->mutable_header());
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
  command::Command command;
  *command.mutable_alarm() = *request;
  node_->Propose(std::move(command), [this, reactor, response](const cairn::Status& status,
                                                               command::CommandResult&& result) {
    if (status.ok()) {
      *response = std::move(*result.mutable_alarm());
      FillHeader(response->mutable_header());
    }
    reactor->Finish(ToGrpcStatus(status));
  });
  return reactor;
}

grpc::ServerUnaryReactor* MaintenanceService::Status(grpc::CallbackServerContext* context,
                                                     const etcdserverpb::StatusRequest* request,
                                                     etcdserverpb::StatusResponse* response) {
  FillHeader(response->mutable_header());
  response->set_version(kEtcdVersion);
  const auto size_bytes = static_cast<int64_t>(node_->engine()->ApproximateSizeBytes());
  response->set_dbsize(size_bytes);
  response->set_dbsizeinuse(size_bytes);
  const node::RaftStatus raft = node_->GetRaftStatus();
  response->set_leader(raft.leader_id);
  response->set_raftindex(raft.last_index);
  response->set_raftappliedindex(raft.applied_index);
  response->set_raftterm(raft.term);
  response->set_islearner(raft.is_learner);
  response->set_dbsizequota(quota_->quota_bytes());
  for (const etcdserverpb::AlarmMember& alarm : node_->alarms()->List()) {
    response->add_errors(AlarmText(alarm));
  }
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* MaintenanceService::Hash(grpc::CallbackServerContext* context,
                                                   const etcdserverpb::HashRequest* request,
                                                   etcdserverpb::HashResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  // Read the revision first: the hash covers at least the state at that revision.
  FillHeader(response->mutable_header());
  auto hash = node::HashState(node_->engine());
  if (hash.ok()) response->set_hash(*hash);
  reactor->Finish(ToGrpcStatus(hash.status()));
  return reactor;
}

grpc::ServerUnaryReactor* MaintenanceService::HashKV(grpc::CallbackServerContext* context,
                                                     const etcdserverpb::HashKVRequest* request,
                                                     etcdserverpb::HashKVResponse* response) {
  cairn::Status status = node_->kv()->HashKV(request->revision(), response);
  if (status.ok()) identity_->FillHeader(response->mutable_header());
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

grpc::ServerUnaryReactor* MaintenanceService::Defragment(
    grpc::CallbackServerContext* context, const etcdserverpb::DefragmentRequest* request,
    etcdserverpb::DefragmentResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  const bool submitted = worker_->Submit([this, reactor, response] {
    storage::Engine* engine = node_->engine();
    cairn::Status status = engine->Flush();
    for (int family = 0; status.ok() && family < storage::kFamilyCount; ++family) {
      status = engine->CompactRange(static_cast<storage::Family>(family), "", "");
    }
    if (status.ok()) FillHeader(response->mutable_header());
    reactor->Finish(ToGrpcStatus(status));
  });
  if (!submitted) {
    reactor->Finish(grpc::Status(grpc::UNAVAILABLE, "cairn: the server is busy or stopping"));
  }
  return reactor;
}

grpc::ServerWriteReactor<etcdserverpb::SnapshotResponse>* MaintenanceService::Snapshot(
    grpc::CallbackServerContext* context, const etcdserverpb::SnapshotRequest* request) {
  std::error_code error;
  std::filesystem::create_directories(snapshot_dir_, error);
  const std::string path =
      fmt::format("{}/snapshot-{}.cairnsnap", snapshot_dir_, snapshots_started_.fetch_add(1) + 1);
  return new SnapshotReactor(this, path);
}

grpc::ServerUnaryReactor* MaintenanceService::MoveLeader(
    grpc::CallbackServerContext* context, const etcdserverpb::MoveLeaderRequest* request,
    etcdserverpb::MoveLeaderResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  command::Member target;
  if (!node_->membership()->Get(request->targetid(), &target) || target.is_learner()) {
    reactor->Finish(grpc::Status(grpc::FAILED_PRECONDITION, std::string(kErrBadLeaderTransferee)));
    return reactor;
  }
  if (node_->LeaderId() == request->targetid()) {
    FillHeader(response->mutable_header());
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
  if (!node_->IsLeader()) {
    reactor->Finish(grpc::Status(grpc::FAILED_PRECONDITION, "etcdserver: not leader"));
    return reactor;
  }
  node_->TransferLeadership(request->targetid(),
                            [this, reactor, response](const cairn::Status& status) {
                              if (status.ok()) FillHeader(response->mutable_header());
                              reactor->Finish(ToGrpcStatus(status));
                            });
  return reactor;
}

}  // namespace cairn::server
