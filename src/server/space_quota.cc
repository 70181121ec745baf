#include "src/server/space_quota.h"

#include <algorithm>
#include <chrono>

#include "src/base/logging.h"
#include "src/mvcc/errors.h"

namespace cairn::server {
namespace {

constexpr int64_t kPutOverheadBytes = 256;
constexpr int64_t kLeaseOverheadBytes = 64;

int64_t PutCost(const etcdserverpb::PutRequest& put) {
  return kPutOverheadBytes + static_cast<int64_t>(put.key().size() + put.value().size());
}

int64_t TxnCost(const etcdserverpb::TxnRequest& txn) {
  int64_t branch_max = 0;
  for (const auto* ops : {&txn.success(), &txn.failure()}) {
    int64_t branch = 0;
    for (const etcdserverpb::RequestOp& op : *ops) {
      if (op.has_request_put()) branch += PutCost(op.request_put());
      if (op.has_request_txn()) branch += TxnCost(op.request_txn());
    }
    branch_max = std::max(branch_max, branch);
  }
  return branch_max;
}

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

SpaceQuota::SpaceQuota(node::Node* node, uint64_t member_id, int64_t quota_bytes)
    : node_(node),
      member_id_(member_id),
      quota_bytes_(quota_bytes == 0 ? kDefaultQuotaBytes : std::min(quota_bytes, kMaxQuotaBytes)) {
  if (quota_bytes > kMaxQuotaBytes) {
    log::Get("server")->warn("--quota-backend-bytes {} exceeds the maximum; using {}", quota_bytes,
                             kMaxQuotaBytes);
  }
}

int64_t SpaceQuota::CostBytes(const command::Command& command) {
  switch (command.request_case()) {
    case command::Command::kPut:
      return PutCost(command.put());
    case command::Command::kTxn:
      return TxnCost(command.txn());
    case command::Command::kLeaseGrant:
      return kLeaseOverheadBytes;
    default:
      return 0;
  }
}

int64_t SpaceQuota::SizeBytes() {
  const int64_t now_ms = NowMs();
  if (now_ms - size_sampled_ms_.load(std::memory_order_relaxed) >= kSizeSampleMs) {
    size_sampled_ms_.store(now_ms, std::memory_order_relaxed);
    size_bytes_.store(static_cast<int64_t>(node_->engine()->ApproximateSizeBytes()),
                      std::memory_order_relaxed);
    admitted_since_sample_bytes_.store(0, std::memory_order_relaxed);
  }
  return size_bytes_.load(std::memory_order_relaxed) +
         admitted_since_sample_bytes_.load(std::memory_order_relaxed);
}

Status SpaceQuota::Admit(const command::Command& command) {
  const int64_t cost = CostBytes(command);
  if (cost == 0) return Status::Ok();
  // An active alarm refuses the write at apply anyway; refusing it here keeps it out of the log.
  CAIRN_RETURN_IF_ERROR(node_->alarms()->CheckWrite(command));
  if (quota_bytes_ < 0) return Status::Ok();
  if (SizeBytes() + cost <= quota_bytes_) {
    admitted_since_sample_bytes_.fetch_add(cost, std::memory_order_relaxed);
    return Status::Ok();
  }
  if (!node_->alarms()->Active(etcdserverpb::NOSPACE) && !alarm_proposed_.exchange(true)) {
    log::Get("server")->warn(
        "database size {} bytes + request {} bytes exceeds the quota of {} "
        "bytes: raising the NOSPACE alarm",
        SizeBytes(), cost, quota_bytes_);
    command::Command alarm;
    alarm.mutable_alarm()->set_action(etcdserverpb::AlarmRequest::ACTIVATE);
    alarm.mutable_alarm()->set_memberid(member_id_);
    alarm.mutable_alarm()->set_alarm(etcdserverpb::NOSPACE);
    node_->Propose(std::move(alarm), [this](const Status& status, command::CommandResult&&) {
      if (!status.ok()) log::Get("server")->error("raising NOSPACE: {}", status.ToString());
      alarm_proposed_.store(false);
    });
  }
  return mvcc::ErrNoSpace();
}

}  // namespace cairn::server
