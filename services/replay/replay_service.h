// rally-replay's gRPC service over the current job's tables (ReplayJob).
//
// A job is installed by SetJob() when control assigns one; until then every call fails with
// UNAVAILABLE (a writer sends its items again later: a replay restarted after a crash gets its
// job back within seconds). Insert streams acknowledge each item in order once it is stored in
// every table it names (and, with replay.fsync = every_batch, synced to disk); an item that does
// not fit the job's game, names an unknown table or has a bad priority gets an error ack and the
// stream stays open. A resend of a stored (actor_id, incarnation, sequence) is acknowledged as a
// duplicate (see producer_watermarks.h).
// Stored items that become durable together are acknowledged by one response (its `count`).
// While a rate limiter holds an insert back, the stream reads nothing more, and gRPC flow
// control pushes back on the actor: memory stays bounded however fast actors send.
// Sample streams send batches as the client grants credits (see replay.proto).
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/concurrency/bounded_queue.h"
#include "common/config/job_config.h"
#include "common/metrics/metrics.h"
#include "common/net/insert_wire.h"
#include "rally/v1/replay.grpc.pb.h"
#include "services/replay/durable_store.h"
#include "services/replay/replay_job.h"
#include "services/replay/trajectory_pool.h"

namespace rally {

// An item stored in its tables and not yet known durable: its key in each table, and the claim
// on its producer key, which is marked stored once the item is durable.
struct StoredInsert {
  ProducerClaim claim;
  std::vector<std::pair<Table*, uint64_t>> keys;
  // Takes the item back out of its tables (its log record never became durable, or a table
  // refused it) and gives up its claim.
  void Withdraw();
};

class ReplayServiceImpl final : public v1::ReplayService::Service {
 public:
  // With a `data_dir`, each job's items are logged and snapshotted in a directory of its own,
  // DATA_DIR/jobs/<job_id> (JobDataDir); empty: no durability.
  ReplayServiceImpl(prometheus::Registry& metrics, std::string data_dir);
  ~ReplayServiceImpl() override;

  // Installs `job_id`, recovering its tables from its data directory when that holds them.
  absl::Status SetJob(const std::string& job_id, const std::string& spec_yaml,
                      const JobConfig& config);
  // The installed job's id, or "".
  std::string job_id() const;
  // Whether the installed job's recovery found acknowledged items may be missing.
  bool recovery_data_lost() const;
  // The installed job's write-ahead log: OK while it takes appends (or there is none), its
  // error while it fails (inserts are then refused until it resumes).
  absl::Status log_health() const;
  // Drops the job's tables (waking blocked calls with CANCELLED).
  void ClearJob();
  // Wakes every blocked call; used at shutdown.
  void Close();

  // Serves Insert, whose requests arrive as bytes (see the constructor).
  grpc::Status InsertStream(grpc::ServerContext* ctx,
                            grpc::ServerReaderWriter<v1::InsertResponse, grpc::ByteBuffer>* stream);
  grpc::Status Sample(
      grpc::ServerContext* ctx,
      grpc::ServerReaderWriter<v1::SampleResponse, v1::SampleRequest>* stream) override;
  grpc::Status UpdatePriorities(grpc::ServerContext* ctx, const v1::UpdatePrioritiesRequest* req,
                                v1::UpdatePrioritiesResponse* resp) override;
  grpc::Status Info(grpc::ServerContext* ctx, const v1::InfoRequest* req,
                    v1::InfoResponse* resp) override;

  int64_t inserted_total() const;

 private:
  absl::StatusOr<std::shared_ptr<ReplayJob>> CurrentJob() const;
  // Stores one item in every table it names (into `stored`); OK, a duplicate (OK with
  // *duplicate set), or the reason it was refused (then it is in no table). Does not wait for
  // durability: the caller acknowledges after ReplayJob::SyncForAck, and withdraws it if that
  // fails. UNAVAILABLE when the log cannot take it (a full disk): the writer sends it again.
  // `zstd_frame` is the trajectory as it arrived compressed, or empty. `before_blocking` runs
  // once if a table's rate limiter holds the item back.
  absl::Status InsertOne(grpc::ServerContext* ctx, ReplayJob& job, InsertItem& req,
                         std::string zstd_frame, const std::function<void()>& before_blocking,
                         StoredInsert* stored, bool* duplicate);
  void ExportTableMetrics(const ReplayJob& job);

  // The Insert stream's steps (InsertStream). An item's ack on its way from the reading thread
  // to the ack thread: the item is stored (or refused), and acknowledged once durable.
  struct PendingAck {
    v1::InsertResponse ack;
    std::shared_ptr<ReplayJob> job;  // null: nothing to sync
    uint64_t lsn = 0;
    StoredInsert stored;  // the item in its tables, until it is durable or taken back
  };
  // Decodes and stores one item of a request, and makes its ack; nullopt when the stream is to
  // end (the client went away, or the replay is closing). `before_blocking` as InsertOne's.
  std::optional<PendingAck> AcceptItem(grpc::ServerContext* ctx, InsertItem& item,
                                       const std::function<void()>& before_blocking);
  // Waits until the stored items of `batch` are durable (one sync per job) and marks them
  // stored; those that cannot be made durable are taken back and their acks say so.
  void SettleAcks(std::vector<PendingAck>& batch);
  // Writes the acks of `batch` in order, a run of stored items as one response; false when the
  // stream broke.
  static bool WriteAcks(std::vector<PendingAck>& batch,
                        grpc::ServerReaderWriter<v1::InsertResponse, grpc::ByteBuffer>* stream);
  // The ack thread: settles and writes what the reading thread hands over until `pending` is
  // closed and drained; closes it when the stream breaks (the reading thread then stops).
  void AckLoop(BoundedQueue<PendingAck>& pending,
               grpc::ServerReaderWriter<v1::InsertResponse, grpc::ByteBuffer>* stream);

  const std::string data_dir_;
  mutable std::mutex mu_;
  std::shared_ptr<ReplayJob> job_;
  std::atomic<bool> closed_{false};

  prometheus::Registry& registry_;
  prometheus::Counter& inserted_;
  prometheus::Counter& rejected_;
  prometheus::Counter& not_durable_;
  prometheus::Counter& duplicates_;
  prometheus::Counter& sampled_;
  prometheus::Family<prometheus::Gauge>& size_;
  prometheus::Family<prometheus::Gauge>& bytes_;
  prometheus::Family<prometheus::Histogram>& insert_blocked_;
  prometheus::Family<prometheus::Histogram>& sample_blocked_;
  prometheus::Family<prometheus::Histogram>& staleness_;
  prometheus::Family<prometheus::Counter>& evicted_;
  prometheus::Gauge& wal_bytes_;
  prometheus::Gauge& recovery_damaged_;
  prometheus::Gauge& recovery_data_lost_;
  prometheus::Gauge& wal_direct_;
  // Trajectories of evicted items, reused by inserts (see TrajectoryPool).
  static constexpr size_t kKeptTrajectories = 64;
  std::shared_ptr<TrajectoryPool> pool_;
};

}  // namespace rally
