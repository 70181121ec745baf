// Clock: where time comes from, so that tests and the simulation control it.
//
// NowNanos/NowMicros are monotonic (never go backwards; for timeouts and durations; their
// zero is arbitrary). WallMicros is wall-clock time since the Unix epoch (for timestamps a
// leader proposes as data; it may jump). SleepForMicros blocks (SystemClock) or advances the
// clock (ManualClock).
//
// Thread-safety: all methods of both implementations are thread-safe.
#pragma once

#include <atomic>
#include <cstdint>

namespace cairn::env {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual uint64_t NowNanos() = 0;
  uint64_t NowMicros() { return NowNanos() / 1000; }
  virtual uint64_t WallMicros() = 0;
  virtual void SleepForMicros(uint64_t micros) = 0;
};

// The operating system's clocks (steady_clock, system_clock).
class SystemClock final : public Clock {
 public:
  // The process-wide instance; never destroyed.
  static SystemClock* Default();
  uint64_t NowNanos() override;
  uint64_t WallMicros() override;
  void SleepForMicros(uint64_t micros) override;
};

// A clock that moves only when told: by Advance*, or by SleepForMicros, which advances it
// instead of blocking (a simulated sleep). The wall clock moves together with the monotonic
// one, from `wall_micros_start`.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(uint64_t now_nanos_start = 0, uint64_t wall_micros_start = 0)
      : now_nanos_(now_nanos_start),
        wall_offset_nanos_(wall_micros_start * 1000 - now_nanos_start) {}

  uint64_t NowNanos() override { return now_nanos_.load(std::memory_order_acquire); }
  uint64_t WallMicros() override { return (NowNanos() + wall_offset_nanos_) / 1000; }
  void SleepForMicros(uint64_t micros) override { AdvanceMicros(micros); }

  void AdvanceNanos(uint64_t nanos) { now_nanos_.fetch_add(nanos, std::memory_order_acq_rel); }
  void AdvanceMicros(uint64_t micros) { AdvanceNanos(micros * 1000); }

 private:
  std::atomic<uint64_t> now_nanos_;
  const uint64_t wall_offset_nanos_;  // wall nanos = now nanos + offset (mod 2^64)
};

}  // namespace cairn::env
