// The full tree of a finite game with its information states, built once and read by the exact
// evaluators (exploitability.h). For the small games only: TicTacToe (549,946 nodes), Kuhn and
// Leduc poker; building stops with RESOURCE_EXHAUSTED past TreeOptions::max_nodes.
//
// Layout: node 0 is the root; a node's children are contiguous and stored after it, so a forward
// pass over the nodes meets parents before children and a backward pass children first. The
// information states are those of the acting players at decision nodes, keyed by
// InformationStateString. A GameTree is immutable after Build and may be read from many threads.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/eval/policy.h"
#include "common/games/game.h"

namespace rally {

struct TreeOptions {
  int64_t max_nodes = 5'000'000;
};

class GameTree {
 public:
  struct Node {
    int player = kTerminalPlayer;  // acting player, kChancePlayer or kTerminalPlayer
    int infoset = -1;              // decision nodes: index into information_states()
    int first_child = -1;
    int num_children = 0;
    int action = -1;                  // the action (or chance outcome) that led here
    double chance_probability = 1.0;  // of this node given its parent, when that is a chance node
  };
  struct InformationState {
    std::string key;  // the player's InformationStateString
    int player = 0;
    // Legal actions, ascending; child i of every member node followed actions[i].
    std::vector<int> actions;
    int depth = 0;                 // the player's own decisions before it
    std::vector<int> nodes;        // member histories
    std::unique_ptr<State> state;  // one member, to query policies with
  };

  // The tree of `game`. RESOURCE_EXHAUSTED past options.max_nodes; FAILED_PRECONDITION when
  // histories sharing an information state differ in legal actions or in the player's depth.
  static absl::StatusOr<GameTree> Build(const Game& game, const TreeOptions& options = {});

  int num_players() const { return num_players_; }
  const std::vector<Node>& nodes() const { return nodes_; }
  const std::vector<InformationState>& information_states() const { return infosets_; }
  // The return of `player` at terminal node `node`.
  double Return(int node, int player) const { return returns_[node * num_players_ + player]; }

  // Each information state's action probabilities under `policies` (one per player, or a single
  // one for all players), aligned with its `actions`. INVALID_ARGUMENT naming the information
  // state when a policy gives an illegal action, a negative probability, or a sum off 1 minus its
  // ForfeitProbability (policy.h) by more than 1e-6.
  absl::StatusOr<std::vector<std::vector<double>>> PolicyTable(
      std::span<const Policy* const> policies) const;

 private:
  GameTree() = default;

  int num_players_ = 0;
  std::vector<Node> nodes_;
  std::vector<double> returns_;  // num_players_ per node; zero at non-terminal nodes
  std::vector<InformationState> infosets_;
};

// One information state met at a decision node, as CollectInformationStates reports it.
struct InformationStateEntry {
  std::string key;
  int player = 0;
  std::vector<int> actions;      // legal, ascending
  std::unique_ptr<State> state;  // the first member met, depth first in action order
};

// Every information state of `game` reached at a decision node, sorted by key. `key` defaults to
// the acting player's InformationStateString; a coarser key (such as Leduc's by-rank notation)
// merges states. RESOURCE_EXHAUSTED when the walk passes `max_nodes` histories.
absl::StatusOr<std::vector<InformationStateEntry>> CollectInformationStates(
    const Game& game, std::function<std::string(const State&)> key = nullptr,
    int64_t max_nodes = 5'000'000);

}  // namespace rally
