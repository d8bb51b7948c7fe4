#include "services/replay/table.h"

#include <gtest/gtest.h>

#include <thread>

namespace rally {
namespace {

using Clock = std::chrono::steady_clock;
Clock::time_point Soon() { return Clock::now() + std::chrono::milliseconds(20); }
Clock::time_point Later() { return Clock::now() + std::chrono::seconds(30); }

std::shared_ptr<const v1::Trajectory> Item(uint64_t seq, int64_t version = 0) {
  auto t = std::make_shared<v1::Trajectory>();
  t->set_sequence(seq);
  t->add_turns()->set_policy_version(version);
  return t;
}

std::unique_ptr<Table> Make(TableOptions o) {
  auto t = Table::Create(std::move(o));
  EXPECT_TRUE(t.ok()) << t.status();
  return std::move(*t);
}

TableOptions Queue(int64_t size) {
  TableOptions o;
  o.max_size = size;
  o.rate_limiter = RateLimiterOptions::Queue(size);
  return o;
}

TEST(Table, QueueItemsLeaveInInsertionOrderExactlyOnce) {
  auto table = Make(Queue(10));
  for (uint64_t i = 1; i <= 5; ++i) ASSERT_TRUE(table->Insert(Item(i), 1, Soon()).ok());
  auto first = table->Sample(3, Soon());
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_EQ(first->size(), 3u);
  EXPECT_EQ((*first)[0].item.trajectory->sequence(), 1u);
  EXPECT_EQ((*first)[2].item.trajectory->sequence(), 3u);
  EXPECT_EQ((*first)[0].item.times_sampled, 1);
  EXPECT_EQ(table->size(), 2);
  auto second = table->Sample(2, Soon());
  ASSERT_TRUE(second.ok());
  EXPECT_EQ((*second)[1].item.trajectory->sequence(), 5u);
  EXPECT_EQ(table->size(), 0);
  EXPECT_EQ(table->inserted_total(), 5);
  EXPECT_EQ(table->sampled_total(), 5);
}

TEST(Table, AFullQueueHoldsInsertsBackUntilTheDeadline) {
  auto table = Make(Queue(2));
  ASSERT_TRUE(table->Insert(Item(1), 1, Soon()).ok());
  ASSERT_TRUE(table->Insert(Item(2), 1, Soon()).ok());
  EXPECT_EQ(table->Insert(Item(3), 1, Soon()).status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(table->size(), 2);  // nothing was dropped
  std::thread inserter([&] { EXPECT_TRUE(table->Insert(Item(3), 1, Later()).ok()); });
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  ASSERT_TRUE(table->Sample(1, Soon()).ok());  // makes room: the waiting insert goes in
  inserter.join();
  EXPECT_EQ(table->size(), 2);
}

TEST(Table, SampleWaitsForAWholeBatchAndFailsWithoutTakingAnything) {
  auto table = Make(Queue(8));
  ASSERT_TRUE(table->Insert(Item(1), 1, Soon()).ok());
  EXPECT_EQ(table->Sample(2, Soon()).status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(table->size(), 1);
  std::thread sampler([&] { EXPECT_EQ(table->Sample(2, Later())->size(), 2u); });
  ASSERT_TRUE(table->Insert(Item(2), 1, Soon()).ok());
  sampler.join();
  EXPECT_EQ(table->Sample(9, Soon()).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(Table, UniformWithRemoverKeepsMaxSizeAndSamplesRepeatedly) {
  TableOptions o;
  o.sampler = "uniform";
  o.remover = "fifo";
  o.max_size = 3;
  o.max_times_sampled = 0;
  o.rate_limiter = RateLimiterOptions::MinSize(1);
  auto table = Make(o);
  for (uint64_t i = 1; i <= 5; ++i) ASSERT_TRUE(table->Insert(Item(i), 1, Soon()).ok());
  EXPECT_EQ(table->size(), 3);  // the remover dropped the two oldest
  auto batch = table->Sample(30, Soon());
  ASSERT_TRUE(batch.ok());
  for (const auto& s : *batch) {
    EXPECT_GE(s.item.trajectory->sequence(), 3u);
    EXPECT_DOUBLE_EQ(s.probability, 1.0 / 3);
    EXPECT_DOUBLE_EQ(s.weight, 1.0);  // uniform: (N * 1/N)^-beta = 1
  }
  EXPECT_EQ(table->size(), 3);
}

TEST(Table, MaxTimesSampledRemovesAnItemAfterItsLastSample) {
  TableOptions o;
  o.sampler = "lifo";
  o.max_times_sampled = 2;
  o.rate_limiter = RateLimiterOptions::MinSize(1);
  auto table = Make(o);
  ASSERT_TRUE(table->Insert(Item(1), 1, Soon()).ok());
  ASSERT_TRUE(table->Insert(Item(2), 1, Soon()).ok());
  auto b = table->Sample(3, Soon());
  ASSERT_TRUE(b.ok());
  EXPECT_EQ((*b)[0].item.trajectory->sequence(), 2u);
  EXPECT_EQ((*b)[1].item.trajectory->sequence(), 2u);
  EXPECT_EQ((*b)[1].item.times_sampled, 2);
  EXPECT_EQ((*b)[2].item.trajectory->sequence(), 1u);
  EXPECT_EQ(table->size(), 1);
}

TEST(Table, PrioritizedSamplesReturnImportanceWeights) {
  TableOptions o;
  o.sampler = "prioritized";
  o.priority_exponent = 1.0;
  o.importance_sampling_exponent = 1.0;
  o.max_times_sampled = 0;
  o.rate_limiter = RateLimiterOptions::MinSize(1);
  auto table = Make(o);
  auto k1 = table->Insert(Item(1), 1.0, Soon());
  auto k2 = table->Insert(Item(2), 3.0, Soon());
  ASSERT_TRUE(k1.ok() && k2.ok());
  auto batch = table->Sample(200, Soon());
  ASSERT_TRUE(batch.ok());
  bool saw1 = false, saw2 = false;
  for (const auto& s : *batch) {
    // P = 1/4 and 3/4; w = (2P)^-1 = 2 and 2/3; normalised by the max (2): 1 and 1/3.
    if (s.item.key == *k1) {
      saw1 = true;
      EXPECT_DOUBLE_EQ(s.probability, 0.25);
      EXPECT_NEAR(s.weight, 1.0, 1e-12);
    } else {
      saw2 = true;
      EXPECT_DOUBLE_EQ(s.probability, 0.75);
      EXPECT_NEAR(s.weight, 1.0 / 3, 1e-12);
    }
  }
  EXPECT_TRUE(saw1 && saw2);
  ASSERT_TRUE(table->UpdatePriorities({{*k1, 3.0}}).ok());
  EXPECT_DOUBLE_EQ(table->Sample(1, Soon())->front().probability, 0.5);
  // A missing key changes nothing and is named.
  auto missing = table->UpdatePriorities({{*k2, 1.0}, {999, 1.0}});
  EXPECT_EQ(missing.code(), absl::StatusCode::kNotFound);
  EXPECT_NE(missing.message().find("999"), std::string::npos);
  EXPECT_DOUBLE_EQ(table->Sample(1, Soon())->front().probability, 0.5);
}

TEST(Table, StaleItemsAreEvictedAndNeverSampled) {
  TableOptions o = Queue(10);
  o.max_staleness = 2;
  auto table = Make(o);
  ASSERT_TRUE(table->Insert(Item(1, /*version=*/1), 1, Soon()).ok());
  ASSERT_TRUE(table->Insert(Item(2, 3), 1, Soon()).ok());
  ASSERT_TRUE(table->Insert(Item(3, 4), 1, Soon()).ok());
  table->SetPolicyVersion(4);  // item 1 is 3 versions old: evicted
  EXPECT_EQ(table->size(), 2);
  EXPECT_EQ(table->evicted_stale_total(), 1);
  auto b = table->Sample(1, Soon());
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->front().item.trajectory->sequence(), 2u);
  EXPECT_EQ(b->front().staleness, 1);
  table->SetPolicyVersion(7);  // item 3 (version 4) is now 3 behind
  EXPECT_EQ(table->size(), 0);
  // An insert already too stale is refused.
  EXPECT_EQ(table->Insert(Item(4, 2), 1, Soon()).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(Table, ByteCapacityAndOversizedItems) {
  TableOptions o;
  o.sampler = "uniform";
  o.max_times_sampled = 0;
  o.rate_limiter = RateLimiterOptions::MinSize(1);
  auto probe = Item(1);
  int64_t one = static_cast<int64_t>(probe->ByteSizeLong());
  o.max_bytes = 2 * one;
  auto table = Make(o);
  for (uint64_t i = 1; i <= 3; ++i) ASSERT_TRUE(table->Insert(Item(i), 1, Soon()).ok());
  EXPECT_EQ(table->size(), 2);
  EXPECT_LE(table->bytes(), 2 * one);
  auto big = std::make_shared<v1::Trajectory>();
  big->set_task_id(std::string(3 * one, 'x'));
  EXPECT_EQ(table->Insert(big, 1, Soon()).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(Table, RateLimitedBatchLargerThanTheErrorBufferIsRefused) {
  TableOptions o;
  o.max_times_sampled = 0;
  o.sampler = "uniform";
  o.rate_limiter = RateLimiterOptions::WithErrorBuffer(1.0, 1, 4.0);
  auto table = Make(o);
  auto s = table->Sample(16, Soon());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.status().message().find("can never be sampled"), std::string::npos);
}

TEST(Table, SnapshotRestoreKeepsItemsCountersAndOrder) {
  auto a = Make(Queue(10));
  for (uint64_t i = 1; i <= 4; ++i) ASSERT_TRUE(a->Insert(Item(i), 1, Soon()).ok());
  ASSERT_TRUE(a->Sample(1, Soon()).ok());
  auto b = Make(Queue(10));
  ASSERT_TRUE(b->Restore(a->Snapshot()).ok());
  EXPECT_EQ(b->size(), 3);
  EXPECT_DOUBLE_EQ(b->cursor(), a->cursor());
  EXPECT_EQ(b->Sample(1, Soon())->front().item.trajectory->sequence(), 2u);
  auto key = b->Insert(Item(9), 1, Soon());
  ASSERT_TRUE(key.ok());
  EXPECT_EQ(*key, 5u);  // keys continue after the restored ones
}

TEST(Table, CloseWakesBlockedCallers) {
  auto table = Make(Queue(1));
  ASSERT_TRUE(table->Insert(Item(1), 1, Soon()).ok());
  std::thread inserter([&] {
    EXPECT_EQ(table->Insert(Item(2), 1, Later()).status().code(), absl::StatusCode::kCancelled);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  table->Close();
  inserter.join();
}

}  // namespace
}  // namespace rally
