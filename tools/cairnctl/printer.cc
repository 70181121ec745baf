#include "tools/cairnctl/printer.h"

#include <cstdio>

#include "tools/cairnctl/go_format.h"
#include "tools/cairnctl/go_json.h"

namespace cairnctl {
namespace {

void PrintLine(const std::string& line) {
  std::fwrite(line.data(), 1, line.size(), stdout);
  std::fputc('\n', stdout);
}

// clientv3's lease responses embed *ResponseHeader, so its fields sit at the top level.
JsonObject FlattenedHeader(const etcdserverpb::ResponseHeader* header) {
  JsonObject object;
  if (header != nullptr) object.AddMessageFields(*header);
  return object;
}

const char* EventTypeName(mvccpb::Event::EventType type) {
  return type == mvccpb::Event::DELETE ? "DELETE" : "PUT";
}

}  // namespace

std::string Printer::Bytes(const std::string& bytes) const {
  if (!hex_) return bytes;
  // etcdctl's addHexPrefix: "\x" before every byte.
  static const char kDigits[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out += "\\x";
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 15]);
  }
  return out;
}

void Printer::PrintKv(const mvccpb::KeyValue& kv) const {
  if (!value_only_) PrintLine(Bytes(kv.key()));
  PrintLine(Bytes(kv.value()));
}

void Printer::Put(const etcdserverpb::PutResponse& response) const {
  if (json()) return PrintLine(ProtoToGoJson(response));
  PrintLine("OK");
  if (response.has_prev_kv()) PrintKv(response.prev_kv());
}

void Printer::Get(const etcdserverpb::RangeResponse& response) const {
  if (json()) return PrintLine(ProtoToGoJson(response));
  if (count_only_) return PrintLine(std::to_string(response.count()));
  for (const auto& kv : response.kvs()) PrintKv(kv);
}

void Printer::Delete(const etcdserverpb::DeleteRangeResponse& response) const {
  if (json()) return PrintLine(ProtoToGoJson(response));
  PrintLine(std::to_string(response.deleted()));
  for (const auto& kv : response.prev_kvs()) PrintKv(kv);
}

void Printer::Txn(const etcdserverpb::TxnResponse& response) const {
  if (json()) return PrintLine(ProtoToGoJson(response));
  PrintLine(response.succeeded() ? "SUCCESS" : "FAILURE");
  for (const auto& op : response.responses()) {
    PrintLine("");
    if (op.has_response_put()) {
      Put(op.response_put());
    } else if (op.has_response_range()) {
      Get(op.response_range());
    } else if (op.has_response_delete_range()) {
      Delete(op.response_delete_range());
    } else if (op.has_response_txn()) {
      Txn(op.response_txn());
    }
  }
}

void Printer::Watch(const etcdserverpb::WatchResponse& response) const {
  if (json()) {
    // clientv3.WatchResponse: Go field names, no omitempty, Header by value.
    JsonObject object;
    object.Add("Header", ProtoToGoJson(response.header()));
    std::string events = "[";
    for (int i = 0; i < response.events_size(); ++i) {
      if (i > 0) events += ",";
      events += ProtoToGoJson(response.events(i));
    }
    object.Add("Events", events + "]");
    object.Add("CompactRevision", std::to_string(response.compact_revision()));
    object.Add("Canceled", response.canceled() ? "true" : "false");
    object.Add("Created", response.created() ? "true" : "false");
    return PrintLine(object.Finish());
  }
  for (const auto& event : response.events()) {
    PrintLine(EventTypeName(event.type()));
    if (event.has_prev_kv()) PrintKv(event.prev_kv());
    PrintKv(event.kv());
  }
}

void Printer::LeaseGrant(const etcdserverpb::LeaseGrantResponse& response) const {
  if (json()) {
    JsonObject object = FlattenedHeader(response.has_header() ? &response.header() : nullptr);
    object.Add("ID", std::to_string(response.id()));
    object.Add("TTL", std::to_string(response.ttl()));
    object.Add("Error", JsonString(response.error()));
    return PrintLine(object.Finish());
  }
  PrintLine("lease " + Hex16(response.id()) + " granted with TTL(" +
            std::to_string(response.ttl()) + "s)");
}

void Printer::LeaseRevoke(int64_t id, const etcdserverpb::LeaseRevokeResponse& response) const {
  if (json()) return PrintLine(ProtoToGoJson(response));
  PrintLine("lease " + Hex16(id) + " revoked");
}

void Printer::LeaseTimeToLive(const etcdserverpb::LeaseTimeToLiveResponse& response,
                              bool keys) const {
  if (json()) {
    JsonObject object = FlattenedHeader(response.has_header() ? &response.header() : nullptr);
    object.Add("id", std::to_string(response.id()));
    object.Add("ttl", std::to_string(response.ttl()));
    object.Add("granted-ttl", std::to_string(response.grantedttl()));
    std::string key_list = "null";
    if (response.keys_size() > 0) {
      key_list = "[";
      for (int i = 0; i < response.keys_size(); ++i) {
        if (i > 0) key_list += ",";
        key_list += JsonBase64(response.keys(i));
      }
      key_list += "]";
    }
    object.Add("keys", key_list);
    return PrintLine(object.Finish());
  }
  if (response.grantedttl() == 0 && response.ttl() == -1) {
    return PrintLine("lease " + Hex16(response.id()) + " already expired");
  }
  std::string text = "lease " + Hex16(response.id()) + " granted with TTL(" +
                     std::to_string(response.grantedttl()) + "s), remaining(" +
                     std::to_string(response.ttl()) + "s)";
  if (keys) {
    text += ", attached keys([";
    for (int i = 0; i < response.keys_size(); ++i) {
      if (i > 0) text += " ";
      text += response.keys(i);
    }
    text += "])";
  }
  PrintLine(text);
}

void Printer::LeaseList(const etcdserverpb::LeaseLeasesResponse& response) const {
  if (json()) {
    JsonObject object = FlattenedHeader(response.has_header() ? &response.header() : nullptr);
    std::string leases = "[";
    for (int i = 0; i < response.leases_size(); ++i) {
      if (i > 0) leases += ",";
      leases += "{\"id\":" + std::to_string(response.leases(i).id()) + "}";
    }
    object.Add("leases", leases + "]");
    return PrintLine(object.Finish());
  }
  PrintLine("found " + std::to_string(response.leases_size()) + " leases");
  for (const auto& lease : response.leases()) PrintLine(Hex16(lease.id()));
}

void Printer::LeaseKeepAlive(const etcdserverpb::LeaseKeepAliveResponse& response) const {
  if (json()) {
    JsonObject object = FlattenedHeader(response.has_header() ? &response.header() : nullptr);
    object.Add("ID", std::to_string(response.id()));
    object.Add("TTL", std::to_string(response.ttl()));
    return PrintLine(object.Finish());
  }
  PrintLine("lease " + Hex16(response.id()) + " keepalived with TTL(" +
            std::to_string(response.ttl()) + ")");
}

void Printer::MemberList(const etcdserverpb::MemberListResponse& response) const {
  if (json()) return PrintLine(ProtoToGoJson(response));
  for (const auto& member : response.members()) {
    std::string peers, clients;
    for (int i = 0; i < member.peerurls_size(); ++i) {
      peers += (i > 0 ? "," : "") + member.peerurls(i);
    }
    for (int i = 0; i < member.clienturls_size(); ++i) {
      clients += (i > 0 ? "," : "") + member.clienturls(i);
    }
    PrintLine(HexNoPad(member.id()) + ", " + (member.name().empty() ? "unstarted" : "started") +
              ", " + member.name() + ", " + peers + ", " + clients + ", " +
              (member.islearner() ? "true" : "false"));
  }
}

void Printer::EndpointStatuses(const std::vector<EndpointStatus>& statuses) const {
  if (json()) {
    std::string list = "[";
    for (size_t i = 0; i < statuses.size(); ++i) {
      JsonObject object;
      object.Add("Endpoint", JsonString(statuses[i].endpoint));
      object.Add("Status", ProtoToGoJson(statuses[i].status));
      list += (i > 0 ? "," : "") + object.Finish();
    }
    return PrintLine(list + "]");
  }
  for (const auto& entry : statuses) {
    const etcdserverpb::StatusResponse& status = entry.status;
    std::string errors;
    for (int i = 0; i < status.errors_size(); ++i) errors += (i > 0 ? ", " : "") + status.errors(i);
    PrintLine(entry.endpoint + ", " + HexNoPad(status.header().member_id()) + ", " +
              status.version() + ", " + HumanizeBytes(static_cast<uint64_t>(status.dbsize())) +
              ", " + (status.leader() == status.header().member_id() ? "true" : "false") + ", " +
              (status.islearner() ? "true" : "false") + ", " + std::to_string(status.raftterm()) +
              ", " + std::to_string(status.raftindex()) + ", " +
              std::to_string(status.raftappliedindex()) + ", " + errors);
  }
}

void Printer::EndpointHealths(const std::vector<EndpointHealth>& healths) const {
  if (json()) {
    std::string list = "[";
    for (size_t i = 0; i < healths.size(); ++i) {
      JsonObject object;
      object.Add("endpoint", JsonString(healths[i].endpoint));
      object.Add("health", healths[i].healthy ? "true" : "false");
      object.Add("took", JsonString(healths[i].took));
      if (!healths[i].error.empty()) object.Add("error", JsonString(healths[i].error));
      list += (i > 0 ? "," : "") + object.Finish();
    }
    return PrintLine(list + "]");
  }
  for (const auto& health : healths) {
    if (health.healthy) {
      std::fprintf(stderr, "%s is healthy: successfully committed proposal: took = %s\n",
                   health.endpoint.c_str(), health.took.c_str());
    } else {
      std::fprintf(stderr, "%s is unhealthy: failed to commit proposal: %s\n",
                   health.endpoint.c_str(), health.error.c_str());
    }
  }
}

}  // namespace cairnctl
