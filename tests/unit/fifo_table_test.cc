#include "services/replay/fifo_table.h"

#include <gtest/gtest.h>

#include <thread>

namespace rally {
namespace {

using Clock = std::chrono::steady_clock;

std::shared_ptr<const v1::Trajectory> Item(uint64_t seq) {
  auto t = std::make_shared<v1::Trajectory>();
  t->set_sequence(seq);
  return t;
}

Clock::time_point Soon() { return Clock::now() + std::chrono::milliseconds(20); }
Clock::time_point Later() { return Clock::now() + std::chrono::seconds(30); }

TEST(FifoTable, ItemsLeaveInInsertionOrderExactlyOnce) {
  FifoTable table("q", 10);
  for (uint64_t i = 1; i <= 5; ++i) ASSERT_TRUE(table.Insert(Item(i), Soon()).ok());
  auto first = table.SampleBatch(3, Soon());
  ASSERT_TRUE(first.ok());
  ASSERT_EQ(first->size(), 3u);
  EXPECT_EQ((*first)[0].trajectory->sequence(), 1u);
  EXPECT_EQ((*first)[2].trajectory->sequence(), 3u);
  EXPECT_EQ((*first)[0].times_sampled, 1);
  EXPECT_EQ(table.size(), 2);
  auto second = table.SampleBatch(2, Soon());
  ASSERT_TRUE(second.ok());
  EXPECT_EQ((*second)[0].trajectory->sequence(), 4u);
  EXPECT_EQ((*second)[1].trajectory->sequence(), 5u);
  EXPECT_EQ(table.size(), 0);
  EXPECT_EQ(table.inserted_total(), 5);
  EXPECT_EQ(table.sampled_total(), 5);
  // Keys increase with insertion.
  EXPECT_LT((*first)[0].key, (*second)[1].key);
}

TEST(FifoTable, AFullTableHoldsInsertsBackUntilTheDeadline) {
  FifoTable table("q", 2);
  ASSERT_TRUE(table.Insert(Item(1), Soon()).ok());
  ASSERT_TRUE(table.Insert(Item(2), Soon()).ok());
  auto third = table.Insert(Item(3), Soon());
  EXPECT_EQ(third.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(table.size(), 2);  // nothing was dropped
  // A sample makes room, and a blocked insert then proceeds.
  std::thread inserter([&] { EXPECT_TRUE(table.Insert(Item(3), Later()).ok()); });
  auto batch = table.SampleBatch(1, Soon());
  ASSERT_TRUE(batch.ok());
  inserter.join();
  EXPECT_EQ(table.size(), 2);
}

TEST(FifoTable, SampleWaitsForAWholeBatch) {
  FifoTable table("q", 8);
  ASSERT_TRUE(table.Insert(Item(1), Soon()).ok());
  EXPECT_EQ(table.SampleBatch(2, Soon()).status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(table.size(), 1);  // a failed sample takes nothing
  std::thread sampler([&] {
    auto b = table.SampleBatch(2, Later());
    ASSERT_TRUE(b.ok());
    EXPECT_EQ(b->size(), 2u);
  });
  ASSERT_TRUE(table.Insert(Item(2), Soon()).ok());
  sampler.join();
}

TEST(FifoTable, BatchSizeMustFitTheTable) {
  FifoTable table("q", 4);
  EXPECT_EQ(table.SampleBatch(0, Soon()).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(table.SampleBatch(5, Soon()).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(FifoTable, CloseWakesBlockedCallers) {
  FifoTable table("q", 1);
  ASSERT_TRUE(table.Insert(Item(1), Soon()).ok());
  std::thread inserter([&] {
    EXPECT_EQ(table.Insert(Item(2), Later()).status().code(), absl::StatusCode::kCancelled);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  table.Close();
  inserter.join();
  EXPECT_EQ(table.SampleBatch(1, Later()).status().code(), absl::StatusCode::kCancelled);
}

}  // namespace
}  // namespace rally
