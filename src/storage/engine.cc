#include "src/storage/engine.h"

#include "src/base/check.h"

namespace cairn::storage {

std::string_view FamilyName(Family family) {
  switch (family) {
    case Family::kMeta:
      return "meta";
    case Family::kKvLatest:
      return "kv_latest";
    case Family::kKvHistory:
      return "kv_history";
    case Family::kLease:
      return "lease";
    case Family::kEvents:
      return "events";
    case Family::kEventIds:
      return "event_ids";
  }
  CAIRN_CHECK_MSG(false, "unknown storage family");
}

Status Engine::MultiGet(const ReadOptions& options, Family family,
                        std::span<const std::string_view> keys,
                        std::vector<std::optional<std::string>>* values) {
  values->assign(keys.size(), std::nullopt);
  std::string value;
  for (size_t i = 0; i < keys.size(); ++i) {
    CAIRN_ASSIGN_OR_RETURN(bool found, Get(options, family, keys[i], &value));
    if (found) (*values)[i] = std::move(value);
  }
  return Status::Ok();
}

namespace {

// Engine::NewContentsReplacement's default: one batch, written by Commit.
class BatchReplacement final : public ContentsReplacement {
 public:
  explicit BatchReplacement(Engine* engine) : engine_(engine), batch_(engine->NewWriteBatch()) {}

  // Deletes every key there is (a batch applies in order: a key deleted and then added ends
  // up with the added value).
  Status DeleteEverything() {
    std::shared_ptr<const Snapshot> before = engine_->GetSnapshot();
    ReadOptions options;
    options.snapshot = before.get();
    options.fill_cache = false;
    for (int family_number = 0; family_number < kFamilyCount; ++family_number) {
      const auto family = static_cast<Family>(family_number);
      std::unique_ptr<Iterator> it = engine_->NewIterator(options, family);
      for (it->SeekToFirst(); it->Valid(); it->Next()) batch_->Delete(family, it->key());
      CAIRN_RETURN_IF_ERROR(it->status());
    }
    return Status::Ok();
  }

  Status Add(Family family, std::string_view key, std::string_view value) override {
    CAIRN_CHECK(!committed_);
    batch_->Put(family, key, value);
    return Status::Ok();
  }
  Status Commit() override {
    CAIRN_CHECK(!committed_);
    committed_ = true;
    CAIRN_RETURN_IF_ERROR(engine_->Write(batch_.get()));
    return engine_->Flush();
  }

 private:
  Engine* const engine_;
  std::unique_ptr<WriteBatch> batch_;
  bool committed_ = false;
};

}  // namespace

Result<std::unique_ptr<ContentsReplacement>> Engine::NewContentsReplacement(
    const std::string& temporary_file_prefix) {
  auto replacement = std::make_unique<BatchReplacement>(this);
  CAIRN_RETURN_IF_ERROR(replacement->DeleteEverything());
  return std::unique_ptr<ContentsReplacement>(std::move(replacement));
}

}  // namespace cairn::storage
