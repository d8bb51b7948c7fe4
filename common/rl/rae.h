// Role-conditioned advantage estimation (SPIRAL): one exponential-moving-average baseline per
// (game, role). For an episode with return R for role p:
//   A = R - b[game, p]           (the baseline is read before it is updated)
//   b[game, p] <- decay * b[game, p] + (1 - decay) * R
// Every turn of role p in that episode gets advantage A. Baselines start at 0 and are learner
// state (checkpointed). Not thread safe: the learner's training thread owns it.
#pragma once

#include <map>
#include <string>
#include <utility>

namespace rally {

class RoleBaselines {
 public:
  using Key = std::pair<std::string, std::string>;  // (game, role)

  explicit RoleBaselines(double decay = 0.95) : decay_(decay) {}

  // Returns A = R - b and then updates b with R.
  double Advantage(const std::string& game, const std::string& role, double episode_return);
  double baseline(const std::string& game, const std::string& role) const;
  double decay() const { return decay_; }

  const std::map<Key, double>& values() const { return values_; }
  void set_values(std::map<Key, double> values) { values_ = std::move(values); }

 private:
  double decay_;
  std::map<Key, double> values_;
};

}  // namespace rally
