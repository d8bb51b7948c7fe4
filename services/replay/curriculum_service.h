// rally-replay's CurriculumService: the gRPC face of the current job's Curriculum.
//
// A curriculum is installed by SetCurriculum() when a job starts; until then (and after
// ClearCurriculum()) every call fails with FAILED_PRECONDITION. Bad input gets INVALID_ARGUMENT
// and the server keeps serving: a NextTask for another game than the job's, and every outcome
// the Curriculum refuses (unknown task or opponent, seat out of range, NaN or infinite return),
// plus an unspecified outcome. Calls never block beyond the curriculum's lock.
//
// Batches: NextTask with count > 1 returns that many independent picks (at most kMaxPicks);
// ReportOutcomes counts each outcome on its own and reports how many were refused.
//
// Metrics (with a registry): rally_curriculum_next_task_picks_total,
// rally_curriculum_outcomes_total{result=accepted|refused}; and, refreshed by UpdateMetrics(),
// rally_curriculum_pool_size, rally_curriculum_opponent_probability{task,opponent} and
// rally_curriculum_opponent_win_rate{task,opponent} (series of opponents that left the pool are
// removed).
//
// Thread safety: every method may be called concurrently.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/metrics/metrics.h"
#include "rally/v1/curriculum.grpc.pb.h"
#include "services/replay/curriculum.h"

namespace rally {

class CurriculumServiceImpl final : public v1::CurriculumService::Service {
 public:
  static constexpr int kMaxPicks = 1024;

  // `metrics` may be null (no metrics).
  explicit CurriculumServiceImpl(prometheus::Registry* metrics = nullptr);

  // Serves `curriculum` for a job of `game` (NextTask requests naming another game are refused;
  // "" accepts any).
  void SetCurriculum(const std::string& game, std::shared_ptr<Curriculum> curriculum)
      ABSL_LOCKS_EXCLUDED(mu_);
  void ClearCurriculum() ABSL_LOCKS_EXCLUDED(mu_);
  // The installed curriculum; null when none.
  std::shared_ptr<Curriculum> curriculum() const ABSL_LOCKS_EXCLUDED(mu_);
  // Refreshes the curriculum gauges from the installed curriculum's Stats().
  void UpdateMetrics() ABSL_LOCKS_EXCLUDED(metrics_mu_);

  grpc::Status NextTask(grpc::ServerContext* ctx, const v1::NextTaskRequest* req,
                        v1::NextTaskResponse* resp) override;
  grpc::Status ReportOutcome(grpc::ServerContext* ctx, const v1::ReportOutcomeRequest* req,
                             v1::ReportOutcomeResponse* resp) override;
  grpc::Status ReportOutcomes(grpc::ServerContext* ctx, const v1::ReportOutcomesRequest* req,
                              v1::ReportOutcomesResponse* resp) override;
  grpc::Status Stats(grpc::ServerContext* ctx, const v1::CurriculumStatsRequest* req,
                     v1::CurriculumStatsResponse* resp) override;

 private:
  struct Installed {
    std::string game;
    std::shared_ptr<Curriculum> curriculum;
  };
  absl::StatusOr<Installed> Current() const ABSL_LOCKS_EXCLUDED(mu_);

  mutable absl::Mutex mu_;
  Installed installed_ ABSL_GUARDED_BY(mu_);

  // Metrics; the families are null without a registry.
  prometheus::Counter* picks_ = nullptr;
  prometheus::Counter* accepted_ = nullptr;
  prometheus::Counter* refused_ = nullptr;
  prometheus::Gauge* pool_size_ = nullptr;
  prometheus::Family<prometheus::Gauge>* probability_ = nullptr;
  prometheus::Family<prometheus::Gauge>* win_rate_ = nullptr;
  absl::Mutex metrics_mu_;
  // (task, opponent) series present in probability_ and win_rate_.
  std::map<std::pair<std::string, std::string>, std::pair<prometheus::Gauge*, prometheus::Gauge*>>
      opponent_series_ ABSL_GUARDED_BY(metrics_mu_);
};

// Proto <-> curriculum conversions; INVALID_ARGUMENT for OUTCOME_UNSPECIFIED or unknown values.
absl::StatusOr<Outcome> OutcomeFromProto(v1::Outcome outcome);
void CurriculumStatsToProto(const Curriculum& curriculum, v1::CurriculumStatsResponse* resp);

}  // namespace rally
