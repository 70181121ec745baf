// Helpers shared by the WAL tests.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "src/env/random.h"
#include "src/wal/wal.h"

namespace cairn::wal::testing {

// A payload whose bytes depend on (index, salt) so that a wrong or shifted entry is noticed.
inline std::string Payload(uint64_t index, size_t size, uint64_t salt = 0) {
  std::string payload = "entry-" + std::to_string(index) + "-" + std::to_string(salt) + ":";
  env::Random random(index * 1000003 + salt);
  while (payload.size() < size) payload += static_cast<char>('a' + random.Uniform(26));
  payload.resize(size);
  return payload;
}

using Entries = std::vector<std::pair<uint64_t, std::string>>;

inline Entries ReadAll(Wal* wal, uint64_t from_index) {
  Entries entries;
  Status status = wal->ReadFrom(from_index, [&](uint64_t index, std::string_view payload) {
    entries.emplace_back(index, std::string(payload));
    return Status::Ok();
  });
  EXPECT_TRUE(status.ok()) << status.ToString();
  return entries;
}

inline std::unique_ptr<Wal> OpenOrDie(env::FileSystem* fs, const std::string& dir,
                                      const WalOptions& options) {
  auto wal = Wal::Open(fs, dir, options);
  EXPECT_TRUE(wal.ok()) << wal.status().ToString();
  return wal.ok() ? std::move(wal).value() : nullptr;
}

inline std::vector<std::string> SegmentFiles(env::FileSystem* fs, const std::string& dir) {
  auto children = fs->GetChildren(dir);
  EXPECT_TRUE(children.ok());
  std::vector<std::string> names;
  for (const std::string& name : *children) {
    if (name.ends_with(".wal")) names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace cairn::wal::testing
