// ProjectionLimits: every bound on user projections and upcasters (docs/events.md, "User
// projections and upcasters"), with the reason for each value. Plain constants; thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>

namespace cairn::events::projection {

struct ProjectionLimits {
  // Lua VM instructions one call may run (init, one handler, partition_by, one upcast, or
  // loading the source). A handler that folds one event into a state needs far fewer; the
  // bound turns a runaway loop into an error within about 50 ms instead of a stuck runner.
  static constexpr int kInstructionsPerCallMax = 10'000'000;
  // Bytes one projection's (or one upcaster's) Lua state may allocate. Several projections
  // run in one process; 64 MiB each keeps a memory bomb from taking the server down.
  static constexpr size_t kMemoryBytesPerProjectionMax = 64ull << 20;
  // Bytes one upcaster's Lua state may allocate. An upcaster reshapes one event (<= 1 MiB of
  // data) at a time; up to kUpcastersMax of them live on every member.
  static constexpr size_t kMemoryBytesPerUpcasterMax = 16ull << 20;
  // JSON text of one partition's state. It is read and written for every event of that
  // partition, so a large state costs on every event; 1 MiB matches the event size limit.
  static constexpr size_t kStateBytesPerPartitionMax = 1024 * 1024;
  // Lua source of one projection or upcaster. It travels in one replicated command under
  // the 1.5 MiB request limit; real projections are a few KiB.
  static constexpr size_t kSourceBytesMax = 256 * 1024;
  // Projections defined in the cluster. Every member runs every enabled one in one runner
  // thread; more would starve each other.
  static constexpr size_t kProjectionsMax = 64;
  // Upcasters defined (event type x schema version). Each holds a Lua state on every member.
  static constexpr size_t kUpcastersMax = 256;
  // Upcasters chained on one event (v1 -> v2 -> ...). Bounds the work one event adds to a read.
  static constexpr uint32_t kUpcastChainMax = 16;
  // Highest schema version an upcaster may start from: far below 2^32, so from + 1 and a
  // chain of kUpcastChainMax steps never overflow.
  static constexpr uint32_t kSchemaVersionMax = 1'000'000;
  // Projection names: [A-Za-z0-9_.-], so they are safe in storage keys and on a command line.
  static constexpr size_t kNameBytesMax = 128;
  // A partition key (the stream name or what partition_by returns). Streams are <= 1024 bytes.
  static constexpr size_t kPartitionKeyBytesMax = 1024;
  // Nesting of tables crossing the Lua/JSON boundary; bounds recursion in the converter.
  static constexpr int kJsonDepthMax = 64;
  // Events the runner folds per storage batch: one WriteBatch per page bounds memory and makes
  // progress visible (and stop/reset take effect) at least this often.
  static constexpr size_t kRunnerPageEvents = 256;
  // A projection's error message as stored and reported.
  static constexpr size_t kErrorBytesMax = 4096;
};

}  // namespace cairn::events::projection
