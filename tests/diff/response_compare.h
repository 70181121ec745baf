// How the differential test compares etcd's and cairnd's answers: gRPC code and message,
// then every protobuf field (MessageDifferencer), after normalizing only what legitimately
// differs between two independent servers:
//   - ResponseHeader.cluster_id, member_id, raft_term, wherever a header appears (nested txn
//     responses and watch responses included): identities and terms are per cluster;
//   - LeaseTimeToLiveResponse.TTL within kLeaseTtlToleranceSeconds: it is the remaining
//     time, and the two servers are asked a few milliseconds apart, rounding differently;
//   - the order of LeaseTimeToLiveResponse.keys: etcd's comes from a Go map (random).
#pragma once

#include <google/protobuf/message.h>
#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

namespace cairn::diff {

inline constexpr int64_t kLeaseTtlToleranceSeconds = 2;

// One server's answer to one request.
struct Reply {
  grpc::StatusCode code = grpc::StatusCode::OK;
  std::string message;
  std::unique_ptr<google::protobuf::Message> body;  // set when code is OK
};

// Clears cluster_id, member_id and raft_term of every etcdserverpb.ResponseHeader in message.
void NormalizeHeaders(google::protobuf::Message* message);

// "" when equal after normalization; otherwise a readable report of what differs.
// Normalizes both bodies in place.
std::string DiffReplies(Reply* etcd, Reply* cairnd);

// "" when equal after header normalization (both normalized in place); else a report.
std::string DiffMessages(google::protobuf::Message* etcd, google::protobuf::Message* cairnd);

// A printable one-line form, cut at chars_max.
std::string Short(const google::protobuf::Message& message, size_t chars_max = 1500);
std::string Describe(const Reply& reply);

}  // namespace cairn::diff
