#include "common/rl/token_losses.h"

#include <algorithm>
#include <limits>

#include "absl/strings/str_cat.h"

namespace rally {

int64_t EpisodeTokens(const v1::Trajectory& episode) {
  int64_t tokens = 0;
  for (const v1::Turn& t : episode.turns()) {
    if (std::find(episode.learning_seats().begin(), episode.learning_seats().end(), t.seat()) ==
        episode.learning_seats().end()) {
      continue;
    }
    tokens += t.observation_tokens_size() + t.action_tokens_size();
  }
  return tokens;
}

namespace {

bool IsLearningSeat(const v1::Trajectory& e, int seat) {
  return std::find(e.learning_seats().begin(), e.learning_seats().end(), seat) !=
         e.learning_seats().end();
}

// What is wrong with `turn` as a row of a batch under `options`; OK when nothing is.
absl::Status CheckTurn(const v1::Turn& turn, const TokenBatchOptions& options) {
  if (turn.observation_tokens_size() == 0) return absl::InvalidArgumentError("no prompt tokens");
  if (turn.action_tokens_size() == 0) return absl::InvalidArgumentError("no action tokens");
  if (turn.behaviour_log_probs_size() != turn.action_tokens_size()) {
    return absl::InvalidArgumentError(absl::StrCat(turn.behaviour_log_probs_size(),
                                                   " behaviour_log_probs for ",
                                                   turn.action_tokens_size(), " action tokens"));
  }
  const int length = turn.observation_tokens_size() + turn.action_tokens_size();
  if (options.max_seq_len > 0 && length > options.max_seq_len) {
    return absl::InvalidArgumentError(
        absl::StrCat(length, " tokens, more than max_seq_len ", options.max_seq_len));
  }
  for (const auto* ids : {&turn.observation_tokens(), &turn.action_tokens()}) {
    for (uint32_t id : *ids) {
      if (options.vocab > 0 && id >= static_cast<uint32_t>(options.vocab)) {
        return absl::InvalidArgumentError(
            absl::StrCat("token ", id, " outside the vocabulary of ", options.vocab));
      }
    }
  }
  if (options.legal_answers) {
    for (int32_t id : turn.legal_actions()) {
      if (id < 0 || id >= options.vocab) {
        return absl::InvalidArgumentError(
            absl::StrCat("legal answer token ", id, " outside the vocabulary of ", options.vocab));
      }
    }
  }
  return absl::OkStatus();
}

// V-trace's walk order: the rows of each (episode, seat) together, in play order, and 1 at each
// such sequence's last row. `rows` are (episode, turn) in batch order.
void FillSequences(const std::vector<const v1::Trajectory*>& episodes,
                   const std::vector<std::pair<size_t, int>>& rows, TokenBatch& batch) {
  std::vector<std::pair<std::pair<size_t, int>, int64_t>> keyed;  // ((episode, seat), row)
  for (size_t b = 0; b < rows.size(); ++b) {
    const int seat = episodes[rows[b].first]->turns(rows[b].second).seat();
    keyed.push_back({{rows[b].first, seat}, static_cast<int64_t>(b)});
  }
  std::stable_sort(keyed.begin(), keyed.end(),
                   [](const auto& x, const auto& y) { return x.first < y.first; });
  const int64_t n = static_cast<int64_t>(rows.size());
  batch.sequence_order = torch::zeros({n}, torch::kInt64);
  batch.sequence_dones = torch::zeros({n}, torch::kFloat32);
  auto order = batch.sequence_order.accessor<int64_t, 1>();
  auto dones = batch.sequence_dones.accessor<float, 1>();
  for (int64_t k = 0; k < n; ++k) {
    order[k] = keyed[k].second;
    dones[k] = k + 1 == n || keyed[k + 1].first != keyed[k].first ? 1.f : 0.f;
  }
}

}  // namespace

absl::StatusOr<TokenBatch> BuildTokenBatch(const std::vector<const v1::Trajectory*>& episodes,
                                           RoleBaselines& baselines,
                                           const TokenBatchOptions& options) {
  // The rows: (episode index, turn index), and the longest row.
  std::vector<std::pair<size_t, int>> rows;
  int64_t width = 1;
  for (size_t i = 0; i < episodes.size(); ++i) {
    const v1::Trajectory& e = *episodes[i];
    for (int k = 0; k < e.turns_size(); ++k) {
      const v1::Turn& t = e.turns(k);
      if (t.seat() < 0 || t.seat() >= e.returns_size()) {
        return absl::InvalidArgumentError(
            absl::StrCat("episode ", i, " turn ", k, ": seat ", t.seat(), " has no return"));
      }
      if (!IsLearningSeat(e, t.seat())) continue;
      if (absl::Status s = CheckTurn(t, options); !s.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("episode ", i, " turn ", k, ": ", s.message()));
      }
      rows.emplace_back(i, k);
      width = std::max<int64_t>(width, t.observation_tokens_size() + t.action_tokens_size());
    }
  }
  const int64_t n = static_cast<int64_t>(rows.size());
  TokenBatch batch;
  batch.tokens = torch::zeros({n, width}, torch::kInt64);
  batch.lengths = torch::zeros({n}, torch::kInt64);
  batch.prompt_lengths = torch::zeros({n}, torch::kInt64);
  batch.action_mask = torch::zeros({n, width}, torch::kFloat32);
  batch.advantages = torch::zeros({n}, torch::kFloat32);
  batch.returns = torch::zeros({n}, torch::kFloat32);
  batch.behaviour_log_probs = torch::zeros({n, width}, torch::kFloat32);
  auto tokens = batch.tokens.accessor<int64_t, 2>();
  auto lengths = batch.lengths.accessor<int64_t, 1>();
  auto prompt_lengths = batch.prompt_lengths.accessor<int64_t, 1>();
  auto mask = batch.action_mask.accessor<float, 2>();
  auto advantages = batch.advantages.accessor<float, 1>();
  auto returns = batch.returns.accessor<float, 1>();
  auto behaviour = batch.behaviour_log_probs.accessor<float, 2>();
  FillSequences(episodes, rows, batch);
  if (options.legal_answers) {
    batch.legal_answers = torch::zeros({n, options.vocab}, torch::kBool);
    auto legal = batch.legal_answers.accessor<bool, 2>();
    for (int64_t b = 0; b < n; ++b) {
      for (int32_t id : episodes[rows[b].first]->turns(rows[b].second).legal_actions()) {
        legal[b][id] = true;
      }
    }
  }

  // Advantages per episode and seat, baselines read then updated in batch order.
  std::vector<std::vector<double>> seat_value(episodes.size());
  std::vector<std::vector<double>> seat_advantage(episodes.size());
  double return_sum = 0;
  int64_t return_count = 0;
  for (size_t i = 0; i < episodes.size(); ++i) {
    const v1::Trajectory& e = *episodes[i];
    seat_advantage[i].assign(e.returns_size(), 0.0);
    seat_value[i].assign(e.returns_size(), 0.0);
    for (int seat : e.learning_seats()) {
      if (seat < 0 || seat >= e.returns_size()) {
        return absl::InvalidArgumentError(
            absl::StrCat("episode ", i, ": learning seat ", seat, " has no return"));
      }
      const double r = e.returns(seat);
      const double value = options.objective == Objective::kWin ? (r > 0 ? 1.0 : 0.0) : r;
      seat_value[i][seat] = value;
      seat_advantage[i][seat] = baselines.Advantage(e.game(), BaselineRole(e, seat), value);
      return_sum += r;
      ++return_count;
    }
  }

  int64_t action_tokens = 0;
  for (int64_t b = 0; b < n; ++b) {
    const v1::Turn& t = episodes[rows[b].first]->turns(rows[b].second);
    const int prompt = t.observation_tokens_size();
    const int actions = t.action_tokens_size();
    for (int j = 0; j < prompt; ++j) tokens[b][j] = t.observation_tokens(j);
    for (int j = 0; j < actions; ++j) tokens[b][prompt + j] = t.action_tokens(j);
    lengths[b] = prompt + actions;
    prompt_lengths[b] = prompt;
    advantages[b] = static_cast<float>(seat_advantage[rows[b].first][t.seat()]);
    returns[b] = static_cast<float>(seat_value[rows[b].first][t.seat()]);
    const bool cut = options.answer_ended && !options.answer_ended(t);
    if (cut) {
      ++batch.cut_turns;
      continue;
    }
    for (int j = 0; j < actions; ++j) {
      mask[b][prompt + j] = 1;
      behaviour[b][prompt + j] = t.behaviour_log_probs(j);
    }
    action_tokens += actions;
  }
  batch.episodes = static_cast<int64_t>(episodes.size());
  batch.mean_return = return_count > 0 ? return_sum / return_count : 0.0;
  batch.action_tokens = action_tokens;
  return batch;
}

torch::Tensor TokenLogProbs(const torch::Tensor& logits, const torch::Tensor& tokens) {
  const int64_t width = tokens.size(1);
  torch::Tensor log_probs = torch::log_softmax(logits.slice(1, 0, width - 1), -1);
  torch::Tensor next = tokens.slice(1, 1, width).to(torch::kInt64).unsqueeze(-1);
  torch::Tensor picked = log_probs.gather(-1, next).squeeze(-1);
  return torch::cat({torch::zeros({tokens.size(0), 1}, picked.options()), picked}, 1);
}

namespace {

// V-trace along each seat's sequence of turns (TokenLoss's contract), without gradient: per row
// in batch order, the value target v_b, the policy-gradient advantage and rho_b.
VtraceReturns TokenVtrace(const torch::Tensor& log_ratio, const torch::Tensor& values,
                          const TokenBatch& batch, const LossOptions& options) {
  torch::NoGradGuard no_grad;
  const torch::Device device = values.device();
  const torch::Tensor order = batch.sequence_order.to(device);
  const torch::Tensor dones = batch.sequence_dones.to(device);
  const torch::Tensor turn_log_rho = log_ratio.detach().sum(1).index_select(0, order);
  const torch::Tensor rewards = dones * batch.returns.to(device).index_select(0, order);
  const VtraceReturns walked =
      ComputeVtrace(turn_log_rho, values.detach().index_select(0, order), rewards, dones, options);
  auto in_batch_order = [&](const torch::Tensor& t) {
    return torch::zeros_like(t).index_copy_(0, order, t);
  };
  return {in_batch_order(walked.vs), in_batch_order(walked.pg_advantages),
          in_batch_order(walked.rhos)};
}

// Mean over the magnet rows of KL(pi_L || uniform_L) at each row's first action position
// (TokenLoss's contract); 0 when there is no magnet row.
torch::Tensor LegalMagnetKl(const torch::Tensor& logits, const TokenBatch& batch,
                            const torch::Tensor& mask) {
  const torch::Device device = logits.device();
  const int64_t n = logits.size(0);
  const torch::Tensor rows = torch::arange(n, torch::TensorOptions(device).dtype(torch::kInt64));
  const torch::Tensor state = batch.prompt_lengths.to(device) - 1;
  const torch::Tensor legal = batch.legal_answers.to(device);
  const torch::Tensor first_trained = mask.index({rows, state + 1});
  const torch::Tensor used = legal.any(1).logical_and(first_trained);  // [B]
  // Unused rows read as all-legal zeros, so that nothing they hold reaches the result.
  const torch::Tensor zero = torch::zeros({}, logits.options());
  const torch::Tensor first =
      torch::where(used.unsqueeze(1), logits.index({rows, state}), zero);  // [B, V]
  const torch::Tensor in_l = torch::where(used.unsqueeze(1), legal, torch::ones_like(legal));
  const torch::Tensor log_pi_l = torch::log_softmax(
      first.masked_fill(in_l.logical_not(), -std::numeric_limits<float>::infinity()), -1);
  const torch::Tensor plogp =
      torch::where(in_l, log_pi_l.exp() * log_pi_l.masked_fill(in_l.logical_not(), 0.0), zero);
  const torch::Tensor kl = plogp.sum(1) + in_l.sum(1).to(logits.scalar_type()).log();
  const double count = std::max<double>(1.0, used.sum().item<double>());
  return torch::where(used, kl, zero).sum() / count;
}

}  // namespace

LossTerms TokenLoss(const torch::Tensor& logits, const TokenBatch& batch,
                    const LossOptions& options, const torch::Tensor& reference_logits,
                    const torch::Tensor& values) {
  TORCH_CHECK(options.algorithm != Algorithm::kVtrace || values.defined(),
              "V-trace needs the value head's outputs");
  TORCH_CHECK(logits.dim() == 3 && logits.size(0) == batch.tokens.size(0) &&
                  logits.size(1) == batch.tokens.size(1),
              "logits must be [B, T, V] of the batch's tokens");
  const torch::Tensor mask = batch.action_mask.to(logits.device()) > 0;  // [B, T] bool
  const double n = std::max<double>(1.0, mask.sum().item<double>());
  const torch::Tensor zero = torch::zeros({}, logits.options());
  // Logits that predict no trained token are replaced before any arithmetic, so that whatever
  // they hold (even inf or NaN) reaches neither the loss nor its gradient. Row t of `predicting`
  // is the distribution over token t + 1, shifted to sit at position t + 1 like the mask.
  const int64_t width = logits.size(1);
  torch::Tensor shifted =
      torch::cat({torch::zeros_like(logits.slice(1, 0, 1)), logits.slice(1, 0, width - 1)}, 1);
  shifted = torch::where(mask.unsqueeze(-1), shifted, zero);
  const torch::Tensor log_pi_all = torch::log_softmax(shifted, -1);  // [B, T, V]
  const torch::Tensor targets = batch.tokens.to(logits.device()).unsqueeze(-1);
  const torch::Tensor log_pi = log_pi_all.gather(-1, targets).squeeze(-1);  // [B, T]
  const torch::Tensor log_mu = batch.behaviour_log_probs.to(logits.device());
  const torch::Tensor advantage = batch.advantages.to(logits.device()).unsqueeze(1);  // [B, 1]
  const torch::Tensor log_ratio = torch::where(mask, ClampedLogRatio(log_pi, log_mu), zero);
  const torch::Tensor ratio = torch::exp(log_ratio);

  LossTerms terms;
  torch::Tensor policy;
  torch::Tensor weight;             // the importance weight reported
  torch::Tensor loss_extra = zero;  // the value loss term (V-trace)
  if (options.algorithm == Algorithm::kPpo) {
    const double eps = options.clip_epsilon;
    torch::Tensor surrogate =
        torch::min(ratio * advantage, torch::clamp(ratio, 1.0 - eps, 1.0 + eps) * advantage);
    policy = -torch::where(mask, surrogate, zero).sum() / n;
    weight = ratio.detach();
    terms.clip_fraction =
        (torch::where(mask, ((ratio.detach() - 1).abs() > eps).to(logits.dtype()), zero).sum() / n)
            .item<double>();
  } else if (options.algorithm == Algorithm::kVtrace) {
    TORCH_CHECK(values.dim() == 1 && values.size(0) == logits.size(0),
                "values must be [B], one per row");
    const VtraceReturns vtrace = TokenVtrace(log_ratio, values, batch, options);
    weight = vtrace.rhos.unsqueeze(1).expand_as(ratio);
    policy = -torch::where(mask, vtrace.pg_advantages.unsqueeze(1) * log_pi, zero).sum() / n;
    const torch::Tensor value_loss = 0.5 * (vtrace.vs - values).pow(2).mean();
    loss_extra = options.value_coef * value_loss;
    terms.value_loss = value_loss.item<double>();
  } else {
    weight = options.rho_bar > 0 ? torch::clamp_max(ratio.detach(), options.rho_bar)
                                 : torch::ones_like(ratio);
    policy = -torch::where(mask, weight * advantage * log_pi, zero).sum() / n;
  }
  const torch::Tensor pi_all = log_pi_all.exp();
  const torch::Tensor entropy_per = -(pi_all * log_pi_all).sum(-1);  // [B, T]
  const torch::Tensor entropy = torch::where(mask, entropy_per, zero).sum() / n;
  torch::Tensor loss = policy + loss_extra - options.entropy_coef * entropy;
  if (batch.legal_answers.defined()) {
    const torch::Tensor magnet_kl = LegalMagnetKl(logits, batch, mask);
    if (options.magnet_coef != 0) loss = loss + options.magnet_coef * magnet_kl;
    terms.magnet_kl = magnet_kl.item<double>();
  }
  if (reference_logits.defined()) {
    torch::Tensor ref_shifted = torch::cat({torch::zeros_like(reference_logits.slice(1, 0, 1)),
                                            reference_logits.slice(1, 0, width - 1)},
                                           1);
    ref_shifted = torch::where(mask.unsqueeze(-1), ref_shifted.detach(), zero);
    const torch::Tensor log_ref = torch::log_softmax(ref_shifted, -1);
    const torch::Tensor kl_per = (pi_all * (log_pi_all - log_ref)).sum(-1);
    const torch::Tensor kl = torch::where(mask, kl_per, zero).sum() / n;
    loss = loss + options.kl_coef * kl;
    terms.kl = kl.item<double>();
  }
  terms.loss = loss;
  terms.policy_loss = policy.item<double>();
  terms.entropy = entropy.item<double>();
  terms.mean_importance_weight = (torch::where(mask, weight, zero).sum() / n).item<double>();
  return terms;
}

}  // namespace rally
