// Output in etcdctl 3.4's formats: "simple" (etcdctl's simplePrinter) and "json"
// (encoding/json of clientv3's response types; see go_json.h). Everything goes to stdout
// except endpoint health's simple lines, which etcdctl writes to stderr.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "etcdserverpb/rpc.pb.h"
#include "tools/cairnctl/connection.h"

namespace cairnctl {

struct EndpointStatus {
  std::string endpoint;
  etcdserverpb::StatusResponse status;
};

struct EndpointHealth {
  std::string endpoint;
  bool healthy = false;
  std::string took;   // Go duration text
  std::string error;  // empty when healthy
};

class Printer {
 public:
  Printer(OutputFormat format, bool hex) : format_(format), hex_(hex) {}

  // --print-value-only (simple output only).
  void set_value_only(bool value_only) { value_only_ = value_only; }
  // --count-only with simple output prints the count instead of key-value pairs.
  void set_count_only(bool count_only) { count_only_ = count_only; }
  bool json() const { return format_ == OutputFormat::kJson; }

  void Put(const etcdserverpb::PutResponse& response) const;
  void Get(const etcdserverpb::RangeResponse& response) const;
  void Delete(const etcdserverpb::DeleteRangeResponse& response) const;
  void Txn(const etcdserverpb::TxnResponse& response) const;
  void Watch(const etcdserverpb::WatchResponse& response) const;
  void LeaseGrant(const etcdserverpb::LeaseGrantResponse& response) const;
  void LeaseRevoke(int64_t id, const etcdserverpb::LeaseRevokeResponse& response) const;
  void LeaseTimeToLive(const etcdserverpb::LeaseTimeToLiveResponse& response, bool keys) const;
  void LeaseList(const etcdserverpb::LeaseLeasesResponse& response) const;
  void LeaseKeepAlive(const etcdserverpb::LeaseKeepAliveResponse& response) const;
  void MemberList(const etcdserverpb::MemberListResponse& response) const;
  void EndpointStatuses(const std::vector<EndpointStatus>& statuses) const;
  void EndpointHealths(const std::vector<EndpointHealth>& healths) const;

 private:
  void PrintKv(const mvccpb::KeyValue& kv) const;
  std::string Bytes(const std::string& bytes) const;

  OutputFormat format_;
  bool hex_;
  bool value_only_ = false;
  bool count_only_ = false;
};

}  // namespace cairnctl
