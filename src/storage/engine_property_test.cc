// Property: random operations on an engine and on a model built from std::map agree, for
// both engines. Operations cover batches (puts, deletes, nested save points, reads and
// merged iterators with bounds), writes, engine reads, snapshots, flushes, full-range
// compactions with a filter, and (MemoryEngine) crashes.
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <map>
#include <optional>

#include "src/base/logging.h"
#include "src/storage/engine_test_util.h"

namespace cairn::storage::testing {
namespace {

constexpr std::array<Family, kFamilyCount> kFamilies = {Family::kMeta, Family::kKvLatest,
                                                        Family::kKvHistory};
using FamilyMap = std::map<std::string, std::string>;
using EngineModel = std::array<FamilyMap, kFamilyCount>;
// A batch's writes: key -> value, or nullopt for a delete.
using BatchModel = std::array<std::map<std::string, std::optional<std::string>>, kFamilyCount>;

// Drops entries whose value starts with 'x' in the family being compacted by CompactRange.
// It is disarmed otherwise, because RocksDB also runs it in background compactions, at
// points the model cannot predict.
class DropXFactory final : public CompactionFilterFactory {
 public:
  static constexpr int kDisarmed = -1;
  std::atomic<int> armed_family = kDisarmed;

  std::unique_ptr<CompactionFilter> Create(Family family, bool full_compaction) override {
    if (armed_family.load() != static_cast<int>(family)) return nullptr;
    struct Filter final : CompactionFilter {
      bool ShouldDrop(std::string_view key, std::string_view value) override {
        return value.starts_with("x");
      }
    };
    return std::make_unique<Filter>();
  }
};

// A uniform draw from [low, high) whatever rapidcheck's current size (its inRange favors
// small values at small sizes, which would leave most operations unexercised).
template <typename T>
T Uniform(T low, T high) {
  return *rc::gen::resize(rc::kNominalSize, rc::gen::inRange<T>(low, high));
}

// Small alphabets so that keys collide often; includes 0x00 and 0xff to check byte order.
std::string GenKey() {
  return *rc::gen::container<std::string>(Uniform<size_t>(0, 4),
                                          rc::gen::element('a', 'b', 'c', '\0', '\xff'));
}
std::string GenValue() {
  return *rc::gen::container<std::string>(Uniform<size_t>(0, 4), rc::gen::element('x', 'y', 'z'));
}
Family GenFamily() { return kFamilies[Uniform<size_t>(0, kFamilyCount)]; }
size_t Index(Family family) { return static_cast<size_t>(family); }

FamilyMap Overlay(const FamilyMap& base,
                  const std::map<std::string, std::optional<std::string>>& delta) {
  FamilyMap out = base;
  for (const auto& [key, value] : delta) {
    if (value.has_value()) {
      out[key] = *value;
    } else {
      out.erase(key);
    }
  }
  return out;
}

// Checks an iterator over `expected` restricted to random bounds: full scans both ways,
// then random seeks followed by random walks that change direction.
void CheckIterator(const std::function<std::unique_ptr<Iterator>(const ReadOptions&)>& make,
                   const FamilyMap& expected) {
  const bool has_lower = *rc::gen::arbitrary<bool>();
  const bool has_upper = *rc::gen::arbitrary<bool>();
  std::string lower = has_lower ? GenKey() : "";
  std::string upper = has_upper ? GenKey() : "";
  ReadOptions options;
  options.lower_bound = lower;
  options.upper_bound = upper;
  KeyValues in_bounds;
  for (const auto& [key, value] : expected) {
    if (!lower.empty() && key < lower) continue;
    if (!upper.empty() && key >= upper) continue;
    in_bounds.emplace_back(key, value);
  }
  std::unique_ptr<Iterator> it = make(options);
  RC_ASSERT(ScanForward(it.get()) == in_bounds);
  KeyValues reversed(in_bounds.rbegin(), in_bounds.rend());
  RC_ASSERT(ScanBackward(it.get()) == reversed);

  for (int seek = 0; seek < 3; ++seek) {
    std::string target = GenKey();
    // Position in in_bounds; -1 or size() = invalid.
    ptrdiff_t position;
    const bool for_prev = *rc::gen::arbitrary<bool>();
    auto first_not_less =
        std::lower_bound(in_bounds.begin(), in_bounds.end(), target,
                         [](const auto& entry, const std::string& t) { return entry.first < t; });
    if (for_prev) {
      it->SeekForPrev(target);
      auto first_greater =
          std::upper_bound(in_bounds.begin(), in_bounds.end(), target,
                           [](const std::string& t, const auto& entry) { return t < entry.first; });
      position = (first_greater - in_bounds.begin()) - 1;
    } else {
      it->Seek(target);
      position = first_not_less - in_bounds.begin();
    }
    for (int step = 0; step < 4; ++step) {
      const bool valid = position >= 0 && position < static_cast<ptrdiff_t>(in_bounds.size());
      RC_ASSERT(it->Valid() == valid);
      if (!valid) break;
      RC_ASSERT(std::string(it->key()) == in_bounds[position].first);
      RC_ASSERT(std::string(it->value()) == in_bounds[position].second);
      if (*rc::gen::arbitrary<bool>()) {
        it->Next();
        ++position;
      } else {
        it->Prev();
        --position;
      }
    }
  }
  RC_ASSERT(it->status().ok());
}

struct SnapshotModel {
  std::shared_ptr<const Snapshot> snapshot;
  EngineModel model;
};

void RunRandomOperations(EngineKind kind) {
  log::SetLevel("warn");  // one "opened RocksDB" line per case is noise here
  auto factory = std::make_shared<DropXFactory>();
  EngineHolder holder(kind, factory);
  Engine* engine = holder.engine();
  EngineModel model;
  EngineModel durable;  // MemoryEngine: the state a crash returns to
  std::unique_ptr<WriteBatch> batch = engine->NewWriteBatch();
  BatchModel batch_model;
  std::vector<BatchModel> save_points;
  size_t batch_count = 0;
  std::vector<size_t> save_point_counts;
  std::vector<SnapshotModel> snapshots;

  const int steps = Uniform(1, 100);
  for (int step = 0; step < steps; ++step) {
    const int op = Uniform(0, 16);
    const Family family = GenFamily();
    const size_t f = Index(family);
    switch (op) {
      case 0:
      case 1:
      case 2: {  // batch put
        std::string key = GenKey(), value = GenValue();
        batch->Put(family, key, value);
        batch_model[f][key] = value;
        ++batch_count;
        break;
      }
      case 3: {  // batch delete
        std::string key = GenKey();
        batch->Delete(family, key);
        batch_model[f][key] = std::nullopt;
        ++batch_count;
        break;
      }
      case 4:  // save point
        batch->SetSavePoint();
        save_points.push_back(batch_model);
        save_point_counts.push_back(batch_count);
        break;
      case 5: {  // rollback
        Status status = batch->RollbackToSavePoint();
        if (save_points.empty()) {
          RC_ASSERT(status.code() == StatusCode::kNotFound);
        } else {
          RC_ASSERT(status.ok());
          batch_model = save_points.back();
          batch_count = save_point_counts.back();
          save_points.pop_back();
          save_point_counts.pop_back();
        }
        break;
      }
      case 6:  // pop save point
        if (!save_points.empty()) {
          batch->PopSavePoint();
          save_points.pop_back();
          save_point_counts.pop_back();
        }
        break;
      case 7: {  // batch get
        std::string key = GenKey();
        FamilyMap merged = Overlay(model[f], batch_model[f]);
        auto it = merged.find(key);
        std::optional<std::string> expected;
        if (it != merged.end()) expected = it->second;
        RC_ASSERT(BatchGet(batch.get(), family, key) == expected);
        break;
      }
      case 8:  // batch iterator
        CheckIterator([&](const ReadOptions& o) { return batch->NewIterator(family, o); },
                      Overlay(model[f], batch_model[f]));
        break;
      case 9:
      case 10: {  // write the batch
        RC_ASSERT(batch->Count() == batch_count);
        RC_ASSERT(engine->Write(batch.get()).ok());
        for (size_t i = 0; i < kFamilyCount; ++i) model[i] = Overlay(model[i], batch_model[i]);
        batch->Clear();
        batch_model = {};
        save_points.clear();
        save_point_counts.clear();
        batch_count = 0;
        break;
      }
      case 11: {  // engine get
        std::string key = GenKey();
        auto it = model[f].find(key);
        std::optional<std::string> expected;
        if (it != model[f].end()) expected = it->second;
        RC_ASSERT(GetOne(engine, family, key) == expected);
        break;
      }
      case 12:  // engine iterator
        CheckIterator([&](const ReadOptions& o) { return engine->NewIterator(o, family); },
                      model[f]);
        break;
      case 13:  // take or check a snapshot
        if (snapshots.size() < 3 && *rc::gen::arbitrary<bool>()) {
          snapshots.push_back({engine->GetSnapshot(), model});
        } else if (!snapshots.empty()) {
          const SnapshotModel& s = snapshots[Uniform<size_t>(0, snapshots.size())];
          CheckIterator(
              [&](const ReadOptions& o) {
                ReadOptions at = o;
                at.snapshot = s.snapshot.get();
                return engine->NewIterator(at, family);
              },
              s.model[f]);
          std::string key = GenKey();
          auto it = s.model[f].find(key);
          std::optional<std::string> expected;
          if (it != s.model[f].end()) expected = it->second;
          RC_ASSERT(GetOne(engine, family, key, s.snapshot.get()) == expected);
        }
        break;
      case 14:  // flush
        RC_ASSERT(engine->Flush().ok());
        durable = model;
        break;
      case 15: {  // compact, or crash (MemoryEngine)
        if (kind == EngineKind::kMemory && *rc::gen::arbitrary<bool>()) {
          holder.memory()->SimulateCrash();
          model = durable;
          break;
        }
        // RocksDB snapshots do not protect entries from the filter: release them.
        snapshots.clear();
        factory->armed_family = static_cast<int>(family);
        Status compacted = engine->CompactRange(family, "", "");
        factory->armed_family = DropXFactory::kDisarmed;
        RC_ASSERT(compacted.ok());
        std::erase_if(model[f], [](const auto& entry) { return entry.second.starts_with("x"); });
        durable = model;
        break;
      }
    }
  }
  // Everything agrees at the end too.
  for (Family family : kFamilies) {
    KeyValues expected(model[Index(family)].begin(), model[Index(family)].end());
    RC_ASSERT(ScanAll(engine, family) == expected);
  }
}

RC_GTEST_PROP(EnginePropertyTest, MemoryEngineMatchesModel, ()) {
  RunRandomOperations(EngineKind::kMemory);
}

RC_GTEST_PROP(EnginePropertyTest, RocksDbEngineMatchesModel, ()) {
  RunRandomOperations(EngineKind::kRocksDb);
}

}  // namespace
}  // namespace cairn::storage::testing
