#include "tests/diff/response_compare.h"

#include <google/protobuf/util/message_differencer.h>

#include <algorithm>
#include <cstdlib>

#include "etcdserverpb/rpc.pb.h"

namespace cairn::diff {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

void NormalizeHeaders(Message* message) {
  if (auto* header = dynamic_cast<etcdserverpb::ResponseHeader*>(message)) {
    header->clear_cluster_id();
    header->clear_member_id();
    header->clear_raft_term();
    return;
  }
  const Reflection* reflection = message->GetReflection();
  std::vector<const FieldDescriptor*> fields;
  reflection->ListFields(*message, &fields);
  for (const FieldDescriptor* field : fields) {
    if (field->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE) continue;
    if (field->is_repeated()) {
      for (int i = 0; i < reflection->FieldSize(*message, field); ++i) {
        NormalizeHeaders(reflection->MutableRepeatedMessage(message, field, i));
      }
    } else {
      NormalizeHeaders(reflection->MutableMessage(message, field));
    }
  }
}

namespace {

// Remaining lease time is read at two moments on two servers; within the tolerance the
// cairnd value is taken as etcd's so that the field-by-field comparison stays exact for
// everything else. -1 (not found) and 0 must match exactly.
void ToleranceForRemainingTtl(const Message& etcd, Message* cairnd) {
  auto* e = dynamic_cast<const etcdserverpb::LeaseTimeToLiveResponse*>(&etcd);
  auto* c = dynamic_cast<etcdserverpb::LeaseTimeToLiveResponse*>(cairnd);
  if (e == nullptr || c == nullptr) return;
  if (e->ttl() > 0 && c->ttl() > 0 &&
      std::llabs(e->ttl() - c->ttl()) <= kLeaseTtlToleranceSeconds) {
    c->set_ttl(e->ttl());
  }
}

// etcd lists a lease's keys from a Go map (lessor's itemSet): the order is random per call
// (checked against etcd 3.4.23: the same lease's keys come back in varying orders). Sorted
// on both sides, the comparison still checks which keys are attached.
void SortLeaseKeys(Message* message) {
  auto* response = dynamic_cast<etcdserverpb::LeaseTimeToLiveResponse*>(message);
  if (response == nullptr) return;
  std::sort(response->mutable_keys()->begin(), response->mutable_keys()->end());
}

}  // namespace

std::string DiffMessages(Message* etcd, Message* cairnd) {
  NormalizeHeaders(etcd);
  NormalizeHeaders(cairnd);
  ToleranceForRemainingTtl(*etcd, cairnd);
  SortLeaseKeys(etcd);
  SortLeaseKeys(cairnd);
  google::protobuf::util::MessageDifferencer differencer;
  std::string report;
  differencer.ReportDifferencesToString(&report);
  if (differencer.Compare(*etcd, *cairnd)) return "";
  return report.empty() ? "messages differ" : report;
}

std::string DiffReplies(Reply* etcd, Reply* cairnd) {
  std::string report;
  if (etcd->code != cairnd->code) {
    report += "status code: etcd " + std::to_string(etcd->code) + ", cairnd " +
              std::to_string(cairnd->code) + "\n";
  }
  if (etcd->message != cairnd->message) {
    report +=
        "status message: etcd \"" + etcd->message + "\", cairnd \"" + cairnd->message + "\"\n";
  }
  if (!report.empty()) return report;
  if (etcd->body && cairnd->body) return DiffMessages(etcd->body.get(), cairnd->body.get());
  return "";
}

std::string Short(const Message& message, size_t chars_max) {
  std::string text = message.ShortDebugString();
  if (text.size() > chars_max)
    text = text.substr(0, chars_max) + "...(" + std::to_string(text.size()) + " chars)";
  return text;
}

std::string Describe(const Reply& reply) {
  if (reply.code != grpc::StatusCode::OK) {
    return "status " + std::to_string(reply.code) + " \"" + reply.message + "\"";
  }
  return reply.body ? "OK " + Short(*reply.body) : "OK";
}

}  // namespace cairn::diff
