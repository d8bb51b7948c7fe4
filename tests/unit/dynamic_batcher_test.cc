#include "common/concurrency/dynamic_batcher.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

namespace rally {
namespace {

using Batcher = DynamicBatcher<int, int>;
using Clock = std::chrono::steady_clock;

TEST(DynamicBatcher, ABatchNeverExceedsMaxBatch) {
  constexpr int kMax = 8;
  constexpr int kProducers = 6;
  constexpr int kPerProducer = 500;
  Batcher batcher(kMax, std::chrono::microseconds(200));
  std::atomic<int> served{0};
  std::atomic<int> largest{0};
  std::atomic<int> oversized{0};
  std::thread consumer([&] {
    while (true) {
      auto batch = batcher.NextBatch();
      if (batch.empty()) return;
      int n = static_cast<int>(batch.size());
      if (n > kMax) ++oversized;
      largest = std::max(largest.load(), n);
      for (auto& item : batch) item.promise.set_value(item.request * 2);
      served += n;
    }
  });
  std::vector<std::thread> producers;
  std::atomic<int> wrong{0};
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      for (int i = 0; i < kPerProducer; ++i) {
        int v = p * kPerProducer + i;
        auto r = batcher.Submit(v).get();
        if (!r.ok() || *r != 2 * v) ++wrong;
      }
    });
  }
  for (auto& t : producers) t.join();
  batcher.Close();
  consumer.join();
  EXPECT_EQ(served.load(), kProducers * kPerProducer);
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(oversized.load(), 0);
  EXPECT_LE(largest.load(), kMax);
  EXPECT_GT(largest.load(), 1);  // concurrent producers do get batched together
}

TEST(DynamicBatcher, AFullBatchLeavesWithoutWaitingForTheTimeout) {
  Batcher batcher(4, std::chrono::seconds(30));
  std::vector<std::future<absl::StatusOr<int>>> futures;
  for (int i = 0; i < 6; ++i) futures.push_back(batcher.Submit(i));
  auto start = Clock::now();
  auto batch = batcher.NextBatch();
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(10));
  ASSERT_EQ(batch.size(), 4u);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(batch[i].request, i);  // submission order
  batcher.Close();
  for (auto& item : batch) item.promise.set_value(0);
  EXPECT_EQ(futures[5].get().status().code(), absl::StatusCode::kCancelled);
}

TEST(DynamicBatcher, ALoneRequestIsServedAtTheDeadline) {
  const auto timeout = std::chrono::milliseconds(50);
  Batcher batcher(64, timeout);
  auto submitted = Clock::now();
  auto future = batcher.Submit(7);
  auto batch = batcher.NextBatch();
  auto waited = Clock::now() - submitted;
  ASSERT_EQ(batch.size(), 1u);
  EXPECT_EQ(batch[0].request, 7);
  // It waited for company until the deadline, then went alone; the upper bound only guards
  // against a batcher that waits for a full batch.
  EXPECT_GE(waited, timeout);
  EXPECT_LT(waited, std::chrono::seconds(5));
  batch[0].promise.set_value(1);
  EXPECT_EQ(*future.get(), 1);
}

TEST(DynamicBatcher, CloseWakesTheConsumerAndCancelsPendingRequests) {
  Batcher batcher(4, std::chrono::seconds(30));
  std::thread consumer([&] { EXPECT_TRUE(batcher.NextBatch().empty()); });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  batcher.Close();
  consumer.join();
  EXPECT_EQ(batcher.Submit(1).get().status().code(), absl::StatusCode::kCancelled);
}

}  // namespace
}  // namespace rally
