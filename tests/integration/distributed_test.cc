// Two learner ranks as threads of one process, rendezvousing through a real TCPStore and
// all-reducing over Gloo on loopback: the collectives the trainer relies on.
#include "services/learner/distributed.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdlib>
#include <functional>
#include <thread>

#include "common/net/free_port.h"
#include "tests/integration/process.h"

namespace rally {
namespace {

// Runs `body(rank, dp)` on two ranks concurrently; failures are reported per rank.
void OnTwoRanks(const std::function<void(int, DataParallel&)>& body) {
  const int port = FreePort();
  std::vector<std::thread> threads;
  for (int rank = 0; rank < 2; ++rank) {
    threads.emplace_back([&, rank] {
      DistributedOptions o;
      o.rank = rank;
      o.world_size = 2;
      o.master_port = port;
      o.timeout = std::chrono::seconds(30);
      o.bucket_bytes = 64;  // several buckets even for small tensors
      auto rendezvous = Rendezvous::Connect(o);
      ASSERT_TRUE(rendezvous.ok()) << rendezvous.status();
      auto dp = DataParallel::Create(**rendezvous, "job-1", /*cuda=*/false);
      ASSERT_TRUE(dp.ok()) << dp.status();
      EXPECT_EQ((*dp)->backend(), "gloo");
      body(rank, **dp);
    });
  }
  for (auto& t : threads) t.join();
}

TEST(DataParallel, BroadcastCopiesRankZerosTensors) {
  OnTwoRanks([](int rank, DataParallel& dp) {
    torch::Tensor a = torch::full({3, 2}, static_cast<float>(rank + 1));
    torch::Tensor b = torch::arange(5, torch::kInt64) * (rank + 10);
    ASSERT_TRUE(dp.Broadcast({a, b}).ok());
    EXPECT_TRUE(torch::equal(a, torch::full({3, 2}, 1.0f)));
    EXPECT_TRUE(torch::equal(b, torch::arange(5, torch::kInt64) * 10));
  });
}

TEST(DataParallel, AverageGradientsTakesTheMeanInEveryBucket) {
  OnTwoRanks([](int rank, DataParallel& dp) {
    // 10 + 7 + 1 floats with 64-byte buckets: three buckets.
    std::vector<torch::Tensor> params = {torch::zeros({10}, torch::requires_grad()),
                                         torch::zeros({7}, torch::requires_grad()),
                                         torch::zeros({1}, torch::requires_grad())};
    params[0].mutable_grad() = torch::full({10}, rank == 0 ? 1.0f : 3.0f);
    params[1].mutable_grad() = torch::arange(7, torch::kFloat32) * (rank + 1);
    // params[2] has no gradient on rank 0: it counts as zeros.
    if (rank == 1) params[2].mutable_grad() = torch::full({1}, 4.0f);
    auto stop = dp.AverageGradients(params, /*stop=*/false);
    ASSERT_TRUE(stop.ok()) << stop.status();
    EXPECT_FALSE(*stop);
    EXPECT_TRUE(torch::allclose(params[0].grad(), torch::full({10}, 2.0f)));
    EXPECT_TRUE(torch::allclose(params[1].grad(), torch::arange(7, torch::kFloat32) * 1.5));
    EXPECT_FLOAT_EQ(params[2].grad().item<float>(), 2.0f);
  });
}

TEST(DataParallel, OneRanksStopReachesEveryRank) {
  OnTwoRanks([](int rank, DataParallel& dp) {
    std::vector<torch::Tensor> params = {torch::zeros({4}, torch::requires_grad())};
    auto first = dp.AverageGradients(params, /*stop=*/false);
    ASSERT_TRUE(first.ok());
    EXPECT_FALSE(*first);
    auto second = dp.AverageGradients(params, /*stop=*/rank == 1);
    ASSERT_TRUE(second.ok());
    EXPECT_TRUE(*second) << "rank " << rank;
  });
}

TEST(DataParallel, DigestsTellWhetherWeightsMatch) {
  OnTwoRanks([](int rank, DataParallel& dp) {
    torch::Tensor same = torch::linspace(0, 1, 100);
    auto equal = dp.GatherDigests({same});
    ASSERT_TRUE(equal.ok());
    ASSERT_EQ(equal->size(), 2u);
    EXPECT_EQ((*equal)[0], (*equal)[1]);
    EXPECT_EQ((*equal)[0], TensorsDigest({same}));
    torch::Tensor differs = same.clone();
    if (rank == 1) differs[50] += 1e-6f;
    auto unequal = dp.GatherDigests({differs});
    ASSERT_TRUE(unequal.ok());
    EXPECT_NE((*unequal)[0], (*unequal)[1]);
    auto sums = dp.SumAcrossRanks({1.0, static_cast<double>(rank)});
    ASSERT_TRUE(sums.ok());
    EXPECT_EQ(*sums, (std::vector<double>{2.0, 1.0}));
  });
}

TEST(DataParallel, TwoRanksTrainingOnDifferentDataStayIdentical) {
  OnTwoRanks([](int rank, DataParallel& dp) {
    torch::manual_seed(100 + rank);  // different initial weights and data on each rank
    torch::nn::Linear model(8, 3);
    torch::optim::Adam opt(model->parameters(), torch::optim::AdamOptions(1e-2));
    ASSERT_TRUE(dp.Broadcast(model->parameters()).ok());
    for (int step = 0; step < 20; ++step) {
      opt.zero_grad();
      torch::Tensor x = torch::randn({16, 8});
      model->forward(x).pow(2).mean().backward();
      auto stop = dp.AverageGradients(model->parameters(), false);
      ASSERT_TRUE(stop.ok());
      opt.step();
    }
    auto digests = dp.GatherDigests(model->parameters());
    ASSERT_TRUE(digests.ok());
    EXPECT_EQ((*digests)[0], (*digests)[1]);
  });
}

TEST(DistributedOptions, ComeFromPyTorchsEnvironmentVariables) {
  setenv("WORLD_SIZE", "4", 1);
  setenv("RANK", "3", 1);
  setenv("MASTER_ADDR", "10.0.0.7", 1);
  setenv("MASTER_PORT", "23456", 1);
  auto o = DistributedOptionsFromEnv({});
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->world_size, 4);
  EXPECT_EQ(o->rank, 3);
  EXPECT_EQ(o->master_addr, "10.0.0.7");
  EXPECT_EQ(o->master_port, 23456);
  setenv("RANK", "4", 1);
  EXPECT_NE(DistributedOptionsFromEnv({}).status().message().find("outside WORLD_SIZE 4"),
            std::string::npos);
  setenv("RANK", "x", 1);
  EXPECT_NE(DistributedOptionsFromEnv({}).status().message().find("RANK=\"x\""), std::string::npos);
  for (const char* v : {"WORLD_SIZE", "RANK", "MASTER_ADDR", "MASTER_PORT"}) unsetenv(v);
}

}  // namespace
}  // namespace rally
