#include "services/replay/trajectory_pool.h"

namespace rally {

std::shared_ptr<TrajectoryPool> TrajectoryPool::Create(size_t max_kept) {
  return std::shared_ptr<TrajectoryPool>(new TrajectoryPool(max_kept));
}

std::unique_ptr<v1::Trajectory> TrajectoryPool::Take() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!kept_.empty()) {
      std::unique_ptr<v1::Trajectory> t = std::move(kept_.back());
      kept_.pop_back();
      return t;
    }
  }
  return std::make_unique<v1::Trajectory>();
}

std::shared_ptr<v1::Trajectory> TrajectoryPool::Share(std::unique_ptr<v1::Trajectory> t) {
  // The deleter holds the pool, so a trajectory outliving the service still has one to go to.
  return std::shared_ptr<v1::Trajectory>(
      t.release(), [pool = shared_from_this()](v1::Trajectory* p) { pool->Give(p); });
}

size_t TrajectoryPool::kept() const {
  std::lock_guard<std::mutex> lock(mu_);
  return kept_.size();
}

void TrajectoryPool::Give(v1::Trajectory* t) {
  std::unique_ptr<v1::Trajectory> owned(t);
  owned->Clear();  // keeps the capacity of its arrays and its cleared turns
  std::lock_guard<std::mutex> lock(mu_);
  if (kept_.size() < max_kept_) kept_.push_back(std::move(owned));
}

}  // namespace rally
