// The learner's weight service and the actor's clients of it (WeightSubscriber, SnapshotCache),
// served on an in-process loopback gRPC server.
#include "services/learner/weight_service.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "common/net/server.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/impl/codegen/client_unary_call.h"
#include "grpcpp/impl/codegen/sync_stream.h"
#include "services/actor/snapshot_cache.h"
#include "services/actor/weight_subscriber.h"

namespace rally {
namespace {

using namespace std::chrono_literals;

// Weights of `version`: `bytes` bytes that differ between versions and along the blob.
std::string Blob(int64_t version, size_t bytes = 1000) {
  std::string b(bytes, '\0');
  for (size_t i = 0; i < bytes; ++i) b[i] = static_cast<char>((version * 131 + i * 7) % 251);
  return b;
}

double GaugeValue(prometheus::Registry& registry, const std::string& name) {
  for (const auto& family : registry.Collect()) {
    if (family.name == name && !family.metric.empty()) return family.metric[0].gauge.value;
  }
  ADD_FAILURE() << "no gauge " << name;
  return -1;
}

// Polls the gauge until it reads `value` (gRPC finishes a stream's server side asynchronously).
bool GaugeReaches(prometheus::Registry& registry, const std::string& name, double value) {
  for (int i = 0; i < 200; ++i) {
    if (GaugeValue(registry, name) == value) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

struct Fetched {
  int64_t version = -1;
  int64_t learner_step = -1;
  std::string blob;
  int chunks = 0;
};

class WeightServiceTest : public ::testing::Test {
 protected:
  void Start(WeightServiceOptions options) {
    service_ = std::make_unique<WeightServiceImpl>(registry_, options);
    auto server = GrpcServer::Start("127.0.0.1", 0, {service_.get()});
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    stub_ = v1::WeightService::NewStub(MakeChannel(server_->address()));
  }

  void TearDown() override {
    if (service_) service_->Close();
    if (server_) server_->Shutdown();
  }

  // Publishes versions first..last, learner step = 10 x version.
  void PublishRange(int64_t first, int64_t last, size_t bytes = 1000) {
    for (int64_t v = first; v <= last; ++v) service_->Publish(v, 10 * v, Blob(v, bytes));
  }

  absl::StatusOr<Fetched> Get(int64_t version) {
    grpc::ClientContext ctx;
    ctx.set_deadline(DeadlineIn(10s));
    v1::GetWeightsRequest req;
    req.set_version(version);
    auto stream = stub_->Get(&ctx, req);
    Fetched f;
    WeightAssembler assembler;
    v1::WeightChunk chunk;
    while (stream->Read(&chunk)) {
      ++f.chunks;
      f.learner_step = chunk.learner_step();
      auto complete = assembler.Add(chunk);
      if (!complete.ok()) return complete.status();
      if (*complete) {
        f.version = assembler.version();
        f.blob = assembler.TakeBlob();
      }
    }
    grpc::Status s = stream->Finish();
    if (!s.ok()) return FromGrpc(s);
    return f;
  }

  v1::ListSnapshotsResponse List() {
    grpc::ClientContext ctx;
    ctx.set_deadline(DeadlineIn(10s));
    v1::ListSnapshotsResponse resp;
    grpc::Status s = stub_->ListSnapshots(&ctx, v1::ListSnapshotsRequest(), &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp;
  }

  std::vector<int64_t> PoolVersions() {
    std::vector<int64_t> versions;
    v1::ListSnapshotsResponse list = List();
    for (const auto& s : list.snapshots()) versions.push_back(s.version());
    return versions;
  }

  prometheus::Registry registry_;
  std::unique_ptr<WeightServiceImpl> service_;  // outlives the server
  std::unique_ptr<GrpcServer> server_;
  std::unique_ptr<v1::WeightService::Stub> stub_;
};

TEST_F(WeightServiceTest, PoolKeepsEveryMthVersionAndEvictsTheOldestBeyondP) {
  Start({.pool = {.snapshot_every_versions = 2, .snapshot_pool_size = 3}});
  PublishRange(0, 5);
  EXPECT_EQ(PoolVersions(), (std::vector<int64_t>{2, 4}));  // 0 is "latest", never pooled
  PublishRange(6, 11);
  EXPECT_EQ(PoolVersions(), (std::vector<int64_t>{6, 8, 10}));
  EXPECT_EQ(GaugeValue(registry_, "rally_learner_weight_snapshot_pool_size"), 3);

  v1::ListSnapshotsResponse list = List();
  ASSERT_EQ(list.snapshots_size(), 3);
  EXPECT_EQ(list.snapshots(1).version(), 8);
  EXPECT_EQ(list.snapshots(1).learner_step(), 80);
  EXPECT_EQ(list.snapshots(1).total_bytes(), 1000u);
  EXPECT_GT(list.snapshots(1).published_unix_micros(), 0);
  ASSERT_TRUE(list.has_latest());
  EXPECT_EQ(list.latest().version(), 11);
  EXPECT_EQ(list.latest().learner_step(), 110);
}

TEST_F(WeightServiceTest, RepublishingAPooledVersionReplacesIt) {
  Start({.pool = {.snapshot_every_versions = 2, .snapshot_pool_size = 3}});
  PublishRange(1, 4);
  service_->Publish(4, 41, Blob(99));  // a resumed learner publishes its checkpoint's version
  EXPECT_EQ(PoolVersions(), (std::vector<int64_t>{2, 4}));
  auto four = Get(4);
  ASSERT_TRUE(four.ok()) << four.status();
  EXPECT_EQ(four->learner_step, 41);
  EXPECT_EQ(four->blob, Blob(99));
}

TEST_F(WeightServiceTest, GetServesTheLatestOrAPooledVersionInChunks) {
  Start({.pool = {.snapshot_every_versions = 5, .snapshot_pool_size = 2}, .chunk_bytes = 1 << 20});
  const size_t bytes = (5 << 20) / 2;  // 2.5 MiB: three chunks
  PublishRange(1, 12, bytes);

  auto latest = Get(0);
  ASSERT_TRUE(latest.ok()) << latest.status();
  EXPECT_EQ(latest->version, 12);
  EXPECT_EQ(latest->learner_step, 120);
  EXPECT_EQ(latest->chunks, 3);
  EXPECT_EQ(latest->blob, Blob(12, bytes));

  auto ten = Get(10);
  ASSERT_TRUE(ten.ok()) << ten.status();
  EXPECT_EQ(ten->version, 10);
  EXPECT_EQ(ten->blob, Blob(10, bytes));

  auto twelve = Get(12);  // the latest by number, though not pooled
  ASSERT_TRUE(twelve.ok()) << twelve.status();
  EXPECT_EQ(twelve->version, 12);
}

TEST_F(WeightServiceTest, GetOfAVersionNotHeldIsNotFoundAndNamesWhatIsHeld) {
  Start({.pool = {.snapshot_every_versions = 2, .snapshot_pool_size = 2}});
  PublishRange(1, 7);
  auto evicted = Get(2);
  ASSERT_EQ(evicted.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(evicted.status().message(),
            "weight version 2 is not held: the latest is 7 and the snapshot pool holds [4, 6] "
            "(versions divisible by 2, the newest 2); ListSnapshots lists the versions to fetch");
  EXPECT_EQ(Get(5).status().code(), absl::StatusCode::kNotFound);   // never pooled
  EXPECT_EQ(Get(99).status().code(), absl::StatusCode::kNotFound);  // not yet published
  EXPECT_EQ(Get(-1).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(WeightServiceTest, AVersionStreamsToItsEndAfterItIsEvicted) {
  Start({.pool = {.snapshot_every_versions = 1, .snapshot_pool_size = 1}, .chunk_bytes = 1024});
  const size_t bytes = 4 << 20;
  PublishRange(1, 1, bytes);
  grpc::ClientContext ctx;
  ctx.set_deadline(DeadlineIn(10s));
  v1::GetWeightsRequest req;
  req.set_version(1);
  auto stream = stub_->Get(&ctx, req);
  v1::WeightChunk chunk;
  ASSERT_TRUE(stream->Read(&chunk));
  service_->Reset();  // drops the latest and the pool; the stream still holds version 1
  PublishRange(1, 3);
  WeightAssembler assembler;
  absl::StatusOr<bool> complete = assembler.Add(chunk);
  while (complete.ok() && !*complete && stream->Read(&chunk)) complete = assembler.Add(chunk);
  ASSERT_TRUE(complete.ok()) << complete.status();
  ASSERT_TRUE(*complete);
  EXPECT_EQ(assembler.TakeBlob(), Blob(1, bytes));
  EXPECT_TRUE(stream->Finish().ok());
}

TEST_F(WeightServiceTest, WithoutAPoolOnlyTheLatestIsServed) {
  Start({});
  PublishRange(1, 4);
  EXPECT_TRUE(PoolVersions().empty());
  auto old = Get(2);
  ASSERT_EQ(old.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(old.status().message().find("the snapshot pool is off"), std::string::npos)
      << old.status();
  EXPECT_TRUE(Get(4).ok());
}

TEST_F(WeightServiceTest, SetSnapshotPoolAppliesToTheNextPublishesAndTrims) {
  Start({});
  PublishRange(1, 3);
  service_->SetSnapshotPool({.snapshot_every_versions = 1, .snapshot_pool_size = 4});
  PublishRange(4, 9);
  EXPECT_EQ(PoolVersions(), (std::vector<int64_t>{6, 7, 8, 9}));
  service_->SetSnapshotPool({.snapshot_every_versions = 1, .snapshot_pool_size = 2});
  EXPECT_EQ(PoolVersions(), (std::vector<int64_t>{8, 9}));
  EXPECT_EQ(GaugeValue(registry_, "rally_learner_weight_snapshot_pool_size"), 2);
}

TEST_F(WeightServiceTest, ResetForgetsTheLatestAndThePool) {
  Start({.pool = {.snapshot_every_versions = 1, .snapshot_pool_size = 3}});
  PublishRange(1, 5);
  service_->Reset();
  v1::ListSnapshotsResponse list = List();
  EXPECT_EQ(list.snapshots_size(), 0);
  EXPECT_FALSE(list.has_latest());
  EXPECT_EQ(GaugeValue(registry_, "rally_learner_weight_snapshot_pool_size"), 0);
  EXPECT_EQ(Get(0).status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(Get(4).status().code(), absl::StatusCode::kNotFound);
  // The next job's versions are pooled as before.
  PublishRange(1, 2);
  EXPECT_EQ(PoolVersions(), (std::vector<int64_t>{1, 2}));
}

TEST_F(WeightServiceTest, ResetEndsSubscriptionsWithAbortedAndCloseWithOk) {
  Start({});
  PublishRange(1, 1);
  for (bool reset : {true, false}) {
    grpc::ClientContext ctx;
    ctx.set_deadline(DeadlineIn(10s));
    v1::SubscribeRequest req;
    req.set_have_version(-1);
    auto stream = stub_->Subscribe(&ctx, req);
    v1::WeightChunk chunk;
    ASSERT_TRUE(stream->Read(&chunk));
    EXPECT_EQ(chunk.version(), reset ? 1 : 2);
    EXPECT_TRUE(GaugeReaches(registry_, "rally_learner_weight_subscribers", 1));
    if (reset) {
      service_->Reset();
    } else {
      service_->Close();
    }
    EXPECT_FALSE(stream->Read(&chunk));
    grpc::Status s = stream->Finish();
    EXPECT_EQ(s.error_code(), reset ? grpc::StatusCode::ABORTED : grpc::StatusCode::OK)
        << s.error_message();
    if (reset) PublishRange(2, 2);
  }
}

TEST_F(WeightServiceTest, SubscriberThatFallsBehindGetsWholeVersionsEndingWithTheNewest) {
  Start({.chunk_bytes = 1024});
  const size_t bytes = 1 << 20;  // 1024 chunks a version
  std::vector<std::string> blobs;
  for (int64_t v = 0; v <= 5; ++v) blobs.push_back(Blob(v, bytes));
  service_->Publish(1, 10, blobs[1]);
  grpc::ClientContext ctx;
  ctx.set_deadline(DeadlineIn(10s));
  v1::SubscribeRequest req;
  req.set_have_version(-1);
  auto stream = stub_->Subscribe(&ctx, req);
  v1::WeightChunk chunk;
  ASSERT_TRUE(stream->Read(&chunk));  // version 1 is being sent
  for (int64_t v = 2; v <= 5; ++v) service_->Publish(v, 10 * v, blobs[v]);
  WeightAssembler assembler;
  ASSERT_TRUE(assembler.Add(chunk).ok());
  std::vector<int64_t> completed;
  while (completed.empty() || completed.back() < 5) {
    ASSERT_TRUE(stream->Read(&chunk));
    auto complete = assembler.Add(chunk);
    ASSERT_TRUE(complete.ok()) << complete.status();
    if (!*complete) continue;
    completed.push_back(assembler.version());
    EXPECT_EQ(assembler.TakeBlob(), blobs[completed.back()]);
  }
  // Version 1 to its end, then whichever version is the latest when the previous one ends (how
  // many of 2 to 4 are skipped depends on how far gRPC's buffers let version 1 run ahead).
  EXPECT_EQ(completed.front(), 1);
  EXPECT_TRUE(std::is_sorted(completed.begin(), completed.end()));
  EXPECT_EQ(std::adjacent_find(completed.begin(), completed.end()), completed.end());
  ctx.TryCancel();
  stream->Finish();
}

// The versions a WeightSubscriber applied, in order.
class Applied {
 public:
  WeightSubscriber::ApplyFn Fn() {
    return [this](int64_t version, std::string blob) {
      std::lock_guard<std::mutex> lock(mu_);
      versions_.push_back(version);
      blobs_.push_back(std::move(blob));
      cv_.notify_all();
      return absl::OkStatus();
    };
  }
  // Waits until `version` is applied; false after 10 s.
  bool WaitFor(int64_t version) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, 10s,
                        [&] { return !versions_.empty() && versions_.back() >= version; });
  }
  std::vector<int64_t> versions() {
    std::lock_guard<std::mutex> lock(mu_);
    return versions_;
  }
  std::string last_blob() {
    std::lock_guard<std::mutex> lock(mu_);
    return blobs_.empty() ? "" : blobs_.back();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<int64_t> versions_;
  std::vector<std::string> blobs_;
};

TEST_F(WeightServiceTest, SubscriberGetsTheLatestAtOnceThenEachNewVersion) {
  Start({.chunk_bytes = 4096});
  PublishRange(1, 3, 10000);
  Applied applied;
  prometheus::Registry actor_metrics;
  WeightSubscriber sub(MakeChannel(server_->address()), "test", applied.Fn(), actor_metrics);
  sub.Start();
  ASSERT_TRUE(applied.WaitFor(3));
  EXPECT_EQ(applied.versions(), (std::vector<int64_t>{3}));  // not 1 and 2
  EXPECT_EQ(applied.last_blob(), Blob(3, 10000));
  service_->Publish(4, 40, Blob(4, 10000));
  ASSERT_TRUE(applied.WaitFor(4));
  EXPECT_EQ(applied.versions(), (std::vector<int64_t>{3, 4}));
  EXPECT_EQ(applied.last_blob(), Blob(4, 10000));
  for (int i = 0; i < 100 && sub.version() < 4; ++i) std::this_thread::sleep_for(10ms);
  EXPECT_EQ(sub.version(), 4);
  sub.Stop();
}

TEST_F(WeightServiceTest, SubscriberThatReconnectsGetsTheLatestAtOnce) {
  Start({});
  PublishRange(1, 1);
  Applied first;
  prometheus::Registry actor_metrics;
  {
    WeightSubscriber sub(MakeChannel(server_->address()), "test", first.Fn(), actor_metrics);
    sub.Start();
    ASSERT_TRUE(first.WaitFor(1));
  }  // the actor goes away
  EXPECT_TRUE(GaugeReaches(registry_, "rally_learner_weight_subscribers", 0));
  PublishRange(2, 5);
  Applied second;
  WeightSubscriber sub(MakeChannel(server_->address()), "test", second.Fn(), actor_metrics);
  sub.Start();
  ASSERT_TRUE(second.WaitFor(5));
  EXPECT_EQ(second.versions(), (std::vector<int64_t>{5}));
  EXPECT_EQ(second.last_blob(), Blob(5));
}

TEST_F(WeightServiceTest, SnapshotCacheFetchesOnDemandAndKeepsTheMostRecentlyUsed) {
  Start({.pool = {.snapshot_every_versions = 1, .snapshot_pool_size = 10}});
  PublishRange(1, 6);
  SnapshotCache cache(server_->address(), 2);
  auto three = cache.Get(3);
  ASSERT_TRUE(three.ok()) << three.status();
  EXPECT_EQ(**three, Blob(3));
  EXPECT_EQ(cache.fetches(), 1);
  ASSERT_TRUE(cache.Get(3).ok());
  EXPECT_EQ(cache.fetches(), 1);  // a hit
  ASSERT_TRUE(cache.Get(4).ok());
  ASSERT_TRUE(cache.Get(3).ok());  // 3 is now the most recently used
  ASSERT_TRUE(cache.Get(5).ok());  // evicts 4
  EXPECT_EQ(cache.fetches(), 3);
  EXPECT_EQ(cache.size(), 2u);
  ASSERT_TRUE(cache.Get(3).ok());
  EXPECT_EQ(cache.fetches(), 3);
  auto four = cache.Get(4);
  ASSERT_TRUE(four.ok()) << four.status();
  EXPECT_EQ(**four, Blob(4));
  EXPECT_EQ(cache.fetches(), 4);
  // A blob evicted while held stays valid.
  EXPECT_EQ(**three, Blob(3));
}

TEST_F(WeightServiceTest, SnapshotCacheRunsOneFetchForConcurrentCallers) {
  Start({.pool = {.snapshot_every_versions = 1, .snapshot_pool_size = 2}});
  const size_t bytes = 8 << 20;
  PublishRange(1, 2, bytes);
  SnapshotCache cache(server_->address(), 2);
  std::vector<std::thread> threads;
  std::atomic<int> correct{0};
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&] {
      auto blob = cache.Get(1);
      if (blob.ok() && **blob == Blob(1, bytes)) ++correct;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(correct, 8);
  EXPECT_EQ(cache.fetches(), 1);
}

TEST_F(WeightServiceTest, SnapshotCacheDoesNotCacheFailures) {
  Start({.pool = {.snapshot_every_versions = 2, .snapshot_pool_size = 2}});
  PublishRange(1, 3);
  SnapshotCache cache(server_->address(), 2);
  auto missing = cache.Get(4);
  ASSERT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("weight version 4 is not held"), std::string::npos)
      << missing.status();
  PublishRange(4, 4);
  auto four = cache.Get(4);
  ASSERT_TRUE(four.ok()) << four.status();
  EXPECT_EQ(**four, Blob(4));
  EXPECT_EQ(cache.fetches(), 2);
  EXPECT_EQ(cache.Get(0).status().code(), absl::StatusCode::kInvalidArgument);
}

// A call of the weight service with `request` as its bytes, over a channel with gRPC's default
// limits (no cap on what it sends): the versions of the chunks that came back and the status.
// A subscription that is accepted runs until the deadline.
struct RawCall {
  grpc::Status status;
  std::vector<int64_t> versions;
};

RawCall CallRaw(const std::string& address, const std::string& method, const std::string& request,
                std::chrono::milliseconds deadline) {
  auto channel = grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
  const std::string name = "/rally.v1.WeightService/" + method;
  grpc::Slice slice(request);
  const grpc::ByteBuffer bytes(&slice, 1);
  grpc::ClientContext ctx;
  ctx.set_deadline(DeadlineIn(deadline));
  RawCall out;
  if (method == "ListSnapshots") {
    const grpc::internal::RpcMethod rpc(name.c_str(), grpc::internal::RpcMethod::NORMAL_RPC);
    v1::ListSnapshotsResponse resp;
    out.status = grpc::internal::BlockingUnaryCall(channel.get(), rpc, &ctx, bytes, &resp);
    return out;
  }
  const grpc::internal::RpcMethod rpc(name.c_str(), grpc::internal::RpcMethod::SERVER_STREAMING);
  std::unique_ptr<grpc::ClientReader<v1::WeightChunk>> reader(
      grpc::internal::ClientReaderFactory<v1::WeightChunk>::Create(channel.get(), rpc, &ctx,
                                                                   bytes));
  v1::WeightChunk chunk;
  while (reader->Read(&chunk)) {
    if (out.versions.empty() || out.versions.back() != chunk.version()) {
      out.versions.push_back(chunk.version());
    }
  }
  out.status = reader->Finish();
  return out;
}

std::string Serialized(const google::protobuf::Message& m) { return m.SerializeAsString(); }

// Every class of bad input a client can send the weight service, each answered with its own code
// and message, leaving the service serving: printed as the rows of docs/reliability.md.
TEST_F(WeightServiceTest, EveryClassOfBadInputGetsItsOwnErrorAndTheServiceServesOn) {
  Start({.pool = {.snapshot_every_versions = 2, .snapshot_pool_size = 2}});
  struct Case {
    std::string method;
    std::string what;
    std::string request;
    grpc::StatusCode code;
    std::string message;  // the whole message, or its start when it ends with "..."
  };
  v1::SubscribeRequest negative;
  negative.set_have_version(-5);
  v1::SubscribeRequest long_name;
  long_name.set_subscriber(std::string(300, 'a'));
  v1::GetWeightsRequest get_negative;
  get_negative.set_version(-3);
  v1::GetWeightsRequest get_99;
  get_99.set_version(99);
  const std::string before_publish_error =
      "no weights published yet for this job; retry after the learner's first publish";
  // Before the first publish, the latest is not there yet.
  RawCall early = CallRaw(server_->address(), "Get", "", 5s);
  EXPECT_EQ(early.status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(early.status.error_message(), before_publish_error);
  PublishRange(1, 5);
  const std::vector<Case> cases = {
      {"Subscribe", "bytes that are not a SubscribeRequest", std::string("\x0a\x64") + "ab",
       grpc::StatusCode::INVALID_ARGUMENT,
       "the request is not a SubscribeRequest: SubscribeRequest.subscriber: length 100 runs past "
       "the end: 2 bytes left"},
      {"Subscribe", "a name that is not UTF-8", std::string("\x0a\x02\xff\xfe", 4),
       grpc::StatusCode::INVALID_ARGUMENT,
       "the request is not a SubscribeRequest: SubscribeRequest.subscriber: not valid UTF-8"},
      {"Subscribe", "wrong wire type", std::string("\x12\x01\x05", 3),
       grpc::StatusCode::INVALID_ARGUMENT,
       "SubscribeRequest.have_version: sent as length-delimited bytes, but the field is of type "
       "int64"},
      {"Subscribe", "have_version below -1", Serialized(negative),
       grpc::StatusCode::INVALID_ARGUMENT,
       "have_version: -5 is out of range: -1 when holding no weights, else the version held (0 or "
       "more)"},
      {"Subscribe", "oversize name", Serialized(long_name), grpc::StatusCode::INVALID_ARGUMENT,
       "subscriber: 300 bytes, longer than the limit of 256"},
      {"Subscribe", "oversize request (65 MiB)", std::string(65 << 20, '\0'),
       grpc::StatusCode::RESOURCE_EXHAUSTED,
       "Received message larger than max (68157440 vs. "
       "67108864)"},
      {"Get", "bytes that are not a GetWeightsRequest", std::string("\x08", 1),
       grpc::StatusCode::INVALID_ARGUMENT,
       "the request is not a GetWeightsRequest: GetWeightsRequest.version: cut short"},
      {"Get", "wrong wire type", std::string("\x09\x01\x00\x00\x00\x00\x00\x00\x00", 9),
       grpc::StatusCode::INVALID_ARGUMENT,
       "GetWeightsRequest.version: sent as 8 fixed bytes, but the field is of type int64"},
      {"Get", "negative version", Serialized(get_negative), grpc::StatusCode::INVALID_ARGUMENT,
       "weight version -3 is negative (0 = latest)"},
      {"Get", "unknown version", Serialized(get_99), grpc::StatusCode::NOT_FOUND,
       "weight version 99 is not held: the latest is 5 and the snapshot pool holds [2, 4] "
       "(versions divisible by 2, the newest 2); ListSnapshots lists the versions to fetch"},
      {"ListSnapshots", "bytes that are not a ListSnapshotsRequest", std::string("\x0a\x64", 2),
       grpc::StatusCode::INVALID_ARGUMENT,
       "the request is not a ListSnapshotsRequest: ListSnapshotsRequest.(field 1): length 100 runs "
       "past the end: 0 bytes left"},
  };
  std::printf("| Call | Bad input | Code | Error |\n");
  for (const Case& c : cases) {
    RawCall call = CallRaw(server_->address(), c.method, c.request, 10s);
    std::printf("| %s | %s | %d | `%s` |\n", c.method.c_str(), c.what.c_str(),
                static_cast<int>(call.status.error_code()), call.status.error_message().c_str());
    EXPECT_EQ(call.status.error_code(), c.code) << c.method << ": " << c.what;
    if (c.message.size() > 3 && c.message.substr(c.message.size() - 3) == "...") {
      EXPECT_EQ(call.status.error_message().rfind(c.message.substr(0, c.message.size() - 3), 0), 0u)
          << c.what << ": " << call.status.error_message();
    } else {
      EXPECT_EQ(call.status.error_message(), c.message) << c.method << ": " << c.what;
    }
    EXPECT_TRUE(call.versions.empty()) << c.what;
  }
  // Fields the service does not know are ignored (proto3): a Get with one is served.
  RawCall unknown = CallRaw(server_->address(), "Get", std::string("\xf8\x06\x01", 3), 10s);
  EXPECT_TRUE(unknown.status.ok()) << unknown.status.error_message();
  EXPECT_EQ(unknown.versions, (std::vector<int64_t>{5}));
  // A subscriber ahead of the latest version is no error: it waits for a newer one.
  v1::SubscribeRequest ahead;
  ahead.set_have_version(7);
  RawCall waiting = CallRaw(server_->address(), "Subscribe", Serialized(ahead), 500ms);
  EXPECT_EQ(waiting.status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_TRUE(waiting.versions.empty());

  // The service serves on: a subscriber gets the latest, Get a pooled version, the list is whole,
  // and no subscription was left open.
  RawCall subscribed = CallRaw(server_->address(), "Subscribe", "", 1s);
  EXPECT_EQ(subscribed.versions, (std::vector<int64_t>{5}));
  auto four = Get(4);
  ASSERT_TRUE(four.ok()) << four.status();
  EXPECT_EQ(four->blob, Blob(4));
  EXPECT_EQ(PoolVersions(), (std::vector<int64_t>{2, 4}));
  EXPECT_TRUE(GaugeReaches(registry_, "rally_learner_weight_subscribers", 0));
}

}  // namespace
}  // namespace rally
