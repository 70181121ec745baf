#include "src/server/projections_service.h"

#include "src/events/projection/projection_engine.h"
#include "src/events/projection/upcasters.h"
#include "src/server/grpc_status.h"

namespace cairn::server {
namespace {

namespace v1 = events::v1;
namespace projection = events::projection;

// Compiling is a check of the user's input: whatever stops the source from loading (a syntax
// error, a runaway loop at the top level) is INVALID_ARGUMENT.
Status CompileProjection(const std::string& name, const std::string& source) {
  auto engine = projection::ProjectionEngine::Compile(name, source);
  if (engine.ok()) return Status::Ok();
  if (engine.status().code() == StatusCode::kInvalidArgument) return engine.status();
  return Status::InvalidArgument(engine.status().message());
}

Status NotFound(const std::string& name) {
  return Status::NotFound("projections: projection '" + name + "' not found");
}

}  // namespace

ProjectionsService::ProjectionsService(node::Node* node, const MemberIdentity* identity)
    : node_(node),
      identity_(identity),
      runner_(std::make_shared<projection::ProjectionRunner>(node->engine(), node->events(),
                                                             node->projections())) {
  // A scavenge waits for this member's projections to fold what it removes. The hook keeps
  // the runner alive as long as the event state may call it (it works when the thread is
  // stopped too).
  node->events()->SetBeforeScavenge([runner = runner_] { return runner->CatchUp(); });
  runner_->Start();
}

ProjectionsService::~ProjectionsService() { Stop(); }

void ProjectionsService::Stop() { runner_->Stop(); }

grpc::ServerUnaryReactor* ProjectionsService::ProposeChange(
    grpc::CallbackServerContext* context, const Status& validation, v1::ProjectionsCommand change,
    v1::ProjectionsChangeResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  Status status = validation;
  if (status.ok()) status = projection::ValidateProjectionsCommand(change);
  if (!status.ok()) {
    reactor->Finish(ToGrpcStatus(status));
    return reactor;
  }
  command::Command command;
  *command.mutable_projections() = std::move(change);
  node_->Propose(std::move(command),
                 [this, reactor, response](const Status& applied, command::CommandResult&&) {
                   if (applied.ok()) {
                     response->mutable_header()->set_revision(node_->kv()->CurrentRevision());
                     identity_->FillHeader(response->mutable_header());
                   }
                   reactor->Finish(ToGrpcStatus(applied));
                 });
  return reactor;
}

template <typename Response, typename Read>
grpc::ServerUnaryReactor* ProjectionsService::ReadAndFinish(grpc::CallbackServerContext* context,
                                                            Response* response, Read read) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  node_->ReadIndex([this, reactor, response, read](const Status& ready) {
    Status status = ready;
    if (status.ok()) status = read();
    if (status.ok()) {
      response->mutable_header()->set_revision(node_->kv()->CurrentRevision());
      identity_->FillHeader(response->mutable_header());
    }
    reactor->Finish(ToGrpcStatus(status));
  });
  return reactor;
}

grpc::ServerUnaryReactor* ProjectionsService::Create(grpc::CallbackServerContext* context,
                                                     const v1::CreateProjectionRequest* request,
                                                     v1::ProjectionsChangeResponse* response) {
  v1::ProjectionsCommand command;
  *command.mutable_create() = *request;
  Status valid = projection::ValidateProjectionsCommand(command);
  if (valid.ok()) valid = CompileProjection(request->name(), request->source());
  return ProposeChange(context, valid, std::move(command), response);
}

grpc::ServerUnaryReactor* ProjectionsService::Update(grpc::CallbackServerContext* context,
                                                     const v1::UpdateProjectionRequest* request,
                                                     v1::ProjectionsChangeResponse* response) {
  v1::ProjectionsCommand command;
  *command.mutable_update() = *request;
  Status valid = projection::ValidateProjectionsCommand(command);
  if (valid.ok()) valid = CompileProjection(request->name(), request->source());
  return ProposeChange(context, valid, std::move(command), response);
}

grpc::ServerUnaryReactor* ProjectionsService::Delete(grpc::CallbackServerContext* context,
                                                     const v1::DeleteProjectionRequest* request,
                                                     v1::ProjectionsChangeResponse* response) {
  v1::ProjectionsCommand command;
  *command.mutable_delete_() = *request;
  return ProposeChange(context, Status::Ok(), std::move(command), response);
}

grpc::ServerUnaryReactor* ProjectionsService::Stop(grpc::CallbackServerContext* context,
                                                   const v1::StopProjectionRequest* request,
                                                   v1::ProjectionsChangeResponse* response) {
  v1::ProjectionsCommand command;
  *command.mutable_stop() = *request;
  return ProposeChange(context, Status::Ok(), std::move(command), response);
}

grpc::ServerUnaryReactor* ProjectionsService::Start(grpc::CallbackServerContext* context,
                                                    const v1::StartProjectionRequest* request,
                                                    v1::ProjectionsChangeResponse* response) {
  v1::ProjectionsCommand command;
  *command.mutable_start() = *request;
  return ProposeChange(context, Status::Ok(), std::move(command), response);
}

grpc::ServerUnaryReactor* ProjectionsService::Reset(grpc::CallbackServerContext* context,
                                                    const v1::ResetProjectionRequest* request,
                                                    v1::ProjectionsChangeResponse* response) {
  v1::ProjectionsCommand command;
  *command.mutable_reset() = *request;
  return ProposeChange(context, Status::Ok(), std::move(command), response);
}

grpc::ServerUnaryReactor* ProjectionsService::SetUpcaster(grpc::CallbackServerContext* context,
                                                          const v1::SetUpcasterRequest* request,
                                                          v1::ProjectionsChangeResponse* response) {
  v1::ProjectionsCommand command;
  *command.mutable_set_upcaster() = *request;
  Status valid = projection::ValidateProjectionsCommand(command);
  if (valid.ok()) {
    valid = projection::CompileUpcaster(request->event_type(), request->from_schema_version(),
                                        request->source());
  }
  return ProposeChange(context, valid, std::move(command), response);
}

grpc::ServerUnaryReactor* ProjectionsService::DeleteUpcaster(
    grpc::CallbackServerContext* context, const v1::DeleteUpcasterRequest* request,
    v1::ProjectionsChangeResponse* response) {
  v1::ProjectionsCommand command;
  *command.mutable_delete_upcaster() = *request;
  return ProposeChange(context, Status::Ok(), std::move(command), response);
}

grpc::ServerUnaryReactor* ProjectionsService::Get(grpc::CallbackServerContext* context,
                                                  const v1::GetProjectionRequest* request,
                                                  v1::GetProjectionResponse* response) {
  return ReadAndFinish(context, response, [this, request, response]() -> Status {
    CAIRN_RETURN_IF_ERROR(projection::ValidateProjectionName(request->name()));
    CAIRN_ASSIGN_OR_RETURN(std::optional<v1::ProjectionDefinition> definition,
                           node_->projections()->GetProjection(request->name()));
    if (!definition.has_value()) return NotFound(request->name());
    CAIRN_ASSIGN_OR_RETURN(*response->mutable_projection(),
                           projection::DescribeProjection(node_->engine(), *definition));
    return Status::Ok();
  });
}

grpc::ServerUnaryReactor* ProjectionsService::List(grpc::CallbackServerContext* context,
                                                   const v1::ListProjectionsRequest* request,
                                                   v1::ListProjectionsResponse* response) {
  return ReadAndFinish(context, response, [this, response]() -> Status {
    CAIRN_ASSIGN_OR_RETURN(std::vector<v1::ProjectionDefinition> definitions,
                           node_->projections()->ListProjections());
    for (const auto& definition : definitions) {
      CAIRN_ASSIGN_OR_RETURN(*response->add_projections(),
                             projection::DescribeProjection(node_->engine(), definition));
    }
    return Status::Ok();
  });
}

grpc::ServerUnaryReactor* ProjectionsService::GetState(grpc::CallbackServerContext* context,
                                                       const v1::GetProjectionStateRequest* request,
                                                       v1::GetProjectionStateResponse* response) {
  return ReadAndFinish(context, response, [this, request, response]() -> Status {
    CAIRN_RETURN_IF_ERROR(projection::ValidateProjectionName(request->name()));
    CAIRN_ASSIGN_OR_RETURN(std::optional<v1::ProjectionDefinition> definition,
                           node_->projections()->GetProjection(request->name()));
    if (!definition.has_value()) return NotFound(request->name());
    CAIRN_ASSIGN_OR_RETURN(std::optional<std::string> state,
                           projection::ReadProjectionState(node_->engine(), *definition,
                                                           request->partition(), response));
    response->set_found(state.has_value());
    if (state.has_value()) response->set_state(std::move(*state));
    return Status::Ok();
  });
}

grpc::ServerUnaryReactor* ProjectionsService::ListUpcasters(grpc::CallbackServerContext* context,
                                                            const v1::ListUpcastersRequest* request,
                                                            v1::ListUpcastersResponse* response) {
  return ReadAndFinish(context, response, [this, response]() -> Status {
    CAIRN_ASSIGN_OR_RETURN(std::vector<v1::Upcaster> upcasters,
                           node_->projections()->ListUpcasters());
    for (auto& upcaster : upcasters) *response->add_upcasters() = std::move(upcaster);
    return Status::Ok();
  });
}

}  // namespace cairn::server
