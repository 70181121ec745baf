// Property test: any sequence of appends, syncs, truncations, resets, reopens and crashes
// leaves the log equal to a simple model (a first index and a vector of payloads), and a
// crash never loses an entry a Sync covered.
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include "src/env/fault_injection_file_system.h"
#include "src/wal/wal.h"
#include "src/wal/wal_test_util.h"

namespace cairn::wal {
namespace {

struct Model {
  uint64_t first = 1;
  std::vector<std::string> entries;  // entries[i] has index first + i
  uint64_t synced_last = 0;          // every index <= this survives a crash

  uint64_t last() const { return first + entries.size() - 1; }
};

void CheckEqual(Wal* wal, const Model& model) {
  RC_ASSERT(wal->FirstIndex() == model.first);
  RC_ASSERT(wal->LastIndex() == model.last());
  uint64_t expected = model.first;
  Status status = wal->ReadFrom(model.first, [&](uint64_t index, std::string_view payload) {
    RC_ASSERT(index == expected);
    RC_ASSERT(payload == model.entries[index - model.first]);
    ++expected;
    return Status::Ok();
  });
  RC_ASSERT(status.ok());
  RC_ASSERT(expected == model.last() + 1);
}

RC_GTEST_PROP(WalProperty, MatchesModel, ()) {
  // Each operation is (kind, argument); scaled up so that runs cross many segments.
  const auto ops =
      *rc::gen::scale(4.0, rc::gen::arbitrary<std::vector<std::pair<uint8_t, uint16_t>>>());
  const bool preallocate = *rc::gen::arbitrary<bool>();
  env::FaultInjectionFileSystem fs;
  WalOptions options;
  options.segment_size_bytes = 4096;
  options.preallocate = preallocate;
  auto opened = Wal::Open(&fs, "/wal", options);
  RC_ASSERT(opened.ok());
  std::unique_ptr<Wal> wal = std::move(opened).value();
  Model model;
  uint64_t salt = 0;

  for (const auto& [kind, arg] : ops) {
    switch (kind % 10) {
      case 0:
      case 1:
      case 2:
      case 3: {  // append a batch
        std::vector<std::string> batch;
        for (size_t i = 0; i <= arg % 4u; ++i) {
          batch.push_back(testing::Payload(model.last() + 1 + i, arg % 600u, ++salt));
        }
        std::vector<std::string_view> views(batch.begin(), batch.end());
        auto first = wal->AppendBatch(views);
        RC_ASSERT(first.ok());
        RC_ASSERT(*first == model.last() + 1);
        for (std::string& payload : batch) model.entries.push_back(std::move(payload));
        break;
      }
      case 4:
        RC_ASSERT(wal->Sync().ok());
        model.synced_last = model.last();
        break;
      case 5: {  // truncate the suffix, keeping anything from first - 1 to last
        const uint64_t kept = model.first - 1 + arg % (model.entries.size() + 1);
        RC_ASSERT(wal->TruncateSuffix(kept).ok());
        model.entries.resize(kept + 1 - model.first);
        model.synced_last = std::min(model.synced_last, kept);
        break;
      }
      case 6: {  // truncate the prefix: whole old segments may go, entry `needed` must stay
        const uint64_t needed = model.first + arg % (model.entries.size() + 1);
        RC_ASSERT(wal->TruncatePrefix(needed).ok());
        const uint64_t first = wal->FirstIndex();
        RC_ASSERT(first >= model.first);
        RC_ASSERT(first <= std::max(needed, model.first));
        model.entries.erase(model.entries.begin(),
                            model.entries.begin() + static_cast<ptrdiff_t>(first - model.first));
        model.first = first;
        break;
      }
      case 7: {  // reset (rarely)
        if (arg % 8 != 0) break;
        const uint64_t next = 1 + arg % 3000u;
        RC_ASSERT(wal->Reset(next).ok());
        model.first = next;
        model.entries.clear();
        model.synced_last = next - 1;
        break;
      }
      case 8:  // clean reopen
        wal.reset();
        opened = Wal::Open(&fs, "/wal", options);
        RC_ASSERT(opened.ok());
        wal = std::move(opened).value();
        RC_ASSERT(!wal->recovery().tail_truncated);
        break;
      case 9: {  // crash (sometimes tearing the last writes) and recover
        if (arg % 2 == 0) {
          fs.SimulateCrash();
        } else {
          env::Random random(arg);
          fs.SimulateCrashWithTornWrite(random);
        }
        wal.reset();
        opened = Wal::Open(&fs, "/wal", options);
        RC_ASSERT(opened.ok());
        wal = std::move(opened).value();
        RC_ASSERT(wal->FirstIndex() == model.first);
        RC_ASSERT(wal->LastIndex() >= model.synced_last);
        RC_ASSERT(wal->LastIndex() <= model.last());
        model.entries.resize(wal->LastIndex() + 1 - model.first);
        model.synced_last = model.last();
        break;
      }
    }
    CheckEqual(wal.get(), model);
  }
}

}  // namespace
}  // namespace cairn::wal
