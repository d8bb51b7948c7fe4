#include "common/lm/lm_policy.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"

namespace rally {
namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

}  // namespace

absl::StatusOr<LmMoveScorer> LmMoveScorer::Create(const Transformer* model,
                                                  const Tokenizer* tokenizer, const Game* game,
                                                  const TextRendering* rendering, PromptStyle style,
                                                  SamplingOptions sampling) {
  if (model == nullptr || tokenizer == nullptr || game == nullptr || rendering == nullptr) {
    return absl::InvalidArgumentError("LmMoveScorer: model, tokenizer, game and rendering needed");
  }
  if (absl::Status s = ValidateSamplingOptions(sampling); !s.ok()) return s;
  if (tokenizer->VocabSize() > model->config().vocab) {
    return absl::InvalidArgumentError(
        absl::StrCat("LmMoveScorer: tokenizer vocabulary ", tokenizer->VocabSize(),
                     " is larger than the model's vocab ", model->config().vocab));
  }
  LmMoveScorer scorer;
  scorer.model_ = model;
  scorer.tokenizer_ = tokenizer;
  scorer.game_ = game;
  scorer.rendering_ = rendering;
  scorer.style_ = style;
  scorer.sampling_ = sampling;
  return scorer;
}

absl::StatusOr<std::string> LmMoveScorer::Prompt(const State& state) const {
  int player = state.CurrentPlayer();
  if (player < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("LmMoveScorer: not a decision node: ", state.ToString()));
  }
  if (style_ == PromptStyle::kSpiral) return SpiralPrompt(*rendering_, *game_, state, player);
  return CompactPrompt(*rendering_, *game_, state, player);
}

absl::StatusOr<std::vector<int32_t>> LmMoveScorer::PromptTokens(const State& state) const {
  absl::StatusOr<std::string> prompt = Prompt(state);
  if (!prompt.ok()) return prompt.status();
  return tokenizer_->Encode(*prompt);
}

std::vector<std::vector<int32_t>> LmMoveScorer::AnswerTokens(const State& state) const {
  int player = state.CurrentPlayer();
  std::vector<std::vector<int32_t>> answers;
  for (int action : state.LegalActions()) {
    std::string text = CanonicalAnswer(*rendering_, style_, state, player, action);
    text += AnswerEnd(style_);
    answers.push_back(tokenizer_->Encode(text));
  }
  return answers;
}

double LmMoveScorer::TokenLogProb(const torch::Tensor& row, int32_t token) const {
  if (sampling_.temperature > 0 && sampling_.top_k == 0 && sampling_.top_p == 1.0) {
    torch::Tensor scaled = row.to(torch::kDouble) / sampling_.temperature;
    return torch::log_softmax(scaled, 0)[token].item<double>();
  }
  // The tokens the sampler keeps; the token's probability renormalised over them, in double.
  torch::Tensor contiguous = row.to(torch::kFloat).contiguous();
  std::span<const float> logits(contiguous.data_ptr<float>(), contiguous.numel());
  std::vector<int64_t> ids;
  if (sampling_.temperature > 0 && sampling_.top_p == 1.0) {
    // Top-k alone: the k highest logits, ties to the lower id, chosen here rather than read from
    // SamplingDistribution, whose float probabilities can underflow to 0 for kept tokens.
    std::vector<int64_t> order(logits.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int64_t>(i);
    std::stable_sort(order.begin(), order.end(),
                     [&](int64_t a, int64_t b) { return logits[a] > logits[b]; });
    order.resize(std::min<size_t>(order.size(), sampling_.top_k));
    ids = std::move(order);
  } else {
    for (const TokenProbability& t : SamplingDistribution(logits, sampling_)) {
      ids.push_back(t.token);
    }
  }
  if (std::find(ids.begin(), ids.end(), token) == ids.end()) return kNegInf;
  if (sampling_.temperature == 0 || ids.size() == 1) return 0.0;  // drawn with probability 1
  torch::Tensor scaled = row.to(torch::kDouble) / sampling_.temperature;
  torch::Tensor norm = torch::logsumexp(scaled.index({torch::tensor(ids, torch::kLong)}), 0);
  return (scaled[token] - norm).item<double>();
}

double LmMoveScorer::AnswerLogProb(const torch::Tensor& first_row, const torch::Tensor& rest_rows,
                                   const std::vector<int32_t>& answer) const {
  double sum = TokenLogProb(first_row, answer[0]);
  for (size_t i = 1; i < answer.size() && sum != kNegInf; ++i) {
    sum += TokenLogProb(rest_rows[i - 1], answer[i]);
  }
  return sum;
}

absl::StatusOr<MoveScores> LmMoveScorer::Score(const State& state) const {
  absl::StatusOr<std::vector<int32_t>> prompt = PromptTokens(state);
  if (!prompt.ok()) return prompt.status();
  std::vector<std::vector<int32_t>> answers = AnswerTokens(state);
  MoveScores scores;
  scores.actions = state.LegalActions();
  scores.prompt_tokens = static_cast<int>(prompt->size());
  size_t longest = 0;
  for (const auto& a : answers) {
    if (a.empty()) return absl::InternalError("LmMoveScorer: an answer encoded to no tokens");
    longest = std::max(longest, a.size());
  }
  int capacity = static_cast<int>(prompt->size() + longest);
  if (prompt->empty() || capacity > model_->config().max_seq_len) {
    return absl::InvalidArgumentError(absl::StrCat(
        "LmMoveScorer: prompt of ", prompt->size(), " tokens plus an answer of ", longest,
        " does not fit max_seq_len ", model_->config().max_seq_len, " at ", state.ToString()));
  }
  absl::StatusOr<KvCache> cache = KvCache::Create(model_->config(), 1, capacity, model_->device());
  if (!cache.ok()) return cache.status();
  absl::StatusOr<int> slot = cache->Allocate();
  if (!slot.ok()) return slot.status();
  SequenceChunk prefill{*slot, *prompt};
  absl::StatusOr<torch::Tensor> first = model_->Extend(*cache, {&prefill, 1});
  if (!first.ok()) return first.status();
  torch::Tensor first_row = first->index({0}).to(torch::kCPU);
  double total = 0;
  for (const std::vector<int32_t>& answer : answers) {
    torch::Tensor rest;
    if (answer.size() > 1) {
      SequenceChunk chunk{*slot, std::span<const int32_t>(answer.data(), answer.size() - 1)};
      absl::StatusOr<torch::Tensor> logits =
          model_->Extend(*cache, {&chunk, 1}, Transformer::Logits::kAll);
      if (!logits.ok()) return logits.status();
      rest = logits->index({0}).to(torch::kCPU);
      if (absl::Status s = cache->Truncate(*slot, scores.prompt_tokens); !s.ok()) return s;
    }
    double log_prob = AnswerLogProb(first_row, rest, answer);
    scores.log_probs.push_back(log_prob);
    scores.probs.push_back(std::exp(log_prob));
    total += scores.probs.back();
  }
  scores.invalid = std::max(0.0, 1.0 - total);
  return scores;
}

absl::StatusOr<LmPolicyTable> ScoreTree(const GameTree& tree, const LmMoveScorer& scorer) {
  LmPolicyTable table;
  for (const GameTree::InformationState& info : tree.information_states()) {
    absl::StatusOr<MoveScores> scores = scorer.Score(*info.state);
    if (!scores.ok()) {
      return absl::Status(scores.status().code(), absl::StrCat("information state '", info.key,
                                                               "': ", scores.status().message()));
    }
    if (scores->actions != info.actions) {
      return absl::InternalError(
          absl::StrCat("information state '", info.key, "': legal actions differ from the tree's"));
    }
    table.probs.push_back(std::move(scores->probs));
    table.invalid.push_back(scores->invalid);
  }
  return table;
}

absl::StatusOr<LmPolicyTable> TableFromPolicy(const GameTree& tree, const Policy& policy) {
  const Policy* one[] = {&policy};
  absl::StatusOr<std::vector<std::vector<double>>> probs = tree.PolicyTable(one);
  if (!probs.ok()) return probs.status();
  LmPolicyTable table;
  table.probs = *std::move(probs);
  table.invalid.assign(table.probs.size(), 0.0);
  return table;
}

absl::Status ValidateLmPolicyTable(const GameTree& tree, const LmPolicyTable& table) {
  if (tree.num_players() != 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the forfeit rule needs a two-player game, not one of ", tree.num_players(), " players"));
  }
  const auto& infosets = tree.information_states();
  if (table.probs.size() != infosets.size() || table.invalid.size() != infosets.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("LmPolicyTable has ", table.probs.size(), " rows and ", table.invalid.size(),
                     " invalid masses for ", infosets.size(), " information states"));
  }
  for (size_t i = 0; i < infosets.size(); ++i) {
    if (table.probs[i].size() != infosets[i].actions.size()) {
      return absl::InvalidArgumentError(absl::StrCat("information state '", infosets[i].key,
                                                     "': probabilities do not match its actions"));
    }
    double sum = table.invalid[i];
    bool in_range = table.invalid[i] >= 0 && table.invalid[i] <= 1;
    for (double p : table.probs[i]) {
      in_range = in_range && p >= 0 && p <= 1;
      sum += p;
    }
    if (!in_range || std::abs(sum - 1.0) > 1e-6) {
      return absl::InvalidArgumentError(
          absl::StrCat("information state '", infosets[i].key,
                       "': probabilities and invalid mass are not a distribution (sum ", sum, ")"));
    }
  }
  return absl::OkStatus();
}

namespace {

// The forfeit return of `player` when the player to move at `node` answers invalidly.
double ForfeitReturn(const GameTree& tree, int node, int player) {
  return tree.nodes()[node].player == player ? kForfeitOffenderReturn : kForfeitOpponentReturn;
}

double EdgeProbability(const GameTree& tree, const LmPolicyTable& table, int node, int i) {
  const GameTree::Node& n = tree.nodes()[node];
  if (n.player == kChancePlayer) return tree.nodes()[n.first_child + i].chance_probability;
  return table.probs[n.infoset][i];
}

// The forfeit mass at `node` (0 at chance nodes).
double InvalidMass(const GameTree& tree, const LmPolicyTable& table, int node) {
  const GameTree::Node& n = tree.nodes()[node];
  return n.player >= 0 ? table.invalid[n.infoset] : 0.0;
}

// Reach probability of every node under chance and the policy, skipping `responder`'s own
// decisions (weight 1) when responder >= 0 (-1: none).
std::vector<double> Reach(const GameTree& tree, const LmPolicyTable& table, int responder) {
  const auto& nodes = tree.nodes();
  std::vector<double> reach(nodes.size(), 0.0);
  reach[0] = 1.0;
  for (size_t n = 0; n < nodes.size(); ++n) {
    for (int i = 0; i < nodes[n].num_children; ++i) {
      bool own = responder >= 0 && nodes[n].player == responder;
      double w = own ? 1.0 : EdgeProbability(tree, table, n, i);
      reach[nodes[n].first_child + i] = reach[n] * w;
    }
  }
  return reach;
}

std::vector<double> RootValues(const GameTree& tree, const LmPolicyTable& table) {
  const auto& nodes = tree.nodes();
  int players = tree.num_players();
  std::vector<double> values(nodes.size() * players, 0.0);
  for (int n = static_cast<int>(nodes.size()) - 1; n >= 0; --n) {
    if (nodes[n].player == kTerminalPlayer) {
      for (int p = 0; p < players; ++p) values[n * players + p] = tree.Return(n, p);
      continue;
    }
    double q = InvalidMass(tree, table, n);
    for (int p = 0; p < players; ++p) values[n * players + p] = q * ForfeitReturn(tree, n, p);
    for (int i = 0; i < nodes[n].num_children; ++i) {
      double w = EdgeProbability(tree, table, n, i);
      int child = nodes[n].first_child + i;
      for (int p = 0; p < players; ++p) values[n * players + p] += w * values[child * players + p];
    }
  }
  return std::vector<double>(values.begin(), values.begin() + players);
}

// exploitability.h's best response, the policy's forfeit mass paying the responder +0.5.
class ForfeitBestResponder {
 public:
  ForfeitBestResponder(const GameTree& tree, const LmPolicyTable& table, int responder)
      : tree_(tree),
        table_(table),
        responder_(responder),
        value_(tree.nodes().size(), 0.0),
        known_(tree.nodes().size(), false),
        reach_(Reach(tree, table, responder)),
        choice_(tree.information_states().size(), -1) {}

  absl::StatusOr<BestResponse> Solve() {
    const auto& infosets = tree_.information_states();
    std::vector<int> order;
    for (size_t i = 0; i < infosets.size(); ++i) {
      if (infosets[i].player == responder_) order.push_back(static_cast<int>(i));
    }
    std::stable_sort(order.begin(), order.end(),
                     [&](int a, int b) { return infosets[a].depth > infosets[b].depth; });
    for (int i : order) Decide(i);
    BestResponse result;
    result.value = Value(0);
    if (!error_.ok()) return error_;
    for (int i : order) result.actions[infosets[i].key] = infosets[i].actions[choice_[i]];
    return result;
  }

 private:
  void Decide(int infoset) {
    if (choice_[infoset] >= 0) return;
    const GameTree::InformationState& info = tree_.information_states()[infoset];
    if (choice_[infoset] == kDeciding) {
      error_ = absl::FailedPreconditionError(
          absl::StrCat("information state '", info.key,
                       "' lies below itself; best response needs perfect "
                       "recall"));
      choice_[infoset] = 0;
      return;
    }
    choice_[infoset] = kDeciding;
    int best = 0;
    double best_value = 0;
    for (size_t a = 0; a < info.actions.size(); ++a) {
      double q = 0;
      for (int h : info.nodes) q += reach_[h] * Value(tree_.nodes()[h].first_child + a);
      if (a == 0 || q > best_value) {
        best = static_cast<int>(a);
        best_value = q;
      }
    }
    choice_[infoset] = best;
  }

  double Value(int node) {
    if (known_[node]) return value_[node];
    const GameTree::Node& n = tree_.nodes()[node];
    double v = 0;
    if (n.player == kTerminalPlayer) {
      v = tree_.Return(node, responder_);
    } else if (n.player == responder_) {
      Decide(n.infoset);
      v = Value(n.first_child + choice_[n.infoset]);
    } else {
      v = InvalidMass(tree_, table_, node) * kForfeitOpponentReturn;
      for (int i = 0; i < n.num_children; ++i) {
        double w = EdgeProbability(tree_, table_, node, i);
        if (w > 0) v += w * Value(n.first_child + i);
      }
    }
    known_[node] = true;
    value_[node] = v;
    return v;
  }

  static constexpr int kDeciding = -2;
  const GameTree& tree_;
  const LmPolicyTable& table_;
  int responder_;
  std::vector<double> value_;
  std::vector<bool> known_;
  std::vector<double> reach_;
  std::vector<int> choice_;
  absl::Status error_;
};

}  // namespace

absl::StatusOr<std::vector<double>> ForfeitExpectedReturns(const GameTree& tree,
                                                           const LmPolicyTable& table) {
  if (absl::Status s = ValidateLmPolicyTable(tree, table); !s.ok()) return s;
  return RootValues(tree, table);
}

absl::StatusOr<BestResponse> ForfeitBestResponse(const GameTree& tree, const LmPolicyTable& table,
                                                 int responder) {
  if (absl::Status s = ValidateLmPolicyTable(tree, table); !s.ok()) return s;
  if (responder < 0 || responder >= tree.num_players()) {
    return absl::InvalidArgumentError(absl::StrCat("no responder seat ", responder));
  }
  return ForfeitBestResponder(tree, table, responder).Solve();
}

absl::StatusOr<double> ForfeitNashConv(const GameTree& tree, const LmPolicyTable& table) {
  if (absl::Status s = ValidateLmPolicyTable(tree, table); !s.ok()) return s;
  std::vector<double> on_policy = RootValues(tree, table);
  double nash_conv = 0;
  for (int p = 0; p < tree.num_players(); ++p) {
    absl::StatusOr<BestResponse> br = ForfeitBestResponder(tree, table, p).Solve();
    if (!br.ok()) return br.status();
    nash_conv += br->value - on_policy[p];
  }
  return nash_conv;
}

absl::StatusOr<double> ForfeitExploitability(const GameTree& tree, const LmPolicyTable& table) {
  absl::StatusOr<double> nash_conv = ForfeitNashConv(tree, table);
  if (!nash_conv.ok()) return nash_conv.status();
  return *nash_conv / 2;
}

absl::StatusOr<InvalidAnswerRate> ComputeInvalidAnswerRate(const GameTree& tree,
                                                           const LmPolicyTable& table) {
  if (absl::Status s = ValidateLmPolicyTable(tree, table); !s.ok()) return s;
  std::vector<double> reach = Reach(tree, table, /*responder=*/-1);
  InvalidAnswerRate rate;
  double decisions = 0;
  for (size_t n = 0; n < tree.nodes().size(); ++n) {
    if (tree.nodes()[n].player < 0) continue;
    decisions += reach[n];
    rate.per_game += reach[n] * InvalidMass(tree, table, n);
  }
  rate.per_decision = decisions > 0 ? rate.per_game / decisions : 0.0;
  const auto& infosets = tree.information_states();
  for (size_t i = 0; i < infosets.size(); ++i) {
    if (i == 0 || table.invalid[i] > rate.max) {
      rate.max = table.invalid[i];
      rate.max_key = infosets[i].key;
    }
  }
  return rate;
}

LmTablePolicy::LmTablePolicy(const GameTree& tree, const LmPolicyTable& table) {
  const auto& infosets = tree.information_states();
  for (size_t i = 0; i < infosets.size() && i < table.probs.size(); ++i) {
    double sum = 0;
    for (double p : table.probs[i]) sum += p;
    if (sum <= 0) {
      tabular_.Set(infosets[i].key, UniformOver(infosets[i].actions));
      continue;
    }
    ActionsAndProbs probs;
    for (size_t a = 0; a < infosets[i].actions.size(); ++a) {
      probs.emplace_back(infosets[i].actions[a], table.probs[i][a] / sum);
    }
    tabular_.Set(infosets[i].key, std::move(probs));
  }
}

ActionsAndProbs LmTablePolicy::ActionProbabilities(const State& state) const {
  return tabular_.ActionProbabilities(state);
}

}  // namespace rally
