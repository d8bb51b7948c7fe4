// The opponents the curriculum picks for an actor's self-play episodes
// (curriculum.opponent_selection uniform or pfsp). A background thread keeps a queue of picks,
// fetched `batch` at a time with NextTask(count), and resolves every "snapshot-<v>" pick to a
// NetworkPolicy before queueing it: the blob comes from the SnapshotCache and each version's policy
// is built once and shared. Episode threads therefore never wait on the network: Next() returns a
// queued pick, or "latest" (plain self-play, not reported) when the queue is empty. A snapshot the
// learner no longer has (NOT_FOUND after eviction) or cannot send becomes a "latest" pick and
// counts as a fetch failure.
//
// Outcomes of curriculum picks are reported back with ReportOutcomes, batched by the same thread
// (at least every 100 ms while any are waiting). While the curriculum cannot be reached the first
// error is logged, episodes fall back to "latest", and outcomes wait (at most 4 * batch are kept;
// older ones are dropped).
//
// Thread safety: Next(), Report() and counts() from any thread; Start()/Stop() from one.
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/metrics/metrics.h"
#include "common/models/network_policy.h"
#include "rally/v1/curriculum.grpc.pb.h"
#include "services/actor/snapshot_cache.h"

namespace rally {

struct OpponentPick {
  std::string task_id;
  std::string opponent_id = "latest";  // "latest" or "snapshot-<v>"
  int learner_seat = 0;
  std::shared_ptr<NetworkPolicy> policy;  // the snapshot's policy; null for "latest"
  bool from_curriculum = false;           // reported back when the episode ends
};

struct OpponentSourceOptions {
  std::string curriculum_address;  // a rally-replay serving CurriculumService
  std::string weights_address;     // the learner's WeightService (snapshots)
  std::string actor_id;
  std::string game;
  int observation_size = 0;
  std::vector<int> hidden;
  int num_actions = 0;
  int batch = 64;           // picks per NextTask, outcomes per ReportOutcomes
  int cached_versions = 8;  // snapshot policies (and blobs) kept
};

class OpponentSource {
 public:
  struct Counts {
    int64_t picks = 0;           // curriculum picks handed to episodes
    int64_t empty = 0;           // Next() calls that found no pick queued
    int64_t fetch_failures = 0;  // snapshot picks turned into "latest"
    int64_t reported = 0;        // outcomes the curriculum accepted
    int64_t refused = 0;         // outcomes it refused (e.g. opponent left the pool)
    int64_t distinct_snapshots = 0;
  };

  // `metrics` may be null.
  OpponentSource(OpponentSourceOptions options, prometheus::Registry* metrics);
  ~OpponentSource();  // Stop()

  void Start();
  void Stop();

  OpponentPick Next();
  // The episode of a curriculum pick ended with `learner_return` for the learner's seat.
  void Report(const OpponentPick& pick, double learner_return);
  Counts counts() const;

 private:
  void Loop();
  void Fill();
  void Flush();
  // The snapshot's policy; null (and counted) when it cannot be fetched or built.
  std::shared_ptr<NetworkPolicy> Resolve(int64_t version);

  const OpponentSourceOptions options_;
  std::unique_ptr<v1::CurriculumService::Stub> stub_;
  SnapshotCache snapshots_;
  // Built snapshot policies by version; only the background thread touches it.
  std::map<int64_t, std::shared_ptr<NetworkPolicy>> policies_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<OpponentPick> picks_;
  std::vector<v1::ReportOutcomeRequest> outbox_;
  Counts counts_;
  std::set<std::string> played_;  // snapshot ids handed out
  bool stop_ = false;
  bool failing_ = false;
  std::thread thread_;

  prometheus::Counter* fetch_failures_ = nullptr;
  prometheus::Counter* reported_ = nullptr;
};

}  // namespace rally
