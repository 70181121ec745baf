#include "src/mvcc/kv_read.h"

#include <algorithm>

#include "src/mvcc/errors.h"

namespace cairn::mvcc::internal {
namespace {

using etcdserverpb::RangeRequest;
using storage::Family;

// How many Next() calls a scan tries before it seeks: most keys have few versions, and a
// short walk is cheaper than a seek.
constexpr int kNextsBeforeSeek = 4;

void SkipTo(storage::Iterator* it, std::string_view target) {
  for (int i = 0; i < kNextsBeforeSeek && it->Valid(); ++i) {
    if (it->key() >= target) return;
    it->Next();
  }
  if (it->Valid() && it->key() < target) it->Seek(target);
}

Status CorruptLatest(std::string_view key) {
  return Status::Corruption("mvcc: undecodable kv_latest record of a key of " +
                            std::to_string(key.size()) + " bytes");
}

Status CorruptHistory() { return Status::Corruption("mvcc: undecodable kv_history entry"); }

// The keys alive at `revision` in kv_history: per user key, the newest entry <= revision
// (a tombstone means absent), then a skip to the next user key.
Status RangeHistory(View* view, const KeyRange& range, int64_t revision, int64_t limit,
                    bool count_only, std::vector<mvccpb::KeyValue>* kvs, int64_t* count) {
  std::string lower = format::EscapedKey(range.key);
  std::string upper;
  if (range.kind == KeyRange::Kind::kSingle) upper = format::EscapedKeyUpperBound(lower);
  if (range.kind == KeyRange::Kind::kInterval) upper = format::EscapedKey(range.end);
  storage::ReadOptions options;
  options.lower_bound = lower;
  options.upper_bound = upper;
  std::unique_ptr<storage::Iterator> it = view->NewIterator(Family::kKvHistory, options);
  std::string target = lower;
  format::AppendInvertedRevision(&target, revision);
  it->Seek(target);
  std::string user_key;
  // The bounds are also checked here: a scan must never leave its range, whatever the
  // engine's iterator does with them.
  while (it->Valid() && (upper.empty() || it->key() < upper)) {
    std::string_view escaped_key;
    int64_t main = 0;
    if (!format::SplitHistoryKey(it->key(), &escaped_key, &main)) return CorruptHistory();
    target.assign(escaped_key);
    if (main > revision) {
      // Newer than wanted: go to this key's newest entry <= revision (or the next key).
      format::AppendInvertedRevision(&target, revision);
      SkipTo(it.get(), target);
      continue;
    }
    format::HistoryRecordView record;
    if (!format::DecodeHistoryRecord(it->value(), &record)) return CorruptHistory();
    if (record.kind == format::HistoryKind::kPut) {
      ++*count;
      if (!count_only && (limit <= 0 || static_cast<int64_t>(kvs->size()) < limit)) {
        if (!format::UnescapeKey(escaped_key, &user_key)) return CorruptHistory();
        mvccpb::KeyValue* kv = &kvs->emplace_back();
        FillKeyValue(user_key,
                     format::RecordView{record.create_revision, main, record.version, record.lease,
                                        record.value},
                     kv);
      }
    }
    // Past every entry of this user key: ~revision of all-ones is revision 0, never stored.
    target.append(format::kRevisionBytes, '\xff');
    SkipTo(it.get(), target);
  }
  return it->status();
}

int CompareBytes(std::string_view a, std::string_view b) { return a.compare(b); }
int CompareInt(int64_t a, int64_t b) { return a < b ? -1 : (a > b ? 1 : 0); }

// The compared-against number: etcd uses 0 unless target_union holds the target's member.
int64_t IfSet(const etcdserverpb::Compare& compare, etcdserverpb::Compare::TargetUnionCase member,
              int64_t value) {
  return compare.target_union_case() == member ? value : 0;
}

// etcd's compareKV.
bool CompareKv(const etcdserverpb::Compare& compare, const format::RecordView& record) {
  using etcdserverpb::Compare;
  int result = 0;
  switch (compare.target()) {
    case Compare::VALUE: {
      std::string_view wanted;
      if (compare.target_union_case() == Compare::kValue) wanted = compare.value();
      result = CompareBytes(record.value, wanted);
      break;
    }
    case Compare::CREATE:
      result = CompareInt(record.create_revision,
                          IfSet(compare, Compare::kCreateRevision, compare.create_revision()));
      break;
    case Compare::MOD:
      result = CompareInt(record.mod_revision,
                          IfSet(compare, Compare::kModRevision, compare.mod_revision()));
      break;
    case Compare::VERSION:
      result = CompareInt(record.version, IfSet(compare, Compare::kVersion, compare.version()));
      break;
    case Compare::LEASE:
      result = CompareInt(record.lease, IfSet(compare, Compare::kLease, compare.lease()));
      break;
    default:
      break;
  }
  switch (compare.result()) {
    case Compare::EQUAL:
      return result == 0;
    case Compare::NOT_EQUAL:
      return result != 0;
    case Compare::GREATER:
      return result > 0;
    case Compare::LESS:
      return result < 0;
    default:
      return true;
  }
}

// etcd's pruneKVs for the four min/max filters (a bound of 0 is unset).
void FilterKvs(const RangeRequest& req, std::vector<mvccpb::KeyValue>* kvs) {
  auto drop = [&req](const mvccpb::KeyValue& kv) {
    if (req.max_mod_revision() != 0 && kv.mod_revision() > req.max_mod_revision()) return true;
    if (req.min_mod_revision() != 0 && kv.mod_revision() < req.min_mod_revision()) return true;
    if (req.max_create_revision() != 0 && kv.create_revision() > req.max_create_revision()) {
      return true;
    }
    if (req.min_create_revision() != 0 && kv.create_revision() < req.min_create_revision()) {
      return true;
    }
    return false;
  };
  kvs->erase(std::remove_if(kvs->begin(), kvs->end(), drop), kvs->end());
}

// Stable, so ties keep key order, in both directions. etcd uses Go's sort.Sort, which is
// insertion sort (stable, ties in key order too) up to 12 elements.
void SortKvs(RangeRequest::SortTarget target, RangeRequest::SortOrder order,
             std::vector<mvccpb::KeyValue>* kvs) {
  auto compare = [target](const mvccpb::KeyValue& a, const mvccpb::KeyValue& b) {
    switch (target) {
      case RangeRequest::VERSION:
        return CompareInt(a.version(), b.version());
      case RangeRequest::CREATE:
        return CompareInt(a.create_revision(), b.create_revision());
      case RangeRequest::MOD:
        return CompareInt(a.mod_revision(), b.mod_revision());
      case RangeRequest::VALUE:
        return CompareBytes(a.value(), b.value());
      default:
        return CompareBytes(a.key(), b.key());
    }
  };
  if (order == RangeRequest::ASCEND) {
    std::stable_sort(kvs->begin(), kvs->end(),
                     [&](const auto& a, const auto& b) { return compare(a, b) < 0; });
  } else {
    std::stable_sort(kvs->begin(), kvs->end(),
                     [&](const auto& a, const auto& b) { return compare(a, b) > 0; });
  }
}

}  // namespace

Result<bool> SnapshotView::Get(Family family, std::string_view key, std::string* value) {
  storage::ReadOptions options;
  options.snapshot = snapshot_;
  return engine_->Get(options, family, key, value);
}

std::unique_ptr<storage::Iterator> SnapshotView::NewIterator(Family family,
                                                             storage::ReadOptions options) {
  options.snapshot = snapshot_;
  return engine_->NewIterator(options, family);
}

Result<bool> BatchView::Get(Family family, std::string_view key, std::string* value) {
  if (family != Family::kKvLatest) return batch_->Get(family, key, value);
  std::string unused;
  std::string* record = value != nullptr ? value : &unused;
  switch (latest_->Get(key, record)) {
    case BatchLatest::Lookup::kPresent:
      return true;
    case BatchLatest::Lookup::kAbsent:
      return false;
    case BatchLatest::Lookup::kUnknown:
      break;
  }
  // The batch did not write the key: the cache and the engine hold its record.
  if (cache_ != nullptr) {
    switch (cache_->Get(key, record)) {
      case LatestCache::Lookup::kPresent:
        return true;
      case LatestCache::Lookup::kAbsent:
        return false;
      case LatestCache::Lookup::kMiss:
        break;
    }
  }
  return engine_->Get(storage::ReadOptions(), family, key, value);
}

std::unique_ptr<storage::Iterator> BatchView::NewIterator(Family family,
                                                          storage::ReadOptions options) {
  options.snapshot = nullptr;
  return batch_->NewIterator(family, options);
}

KeyRange KeyRange::From(std::string_view key, std::string_view range_end) {
  KeyRange range;
  range.key = key;
  if (range_end.empty()) {
    range.kind = Kind::kSingle;
  } else if (range_end == std::string_view("\0", 1)) {
    range.kind = Kind::kToEnd;
  } else {
    range.kind = Kind::kInterval;
    range.end = range_end;
  }
  return range;
}

void FillKeyValue(std::string_view key, const format::RecordView& record, mvccpb::KeyValue* kv) {
  kv->set_key(key.data(), key.size());
  kv->set_create_revision(record.create_revision);
  kv->set_mod_revision(record.mod_revision);
  kv->set_version(record.version);
  kv->set_lease(record.lease);
  kv->set_value(record.value.data(), record.value.size());
}

Result<bool> GetLatest(View* view, std::string_view key, std::string* buffer,
                       format::RecordView* record) {
  if (key.empty()) return false;  // never stored: etcd rejects empty keys
  CAIRN_ASSIGN_OR_RETURN(bool found, view->Get(Family::kKvLatest, key, buffer));
  if (!found) return false;
  if (!format::DecodeLatestRecord(*buffer, record)) return CorruptLatest(key);
  return true;
}

Status VisitLatest(View* view, const KeyRange& range, const LatestVisitor& visit) {
  if (range.Empty()) return Status::Ok();
  format::RecordView record;
  if (range.kind == KeyRange::Kind::kSingle) {
    std::string buffer;
    CAIRN_ASSIGN_OR_RETURN(bool found, GetLatest(view, range.key, &buffer, &record));
    if (found) visit(range.key, record);
    return Status::Ok();
  }
  storage::ReadOptions options;
  options.lower_bound = range.key;
  if (range.kind == KeyRange::Kind::kInterval) options.upper_bound = range.end;
  std::unique_ptr<storage::Iterator> it = view->NewIterator(Family::kKvLatest, options);
  for (it->Seek(range.key); it->Valid(); it->Next()) {
    if (range.kind == KeyRange::Kind::kInterval && it->key() >= range.end) break;
    if (!format::DecodeLatestRecord(it->value(), &record)) return CorruptLatest(it->key());
    if (!visit(it->key(), record)) break;
  }
  return it->status();
}

namespace {

// Adds the live keys of `range` in kv_latest to *count, walked.
Status WalkCount(View* view, const KeyRange& range, int64_t* count) {
  return VisitLatest(view, range, [&](std::string_view, const format::RecordView&) {
    ++*count;
    return true;
  });
}

// [lower, upper), or [lower, end of keys) when upper is empty.
KeyRange Between(std::string_view lower, std::string_view upper) {
  KeyRange range;
  range.key = lower;
  range.end = upper;
  range.kind = upper.empty() ? KeyRange::Kind::kToEnd : KeyRange::Kind::kInterval;
  return range;
}

}  // namespace

Status CountLatest(View* view, const KeyRange& range, int64_t* count) {
  *count = 0;
  if (range.Empty()) return Status::Ok();
  if (range.kind == KeyRange::Kind::kSingle || !view->has_key_count_blocks()) {
    return WalkCount(view, range, count);
  }
  const std::string_view end = range.kind == KeyRange::Kind::kInterval ? range.end : "";
  storage::ReadOptions options;
  options.lower_bound = format::kMetaKeyCountBlockPrefix;
  options.upper_bound = format::kMetaKeyCountBlockEnd;
  std::unique_ptr<storage::Iterator> blocks = view->NewIterator(Family::kMeta, options);
  std::string target(format::kMetaKeyCountBlockPrefix);
  target.append(range.key);
  blocks->SeekForPrev(target);
  if (!blocks->Valid()) {
    CAIRN_RETURN_IF_ERROR(blocks->status());
    return WalkCount(view, range, count);  // no key was ever created
  }
  // Block [fence, next): whole when the range covers it, else walked where they overlap.
  std::string fence;
  std::string next(blocks->key().substr(format::kMetaKeyCountBlockPrefix.size()));
  while (true) {
    fence.swap(next);
    int64_t block_count = 0;
    if (!format::DecodeMetaRevision(blocks->value(), &block_count)) {
      return Status::Corruption("mvcc: undecodable key count block");
    }
    blocks->Next();
    const bool last = !blocks->Valid();
    if (last) {
      CAIRN_RETURN_IF_ERROR(blocks->status());
      next.clear();
    } else {
      next.assign(blocks->key().substr(format::kMetaKeyCountBlockPrefix.size()));
    }
    const bool starts_inside = fence >= range.key;
    const bool ends_inside = end.empty() || (!last && next <= end);
    if (starts_inside && ends_inside) {
      *count += block_count;
    } else {
      const std::string_view lower = starts_inside ? std::string_view(fence) : range.key;
      const std::string_view upper = ends_inside ? std::string_view(next) : end;
      CAIRN_RETURN_IF_ERROR(WalkCount(view, Between(lower, upper), count));
    }
    if (last || (!end.empty() && next >= end)) return Status::Ok();
  }
}

Status RangeKeys(View* view, const KeyRange& range, int64_t revision, bool at_latest, int64_t limit,
                 bool count_only, std::vector<mvccpb::KeyValue>* kvs, int64_t* count) {
  *count = 0;
  if (range.Empty()) return Status::Ok();
  if (!at_latest) return RangeHistory(view, range, revision, limit, count_only, kvs, count);
  if (view->has_key_count_blocks() && range.kind != KeyRange::Kind::kSingle &&
      (count_only || limit > 0)) {
    // The first `limit` keys, then the count from the blocks.
    if (!count_only) {
      CAIRN_RETURN_IF_ERROR(
          VisitLatest(view, range, [&](std::string_view key, const format::RecordView& record) {
            FillKeyValue(key, record, &kvs->emplace_back());
            return static_cast<int64_t>(kvs->size()) < limit;
          }));
    }
    return CountLatest(view, range, count);
  }
  return VisitLatest(view, range, [&](std::string_view key, const format::RecordView& record) {
    ++*count;
    if (!count_only && (limit <= 0 || static_cast<int64_t>(kvs->size()) < limit)) {
      FillKeyValue(key, record, &kvs->emplace_back());
    }
    return true;
  });
}

Status ExecuteRange(View* view, const RangeRequest& req, int64_t current, int64_t compacted,
                    etcdserverpb::RangeResponse* resp, int64_t* read_revision) {
  if (!etcdserverpb::RangeRequest_SortOrder_IsValid(req.sort_order()) ||
      !etcdserverpb::RangeRequest_SortTarget_IsValid(req.sort_target())) {
    return ErrInvalidSortOption();
  }
  // storeTxnRead.rangeKeys, in its order.
  int64_t revision = req.revision();
  if (revision > current) return ErrFutureRev();
  if (revision <= 0) revision = current;
  if (revision < compacted) return ErrCompacted();
  *read_revision = revision;

  bool fetch_all = req.sort_order() != RangeRequest::NONE || req.min_mod_revision() != 0 ||
                   req.max_mod_revision() != 0 || req.min_create_revision() != 0 ||
                   req.max_create_revision() != 0;
  int64_t limit = fetch_all ? 0 : req.limit();
  if (limit > 0 && limit < INT64_MAX) ++limit;  // one more, for `more`
  std::vector<mvccpb::KeyValue> kvs;
  int64_t count = 0;
  CAIRN_RETURN_IF_ERROR(RangeKeys(view, KeyRange::From(req.key(), req.range_end()), revision,
                                  revision == current, limit, req.count_only(), &kvs, &count));
  FilterKvs(req, &kvs);
  RangeRequest::SortOrder order = req.sort_order();
  if (req.sort_target() != RangeRequest::KEY && order == RangeRequest::NONE) {
    order = RangeRequest::ASCEND;  // kvs come in key order; other targets sort ascending
  }
  if (order != RangeRequest::NONE) SortKvs(req.sort_target(), order, &kvs);
  if (req.limit() > 0 && static_cast<int64_t>(kvs.size()) > req.limit()) {
    kvs.resize(static_cast<size_t>(req.limit()));
    resp->set_more(true);
  }
  resp->mutable_header()->set_revision(current);
  resp->set_count(count);
  for (auto& kv : kvs) {
    if (req.keys_only()) kv.clear_value();
    *resp->add_kvs() = std::move(kv);
  }
  return Status::Ok();
}

Result<bool> EvaluateCompare(View* view, const etcdserverpb::Compare& compare) {
  bool any = false;
  bool all = true;
  CAIRN_RETURN_IF_ERROR(VisitLatest(view, KeyRange::From(compare.key(), compare.range_end()),
                                    [&](std::string_view, const format::RecordView& record) {
                                      any = true;
                                      all = CompareKv(compare, record);
                                      return all;
                                    }));
  if (any) return all;
  // No key: a value compare fails (a missing value is not ""); others see a zero KeyValue.
  if (compare.target() == etcdserverpb::Compare::VALUE) return false;
  return CompareKv(compare, format::RecordView{});
}

}  // namespace cairn::mvcc::internal
