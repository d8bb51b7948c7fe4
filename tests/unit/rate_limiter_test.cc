#include "services/replay/rate_limiter.h"

#include <gtest/gtest.h>

namespace rally {
namespace {

TEST(RateLimiter, CursorIsInsertsTimesRatioMinusSamples) {
  RateLimiter rl(RateLimiterOptions::WithErrorBuffer(2.0, 3, 4.0));
  // min_diff = 2*3 - 4 = 2, max_diff = 2*3 + 4 = 10
  EXPECT_DOUBLE_EQ(rl.options().min_diff, 2.0);
  EXPECT_DOUBLE_EQ(rl.options().max_diff, 10.0);
  rl.Inserted(4);
  rl.Sampled(3);
  EXPECT_DOUBLE_EQ(rl.cursor(), 4 * 2.0 - 3);
}

TEST(RateLimiter, InsertsAlwaysProceedBelowTheMinimumSize) {
  RateLimiter rl(RateLimiterOptions::WithErrorBuffer(2.0, 3, 0.0));  // min = max = 6
  EXPECT_TRUE(rl.CanInsert(0));
  rl.Inserted();
  EXPECT_TRUE(rl.CanInsert(1));
  rl.Inserted();
  EXPECT_TRUE(rl.CanInsert(2));  // reaching the minimum size: cursor 4 -> 6 <= 6 anyway
  rl.Inserted();
  EXPECT_DOUBLE_EQ(rl.cursor(), 6.0);
  // Size 3: the next insert would take the cursor to 8 > max_diff 6.
  EXPECT_FALSE(rl.CanInsert(3));
  // One sample (cursor 6 -> 5 < min 6) is refused too: without an error buffer nothing can move,
  // which is why a buffer of at least max(1, samples_per_insert) is needed.
  EXPECT_FALSE(rl.CanSample(3));
}

TEST(RateLimiter, SamplesPerInsertWithAnErrorBuffer) {
  RateLimiter rl(RateLimiterOptions::WithErrorBuffer(2.0, 2, 3.0));  // min 1, max 7
  EXPECT_FALSE(rl.CanSample(0));                                     // below the minimum size
  rl.Inserted(2);                                                    // cursor 4
  EXPECT_TRUE(rl.CanSample(2, 3));                                   // 4 - 3 = 1 >= 1
  EXPECT_FALSE(rl.CanSample(2, 4));                                  // 4 - 4 = 0 < 1
  EXPECT_TRUE(rl.CanInsert(2));                                      // 4 + 2 = 6 <= 7
  rl.Inserted();                                                     // cursor 6
  EXPECT_FALSE(rl.CanInsert(3));  // 6 + 2 = 8 > 7: inserts wait for samples
  rl.Sampled(2);                  // cursor 4
  EXPECT_TRUE(rl.CanInsert(3));
  EXPECT_EQ(rl.inserts(), 3);
  EXPECT_EQ(rl.samples(), 2);
}

TEST(RateLimiter, QueueAllowsCapacityInsertsAheadAndNoSampleOfAnEmptyQueue) {
  RateLimiter rl(RateLimiterOptions::Queue(3));
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(rl.CanInsert(i));
    rl.Inserted();
  }
  EXPECT_FALSE(rl.CanInsert(3));
  EXPECT_TRUE(rl.CanSample(3, 3));
  EXPECT_FALSE(rl.CanSample(3, 4));
  rl.Sampled(3);
  EXPECT_FALSE(rl.CanSample(0));
  EXPECT_TRUE(rl.CanInsert(0));
}

TEST(RateLimiter, RestoreBringsTheCursorBack) {
  RateLimiter rl(RateLimiterOptions::WithErrorBuffer(1.5, 1, 10));
  rl.Restore(10, 7);
  EXPECT_DOUBLE_EQ(rl.cursor(), 8.0);
  EXPECT_FALSE((RateLimiterOptions{1, 0, 0, 1}.Validate().ok()));
  EXPECT_FALSE((RateLimiterOptions{1, 1, 5, 1}.Validate().ok()));
}

}  // namespace
}  // namespace rally
