#include "src/node/alarm_state.h"

#include <fmt/format.h>

#include <string>

#include "src/mvcc/errors.h"

namespace cairn::node {
namespace {

std::string AlarmKey(uint64_t member_id, int type) {
  return fmt::format("{}{:016x}/{}", kAlarmKeyPrefix, member_id, type);
}

// Inverse of AlarmKey; false for a malformed key.
bool ParseAlarmKey(std::string_view key, uint64_t* member_id, int* type) {
  if (!key.starts_with(kAlarmKeyPrefix)) return false;
  key.remove_prefix(kAlarmKeyPrefix.size());
  if (key.size() < 18 || key[16] != '/') return false;
  try {
    size_t used = 0;
    *member_id = std::stoull(std::string(key.substr(0, 16)), &used, 16);
    if (used != 16) return false;
    *type = std::stoi(std::string(key.substr(17)), &used);
    return used == key.size() - 17;
  } catch (const std::exception&) {
    return false;
  }
}

// etcd's isTxnReadonly: every operation in both branches, nested ones included, is a range.
bool TxnReadOnly(const etcdserverpb::TxnRequest& txn) {
  for (const auto* ops : {&txn.success(), &txn.failure()}) {
    for (const etcdserverpb::RequestOp& op : *ops) {
      if (op.has_request_range()) continue;
      if (op.has_request_txn() && TxnReadOnly(op.request_txn())) continue;
      return false;
    }
  }
  return true;
}

}  // namespace

Result<std::unique_ptr<AlarmState>> AlarmState::Open(storage::Engine* engine) {
  std::unique_ptr<AlarmState> alarms(new AlarmState(engine));
  CAIRN_RETURN_IF_ERROR(alarms->Reload());
  return alarms;
}

Status AlarmState::Reload() {
  std::set<std::pair<uint64_t, int>> loaded;
  const std::string upper = std::string(kAlarmKeyPrefix.substr(0, kAlarmKeyPrefix.size() - 1)) +
                            static_cast<char>(kAlarmKeyPrefix.back() + 1);
  storage::ReadOptions options;
  options.lower_bound = kAlarmKeyPrefix;
  options.upper_bound = upper;
  auto it = engine_->NewIterator(options, storage::Family::kMeta);
  for (it->Seek(kAlarmKeyPrefix); it->Valid(); it->Next()) {
    uint64_t member_id = 0;
    int type = 0;
    if (!ParseAlarmKey(it->key(), &member_id, &type)) {
      return Status::Corruption("malformed alarm key " + std::string(it->key()));
    }
    loaded.emplace(member_id, type);
  }
  CAIRN_RETURN_IF_ERROR(it->status());
  std::lock_guard lock(mutex_);
  active_ = std::move(loaded);
  return Status::Ok();
}

Status AlarmState::Apply(storage::WriteBatch* batch, const etcdserverpb::AlarmRequest& request,
                         etcdserverpb::AlarmResponse* response) {
  const int type = request.alarm();
  std::lock_guard lock(mutex_);
  switch (request.action()) {
    case etcdserverpb::AlarmRequest::GET:
      for (const auto& [member_id, active_type] : active_) {
        if (type != etcdserverpb::NONE && type != active_type) continue;
        etcdserverpb::AlarmMember* member = response->add_alarms();
        member->set_memberid(member_id);
        member->set_alarm(static_cast<etcdserverpb::AlarmType>(active_type));
      }
      return Status::Ok();
    case etcdserverpb::AlarmRequest::ACTIVATE:
    case etcdserverpb::AlarmRequest::DEACTIVATE: {
      if (type == etcdserverpb::NONE || !etcdserverpb::AlarmType_IsValid(type)) {
        return Status::InvalidArgument("cairn: alarm type " + std::to_string(type) +
                                       " cannot be activated or deactivated");
      }
      const std::pair<uint64_t, int> alarm(request.memberid(), type);
      const bool activate = request.action() == etcdserverpb::AlarmRequest::ACTIVATE;
      if (activate == (active_.count(alarm) > 0)) return Status::Ok();  // no change
      const std::string key = AlarmKey(alarm.first, alarm.second);
      if (activate) {
        batch->Put(storage::Family::kMeta, key, "");
        active_.insert(alarm);
      } else {
        batch->Delete(storage::Family::kMeta, key);
        active_.erase(alarm);
      }
      etcdserverpb::AlarmMember* member = response->add_alarms();
      member->set_memberid(alarm.first);
      member->set_alarm(static_cast<etcdserverpb::AlarmType>(type));
      return Status::Ok();
    }
    default:
      return Status::InvalidArgument("cairn: unknown alarm action " +
                                     std::to_string(request.action()));
  }
}

Status AlarmState::CheckWrite(const command::Command& command) const {
  std::lock_guard lock(mutex_);
  if (active_.empty()) return Status::Ok();
  bool corrupt = false, nospace = false;
  for (const auto& [member_id, type] : active_) {
    corrupt |= type == etcdserverpb::CORRUPT;
    nospace |= type == etcdserverpb::NOSPACE;
  }
  switch (command.request_case()) {
    case command::Command::kPut:
    case command::Command::kLeaseGrant:
      if (corrupt) return mvcc::ErrCorrupt();
      if (nospace) return mvcc::ErrNoSpace();
      return Status::Ok();
    case command::Command::kTxn:
      if (corrupt) return mvcc::ErrCorrupt();
      if (nospace && !TxnReadOnly(command.txn())) return mvcc::ErrNoSpace();
      return Status::Ok();
    case command::Command::kDeleteRange:
    case command::Command::kCompaction:
    case command::Command::kLeaseRevoke:
      if (corrupt) return mvcc::ErrCorrupt();
      return Status::Ok();
    default:
      // Lease checkpoints and alarm commands stay possible: they are how the cluster recovers.
      return Status::Ok();
  }
}

bool AlarmState::Active(etcdserverpb::AlarmType type) const {
  std::lock_guard lock(mutex_);
  for (const auto& alarm : active_) {
    if (alarm.second == type) return true;
  }
  return false;
}

std::vector<etcdserverpb::AlarmMember> AlarmState::List() const {
  std::lock_guard lock(mutex_);
  std::vector<etcdserverpb::AlarmMember> alarms;
  for (const auto& [member_id, type] : active_) {
    etcdserverpb::AlarmMember& member = alarms.emplace_back();
    member.set_memberid(member_id);
    member.set_alarm(static_cast<etcdserverpb::AlarmType>(type));
  }
  return alarms;
}

}  // namespace cairn::node
