// weights_bench: publish-to-applied latency of the learner's weight service over gRPC on
// loopback, against raw loopback TCP moving the same bytes to the same number of receivers,
// measured in the same run.
//
//   weights_bench [--publishes N] [--subscribers S] [--chunk_bytes B] [--json FILE]
//
// A WeightServiceImpl is served by a GrpcServer in this process; S WeightSubscribers (the actor's
// client), each on its own channel (its own TCP connection) and thread, assemble every version.
// For blobs of 1 MiB and 100 MiB, after one warm-up publish of that size, N versions are
// published one at a time, each followed by one raw fan-out of the same size; a version's
// publish-to-applied time runs from Publish() until the last subscriber holds the complete blob.
// The raw figure is the time until the last of S receivers, each fed concurrently by its own sender
// thread, holds the same bytes.
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <random>
#include <thread>

#include "common/net/server.h"
#include "services/actor/weight_subscriber.h"
#include "services/learner/weight_service.h"
#include "tests/bench/bench_util.h"

using namespace rally;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

double FlagValue(int argc, char** argv, const std::string& name, double fallback) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (argv[i] == "--" + name) return std::atof(argv[i + 1]);
  }
  return fallback;
}

// A channel like MakeChannel's that does not share its TCP connection with other channels to
// the same address (as separate actor processes would not).
std::shared_ptr<grpc::Channel> OwnChannel(const std::string& address) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(kMaxMessageBytes);
  args.SetMaxSendMessageSize(kMaxMessageBytes);
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
}

// When each subscriber applied each version.
class AppliedTimes {
 public:
  explicit AppliedTimes(int subscribers) : latest_(subscribers, -1), at_(subscribers) {}

  WeightSubscriber::ApplyFn Fn(int subscriber) {
    return [this, subscriber](int64_t version, std::string) {
      auto now = Clock::now();
      std::lock_guard<std::mutex> lock(mu_);
      latest_[subscriber] = version;
      at_[subscriber] = now;
      cv_.notify_all();
      return absl::OkStatus();
    };
  }

  // The time at which the last subscriber applied `version`; aborts after 120 s.
  Clock::time_point WaitForAll(int64_t version) {
    std::unique_lock<std::mutex> lock(mu_);
    bool ok = cv_.wait_for(lock, 120s, [&] {
      for (int64_t v : latest_) {
        if (v < version) return false;
      }
      return true;
    });
    if (!ok) {
      std::fprintf(stderr, "version %lld was not applied by every subscriber in 120 s\n",
                   static_cast<long long>(version));
      std::abort();
    }
    return *std::max_element(at_.begin(), at_.end());
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<int64_t> latest_;
  std::vector<Clock::time_point> at_;
};

}  // namespace

int main(int argc, char** argv) {
  const int publishes = static_cast<int>(FlagValue(argc, argv, "publishes", 5));
  const int subscribers = static_cast<int>(FlagValue(argc, argv, "subscribers", 4));
  const size_t chunk_bytes = static_cast<size_t>(FlagValue(
      argc, argv, "chunk_bytes", static_cast<double>(WeightServiceOptions{}.chunk_bytes)));

  prometheus::Registry registry;
  WeightServiceImpl service(registry, {.chunk_bytes = chunk_bytes});
  auto server = GrpcServer::Start("127.0.0.1", 0, {&service});
  if (!server.ok()) {
    std::fprintf(stderr, "%s\n", server.status().ToString().c_str());
    return 1;
  }
  AppliedTimes applied(subscribers);
  std::vector<std::unique_ptr<prometheus::Registry>> actor_metrics;
  std::vector<std::unique_ptr<WeightSubscriber>> subs;
  for (int s = 0; s < subscribers; ++s) {
    actor_metrics.push_back(std::make_unique<prometheus::Registry>());
    subs.push_back(std::make_unique<WeightSubscriber>(OwnChannel((*server)->address()),
                                                      "bench-" + std::to_string(s), applied.Fn(s),
                                                      *actor_metrics.back()));
    subs.back()->Start();
  }
  int64_t version = 1;
  service.Publish(version, 0, std::string(1024, 'w'));  // connects every subscriber
  applied.WaitForAll(version);

  std::printf("weight chunks of %zu bytes, %d subscribers, median of %d publishes\n\n", chunk_bytes,
              subscribers, publishes);
  std::printf("%12s %11s %21s %15s %8s\n", "model_bytes", "subscribers", "publish_to_applied_s",
              "raw_transfer_s", "ratio");
  nlohmann::json runs = nlohmann::json::array();
  std::mt19937_64 rng(1);
  for (size_t bytes : {size_t{1} << 20, size_t{100} << 20}) {
    std::string model(bytes, '\0');
    for (size_t i = 0; i + 8 <= bytes; i += 8) {
      uint64_t r = rng();
      std::memcpy(model.data() + i, &r, 8);
    }
    // gRPC publishes and raw fan-outs alternate, so that both see the same machine load.
    std::vector<double> times;
    std::vector<double> raw_times;
    for (int i = -1; i < publishes; ++i) {  // i = -1: warm-up
      std::string blob = model;
      ++version;
      auto t0 = Clock::now();
      service.Publish(version, version, std::move(blob));
      auto t1 = applied.WaitForAll(version);
      if (i < 0) continue;
      times.push_back(std::chrono::duration<double>(t1 - t0).count());
      raw_times.push_back(bench::LoopbackTcpFanOutSeconds(bytes, subscribers, 1));
    }
    const double grpc_s = bench::Median(times);
    const double raw_s = bench::Median(raw_times);
    std::printf("%12zu %11d %21.4f %15.4f %8.2f\n", bytes, subscribers, grpc_s, raw_s,
                grpc_s / raw_s);
    std::fflush(stdout);
    runs.push_back({{"model_bytes", bytes},
                    {"subscribers", subscribers},
                    {"chunk_bytes", chunk_bytes},
                    {"publishes", publishes},
                    {"publish_to_applied_s", grpc_s},
                    {"publish_to_applied_all_s", times},
                    {"raw_transfer_s", raw_s},
                    {"raw_transfer_all_s", raw_times},
                    {"ratio", grpc_s / raw_s}});
  }
  std::printf("\ngoal: ratio <= 2 (publish-to-applied within twice raw loopback TCP)\n");
  for (auto& s : subs) s->Stop();
  service.Close();
  (*server)->Shutdown();
  bench::WriteJson(bench::JsonPath(argc, argv), {{"runs", runs}});
  return 0;
}
