#include "src/mvcc/batch_latest.h"

#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <string>

namespace cairn::mvcc::internal {
namespace {

using Lookup = BatchLatest::Lookup;

// What Get answers, as text: "?" unknown, "-" absent, else the record.
std::string Read(const BatchLatest& latest, std::string_view key) {
  std::string record = "untouched";
  switch (latest.Get(key, &record)) {
    case Lookup::kUnknown:
      return record == "untouched" ? "?" : "? wrote " + record;
    case Lookup::kAbsent:
      return record == "untouched" ? "-" : "- wrote " + record;
    case Lookup::kPresent:
      return record;
  }
  return "bad lookup";
}

// key -> record ("" for a delete).
std::map<std::string, std::string> Written(const BatchLatest& latest) {
  std::map<std::string, std::string> written;
  latest.ForEachWritten([&](std::string_view key, const std::string* record) {
    EXPECT_TRUE(written.emplace(key, record == nullptr ? "" : *record).second);
  });
  return written;
}

TEST(BatchLatestTest, ReadAheadIsKeptUntilWrittenAndNeverReplacesAWrite) {
  BatchLatest latest;
  const std::string one = "one";
  latest.AddReadAhead("a", one);
  latest.AddReadAhead("b", std::nullopt);
  EXPECT_EQ(Read(latest, "a"), "one");
  EXPECT_EQ(Read(latest, "b"), "-");
  EXPECT_EQ(Read(latest, "c"), "?");
  EXPECT_TRUE(latest.Knows("b"));
  EXPECT_FALSE(latest.Knows("c"));
  EXPECT_FALSE(latest.HasWrites());
  EXPECT_TRUE(Written(latest).empty());  // read ahead, not written

  const std::string two = "two";
  latest.Write("a", &two);
  latest.CommitCommand();
  const std::string stale = "stale";
  latest.AddReadAhead("a", stale);  // the batch's write is newer
  latest.AddReadAhead("b", stale);  // known already
  EXPECT_EQ(Read(latest, "a"), "two");
  EXPECT_EQ(Read(latest, "b"), "-");
  EXPECT_TRUE(latest.HasWrites());
  EXPECT_EQ(Written(latest), (std::map<std::string, std::string>{{"a", "two"}}));
}

TEST(BatchLatestTest, ARolledBackCommandLeavesEveryKeyAsItWas) {
  BatchLatest latest;
  const std::string base = "base";
  const std::string first = "first";
  const std::string second = "second";
  const std::string third = "third";
  latest.AddReadAhead("read", base);
  latest.Write("kept", &first);
  latest.CommitCommand();

  // One command: overwrites a kept write twice, deletes a read-ahead key, writes a new key
  // and deletes it.
  latest.Write("kept", &second);
  latest.Write("kept", &third);
  latest.Write("read", nullptr);
  latest.Write("new", &first);
  latest.Write("new", nullptr);
  EXPECT_EQ(Read(latest, "kept"), "third");
  EXPECT_EQ(Read(latest, "read"), "-");
  EXPECT_EQ(Read(latest, "new"), "-");
  latest.RollbackCommand();
  EXPECT_EQ(Read(latest, "kept"), "first");
  EXPECT_EQ(Read(latest, "read"), "base");
  EXPECT_EQ(Read(latest, "new"), "?");
  EXPECT_EQ(Written(latest), (std::map<std::string, std::string>{{"kept", "first"}}));

  // The next command's rollback restores to what the previous commit left, not further.
  latest.Write("kept", &second);
  latest.CommitCommand();
  latest.Write("kept", nullptr);
  latest.RollbackCommand();
  EXPECT_EQ(Read(latest, "kept"), "second");

  latest.Write("read", nullptr);
  latest.CommitCommand();
  EXPECT_EQ(Written(latest),
            (std::map<std::string, std::string>{{"kept", "second"}, {"read", ""}}));

  latest.Clear();
  EXPECT_EQ(Read(latest, "kept"), "?");
  EXPECT_EQ(Read(latest, "read"), "?");
  EXPECT_FALSE(latest.HasWrites());
  EXPECT_TRUE(Written(latest).empty());
}

}  // namespace
}  // namespace cairn::mvcc::internal
