#include "services/replay/replay_service.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/wire_format_lite.h>
#include <grpcpp/support/proto_buffer_reader.h>

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <optional>
#include <thread>

#include "absl/algorithm/container.h"
#include "absl/base/casts.h"
#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/net/proto_wire.h"
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

namespace {

using google::protobuf::internal::WireFormatLite;

// A request's bytes as gRPC holds them, in slices, from which ranges are taken without copying.
class SlicedBytes {
 public:
  explicit SlicedBytes(grpc::ByteBuffer& buffer) {
    buffer.Dump(&slices_).IgnoreError();  // fails only for an empty buffer
    size_t start = 0;
    for (const grpc::Slice& s : slices_) {
      starts_.push_back(start);
      start += s.size();
    }
  }

  // Bytes [offset, offset + length), as a cord that holds references to the slices (or copies
  // of the bytes of inlined ones).
  absl::Cord Range(size_t offset, size_t length) const {
    absl::Cord out;
    size_t i = static_cast<size_t>(std::upper_bound(starts_.begin(), starts_.end(), offset) -
                                   starts_.begin());
    for (i = i == 0 ? 0 : i - 1; length > 0 && i < slices_.size(); ++i) {
      const grpc::Slice& s = slices_[i];
      const size_t begin = offset - starts_[i];
      const size_t n = std::min(length, s.size() - begin);
      const absl::string_view piece(reinterpret_cast<const char*>(s.begin()) + begin, n);
      // An inlined slice (up to 23 bytes) holds its bytes inside the grpc_slice itself, which
      // goes with this object: copy those. (Slice::c_slice() would tell, but it takes a
      // reference that would have to be dropped by hand.)
      const auto* self = reinterpret_cast<const char*>(&s);
      if (piece.data() >= self && piece.data() < self + sizeof(s)) {
        out.Append(piece);
      } else {
        // The bytes live in gRPC's buffer, which the cord's reference to the slice keeps.
        out.Append(absl::MakeCordFromExternal(piece, [keep = s] {}));
      }
      offset += n;
      length -= n;
    }
    return out;
  }

 private:
  std::vector<grpc::Slice> slices_;
  std::vector<size_t> starts_;
};

// Reads the fields of one InsertRequest from `in` (up to its limit) into items[index]; with
// `top`, the items in its `more` are appended after it. With `bytes`, each trajectory's bytes
// are kept too. False when the bytes do not parse.
bool ParseInsertItem(google::protobuf::io::CodedInputStream& in, const SlicedBytes* bytes,
                     TrajectoryPool& pool, bool top, std::vector<InsertItem>& items) {
  const size_t index = items.size();
  items.emplace_back();
  while (uint32_t tag = in.ReadTag()) {
    const int field = WireFormatLite::GetTagFieldNumber(tag);
    const bool delimited =
        WireFormatLite::GetTagWireType(tag) == WireFormatLite::WIRETYPE_LENGTH_DELIMITED;
    // The length of a delimited field read here (tables, trajectory, trajectory_zstd, more);
    // others are skipped whole.
    const bool ours = field == v1::InsertRequest::kTablesFieldNumber ||
                      field == v1::InsertRequest::kTrajectoryFieldNumber ||
                      field == v1::InsertRequest::kTrajectoryZstdFieldNumber ||
                      field == v1::InsertRequest::kMoreFieldNumber;
    uint32_t length = 0;
    if (delimited && ours &&
        (!in.ReadVarint32(&length) || length > static_cast<uint32_t>(kMaxMessageBytes))) {
      return false;
    }
    if (field == v1::InsertRequest::kTablesFieldNumber && delimited) {
      if (!in.ReadString(&items[index].tables.emplace_back(), static_cast<int>(length))) {
        return false;
      }
    } else if (field == v1::InsertRequest::kTrajectoryFieldNumber && delimited) {
      if (bytes != nullptr) {
        items[index].trajectory_wire.Append(
            bytes->Range(static_cast<size_t>(in.CurrentPosition()), length));
      }
      auto limit = in.PushLimit(static_cast<int>(length));
      if (!items[index].trajectory) items[index].trajectory = pool.Take();
      if (!items[index].trajectory->MergePartialFromCodedStream(&in) ||
          !in.ConsumedEntireMessage()) {
        return false;
      }
      in.PopLimit(limit);
    } else if (field == v1::InsertRequest::kPriorityFieldNumber &&
               WireFormatLite::GetTagWireType(tag) == WireFormatLite::WIRETYPE_FIXED64) {
      uint64_t bits = 0;
      if (!in.ReadLittleEndian64(&bits)) return false;
      items[index].priority = absl::bit_cast<double>(bits);
    } else if (field == v1::InsertRequest::kTrajectoryZstdFieldNumber && delimited) {
      if (!in.ReadString(&items[index].trajectory_zstd, static_cast<int>(length))) return false;
    } else if (field == v1::InsertRequest::kMoreFieldNumber && delimited) {
      if (!top) {
        items[index].nested_more = true;
        if (!in.Skip(static_cast<int>(length))) return false;
        continue;
      }
      auto limit = in.PushLimit(static_cast<int>(length));
      if (!ParseInsertItem(in, bytes, pool, /*top=*/false, items) || !in.ConsumedEntireMessage()) {
        return false;
      }
      in.PopLimit(limit);
    } else if (!WireFormatLite::SkipField(&in, tag)) {
      return false;
    }
  }
  return true;
}

// A compressed item becomes a plain one; errors name the field. The frame moves to `frame`
// (the write-ahead log stores it as it came).
absl::Status DecompressInsert(InsertItem& item, TrajectoryPool& pool, std::string* frame) {
  if (item.trajectory_zstd.empty()) return absl::OkStatus();
  if (item.trajectory) {
    return absl::InvalidArgumentError("set trajectory or trajectory_zstd, not both");
  }
  auto raw = ZstdDecompress(item.trajectory_zstd, kMaxMessageBytes);
  if (!raw.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("trajectory_zstd: ", raw.status().message()));
  }
  item.trajectory = pool.Take();
  if (!item.trajectory->ParseFromString(*raw)) {
    item.trajectory->Clear();
    return absl::InvalidArgumentError("trajectory_zstd: the content is not a Trajectory");
  }
  *frame = std::move(item.trajectory_zstd);
  item.trajectory_zstd.clear();
  return absl::OkStatus();
}

}  // namespace

absl::Status ParseInsertRequest(grpc::ByteBuffer& buffer, TrajectoryPool& pool, bool keep_wire,
                                std::vector<InsertItem>* items) {
  items->clear();
  grpc::ProtoBufferReader reader(&buffer);
  if (!reader.status().ok()) {
    return absl::InvalidArgumentError("the request's bytes cannot be read");
  }
  std::optional<SlicedBytes> bytes;
  if (keep_wire) bytes.emplace(buffer);
  google::protobuf::io::CodedInputStream in(&reader);
  in.SetTotalBytesLimit(kMaxMessageBytes);
  if (!ParseInsertItem(in, bytes ? &*bytes : nullptr, pool, /*top=*/true, *items) ||
      !in.ConsumedEntireMessage()) {
    items->clear();
    // Where it went wrong, found by walking the bytes again (this path only).
    std::vector<grpc::Slice> slices;
    buffer.Dump(&slices).IgnoreError();
    const std::string where =
        DescribeMalformed(v1::InsertRequest::descriptor(), JoinSlices(slices));
    return absl::InvalidArgumentError(
        absl::StrCat("the request is not an InsertRequest: ",
                     where.empty() ? "its fields hold together but do not parse (a size limit?)"
                                   : absl::StrCat("InsertRequest", where)));
  }
  return absl::OkStatus();
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

grpc::Status ReplayServiceImpl::InsertStream(
    grpc::ServerContext* ctx,
    grpc::ServerReaderWriter<v1::InsertResponse, grpc::ByteBuffer>* stream) {
  // This thread reads and stores items; an ack thread waits until each stored item is durable
  // (group commit: one fdatasync covers every item stored meanwhile, on every stream) and writes
  // the acks in order. At most kMaxPendingAcks items wait for their ack, which bounds memory.
  constexpr size_t kMaxPendingAcks = 256;
  struct Pending {
    v1::InsertResponse ack;
    std::shared_ptr<ReplayJob> job;  // null: nothing to sync
    uint64_t lsn = 0;
    StoredInsert stored;  // the item in its tables, until it is durable or taken back
  };
  // The reading thread wakes the acker once per request (its items are acknowledged together),
  // and the acker wakes the reader when it made room.
  std::mutex mu;
  std::condition_variable ack_cv, room_cv;
  std::deque<Pending> pending;
  bool reading = true;
  bool broken = false;
  std::thread acker([&] {
    std::vector<Pending> batch;
    while (true) {
      {
        std::unique_lock<std::mutex> lock(mu);
        ack_cv.wait(lock, [&] { return !pending.empty() || !reading; });
        if (pending.empty()) return;
        // Everything read so far is acknowledged together: one sync covers it, and a run of
        // stored items goes out as one response.
        batch.assign(std::make_move_iterator(pending.begin()),
                     std::make_move_iterator(pending.end()));
      }
      // One sync per job (a stream can outlive a job change) covers its items in the batch.
      std::vector<ReplayJob*> synced;
      for (const Pending& p : batch) {
        if (!p.job || absl::c_linear_search(synced, p.job.get())) continue;
        synced.push_back(p.job.get());
        uint64_t lsn = 0;
        for (const Pending& q : batch) {
          if (q.job == p.job) lsn = std::max(lsn, q.lsn);
        }
        if (absl::Status s = p.job->SyncForAck(lsn); !s.ok()) {
          // Not durable: not acknowledged as stored, and not kept (the writer sends it again).
          for (Pending& q : batch) {
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
      for (Pending& p : batch) {
        if (!p.job || p.ack.code() != 0) continue;
        p.stored.claim.MarkStored();
        inserted_.Increment();
      }
      bool ok = true;
      for (size_t i = 0; i < batch.size() && ok; ++i) {
        // A run of stored, durable items is acknowledged by its last item's response.
        auto durable = [&](size_t k) { return batch[k].job && batch[k].ack.code() == 0; };
        uint32_t count = 1;
        while (durable(i) && i + 1 < batch.size() && durable(i + 1)) ++i, ++count;
        if (count > 1) batch[i].ack.set_count(count);
        ok = stream->Write(batch[i].ack);
      }
      std::lock_guard<std::mutex> lock(mu);
      pending.erase(pending.begin(), pending.begin() + static_cast<ptrdiff_t>(batch.size()));
      batch.clear();
      if (!ok) broken = true;
      room_cv.notify_one();
    }
  });
  // Wakes the acker for what is pending, before this thread waits (pending is full, or a rate
  // limiter holds an item back); otherwise the acker is woken once per request.
  auto ack_now = [&] {
    std::lock_guard<std::mutex> lock(mu);
    ack_cv.notify_one();
  };
  // Stores one item and queues its ack; false when the stream is to end.
  auto handle = [&](InsertItem& req) {
    {
      std::unique_lock<std::mutex> lock(mu);
      if (pending.size() >= kMaxPendingAcks) {
        ack_cv.notify_one();  // full before the request's end: the acker takes what there is
        room_cv.wait(lock, [&] { return pending.size() < kMaxPendingAcks || broken; });
      }
      if (broken) return false;
    }
    Pending p;
    std::string frame;
    absl::Status decoded = DecompressInsert(req, *pool_, &frame);
    if (decoded.ok() && req.nested_more) {
      decoded = absl::InvalidArgumentError("more: an item in `more` cannot carry more items");
    }
    if (req.trajectory) p.ack.set_sequence(req.trajectory->sequence());
    const std::string actor_id = req.trajectory ? req.trajectory->actor_id() : "";
    bool duplicate = false;
    auto job = CurrentJob();
    absl::Status status =
        !decoded.ok() ? decoded
        : job.ok()    ? InsertOne(ctx, **job, req, std::move(frame), ack_now, &p.stored, &duplicate)
                      : job.status();
    if (absl::IsCancelled(status) && (ctx->IsCancelled() || closed_)) return false;
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
    std::lock_guard<std::mutex> lock(mu);
    pending.push_back(std::move(p));
    return true;
  };
  grpc::ByteBuffer buffer;
  std::vector<InsertItem> items;
  grpc::Status result = grpc::Status::OK;
  bool open = true;
  while (open && stream->Read(&buffer)) {
    // The request's own item, then those it carries in `more`, each acknowledged on its own.
    // Bytes that are not an InsertRequest end the stream (after the acks of what came before).
    // The bytes as they arrived are kept only for the write-ahead log.
    if (absl::Status parsed = ParseInsertRequest(buffer, *pool_, !data_dir_.empty(), &items);
        !parsed.ok()) {
      result = ToGrpc(parsed);
      break;
    }
    buffer.Clear();
    for (size_t i = 0; open && i < items.size(); ++i) open = handle(items[i]);
    ack_cv.notify_one();
    // The table gauges once per message, not per item.
    if (auto job = CurrentJob(); job.ok()) ExportTableMetrics(**job);
  }
  {
    std::lock_guard<std::mutex> lock(mu);
    reading = false;
    ack_cv.notify_one();
  }
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
