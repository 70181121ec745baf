#include "src/mvcc/batch_latest.h"

#include <utility>

namespace cairn::mvcc::internal {

BatchLatest::Lookup BatchLatest::Get(std::string_view key, std::string* record) const {
  auto it = entries_.find(key);
  if (it == entries_.end()) return Lookup::kUnknown;
  if (!it->second.present) return Lookup::kAbsent;
  if (record != nullptr) record->assign(it->second.record);
  return Lookup::kPresent;
}

void BatchLatest::AddReadAhead(std::string_view key, std::optional<std::string_view> record) {
  if (Knows(key)) return;
  Entry entry;
  if (record) {
    entry.record.assign(*record);
    entry.present = true;
  }
  entries_.emplace(std::string(key), std::move(entry));
}

void BatchLatest::Write(std::string_view key, const std::string* record) {
  ++writes_;
  auto it = entries_.find(key);
  if (it == entries_.end()) {
    undo_.push_back({std::string(key), std::nullopt});
    it = entries_.emplace(std::string(key), Entry{}).first;
  } else if (it->second.command != command_) {
    undo_.push_back({std::string(key), std::move(it->second)});
  }
  Entry& entry = it->second;
  entry.command = command_;
  entry.written = true;
  entry.present = record != nullptr;
  if (record != nullptr) {
    entry.record.assign(*record);
  } else {
    entry.record.clear();
  }
}

void BatchLatest::CommitCommand() {
  undo_.clear();
  ++command_;
}

void BatchLatest::RollbackCommand() {
  for (auto undo = undo_.rbegin(); undo != undo_.rend(); ++undo) {
    if (undo->before) {
      entries_.find(undo->key)->second = std::move(*undo->before);
    } else {
      entries_.erase(undo->key);
    }
  }
  undo_.clear();
  ++command_;
}

void BatchLatest::ForEachWritten(
    const std::function<void(std::string_view key, const std::string* record)>& visit) const {
  for (const auto& [key, entry] : entries_) {
    if (entry.written) visit(key, entry.present ? &entry.record : nullptr);
  }
}

void BatchLatest::Clear() {
  entries_.clear();
  undo_.clear();
  writes_ = 0;
}

}  // namespace cairn::mvcc::internal
