// The weight service of learner rank 0. It holds the latest published weight version and a pool
// of snapshots, and streams weights in chunks of at most kMaxChunkBytes.
//
// - Subscribe: a subscriber gets the latest version at once (so one that reconnects catches up
//   immediately), then every newer one as it is published. Intermediate versions are skipped
//   when a subscriber is slower than the publisher: actors only ever want the newest. A version
//   being sent is always sent to its end.
// - Snapshot pool: Publish keeps version v (v > 0) when v % snapshot_every_versions == 0, and
//   evicts the oldest beyond snapshot_pool_size. Actors fetch pooled versions as opponents with
//   Get(version); ListSnapshots tells the curriculum which versions it can offer.
//
// Fan-out without copies: Publish serialises a version once into its WeightChunk messages, whose
// data are slices of the one blob; every stream sends those same slices (callback API, no thread
// per subscriber). A version stays in memory while a stream still sends it, so memory is at most
// (1 + pool size + versions still streaming) blobs.
//
// Bad input: a request that does not parse, or sends a field with another wire type than its
// own, is INVALID_ARGUMENT naming the field; so are a version below its range (Get: 0 = the
// latest; Subscribe: -1 = none held) and a subscriber name longer than kMaxSubscriberBytes. A
// version not held is NOT_FOUND, the latest before the first publish UNAVAILABLE. Requests over the
// server's kMaxMessageBytes are refused by gRPC (RESOURCE_EXHAUSTED). None of these ends or changes
// another call.
//
// Thread safety: every method may be called from any thread; Publish() and SetSnapshotPool() come
// from the training thread, the RPCs from gRPC threads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "common/metrics/metrics.h"
#include "rally/v1/weights.grpc.pb.h"

namespace rally {

// Which published versions the service keeps for opponents (the job's
// learner.snapshot_every_versions and learner.snapshot_pool_size).
struct SnapshotPoolOptions {
  int64_t snapshot_every_versions = 0;  // keep every m-th version; 0 = no pool
  int snapshot_pool_size = 0;           // keep the newest P of them; 0 = no pool
};

struct WeightServiceOptions {
  SnapshotPoolOptions pool;
  // Bytes of weights per WeightChunk message, 1..kMaxChunkBytes. In weights_bench, 128 KiB to
  // 4 MiB were within 10% of each other; 512 KiB was fastest.
  size_t chunk_bytes = 512 << 10;
};

class WeightServiceImpl final
    : public v1::WeightService::WithRawCallbackMethod_Subscribe<
          v1::WeightService::WithRawCallbackMethod_Get<
              v1::WeightService::WithRawCallbackMethod_ListSnapshots<v1::WeightService::Service>>> {
 public:
  static constexpr size_t kMaxChunkBytes = 4 << 20;
  // The longest SubscribeRequest.subscriber (a name for logs and metrics).
  static constexpr size_t kMaxSubscriberBytes = 256;

  explicit WeightServiceImpl(prometheus::Registry& metrics, WeightServiceOptions options = {});
  // Ends open streams (Close()); the gRPC server must be shut down before destruction.
  ~WeightServiceImpl() override;

  // Makes `blob` (a safetensors weight set) the latest version and, per the pool options, a
  // snapshot. Versions are expected to increase within a job; publishing a version the pool
  // already holds replaces it. Returns the blob as the service holds it (a reference, no copy).
  grpc::Slice Publish(int64_t version, int64_t learner_step, std::string blob);
  // Sets the pool options for the job being trained (call before its first Publish); a smaller
  // pool size evicts the oldest snapshots at once.
  void SetSnapshotPool(SnapshotPoolOptions pool);
  // Forgets the latest version and the pool (between jobs) and ends open subscriptions with
  // ABORTED. The pool options stay.
  void Reset();
  // Ends open subscriptions with OK (the process is stopping).
  void Close();

  // The RPCs take and send serialised messages (SubscribeRequest / GetWeightsRequest in,
  // WeightChunk out; ListSnapshotsRequest in, ListSnapshotsResponse out), so that a request that
  // does not parse gets an error naming its field.
  grpc::ServerWriteReactor<grpc::ByteBuffer>* Subscribe(grpc::CallbackServerContext* ctx,
                                                        const grpc::ByteBuffer* request) override;
  grpc::ServerWriteReactor<grpc::ByteBuffer>* Get(grpc::CallbackServerContext* ctx,
                                                  const grpc::ByteBuffer* request) override;
  grpc::ServerUnaryReactor* ListSnapshots(grpc::CallbackServerContext* ctx,
                                          const grpc::ByteBuffer* request,
                                          grpc::ByteBuffer* response) override;

 private:
  class SubscribeReactor;
  class GetReactor;

  // Parses and checks a SubscribeRequest (see "Bad input" above).
  static absl::Status ValidateSubscribe(const grpc::ByteBuffer& request, v1::SubscribeRequest* req);

  // One published version, serialised.
  struct Published {
    int64_t version = 0;
    int64_t learner_step = 0;
    int64_t published_unix_micros = 0;
    uint64_t total_bytes = 0;
    grpc::Slice blob;  // the safetensors weight set
    // The WeightChunk messages, in order; their data slices share the blob.
    std::vector<grpc::ByteBuffer> chunks;
  };
  std::shared_ptr<const Published> Serialise(int64_t version, int64_t learner_step,
                                             std::string blob) const;
  // Lets every subscription act on a change of the latest version, Reset() or Close().
  void WakeSubscribers() ABSL_LOCKS_EXCLUDED(mu_);
  void TrimPool() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::string PoolDescription() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const size_t chunk_bytes_;

  mutable absl::Mutex mu_;
  std::shared_ptr<const Published> latest_ ABSL_GUARDED_BY(mu_);
  // Snapshots, oldest version first; at most pool_.snapshot_pool_size entries.
  std::deque<std::shared_ptr<const Published>> snapshots_ ABSL_GUARDED_BY(mu_);
  SnapshotPoolOptions pool_ ABSL_GUARDED_BY(mu_);
  uint64_t generation_ ABSL_GUARDED_BY(mu_) = 0;  // Reset() count
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  // Open subscriptions; each removes itself when gRPC is done with it.
  absl::flat_hash_set<SubscribeReactor*> subscribers_ ABSL_GUARDED_BY(mu_);

  prometheus::Gauge& version_gauge_;
  prometheus::Gauge& pool_gauge_;
  prometheus::Gauge& subscribers_gauge_;
  prometheus::Counter& bytes_sent_;
};

}  // namespace rally
