#include "common/eval/game_tree.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"

namespace rally {
namespace {

absl::Status TooLarge(const Game& game, int64_t max_nodes) {
  return absl::ResourceExhaustedError(absl::StrCat("the tree of '", game.Name(), "' has more than ",
                                                   max_nodes,
                                                   " nodes; exact evaluation is for small games"));
}

// Expands the tree depth first, allocating each node's children together before visiting them.
struct TreeBuilder {
  absl::Status Expand(int index, const State& state, std::vector<int>& decisions) {
    int player = state.CurrentPlayer();
    int num_players = game.NumPlayers();
    nodes[index].player = player;
    if (player == kTerminalPlayer) {
      std::vector<double> r = state.Returns();
      for (int p = 0; p < num_players; ++p) returns[index * num_players + p] = r[p];
      return absl::OkStatus();
    }
    std::vector<int> actions;
    std::vector<double> probabilities;
    if (player == kChancePlayer) {
      for (const auto& [outcome, probability] : state.ChanceOutcomes()) {
        actions.push_back(outcome);
        probabilities.push_back(probability);
      }
    } else {
      actions = state.LegalActions();
      absl::StatusOr<int> infoset = Infoset(state, player, actions, decisions[player]);
      if (!infoset.ok()) return infoset.status();
      nodes[index].infoset = *infoset;
      infosets[*infoset].nodes.push_back(index);
    }
    int first = static_cast<int>(nodes.size());
    if (static_cast<int64_t>(first + actions.size()) > options.max_nodes) {
      return TooLarge(game, options.max_nodes);
    }
    nodes[index].first_child = first;
    nodes[index].num_children = static_cast<int>(actions.size());
    nodes.resize(first + actions.size());
    returns.resize(nodes.size() * num_players, 0.0);
    for (size_t i = 0; i < actions.size(); ++i) {
      nodes[first + i].action = actions[i];
      if (player == kChancePlayer) nodes[first + i].chance_probability = probabilities[i];
    }
    if (player >= 0) ++decisions[player];
    for (size_t i = 0; i < actions.size(); ++i) {
      std::unique_ptr<State> child = state.Clone();
      child->ApplyAction(actions[i]);
      absl::Status s = Expand(first + static_cast<int>(i), *child, decisions);
      if (!s.ok()) return s;
    }
    if (player >= 0) --decisions[player];
    return absl::OkStatus();
  }

  absl::StatusOr<int> Infoset(const State& state, int player, const std::vector<int>& actions,
                              int depth) {
    std::string key = state.InformationStateString(player);
    auto [it, inserted] = index.try_emplace(key, static_cast<int>(infosets.size()));
    if (inserted) {
      GameTree::InformationState info;
      info.key = key;
      info.player = player;
      info.actions = actions;
      info.depth = depth;
      info.state = state.Clone();
      infosets.push_back(std::move(info));
      return it->second;
    }
    const GameTree::InformationState& info = infosets[it->second];
    if (info.actions != actions || info.depth != depth || info.player != player) {
      return absl::FailedPreconditionError(absl::StrCat(
          "information state '", key, "' of '", game.Name(),
          "' holds histories with different legal actions or depths (imperfect recall)"));
    }
    return it->second;
  }

  const Game& game;
  TreeOptions options;
  std::vector<GameTree::Node> nodes{};
  std::vector<double> returns{};
  std::vector<GameTree::InformationState> infosets{};
  absl::flat_hash_map<std::string, int> index{};  // information state key -> index in infosets
};

}  // namespace

absl::StatusOr<GameTree> GameTree::Build(const Game& game, const TreeOptions& options) {
  TreeBuilder builder{game, options};
  builder.nodes.resize(1);
  builder.returns.resize(game.NumPlayers(), 0.0);
  std::vector<int> decisions(game.NumPlayers(), 0);
  std::unique_ptr<State> root = game.NewInitialState();
  absl::Status s = builder.Expand(0, *root, decisions);
  if (!s.ok()) return s;
  GameTree tree;
  tree.num_players_ = game.NumPlayers();
  tree.nodes_ = std::move(builder.nodes);
  tree.returns_ = std::move(builder.returns);
  tree.infosets_ = std::move(builder.infosets);
  return tree;
}

absl::StatusOr<std::vector<std::vector<double>>> GameTree::PolicyTable(
    std::span<const Policy* const> policies) const {
  if (policies.size() != 1 && static_cast<int>(policies.size()) != num_players_) {
    return absl::InvalidArgumentError(
        absl::StrCat("expected 1 or ", num_players_, " policies, got ", policies.size()));
  }
  std::vector<std::vector<double>> table(infosets_.size());
  for (size_t i = 0; i < infosets_.size(); ++i) {
    const InformationState& info = infosets_[i];
    const Policy& policy = *policies[policies.size() == 1 ? 0 : info.player];
    table[i].assign(info.actions.size(), 0.0);
    double sum = 0;
    for (const auto& [action, probability] : policy.ActionProbabilities(*info.state)) {
      auto it = std::lower_bound(info.actions.begin(), info.actions.end(), action);
      if (it == info.actions.end() || *it != action) {
        if (probability == 0) continue;
        return absl::InvalidArgumentError(absl::StrCat("policy gives illegal action ", action,
                                                       " at information state '", info.key, "'"));
      }
      if (!(probability >= 0)) {
        return absl::InvalidArgumentError(absl::StrCat("policy gives probability ", probability,
                                                       " at information state '", info.key, "'"));
      }
      table[i][it - info.actions.begin()] += probability;
      sum += probability;
    }
    const double forfeit = policy.ForfeitProbability(*info.state);  // 0 unless it may forfeit
    if (!(forfeit >= 0 && forfeit <= 1) || std::abs(sum + forfeit - 1.0) > 1e-6) {
      return absl::InvalidArgumentError(absl::StrCat("policy probabilities sum to ", sum,
                                                     " with forfeit ", forfeit,
                                                     " at information state '", info.key, "'"));
    }
  }
  return table;
}

namespace {

struct Collector {
  std::function<std::string(const State&)> key;
  int64_t max_nodes;
  int64_t visited = 0;
  std::map<std::string, InformationStateEntry> found;

  bool Walk(const State& state) {
    if (++visited > max_nodes) return false;
    if (state.IsTerminal()) return true;
    if (!state.IsChanceNode()) {
      std::string k = key(state);
      if (!found.contains(k)) {
        InformationStateEntry entry;
        entry.key = k;
        entry.player = state.CurrentPlayer();
        entry.actions = state.LegalActions();
        entry.state = state.Clone();
        found.emplace(k, std::move(entry));
      }
    }
    for (int a : state.LegalActions()) {
      std::unique_ptr<State> child = state.Clone();
      child->ApplyAction(a);
      if (!Walk(*child)) return false;
    }
    return true;
  }
};

}  // namespace

absl::StatusOr<std::vector<InformationStateEntry>> CollectInformationStates(
    const Game& game, std::function<std::string(const State&)> key, int64_t max_nodes) {
  Collector collector;
  collector.key = key ? std::move(key) : [](const State& state) {
    return state.InformationStateString(state.CurrentPlayer());
  };
  collector.max_nodes = max_nodes;
  if (!collector.Walk(*game.NewInitialState())) return TooLarge(game, max_nodes);
  std::vector<InformationStateEntry> entries;
  entries.reserve(collector.found.size());
  for (auto& [k, entry] : collector.found) entries.push_back(std::move(entry));
  return entries;
}

}  // namespace rally
