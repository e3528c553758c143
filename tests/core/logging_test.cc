#include "core/logging.h"

#include <chrono>

#include "gtest/gtest.h"

namespace spinnet {
namespace {

using Clock = LogLimiter::Clock;
using std::chrono::seconds;

TEST(LogLimiterTest, LogsABurstPerWindowAndCountsTheRest) {
  LogLimiter limiter(3, seconds(10));
  const Clock::time_point t0 = Clock::time_point() + seconds(1);
  int64_t dropped = -1;
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(limiter.Allow(t0 + seconds(i), &dropped));
    EXPECT_EQ(dropped, 0);
  }
  for (int i = 0; i < 5; ++i) EXPECT_FALSE(limiter.Allow(t0 + seconds(9), &dropped));
  // The next window's first line says how many were left out, once.
  ASSERT_TRUE(limiter.Allow(t0 + seconds(10), &dropped));
  EXPECT_EQ(dropped, 5);
  ASSERT_TRUE(limiter.Allow(t0 + seconds(11), &dropped));
  EXPECT_EQ(dropped, 0);
  EXPECT_EQ(DroppedSuffix(0), "");
  EXPECT_EQ(DroppedSuffix(5), " (5 more like this were not logged)");
}

TEST(LogLimiterTest, AQuietCallSiteLogsEveryLine) {
  LogLimiter limiter(1, seconds(10));
  int64_t dropped = -1;
  for (int i = 0; i < 4; ++i) {
    EXPECT_TRUE(limiter.Allow(Clock::time_point() + seconds(20 * i), &dropped));
    EXPECT_EQ(dropped, 0);
  }
}

}  // namespace
}  // namespace spinnet
