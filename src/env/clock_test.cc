#include "src/env/clock.h"

#include <gtest/gtest.h>

namespace cairn::env {
namespace {

TEST(ManualClockTest, MovesOnlyWhenTold) {
  ManualClock clock(/*now_nanos_start=*/5000, /*wall_micros_start=*/1'700'000'000'000'000);
  EXPECT_EQ(clock.NowNanos(), 5000u);
  EXPECT_EQ(clock.NowMicros(), 5u);
  EXPECT_EQ(clock.WallMicros(), 1'700'000'000'000'000u);
  EXPECT_EQ(clock.NowNanos(), 5000u);
  clock.AdvanceMicros(10);
  EXPECT_EQ(clock.NowNanos(), 15000u);
  clock.SleepForMicros(1'000'000);  // simulated: returns at once, time moved
  EXPECT_EQ(clock.NowMicros(), 1'000'015u);
  EXPECT_EQ(clock.WallMicros(), 1'700'000'000'000'000u + 1'000'010u);
}

TEST(SystemClockTest, MonotonicAndSleeps) {
  Clock* clock = SystemClock::Default();
  uint64_t before = clock->NowNanos();
  clock->SleepForMicros(2000);
  uint64_t after = clock->NowNanos();
  EXPECT_GE(after - before, 2'000'000u);
  EXPECT_GT(clock->WallMicros(), 1'600'000'000'000'000u);  // after September 2020
}

}  // namespace
}  // namespace cairn::env
