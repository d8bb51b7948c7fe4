#include "common/search/mcts.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"

namespace rally {
namespace {

absl::Status CheckOptions(const MctsOptions& o) {
  auto bad = [](const char* field, const char* rule) {
    return absl::InvalidArgumentError(absl::StrCat("MCTS option ", field, " must be ", rule));
  };
  if (o.simulations < 1) return bad("simulations", ">= 1");
  if (!(o.c_puct >= 0) || !std::isfinite(o.c_puct)) return bad("c_puct", "finite and >= 0");
  if (!(o.dirichlet_epsilon >= 0 && o.dirichlet_epsilon <= 1)) {
    return bad("dirichlet_epsilon", "in [0, 1]");
  }
  if (o.dirichlet_epsilon > 0 && !(o.dirichlet_alpha > 0 && std::isfinite(o.dirichlet_alpha))) {
    return bad("dirichlet_alpha", "finite and > 0 when dirichlet_epsilon > 0");
  }
  if (!(o.temperature >= 0) || !std::isfinite(o.temperature)) {
    return bad("temperature", "finite and >= 0");
  }
  if (o.max_pending_leaves < 1) return bad("max_pending_leaves", ">= 1");
  if (!(o.virtual_loss >= 0) || !std::isfinite(o.virtual_loss)) {
    return bad("virtual_loss", "finite and >= 0");
  }
  return absl::OkStatus();
}

// An index drawn with the probabilities `p` (summing to 1).
size_t Draw(const std::vector<double>& p, std::mt19937_64& rng) {
  double u = std::uniform_real_distribution<double>(0.0, 1.0)(rng);
  size_t pick = 0;
  double cumulative = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    if (p[i] == 0) continue;
    pick = i;  // the last index with mass, should rounding leave u above the total
    cumulative += p[i];
    if (u < cumulative) break;
  }
  return pick;
}

// The value of a state for player 0, from the value `v` for `player`, in a zero-sum game.
double ForPlayerZero(int player, double v) { return player == 0 ? v : -v; }

}  // namespace

std::vector<double> VisitDistribution(std::span<const int> counts, double temperature) {
  std::vector<double> pi(counts.size(), 0.0);
  int most = *std::max_element(counts.begin(), counts.end());
  if (temperature == 0) {
    int ties = static_cast<int>(std::count(counts.begin(), counts.end(), most));
    for (size_t i = 0; i < counts.size(); ++i) pi[i] = counts[i] == most ? 1.0 / ties : 0.0;
    return pi;
  }
  // N^(1/tau) / max N^(1/tau) = exp((log N - log max) / tau): at most 1, so no overflow.
  double log_most = std::log(static_cast<double>(most));
  double sum = 0;
  for (size_t i = 0; i < counts.size(); ++i) {
    if (counts[i] == 0) continue;
    pi[i] = std::exp((std::log(static_cast<double>(counts[i])) - log_most) / temperature);
    sum += pi[i];
  }
  for (double& p : pi) p /= sum;
  return pi;
}

absl::StatusOr<MctsSearch> MctsSearch::Create(const Game& game, const State& root, int move_number,
                                              const MctsOptions& options) {
  if (game.NumPlayers() != 2) {
    return absl::InvalidArgumentError(absl::StrCat("MCTS searches two-player zero-sum games; ",
                                                   game.Name(), " has ", game.NumPlayers(),
                                                   " players"));
  }
  if (game.MaxChanceOutcomes() > 0) {
    return absl::InvalidArgumentError(absl::StrCat("MCTS searches games without chance nodes; ",
                                                   game.Name(), " has chance nodes"));
  }
  if (root.IsTerminal() || root.IsChanceNode()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "MCTS root must be a player's decision node; got ",
        root.IsTerminal() ? "a terminal state" : "a chance node", ": ", root.ToString()));
  }
  if (absl::Status s = CheckOptions(options); !s.ok()) return s;
  return MctsSearch(root.Clone(), move_number, options);
}

MctsSearch::MctsSearch(std::unique_ptr<State> root, int move_number, const MctsOptions& options)
    : options_(options), move_number_(move_number), root_(std::move(root)), rng_(options.seed) {
  Node node;
  node.player = root_->CurrentPlayer();
  nodes_.push_back(node);
}

std::span<const State* const> MctsSearch::NextLeaves() {
  if (!status_.ok() || done()) return {};
  if (pending_.empty()) {
    RunWalks();
    pending_states_.clear();
    for (const PendingLeaf& leaf : pending_) pending_states_.push_back(leaf.state.get());
  }
  return pending_states_;
}

void MctsSearch::RunWalks() {
  if (!root_expanded_) {
    // The root's evaluation comes before the first walk and is not one.
    nodes_[0].pending = true;
    pending_.push_back(PendingLeaf{{0}, root_->Clone()});
    return;
  }
  while (started_ < options_.simulations &&
         static_cast<int>(pending_.size()) < options_.max_pending_leaves) {
    if (Walk() != WalkEnd::kCounted) return;
  }
}

MctsSearch::WalkEnd MctsSearch::Walk() {
  std::unique_ptr<State> state = root_->Clone();
  std::vector<int> path = {0};
  while (true) {
    Node& node = nodes_[path.back()];
    node.player = state->CurrentPlayer();
    if (node.player == kTerminalPlayer) {
      ++started_;
      Backup(path, state->Returns()[0], /*was_pending=*/false);
      ++completed_;
      return WalkEnd::kCounted;
    }
    if (node.player == kChancePlayer) {
      status_ = absl::InvalidArgumentError(
          absl::StrCat("MCTS reached a chance node in a game without chance: ", state->ToString()));
      return WalkEnd::kFailed;
    }
    if (node.num_children == 0) {
      if (node.pending) return WalkEnd::kCollision;
      node.pending = true;
      for (int i : path) ++nodes_[i].pending_walks;
      ++started_;
      pending_.push_back(PendingLeaf{std::move(path), std::move(state)});
      return WalkEnd::kCounted;
    }
    int child = SelectChild(node);
    state->ApplyAction(nodes_[child].action);
    path.push_back(child);
  }
}

int MctsSearch::SelectChild(const Node& node) const {
  double sign = node.player == 0 ? 1.0 : -1.0;
  double sqrt_visits = std::sqrt(static_cast<double>(node.visits + node.pending_walks));
  int best = -1;
  double best_score = 0;
  for (int i = node.first_child; i < node.first_child + node.num_children; ++i) {
    const Node& child = nodes_[i];
    int n = child.visits + child.pending_walks;
    double q = 0;
    if (n > 0) q = (sign * child.value_sum - options_.virtual_loss * child.pending_walks) / n;
    double score = q + options_.c_puct * child.prior * sqrt_visits / (1 + n);
    if (best < 0 || score > best_score) {
      best = i;
      best_score = score;
    }
  }
  return best;
}

absl::Status MctsSearch::SetEvaluations(std::span<const LeafEvaluation> evaluations) {
  if (!status_.ok()) return status_;
  if (evaluations.size() != pending_.size()) {
    status_ = absl::InvalidArgumentError(absl::StrCat(
        "MCTS got ", evaluations.size(), " evaluations for ", pending_.size(), " waiting leaves"));
    return status_;
  }
  for (size_t i = 0; i < pending_.size(); ++i) {
    const PendingLeaf& leaf = pending_[i];
    const LeafEvaluation& e = evaluations[i];
    status_ = CheckEvaluation(static_cast<int>(i), *leaf.state, e);
    if (!status_.ok()) return status_;
    int node = leaf.path.back();
    Expand(node, *leaf.state, e.prior);
    bool is_root = node == 0;
    Backup(leaf.path, ForPlayerZero(nodes_[node].player, e.value), /*was_pending=*/!is_root);
    if (is_root) {
      root_expanded_ = true;
      if (options_.dirichlet_epsilon > 0) AddRootNoise();
    } else {
      ++completed_;
    }
  }
  pending_.clear();
  pending_states_.clear();
  return absl::OkStatus();
}

absl::Status MctsSearch::CheckEvaluation(int leaf, const State& state,
                                         const LeafEvaluation& e) const {
  auto bad = [&](const std::string& what) {
    return absl::InvalidArgumentError(
        absl::StrCat("MCTS evaluation of leaf ", leaf, " (", state.ToString(), "): ", what));
  };
  size_t legal = state.LegalActions().size();
  if (e.prior.size() != legal) {
    return bad(
        absl::StrCat("prior has ", e.prior.size(), " entries for ", legal, " legal actions"));
  }
  double sum = 0;
  for (double p : e.prior) {
    if (!(p >= 0) || !std::isfinite(p)) return bad(absl::StrCat("prior entry ", p, " is not >= 0"));
    sum += p;
  }
  if (!(sum > 0)) return bad("prior sums to 0");
  if (!(e.value >= -1 && e.value <= 1)) {
    return bad(absl::StrCat("value ", e.value, " is outside [-1, 1]"));
  }
  return absl::OkStatus();
}

void MctsSearch::Expand(int node, const State& state, std::span<const double> prior) {
  std::vector<int> legal = state.LegalActions();
  double sum = 0;
  for (double p : prior) sum += p;
  int first = static_cast<int>(nodes_.size());
  for (size_t i = 0; i < legal.size(); ++i) {
    Node child;
    child.action = legal[i];
    child.prior = prior[i] / sum;
    nodes_.push_back(child);
  }
  nodes_[node].first_child = first;
  nodes_[node].num_children = static_cast<int>(legal.size());
  nodes_[node].pending = false;
}

void MctsSearch::AddRootNoise() {
  Node& root = nodes_[0];
  std::gamma_distribution<double> gamma(options_.dirichlet_alpha, 1.0);
  std::vector<double> eta(root.num_children);
  double sum = 0;
  for (double& x : eta) sum += (x = gamma(rng_));
  double eps = options_.dirichlet_epsilon;
  for (int i = 0; i < root.num_children; ++i) {
    // A tiny alpha can draw every component as 0: the noise is then uniform.
    double noise = sum > 0 ? eta[i] / sum : 1.0 / root.num_children;
    Node& child = nodes_[root.first_child + i];
    child.prior = (1 - eps) * child.prior + eps * noise;
  }
}

void MctsSearch::Backup(std::span<const int> path, double value0, bool was_pending) {
  for (int i : path) {
    Node& node = nodes_[i];
    ++node.visits;
    node.value_sum += value0;
    if (was_pending) --node.pending_walks;
  }
}

absl::StatusOr<SearchResult> MctsSearch::Result() {
  if (!status_.ok()) return status_;
  if (!done()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "MCTS result asked after ", completed_, " of ", options_.simulations, " simulations"));
  }
  if (result_.has_value()) return *result_;
  const Node& root = nodes_[0];
  SearchResult result;
  for (int i = root.first_child; i < root.first_child + root.num_children; ++i) {
    result.actions.push_back(nodes_[i].action);
    result.prior.push_back(nodes_[i].prior);
    result.visit_counts.push_back(nodes_[i].visits);
  }
  result.policy = VisitDistribution(result.visit_counts, options_.temperature);
  result.greedy = move_number_ >= options_.temperature_drop_move;
  result.action = result.actions[Draw(
      result.greedy ? VisitDistribution(result.visit_counts, 0.0) : result.policy, rng_)];
  result.root_value = ForPlayerZero(root.player, root.value_sum / root.visits);
  result_ = result;
  return result;
}

absl::Status RunSearches(std::span<MctsSearch* const> searches, LeafEvaluator& evaluator) {
  std::vector<const State*> batch;
  std::vector<size_t> counts(searches.size());
  while (true) {
    batch.clear();
    for (size_t i = 0; i < searches.size(); ++i) {
      std::span<const State* const> leaves = searches[i]->NextLeaves();
      if (!searches[i]->status().ok()) return searches[i]->status();
      counts[i] = leaves.size();
      batch.insert(batch.end(), leaves.begin(), leaves.end());
    }
    if (batch.empty()) return absl::OkStatus();
    absl::StatusOr<std::vector<LeafEvaluation>> evaluations = evaluator.Evaluate(batch);
    if (!evaluations.ok()) return evaluations.status();
    if (evaluations->size() != batch.size()) {
      return absl::InternalError(absl::StrCat("leaf evaluator returned ", evaluations->size(),
                                              " evaluations for ", batch.size(), " leaves"));
    }
    std::span<const LeafEvaluation> rest(*evaluations);
    for (size_t i = 0; i < searches.size(); ++i) {
      if (counts[i] == 0) continue;
      absl::Status s = searches[i]->SetEvaluations(rest.first(counts[i]));
      if (!s.ok()) return s;
      rest = rest.subspan(counts[i]);
    }
  }
}

absl::StatusOr<SearchResult> Search(const Game& game, const State& root, int move_number,
                                    const MctsOptions& options, LeafEvaluator& evaluator) {
  absl::StatusOr<MctsSearch> search = MctsSearch::Create(game, root, move_number, options);
  if (!search.ok()) return search.status();
  MctsSearch* one[] = {&*search};
  if (absl::Status s = RunSearches(one, evaluator); !s.ok()) return s;
  return search->Result();
}

}  // namespace rally
