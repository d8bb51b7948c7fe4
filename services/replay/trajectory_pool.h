// Cleared trajectories kept for reuse by the insert path.
//
// Parsing a trajectory into a fresh message grows each token array chunk by chunk as the bytes
// arrive (a reallocation and a copy per doubling, plus the allocations); parsed into a cleared
// message that held an item of the same shape, the arrays already have their capacity and each
// byte is copied once. Items stored in the replay are shared through Share(): when the last
// reference goes (the item is evicted or removed, and no sample holds it), the trajectory is
// cleared and kept for the next Take(), up to `max_kept` of them.
// Thread safety: all methods from any thread.
#pragma once

#include <memory>
#include <mutex>
#include <vector>

#include "rally/v1/trajectory.pb.h"

namespace rally {

class TrajectoryPool : public std::enable_shared_from_this<TrajectoryPool> {
 public:
  static std::shared_ptr<TrajectoryPool> Create(size_t max_kept);

  // An empty trajectory: a kept one when there is one.
  std::unique_ptr<v1::Trajectory> Take();
  // `t` shared; it comes back to the pool when the last reference goes.
  std::shared_ptr<v1::Trajectory> Share(std::unique_ptr<v1::Trajectory> t);

  size_t kept() const;

 private:
  explicit TrajectoryPool(size_t max_kept) : max_kept_(max_kept) {}
  void Give(v1::Trajectory* t);

  const size_t max_kept_;
  mutable std::mutex mu_;
  std::vector<std::unique_ptr<v1::Trajectory>> kept_;
};

}  // namespace rally
