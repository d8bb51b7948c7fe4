// Opponent weight snapshots held by an actor: fetched from the learner's snapshot pool (the
// WeightService Get RPC) when first asked for, then kept, up to `capacity` versions, least
// recently used evicted first.
//
// Thread safety: Get() may be called from any number of threads. One fetch per version is in
// flight at a time: callers asking for a version being fetched block until that fetch ends and
// share its result. A failed fetch is not cached; the next Get() tries again.
//
// Memory: at most `capacity` cached blobs plus those being fetched; a blob evicted while a caller
// still holds it lives until that caller lets go.
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdint>
#include <list>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "rally/v1/weights.grpc.pb.h"

namespace rally {

class SnapshotCache {
 public:
  // `capacity` >= 1 versions; `timeout` bounds one fetch.
  SnapshotCache(std::shared_ptr<grpc::Channel> channel, int capacity,
                std::chrono::milliseconds timeout = std::chrono::seconds(60));
  SnapshotCache(const std::string& address, int capacity,
                std::chrono::milliseconds timeout = std::chrono::seconds(60));

  // The safetensors blob of weight `version` (>= 1). Blocks while it is fetched. NOT_FOUND
  // when the learner keeps neither that version as its latest nor in its snapshot pool.
  absl::StatusOr<std::shared_ptr<const std::string>> Get(int64_t version);

  // Versions cached now (fetches in flight not counted).
  size_t size() const;
  // Fetches started so far (successful or not): a cache hit starts none.
  int64_t fetches() const;

 private:
  // One version: being fetched (`done` false) or cached.
  struct Entry {
    bool done = false;
    absl::StatusOr<std::shared_ptr<const std::string>> result;
    std::list<int64_t>::iterator lru;  // valid once cached
  };

  absl::StatusOr<std::shared_ptr<const std::string>> Fetch(int64_t version);

  const std::unique_ptr<v1::WeightService::Stub> stub_;
  const size_t capacity_;
  const std::chrono::milliseconds timeout_;

  mutable absl::Mutex mu_;
  absl::flat_hash_map<int64_t, std::shared_ptr<Entry>> entries_ ABSL_GUARDED_BY(mu_);
  // Cached versions, most recently used first.
  std::list<int64_t> lru_ ABSL_GUARDED_BY(mu_);
  int64_t fetches_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace rally
