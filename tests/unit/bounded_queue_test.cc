#include "common/concurrency/bounded_queue.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace rally {
namespace {

// Long enough for a thread that is not blocked to have finished its call.
constexpr auto kSettle = std::chrono::milliseconds(50);

TEST(BoundedQueue, ItemsComeOutInTheOrderTheyWentIn) {
  BoundedQueue<int> q(4);
  EXPECT_EQ(q.capacity(), 4u);
  for (int i = 1; i <= 3; ++i) ASSERT_TRUE(q.Push(int{i}));
  EXPECT_EQ(q.size(), 3u);
  EXPECT_EQ(q.Pop(), 1);
  EXPECT_EQ(q.TryPop(), 2);
  EXPECT_EQ(q.Pop(), 3);
  EXPECT_EQ(q.TryPop(), std::nullopt);  // empty: does not wait
  EXPECT_EQ(q.size(), 0u);
}

TEST(BoundedQueue, ACapacityBelowOneIsOne) {
  BoundedQueue<int> q(0);
  EXPECT_EQ(q.capacity(), 1u);
}

TEST(BoundedQueue, PushWaitsWhileFullUntilAPopMakesRoom) {
  BoundedQueue<int> q(2);
  ASSERT_TRUE(q.Push(1));
  ASSERT_TRUE(q.Push(2));
  std::atomic<bool> pushed{false};
  std::thread producer([&] {
    EXPECT_TRUE(q.Push(3));
    pushed = true;
  });
  std::this_thread::sleep_for(kSettle);
  EXPECT_FALSE(pushed.load());
  EXPECT_EQ(q.size(), 2u);
  EXPECT_EQ(q.Pop(), 1);
  producer.join();
  EXPECT_TRUE(pushed.load());
  EXPECT_EQ(q.Pop(), 2);
  EXPECT_EQ(q.Pop(), 3);
}

TEST(BoundedQueue, PopWaitsWhileEmptyUntilAPush) {
  BoundedQueue<std::string> q(1);
  std::atomic<bool> popped{false};
  std::optional<std::string> got;
  std::thread consumer([&] {
    got = q.Pop();
    popped = true;
  });
  std::this_thread::sleep_for(kSettle);
  EXPECT_FALSE(popped.load());
  ASSERT_TRUE(q.Push("x"));
  consumer.join();
  EXPECT_EQ(got, "x");
}

TEST(BoundedQueue, AfterCloseWhatIsQueuedComesOutThenNothing) {
  BoundedQueue<int> q(3);
  ASSERT_TRUE(q.Push(7));
  ASSERT_TRUE(q.Push(8));
  q.Close();
  q.Close();  // a second close changes nothing
  EXPECT_TRUE(q.closed());
  EXPECT_FALSE(q.Push(9));
  EXPECT_EQ(q.Pop(), 7);
  EXPECT_EQ(q.PopAll(), std::vector<int>{8});
  EXPECT_EQ(q.Pop(), std::nullopt);
  EXPECT_TRUE(q.PopAll().empty());
  EXPECT_EQ(q.TryPop(), std::nullopt);
}

TEST(BoundedQueue, APushRefusedByCloseLeavesTheItemWithTheCaller) {
  BoundedQueue<std::unique_ptr<int>> q(1);
  q.Close();
  auto item = std::make_unique<int>(5);
  EXPECT_FALSE(q.Push(std::move(item)));
  ASSERT_NE(item, nullptr);
  EXPECT_EQ(*item, 5);
}

TEST(BoundedQueue, CloseWakesABlockedPushAndABlockedPop) {
  BoundedQueue<int> full(1);
  ASSERT_TRUE(full.Push(1));
  BoundedQueue<int> empty(1);
  std::atomic<int> push_result{-1};
  std::atomic<bool> pop_returned_nothing{false};
  std::thread producer([&] { push_result = full.Push(2) ? 1 : 0; });
  std::thread consumer([&] { pop_returned_nothing = !empty.Pop().has_value(); });
  std::this_thread::sleep_for(kSettle);
  EXPECT_EQ(push_result.load(), -1);  // still waiting
  full.Close();
  empty.Close();
  producer.join();
  consumer.join();
  EXPECT_EQ(push_result.load(), 0);
  EXPECT_TRUE(pop_returned_nothing.load());
  EXPECT_EQ(full.Pop(), 1);  // the item queued before the close is still there
}

TEST(BoundedQueue, PushAllFillsInRunsAsRoomIsMadeAndPopAllTakesEverything) {
  BoundedQueue<int> q(2);
  std::vector<int> rest;
  std::thread producer([&] { rest = q.PushAll({1, 2, 3, 4, 5}); });
  std::vector<int> got;
  while (got.size() < 5) {
    std::vector<int> run = q.PopAll();
    ASSERT_FALSE(run.empty());
    EXPECT_LE(run.size(), 2u);  // never more than the capacity held
    got.insert(got.end(), run.begin(), run.end());
  }
  producer.join();
  EXPECT_EQ(got, (std::vector<int>{1, 2, 3, 4, 5}));
  EXPECT_TRUE(rest.empty());
}

TEST(BoundedQueue, PushAllHandsBackWhatACloseKeptOutInOrder) {
  BoundedQueue<int> q(2);
  std::vector<int> rest;
  std::thread producer([&] { rest = q.PushAll({1, 2, 3, 4, 5}); });
  while (q.size() < 2) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  std::this_thread::sleep_for(kSettle);  // the producer waits for room for 3
  q.Close();
  producer.join();
  EXPECT_EQ(rest, (std::vector<int>{3, 4, 5}));
  EXPECT_EQ(q.PopAll(), (std::vector<int>{1, 2}));
  EXPECT_EQ(q.PushAll({6, 7}), (std::vector<int>{6, 7}));
}

// Producers push distinct numbers (some one by one, some in runs) while consumers pop (some
// one by one, some everything at once) through a small queue: every number arrives exactly
// once, each consumer sees each producer's numbers in the order they were pushed, and the queue
// never holds more than its capacity.
TEST(BoundedQueue, ManyProducersAndConsumersDeliverEveryItemExactlyOnce) {
  constexpr int kProducers = 4;
  constexpr int kConsumers = 3;
  constexpr int kPerProducer = 3000;
  constexpr size_t kCapacity = 8;
  BoundedQueue<int> q(kCapacity);
  std::vector<std::vector<int>> received(kConsumers);
  std::atomic<int> over_capacity{0};
  std::vector<std::thread> consumers;
  for (int c = 0; c < kConsumers; ++c) {
    consumers.emplace_back([&, c] {
      while (true) {
        if (q.size() > kCapacity) ++over_capacity;
        std::vector<int> run;
        if (c == 0) {
          run = q.PopAll();
        } else if (std::optional<int> one = q.Pop()) {
          run.push_back(*one);
        }
        if (run.empty()) return;  // closed and drained
        received[c].insert(received[c].end(), run.begin(), run.end());
      }
    });
  }
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      const int first = p * kPerProducer;
      if (p % 2 == 0) {
        for (int i = 0; i < kPerProducer; ++i) EXPECT_TRUE(q.Push(first + i));
        return;
      }
      for (int i = 0; i < kPerProducer; i += 5) {
        std::vector<int> run;
        for (int k = i; k < i + 5 && k < kPerProducer; ++k) run.push_back(first + k);
        EXPECT_TRUE(q.PushAll(std::move(run)).empty());
      }
    });
  }
  for (std::thread& t : producers) t.join();
  q.Close();
  for (std::thread& t : consumers) t.join();

  std::vector<int> times_seen(kProducers * kPerProducer, 0);
  for (const std::vector<int>& got : received) {
    std::vector<int> last(kProducers, -1);
    for (int v : got) {
      ASSERT_GE(v, 0);
      ASSERT_LT(v, kProducers * kPerProducer);
      ++times_seen[v];
      EXPECT_GT(v, last[v / kPerProducer]) << "out of order from producer " << v / kPerProducer;
      last[v / kPerProducer] = v;
    }
  }
  int missing = 0, duplicated = 0;
  for (int n : times_seen) {
    missing += n == 0;
    duplicated += n > 1;
  }
  EXPECT_EQ(missing, 0);
  EXPECT_EQ(duplicated, 0);
  EXPECT_EQ(over_capacity.load(), 0);
  EXPECT_TRUE(q.PopAll().empty());
}

}  // namespace
}  // namespace rally
