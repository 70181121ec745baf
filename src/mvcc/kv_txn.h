// Internal to src/mvcc: the execution of Put, DeleteRange, Range and Txn ops of one command,
// shared by the apply path (reading and writing through the batch) and by read-only txns
// served from a snapshot. Mirrors etcd's applierV3backend (server/etcdserver/apply.go) over
// storeTxnWrite (server/mvcc/kvstore_txn.go).
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "etcdserverpb/rpc.pb.h"
#include "mvccpb/kv.pb.h"
#include "src/base/status.h"
#include "src/mvcc/batch_latest.h"
#include "src/mvcc/key_count_blocks.h"
#include "src/mvcc/kv_read.h"
#include "src/mvcc/lease_index.h"
#include "src/storage/engine.h"

namespace cairn::mvcc::internal {

// One command's execution context: every change gets main revision begin + 1 and the next
// sub revision. Writes go to `batch` (nullptr for a read-only txn: then only ranges run).
class CommandExecutor {
 public:
  CommandExecutor(View* view, storage::WriteBatch* batch, int64_t begin_revision, int64_t compacted,
                  std::vector<mvccpb::Event>* events)
      : view_(view),
        batch_(batch),
        begin_revision_(begin_revision),
        compacted_(compacted),
        events_(events),
        command_events_begin_(events == nullptr ? 0 : events->size()) {}

  // Every kv_latest write of this command also goes to *latest, which the view reads (see
  // BatchView). REQUIRES before a write: set.
  void set_batch_latest(BatchLatest* latest) { latest_ = latest; }
  // Every live key the command creates or deletes is also appended to *changes (when set).
  void set_key_count_changes(std::vector<KeyCountChange>* changes) { key_count_changes_ = changes; }
  // Puts check that their lease exists and every lease change is reported (when set).
  void set_lease_index(LeaseIndex* leases) { leases_ = leases; }

  Status Put(const etcdserverpb::PutRequest& req, etcdserverpb::PutResponse* resp);
  Status DeleteRange(const etcdserverpb::DeleteRangeRequest& req,
                     etcdserverpb::DeleteRangeResponse* resp);
  Status Range(const etcdserverpb::RangeRequest& req, etcdserverpb::RangeResponse* resp);

  // etcd's Txn apply minus the header: compares of every level evaluated first on the state
  // before the txn (etcd's compareToPath), then the apply-time checks of the chosen path
  // (checkRequests: puts' key existence for write txns, then ranges' revisions), then the ops.
  // On error the caller rolls the batch back.
  Status Txn(const etcdserverpb::TxnRequest& req, bool write_txn, etcdserverpb::TxnResponse* resp);

  // Number of changes (puts and deleted keys) so far.
  int64_t changes() const { return changes_; }
  // Live keys created minus live keys deleted by this command.
  int64_t key_delta() const { return key_delta_; }
  // The lowest revision a Range read at (INT64_MAX when none): readers check it against a
  // compaction that may have raced with them.
  int64_t min_read_revision() const { return min_read_revision_; }

 private:
  // The revision reads see: begin, or begin + 1 once this command changed something.
  int64_t ReadRevision() const { return begin_revision_ + (changes_ > 0 ? 1 : 0); }
  // Appends the event of a change. `prev` is the key before this change (nullopt: absent);
  // `repeated_key`: this command changed the key before (WriteHistory's answer).
  void AddEvent(mvccpb::Event::EventType type, mvccpb::KeyValue kv,
                std::optional<mvccpb::KeyValue> prev, bool repeated_key);
  // Writes the kv_history entry of `user_key` at `revision`; a second change of the key in
  // this command joins the first in a compound entry (mvcc_format.h). *repeated_key: whether
  // this command changed the key before.
  Status WriteHistory(std::string_view user_key, int64_t revision, std::string_view value,
                      bool* repeated_key);

  Status ComputePath(const etcdserverpb::TxnRequest& req, std::vector<bool>* path);
  Status CheckPuts(const etcdserverpb::TxnRequest& req, const std::vector<bool>& path,
                   size_t* index);
  Status CheckRanges(const etcdserverpb::TxnRequest& req, const std::vector<bool>& path,
                     size_t* index);
  Status ExecuteOps(const etcdserverpb::TxnRequest& req, const std::vector<bool>& path,
                    size_t* index, etcdserverpb::TxnResponse* resp);

  View* const view_;
  storage::WriteBatch* const batch_;
  const int64_t begin_revision_;
  const int64_t compacted_;
  std::vector<mvccpb::Event>* const events_;
  // The index in *events_ of this command's first event.
  const size_t command_events_begin_;
  BatchLatest* latest_ = nullptr;
  std::vector<KeyCountChange>* key_count_changes_ = nullptr;
  LeaseIndex* leases_ = nullptr;
  int64_t changes_ = 0;
  int64_t key_delta_ = 0;
  int64_t min_read_revision_ = INT64_MAX;
  // The keys this command wrote a history entry for: the first, then the others.
  // REQUIRES of WriteHistory's callers: changes_ counts the changes before this one.
  std::string first_history_key_;
  std::set<std::string, std::less<>> history_written_;
};

}  // namespace cairn::mvcc::internal
