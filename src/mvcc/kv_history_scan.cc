#include "src/mvcc/kv_history_scan.h"

#include <algorithm>
#include <map>
#include <string>
#include <utility>

#include "src/base/check.h"
#include "src/mvcc/kv_read.h"
#include "src/mvcc/mvcc_format.h"

namespace cairn::mvcc {
namespace {

Status CorruptHistory() { return Status::Corruption("mvcc: undecodable kv_history entry"); }

struct Collected {
  // revision -> (sub_revision, event); only revisions <= through are kept.
  std::map<int64_t, std::vector<std::pair<int64_t, mvccpb::Event>>> by_revision;
  size_t count = 0;
  int64_t through = 0;
};

void Add(Collected* collected, size_t events_max, int64_t revision, int64_t sub_revision,
         mvccpb::Event event) {
  if (revision > collected->through) return;
  collected->by_revision[revision].emplace_back(sub_revision, std::move(event));
  ++collected->count;
  // Over the bound: drop the newest revision (never the only one) and scan no further.
  while (collected->count > events_max && collected->by_revision.size() > 1) {
    auto last = std::prev(collected->by_revision.end());
    collected->count -= last->second.size();
    collected->through = last->first - 1;
    collected->by_revision.erase(last);
  }
}

}  // namespace

Status ScanHistory(storage::Engine* engine, std::string_view key, std::string_view range_end,
                   int64_t after_revision, int64_t through_revision, size_t events_max,
                   HistoryScan* scan) {
  CAIRN_CHECK(after_revision < through_revision);
  CAIRN_CHECK(events_max > 0);
  scan->events.clear();
  scan->scanned_through = through_revision;
  internal::KeyRange range = internal::KeyRange::From(key, range_end);
  if (range.Empty()) return Status::Ok();
  if (key.empty() && range.kind == internal::KeyRange::Kind::kSingle) return Status::Ok();
  std::string lower = format::EscapedKey(range.key);
  std::string upper;
  if (range.kind == internal::KeyRange::Kind::kSingle) upper = format::EscapedKeyUpperBound(lower);
  if (range.kind == internal::KeyRange::Kind::kInterval) upper = format::EscapedKey(range.end);
  std::shared_ptr<const storage::Snapshot> snapshot = engine->GetSnapshot();
  storage::ReadOptions options;
  options.snapshot = snapshot.get();
  options.lower_bound = lower;
  options.upper_bound = upper;
  std::unique_ptr<storage::Iterator> it = engine->NewIterator(options, storage::Family::kKvHistory);

  Collected collected;
  collected.through = through_revision;
  std::string target = lower;
  format::AppendInvertedRevision(&target, through_revision);
  it->Seek(target);
  std::string user_key;
  // The events of the newer entry of the current key (several when one txn changed the key
  // more than once at that revision), waiting for their prev_kv: the key as the next older
  // entry left it.
  std::vector<std::pair<int64_t, mvccpb::Event>> pending;  // (sub revision, event)
  int64_t pending_revision = 0;
  std::vector<format::HistoryRecordView> changes;
  std::string current_escaped;
  auto flush_pending = [&] {
    for (auto& [sub, event] : pending) {
      Add(&collected, events_max, pending_revision, sub, std::move(event));
    }
    pending.clear();
    pending_revision = 0;
  };
  while (it->Valid() && (upper.empty() || it->key() < upper)) {
    std::string_view escaped_key;
    int64_t main = 0;
    if (!format::SplitHistoryKey(it->key(), &escaped_key, &main)) return CorruptHistory();
    if (escaped_key != current_escaped) {
      flush_pending();
      current_escaped.assign(escaped_key);
      if (!format::UnescapeKey(escaped_key, &user_key)) return CorruptHistory();
    }
    if (main > collected.through) {
      // Newer than wanted: go to this key's newest entry <= through.
      target.assign(escaped_key);
      format::AppendInvertedRevision(&target, collected.through);
      it->Seek(target);
      continue;
    }
    if (!format::DecodeHistoryChanges(it->value(), &changes)) return CorruptHistory();
    const format::HistoryRecordView& record = changes.back();  // the state at `main`
    if (!pending.empty() && record.kind == format::HistoryKind::kPut) {
      for (auto& [sub, event] : pending) {
        // etcd gives a create event (create_revision == mod_revision) no prev_kv.
        const bool create = event.type() == mvccpb::Event::PUT &&
                            event.kv().create_revision() == event.kv().mod_revision();
        if (create) continue;
        internal::FillKeyValue(user_key,
                               format::RecordView{record.create_revision, main, record.version,
                                                  record.lease, record.value},
                               event.mutable_prev_kv());
      }
    }
    flush_pending();
    if (main <= after_revision) {
      // Older than wanted: it only served as the previous value. Skip to the next key.
      target.assign(escaped_key);
      target.append(format::kRevisionBytes, '\xff');
      it->Seek(target);
      continue;
    }
    for (const format::HistoryRecordView& change : changes) {
      mvccpb::Event& event = pending.emplace_back(change.sub_revision, mvccpb::Event()).second;
      if (change.kind == format::HistoryKind::kPut) {
        event.set_type(mvccpb::Event::PUT);
        internal::FillKeyValue(user_key,
                               format::RecordView{change.create_revision, main, change.version,
                                                  change.lease, change.value},
                               event.mutable_kv());
      } else {
        event.set_type(mvccpb::Event::DELETE);
        event.mutable_kv()->set_key(user_key);
        event.mutable_kv()->set_mod_revision(main);
      }
    }
    pending_revision = main;
    it->Next();
  }
  flush_pending();
  CAIRN_RETURN_IF_ERROR(it->status());

  scan->scanned_through = collected.through;
  scan->events.reserve(collected.count);
  for (auto& [revision, events] : collected.by_revision) {
    std::sort(events.begin(), events.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    for (auto& entry : events) scan->events.push_back(std::move(entry.second));
  }
  return Status::Ok();
}

}  // namespace cairn::mvcc
