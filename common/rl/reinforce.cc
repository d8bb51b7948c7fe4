#include "common/rl/reinforce.h"

#include "absl/strings/str_cat.h"

namespace rally {

std::string BaselineRole(const v1::Trajectory& episode, int seat) {
  if (episode.opponent_id().empty() || episode.opponent_id() == "latest") return absl::StrCat(seat);
  return absl::StrCat(seat, "/", episode.opponent_id());
}

absl::StatusOr<TurnBatch> BuildTurnBatch(const std::vector<const v1::Trajectory*>& episodes,
                                         int observation_size, int num_actions,
                                         RoleBaselines& baselines) {
  int64_t turns = 0;
  for (const v1::Trajectory* e : episodes) turns += e->turns_size();
  std::vector<float> obs(turns * observation_size);
  std::vector<uint8_t> mask(turns * num_actions, 0);
  std::vector<int64_t> actions(turns);
  std::vector<float> adv(turns);
  std::vector<float> behaviour(turns);
  int64_t row = 0;
  double return_sum = 0;
  int64_t return_count = 0;
  for (const v1::Trajectory* e : episodes) {
    // Advantages for every learning seat of this episode, baseline read before the update.
    std::vector<double> seat_adv(e->returns_size(), 0.0);
    for (int seat : e->learning_seats()) {
      if (seat < 0 || seat >= e->returns_size()) {
        return absl::InvalidArgumentError(absl::StrCat("learning seat ", seat, " has no return"));
      }
      seat_adv[seat] = baselines.Advantage(e->game(), BaselineRole(*e, seat), e->returns(seat));
      return_sum += e->returns(seat);
      ++return_count;
    }
    for (const v1::Turn& t : e->turns()) {
      if (t.observation_size() != observation_size) {
        return absl::InvalidArgumentError(absl::StrCat(
            "turn observation has ", t.observation_size(), " floats, expected ", observation_size));
      }
      if (t.seat() < 0 || t.seat() >= e->returns_size()) {
        return absl::InvalidArgumentError(absl::StrCat("turn seat ", t.seat(), " out of range"));
      }
      std::copy(t.observation().begin(), t.observation().end(),
                obs.begin() + row * observation_size);
      for (int a : t.legal_actions()) mask[row * num_actions + a] = 1;
      actions[row] = t.action();
      behaviour[row] = t.behaviour_log_probs_size() > 0 ? t.behaviour_log_probs(0) : 0.f;
      adv[row] = static_cast<float>(seat_adv[t.seat()]);
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
  b.episodes = static_cast<int64_t>(episodes.size());
  b.mean_return = return_count > 0 ? return_sum / return_count : 0.0;
  return b;
}

LossTerms ReinforceLoss(PolicyNet& net, const TurnBatch& batch, double entropy_coef,
                        double rho_bar) {
  torch::Tensor logp = MaskedLogSoftmax(net->forward(batch.observations), batch.legal_mask);
  torch::Tensor chosen = logp.gather(1, batch.actions.unsqueeze(1)).squeeze(1);
  torch::Tensor weight = torch::ones_like(chosen);
  if (rho_bar > 0) {
    weight = (chosen.detach() - batch.behaviour_log_probs).exp().clamp_max(rho_bar);
  }
  torch::Tensor policy_loss = -(weight * batch.advantages * chosen).mean();
  // Entropy over legal actions only: illegal actions have probability 0 and contribute 0.
  torch::Tensor probs = logp.exp();
  torch::Tensor entropy =
      -(probs * logp.masked_fill(batch.legal_mask.logical_not(), 0.0)).sum(1).mean();
  LossTerms out;
  out.loss = policy_loss - entropy_coef * entropy;
  out.policy_loss = policy_loss.item<double>();
  out.entropy = entropy.item<double>();
  out.mean_importance_weight = weight.mean().item<double>();
  return out;
}

}  // namespace rally
