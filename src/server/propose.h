// The two shapes of a unary call on the event store's services: propose a command and answer
// with its result, or read after a read index (linearizable) and answer.
#pragma once

#include <grpcpp/grpcpp.h>

#include <utility>

#include "src/node/node.h"
#include "src/server/grpc_status.h"
#include "src/server/member_identity.h"

namespace cairn::server {

// Finishes `reactor` with `validation` when it failed; else proposes `command` and, when it
// applied, moves take(result) into *response, fills the header and finishes.
template <typename Response, typename Take>
void ProposeAndFinish(node::Node* node, const MemberIdentity* identity,
                      grpc::ServerUnaryReactor* reactor, const Status& validation,
                      command::Command command, Response* response, Take take) {
  if (!validation.ok()) {
    reactor->Finish(ToGrpcStatus(validation));
    return;
  }
  node->Propose(std::move(command), [identity, reactor, response, take](
                                        const Status& status, command::CommandResult&& result) {
    if (status.ok()) {
      *response = std::move(take(result));
      identity->FillHeader(response->mutable_header());
    }
    reactor->Finish(ToGrpcStatus(status));
  });
}

// Runs `read` after a read index, fills the header, and finishes `reactor`.
template <typename Response, typename Read>
void ReadAndFinish(node::Node* node, const MemberIdentity* identity,
                   grpc::ServerUnaryReactor* reactor, Response* response, Read read) {
  node->ReadIndex([node, identity, reactor, response, read](const Status& ready) {
    Status status = ready;
    if (status.ok()) status = read();
    if (status.ok()) {
      response->mutable_header()->set_revision(node->kv()->CurrentRevision());
      identity->FillHeader(response->mutable_header());
    }
    reactor->Finish(ToGrpcStatus(status));
  });
}

}  // namespace cairn::server
