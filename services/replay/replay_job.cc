#include "services/replay/replay_job.h"

#include <filesystem>

#include "absl/algorithm/container.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/games/registry.h"
#include "common/util/durable_file.h"
#include "common/util/log.h"

namespace rally {

namespace fs = std::filesystem;

namespace {

// The job whose data `rec` holds: the snapshot's, or the job record's at the log's start; ""
// when neither survived.
std::string RecoveredJobId(const RecoveredState& rec) {
  if (!rec.snapshot.job().job_id().empty()) return rec.snapshot.job().job_id();
  if (!rec.records.empty() && rec.records.front().has_job()) {
    return rec.records.front().job().job_id();
  }
  return "";
}

}  // namespace

absl::StatusOr<std::string> JobDataDir(const std::string& data_dir, const std::string& job_id) {
  const bool plain = !job_id.empty() && job_id != "." && job_id != ".." && job_id.size() <= 200 &&
                     absl::c_all_of(job_id, [](char c) {
                       return absl::ascii_isalnum(c) || c == '-' || c == '_' || c == '.';
                     });
  if (!plain) {
    return absl::InvalidArgumentError(absl::StrCat(
        "job id '", job_id, "' cannot name a data directory (letters, digits, '-', '_', '.')"));
  }
  return (fs::path(data_dir) / "jobs" / job_id).string();
}

absl::Status AdoptSharedDataDir(const std::string& data_dir) {
  std::vector<fs::path> files;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(data_dir, ec)) {
    const std::string name = e.path().filename().string();
    if (e.is_regular_file() &&
        (absl::StartsWith(name, "wal-") ||
         (absl::StartsWith(name, "snapshot") && absl::EndsWith(name, ".pb")))) {
      files.push_back(e.path());
    }
  }
  if (files.empty()) return absl::OkStatus();
  std::string job_id;
  {
    auto store = DurableStore::Open({data_dir});
    if (!store.ok()) return store.status();
    job_id = RecoveredJobId((*store)->recovered());
  }
  if (job_id.empty()) {
    return absl::DataLossError(
        absl::StrCat(data_dir,
                     " holds a write-ahead log or snapshot whose job cannot be read; move them "
                     "into jobs/<job_id>/ by hand"));
  }
  auto dir = JobDataDir(data_dir, job_id);
  if (!dir.ok()) return dir.status();
  fs::create_directories(*dir, ec);
  for (const fs::path& f : files) {
    fs::rename(f, fs::path(*dir) / f.filename(), ec);
    if (ec) {
      return absl::UnavailableError(
          absl::StrCat("cannot move ", f.string(), " into ", *dir, ": ", ec.message()));
    }
  }
  if (auto s = SyncDirectory(*dir); !s.ok()) return s;
  if (auto s = SyncDirectory(data_dir); !s.ok()) return s;
  LogInfo("moved a job's log and snapshot into its own directory",
          {{"job_id", job_id}, {"dir", *dir}, {"files", static_cast<int64_t>(files.size())}});
  return absl::OkStatus();
}

TableOptions ToTableOptions(const ReplayTableConfig& c) {
  TableOptions o;
  o.name = c.name;
  o.sampler = c.sampler;
  o.remover = c.remover;
  o.priority_exponent = c.priority_exponent;
  o.importance_sampling_exponent = c.importance_sampling_exponent;
  o.max_size = c.max_size;
  o.max_bytes = c.max_bytes;
  o.max_times_sampled = c.max_times_sampled;
  o.max_staleness = c.max_staleness;
  if (c.rate_limiter == "queue") {
    o.rate_limiter = RateLimiterOptions::Queue(c.max_size);
  } else if (c.rate_limiter == "min_size") {
    o.rate_limiter = RateLimiterOptions::MinSize(c.min_size_to_sample);
  } else {
    o.rate_limiter = RateLimiterOptions::WithErrorBuffer(c.samples_per_insert, c.min_size_to_sample,
                                                         c.error_buffer);
  }
  return o;
}

absl::StatusOr<std::unique_ptr<ReplayJob>> ReplayJob::Create(const std::string& job_id,
                                                             const std::string& spec_yaml,
                                                             const JobConfig& config,
                                                             std::unique_ptr<DurableStore> store) {
  std::unique_ptr<ReplayJob> job(new ReplayJob());
  job->id_ = job_id;
  job->spec_yaml_ = spec_yaml;
  job->config_ = config;
  auto game = LoadGame(config.game.name, config.game.params);
  if (!game.ok()) return game.status();
  job->game_ = *game;
  uint64_t seed = static_cast<uint64_t>(config.seed);
  for (const ReplayTableConfig& tc : config.replay.tables) {
    auto table = Table::Create(ToTableOptions(tc), ++seed);
    if (!table.ok()) return table.status();
    job->tables_[tc.name] = std::move(*table);
  }
  job->store_ = std::move(store);
  if (DurableStore* store = job->store_.get()) {
    const std::string& f = config.replay.fsync;
    store->SetFsync(f == "every_batch" ? FsyncPolicy::kEveryBatch
                    : f == "interval"  ? FsyncPolicy::kInterval
                                       : FsyncPolicy::kNever,
                    config.replay.fsync_interval_ms);
    if (auto s = job->OpenLog(); !s.ok()) return s;
    for (auto& [name, table] : job->tables_) table->set_observer(store);
    job->snapshot_thread_ = std::thread([j = job.get()] { j->SnapshotLoop(); });
  }
  return job;
}

absl::Status ReplayJob::OpenLog() {
  const RecoveredState& rec = store_->recovered();
  recovery_problems_ = rec.problems;
  recovery_data_lost_ = rec.data_lost;
  const std::string held = RecoveredJobId(rec);
  if (!held.empty() && held != id_) {
    return absl::DataLossError(absl::StrCat("the data directory holds job '", held, "', not '", id_,
                                            "': each job needs its own"));
  }
  if (held.empty() && rec.records.empty() && rec.snapshot.tables_size() == 0) {
    v1::WalJob record;
    record.set_job_id(id_);
    record.set_spec_yaml(spec_yaml_);
    absl::Status started = store_->StartJob(record);
    // A directory whose files were all damaged: the store keeps them, and the log goes on
    // after them.
    if (started.ok() || !absl::IsFailedPrecondition(started)) return started;
  } else if (auto s = Recover(rec); !s.ok()) {
    return s;
  }
  return store_->ContinueJob();
}

ReplayJob::~ReplayJob() { Close(); }

namespace {

// The item a logged insert (or a snapshot entry) describes.
absl::StatusOr<StoredItem> ItemFrom(const v1::WalInsert& in) {
  auto traj = DurableStore::DecodeTrajectory(in);
  if (!traj.ok()) return traj.status();
  StoredItem item;
  item.key = in.key();
  item.priority = in.priority();
  item.policy_version = in.policy_version();
  item.bytes = in.bytes();
  item.trajectory = *traj;
  return item;
}

}  // namespace

absl::Status ReplayJob::Recover(const RecoveredState& rec) {
  // The snapshot first ...
  std::map<std::string, uint64_t> last_lsn;
  producers_.RestoreFrom(rec.snapshot);
  for (const v1::TableSnapshot& ts : rec.snapshot.tables()) {
    Table* t = table(ts.name());
    if (t == nullptr) {
      return absl::DataLossError(
          absl::StrCat("snapshot holds table '", ts.name(), "' that the job spec does not define"));
    }
    Table::State state;
    for (int i = 0; i < ts.items_size(); ++i) {
      auto item = ItemFrom(ts.items(i));
      if (!item.ok()) return item.status();
      item->times_sampled = i < ts.times_sampled_size() ? ts.times_sampled(i) : 0;
      state.items.push_back(std::move(*item));
    }
    state.inserts = ts.inserts();
    state.samples = ts.samples();
    state.policy_version = ts.policy_version();
    state.next_key = ts.next_key();
    state.last_lsn = ts.last_lsn();
    last_lsn[ts.name()] = ts.last_lsn();
    if (auto s = t->Restore(state); !s.ok()) return s;
  }
  // ... then every logged mutation the snapshot does not include, in order.
  for (const v1::WalRecord& r : rec.records) {
    std::string name;
    switch (r.record_case()) {
      case v1::WalRecord::kInsert:
        name = r.insert().table();
        break;
      case v1::WalRecord::kSample:
        name = r.sample().table();
        break;
      case v1::WalRecord::kDelete:
        name = r.delete_().table();
        break;
      case v1::WalRecord::kUpdate:
        name = r.update().table();
        break;
      case v1::WalRecord::kPolicyVersion:
        name = r.policy_version().table();
        break;
      default:
        continue;
    }
    Table* t = table(name);
    if (t == nullptr) {
      return absl::DataLossError(absl::StrCat("log record for unknown table '", name, "'"));
    }
    if (r.lsn() <= last_lsn[name]) continue;
    absl::Status s;
    switch (r.record_case()) {
      case v1::WalRecord::kInsert: {
        auto item = ItemFrom(r.insert());
        if (!item.ok()) return item.status();
        producers_.Restore(*item->trajectory);
        s = t->RestoreInsert(*item);
        break;
      }
      case v1::WalRecord::kSample:
        s = t->RestoreSample({r.sample().keys().begin(), r.sample().keys().end()});
        break;
      case v1::WalRecord::kDelete:
        s = t->RestoreDelete(r.delete_().key());
        break;
      case v1::WalRecord::kUpdate:
        s = t->RestoreUpdate(r.update().key(), r.update().priority());
        break;
      case v1::WalRecord::kPolicyVersion:
        t->RestorePolicyVersion(r.policy_version().version());
        break;
      default:
        break;
    }
    if (!s.ok()) {
      return absl::DataLossError(absl::StrCat("replaying log record ", r.lsn(), ": ", s.message()));
    }
  }
  for (const auto& [name, t] : tables_) recovered_items_ += t->size();
  LogInfo("job recovered from disk", {{"job_id", id_},
                                      {"items", recovered_items_},
                                      {"records", static_cast<int64_t>(rec.records.size())},
                                      {"torn_tail", rec.torn_tail}});
  return absl::OkStatus();
}

Table* ReplayJob::table(const std::string& name) const {
  auto it = tables_.find(name);
  return it == tables_.end() ? nullptr : it->second.get();
}

std::vector<Table*> ReplayJob::tables() const {
  std::vector<Table*> out;
  for (const auto& [name, t] : tables_) out.push_back(t.get());
  return out;
}

absl::Status ReplayJob::SyncForAck(uint64_t lsn) {
  if (store_ == nullptr) return absl::OkStatus();
  return store_->SyncTo(lsn);
}

absl::Status ReplayJob::Flush() {
  if (store_ == nullptr) return absl::OkStatus();
  return store_->Flush();
}

absl::Status ReplayJob::WriteSnapshot() {
  if (store_ == nullptr) return absl::OkStatus();
  return store_->WriteSnapshot([this] { return Capture(); });
}

v1::ReplaySnapshot ReplayJob::Capture() const {
  v1::ReplaySnapshot snap;
  snap.mutable_job()->set_job_id(id_);
  snap.mutable_job()->set_spec_yaml(spec_yaml_);
  // Stored items are a stream of their own: many arrived compressed, unlike the plain ones
  // the log's inserts see, so they do not share its backoff.
  AdaptiveCompressor compressor;
  std::vector<std::shared_ptr<const v1::Trajectory>> captured;
  for (const auto& [name, t] : tables_) {
    Table::State state = t->Snapshot();
    v1::TableSnapshot* ts = snap.add_tables();
    ts->set_name(name);
    for (const StoredItem& item : state.items) {
      // An insert logged while the log was failing is refused: it is not kept.
      if (store_->NotDurable(item.lsn)) continue;
      DurableStore::FillWalInsert(
          name, item, store_->EncodeTrajectory(*item.trajectory, &compressor), ts->add_items());
      ts->add_times_sampled(item.times_sampled);
      captured.push_back(item.trajectory);
    }
    ts->set_inserts(state.inserts);
    ts->set_samples(state.samples);
    ts->set_policy_version(state.policy_version);
    ts->set_next_key(state.next_key);
    ts->set_last_lsn(state.last_lsn);
  }
  // After the tables: the watermarks count every item the snapshot holds, also one whose
  // insert was not yet acknowledged (its resend after a restart is then a duplicate).
  producers_.SaveTo(&snap, captured);
  return snap;
}

void ReplayJob::SnapshotLoop() {
  using Clock = std::chrono::steady_clock;
  const double every = config_.replay.snapshot_every_seconds;
  const auto period =
      std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(every));
  auto next_snapshot = Clock::now() + period;
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    // A failed log is tried again every second (a full disk may have room again).
    const Clock::time_point wake = Clock::now() + std::chrono::seconds(1);
    stop_cv_.wait_until(lock, every > 0 ? std::min(wake, next_snapshot) : wake);
    if (stop_) break;
    const bool failed = !store_->health().ok();
    const bool due = every > 0 && Clock::now() >= next_snapshot;
    if (!failed && !due) continue;
    lock.unlock();
    absl::Status s = failed ? store_->Resume([this] { return Capture(); }) : WriteSnapshot();
    if (!s.ok()) {
      LogError(failed ? "write-ahead log cannot resume yet" : "snapshot failed",
               {{"job_id", id_}, {"error", s.ToString()}});
    }
    if (due) next_snapshot = Clock::now() + period;
    lock.lock();
  }
}

void ReplayJob::Close() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stop_) return;
    stop_ = true;
  }
  stop_cv_.notify_all();
  if (snapshot_thread_.joinable()) snapshot_thread_.join();
  for (auto& [name, t] : tables_) {
    t->Close();
    t->set_observer(nullptr);
  }
}

}  // namespace rally
