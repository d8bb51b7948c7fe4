// rally-replay's CurriculumService: the gRPC face of the current job's Curriculum.
//
// A curriculum is installed by SetCurriculum() when a job starts; until then (and after
// ClearCurriculum()) every call fails with FAILED_PRECONDITION. Bad input gets INVALID_ARGUMENT
// and the server keeps serving: a NextTask for another game than the job's, and every outcome
// the Curriculum refuses (unknown task or opponent, seat out of range, NaN or infinite return),
// plus an unspecified outcome. Calls never block beyond the curriculum's lock.
//
// Thread safety: every method may be called concurrently.
#pragma once

#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "rally/v1/curriculum.grpc.pb.h"
#include "services/replay/curriculum.h"

namespace rally {

class CurriculumServiceImpl final : public v1::CurriculumService::Service {
 public:
  // Serves `curriculum` for a job of `game` (NextTask requests naming another game are refused;
  // "" accepts any).
  void SetCurriculum(const std::string& game, std::shared_ptr<Curriculum> curriculum)
      ABSL_LOCKS_EXCLUDED(mu_);
  void ClearCurriculum() ABSL_LOCKS_EXCLUDED(mu_);

  grpc::Status NextTask(grpc::ServerContext* ctx, const v1::NextTaskRequest* req,
                        v1::NextTaskResponse* resp) override;
  grpc::Status ReportOutcome(grpc::ServerContext* ctx, const v1::ReportOutcomeRequest* req,
                             v1::ReportOutcomeResponse* resp) override;
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
};

// Proto <-> curriculum conversions; INVALID_ARGUMENT for OUTCOME_UNSPECIFIED or unknown values.
absl::StatusOr<Outcome> OutcomeFromProto(v1::Outcome outcome);
void CurriculumStatsToProto(const Curriculum& curriculum, v1::CurriculumStatsResponse* resp);

}  // namespace rally
