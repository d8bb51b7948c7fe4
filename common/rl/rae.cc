#include "common/rl/rae.h"

namespace rally {

double RoleBaselines::Advantage(const std::string& game, const std::string& role,
                                double episode_return) {
  double& b = values_[{game, role}];
  double advantage = episode_return - b;
  b = decay_ * b + (1.0 - decay_) * episode_return;
  return advantage;
}

double RoleBaselines::baseline(const std::string& game, const std::string& role) const {
  auto it = values_.find({game, role});
  return it == values_.end() ? 0.0 : it->second;
}

}  // namespace rally
