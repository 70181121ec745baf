// AlarmState: the cluster's active alarms (etcd's alarm store), a deterministic projection of
// the log like the key-value state. An alarm is (member id, type); ACTIVATE and DEACTIVATE
// commands change the set, and an active alarm caps what the applier accepts:
//
//   NOSPACE  the space quota is exhausted: Put, a Txn with writes and LeaseGrant fail with
//            "etcdserver: mvcc: database space exceeded" until the alarm is disarmed;
//            reads, deletes, compaction and lease revokes still work (they free space).
//   CORRUPT  a member found corrupt data: every KV and lease write fails with
//            "etcdserver: corrupt cluster".
//
// Persisted in the meta family under "alarm/<member id, 16 hex digits>/<type number>", written
// in the same engine batch as the command that changed it.
//
// Thread-safety: Apply* run on the apply thread; Active/List/CheckWrite may be called from any
// thread (a mutex guards the in-memory set).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <set>
#include <utility>
#include <vector>

#include "cairn/command.pb.h"
#include "etcdserverpb/rpc.pb.h"
#include "src/base/result.h"
#include "src/storage/engine.h"

namespace cairn::node {

inline constexpr std::string_view kAlarmKeyPrefix = "alarm/";

class AlarmState {
 public:
  // Loads the persisted alarms.
  static Result<std::unique_ptr<AlarmState>> Open(storage::Engine* engine);

  // ACTIVATE adds the alarm and answers it in response.alarms (nothing when it was already
  // active); DEACTIVATE removes it and answers it (nothing when it was not active); GET answers
  // the active alarms of request.alarm's type (all types for NONE). InvalidArgument for an
  // unknown action or ACTIVATE/DEACTIVATE of NONE.
  Status Apply(storage::WriteBatch* batch, const etcdserverpb::AlarmRequest& request,
               etcdserverpb::AlarmResponse* response);
  // Call after the batch holding Apply's writes failed: reloads the set from the engine.
  Status Reload();

  // The error an active alarm gives `command`, OK when it may be applied.
  Status CheckWrite(const command::Command& command) const;

  bool Active(etcdserverpb::AlarmType type) const;
  // Active alarms ordered by (member id, type).
  std::vector<etcdserverpb::AlarmMember> List() const;

 private:
  explicit AlarmState(storage::Engine* engine) : engine_(engine) {}

  storage::Engine* const engine_;
  mutable std::mutex mutex_;
  std::set<std::pair<uint64_t, int>> active_;  // GUARDED_BY(mutex_): (member id, type)
};

}  // namespace cairn::node
