#include "services/replay/replay_service.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <thread>

#include "absl/algorithm/container.h"
#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/net/server.h"
#include "common/util/log.h"
#include "common/util/zstd.h"
#include "services/replay/validate.h"

namespace rally {
namespace {

using Clock = std::chrono::steady_clock;
// Blocked calls wake at least this often to notice cancelled clients and shutdown.
constexpr auto kPollSlice = std::chrono::milliseconds(100);

// A held call is one observation of its whole wait, which can be minutes (a queue whose learner
// is slow or restarting), hence the long tail.
const prometheus::Histogram::BucketBoundaries kWaitBuckets = {
    0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300};

// One call that the rate limiter of `table` held back, from its first refused try until now:
// one observation per call, however many deadlines it waited through.
void ObserveHeld(prometheus::Family<prometheus::Histogram>& family, const std::string& table,
                 Clock::time_point since) {
  family.Add({{"table", table}}, kWaitBuckets)
      .Observe(std::chrono::duration<double>(Clock::now() - since).count());
}

// The refusal of an item whose log record cannot be made durable (`why`: the log's error).
absl::Status NotDurable(const absl::Status& why) {
  return absl::UnavailableError(
      absl::StrCat("not stored: the write-ahead log cannot make it durable (", why.message(),
                   "); send it again later"));
}

}  // namespace

ReplayServiceImpl::ReplayServiceImpl(prometheus::Registry& metrics, std::string data_dir)
    : data_dir_(std::move(data_dir)),
      registry_(metrics),
      inserted_(AddCounter(metrics, "rally_replay_items_inserted_total",
                           "Items stored and acknowledged.")),
      rejected_(AddCounter(metrics, "rally_replay_items_rejected_total",
                           "Items refused (invalid for the game, unknown table, no job, not "
                           "durable).")),
      not_durable_(AddCounter(metrics, "rally_replay_items_not_durable_total",
                              "Items refused because the write-ahead log could not make them "
                              "durable (a full disk, an I/O error); writers send them again.")),
      duplicates_(AddCounter(metrics, "rally_replay_items_duplicate_total",
                             "Resent items acknowledged without storing them again.")),
      sampled_(AddCounter(metrics, "rally_replay_items_sampled_total", "Items sampled.")),
      size_(prometheus::BuildGauge()
                .Name("rally_replay_table_size_items")
                .Help("Items held in the table.")
                .Register(metrics)),
      bytes_(prometheus::BuildGauge()
                 .Name("rally_replay_table_size_bytes")
                 .Help("Serialized trajectory bytes held in the table.")
                 .Register(metrics)),
      insert_blocked_(prometheus::BuildHistogram()
                          .Name("rally_replay_insert_blocked_seconds")
                          .Help("Time an insert waited for the rate limiter.")
                          .Register(metrics)),
      sample_blocked_(prometheus::BuildHistogram()
                          .Name("rally_replay_sample_blocked_seconds")
                          .Help("Time a sample waited for the rate limiter.")
                          .Register(metrics)),
      staleness_(prometheus::BuildHistogram()
                     .Name("rally_replay_sample_staleness_versions")
                     .Help("Policy versions between a sampled item and the learner.")
                     .Register(metrics)),
      evicted_(prometheus::BuildCounter()
                   .Name("rally_replay_items_evicted_stale_total")
                   .Help("Items evicted for exceeding max_staleness.")
                   .Register(metrics)),
      wal_bytes_(AddGauge(metrics, "rally_replay_wal_bytes_written",
                          "Bytes appended to the write-ahead log by this process.")),
      recovery_damaged_(AddGauge(metrics, "rally_replay_recovery_problems",
                                 "Files the installed job's recovery found damaged or missing "
                                 "(each logged as an error); 0 when all was well.")),
      recovery_data_lost_(AddGauge(metrics, "rally_replay_recovery_data_lost",
                                   "1 when the installed job's recovery found no complete "
                                   "snapshot and log: acknowledged items may be missing.")),
      wal_direct_(AddGauge(metrics, "rally_replay_wal_direct_io",
                           "1 while the write-ahead log is written with direct I/O (fsync: "
                           "every_batch, where the file system takes it), 0 otherwise.")),
      pool_(TrajectoryPool::Create(kKeptTrajectories)) {
  // Insert reads its requests as bytes (InsertStream) and parses them into trajectories from
  // the pool. Method 0 is Insert, the first rpc of ReplayService in replay.proto.
  MarkMethodStreamed(
      0, new grpc::internal::BidiStreamingHandler<ReplayServiceImpl, grpc::ByteBuffer,
                                                  v1::InsertResponse>(
             [](ReplayServiceImpl* self, grpc::ServerContext* ctx,
                grpc::ServerReaderWriter<v1::InsertResponse, grpc::ByteBuffer>* stream) {
               return self->InsertStream(ctx, stream);
             },
             this));
}

ReplayServiceImpl::~ReplayServiceImpl() { Close(); }

absl::Status ReplayServiceImpl::SetJob(const std::string& job_id, const std::string& spec_yaml,
                                       const JobConfig& config) {
  ClearJob();
  std::unique_ptr<DurableStore> store;
  if (!data_dir_.empty()) {
    auto dir = JobDataDir(data_dir_, job_id);
    if (!dir.ok()) return dir.status();
    DurabilityOptions options;
    options.dir = *dir;
    auto opened = DurableStore::Open(options);
    if (!opened.ok()) return opened.status();
    store = std::move(*opened);
  }
  auto job = ReplayJob::Create(job_id, spec_yaml, config, std::move(store));
  if (!job.ok()) return job.status();
  std::shared_ptr<ReplayJob> shared = std::move(*job);
  for (Table* t : shared->tables()) {  // exported from the start, before any call is held
    insert_blocked_.Add({{"table", t->name()}}, kWaitBuckets);
    sample_blocked_.Add({{"table", t->name()}}, kWaitBuckets);
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    job_ = shared;
  }
  ExportTableMetrics(*shared);
  recovery_damaged_.Set(static_cast<double>(shared->recovery_problems().size()));
  recovery_data_lost_.Set(shared->recovery_data_lost() ? 1 : 0);
  LogInfo("job installed",
          {{"job_id", job_id},
           {"tables", static_cast<int64_t>(config.replay.tables.size())},
           {"recovered_items", shared->recovered_items()},
           {"recovery_problems", static_cast<int64_t>(shared->recovery_problems().size())},
           {"game", config.game.name}});
  if (shared->recovery_data_lost()) {
    LogError("the job's data directory was damaged: acknowledged items may be missing",
             {{"job_id", job_id}, {"problems", absl::StrJoin(shared->recovery_problems(), "; ")}});
  }
  return absl::OkStatus();
}

absl::Status ReplayServiceImpl::log_health() const {
  std::lock_guard<std::mutex> lock(mu_);
  if (job_ == nullptr || job_->store() == nullptr) return absl::OkStatus();
  return job_->store()->health();
}

bool ReplayServiceImpl::recovery_data_lost() const {
  std::lock_guard<std::mutex> lock(mu_);
  return job_ != nullptr && job_->recovery_data_lost();
}

std::string ReplayServiceImpl::job_id() const {
  std::lock_guard<std::mutex> lock(mu_);
  return job_ ? job_->id() : "";
}

void ReplayServiceImpl::ClearJob() {
  std::shared_ptr<ReplayJob> old;
  {
    std::lock_guard<std::mutex> lock(mu_);
    old = std::move(job_);
  }
  if (old) {
    old->Close();
    LogInfo("job cleared", {{"job_id", old->id()}});
  }
}

void ReplayServiceImpl::Close() {
  closed_ = true;
  ClearJob();
}

absl::StatusOr<std::shared_ptr<ReplayJob>> ReplayServiceImpl::CurrentJob() const {
  std::lock_guard<std::mutex> lock(mu_);
  // Transient (a replay restarted, or started before its job): writers send again later.
  if (job_ == nullptr) {
    return absl::UnavailableError("replay has no job assigned yet; send it again later");
  }
  return job_;
}

int64_t ReplayServiceImpl::inserted_total() const {
  auto job = CurrentJob();
  if (!job.ok()) return 0;
  int64_t total = 0;
  for (Table* t : (*job)->tables()) total = std::max(total, t->inserted_total());
  return total;
}

void ReplayServiceImpl::ExportTableMetrics(const ReplayJob& job) {
  for (Table* t : job.tables()) {
    size_.Add({{"table", t->name()}}).Set(static_cast<double>(t->size()));
    bytes_.Add({{"table", t->name()}}).Set(static_cast<double>(t->bytes()));
    auto& ev = evicted_.Add({{"table", t->name()}});
    ev.Increment(std::max(0.0, static_cast<double>(t->evicted_stale_total()) - ev.Value()));
  }
  if (const DurableStore* store = job.store()) {
    wal_bytes_.Set(static_cast<double>(store->bytes_written()));
    wal_direct_.Set(store->direct_io() ? 1 : 0);
  }
}

void StoredInsert::Withdraw() {
  for (const auto& [table, key] : keys) table->Withdraw(key);
  keys.clear();
  claim = ProducerClaim();  // given up: a resend may store it
}

absl::Status ReplayServiceImpl::InsertOne(grpc::ServerContext* ctx, ReplayJob& job, InsertItem& req,
                                          std::string zstd_frame,
                                          const std::function<void()>& before_blocking,
                                          StoredInsert* stored, bool* duplicate) {
  // None sent: an empty one, and validation says what is missing.
  if (!req.trajectory) req.trajectory = pool_->Take();
  const v1::Trajectory& traj = *req.trajectory;
  if (req.tables.empty()) return absl::InvalidArgumentError("tables: name at least one table");
  std::vector<Table*> targets;
  for (const std::string& name : req.tables) {
    Table* t = job.table(name);
    if (t == nullptr) {
      std::string known;
      for (Table* k : job.tables()) absl::StrAppend(&known, known.empty() ? "" : ", ", k->name());
      return absl::NotFoundError(
          absl::StrCat("unknown table '", name, "' (this job has ", known, ")"));
    }
    targets.push_back(t);
  }
  if (!std::isfinite(req.priority) || req.priority < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("priority: must be finite and >= 0, got ", req.priority));
  }
  if (auto s = ValidateTrajectory(job.game(), traj); !s.ok()) return s;
  // Held until the item is durable or given up: a resend racing it waits, then is a duplicate
  // or stored.
  absl::StatusOr<ProducerClaim> claim = job.producers().Claim(traj);
  if (!claim.ok()) return claim.status();
  if (claim->duplicate()) {
    *duplicate = true;
    return absl::OkStatus();
  }
  stored->claim = std::move(*claim);
  std::shared_ptr<v1::Trajectory> item = pool_->Share(std::move(req.trajectory));
  // The log's form of the item, made here rather than under each table's lock: the bytes as
  // the actor sent them (its zstd frame, or the serialised trajectory), unless the store
  // compresses them.
  std::optional<EncodedTrajectory> encoded;
  if (job.store() != nullptr) {
    encoded = !zstd_frame.empty() ? EncodedTrajectory{absl::Cord(std::move(zstd_frame)), true}
              : !req.trajectory_wire.empty()
                  ? job.store()->EncodeWire(std::move(req.trajectory_wire))
                  : job.store()->EncodeTrajectory(*item);
  }
  bool blocked = false;
  for (Table* t : targets) {
    std::optional<Clock::time_point> held_since;  // when this table first held the item back
    absl::Status status = absl::OkStatus();
    while (true) {
      // A first try that does not wait, so that the caller hears before the item blocks.
      auto key = t->Insert(item, req.priority,
                           Clock::now() + (held_since ? kPollSlice : Clock::duration{}),
                           encoded ? &*encoded : nullptr);
      if (key.ok()) {
        stored->keys.emplace_back(t, *key);
        break;
      }
      if (!absl::IsDeadlineExceeded(key.status())) {
        status = key.status();
        break;
      }
      if (!held_since) {
        held_since = Clock::now();
        if (!blocked) before_blocking();
        blocked = true;
        continue;
      }
      if (ctx->IsCancelled() || closed_) {
        status = absl::CancelledError("insert cancelled");
        break;
      }
    }
    if (held_since) ObserveHeld(insert_blocked_, t->name(), *held_since);
    if (!status.ok()) {
      // In no table or in all: what the other tables took is taken back.
      stored->Withdraw();
      if (absl::IsUnavailable(status) && job.store() != nullptr) {
        return NotDurable(job.store()->health());
      }
      return status;
    }
  }
  return absl::OkStatus();
}

std::optional<ReplayServiceImpl::PendingAck> ReplayServiceImpl::AcceptItem(
    grpc::ServerContext* ctx, InsertItem& item, const std::function<void()>& before_blocking) {
  PendingAck p;
  std::string frame;
  absl::Status decoded = DecodeInsertItem(
      item, [this] { return pool_->Take(); }, &frame);
  if (item.trajectory) p.ack.set_sequence(item.trajectory->sequence());
  const std::string actor_id = item.trajectory ? item.trajectory->actor_id() : "";
  bool duplicate = false;
  auto job = CurrentJob();
  absl::Status status = !decoded.ok() ? decoded
                        : job.ok() ? InsertOne(ctx, **job, item, std::move(frame), before_blocking,
                                               &p.stored, &duplicate)
                                   : job.status();
  if (absl::IsCancelled(status) && (ctx->IsCancelled() || closed_)) return std::nullopt;
  if (status.ok() && duplicate) {
    p.ack.set_duplicate(true);
    duplicates_.Increment();
    ++(*job)->duplicates;
  } else if (status.ok()) {
    p.job = *job;
    p.lsn = (*job)->last_lsn();
  } else {
    if (absl::IsUnavailable(status) && job.ok()) not_durable_.Increment();
    rejected_.Increment();
    if (job.ok()) ++(*job)->rejected;
    p.ack.set_code(static_cast<int>(status.code()));
    p.ack.set_error(std::string(status.message()));
    LogWarning("insert rejected", {{"actor_id", actor_id},
                                   {"sequence", p.ack.sequence()},
                                   {"error", std::string(status.message())}});
  }
  return p;
}

void ReplayServiceImpl::SettleAcks(std::vector<PendingAck>& batch) {
  // One sync per job (a stream can outlive a job change) covers its items in the batch.
  std::vector<ReplayJob*> synced;
  for (const PendingAck& p : batch) {
    if (!p.job || absl::c_linear_search(synced, p.job.get())) continue;
    synced.push_back(p.job.get());
    uint64_t lsn = 0;
    for (const PendingAck& q : batch) {
      if (q.job == p.job) lsn = std::max(lsn, q.lsn);
    }
    if (absl::Status s = p.job->SyncForAck(lsn); !s.ok()) {
      // Not durable: not acknowledged as stored, and not kept (the writer sends it again).
      for (PendingAck& q : batch) {
        if (q.job != p.job) continue;
        q.stored.Withdraw();
        const absl::Status refused = NotDurable(s);
        q.ack.set_code(static_cast<int>(refused.code()));
        q.ack.set_error(std::string(refused.message()));
        not_durable_.Increment();
        rejected_.Increment();
        ++q.job->rejected;
      }
    }
  }
  for (PendingAck& p : batch) {
    if (!p.job || p.ack.code() != 0) continue;
    p.stored.claim.MarkStored();
    inserted_.Increment();
  }
}

bool ReplayServiceImpl::WriteAcks(
    std::vector<PendingAck>& batch,
    grpc::ServerReaderWriter<v1::InsertResponse, grpc::ByteBuffer>* stream) {
  for (size_t i = 0; i < batch.size(); ++i) {
    // A run of stored, durable items is acknowledged by its last item's response.
    auto durable = [&](size_t k) { return batch[k].job && batch[k].ack.code() == 0; };
    uint32_t count = 1;
    while (durable(i) && i + 1 < batch.size() && durable(i + 1)) ++i, ++count;
    if (count > 1) batch[i].ack.set_count(count);
    if (!stream->Write(batch[i].ack)) return false;
  }
  return true;
}

void ReplayServiceImpl::AckLoop(
    BoundedQueue<PendingAck>& pending,
    grpc::ServerReaderWriter<v1::InsertResponse, grpc::ByteBuffer>* stream) {
  bool writing = true;
  // Everything handed over so far is acknowledged together: one sync covers it, and a run of
  // stored items goes out as one response.
  for (std::vector<PendingAck> batch = pending.PopAll(); !batch.empty(); batch = pending.PopAll()) {
    SettleAcks(batch);
    if (writing && !WriteAcks(batch, stream)) {
      writing = false;
      pending.Close();  // the stream broke: the reading thread stops
    }
  }
}

grpc::Status ReplayServiceImpl::InsertStream(
    grpc::ServerContext* ctx,
    grpc::ServerReaderWriter<v1::InsertResponse, grpc::ByteBuffer>* stream) {
  // This thread reads and stores items; an ack thread (AckLoop) waits until each stored item is
  // durable (group commit: one fdatasync covers every item stored meanwhile, on every stream)
  // and writes the acks in order. A request's acks are handed over together, when it ends or
  // before this thread waits (a rate limiter holds an item back), so that the ack thread wakes
  // once per request. At most kMaxPendingAcks acks wait between the threads (and as many on
  // either side of the queue), which bounds memory.
  constexpr size_t kMaxPendingAcks = 256;
  BoundedQueue<PendingAck> pending(kMaxPendingAcks);
  std::thread acker([&] { AckLoop(pending, stream); });
  std::vector<PendingAck> run;  // acks of stored items not yet handed over, in order
  // Hands `run` over; false when the stream broke meanwhile (what was not handed over is
  // taken back out of the tables: the writer sends it again).
  auto hand_over = [&] {
    std::vector<PendingAck> refused = pending.PushAll(std::move(run));
    run.clear();
    for (PendingAck& p : refused) p.stored.Withdraw();
    return refused.empty();
  };
  grpc::ByteBuffer buffer;
  std::vector<InsertItem> items;
  grpc::Status result = grpc::Status::OK;
  bool open = true;
  while (open && stream->Read(&buffer)) {
    // The request's own item, then those it carries in `more`, each acknowledged on its own.
    // Bytes that are not an InsertRequest end the stream (after the acks of what came before).
    // The bytes as they arrived are kept only for the write-ahead log.
    if (absl::Status parsed = ParseInsertRequest(
            buffer, [this] { return pool_->Take(); }, !data_dir_.empty(), &items);
        !parsed.ok()) {
      result = ToGrpc(parsed);
      break;
    }
    buffer.Clear();
    for (size_t i = 0; open && i < items.size(); ++i) {
      std::optional<PendingAck> p;
      if (!pending.closed()) p = AcceptItem(ctx, items[i], hand_over);
      open = p.has_value();
      if (open) run.push_back(*std::move(p));
      if (run.size() >= kMaxPendingAcks) open = hand_over() && open;
    }
    open = hand_over() && open;
    // The table gauges once per message, not per item.
    if (auto job = CurrentJob(); job.ok()) ExportTableMetrics(**job);
  }
  pending.Close();
  acker.join();
  return result;
}

grpc::Status ReplayServiceImpl::Sample(
    grpc::ServerContext* ctx,
    grpc::ServerReaderWriter<v1::SampleResponse, v1::SampleRequest>* stream) {
  v1::SampleRequest first;
  if (!stream->Read(&first)) return grpc::Status::OK;
  auto job = CurrentJob();
  if (!job.ok()) return ToGrpc(job.status());
  Table* table = (*job)->table(first.table());
  if (table == nullptr) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND,
                        absl::StrCat("unknown table '", first.table(), "'"));
  }
  if (first.batch_size() < 1) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        absl::StrCat("batch_size ", first.batch_size(), " must be at least 1"));
  }
  auto& staleness =
      staleness_.Add({{"table", table->name()}},
                     prometheus::Histogram::BucketBoundaries{0, 1, 2, 4, 8, 16, 32, 64});
  int64_t credits = std::max(0, first.credits());
  AdaptiveCompressor compressor;  // this stream's large items, for a client that decodes zstd
  if (first.policy_version() > 0) {
    for (Table* t : (*job)->tables()) t->SetPolicyVersion(first.policy_version());
  }
  while (true) {
    if (credits == 0) {
      v1::SampleRequest more;
      if (!stream->Read(&more)) return grpc::Status::OK;  // the client is done
      credits += std::max(0, more.credits());
      if (more.policy_version() > 0) {
        for (Table* t : (*job)->tables()) t->SetPolicyVersion(more.policy_version());
      }
      continue;
    }
    // A first try that does not wait; a batch the rate limiter holds back is then waited for
    // in slices, and counted as held once.
    absl::StatusOr<std::vector<SampledItem>> batch =
        table->Sample(first.batch_size(), Clock::now());
    if (absl::IsDeadlineExceeded(batch.status())) {
      const Clock::time_point held_since = Clock::now();
      while (true) {
        batch = table->Sample(first.batch_size(), Clock::now() + kPollSlice);
        if (batch.ok() || !absl::IsDeadlineExceeded(batch.status())) break;
        if (ctx->IsCancelled() || closed_) break;
      }
      ObserveHeld(sample_blocked_, table->name(), held_since);
      if (absl::IsDeadlineExceeded(batch.status())) return grpc::Status::CANCELLED;
    }
    if (!batch.ok()) return ToGrpc(batch.status());
    v1::SampleResponse resp;
    // The stored trajectories are lent to the response rather than copied into it: Write
    // serialises it before it returns (a const pass over them, which other streams may make at
    // the same time), and this takes them back before `resp` would delete them. (WriteLast
    // would return before the message is sent: it must not be used here.)
    absl::Cleanup take_back = [&resp] {
      for (v1::SampledItem& out : *resp.mutable_items()) {
        if (out.has_trajectory()) out.unsafe_arena_release_trajectory();
      }
    };
    const auto lend = [](v1::SampledItem* out, const v1::Trajectory& t) {
      out->unsafe_arena_set_allocated_trajectory(const_cast<v1::Trajectory*>(&t));
    };
    for (const SampledItem& s : *batch) {
      v1::SampledItem* out = resp.add_items();
      out->set_key(s.item.key);
      out->set_times_sampled(s.item.times_sampled);
      out->set_probability(s.probability);
      out->set_table_size(s.table_size);
      out->set_weight(s.weight);
      out->set_staleness(s.staleness);
      // Large items go compressed to clients that decode them.
      if (first.accept_zstd() && s.item.bytes > static_cast<int64_t>(kWireCompressAboveBytes)) {
        std::string z = compressor.Compress(static_cast<size_t>(s.item.bytes),
                                            [&] { return s.item.trajectory->SerializeAsString(); });
        if (!z.empty()) {
          out->set_trajectory_zstd(std::move(z));
        } else {
          lend(out, *s.item.trajectory);
        }
      } else {
        lend(out, *s.item.trajectory);
      }
      staleness.Observe(static_cast<double>(s.staleness));
    }
    sampled_.Increment(static_cast<double>(batch->size()));
    ExportTableMetrics(**job);
    // The sample's record (its counts, what it removed) is written before the client sees it.
    // (A failed write stops the log: it is logged, and inserts are no longer acknowledged.)
    (*job)->Flush().IgnoreError();
    if (!stream->Write(resp)) return grpc::Status::CANCELLED;
    --credits;
  }
}

grpc::Status ReplayServiceImpl::UpdatePriorities(grpc::ServerContext*,
                                                 const v1::UpdatePrioritiesRequest* req,
                                                 v1::UpdatePrioritiesResponse*) {
  auto job = CurrentJob();
  if (!job.ok()) return ToGrpc(job.status());
  Table* table = (*job)->table(req->table());
  if (table == nullptr) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND,
                        absl::StrCat("unknown table '", req->table(), "'"));
  }
  std::vector<std::pair<uint64_t, double>> updates;
  for (const auto& u : req->updates()) updates.emplace_back(u.key(), u.priority());
  if (absl::Status s = table->UpdatePriorities(updates); !s.ok()) return ToGrpc(s);
  return ToGrpc((*job)->Flush());
}

grpc::Status ReplayServiceImpl::Info(grpc::ServerContext*, const v1::InfoRequest*,
                                     v1::InfoResponse* resp) {
  auto job = CurrentJob();
  if (!job.ok()) return grpc::Status::OK;
  resp->set_job_id((*job)->id());
  for (Table* t : (*job)->tables()) {
    v1::TableInfo* info = resp->add_tables();
    info->set_name(t->name());
    info->set_sampler(t->options().sampler);
    info->set_remover(t->options().remover);
    info->set_size(t->size());
    info->set_capacity(t->options().max_size);
    info->set_bytes(t->bytes());
    info->set_inserted_total(t->inserted_total());
    info->set_sampled_total(t->sampled_total());
    info->set_rejected_total((*job)->rejected.load());
    info->set_duplicates_total((*job)->duplicates.load());
    info->set_rate_limiter_cursor(t->cursor());
    info->set_evicted_stale_total(t->evicted_stale_total());
  }
  return grpc::Status::OK;
}

}  // namespace rally
