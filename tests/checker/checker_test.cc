// Tests of the linearizability checker: hand-written histories for each rule (linearizable and
// not), the text format, the Recorder under real threads, and randomized histories produced by
// running a sequential store at random points inside overlapping intervals (linearizable by
// construction) and then mutating one response (which must be caught).
#include "tests/checker/checker.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "tests/checker/history.h"

namespace cairn::checker {
namespace {

// ---- A sequential etcd-like store: the oracle the random histories are generated from ----

class SequentialStore {
 public:
  struct Version {
    std::string value;
    int64_t mod_revision = 0;
  };

  OpResult Apply(OpKind kind, const std::string& key, const std::string& value,
                 int64_t expected_mod_revision) {
    auto it = keys_.find(key);
    bool present = it != keys_.end();
    switch (kind) {
      case OpKind::kPut:
        keys_[key] = Version{value, ++revision_};
        return OpResult::PutOk(revision_);
      case OpKind::kGet:
        return present ? OpResult::GetFound(it->second.value, it->second.mod_revision, revision_)
                       : OpResult::GetNotFound(revision_);
      case OpKind::kDelete:
        if (!present) return OpResult::DeleteOk(0, revision_);
        keys_.erase(it);
        return OpResult::DeleteOk(1, ++revision_);
      case OpKind::kCas: {
        int64_t current = present ? it->second.mod_revision : 0;
        if (current != expected_mod_revision) {
          return present ? OpResult::CasFailedFound(it->second.value, current, revision_)
                         : OpResult::CasFailedNotFound(revision_);
        }
        keys_[key] = Version{value, ++revision_};
        return OpResult::CasSucceeded(revision_);
      }
    }
    return {};
  }

  int64_t revision() const { return revision_; }
  int64_t ModRevision(const std::string& key) const {
    auto it = keys_.find(key);
    return it == keys_.end() ? 0 : it->second.mod_revision;
  }

 private:
  std::map<std::string, Version> keys_;
  int64_t revision_ = 1;  // etcd starts at revision 1.
};

// ---- Hand-written histories ----

// Shorthands: times are plain integers, the unit does not matter.
Operation Put(uint32_t c, const std::string& k, const std::string& v, int64_t call, int64_t ret,
              int64_t rev) {
  return PutOp(c, k, v, call, ret, rev);
}
Operation GetFound(uint32_t c, const std::string& k, int64_t call, int64_t ret,
                   const std::string& v, int64_t mod, int64_t header) {
  return GetOp(c, k, call, ret, OpResult::GetFound(v, mod, header));
}
Operation GetMissing(uint32_t c, const std::string& k, int64_t call, int64_t ret, int64_t header) {
  return GetOp(c, k, call, ret, OpResult::GetNotFound(header));
}

History Make(std::vector<Operation> ops) {
  History h;
  for (Operation& op : ops) h.Append(std::move(op));
  return h;
}

void ExpectLinearizable(const History& h) {
  CheckResult r = Check(h);
  EXPECT_EQ(r.verdict, Verdict::kLinearizable) << r.ToString();
}

// Returns the result so that callers can look at the explanation.
CheckResult ExpectNotLinearizable(const History& h) {
  CheckResult r = Check(h);
  EXPECT_EQ(r.verdict, Verdict::kNotLinearizable) << r.ToString();
  EXPECT_FALSE(r.explanation.empty());
  EXPECT_FALSE(r.operations.empty());
  return r;
}

TEST(CheckerRules, EmptyHistoryIsLinearizable) { ExpectLinearizable(History()); }

TEST(CheckerRules, SequentialHistoryIsLinearizable) {
  ExpectLinearizable(Make({
      Put(1, "a", "1", 0, 10, 2),
      GetFound(2, "a", 20, 30, "1", 2, 2),
      Put(1, "a", "2", 40, 50, 3),
      GetFound(2, "a", 60, 70, "2", 3, 3),
      DeleteOp(1, "a", 80, 90, 1, 4),
      GetMissing(2, "a", 100, 110, 4),
      DeleteOp(1, "a", 120, 130, 0, 4),
  }));
}

TEST(CheckerRules, ConcurrentReadMaySeeEitherSide) {
  ExpectLinearizable(Make({
      Put(1, "x", "1", 0, 10, 2),
      Put(1, "x", "2", 20, 60, 3),
      GetFound(2, "x", 30, 40, "1", 2, 2),
      GetFound(3, "x", 30, 40, "2", 3, 3),
      GetFound(4, "x", 35, 100, "1", 2, 2),
  }));
}

TEST(CheckerRules, NewThenOldReadIsNotLinearizable) {
  // Client 2 sees the new value and returns; client 3 then sees the old one.
  ExpectNotLinearizable(Make({
      Put(1, "x", "1", 0, 10, 2),
      Put(1, "x", "2", 20, 60, 3),
      GetFound(2, "x", 30, 40, "2", 3, 3),
      GetFound(3, "x", 45, 55, "1", 2, 2),
  }));
}

TEST(CheckerRules, StaleReadIsCaughtAcrossRealTime) {
  CheckResult r = ExpectNotLinearizable(Make({
      Put(1, "x", "1", 0, 10, 2),
      Put(1, "x", "2", 20, 30, 3),
      GetFound(2, "x", 40, 50, "1", 2, 2),
  }));
  EXPECT_NE(r.explanation.find("stale read"), std::string::npos) << r.explanation;
  EXPECT_EQ(r.operations, (std::vector<size_t>{1, 2}));
}

TEST(CheckerRules, StaleValueAtAFreshRevisionIsCaughtPerKey) {
  // The header revision is current but the value is not: only the key's model sees it.
  CheckResult r = ExpectNotLinearizable(Make({
      Put(1, "x", "1", 0, 10, 2),
      Put(1, "x", "2", 20, 30, 3),
      GetFound(2, "x", 40, 50, "1", 2, 3),
  }));
  EXPECT_EQ(r.key, "x");
  EXPECT_NE(r.explanation.find("#2 c2 Get(\"x\")"), std::string::npos) << r.explanation;
}

TEST(CheckerRules, LostWriteIsNotLinearizable) {
  CheckResult r = ExpectNotLinearizable(Make({
      Put(1, "x", "1", 0, 10, 2),
      GetMissing(2, "x", 20, 30, 2),
  }));
  EXPECT_EQ(r.key, "x");
}

TEST(CheckerRules, ReadAtRevisionOfAConcurrentWriteMustSeeIt) {
  // The read is concurrent with the put, but its header revision says the put came first.
  ExpectLinearizable(Make({Put(1, "x", "1", 0, 100, 5), GetMissing(2, "x", 10, 20, 4)}));
  ExpectNotLinearizable(Make({Put(1, "x", "1", 0, 100, 5), GetMissing(2, "x", 10, 20, 6)}));
}

TEST(CheckerRules, WritesWithReorderedRevisionsAreNotLinearizable) {
  CheckResult r = ExpectNotLinearizable(Make({
      Put(1, "x", "1", 0, 10, 5),
      Put(2, "y", "1", 20, 30, 3),
  }));
  EXPECT_EQ(r.operations, (std::vector<size_t>{0, 1}));
  // Concurrent writes may take revisions in either order.
  ExpectLinearizable(Make({Put(1, "x", "1", 0, 25, 5), Put(2, "y", "1", 20, 30, 3)}));
}

TEST(CheckerRules, ReadRevisionMustNotGoBackwards) {
  ExpectNotLinearizable(Make({
      Put(1, "x", "1", 0, 10, 2), Put(1, "y", "1", 20, 30, 3), GetFound(2, "y", 40, 50, "1", 3, 3),
      GetFound(3, "x", 60, 70, "1", 2, 2),  // Header 2 after a read at 3 returned.
  }));
}

TEST(CheckerRules, DuplicateRevisionIsNotLinearizable) {
  CheckResult r = ExpectNotLinearizable(Make({
      Put(1, "x", "1", 0, 10, 3),
      Put(2, "y", "1", 0, 10, 3),
  }));
  EXPECT_NE(r.explanation.find("revision 3"), std::string::npos) << r.explanation;
}

TEST(CheckerRules, CasSucceedingTwiceOnOneRevisionIsNotLinearizable) {
  CheckResult r = ExpectNotLinearizable(Make({
      Put(1, "x", "a", 0, 10, 2),
      CasOp(2, "x", 2, "b", 20, 40, OpResult::CasSucceeded(3)),
      CasOp(3, "x", 2, "c", 20, 40, OpResult::CasSucceeded(4)),
  }));
  EXPECT_EQ(r.key, "x");
  // One of them failing and reading the other's write is fine.
  ExpectLinearizable(Make({
      Put(1, "x", "a", 0, 10, 2),
      CasOp(2, "x", 2, "b", 20, 40, OpResult::CasSucceeded(3)),
      CasOp(3, "x", 2, "c", 20, 40, OpResult::CasFailedFound("b", 3, 3)),
  }));
}

TEST(CheckerRules, CasOnAbsentKey) {
  ExpectLinearizable(Make({
      CasOp(1, "x", 0, "a", 0, 10, OpResult::CasSucceeded(2)),
      CasOp(2, "x", 0, "b", 20, 30, OpResult::CasFailedFound("a", 2, 2)),
  }));
  ExpectNotLinearizable(Make({
      Put(1, "x", "a", 0, 10, 2),
      CasOp(2, "x", 0, "b", 20, 30, OpResult::CasSucceeded(3)),
  }));
  // A failed Cas must really fail its compare.
  ExpectNotLinearizable(Make({
      Put(1, "x", "a", 0, 10, 2),
      CasOp(2, "x", 2, "b", 20, 30, OpResult::CasFailedFound("a", 2, 2)),
  }));
}

TEST(CheckerRules, ReadOfAValueNeverWrittenIsNotLinearizable) {
  CheckResult r = ExpectNotLinearizable(Make({
      Put(1, "x", "1", 0, 10, 2),
      GetFound(2, "x", 20, 30, "zzz", 2, 2),
  }));
  EXPECT_NE(r.explanation.find("no write"), std::string::npos) << r.explanation;
}

TEST(CheckerRules, ReadOfAnotherKeysRevisionIsNotLinearizable) {
  // y = "1" was written, but revision 3 belongs to the write of x.
  ExpectNotLinearizable(Make({
      Indeterminate(Put(1, "y", "1", 0, 0, 0)),
      Put(2, "x", "1", 0, 10, 3),
      GetFound(3, "y", 20, 30, "1", 3, 3),
  }));
}

TEST(CheckerRules, IndeterminatePutObservedLaterIsLinearizable) {
  ExpectLinearizable(Make({
      Indeterminate(Put(1, "x", "1", 0, 0, 0)),
      GetMissing(2, "x", 100, 110, 1),        // Not applied yet...
      GetFound(2, "x", 200, 210, "1", 7, 7),  // ...applied late, at revision 7.
      GetFound(3, "x", 300, 310, "1", 7, 9),
  }));
}

TEST(CheckerRules, IndeterminatePutNeverObservedIsLinearizable) {
  ExpectLinearizable(Make({
      Indeterminate(Put(1, "x", "1", 0, 0, 0)),
      GetMissing(2, "x", 100, 110, 1),
      Put(3, "x", "2", 120, 130, 2),
      GetFound(2, "x", 200, 210, "2", 2, 2),
  }));
}

TEST(CheckerRules, IndeterminatePutCannotBeSeenThenUnseen) {
  ExpectNotLinearizable(Make({
      Indeterminate(Put(1, "x", "1", 0, 0, 0)),
      GetFound(2, "x", 100, 110, "1", 7, 7),
      GetMissing(2, "x", 200, 210, 7),
  }));
}

TEST(CheckerRules, IndeterminatePutCannotBeSeenBeforeItsCall) {
  ExpectNotLinearizable(Make({
      GetFound(2, "x", 0, 10, "1", 3, 3),
      Indeterminate(Put(1, "x", "1", 20, 0, 0)),
  }));
}

TEST(CheckerRules, IndeterminatePutRevisionMustBeFresh) {
  // The late put cannot have revision 2: a read at revision 5 already saw the key absent.
  ExpectNotLinearizable(Make({
      Indeterminate(Put(1, "x", "1", 0, 0, 0)),
      GetMissing(2, "x", 100, 110, 5),
      GetFound(3, "x", 200, 210, "1", 2, 6),
  }));
}

TEST(CheckerRules, DefinitelyFailedPutIsIgnored) {
  ExpectNotLinearizable(Make({
      Operation{.client_id = 1,
                .kind = OpKind::kPut,
                .key = "x",
                .value = "1",
                .call_time_ns = 0,
                .result = OpResult::DefinitelyFailed()},
      GetFound(2, "x", 100, 110, "1", 2, 2),
  }));
}

TEST(CheckerRules, DeleteNeedsAPresentKey) {
  ExpectNotLinearizable(Make({DeleteOp(1, "x", 0, 10, 1, 2)}));
  // An indeterminate put can explain it.
  ExpectLinearizable(Make({
      Indeterminate(Put(1, "x", "1", 0, 0, 0)),
      DeleteOp(2, "x", 100, 110, 1, 3),
      GetMissing(2, "x", 120, 130, 3),
  }));
}

TEST(CheckerRules, IndeterminateDeleteMayHappenLate) {
  ExpectLinearizable(Make({
      Put(1, "x", "1", 0, 10, 2),
      Indeterminate(DeleteOp(1, "x", 20, 0, 0, 0)),
      GetFound(2, "x", 100, 110, "1", 2, 2),
      GetMissing(2, "x", 200, 210, 3),
  }));
}

TEST(CheckerRules, IndeterminateCasPinnedByLaterCas) {
  // The indeterminate put's revision is only learned from the Cas that compares against it.
  ExpectLinearizable(Make({
      Indeterminate(Put(1, "x", "1", 0, 0, 0)),
      CasOp(2, "x", 4, "2", 100, 110, OpResult::CasSucceeded(5)),
      GetFound(3, "x", 120, 130, "2", 5, 5),
  }));
  // ...but not if revision 4 is owned by another write.
  ExpectNotLinearizable(Make({
      Indeterminate(Put(1, "x", "1", 0, 0, 0)),
      Put(4, "y", "1", 0, 10, 4),
      CasOp(2, "x", 4, "2", 100, 110, OpResult::CasSucceeded(5)),
  }));
}

TEST(CheckerRules, InvalidHistoryIsReported) {
  CheckResult r = Check(Make({Put(1, "x", "1", 10, 5, 2)}));
  EXPECT_EQ(r.verdict, Verdict::kInvalidHistory);
  EXPECT_NE(r.explanation.find("returned before it was called"), std::string::npos);
  r = Check(Make({GetFound(1, "x", 0, 5, "1", 9, 3)}));
  EXPECT_EQ(r.verdict, Verdict::kInvalidHistory) << r.ToString();
}

TEST(CheckerRules, ExplanationNamesTheDeepestPartialLinearization) {
  CheckResult r = ExpectNotLinearizable(Make({
      Put(1, "k", "a", 0, 10, 2), GetFound(2, "k", 20, 30, "a", 2, 2), Put(1, "k", "b", 40, 50, 3),
      GetFound(2, "k", 60, 70, "a", 2, 3),  // Stale at a current header.
  }));
  EXPECT_EQ(r.key, "k");
  EXPECT_NE(r.explanation.find("placed 3 of 4"), std::string::npos) << r.explanation;
  EXPECT_NE(r.explanation.find("mod_revision 3"), std::string::npos) << r.explanation;
  EXPECT_NE(r.explanation.find("#3 c2 Get(\"k\") -> \"a\" mod 2 @3 [60, 70]"), std::string::npos)
      << r.explanation;
}

// ---- Text format ----

TEST(HistoryFormat, RoundTripsEveryField) {
  History h = Make({
      Put(1, "tab\there", "new\nline\\ and \x01\xff", 5, 10, 2),
      GetFound(2, "k", 20, 30, "v\r", 2, 3),
      Indeterminate(CasOp(3, "k", 7, "w", 40, 0, {})),
      DeleteOp(4, "", 50, 60, 0, 3),
      Operation{.client_id = 9,
                .kind = OpKind::kPut,
                .key = "k",
                .value = "x",
                .call_time_ns = -5,
                .result = OpResult::DefinitelyFailed()},
  });
  std::string text = SerializeHistory(h);
  Result<History> parsed = ParseHistory(text);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  ASSERT_EQ(parsed->size(), h.size());
  for (size_t i = 0; i < h.size(); ++i) {
    EXPECT_EQ((*parsed)[i].ToString(), h[i].ToString());
    EXPECT_EQ((*parsed)[i].key, h[i].key);
    EXPECT_EQ((*parsed)[i].value, h[i].value);
    EXPECT_EQ((*parsed)[i].result.read_value, h[i].result.read_value);
    EXPECT_EQ((*parsed)[i].return_time_ns, h[i].return_time_ns);
    EXPECT_EQ((*parsed)[i].result.outcome, h[i].result.outcome);
  }
  EXPECT_EQ(SerializeHistory(*parsed), text);
}

TEST(HistoryFormat, RejectsMalformedLinesWithTheirNumber) {
  Result<History> parsed = ParseHistory("# cairn-history v1\n1\tput\tk\n");
  ASSERT_FALSE(parsed.ok());
  EXPECT_NE(parsed.status().ToString().find("line 2"), std::string::npos);
  EXPECT_FALSE(ParseHistory("1\tjump\tk\tv\t0\t0\t1\tok\t2\t0\t\t0\t0\t0\n").ok());
  EXPECT_FALSE(ParseHistory("1\tput\tk\tv\\q\t0\t0\t1\tok\t2\t0\t\t0\t0\t0\n").ok());
  EXPECT_FALSE(ParseHistory("1\tput\tk\tv\\x4\t0\t0\t1\tok\t2\t0\t\t0\t0\t0\n").ok());
  EXPECT_TRUE(ParseHistory("1\tput\tk\tv\\x41\t0\t0\t1\tok\t2\t0\t\t0\t0\t0\n").ok());
}

TEST(HistoryFormat, FileRoundTripKeepsTheVerdict) {
  History h = Make({Put(1, "x", "1", 0, 10, 2), GetMissing(2, "x", 20, 30, 2)});
  std::string path = ::testing::TempDir() + "/checker_test_history.tsv";
  ASSERT_TRUE(WriteHistoryFile(h, path).ok());
  Result<History> read = ReadHistoryFile(path);
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  EXPECT_EQ(Check(*read).verdict, Verdict::kNotLinearizable);
  std::remove(path.c_str());
  EXPECT_FALSE(ReadHistoryFile(path).ok());
}

// ---- Recorder with real threads against a locked store ----

TEST(Recorder, ConcurrentClientsOfALockedStoreAreLinearizable) {
  SequentialStore store;
  std::mutex store_mutex;
  auto epoch = std::chrono::steady_clock::now();
  Recorder recorder([epoch] {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() -
                                                                epoch)
        .count();
  });
  constexpr int kThreads = 8;
  constexpr int kOpsPerThread = 500;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(t);
      for (int i = 0; i < kOpsPerThread; ++i) {
        auto kind = static_cast<OpKind>(rng() % 4);
        std::string key = "k" + std::to_string(rng() % 4);
        std::string value = std::to_string(t) + "-" + std::to_string(i);
        int64_t expected = 0;
        {
          std::lock_guard<std::mutex> lock(store_mutex);
          expected = rng() % 2 ? store.ModRevision(key) : 0;
        }
        auto handle = recorder.Invoke(t, kind, key, value, expected);
        OpResult result;
        {
          std::lock_guard<std::mutex> lock(store_mutex);
          result = store.Apply(kind, key, value, expected);
        }
        // Every 50th response is lost; the operation took effect anyway.
        recorder.Complete(handle, i % 50 == 7 ? OpResult::Indeterminate() : result);
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  History history = recorder.Snapshot();
  ASSERT_EQ(history.size(), size_t{kThreads * kOpsPerThread});
  CheckResult r = Check(history);
  EXPECT_EQ(r.verdict, Verdict::kLinearizable) << r.ToString();
  size_t dropped = 0;  // Indeterminate reads are dropped before the search.
  for (const Operation& op : history.ops()) dropped += !op.definite() && op.kind == OpKind::kGet;
  EXPECT_EQ(r.stats.operations, history.size() - dropped);
}

TEST(Recorder, UncompletedOperationsAreIndeterminate) {
  int64_t now = 0;
  Recorder recorder([&now] { return now += 10; });
  auto a = recorder.Invoke(1, OpKind::kPut, "x", "1");
  recorder.Invoke(2, OpKind::kGet, "x");
  recorder.Complete(a, OpResult::PutOk(2));
  History h = recorder.Snapshot();
  ASSERT_EQ(h.size(), 2u);
  EXPECT_EQ(h[0].call_time_ns, 10);
  EXPECT_EQ(h[0].return_time_ns, 30);
  EXPECT_TRUE(h[0].definite());
  EXPECT_EQ(h[1].result.outcome, Outcome::kIndeterminate);
  EXPECT_EQ(h[1].return_time_ns, kNeverNs);
}

// ---- Randomized histories ----

struct GeneratorOptions {
  uint64_t seed = 1;
  int clients = 10;
  int keys = 5;
  int operations = 1000;
  double indeterminate_probability = 0.02;  // Half of them take effect (maybe late).
  double failed_probability = 0.01;         // Definitely failed: no effect.
  bool unique_values = true;
  int64_t duration_ns_max = 1000;
};

struct Planned {
  Operation op;
  int64_t effect_time_ns;  // When it takes effect on the store; -1: never.
};

// Per client, a sequence of calls; each operation takes effect at a random point inside its
// interval (indeterminate ones possibly long after the client gave up).
std::vector<Planned> PlanOperations(const GeneratorOptions& options, std::mt19937_64& rng) {
  std::vector<Planned> planned;
  auto uniform = [&rng](int64_t lo, int64_t hi) {
    return std::uniform_int_distribution<int64_t>(lo, hi)(rng);
  };
  std::uniform_real_distribution<double> unit(0, 1);
  std::vector<int64_t> client_time(options.clients);
  for (int64_t& t : client_time) t = uniform(0, options.duration_ns_max);
  for (int i = 0; i < options.operations; ++i) {
    auto client = static_cast<uint32_t>(uniform(0, options.clients - 1));
    int64_t call = client_time[client] + uniform(0, options.duration_ns_max / 4);
    int64_t duration = uniform(1, options.duration_ns_max);
    double kind_draw = unit(rng);
    OpKind kind = kind_draw < 0.4   ? OpKind::kGet
                  : kind_draw < 0.7 ? OpKind::kPut
                  : kind_draw < 0.8 ? OpKind::kDelete
                                    : OpKind::kCas;
    std::string value = options.unique_values
                            ? "c" + std::to_string(client) + "-" + std::to_string(i)
                            : "v" + std::to_string(uniform(0, 2));
    Operation op{.client_id = client,
                 .kind = kind,
                 .key = "key" + std::to_string(uniform(0, options.keys - 1)),
                 .value = value,
                 .call_time_ns = call};
    Planned p{.op = op, .effect_time_ns = call + uniform(0, duration)};
    double outcome = unit(rng);
    if (outcome < options.indeterminate_probability) {
      p.op.result = OpResult::Indeterminate();
      if (uniform(0, 1) == 0)
        p.effect_time_ns = -1;
      else
        p.effect_time_ns = call + uniform(0, 5 * options.duration_ns_max);
    } else if (outcome < options.indeterminate_probability + options.failed_probability) {
      p.op.result = OpResult::DefinitelyFailed();
      p.effect_time_ns = -1;
    } else {
      p.op.result.outcome = Outcome::kOk;
      p.op.return_time_ns = call + duration;
    }
    client_time[client] = call + duration;
    planned.push_back(std::move(p));
  }
  return planned;
}

// A linearizable history: the planned operations run on a SequentialStore in effect order.
History GenerateHistory(const GeneratorOptions& options) {
  std::mt19937_64 rng(options.seed);
  std::vector<Planned> planned = PlanOperations(options, rng);
  std::vector<size_t> order;
  for (size_t i = 0; i < planned.size(); ++i) {
    if (planned[i].effect_time_ns >= 0) order.push_back(i);
  }
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return planned[a].effect_time_ns < planned[b].effect_time_ns;
  });
  SequentialStore store;
  for (size_t i : order) {
    Operation& op = planned[i].op;
    if (op.kind == OpKind::kCas) {
      // Mostly the current revision (so that some succeed), sometimes absent or a guess.
      uint64_t draw = rng() % 4;
      op.expected_mod_revision = draw < 2    ? store.ModRevision(op.key)
                                 : draw == 2 ? 0
                                             : static_cast<int64_t>(rng() % store.revision()) + 1;
    }
    OpResult result = store.Apply(op.kind, op.key, op.value, op.expected_mod_revision);
    if (op.result.outcome == Outcome::kOk) op.result = result;
  }
  History history;
  for (Planned& p : planned) {
    if (p.op.result.outcome != Outcome::kOk) p.op.return_time_ns = kNeverNs;
    history.Append(std::move(p.op));
  }
  return history;
}

// Changes one response so that the history is (almost always) not linearizable. Returns a
// description, or nullopt when the history offers no candidate for the chosen mutation.
std::optional<std::string> Mutate(History* history, std::mt19937_64& rng) {
  // For each key, its definite successful writes in revision order.
  std::map<std::string, std::vector<size_t>> writes;
  for (size_t i = 0; i < history->size(); ++i) {
    if ((*history)[i].IsSuccessfulWrite()) writes[(*history)[i].key].push_back(i);
  }
  for (auto& [key, list] : writes) {
    std::sort(list.begin(), list.end(), [&](size_t a, size_t b) {
      return (*history)[a].result.header_revision < (*history)[b].result.header_revision;
    });
  }
  std::vector<size_t> reads;  // Definite Gets whose version a definite Put wrote.
  for (size_t i = 0; i < history->size(); ++i) {
    const Operation& op = (*history)[i];
    if (op.definite() && op.kind == OpKind::kGet && op.result.found) reads.push_back(i);
  }
  if (reads.empty()) return std::nullopt;
  size_t index = reads[rng() % reads.size()];
  Operation& read = history->mutable_op(index);
  const std::vector<size_t>& key_writes = writes[read.key];
  auto current = std::find_if(key_writes.begin(), key_writes.end(), [&](size_t w) {
    return (*history)[w].result.header_revision == read.result.read_mod_revision;
  });
  switch (rng() % 3) {
    case 0: {  // Stale: return the version before the one read.
      if (current == key_writes.end() || current == key_writes.begin()) return std::nullopt;
      const Operation& older = (*history)[*(current - 1)];
      if (older.kind == OpKind::kDelete) {
        read.result = OpResult::GetNotFound(read.result.header_revision);
      } else {
        read.result.read_value = older.value;
        read.result.read_mod_revision = older.result.header_revision;
      }
      return "stale read #" + std::to_string(index);
    }
    case 1:  // Lost write: the key reads as absent.
      if (current == key_writes.end()) return std::nullopt;
      read.result = OpResult::GetNotFound(read.result.header_revision);
      return "lost write, read #" + std::to_string(index);
    default: {  // Future read: the version after the one read, at the read's own header.
      if (current == key_writes.end() || current + 1 == key_writes.end()) return std::nullopt;
      const Operation& newer = (*history)[*(current + 1)];
      if (newer.kind == OpKind::kDelete || newer.call_time_ns <= read.return_time_ns) {
        return std::nullopt;  // A concurrent newer write could legitimately be seen.
      }
      read.result.read_value = newer.value;
      read.result.read_mod_revision = newer.result.header_revision;
      read.result.header_revision =
          std::max(read.result.header_revision, newer.result.header_revision);
      return "read from the future #" + std::to_string(index);
    }
  }
}

TEST(CheckerRandom, GeneratedHistoriesAreLinearizable) {
  for (uint64_t seed = 1; seed <= 200; ++seed) {
    GeneratorOptions options{.seed = seed,
                             .clients = static_cast<int>(2 + seed % 12),
                             .keys = static_cast<int>(1 + seed % 4),
                             .operations = 300,
                             .indeterminate_probability = seed % 3 == 0 ? 0.1 : 0.02,
                             .unique_values = seed % 5 != 0};
    History h = GenerateHistory(options);
    CheckResult r = Check(h);
    ASSERT_EQ(r.verdict, Verdict::kLinearizable) << "seed " << seed << "\n" << r.ToString();
  }
}

TEST(CheckerRandom, MutatedHistoriesAreNotLinearizable) {
  int mutated = 0;
  int caught = 0;
  int timed_out = 0;
  for (uint64_t seed = 1; seed <= 300; ++seed) {
    GeneratorOptions options{.seed = seed,
                             .clients = static_cast<int>(2 + seed % 12),
                             .keys = static_cast<int>(1 + seed % 4),
                             .operations = 300,
                             .indeterminate_probability = seed % 3 == 0 ? 0.05 : 0.01};
    History h = GenerateHistory(options);
    std::mt19937_64 rng(seed);
    std::optional<std::string> mutation = Mutate(&h, rng);
    if (!mutation) continue;
    ++mutated;
    CheckResult r = Check(h, CheckOptions{.time_budget_ms = 10'000});
    ASSERT_NE(r.verdict, Verdict::kInvalidHistory) << r.ToString();
    if (r.verdict == Verdict::kNotLinearizable) ++caught;
    if (r.verdict == Verdict::kTimedOut) ++timed_out;
    // Deterministic by seed: the same history gets the same verdict and explanation.
    if (seed % 50 == 0) {
      CheckResult again = Check(h, CheckOptions{.time_budget_ms = 10'000});
      EXPECT_EQ(again.verdict, r.verdict);
      EXPECT_EQ(again.explanation, r.explanation);
    }
  }
  std::printf("mutated %d histories: %d caught, %d timed out\n", mutated, caught, timed_out);
  ASSERT_GE(mutated, 150);
  EXPECT_EQ(timed_out, 0);
  // A mutation escapes only where an indeterminate write can explain it.
  EXPECT_GE(caught * 100, mutated * 95);
}

// ---- Cross-check against brute force on small histories ----

// A reference for small histories: the whole store (all keys, one revision counter) as a
// state, and every order of every subset of the indeterminate operations tried, with no
// pruning and no memo. Like Check, it lets revisions skip (writes nobody recorded) and lets an
// indeterminate write take any revision that is free at its point; unlike Check, it also
// keeps indeterminate writes on different keys from sharing a revision.
struct ReferenceState {
  struct Key {
    std::string value;
    int64_t mod_revision;
  };
  std::map<std::string, Key> keys;
  int64_t revision = 0;
  std::set<int64_t> used;

  int64_t ModRevision(const std::string& key) const {
    auto it = keys.find(key);
    return it == keys.end() ? 0 : it->second.mod_revision;
  }
  bool Write(const Operation& op, int64_t revision_new, bool remove) {
    if (revision_new <= revision || used.count(revision_new) != 0) return false;
    if (remove) {
      keys.erase(op.key);
    } else {
      keys[op.key] = Key{op.value, revision_new};
    }
    revision = revision_new;
    used.insert(revision_new);
    return true;
  }
  bool Read(const Operation& op) {
    const OpResult& r = op.result;
    auto it = keys.find(op.key);
    if (r.header_revision < revision || r.found != (it != keys.end())) return false;
    if (r.found &&
        (it->second.value != r.read_value || it->second.mod_revision != r.read_mod_revision)) {
      return false;
    }
    revision = r.header_revision;
    return true;
  }
};

// The successor states of `op` in `state` (several for an indeterminate write: one per
// revision it may take, from `revisions`; none when it cannot apply or would do nothing).
std::vector<ReferenceState> ReferenceStep(const ReferenceState& state, const Operation& op,
                                          const std::set<int64_t>& revisions) {
  bool present = state.keys.count(op.key) != 0;
  bool writes =
      op.kind == OpKind::kPut ||
      (op.kind == OpKind::kCas && state.ModRevision(op.key) == op.expected_mod_revision) ||
      (op.kind == OpKind::kDelete && present);
  bool remove = op.kind == OpKind::kDelete;
  std::vector<ReferenceState> out;
  if (!op.definite()) {
    if (!writes) return out;
    for (int64_t revision : revisions) {
      ReferenceState next = state;
      if (next.Write(op, revision, remove)) out.push_back(std::move(next));
    }
    return out;
  }
  ReferenceState next = state;
  const OpResult& r = op.result;
  bool ok = false;
  switch (op.kind) {
    case OpKind::kPut:
      ok = next.Write(op, r.header_revision, false);
      break;
    case OpKind::kGet:
      ok = next.Read(op);
      break;
    case OpKind::kDelete:
      if ((r.deleted_count == 1) != writes) break;
      if (writes) {
        ok = next.Write(op, r.header_revision, true);
      } else if (r.header_revision >= next.revision) {
        next.revision = r.header_revision;
        ok = true;
      }
      break;
    case OpKind::kCas:
      ok = r.succeeded == writes &&
           (writes ? next.Write(op, r.header_revision, false) : next.Read(op));
      break;
  }
  if (ok) out.push_back(std::move(next));
  return out;
}

bool ReferenceLinearizable(const History& h, std::vector<bool>& done, const ReferenceState& state,
                           const std::set<int64_t>& revisions) {
  bool all_definite_done = true;
  for (size_t i = 0; i < h.size(); ++i) {
    if (!done[i] && h[i].definite()) all_definite_done = false;
  }
  if (all_definite_done) return true;
  for (size_t i = 0; i < h.size(); ++i) {
    if (done[i] || h[i].result.outcome == Outcome::kDefinitelyFailed) continue;
    bool minimal = true;  // No pending definite operation returned before this one's call.
    for (size_t j = 0; j < h.size(); ++j) {
      if (!done[j] && j != i && h[j].definite() && h[j].return_time_ns < h[i].call_time_ns) {
        minimal = false;
      }
    }
    if (!minimal) continue;
    for (const ReferenceState& next : ReferenceStep(state, h[i], revisions)) {
      done[i] = true;
      bool ok = ReferenceLinearizable(h, done, next, revisions);
      done[i] = false;
      if (ok) return true;
    }
  }
  return false;
}

bool ReferenceLinearizable(const History& h) {
  // The revisions worth trying for indeterminate writes: every one up to the largest the
  // history names, and room above it for each operation.
  int64_t largest = 0;
  for (const Operation& op : h.ops()) {
    largest = std::max({largest, op.result.header_revision, op.result.read_mod_revision,
                        op.expected_mod_revision});
  }
  std::set<int64_t> revisions;
  for (int64_t r = 1; r <= largest + static_cast<int64_t>(h.size()); ++r) revisions.insert(r);
  std::vector<bool> done(h.size(), false);
  return ReferenceLinearizable(h, done, ReferenceState(), revisions);
}

void MutateSlightly(History* h, std::mt19937_64& rng) {
  Operation& op = h->mutable_op(rng() % h->size());
  if (!op.definite()) return;
  OpResult& r = op.result;
  switch (rng() % 6) {
    case 0:
      r.header_revision += rng() % 2 ? 1 : -1;
      break;
    case 1:
      r.found = !r.found;
      if (r.found) r.read_mod_revision = r.header_revision;
      break;
    case 2:
      r.read_mod_revision += rng() % 2 ? 1 : -1;
      break;
    case 3:
      r.succeeded = !r.succeeded;
      r.deleted_count = 1 - r.deleted_count;
      break;
    case 4:
      op.call_time_ns += static_cast<int64_t>(rng() % 400) - 200;
      break;
    default:
      op.return_time_ns += static_cast<int64_t>(rng() % 400) - 200;
      break;
  }
}

TEST(CheckerRandom, AgreesWithReferenceOnSmallHistories) {
  int linearizable = 0;
  int not_linearizable = 0;
  // CAIRN_CHECKER_SEEDS=N runs N seeds instead (for a longer soak).
  const char* seeds_env = std::getenv("CAIRN_CHECKER_SEEDS");
  const uint64_t seeds = seeds_env != nullptr ? std::strtoull(seeds_env, nullptr, 10) : 3000;
  for (uint64_t seed = 1; seed <= seeds; ++seed) {
    GeneratorOptions options{.seed = seed,
                             .clients = 3,
                             .keys = static_cast<int>(1 + seed % 2),
                             .operations = static_cast<int>(4 + seed % 4 + seeds / 20'000),
                             .indeterminate_probability = 0.25,
                             .failed_probability = 0.05,
                             .unique_values = seed % 3 != 0,
                             .duration_ns_max = 300};
    History h = GenerateHistory(options);
    std::mt19937_64 rng(seed);
    if (seed % 4 != 0) MutateSlightly(&h, rng);
    if (!h.Validate().ok()) continue;
    bool expected = ReferenceLinearizable(h);
    CheckResult r = Check(h);
    ASSERT_EQ(r.verdict, expected ? Verdict::kLinearizable : Verdict::kNotLinearizable)
        << "seed " << seed << "\n"
        << SerializeHistory(h) << r.ToString();
    ++(expected ? linearizable : not_linearizable);
  }
  std::printf("reference: %d linearizable, %d not\n", linearizable, not_linearizable);
  EXPECT_GE(linearizable, seeds / 3);
  EXPECT_GE(not_linearizable, seeds / 12);
}

TEST(CheckerRandom, GenerationIsDeterministicBySeed) {
  GeneratorOptions options{.seed = 42, .operations = 500};
  EXPECT_EQ(SerializeHistory(GenerateHistory(options)), SerializeHistory(GenerateHistory(options)));
}

// ---- Large histories ----

struct LargeCase {
  int operations;
  int keys;
  int clients;
  double indeterminate_probability;
};

TEST(CheckerLarge, LargeHistoriesCheckInSeconds) {
  for (LargeCase c : {LargeCase{10'000, 10, 10, 0.01}, LargeCase{50'000, 100, 50, 0.02},
                      LargeCase{50'000, 10, 50, 0.02}, LargeCase{20'000, 1, 20, 0.01}}) {
    GeneratorOptions options{.seed = 7,
                             .clients = c.clients,
                             .keys = c.keys,
                             .operations = c.operations,
                             .indeterminate_probability = c.indeterminate_probability};
    History h = GenerateHistory(options);
    CheckResult r = Check(h);
    std::printf("%d ops, %d keys, %d clients, %.0f%% indeterminate: %s\n", c.operations, c.keys,
                c.clients, 100 * c.indeterminate_probability, r.ToString().c_str());
    EXPECT_EQ(r.verdict, Verdict::kLinearizable) << r.ToString();
    EXPECT_LT(r.stats.elapsed_ms, 30'000);

    std::mt19937_64 rng(c.operations);
    std::optional<std::string> mutation;
    while (!mutation) mutation = Mutate(&h, rng);
    CheckResult bad = Check(h);
    std::printf("  mutated (%s): %s in %lld ms\n", mutation->c_str(),
                std::string(VerdictName(bad.verdict)).c_str(),
                static_cast<long long>(bad.stats.elapsed_ms));
    EXPECT_EQ(bad.verdict, Verdict::kNotLinearizable) << bad.ToString();
  }
}

TEST(CheckerLarge, SpentBudgetIsReportedAsUnknown) {
  GeneratorOptions options{.seed = 3, .clients = 20, .keys = 1, .operations = 20'000};
  History h = GenerateHistory(options);
  CheckResult r = Check(h, CheckOptions{.time_budget_ms = 0});
  EXPECT_EQ(r.verdict, Verdict::kTimedOut) << r.ToString();
  EXPECT_FALSE(r.ok());
}

}  // namespace
}  // namespace cairn::checker
