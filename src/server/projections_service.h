// ProjectionsService: user projections and upcasters over gRPC (cairn.events.v1.Projections,
// proto/cairn/projections.proto), on gRPC's callback API.
//
//   Create, Update, SetUpcaster ─▶ validate + compile the Lua (INVALID_ARGUMENT with Lua's
//       message) ─▶ Node::Propose(projections command) ─▶ apply: ProjectionDefinitions
//   Delete, Stop, Start, Reset, DeleteUpcaster ─▶ validate ─▶ Node::Propose
//   Get, List, GetState, ListUpcasters ─▶ ReadIndex ─▶ definitions + this member's runner
//       records
//
// The service owns this member's ProjectionRunner (started in the constructor): projections
// run in the background on every member, over the member's own applied log.
//
// Thread-safety: handlers run on gRPC's callback threads. Stop() stops the runner and must
// be called before the Node closes; the Node must outlive this service.
#pragma once

#include <memory>

#include "cairn/projections.grpc.pb.h"
#include "src/events/projection/projection_runner.h"
#include "src/node/node.h"
#include "src/server/member_identity.h"

namespace cairn::server {

class ProjectionsService final : public events::v1::Projections::CallbackService {
 public:
  ProjectionsService(node::Node* node, const MemberIdentity* identity);
  ~ProjectionsService() override;

  void Stop();

  grpc::ServerUnaryReactor* Create(grpc::CallbackServerContext* context,
                                   const events::v1::CreateProjectionRequest* request,
                                   events::v1::ProjectionsChangeResponse* response) override;
  grpc::ServerUnaryReactor* Update(grpc::CallbackServerContext* context,
                                   const events::v1::UpdateProjectionRequest* request,
                                   events::v1::ProjectionsChangeResponse* response) override;
  grpc::ServerUnaryReactor* Delete(grpc::CallbackServerContext* context,
                                   const events::v1::DeleteProjectionRequest* request,
                                   events::v1::ProjectionsChangeResponse* response) override;
  grpc::ServerUnaryReactor* Stop(grpc::CallbackServerContext* context,
                                 const events::v1::StopProjectionRequest* request,
                                 events::v1::ProjectionsChangeResponse* response) override;
  grpc::ServerUnaryReactor* Start(grpc::CallbackServerContext* context,
                                  const events::v1::StartProjectionRequest* request,
                                  events::v1::ProjectionsChangeResponse* response) override;
  grpc::ServerUnaryReactor* Reset(grpc::CallbackServerContext* context,
                                  const events::v1::ResetProjectionRequest* request,
                                  events::v1::ProjectionsChangeResponse* response) override;
  grpc::ServerUnaryReactor* Get(grpc::CallbackServerContext* context,
                                const events::v1::GetProjectionRequest* request,
                                events::v1::GetProjectionResponse* response) override;
  grpc::ServerUnaryReactor* List(grpc::CallbackServerContext* context,
                                 const events::v1::ListProjectionsRequest* request,
                                 events::v1::ListProjectionsResponse* response) override;
  grpc::ServerUnaryReactor* GetState(grpc::CallbackServerContext* context,
                                     const events::v1::GetProjectionStateRequest* request,
                                     events::v1::GetProjectionStateResponse* response) override;
  grpc::ServerUnaryReactor* SetUpcaster(grpc::CallbackServerContext* context,
                                        const events::v1::SetUpcasterRequest* request,
                                        events::v1::ProjectionsChangeResponse* response) override;
  grpc::ServerUnaryReactor* DeleteUpcaster(
      grpc::CallbackServerContext* context, const events::v1::DeleteUpcasterRequest* request,
      events::v1::ProjectionsChangeResponse* response) override;
  grpc::ServerUnaryReactor* ListUpcasters(grpc::CallbackServerContext* context,
                                          const events::v1::ListUpcastersRequest* request,
                                          events::v1::ListUpcastersResponse* response) override;

 private:
  // Finishes with `validation` when it failed; else proposes `command` and finishes with the
  // outcome of its apply.
  grpc::ServerUnaryReactor* ProposeChange(grpc::CallbackServerContext* context,
                                          const Status& validation,
                                          events::v1::ProjectionsCommand command,
                                          events::v1::ProjectionsChangeResponse* response);
  // Runs `read` after a read index, fills the header, and finishes.
  template <typename Response, typename Read>
  grpc::ServerUnaryReactor* ReadAndFinish(grpc::CallbackServerContext* context, Response* response,
                                          Read read);

  node::Node* const node_;
  const MemberIdentity* const identity_;
  std::shared_ptr<events::projection::ProjectionRunner> runner_;
};

}  // namespace cairn::server
