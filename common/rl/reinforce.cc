#include "common/rl/reinforce.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/util/snapshot_id.h"

namespace rally {

std::string BaselineRole(const v1::Trajectory& episode, int seat) {
  if (episode.opponent_id().empty() || episode.opponent_id() == "latest") return absl::StrCat(seat);
  // Snapshots of the pool share one role: the pool moves through the job, and a baseline per
  // snapshot would add keys (to the map and to every checkpoint) without bound.
  if (SnapshotVersion(episode.opponent_id())) return absl::StrCat(seat, "/snapshot");
  return absl::StrCat(seat, "/", episode.opponent_id());
}

absl::StatusOr<TurnBatch> BuildTurnBatch(const std::vector<const v1::Trajectory*>& episodes,
                                         int observation_size, int num_actions,
                                         RoleBaselines& baselines, Objective objective) {
  int64_t turns = 0;
  for (const v1::Trajectory* e : episodes) turns += e->turns_size();
  std::vector<float> obs(turns * observation_size);
  std::vector<uint8_t> mask(turns * num_actions, 0);
  std::vector<int64_t> actions(turns);
  std::vector<float> adv(turns);
  std::vector<float> behaviour(turns);
  std::vector<float> rewards(turns);
  std::vector<uint8_t> dones(turns, 0);
  int64_t row = 0;
  double return_sum = 0;
  int64_t return_count = 0;
  for (const v1::Trajectory* e : episodes) {
    auto value = [&](int seat) {
      double r = e->returns(seat);
      return objective == Objective::kWin ? (r > 0 ? 1.0 : 0.0) : r;
    };
    // Advantages for every learning seat of this episode, baseline read before the update.
    std::vector<double> seat_adv(e->returns_size(), 0.0);
    for (int seat : e->learning_seats()) {
      if (seat < 0 || seat >= e->returns_size()) {
        return absl::InvalidArgumentError(absl::StrCat("learning seat ", seat, " has no return"));
      }
      seat_adv[seat] = baselines.Advantage(e->game(), BaselineRole(*e, seat), value(seat));
      return_sum += e->returns(seat);
      ++return_count;
    }
    // Turn indices grouped by seat, each seat's turns in play order.
    std::vector<int> order(e->turns_size());
    for (int i = 0; i < e->turns_size(); ++i) {
      const v1::Turn& t = e->turns(i);
      if (t.seat() < 0 || t.seat() >= e->returns_size()) {
        return absl::InvalidArgumentError(absl::StrCat("turn seat ", t.seat(), " out of range"));
      }
      order[i] = i;
    }
    std::stable_sort(order.begin(), order.end(),
                     [&](int a, int b) { return e->turns(a).seat() < e->turns(b).seat(); });
    double seat_reward_sum = 0;
    for (size_t k = 0; k < order.size(); ++k) {
      const v1::Turn& t = e->turns(order[k]);
      if (t.observation_size() != observation_size) {
        return absl::InvalidArgumentError(absl::StrCat(
            "turn observation has ", t.observation_size(), " floats, expected ", observation_size));
      }
      if (t.action() < 0 || t.action() >= num_actions) {
        return absl::InvalidArgumentError(
            absl::StrCat("turn action ", t.action(), " out of range"));
      }
      std::copy(t.observation().begin(), t.observation().end(),
                obs.begin() + row * observation_size);
      for (int a : t.legal_actions()) {
        if (a < 0 || a >= num_actions) {
          return absl::InvalidArgumentError(absl::StrCat("legal action ", a, " out of range"));
        }
        mask[row * num_actions + a] = 1;
      }
      actions[row] = t.action();
      behaviour[row] = t.behaviour_log_probs_size() > 0 ? t.behaviour_log_probs(0) : 0.f;
      adv[row] = static_cast<float>(seat_adv[t.seat()]);
      double reward = t.reward();
      seat_reward_sum += t.reward();
      if (k + 1 == order.size() || e->turns(order[k + 1]).seat() != t.seat()) {
        reward += value(t.seat()) - seat_reward_sum;
        seat_reward_sum = 0;
        dones[row] = 1;
      }
      rewards[row] = static_cast<float>(reward);
      ++row;
    }
  }
  TurnBatch b;
  b.observations = torch::from_blob(obs.data(), {turns, observation_size}, torch::kFloat32).clone();
  b.legal_mask =
      torch::from_blob(mask.data(), {turns, num_actions}, torch::kUInt8).to(torch::kBool);
  b.actions = torch::from_blob(actions.data(), {turns}, torch::kInt64).clone();
  b.advantages = torch::from_blob(adv.data(), {turns}, torch::kFloat32).clone();
  b.behaviour_log_probs = torch::from_blob(behaviour.data(), {turns}, torch::kFloat32).clone();
  b.rewards = torch::from_blob(rewards.data(), {turns}, torch::kFloat32).clone();
  b.dones = torch::from_blob(dones.data(), {turns}, torch::kUInt8).to(torch::kBool);
  b.episodes = static_cast<int64_t>(episodes.size());
  b.mean_return = return_count > 0 ? return_sum / return_count : 0.0;
  return b;
}

torch::Tensor ClampedLogRatio(const torch::Tensor& log_pi, const torch::Tensor& log_mu) {
  return (log_pi - log_mu).clamp(-kMaxLogImportanceRatio, kMaxLogImportanceRatio);
}

LossTerms ReinforceLoss(PolicyNet& net, const TurnBatch& batch, double entropy_coef,
                        double rho_bar) {
  return ReinforceLossFromLogProbs(
      MaskedLogSoftmax(net->forward(batch.observations), batch.legal_mask), batch, entropy_coef,
      rho_bar);
}

LossTerms ReinforceLossFromLogProbs(const torch::Tensor& log_probs, const TurnBatch& batch,
                                    double entropy_coef, double rho_bar) {
  torch::Tensor chosen = log_probs.gather(1, batch.actions.unsqueeze(1)).squeeze(1);
  torch::Tensor weight = torch::ones_like(chosen);
  if (rho_bar > 0) {
    weight = ClampedLogRatio(chosen.detach(), batch.behaviour_log_probs).exp().clamp_max(rho_bar);
  }
  torch::Tensor policy_loss = -(weight * batch.advantages * chosen).mean();
  torch::Tensor entropy = MeanEntropy(log_probs, batch.legal_mask);
  LossTerms out;
  out.loss = policy_loss - entropy_coef * entropy;
  out.policy_loss = policy_loss.item<double>();
  out.entropy = entropy.item<double>();
  out.mean_importance_weight = weight.mean().item<double>();
  return out;
}

}  // namespace rally
