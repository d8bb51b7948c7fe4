#include "services/replay/curriculum_service.h"

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
  CurriculumAssignment a = current->curriculum->NextTask();
  resp->set_task_id(a.task_id);
  resp->set_opponent_id(a.opponent_id);
  resp->set_learner_seat(a.learner_seat);
  return grpc::Status::OK;
}

grpc::Status CurriculumServiceImpl::ReportOutcome(grpc::ServerContext*,
                                                  const v1::ReportOutcomeRequest* req,
                                                  v1::ReportOutcomeResponse*) {
  auto current = Current();
  if (!current.ok()) return ToGrpc(current.status());
  auto outcome = OutcomeFromProto(req->outcome());
  if (!outcome.ok()) return ToGrpc(outcome.status());
  return ToGrpc(current->curriculum->ReportOutcome(
      req->task_id(), req->opponent_id(), req->learner_seat(), req->learner_return(), *outcome));
}

grpc::Status CurriculumServiceImpl::Stats(grpc::ServerContext*, const v1::CurriculumStatsRequest*,
                                          v1::CurriculumStatsResponse* resp) {
  auto current = Current();
  if (!current.ok()) return ToGrpc(current.status());
  CurriculumStatsToProto(*current->curriculum, resp);
  return grpc::Status::OK;
}

}  // namespace rally
