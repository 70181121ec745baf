// Property test: random sequences of Put / DeleteRange / Txn (compares over ranges, nested
// txns, ranges at old revisions) / Compaction, applied several commands per engine batch, are
// run against KvState and against a deliberately naive model (a full copy of the key space
// per revision, etcd's rules written out directly). Every response, every event and every
// error must match; reads between batches, reads after a KvState/engine reopen, and full
// ranges at every readable revision at the end must match too. HashKV must not depend on
// physical compaction (compared with a shadow store that never compacts physically).
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "src/mvcc/errors.h"
#include "src/mvcc/kv_state.h"
#include "src/mvcc/kv_test_util.h"
#include "src/mvcc/validation.h"

namespace cairn::mvcc {
namespace {

using etcdserverpb::Compare;
using etcdserverpb::RangeRequest;
using etcdserverpb::RequestOp;
using etcdserverpb::TxnRequest;
using testing::EngineKind;
using testing::Store;

// ---------------------------------------------------------------------------------------
// The model.

struct ModelKv {
  std::string value;
  int64_t create_revision = 0;
  int64_t mod_revision = 0;
  int64_t version = 0;
  int64_t lease = 0;
};
using ModelState = std::map<std::string, ModelKv>;

mvccpb::KeyValue ToProto(const std::string& key, const ModelKv& kv) {
  mvccpb::KeyValue out;
  out.set_key(key);
  out.set_value(kv.value);
  out.set_create_revision(kv.create_revision);
  out.set_mod_revision(kv.mod_revision);
  out.set_version(kv.version);
  out.set_lease(kv.lease);
  return out;
}

bool InRange(const std::string& k, const std::string& key, const std::string& end) {
  if (end.empty()) return k == key;
  if (end == std::string(1, '\0')) return k >= key;
  return key <= k && k < end;
}

// The whole history: states[r] is the key space at revision r (states[0] is unused).
struct Model {
  std::vector<ModelState> states{ModelState{}, ModelState{}};
  int64_t compacted = -1;
  int64_t current() const { return static_cast<int64_t>(states.size()) - 1; }
};

int Sign(int64_t a, int64_t b) { return a < b ? -1 : (a > b ? 1 : 0); }

// A Range over one state, all rules written out directly: take everything, filter, sort,
// cut at the limit.
etcdserverpb::RangeResponse ModelRangeAt(const ModelState& state, const RangeRequest& req,
                                         int64_t header_revision) {
  std::vector<mvccpb::KeyValue> kvs;
  for (const auto& [k, kv] : state) {
    if (InRange(k, req.key(), req.range_end())) kvs.push_back(ToProto(k, kv));
  }
  etcdserverpb::RangeResponse resp;
  resp.mutable_header()->set_revision(header_revision);
  resp.set_count(static_cast<int64_t>(kvs.size()));
  if (req.count_only()) return resp;
  // etcd quirk: without a sort order or filters only limit + 1 keys (in key order) are
  // fetched, and a non-KEY sort target then sorts just those.
  bool fetch_all = req.sort_order() != RangeRequest::NONE || req.min_mod_revision() != 0 ||
                   req.max_mod_revision() != 0 || req.min_create_revision() != 0 ||
                   req.max_create_revision() != 0;
  if (!fetch_all && req.limit() > 0 && static_cast<int64_t>(kvs.size()) > req.limit() + 1) {
    kvs.resize(static_cast<size_t>(req.limit() + 1));
  }
  std::vector<mvccpb::KeyValue> kept;
  for (const auto& kv : kvs) {
    if (req.max_mod_revision() != 0 && kv.mod_revision() > req.max_mod_revision()) continue;
    if (req.min_mod_revision() != 0 && kv.mod_revision() < req.min_mod_revision()) continue;
    if (req.max_create_revision() != 0 && kv.create_revision() > req.max_create_revision()) {
      continue;
    }
    if (req.min_create_revision() != 0 && kv.create_revision() < req.min_create_revision()) {
      continue;
    }
    kept.push_back(kv);
  }
  auto order = req.sort_order();
  if (order == RangeRequest::NONE && req.sort_target() != RangeRequest::KEY) {
    order = RangeRequest::ASCEND;
  }
  if (order != RangeRequest::NONE) {
    auto cmp = [&](const mvccpb::KeyValue& a, const mvccpb::KeyValue& b) {
      switch (req.sort_target()) {
        case RangeRequest::VERSION:
          return Sign(a.version(), b.version());
        case RangeRequest::CREATE:
          return Sign(a.create_revision(), b.create_revision());
        case RangeRequest::MOD:
          return Sign(a.mod_revision(), b.mod_revision());
        case RangeRequest::VALUE:
          return a.value() < b.value() ? -1 : (a.value() > b.value());
        default:
          return a.key() < b.key() ? -1 : (a.key() > b.key());
      }
    };
    // Insertion sort, as Go's sort.Sort does for small inputs.
    for (size_t i = 1; i < kept.size(); ++i) {
      for (size_t j = i; j > 0; --j) {
        int c = cmp(kept[j], kept[j - 1]);
        bool less = order == RangeRequest::ASCEND ? c < 0 : c > 0;
        if (!less) break;
        std::swap(kept[j], kept[j - 1]);
      }
    }
  }
  if (req.limit() > 0 && static_cast<int64_t>(kept.size()) > req.limit()) {
    kept.resize(static_cast<size_t>(req.limit()));
    resp.set_more(true);
  }
  for (auto& kv : kept) {
    if (req.keys_only()) kv.clear_value();
    *resp.add_kvs() = kv;
  }
  return resp;
}

// Range with etcd's revision rules: `latest` is the state at revision `current`.
Status ModelRange(const Model& model, const ModelState& latest, int64_t current,
                  const RangeRequest& req, etcdserverpb::RangeResponse* resp) {
  int64_t rev = req.revision();
  if (rev > current) return ErrFutureRev();
  if (rev <= 0) rev = current;
  if (rev < model.compacted) return ErrCompacted();
  const ModelState& state = rev == current ? latest : model.states[rev];
  *resp = ModelRangeAt(state, req, current);
  return Status::Ok();
}

bool ModelCompare(const ModelState& state, const Compare& c) {
  std::vector<ModelKv> matched;
  for (const auto& [k, kv] : state) {
    if (InRange(k, c.key(), c.range_end())) matched.push_back(kv);
  }
  auto holds = [&](const ModelKv& kv) {
    int r = 0;
    switch (c.target()) {
      case Compare::VALUE: {
        std::string want = c.target_union_case() == Compare::kValue ? c.value() : "";
        r = kv.value < want ? -1 : (kv.value > want ? 1 : 0);
        break;
      }
      case Compare::VERSION:
        r = Sign(kv.version, c.target_union_case() == Compare::kVersion ? c.version() : 0);
        break;
      case Compare::CREATE:
        r = Sign(kv.create_revision,
                 c.target_union_case() == Compare::kCreateRevision ? c.create_revision() : 0);
        break;
      case Compare::MOD:
        r = Sign(kv.mod_revision,
                 c.target_union_case() == Compare::kModRevision ? c.mod_revision() : 0);
        break;
      case Compare::LEASE:
        r = Sign(kv.lease, c.target_union_case() == Compare::kLease ? c.lease() : 0);
        break;
      default:
        break;
    }
    switch (c.result()) {
      case Compare::EQUAL:
        return r == 0;
      case Compare::NOT_EQUAL:
        return r != 0;
      case Compare::GREATER:
        return r > 0;
      case Compare::LESS:
        return r < 0;
      default:
        return true;
    }
  };
  if (matched.empty()) return c.target() != Compare::VALUE && holds(ModelKv{});
  return std::all_of(matched.begin(), matched.end(), holds);
}

// One command's execution in the model.
struct ModelCommand {
  const Model& model;
  int64_t begin;
  ModelState work;
  int64_t changes = 0;
  std::vector<mvccpb::Event> events;

  ModelCommand(const Model& m) : model(m), begin(m.current()), work(m.states.back()) {}
  int64_t rev() const { return begin + 1; }

  // etcd's watch: an event's prev_kv is the key at revision - 1, i.e. before this command;
  // a create event (create_revision == mod_revision) has none.
  void SetEventPrevKv(mvccpb::Event* event) const {
    const mvccpb::KeyValue& kv = event->kv();
    if (event->type() == mvccpb::Event::PUT && kv.create_revision() == kv.mod_revision()) return;
    const ModelState& before = model.states.back();
    auto it = before.find(kv.key());
    if (it != before.end()) *event->mutable_prev_kv() = ToProto(it->first, it->second);
  }

  Status Put(const etcdserverpb::PutRequest& req, etcdserverpb::PutResponse* resp) {
    auto it = work.find(req.key());
    bool found = it != work.end();
    if ((req.ignore_value() || req.ignore_lease()) && !found) return ErrKeyNotFound();
    ModelKv next;
    next.value = req.ignore_value() ? it->second.value : req.value();
    next.lease = req.ignore_lease() ? it->second.lease : req.lease();
    next.create_revision = found ? it->second.create_revision : rev();
    next.version = found ? it->second.version + 1 : 1;
    next.mod_revision = rev();
    mvccpb::Event event;
    event.set_type(mvccpb::Event::PUT);
    *event.mutable_kv() = ToProto(req.key(), next);
    if (found && req.prev_kv()) *resp->mutable_prev_kv() = ToProto(req.key(), it->second);
    SetEventPrevKv(&event);
    events.push_back(event);
    resp->mutable_header()->set_revision(rev());
    work[req.key()] = next;
    ++changes;
    return Status::Ok();
  }

  void Delete(const etcdserverpb::DeleteRangeRequest& req,
              etcdserverpb::DeleteRangeResponse* resp) {
    std::vector<std::string> doomed;
    for (const auto& [k, kv] : work) {
      if (InRange(k, req.key(), req.range_end())) doomed.push_back(k);
    }
    for (const auto& k : doomed) {
      mvccpb::Event event;
      event.set_type(mvccpb::Event::DELETE);
      event.mutable_kv()->set_key(k);
      event.mutable_kv()->set_mod_revision(rev());
      if (req.prev_kv()) *resp->add_prev_kvs() = ToProto(k, work[k]);
      SetEventPrevKv(&event);
      events.push_back(event);
      work.erase(k);
      ++changes;
    }
    resp->set_deleted(static_cast<int64_t>(doomed.size()));
    resp->mutable_header()->set_revision(changes > 0 ? rev() : begin);
  }

  void Path(const TxnRequest& txn, std::vector<bool>* path) {
    bool ok = true;
    for (const auto& c : txn.compare()) ok = ok && ModelCompare(model.states.back(), c);
    path->push_back(ok);
    for (const auto& op : ok ? txn.success() : txn.failure()) {
      if (op.has_request_txn()) Path(op.request_txn(), path);
    }
  }

  Status Check(const TxnRequest& txn, const std::vector<bool>& path, size_t* i, bool puts) {
    bool ok = path[(*i)++];
    for (const auto& op : ok ? txn.success() : txn.failure()) {
      if (op.has_request_txn()) {
        CAIRN_RETURN_IF_ERROR(Check(op.request_txn(), path, i, puts));
      } else if (puts && op.has_request_put()) {
        const auto& put = op.request_put();
        if ((put.ignore_value() || put.ignore_lease()) &&
            model.states.back().count(put.key()) == 0) {
          return ErrKeyNotFound();
        }
      } else if (!puts && op.has_request_range()) {
        int64_t r = op.request_range().revision();
        if (r == 0) continue;
        if (r > begin) return ErrFutureRev();
        if (r < model.compacted) return ErrCompacted();
      }
    }
    return Status::Ok();
  }

  Status Run(const TxnRequest& txn, const std::vector<bool>& path, size_t* i,
             etcdserverpb::TxnResponse* resp) {
    bool ok = path[(*i)++];
    resp->set_succeeded(ok);
    resp->mutable_header();
    for (const auto& op : ok ? txn.success() : txn.failure()) {
      auto* r = resp->add_responses();
      if (op.has_request_range()) {
        int64_t current = begin + (changes > 0 ? 1 : 0);
        CAIRN_RETURN_IF_ERROR(
            ModelRange(model, work, current, op.request_range(), r->mutable_response_range()));
      } else if (op.has_request_put()) {
        CAIRN_RETURN_IF_ERROR(Put(op.request_put(), r->mutable_response_put()));
      } else if (op.has_request_delete_range()) {
        Delete(op.request_delete_range(), r->mutable_response_delete_range());
      } else if (op.has_request_txn()) {
        CAIRN_RETURN_IF_ERROR(Run(op.request_txn(), path, i, r->mutable_response_txn()));
      }
    }
    return Status::Ok();
  }

  Status Txn(const TxnRequest& txn, etcdserverpb::TxnResponse* resp) {
    std::vector<bool> path;
    Path(txn, &path);
    size_t i = 0;
    if (!IsTxnReadOnly(txn)) CAIRN_RETURN_IF_ERROR(Check(txn, path, &i, true));
    i = 0;
    CAIRN_RETURN_IF_ERROR(Check(txn, path, &i, false));
    i = 0;
    CAIRN_RETURN_IF_ERROR(Run(txn, path, &i, resp));
    resp->mutable_header()->set_revision(changes > 0 ? rev() : begin);
    return Status::Ok();
  }
};

// ---------------------------------------------------------------------------------------
// Generators (values are drawn while the test runs, so revisions can follow the state).

// A uniform pick in [low, high): rapidcheck's inRange scales with the test size, which would
// make early cases short and skew every choice below towards its first option.
template <typename T>
T Pick(T low, T high) {
  return *rc::gen::resize(100, rc::gen::inRange<T>(low, high));
}

template <typename T>
T PickOf(const std::vector<T>& values) {
  return values[Pick<size_t>(0, values.size())];
}

const std::vector<std::string>& KeySpace() {
  static const std::vector<std::string> keys = {"a", std::string("a\0", 2), "ab", "b", "c", "d"};
  return keys;
}

std::string GenKey() { return PickOf(KeySpace()); }

std::string GenRangeEnd() {
  switch (Pick<int>(0, 5)) {
    case 0:
    case 1:
      return "";
    case 2:
      return std::string(1, '\0');
    case 3:
      return "z";
    default:
      return PickOf(KeySpace());  // may be reversed or empty
  }
}

// 0 most often; sometimes a readable old revision, sometimes a compacted, negative or
// future one.
int64_t GenRevision(const Model& model) {
  int pick = Pick<int>(0, 20);
  if (pick < 8) return 0;
  if (pick == 8) return -1;
  if (pick == 9) return model.current() + 1;
  int64_t low = std::max<int64_t>(1, model.compacted - 1);
  return Pick<int64_t>(low, model.current() + 1);
}

RangeRequest GenRange(const Model& model) {
  RangeRequest req;
  req.set_key(GenKey());
  req.set_range_end(GenRangeEnd());
  req.set_revision(GenRevision(model));
  if (Pick<int>(0, 3) == 0) req.set_limit(Pick<int>(-1, 4));
  if (Pick<int>(0, 3) == 0) {
    req.set_sort_order(static_cast<RangeRequest::SortOrder>(Pick<int>(0, 3)));
    req.set_sort_target(static_cast<RangeRequest::SortTarget>(Pick<int>(0, 5)));
  }
  if (Pick<int>(0, 5) == 0) req.set_min_mod_revision(Pick<int64_t>(0, 12));
  if (Pick<int>(0, 5) == 0) req.set_max_mod_revision(Pick<int64_t>(0, 12));
  if (Pick<int>(0, 5) == 0) {
    req.set_min_create_revision(Pick<int64_t>(0, 12));
  }
  if (Pick<int>(0, 5) == 0) {
    req.set_max_create_revision(Pick<int64_t>(0, 12));
  }
  req.set_keys_only(Pick<int>(0, 5) == 0);
  req.set_count_only(Pick<int>(0, 6) == 0);
  return req;
}

etcdserverpb::PutRequest GenPut() {
  etcdserverpb::PutRequest req;
  req.set_key(GenKey());
  int kind = Pick<int>(0, 8);
  if (kind == 0) {
    req.set_ignore_value(true);
  } else {
    req.set_value(PickOf(std::vector<std::string>{"", "1", "2", "10", "x"}));
  }
  if (kind == 1) {
    req.set_ignore_lease(true);
  } else {
    req.set_lease(Pick<int64_t>(0, 3));
  }
  req.set_prev_kv(*rc::gen::arbitrary<bool>());
  return req;
}

etcdserverpb::DeleteRangeRequest GenDelete() {
  etcdserverpb::DeleteRangeRequest req;
  req.set_key(GenKey());
  req.set_range_end(GenRangeEnd());
  req.set_prev_kv(*rc::gen::arbitrary<bool>());
  return req;
}

Compare GenCompare(const Model& model) {
  Compare c;
  c.set_key(GenKey());
  if (Pick<int>(0, 3) == 0) c.set_range_end(GenRangeEnd());
  c.set_target(static_cast<Compare::CompareTarget>(Pick<int>(0, 5)));
  c.set_result(static_cast<Compare::CompareResult>(Pick<int>(0, 4)));
  int64_t number = Pick<int64_t>(0, model.current() + 2);
  switch (Pick<int>(0, 7)) {
    case 0:
      c.set_version(number % 4);
      break;
    case 1:
      c.set_create_revision(number);
      break;
    case 2:
      c.set_mod_revision(number);
      break;
    case 3:
      c.set_lease(number % 3);
      break;
    case 4:
      c.set_value(PickOf(std::vector<std::string>{"", "1", "2", "x"}));
      break;
    default:
      break;  // unset target_union
  }
  return c;
}

TxnRequest GenTxn(const Model& model, int depth, bool read_only) {
  TxnRequest txn;
  int compares = Pick<int>(0, 3);
  for (int i = 0; i < compares; ++i) *txn.add_compare() = GenCompare(model);
  for (auto* ops : {txn.mutable_success(), txn.mutable_failure()}) {
    int n = Pick<int>(0, 4);
    for (int i = 0; i < n; ++i) {
      RequestOp* op = ops->Add();
      int kind = read_only ? 0 : Pick<int>(0, depth < 2 ? 7 : 6);
      if (kind <= 1) {
        *op->mutable_request_range() = GenRange(model);
      } else if (kind <= 3) {
        *op->mutable_request_put() = GenPut();
      } else if (kind <= 5) {
        *op->mutable_request_delete_range() = GenDelete();
      } else {
        *op->mutable_request_txn() = GenTxn(model, depth + 1, false);
      }
    }
  }
  return txn;
}

// ---------------------------------------------------------------------------------------
// The test.

// How often each outcome happened, printed at the end: a property test whose commands all
// fail validation would prove nothing.
std::map<std::string, int64_t>& Counters() {
  static std::map<std::string, int64_t> counters;
  return counters;
}
void Count(const std::string& what) { ++Counters()[what]; }

// CAIRN_MVCC_PROPERTY_VERBOSE=1 prints every command (use with RC_PARAMS="reproduce=...").
void Trace(const std::string& what, const google::protobuf::Message& message) {
  static const bool verbose = getenv("CAIRN_MVCC_PROPERTY_VERBOSE") != nullptr;
  if (verbose) std::fprintf(stderr, "%s %s\n", what.c_str(), message.ShortDebugString().c_str());
}

template <typename M>
void AssertSame(const Status& got_status, const M& got, const Status& want_status, const M& want,
                const char* what) {
  RC_ASSERT(got_status == want_status);
  if (!got_status.ok()) return;
  if (!google::protobuf::util::MessageDifferencer::Equals(got, want)) {
    RC_FAIL(std::string(what) + " differs\nKvState:\n" + got.DebugString() + "\nmodel:\n" +
            want.DebugString());
  }
}

void AssertSameEvents(const std::vector<mvccpb::Event>& got,
                      const std::vector<mvccpb::Event>& want) {
  RC_ASSERT(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    if (!google::protobuf::util::MessageDifferencer::Equals(got[i], want[i])) {
      RC_FAIL("event differs\nKvState:\n" + got[i].DebugString() + "\nmodel:\n" +
              want[i].DebugString());
    }
  }
}

struct Harness {
  // The store's key count blocks are tiny, so that the few keys split and merge them.
  explicit Harness(EngineKind kind)
      : store(kind, TinyCountBlocks(kind)), shadow(EngineKind::kMemory) {}
  static KvStateOptions TinyCountBlocks(EngineKind kind) {
    KvStateOptions options;
    options.key_count_block_keys = kind == EngineKind::kMemory ? 2 : 1;
    return options;
  }
  Store store;
  Store shadow;   // same commands, never compacted physically: HashKV must agree
  Model model;    // written batches plus the one being built
  Model written;  // written batches only: what readers see
  std::unique_ptr<storage::WriteBatch> batch;
  std::unique_ptr<storage::WriteBatch> shadow_batch;

  // Applies one command to the store, the shadow and the model; compares.
  void ApplyOne() {
    int kind = Pick<int>(0, 10);
    std::vector<mvccpb::Event> events;
    std::vector<mvccpb::Event> shadow_events;
    if (kind <= 2) {
      auto req = GenPut();
      Trace("put", req);
      etcdserverpb::PutResponse got;
      etcdserverpb::PutResponse want;
      Status status = store.kv()->ApplyPut(batch.get(), req, &got, &events);
      etcdserverpb::PutResponse ignored;
      RC_ASSERT(shadow.kv()->ApplyPut(shadow_batch.get(), req, &ignored, &shadow_events) == status);
      ModelCommand command(model);
      Status want_status = command.Put(req, &want);
      AssertSame(status, got, want_status, want, "put");
      if (status.ok()) Commit(command, events);
    } else if (kind <= 4) {
      auto req = GenDelete();
      Trace("delete", req);
      etcdserverpb::DeleteRangeResponse got;
      etcdserverpb::DeleteRangeResponse want;
      Status status = store.kv()->ApplyDeleteRange(batch.get(), req, &got, &events);
      etcdserverpb::DeleteRangeResponse ignored;
      RC_ASSERT(shadow.kv()->ApplyDeleteRange(shadow_batch.get(), req, &ignored, &shadow_events) ==
                status);
      ModelCommand command(model);
      command.Delete(req, &want);
      for (const auto& event : events) Trace("  event", event);
      AssertSame(status, got, Status::Ok(), want, "delete");
      Commit(command, events);
    } else if (kind <= 8) {
      auto req = GenTxn(model, 0, false);
      ValidationOptions options;
      options.reject_reversed_range = false;
      if (!ValidateTxn(req, options).ok()) {
        Count("txn: rejected by validation");
        return;  // never proposed
      }
      Trace("txn", req);
      etcdserverpb::TxnResponse got;
      etcdserverpb::TxnResponse want;
      Status status = store.kv()->ApplyTxn(batch.get(), req, &got, &events);
      etcdserverpb::TxnResponse ignored;
      RC_ASSERT(shadow.kv()->ApplyTxn(shadow_batch.get(), req, &ignored, &shadow_events) == status);
      ModelCommand command(model);
      Status want_status = command.Txn(req, &want);
      AssertSame(status, got, want_status, want, "txn");
      Count(status.ok() ? (command.changes > 0 ? "txn: changed" : "txn: no change")
                        : "txn: " + std::string(status.message()));
      if (status.ok()) Commit(command, events);
    } else {
      etcdserverpb::CompactionRequest req;
      req.set_revision(Pick<int64_t>(model.compacted, model.current() + 2));
      Trace("compaction", req);
      etcdserverpb::CompactionResponse got;
      Status status = store.kv()->ApplyCompaction(batch.get(), req, &got);
      etcdserverpb::CompactionResponse ignored;
      RC_ASSERT(shadow.kv()->ApplyCompaction(shadow_batch.get(), req, &ignored) == status);
      Status want_status;
      if (req.revision() <= model.compacted) {
        want_status = ErrCompacted();
      } else if (req.revision() > model.current()) {
        want_status = ErrFutureRev();
      } else {
        model.compacted = req.revision();
      }
      Count("compaction: " + (want_status.ok() ? std::string("ok") : want_status.ToString()));
      etcdserverpb::CompactionResponse want;
      want.mutable_header()->set_revision(model.current());
      AssertSame(status, got, want_status, want, "compaction");
    }
  }

  void Commit(const ModelCommand& command, const std::vector<mvccpb::Event>& events) {
    for (const auto& event : events) Trace("  event", event);
    AssertSameEvents(events, command.events);
    if (command.changes > 0) model.states.push_back(command.work);
  }

  // A batch of 1-4 commands, then written (or, rarely, dropped).
  void Batch() {
    batch = store.engine()->NewWriteBatch();
    shadow_batch = shadow.engine()->NewWriteBatch();
    int n = Pick<int>(1, 5);
    for (int i = 0; i < n; ++i) {
      ApplyOne();
      if (Pick<int>(0, 4) == 0) Read();  // readers see only written batches
    }
    if (Pick<int>(0, 12) == 0) {
      store.kv()->OnBatchAborted();
      shadow.kv()->OnBatchAborted();
      model = written;
      Trace("abort batch", etcdserverpb::ResponseHeader());
      Count("batch: aborted");
      return;
    }
    Trace("write batch", etcdserverpb::ResponseHeader());
    store.kv()->FinishBatch(batch.get());
    shadow.kv()->FinishBatch(shadow_batch.get());
    RC_ASSERT(store.engine()->Write(batch.get()).ok());
    RC_ASSERT(shadow.engine()->Write(shadow_batch.get()).ok());
    store.kv()->OnBatchWritten();
    shadow.kv()->OnBatchWritten();
    written = model;
    Count("batch: written");
    RC_ASSERT(store.kv()->CurrentRevision() == model.current());
    RC_ASSERT(store.kv()->CompactedRevision() == model.compacted);
  }

  void Read() {
    if (Pick<int>(0, 4) == 0) {
      auto req = GenTxn(written, 0, /*read_only=*/true);
      if (!ValidateTxnStructure(req).ok()) return;
      Trace("read-only txn", req);
      etcdserverpb::TxnResponse got;
      etcdserverpb::TxnResponse want;
      Status status = store.kv()->ReadOnlyTxn(req, &got);
      ModelCommand command(written);
      Status want_status = command.Txn(req, &want);
      AssertSame(status, got, want_status, want, "read-only txn");
      Count(status.ok() ? std::string("read-only txn: ok")
                        : "read-only txn: " + std::string(status.message()));
      return;
    }
    auto req = GenRange(written);
    Trace("range", req);
    etcdserverpb::RangeResponse got;
    etcdserverpb::RangeResponse want;
    Status status = store.kv()->Range(req, &got);
    Status want_status = ModelRange(written, written.states.back(), written.current(), req, &want);
    AssertSame(status, got, want_status, want, "range");
    Count(status.ok() ? std::string("range: ok") : "range: " + std::string(status.message()));
  }

  void CheckEverything() {
    for (int64_t rev = 1; rev <= written.current(); ++rev) {
      RangeRequest req;
      req.set_key(std::string(1, '\0'));
      req.set_range_end(std::string(1, '\0'));
      req.set_revision(rev);
      etcdserverpb::RangeResponse got;
      etcdserverpb::RangeResponse want;
      Status status = store.kv()->Range(req, &got);
      Status want_status =
          ModelRange(written, written.states.back(), written.current(), req, &want);
      AssertSame(status, got, want_status, want, "full range");
    }
    for (int64_t rev = std::max<int64_t>(0, written.compacted); rev <= written.current(); ++rev) {
      etcdserverpb::HashKVResponse got;
      etcdserverpb::HashKVResponse want;
      RC_ASSERT(store.kv()->HashKV(rev, &got).ok());
      RC_ASSERT(shadow.kv()->HashKV(rev, &want).ok());
      RC_ASSERT(got.hash() == want.hash());
      RC_ASSERT(got.compact_revision() == written.compacted);
    }
  }
};

void RunSequence(EngineKind kind) {
  Harness h(kind);
  int steps = Pick<int>(1, 60);
  for (int step = 0; step < steps; ++step) {
    int what = Pick<int>(0, 24);
    if (what < 16) {
      h.Batch();
    } else if (what < 22) {
      h.Read();
    } else if (what == 22) {
      Trace("reopen", etcdserverpb::ResponseHeader());
      h.store.Reopen();  // flush, reopen the engine (RocksDB) and KvState
      Count("reopen");
      RC_ASSERT(h.store.kv()->CurrentRevision() == h.written.current());
      RC_ASSERT(h.store.kv()->CompactedRevision() == h.written.compacted);
    } else {
      Trace("compact physically", etcdserverpb::ResponseHeader());
      RC_ASSERT(h.store.kv()->CompactPhysically().ok());
      Count("compact physically");
    }
  }
  h.CheckEverything();
  RC_ASSERT(h.store.kv()->CompactPhysically().ok());
  h.CheckEverything();
}

RC_GTEST_PROP(KvStatePropertyTest, MemoryEngineMatchesModel, ()) {
  RunSequence(EngineKind::kMemory);
}

RC_GTEST_PROP(KvStatePropertyTest, RocksDbEngineMatchesModel, ()) {
  RunSequence(EngineKind::kRocksDb);
}

TEST(KvStatePropertyTest, OutcomesWereVaried) {
  for (const auto& [what, n] : Counters())
    std::printf("%8lld  %s\n", static_cast<long long>(n), what.c_str());
  if (Counters().empty()) GTEST_SKIP() << "run with the property tests";
  EXPECT_GT(Counters()["txn: changed"], 100);
  EXPECT_GT(Counters()["txn: etcdserver: key not found"], 0);
  EXPECT_GT(Counters()["range: ok"], 100);
  EXPECT_GT(Counters()["range: etcdserver: mvcc: required revision has been compacted"], 0);
  EXPECT_GT(Counters()["batch: written"], 100);
  EXPECT_GT(Counters()["reopen"], 10);
}

}  // namespace
}  // namespace cairn::mvcc
