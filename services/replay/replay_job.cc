#include "services/replay/replay_job.h"

#include "absl/strings/str_cat.h"
#include "common/games/registry.h"
#include "common/util/log.h"

namespace rally {

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
                                                             DurableStore* store) {
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
  job->store_ = store;
  if (store != nullptr) {
    const std::string& f = config.replay.fsync;
    store->SetFsync(f == "every_batch" ? FsyncPolicy::kEveryBatch
                    : f == "interval"  ? FsyncPolicy::kInterval
                                       : FsyncPolicy::kNever,
                    config.replay.fsync_interval_ms);
    const RecoveredState& rec = store->recovered();
    if (rec.snapshot.job().job_id() == job_id ||
        (!rec.records.empty() && rec.records.front().has_job() &&
         rec.records.front().job().job_id() == job_id)) {
      if (auto s = job->Recover(rec); !s.ok()) return s;
      if (auto s = store->ContinueJob(); !s.ok()) return s;
    } else {
      v1::WalJob record;
      record.set_job_id(job_id);
      record.set_spec_yaml(spec_yaml);
      if (auto s = store->StartJob(record); !s.ok()) return s;
    }
    for (auto& [name, table] : job->tables_) table->set_observer(store);
    if (config.replay.snapshot_every_seconds > 0) {
      job->snapshot_thread_ = std::thread([j = job.get()] { j->SnapshotLoop(); });
    }
  }
  return job;
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
  for (const auto& [actor, seq] : rec.snapshot.watermarks()) watermarks_[actor] = seq;
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
        const v1::Trajectory& tr = *item->trajectory;
        if (!tr.actor_id().empty()) {
          uint64_t& w = watermarks_[tr.actor_id()];
          w = std::max(w, tr.sequence());
        }
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

bool ReplayJob::IsDuplicate(const std::string& actor_id, uint64_t sequence) const {
  if (actor_id.empty() || sequence == 0) return false;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = watermarks_.find(actor_id);
  return it != watermarks_.end() && sequence <= it->second;
}

void ReplayJob::MarkStored(const std::string& actor_id, uint64_t sequence) {
  if (actor_id.empty() || sequence == 0) return;
  std::lock_guard<std::mutex> lock(mu_);
  uint64_t& w = watermarks_[actor_id];
  w = std::max(w, sequence);
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
  return store_->WriteSnapshot([&] {
    v1::ReplaySnapshot snap;
    snap.mutable_job()->set_job_id(id_);
    snap.mutable_job()->set_spec_yaml(spec_yaml_);
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (const auto& [actor, seq] : watermarks_) (*snap.mutable_watermarks())[actor] = seq;
    }
    // Stored items are a stream of their own: many arrived compressed, unlike the plain ones
    // the log's inserts see, so they do not share its backoff.
    AdaptiveCompressor compressor;
    for (const auto& [name, t] : tables_) {
      Table::State state = t->Snapshot();
      v1::TableSnapshot* ts = snap.add_tables();
      ts->set_name(name);
      for (const StoredItem& item : state.items) {
        DurableStore::FillWalInsert(
            name, item, store_->EncodeTrajectory(*item.trajectory, &compressor), ts->add_items());
        ts->add_times_sampled(item.times_sampled);
      }
      ts->set_inserts(state.inserts);
      ts->set_samples(state.samples);
      ts->set_policy_version(state.policy_version);
      ts->set_next_key(state.next_key);
      ts->set_last_lsn(state.last_lsn);
    }
    return snap;
  });
}

void ReplayJob::SnapshotLoop() {
  auto period = std::chrono::duration<double>(config_.replay.snapshot_every_seconds);
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    stop_cv_.wait_for(lock, period);
    if (stop_) break;
    lock.unlock();
    if (auto s = WriteSnapshot(); !s.ok()) {
      LogError("snapshot failed", {{"job_id", id_}, {"error", s.ToString()}});
    }
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
