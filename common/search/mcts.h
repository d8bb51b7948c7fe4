// AlphaZero-style Monte-Carlo tree search (PUCT) for two-player zero-sum games without chance,
// built so that many searches run at once and their leaf evaluations fill one batch.
//
// One MctsSearch chooses one move from one root position. A simulation walks from the root
// choosing, at each expanded node s, the child a maximising
//     Q(s,a) + c_puct · P(s,a) · sqrt(N(s)) / (1 + N(s,a))
// where Q(s,a) is the mean of the values backed up through the child, for the player to move at
// s (0 while the child is unvisited), P(s,a) the prior of a among s's legal actions and N(s) the
// node's own visit count: 1 for its evaluation plus every simulation through it. Ties go to the
// lowest action. The walk ends at
// - a terminal state: its value is the game's Returns() (zero-sum: player 1's is the negation of
//   player 0's), no evaluation; backed up at once;
// - a state not yet expanded: it waits for an evaluation (a prior over its legal actions and a
//   value for its player to move), then is expanded and the value backed up.
// `simulations` counts the walks from the root; the root's own evaluation comes first and is not
// one of them, so the root's visit counts sum to `simulations`. Each move's search starts from a
// fresh tree (no reuse of the previous move's subtree).
//
// Stepping (no thread per search): NextLeaves() runs walks until the search waits on
// evaluations, and returns the states that need them; SetEvaluations() answers them in the same
// order and the search goes on at the next NextLeaves(). RunSearches() drives many searches,
// evaluating every waiting leaf of all of them in one LeafEvaluator call per round. With
// `max_pending_leaves` > 1 one search has up to that many leaves waiting: each walk to a waiting
// leaf adds a virtual loss (one visit, and `virtual_loss` against the player choosing, at every
// node on its path) so that the next walks spread out; the evaluation replaces it with the real
// visit and value. A walk that reaches a leaf already waiting ends the round early (it is not
// counted, and runs again after the evaluations). With max_pending_leaves = 1 (the default) no
// virtual loss is ever seen by a selection: the search is the sequential algorithm.
//
// Root noise (training only): with dirichlet_epsilon > 0 the root's prior becomes
// (1 - epsilon) · P + epsilon · eta, eta ~ Dirichlet(dirichlet_alpha) over the root's legal
// actions, drawn from the search's random generator when the root is expanded.
//
// Result: the root's visit counts N(a) over its legal actions, the policy
// pi(a) ∝ N(a)^(1/temperature) (the training target; see VisitDistribution for temperature 0 and
// ties), the action played and the root value. Before the game's temperature_drop_move-th move
// the action is drawn from pi; from then on it is a most visited action (temperature 0), while
// the target keeps `temperature`, as in OpenSpiel's AlphaZero.
//
// Determinism: given the options (seed included), the root and the evaluator's answers, a search
// makes the same choices, asks for the same leaves in the same order and returns the same
// result, alone or stepped together with any number of other searches.
//
// Ownership and thread safety: a search owns copies of the root and of every waiting leaf; the
// caller's root may change or go once Create returns. The states NextLeaves returns stay valid
// until SetEvaluations or the search's end; the span itself until the search is moved. A search
// is not synchronised: one thread at a time uses it; different searches share nothing and may
// run on different threads. The game passed to Create is only read during Create.
#pragma once

#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <random>
#include <span>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/games/game.h"

namespace rally {

struct MctsOptions {
  int simulations = 100;  // walks from the root per move, >= 1
  double c_puct = 2.0;    // >= 0
  // Root noise; 0 turns it off (evaluation play). alpha > 0 when epsilon > 0.
  double dirichlet_alpha = 1.0;
  double dirichlet_epsilon = 0.0;  // in [0, 1]
  // tau of the policy (the training target, and what the action is drawn from while the game's
  // move number is below temperature_drop_move; the most visited action is played from then on).
  // The default never drops.
  double temperature = 1.0;  // >= 0
  int temperature_drop_move = std::numeric_limits<int>::max();
  int max_pending_leaves = 1;  // leaves one search may have waiting at once, >= 1
  double virtual_loss = 1.0;   // >= 0; only seen when max_pending_leaves > 1
  uint64_t seed = 0;
};

// One leaf's evaluation: `prior` has one entry per legal action of the leaf, in LegalActions()
// order, finite and >= 0 with a positive sum (the search normalises it); `value` in [-1, 1] is
// the expected return of the leaf's player to move.
struct LeafEvaluation {
  std::vector<double> prior;
  double value = 0;
};

// Evaluates leaves in batches (a network's forward pass, or a fixed rule in tests).
class LeafEvaluator {
 public:
  virtual ~LeafEvaluator() = default;
  // One evaluation per state, in order. Every state is a non-terminal decision node, owned by
  // the caller and valid during the call. An error stops the searches and is returned to their
  // driver. Called from the thread that drives the searches.
  virtual absl::StatusOr<std::vector<LeafEvaluation>> Evaluate(
      std::span<const State* const> states) = 0;
};

struct SearchResult {
  std::vector<int> actions;       // the root's legal actions, ascending
  std::vector<double> prior;      // the root prior the search used (noise included)
  std::vector<int> visit_counts;  // N(a), summing to `simulations`
  std::vector<double> policy;     // pi(a) ∝ N(a)^(1/temperature), summing to 1: the target
  // Drawn from `policy` before the temperature drop; after it (`greedy`) a most visited action,
  // drawn uniformly among ties.
  int action = -1;
  bool greedy = false;
  // Mean of every value backed up through the root (its own evaluation included), for the root's
  // player to move.
  double root_value = 0;
};

// pi(a) ∝ counts[a]^(1/tau) for tau > 0 (computed in log space, so small tau does not
// overflow). For tau = 0, the limit: the actions with the most visits share the mass equally
// (one-hot when one action has the most). Counts are >= 0 with a positive sum.
std::vector<double> VisitDistribution(std::span<const int> counts, double temperature);

class MctsSearch {
 public:
  // A search choosing the move at `root`, the game's `move_number`-th player move (from 0;
  // compared with temperature_drop_move). INVALID_ARGUMENT for a game that is not two-player or has
  // chance nodes, a root that is terminal or a chance node, or options out of range (the message
  // names the field).
  static absl::StatusOr<MctsSearch> Create(const Game& game, const State& root, int move_number,
                                           const MctsOptions& options);

  MctsSearch(MctsSearch&&) = default;
  MctsSearch& operator=(MctsSearch&&) = default;

  // The leaves this search waits on, running walks first when it waits on none. Empty once the
  // search is done or has failed. Calling it again before SetEvaluations returns the same leaves.
  std::span<const State* const> NextLeaves();
  // Answers the leaves of the last NextLeaves, in order. INVALID_ARGUMENT (naming the leaf and
  // what is wrong) for a count that differs or an evaluation outside its contract; the search
  // has then failed and keeps returning that error.
  absl::Status SetEvaluations(std::span<const LeafEvaluation> evaluations);

  bool done() const { return completed_ == options_.simulations; }
  const absl::Status& status() const { return status_; }
  // FAILED_PRECONDITION before the search is done; its error once it has failed. The first call
  // draws the action from the search's generator; later calls return the same result.
  absl::StatusOr<SearchResult> Result();

 private:
  struct Node {
    int action = -1;        // the action from the parent
    int player = 0;         // to move here; kTerminalPlayer at a terminal state
    double prior = 0;       // P(parent, action)
    int visits = 0;         // N: evaluations and terminal values backed up through here
    double value_sum = 0;   // W: the sum of those values, for player 0
    int pending_walks = 0;  // walks through here whose leaf waits (each a virtual loss)
    int first_child = -1;   // children are nodes_[first_child, first_child + num_children)
    int num_children = 0;
    bool pending = false;  // waiting on an evaluation
  };
  struct PendingLeaf {
    std::vector<int> path;  // node indices, root first, the leaf last
    std::unique_ptr<State> state;
  };
  enum class WalkEnd { kCounted, kCollision, kFailed };

  MctsSearch(std::unique_ptr<State> root, int move_number, const MctsOptions& options);

  void RunWalks();
  WalkEnd Walk();
  int SelectChild(const Node& node) const;
  void Expand(int node, const State& state, std::span<const double> prior);
  void AddRootNoise();
  void Backup(std::span<const int> path, double value0, bool was_pending);
  absl::Status CheckEvaluation(int leaf, const State& state, const LeafEvaluation& e) const;

  MctsOptions options_;
  int move_number_;
  std::unique_ptr<State> root_;
  std::mt19937_64 rng_;
  std::vector<Node> nodes_;
  std::vector<PendingLeaf> pending_;
  std::vector<const State*> pending_states_;
  int started_ = 0;    // walks that reached a leaf (waiting or backed up)
  int completed_ = 0;  // walks backed up
  bool root_expanded_ = false;
  absl::Status status_;
  std::optional<SearchResult> result_;
};

// Runs every search to the end together: each round asks every unfinished search for its leaves
// and evaluates all of them in one `evaluator` call, so the batch holds the waiting leaves of
// all unfinished searches. Returns the first error: a search's (that search has failed), or the
// evaluator's (every search still waits on the same leaves, and RunSearches may be called
// again).
absl::Status RunSearches(std::span<MctsSearch* const> searches, LeafEvaluator& evaluator);

// One search from `root` to its result, evaluating its leaves alone.
absl::StatusOr<SearchResult> Search(const Game& game, const State& root, int move_number,
                                    const MctsOptions& options, LeafEvaluator& evaluator);

}  // namespace rally
