#include "services/replay/selectors.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>

namespace rally {
namespace {

std::unique_ptr<ItemSelector> Make(const std::string& kind, double exponent = 1.0) {
  auto s = MakeSelector(kind, exponent);
  EXPECT_TRUE(s.ok()) << s.status();
  return std::move(*s);
}

// Draws `n` selections and returns the frequency of each key.
std::map<uint64_t, double> Frequencies(ItemSelector& s, int n, uint64_t seed = 42) {
  std::mt19937_64 rng(seed);
  std::map<uint64_t, double> f;
  for (int i = 0; i < n; ++i) f[s.Select(rng)->key] += 1.0 / n;
  return f;
}

TEST(Selectors, FifoAndLifoFollowInsertionOrderAcrossDeletes) {
  std::mt19937_64 rng(1);
  auto fifo = Make("fifo");
  auto lifo = Make("lifo");
  for (uint64_t k : {5, 3, 9, 1}) {
    ASSERT_TRUE(fifo->Insert(k, 1).ok());
    ASSERT_TRUE(lifo->Insert(k, 1).ok());
  }
  EXPECT_EQ(fifo->Select(rng)->key, 5u);
  EXPECT_EQ(lifo->Select(rng)->key, 1u);
  ASSERT_TRUE(fifo->Delete(5).ok());
  ASSERT_TRUE(fifo->Delete(9).ok());  // from the middle
  EXPECT_EQ(fifo->Select(rng)->key, 3u);
  ASSERT_TRUE(lifo->Delete(1).ok());
  EXPECT_EQ(lifo->Select(rng)->key, 9u);
  EXPECT_EQ(fifo->size(), 2);
  EXPECT_EQ(fifo->Delete(5).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(fifo->Insert(3, 1).code(), absl::StatusCode::kAlreadyExists);
  fifo->Clear();
  EXPECT_EQ(fifo->Select(rng).status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(Selectors, UniformIsUniform) {
  auto u = Make("uniform");
  for (uint64_t k = 1; k <= 4; ++k) ASSERT_TRUE(u->Insert(k, 100.0 * k).ok());
  ASSERT_TRUE(u->Delete(2).ok());
  const int n = 60000;
  auto f = Frequencies(*u, n);
  // p = 1/3 each; sd = sqrt(p(1-p)/n) ~ 0.0019; 5 sd.
  for (uint64_t k : {1, 3, 4}) EXPECT_NEAR(f[k], 1.0 / 3, 0.0097) << k;
  EXPECT_EQ(f.count(2), 0u);
  std::mt19937_64 rng(3);
  EXPECT_DOUBLE_EQ(u->Select(rng)->probability, 1.0 / 3);
}

TEST(Selectors, PrioritizedFollowsPriorityToTheExponent) {
  auto p = Make("prioritized", 0.5);
  // priorities 1, 4, 9, 16 -> p^0.5 = 1, 2, 3, 4 -> P = 0.1, 0.2, 0.3, 0.4
  for (uint64_t k = 1; k <= 4; ++k) ASSERT_TRUE(p->Insert(k, static_cast<double>(k * k)).ok());
  const int n = 100000;
  auto f = Frequencies(*p, n);
  for (uint64_t k = 1; k <= 4; ++k) {
    double expected = k / 10.0;
    double sd = std::sqrt(expected * (1 - expected) / n);
    EXPECT_NEAR(f[k], expected, 5 * sd) << k;
  }
  std::mt19937_64 rng(9);
  for (int i = 0; i < 20; ++i) {
    SelectedKey s = *p->Select(rng);
    EXPECT_NEAR(s.probability, s.key / 10.0, 1e-12);
  }
  // Updates and deletes move the distribution: key 4 gone, key 1 now priority 36 (-> 6).
  ASSERT_TRUE(p->Delete(4).ok());
  ASSERT_TRUE(p->Update(1, 36).ok());
  auto g = Frequencies(*p, n, 7);
  EXPECT_NEAR(g[1], 6.0 / 11, 0.0079);
  EXPECT_NEAR(g[3], 3.0 / 11, 0.0071);
  EXPECT_EQ(g.count(4), 0u);
  EXPECT_EQ(p->Insert(8, -1).code(), absl::StatusCode::kInvalidArgument);
}

TEST(Selectors, PrioritizedGrowsPastItsInitialCapacityAndReusesSlots) {
  auto p = Make("prioritized", 1.0);
  for (uint64_t k = 1; k <= 100; ++k) ASSERT_TRUE(p->Insert(k, k == 77 ? 1000.0 : 0.0).ok());
  std::mt19937_64 rng(5);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(p->Select(rng)->key, 77u);
  for (uint64_t k = 1; k <= 50; ++k) ASSERT_TRUE(p->Delete(k).ok());
  ASSERT_TRUE(p->Insert(500, 1000.0).ok());
  auto f = Frequencies(*p, 20000);
  EXPECT_NEAR(f[77], 0.5, 0.018);
  EXPECT_NEAR(f[500], 0.5, 0.018);
  EXPECT_EQ(p->size(), 51);
}

TEST(Selectors, HeapsPickTheExtremePriorityOldestFirstOnTies) {
  std::mt19937_64 rng(1);
  auto max = Make("max_heap");
  auto min = Make("min_heap");
  const std::pair<uint64_t, double> items[] = {{1, 5}, {2, 9}, {3, 1}, {4, 9}, {5, 1}};
  for (auto [k, p] : items) {
    ASSERT_TRUE(max->Insert(k, p).ok());
    ASSERT_TRUE(min->Insert(k, p).ok());
  }
  EXPECT_EQ(max->Select(rng)->key, 2u);
  EXPECT_EQ(min->Select(rng)->key, 3u);
  ASSERT_TRUE(max->Delete(2).ok());
  EXPECT_EQ(max->Select(rng)->key, 4u);
  ASSERT_TRUE(max->Update(1, 20).ok());
  EXPECT_EQ(max->Select(rng)->key, 1u);
  ASSERT_TRUE(min->Update(3, 7).ok());
  EXPECT_EQ(min->Select(rng)->key, 5u);
}

TEST(Selectors, UnknownKindListsTheKnownOnes) {
  auto s = MakeSelector("random");
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.status().message().find("prioritized"), std::string::npos);
}

}  // namespace
}  // namespace rally
