#include "services/replay/curriculum_service.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/net/server.h"

namespace rally {
namespace {

void CountsToProto(const OutcomeCounts& c, v1::OutcomeCounts* out) {
  out->set_games(c.games);
  out->set_wins(c.wins);
  out->set_draws(c.draws);
  out->set_losses(c.losses);
  out->set_mean_return(c.mean_return);
}

}  // namespace

absl::StatusOr<Outcome> OutcomeFromProto(v1::Outcome outcome) {
  switch (outcome) {
    case v1::OUTCOME_WIN:
      return Outcome::kWin;
    case v1::OUTCOME_DRAW:
      return Outcome::kDraw;
    case v1::OUTCOME_LOSS:
      return Outcome::kLoss;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("outcome must be OUTCOME_WIN, OUTCOME_DRAW or OUTCOME_LOSS, got ", outcome));
  }
}

namespace {

absl::Status ReportOne(Curriculum& curriculum, const v1::ReportOutcomeRequest& req) {
  auto outcome = OutcomeFromProto(req.outcome());
  if (!outcome.ok()) return outcome.status();
  return curriculum.ReportOutcome(req.task_id(), req.opponent_id(), req.learner_seat(),
                                  req.learner_return(), *outcome);
}

}  // namespace

void CurriculumStatsToProto(const Curriculum& curriculum, v1::CurriculumStatsResponse* resp) {
  CurriculumStats stats = curriculum.Stats();
  for (const TaskStats& t : stats.tasks) {
    v1::TaskStats* tp = resp->add_tasks();
    tp->set_task_id(t.task_id);
    CountsToProto(t.total, tp->mutable_total());
    tp->set_success_rate(t.success_rate);
    tp->set_learnability(t.learnability);
    tp->set_probability(t.probability);
    for (const OpponentStats& o : t.opponents) {
      v1::OpponentStats* op = tp->add_opponents();
      op->set_opponent_id(o.opponent_id);
      CountsToProto(o.total, op->mutable_total());
      for (size_t seat = 0; seat < o.by_seat.size(); ++seat) {
        v1::SeatOutcomes* sp = op->add_by_seat();
        sp->set_seat(static_cast<int32_t>(seat));
        CountsToProto(o.by_seat[seat], sp->mutable_counts());
      }
      op->set_win_rate(o.win_rate);
      op->set_probability(o.probability);
    }
  }
  resp->set_opponent_selection(curriculum.options().opponent_selection);
  resp->set_window(curriculum.options().window);
  for (const std::string& id : stats.opponent_pool) resp->add_opponent_pool(id);
}

CurriculumServiceImpl::CurriculumServiceImpl(prometheus::Registry* metrics) {
  if (metrics == nullptr) return;
  picks_ = &AddCounter(*metrics, "rally_curriculum_next_task_picks_total",
                       "Picks (task, opponent, learner seat) NextTask handed out.");
  auto& outcomes = prometheus::BuildCounter()
                       .Name("rally_curriculum_outcomes_total")
                       .Help("Episode outcomes reported, by whether the curriculum counted them.")
                       .Register(*metrics);
  accepted_ = &outcomes.Add({{"result", "accepted"}});
  refused_ = &outcomes.Add({{"result", "refused"}});
  pool_size_ = &AddGauge(*metrics, "rally_curriculum_pool_size", "Opponents in the pool.");
  probability_ = &prometheus::BuildGauge()
                      .Name("rally_curriculum_opponent_probability")
                      .Help("Probability that NextTask picks this opponent, given the task.")
                      .Register(*metrics);
  win_rate_ = &prometheus::BuildGauge()
                   .Name("rally_curriculum_opponent_win_rate")
                   .Help(
                       "The learner's win rate against this opponent over the window (draws "
                       "half; the prior without games).")
                   .Register(*metrics);
}

std::shared_ptr<Curriculum> CurriculumServiceImpl::curriculum() const {
  absl::MutexLock lock(&mu_);
  return installed_.curriculum;
}

void CurriculumServiceImpl::UpdateMetrics() {
  if (probability_ == nullptr) return;
  std::shared_ptr<Curriculum> c = curriculum();
  absl::MutexLock lock(&metrics_mu_);
  std::map<std::pair<std::string, std::string>, std::pair<prometheus::Gauge*, prometheus::Gauge*>>
      seen;
  if (c != nullptr) {
    CurriculumStats stats = c->Stats();
    pool_size_->Set(static_cast<double>(stats.opponent_pool.size()));
    for (const TaskStats& t : stats.tasks) {
      for (const OpponentStats& o : t.opponents) {
        auto key = std::make_pair(t.task_id, o.opponent_id);
        auto it = opponent_series_.find(key);
        std::pair<prometheus::Gauge*, prometheus::Gauge*> g;
        if (it != opponent_series_.end()) {
          g = it->second;
          opponent_series_.erase(it);
        } else {
          prometheus::Labels labels{{"task", t.task_id}, {"opponent", o.opponent_id}};
          g = {&probability_->Add(labels), &win_rate_->Add(labels)};
        }
        g.first->Set(o.probability);
        g.second->Set(o.win_rate);
        seen[key] = g;
      }
    }
  } else {
    pool_size_->Set(0);
  }
  for (auto& [key, g] : opponent_series_) {
    probability_->Remove(g.first);
    win_rate_->Remove(g.second);
  }
  opponent_series_ = std::move(seen);
}

void CurriculumServiceImpl::SetCurriculum(const std::string& game,
                                          std::shared_ptr<Curriculum> curriculum) {
  absl::MutexLock lock(&mu_);
  installed_ = Installed{game, std::move(curriculum)};
}

void CurriculumServiceImpl::ClearCurriculum() {
  absl::MutexLock lock(&mu_);
  installed_ = Installed{};
}

absl::StatusOr<CurriculumServiceImpl::Installed> CurriculumServiceImpl::Current() const {
  absl::MutexLock lock(&mu_);
  if (installed_.curriculum == nullptr) {
    return absl::FailedPreconditionError("replay has no job assigned yet, so no curriculum");
  }
  return installed_;
}

grpc::Status CurriculumServiceImpl::NextTask(grpc::ServerContext*, const v1::NextTaskRequest* req,
                                             v1::NextTaskResponse* resp) {
  auto current = Current();
  if (!current.ok()) return ToGrpc(current.status());
  if (!current->game.empty() && !req->game().empty() && req->game() != current->game) {
    return ToGrpc(absl::InvalidArgumentError(absl::StrCat(
        "NextTask for game '", req->game(), "', but this job plays '", current->game, "'")));
  }
  if (req->count() < 0 || req->count() > kMaxPicks) {
    return ToGrpc(absl::InvalidArgumentError(
        absl::StrCat("NextTask count must lie in [0, ", kMaxPicks, "], got ", req->count())));
  }
  const int count = std::max(1, req->count());
  for (int i = 0; i < count; ++i) {
    CurriculumAssignment a = current->curriculum->NextTask();
    v1::NextTaskResponse* out = i == 0 ? resp : resp->add_more();
    out->set_task_id(a.task_id);
    out->set_opponent_id(a.opponent_id);
    out->set_learner_seat(a.learner_seat);
  }
  if (picks_ != nullptr) picks_->Increment(count);
  return grpc::Status::OK;
}

grpc::Status CurriculumServiceImpl::ReportOutcome(grpc::ServerContext*,
                                                  const v1::ReportOutcomeRequest* req,
                                                  v1::ReportOutcomeResponse*) {
  auto current = Current();
  if (!current.ok()) return ToGrpc(current.status());
  absl::Status s = ReportOne(*current->curriculum, *req);
  if (accepted_ != nullptr) (s.ok() ? accepted_ : refused_)->Increment();
  return ToGrpc(s);
}

grpc::Status CurriculumServiceImpl::ReportOutcomes(grpc::ServerContext*,
                                                   const v1::ReportOutcomesRequest* req,
                                                   v1::ReportOutcomesResponse* resp) {
  auto current = Current();
  if (!current.ok()) return ToGrpc(current.status());
  for (const v1::ReportOutcomeRequest& r : req->outcomes()) {
    absl::Status s = ReportOne(*current->curriculum, r);
    if (s.ok()) {
      resp->set_accepted(resp->accepted() + 1);
    } else {
      if (resp->refused() == 0) resp->set_first_error(std::string(s.message()));
      resp->set_refused(resp->refused() + 1);
    }
  }
  if (accepted_ != nullptr) {
    accepted_->Increment(resp->accepted());
    refused_->Increment(resp->refused());
  }
  return grpc::Status::OK;
}

grpc::Status CurriculumServiceImpl::Stats(grpc::ServerContext*, const v1::CurriculumStatsRequest*,
                                          v1::CurriculumStatsResponse* resp) {
  auto current = Current();
  if (!current.ok()) return ToGrpc(current.status());
  CurriculumStatsToProto(*current->curriculum, resp);
  return grpc::Status::OK;
}

}  // namespace rally
