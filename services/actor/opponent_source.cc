#include "services/actor/opponent_source.h"

#include <algorithm>
#include <chrono>
#include <utility>

#include "common/net/server.h"
#include "common/util/log.h"
#include "common/util/snapshot_id.h"

namespace rally {
namespace {

constexpr auto kRpcTimeout = std::chrono::seconds(2);
constexpr auto kFlushEvery = std::chrono::milliseconds(100);
constexpr auto kRetryEvery = std::chrono::milliseconds(500);

v1::Outcome OutcomeOf(double learner_return) {
  return learner_return > 0 ? v1::OUTCOME_WIN
                            : (learner_return < 0 ? v1::OUTCOME_LOSS : v1::OUTCOME_DRAW);
}

}  // namespace

OpponentSource::OpponentSource(OpponentSourceOptions options, prometheus::Registry* metrics)
    : options_(std::move(options)),
      stub_(v1::CurriculumService::NewStub(MakeChannel(options_.curriculum_address))),
      snapshots_(options_.weights_address, std::max(1, options_.cached_versions)) {
  if (metrics != nullptr) {
    fetch_failures_ = &AddCounter(*metrics, "rally_actor_snapshot_fetch_failures_total",
                                  "Snapshot opponents that could not be fetched or built; their "
                                  "episodes were played against the latest policy.");
    reported_ = &AddCounter(*metrics, "rally_actor_outcomes_reported_total",
                            "Episode outcomes the curriculum accepted.");
  }
}

OpponentSource::~OpponentSource() { Stop(); }

void OpponentSource::Start() {
  thread_ = std::thread([this] { Loop(); });
}

void OpponentSource::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

OpponentPick OpponentSource::Next() {
  std::lock_guard<std::mutex> lock(mu_);
  if (picks_.empty()) {
    ++counts_.empty;
    return OpponentPick{};
  }
  OpponentPick p = std::move(picks_.front());
  picks_.pop_front();
  ++counts_.picks;
  if (p.policy != nullptr && played_.insert(p.opponent_id).second) ++counts_.distinct_snapshots;
  if (picks_.size() < static_cast<size_t>(options_.batch) / 2) cv_.notify_all();
  return p;
}

void OpponentSource::Report(const OpponentPick& pick, double learner_return) {
  if (!pick.from_curriculum) return;
  v1::ReportOutcomeRequest r;
  r.set_task_id(pick.task_id);
  r.set_opponent_id(pick.opponent_id);
  r.set_learner_seat(pick.learner_seat);
  r.set_learner_return(learner_return);
  r.set_outcome(OutcomeOf(learner_return));
  r.set_actor_id(options_.actor_id);
  std::lock_guard<std::mutex> lock(mu_);
  if (outbox_.size() >= 4 * static_cast<size_t>(options_.batch)) outbox_.erase(outbox_.begin());
  outbox_.push_back(std::move(r));
  if (outbox_.size() >= static_cast<size_t>(options_.batch)) cv_.notify_all();
}

OpponentSource::Counts OpponentSource::counts() const {
  std::lock_guard<std::mutex> lock(mu_);
  return counts_;
}

void OpponentSource::Loop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    const bool want_picks = picks_.size() < static_cast<size_t>(options_.batch) / 2;
    lock.unlock();
    if (want_picks) Fill();
    Flush();
    lock.lock();
    cv_.wait_for(lock, failing_ ? kRetryEvery : kFlushEvery, [&] {
      return stop_ || (!failing_ && (picks_.size() < static_cast<size_t>(options_.batch) / 2 ||
                                     outbox_.size() >= static_cast<size_t>(options_.batch)));
    });
  }
  lock.unlock();
  Flush();  // the last outcomes of the job
}

void OpponentSource::Fill() {
  v1::NextTaskRequest req;
  req.set_actor_id(options_.actor_id);
  req.set_game(options_.game);
  req.set_count(options_.batch);
  v1::NextTaskResponse resp;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + kRpcTimeout);
  grpc::Status st = stub_->NextTask(&ctx, req, &resp);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!st.ok()) {
      if (!failing_) {
        LogWarning("cannot get opponents from the curriculum; playing the latest policy meanwhile",
                   {{"address", options_.curriculum_address}, {"error", st.error_message()}});
      }
      failing_ = true;
      return;
    }
    failing_ = false;
  }
  std::vector<OpponentPick> got;
  got.reserve(1 + resp.more_size());
  auto add = [&](const v1::NextTaskResponse& r) {
    OpponentPick p;
    p.task_id = r.task_id();
    p.opponent_id = r.opponent_id();
    p.learner_seat = r.learner_seat();
    p.from_curriculum = true;
    if (std::optional<int64_t> v = SnapshotVersion(p.opponent_id)) {
      p.policy = Resolve(*v);
      if (p.policy == nullptr) p.opponent_id = "latest";
    } else if (p.opponent_id != "latest") {
      // An opponent this actor cannot play (not a snapshot): not reported.
      p.opponent_id = "latest";
      p.from_curriculum = false;
    }
    got.push_back(std::move(p));
  };
  add(resp);
  for (const v1::NextTaskResponse& r : resp.more()) add(r);
  std::lock_guard<std::mutex> lock(mu_);
  for (OpponentPick& p : got) picks_.push_back(std::move(p));
}

std::shared_ptr<NetworkPolicy> OpponentSource::Resolve(int64_t version) {
  if (auto it = policies_.find(version); it != policies_.end()) return it->second;
  absl::Status error;
  std::shared_ptr<NetworkPolicy> policy;
  auto blob = snapshots_.Get(version);
  if (blob.ok()) {
    auto built = NetworkPolicy::FromWeights(options_.observation_size, options_.hidden,
                                            options_.num_actions, version, **blob);
    if (built.ok()) {
      policy = std::move(*built);
    } else {
      error = built.status();
    }
  } else {
    error = blob.status();
  }
  if (policy == nullptr) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++counts_.fetch_failures;
    }
    if (fetch_failures_ != nullptr) fetch_failures_->Increment();
    LogWarning("snapshot opponent unavailable; playing the latest policy instead",
               {{"version", version}, {"error", error.ToString()}});
    return nullptr;
  }
  policies_[version] = policy;
  // Keep the newest versions: old snapshots leave the learner's pool first.
  while (policies_.size() > static_cast<size_t>(std::max(1, options_.cached_versions))) {
    policies_.erase(policies_.begin());
  }
  return policy;
}

void OpponentSource::Flush() {
  v1::ReportOutcomesRequest req;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (outbox_.empty() || (failing_ && !stop_)) return;
    for (auto& r : outbox_) *req.add_outcomes() = std::move(r);
    outbox_.clear();
  }
  v1::ReportOutcomesResponse resp;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + kRpcTimeout);
  grpc::Status st = stub_->ReportOutcomes(&ctx, req, &resp);
  std::lock_guard<std::mutex> lock(mu_);
  if (!st.ok()) {
    if (!failing_) {
      LogWarning("cannot report outcomes to the curriculum; will retry",
                 {{"error", st.error_message()}});
    }
    failing_ = true;
    // Put them back in front of newer ones, within the bound.
    std::vector<v1::ReportOutcomeRequest> back(req.outcomes().begin(), req.outcomes().end());
    back.insert(back.end(), outbox_.begin(), outbox_.end());
    const size_t cap = 4 * static_cast<size_t>(options_.batch);
    if (back.size() > cap) back.erase(back.begin(), back.end() - cap);
    outbox_ = std::move(back);
    return;
  }
  counts_.reported += resp.accepted();
  counts_.refused += resp.refused();
  if (reported_ != nullptr) reported_->Increment(resp.accepted());
}

}  // namespace rally
