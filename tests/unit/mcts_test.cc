#include "common/search/mcts.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "common/games/connect_four.h"
#include "common/games/kuhn_poker.h"
#include "common/games/tictactoe.h"
#include "common/games/tictactoe_solver.h"

namespace rally {
namespace {

// A game small enough to follow by hand: player 0 picks one of three arms, then the players
// pass (the one legal action 0) in turn until `length` plies have been played; the final
// returns are `arm_returns[arm]` for player 0 and its negation for player 1.
class ArmsState : public State {
 public:
  ArmsState(int length, std::vector<double> arm_returns)
      : length_(length), arm_returns_(std::move(arm_returns)) {}
  int CurrentPlayer() const override { return plies_ >= length_ ? kTerminalPlayer : plies_ % 2; }
  std::vector<int> LegalActions() const override {
    if (IsTerminal()) return {};
    return plies_ == 0 ? std::vector<int>{0, 1, 2} : std::vector<int>{0};
  }
  void ApplyAction(int action) override {
    if (plies_++ == 0) arm_ = action;
  }
  std::vector<double> Returns() const override {
    if (!IsTerminal()) return {0, 0};
    return {arm_returns_[arm_], -arm_returns_[arm_]};
  }
  void ObservationTensor(int, std::span<float>) const override {}
  std::string ObservationString(int) const override { return ToString(); }
  std::string InformationStateString(int) const override { return ToString(); }
  void InformationStateTensor(int, std::span<float>) const override {}
  std::string ToString() const override {
    return "arm " + std::to_string(arm_) + " ply " + std::to_string(plies_);
  }
  std::unique_ptr<State> Clone() const override { return std::make_unique<ArmsState>(*this); }
  int arm() const { return arm_; }
  int plies() const { return plies_; }

 private:
  int length_;
  std::vector<double> arm_returns_;
  int plies_ = 0;
  int arm_ = -1;
};

class ArmsGame : public Game {
 public:
  explicit ArmsGame(int length, int players = 2) : length_(length), players_(players) {}
  std::string Name() const override { return "arms"; }
  int NumPlayers() const override { return players_; }
  int NumDistinctActions() const override { return 3; }
  std::vector<int> ObservationShape() const override { return {1}; }
  std::vector<int> InformationStateShape() const override { return {1}; }
  int MaxGameLength() const override { return length_; }
  std::unique_ptr<State> NewInitialState() const override {
    return std::make_unique<ArmsState>(length_, std::vector<double>{1, -1, 0});
  }

 private:
  int length_;
  int players_;
};

// Evaluates with a function of the state; records each call's batch and checks that no terminal
// state is ever evaluated.
class FunctionEvaluator : public LeafEvaluator {
 public:
  using Rule = std::function<LeafEvaluation(const State&)>;
  explicit FunctionEvaluator(Rule rule) : rule_(std::move(rule)) {}
  absl::StatusOr<std::vector<LeafEvaluation>> Evaluate(
      std::span<const State* const> states) override {
    batch_sizes.push_back(static_cast<int>(states.size()));
    std::vector<LeafEvaluation> out;
    for (const State* s : states) {
      EXPECT_FALSE(s->IsTerminal()) << s->ToString();
      evaluated.push_back(s->ToString());
      out.push_back(rule_(*s));
    }
    return out;
  }
  std::vector<int> batch_sizes;
  std::vector<std::string> evaluated;

 private:
  Rule rule_;
};

// Uniform prior, value 0: the search learns only from terminal returns.
LeafEvaluation UniformZero(const State& s) {
  return {std::vector<double>(s.LegalActions().size(), 1.0), 0.0};
}

// A fixed, state-dependent prior and value, different for every position.
LeafEvaluation Hashed(const State& s) {
  uint64_t h = std::hash<std::string>()(s.ToString());
  LeafEvaluation e;
  for (size_t i = 0; i < s.LegalActions().size(); ++i) {
    h = h * 6364136223846793005ULL + 1442695040888963407ULL;
    e.prior.push_back(0.05 + static_cast<double>(h >> 40) / (1ULL << 24));
  }
  e.value = static_cast<double>(h >> 41) / (1ULL << 23) * 2 - 1;
  return e;
}

ConnectFourState ConnectFourAfter(const std::vector<int>& columns) {
  ConnectFourState s;
  for (int c : columns) s.ApplyAction(c);
  return s;
}

int VisitsOf(const SearchResult& r, int action) {
  for (size_t i = 0; i < r.actions.size(); ++i) {
    if (r.actions[i] == action) return r.visit_counts[i];
  }
  return -1;
}

int MostVisited(const SearchResult& r) {
  size_t best = 0;
  for (size_t i = 1; i < r.actions.size(); ++i) {
    if (r.visit_counts[i] > r.visit_counts[best]) best = i;
  }
  return r.actions[best];
}

SearchResult MustSearch(const Game& game, const State& root, const MctsOptions& options,
                        LeafEvaluator& evaluator, int move_number = 0) {
  absl::StatusOr<SearchResult> r = Search(game, root, move_number, options, evaluator);
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? *r : SearchResult{};
}

TEST(Mcts, FirstSimulationsFollowThePuctFormulaOnAHandMadePrior) {
  // Root prior P = (0.5, 0.3, 0.2); every evaluation below arm a is worth v = (-0.5, 0.3, 0.2)
  // to player 0 (returned to player 1, whose turn it is after the arm, as -v); c_puct = 1.
  // Score(a) = Q(a) + P(a) sqrt(N) / (1 + n(a)), N = 1 (the root's evaluation) + walks so far,
  // Q(a) = v(a) once visited, 0 before:
  //   walk 1, N=1: 0.5, 0.3, 0.2                  -> arm 0
  //   walk 2, N=2: -0.5+0.5*1.414/2 = -0.146, 0.3*1.414 = 0.424, 0.2*1.414 = 0.283 -> arm 1
  //   walk 3, N=3: -0.067, 0.3+0.3*1.732/2 = 0.560, 0.346          -> arm 1
  //   walk 4, N=4: 0.000, 0.3+0.3*2/3 = 0.500, 0.400                -> arm 1
  //   walk 5, N=5: 0.059, 0.3+0.3*2.236/4 = 0.468, 0.2*2.236 = 0.447 -> arm 1
  //   walk 6, N=6: 0.112, 0.3+0.3*2.449/5 = 0.447, 0.2*2.449 = 0.490 -> arm 2
  //   walk 7, N=7: 0.161, 0.3+0.3*2.646/5 = 0.459, 0.2+0.2*2.646/2 = 0.465 -> arm 2
  //   walk 8, N=8: 0.207, 0.3+0.3*2.828/5 = 0.470, 0.2+0.2*2.828/3 = 0.389 -> arm 1
  const std::vector<double> v = {-0.5, 0.3, 0.2};
  FunctionEvaluator evaluator([&](const State& s) {
    const auto& arms = static_cast<const ArmsState&>(s);
    if (arms.plies() == 0) return LeafEvaluation{{0.5, 0.3, 0.2}, 0.0};
    double for_player0 = v[arms.arm()];
    return LeafEvaluation{{1.0}, s.CurrentPlayer() == 0 ? for_player0 : -for_player0};
  });
  ArmsGame game(/*length=*/100);
  MctsOptions options;
  options.simulations = 8;
  options.c_puct = 1.0;
  options.temperature = 1.0;
  SearchResult r = MustSearch(game, *game.NewInitialState(), options, evaluator);

  std::vector<int> arms_walked;
  for (size_t i = 1; i < evaluator.evaluated.size(); ++i) {
    arms_walked.push_back(evaluator.evaluated[i][4] - '0');  // "arm <a> ply <p>"
  }
  EXPECT_EQ(evaluator.evaluated[0], "arm -1 ply 0");
  EXPECT_EQ(arms_walked, (std::vector<int>{0, 1, 1, 1, 1, 2, 2, 1}));
  EXPECT_EQ(r.actions, (std::vector<int>{0, 1, 2}));
  EXPECT_EQ(r.visit_counts, (std::vector<int>{1, 5, 2}));
  EXPECT_EQ(r.prior, (std::vector<double>{0.5, 0.3, 0.2}));
  for (size_t i = 0; i < 3; ++i) EXPECT_DOUBLE_EQ(r.policy[i], r.visit_counts[i] / 8.0);
  // The root's own value 0 and the eight backed-up values: (-0.5 + 5*0.3 + 2*0.2) / 9.
  EXPECT_NEAR(r.root_value, 1.4 / 9, 1e-12);
}

TEST(Mcts, TerminalLeavesUseTheGamesReturnsWithoutEvaluation) {
  // Length 2: arm, then player 1's pass ends the game with returns (1, -1, 0)[arm] for player 0.
  // The root and the three arms are evaluated (value 0, uniform prior); every later walk ends at
  // a terminal state and backs up its return.
  FunctionEvaluator evaluator(UniformZero);
  ArmsGame game(/*length=*/2);
  MctsOptions options;
  options.simulations = 50;
  options.temperature = 0;
  SearchResult r = MustSearch(game, *game.NewInitialState(), options, evaluator);
  EXPECT_EQ(evaluator.evaluated.size(), 4u);
  EXPECT_EQ(r.action, 0);
  EXPECT_EQ(r.policy, (std::vector<double>{1, 0, 0}));
  EXPECT_GT(VisitsOf(r, 0), VisitsOf(r, 2));
  EXPECT_GT(VisitsOf(r, 2), VisitsOf(r, 1));
}

TEST(Mcts, ConnectFourTakesTheWinInOne) {
  // x: bottom row columns 0-2; o: column 6 three high. x to move wins with 3; every other move
  // but 6 lets o win with 6, and 6 wins nothing, so their Q stays <= 0. Once column 3 has been
  // tried its Q is +1; another column gets its (n+1)-th walk only while
  // c_puct * P * sqrt(N) / (1 + n) >= 1 (+ 3's own bonus), i.e. 1 + n <= 2 * (1/7) * sqrt(201)
  // = 4.05: at most 3 walks for each of the six, 18 of 200, so 3 gets at least 182 (90%).
  ConnectFourState s = ConnectFourAfter({0, 6, 1, 6, 2, 6});
  ConnectFourGame game;
  FunctionEvaluator evaluator(UniformZero);
  MctsOptions options;
  options.simulations = 200;
  options.temperature = 0;
  SearchResult r = MustSearch(game, s, options, evaluator);
  EXPECT_EQ(r.action, 3);
  EXPECT_GE(VisitsOf(r, 3), 182) << ::testing::PrintToString(r.visit_counts);
  EXPECT_GT(r.root_value, 0.8);
}

TEST(Mcts, ConnectFourFindsTheForcedWinInThree) {
  // x: bottom row columns 2 and 3; o: column 6 two high. x to move: 1 (or 4) makes three in a
  // row open at both ends (0 and 4, or 1 and 5): o blocks one, x wins at the other. No other
  // move threatens two cells. With uniform priors and terminal returns only, the search must
  // visit every answer of o under 1 (or 4) and find x's win below each before the Q of 1 rises:
  // 7 answers, each needing its own 7 replies tried. 1,000 walks (it leads from about 300 on)
  // leave a margin; 1 and 4 then hold 80% of them.
  ConnectFourState s = ConnectFourAfter({2, 6, 3, 6});
  ConnectFourGame game;
  FunctionEvaluator evaluator(UniformZero);
  MctsOptions options;
  options.simulations = 1000;
  options.temperature = 0;
  SearchResult r = MustSearch(game, s, options, evaluator);
  EXPECT_TRUE(r.action == 1 || r.action == 4) << ::testing::PrintToString(r.visit_counts);
  EXPECT_GE(VisitsOf(r, 1) + VisitsOf(r, 4), 800) << ::testing::PrintToString(r.visit_counts);
  EXPECT_GT(r.root_value, 0.5);
}

TEST(Mcts, TicTacToePlaysTheForkingMove) {
  // x o .
  // . . x
  // . . o      x to move. 3 threatens 6 (column 0-3-6) and 4 (row 3-4-5) at once: o can block
  // one, x wins at the other. No other move wins: 4 threatens only 3 (0-4-8 and 1-4-7 hold an
  // o), 6 only 3, 2 only nothing; the exact solver agrees that 3 is the only winning move.
  TicTacToeState s;
  for (int a : {0, 1, 5, 8}) s.ApplyAction(a);
  ASSERT_EQ(TicTacToeSolver::Get().OptimalActions(s), (std::vector<int>{3}));
  TicTacToeGame game;
  FunctionEvaluator evaluator(UniformZero);
  MctsOptions options;
  options.simulations = 1000;
  options.temperature = 0;
  SearchResult r = MustSearch(game, s, options, evaluator);
  EXPECT_EQ(r.action, 3) << ::testing::PrintToString(r.visit_counts);
  EXPECT_EQ(MostVisited(r), 3);
}

TEST(Mcts, TicTacToeAvoidsTheCornerThatLetsTheOpponentFork) {
  // x . .
  // . o .
  // . . x      o to move. A corner (2 or 6) loses: x takes the other corner and threatens two
  // lines. An edge makes x block o's line through the centre, and x never gets a fork: 1, 3, 5
  // and 7 draw (the exact solver agrees).
  TicTacToeState s;
  for (int a : {0, 4, 8}) s.ApplyAction(a);
  ASSERT_EQ(TicTacToeSolver::Get().OptimalActions(s), (std::vector<int>{1, 3, 5, 7}));
  TicTacToeGame game;
  FunctionEvaluator evaluator(UniformZero);
  MctsOptions options;
  options.simulations = 3000;
  options.temperature = 0;
  SearchResult r = MustSearch(game, s, options, evaluator);
  EXPECT_TRUE(r.action == 1 || r.action == 3 || r.action == 5 || r.action == 7)
      << ::testing::PrintToString(r.visit_counts);
  EXPECT_LT(VisitsOf(r, 2) + VisitsOf(r, 6), 3000 / 10) << ::testing::PrintToString(r.visit_counts);
  // The position is a draw under best play: o's value is near 0 (a search that let o maximise
  // x's value would report o losing).
  EXPECT_NEAR(r.root_value, 0.0, 0.1);
}

TEST(Mcts, TheSecondPlayerTakesItsWinInOne) {
  // x x .
  // o o .
  // . . x      o to move wins with 5 (row 3-4-5); anything else lets x win with 2. Values are
  // o's: the search must choose for the player to move, not for player 0.
  TicTacToeState s;
  for (int a : {0, 3, 1, 4, 8}) s.ApplyAction(a);
  TicTacToeGame game;
  FunctionEvaluator evaluator(UniformZero);
  MctsOptions options;
  options.simulations = 100;
  options.temperature = 0;
  SearchResult r = MustSearch(game, s, options, evaluator);
  EXPECT_EQ(r.action, 5) << ::testing::PrintToString(r.visit_counts);
  EXPECT_GT(r.root_value, 0.8);
}

TEST(VisitDistribution, FollowsTheTemperature) {
  std::vector<int> counts = {1, 3, 6, 0};
  std::vector<double> one = VisitDistribution(counts, 1.0);
  EXPECT_DOUBLE_EQ(one[0], 0.1);
  EXPECT_DOUBLE_EQ(one[1], 0.3);
  EXPECT_DOUBLE_EQ(one[2], 0.6);
  EXPECT_EQ(one[3], 0.0);
  // tau = 0.5 squares the counts: 1, 9, 36 of 46.
  std::vector<double> half = VisitDistribution(counts, 0.5);
  EXPECT_NEAR(half[0], 1.0 / 46, 1e-12);
  EXPECT_NEAR(half[1], 9.0 / 46, 1e-12);
  EXPECT_NEAR(half[2], 36.0 / 46, 1e-12);
  // tau = 2: square roots.
  double roots = 1 + std::sqrt(3.0) + std::sqrt(6.0);
  EXPECT_NEAR(VisitDistribution(counts, 2.0)[1], std::sqrt(3.0) / roots, 1e-12);
  EXPECT_EQ(VisitDistribution(counts, 0.0), (std::vector<double>{0, 0, 1, 0}));
  // A small tau nears the limit without overflow (800^1000 is not a double): (799/800)^1000 =
  // exp(1000 ln(799/800)) = 0.2863 against 1; (400/800)^1000 = 9.3e-302.
  std::vector<double> sharp = VisitDistribution(std::vector<int>{799, 800, 400}, 1e-3);
  double r = std::exp(1000 * std::log(799.0 / 800.0));
  EXPECT_NEAR(sharp[1], 1 / (1 + r), 1e-12);
  EXPECT_NEAR(sharp[0], r / (1 + r), 1e-12);
  EXPECT_LT(sharp[2], 1e-300);
  for (double tau : {0.0, 0.3, 1.0, 4.0}) {
    double sum = 0;
    for (double p : VisitDistribution(std::vector<int>{5, 0, 7, 2, 7}, tau)) sum += p;
    EXPECT_NEAR(sum, 1.0, 1e-12) << tau;
  }
}

TEST(VisitDistribution, TiesAtZeroTemperatureShareTheMass) {
  EXPECT_EQ(VisitDistribution(std::vector<int>{5, 2, 5}, 0.0), (std::vector<double>{0.5, 0, 0.5}));
}

// The search's visit counts at the TicTacToe start with the hashed evaluator (no noise) are the
// same for every seed and move number; the seed only draws the action.
TEST(Mcts, ThePolicyKeepsTheTemperatureAndTheActionTurnsGreedyAtTheDropMove) {
  TicTacToeGame game;
  FunctionEvaluator evaluator(Hashed);
  MctsOptions options;
  options.simulations = 40;
  options.temperature = 0.5;
  options.temperature_drop_move = 3;
  std::unique_ptr<State> start = game.NewInitialState();
  SearchResult before = MustSearch(game, *start, options, evaluator, /*move_number=*/2);
  SearchResult after = MustSearch(game, *start, options, evaluator, /*move_number=*/3);
  EXPECT_FALSE(before.greedy);
  EXPECT_TRUE(after.greedy);
  ASSERT_EQ(before.visit_counts, after.visit_counts);
  // tau = 0.5: pi(a) = N(a)^2 / sum N^2, before and after the drop.
  double squares = 0;
  for (int n : before.visit_counts) squares += n * n;
  for (int a = 0; a < 9; ++a) {
    int n = before.visit_counts[a];
    EXPECT_NEAR(before.policy[a], n * n / squares, 1e-12) << "action " << a;
  }
  EXPECT_EQ(after.policy, before.policy);
  int most = MostVisited(after);
  ASSERT_EQ(
      std::count(after.visit_counts.begin(), after.visit_counts.end(), after.visit_counts[most]),
      1);
  EXPECT_EQ(after.action, most);
  for (int seed = 1; seed <= 50; ++seed) {
    options.seed = seed;
    EXPECT_EQ(MustSearch(game, *start, options, evaluator, /*move_number=*/4).action, most);
  }

  std::vector<int> drawn(9, 0);
  const int kSeeds = 3000;
  for (int seed = 0; seed < kSeeds; ++seed) {
    options.seed = seed;
    SearchResult r = MustSearch(game, *start, options, evaluator, /*move_number=*/0);
    ASSERT_EQ(r.visit_counts, before.visit_counts);
    ++drawn[r.action];
  }
  for (int a = 0; a < 9; ++a) {
    // Binomial standard deviation at most sqrt(3000 / 4) = 27.4: within 4.5 of them.
    EXPECT_NEAR(drawn[a], kSeeds * before.policy[a], 125) << "action " << a;
  }
}

TEST(Mcts, AfterTheDropTiesForTheMostVisitsAreDrawnUniformly) {
  // Uniform prior, values 0, 9 walks at the TicTacToe start: a visited cell's score falls below
  // every unvisited one's, so each cell gets one walk and all nine tie.
  TicTacToeGame game;
  FunctionEvaluator evaluator(UniformZero);
  MctsOptions options;
  options.simulations = 9;
  options.temperature_drop_move = 0;
  std::unique_ptr<State> start = game.NewInitialState();
  std::vector<int> drawn(9, 0);
  const int kSeeds = 1800;
  for (int seed = 0; seed < kSeeds; ++seed) {
    options.seed = seed;
    SearchResult r = MustSearch(game, *start, options, evaluator);
    ASSERT_EQ(r.visit_counts, std::vector<int>(9, 1));
    ++drawn[r.action];
  }
  // 200 expected each, standard deviation sqrt(1800 * (1/9) * (8/9)) = 13.3.
  for (int a = 0; a < 9; ++a) EXPECT_NEAR(drawn[a], 200, 60) << "action " << a;
}

TEST(Mcts, DirichletNoiseChangesTheRootPriorOnlyWhenEnabledAndFollowsTheSeed) {
  ConnectFourGame game;
  ConnectFourState start;
  FunctionEvaluator evaluator(Hashed);
  std::vector<double> p = Hashed(start).prior;
  double sum = 0;
  for (double x : p) sum += x;
  for (double& x : p) x /= sum;

  MctsOptions options;
  options.simulations = 1;
  options.dirichlet_alpha = 0.3;
  options.seed = 7;
  SearchResult plain = MustSearch(game, start, options, evaluator);
  for (size_t i = 0; i < p.size(); ++i) EXPECT_NEAR(plain.prior[i], p[i], 1e-15);

  options.dirichlet_epsilon = 0.25;
  SearchResult noisy = MustSearch(game, start, options, evaluator);
  SearchResult again = MustSearch(game, start, options, evaluator);
  options.seed = 8;
  SearchResult other = MustSearch(game, start, options, evaluator);
  EXPECT_EQ(noisy.prior, again.prior);
  EXPECT_NE(noisy.prior, other.prior);
  EXPECT_NE(noisy.prior, plain.prior);
  double noisy_sum = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    // (1 - eps) P + eps eta with eta in the simplex.
    EXPECT_GE(noisy.prior[i], 0.75 * p[i] - 1e-15);
    EXPECT_LE(noisy.prior[i], 0.75 * p[i] + 0.25 + 1e-15);
    noisy_sum += noisy.prior[i];
  }
  EXPECT_NEAR(noisy_sum, 1.0, 1e-12);
}

TEST(Mcts, RootNoiseIsDirichletOfAlpha) {
  // eta = (prior - (1 - eps) P) / eps. Dirichlet(alpha) over k = 7 components: mean 1/k,
  // variance (1/k)(1 - 1/k) / (k alpha + 1) = 0.0153 for alpha = 0.5.
  ConnectFourGame game;
  ConnectFourState start;
  FunctionEvaluator evaluator(UniformZero);
  MctsOptions options;
  options.simulations = 1;
  options.dirichlet_alpha = 0.5;
  options.dirichlet_epsilon = 0.25;
  const int kSeeds = 4000;
  double mean = 0, square = 0;
  for (int seed = 0; seed < kSeeds; ++seed) {
    options.seed = seed;
    SearchResult r = MustSearch(game, start, options, evaluator);
    double eta = (r.prior[2] - 0.75 / 7) / 0.25;
    mean += eta / kSeeds;
    square += eta * eta / kSeeds;
  }
  const double k = 7, alpha = 0.5;
  double variance = (1 / k) * (1 - 1 / k) / (k * alpha + 1);
  // Standard error of the mean: sqrt(0.0153 / 4000) = 0.002.
  EXPECT_NEAR(mean, 1 / k, 0.008);
  EXPECT_NEAR(square - mean * mean, variance, 0.2 * variance);
}

// Positions from a few random-ish openings of Connect Four.
std::vector<ConnectFourState> SomeConnectFourPositions() {
  return {ConnectFourAfter({}),
          ConnectFourAfter({3}),
          ConnectFourAfter({3, 3, 2}),
          ConnectFourAfter({0, 6, 1, 6, 2, 6}),
          ConnectFourAfter({3, 4, 3, 4, 2}),
          ConnectFourAfter({1, 1, 1, 5, 5, 5, 3})};
}

MctsOptions TrainingOptions(int pending, uint64_t seed) {
  MctsOptions options;
  options.simulations = 60;
  options.dirichlet_alpha = 0.3;
  options.dirichlet_epsilon = 0.25;
  options.temperature = 1.0;
  options.max_pending_leaves = pending;
  options.seed = seed;
  return options;
}

TEST(Mcts, ManySearchesSteppedTogetherEqualEachAlone) {
  ConnectFourGame game;
  std::vector<ConnectFourState> positions = SomeConnectFourPositions();
  for (int pending : {1, 4}) {
    std::vector<MctsSearch> searches;
    for (size_t i = 0; i < positions.size(); ++i) {
      searches.push_back(*MctsSearch::Create(game, positions[i], static_cast<int>(i),
                                             TrainingOptions(pending, 100 + i)));
    }
    std::vector<MctsSearch*> all;
    for (MctsSearch& s : searches) all.push_back(&s);
    FunctionEvaluator together(Hashed);
    ASSERT_TRUE(RunSearches(all, together).ok());
    for (size_t i = 0; i < positions.size(); ++i) {
      FunctionEvaluator alone(Hashed);
      SearchResult a = MustSearch(game, positions[i], TrainingOptions(pending, 100 + i), alone,
                                  static_cast<int>(i));
      absl::StatusOr<SearchResult> t = searches[i].Result();
      ASSERT_TRUE(t.ok()) << t.status();
      EXPECT_EQ(t->visit_counts, a.visit_counts) << "search " << i << " pending " << pending;
      EXPECT_EQ(t->prior, a.prior);
      EXPECT_EQ(t->policy, a.policy);
      EXPECT_EQ(t->action, a.action);
      EXPECT_EQ(t->root_value, a.root_value);
      EXPECT_EQ(searches[i].Result()->action, t->action);  // drawn once
    }
  }
}

TEST(Mcts, EachBatchHoldsTheWaitingLeafOfEveryUnfinishedSearch) {
  // Three searches of 3, 5 and 8 walks from the Connect Four start (no terminal state within
  // reach), one leaf waiting each: the roots, then 3 leaves a round until the first is done
  // after 3 rounds, 2 until the second is after 5, then 1.
  ConnectFourGame game;
  ConnectFourState start;
  std::vector<MctsSearch> searches;
  for (int simulations : {3, 5, 8}) {
    MctsOptions options;
    options.simulations = simulations;
    searches.push_back(*MctsSearch::Create(game, start, 0, options));
  }
  std::vector<MctsSearch*> all = {&searches[0], &searches[1], &searches[2]};
  FunctionEvaluator evaluator(Hashed);
  ASSERT_TRUE(RunSearches(all, evaluator).ok());
  EXPECT_EQ(evaluator.batch_sizes, (std::vector<int>{3, 3, 3, 3, 2, 2, 1, 1, 1}));
  for (MctsSearch* s : all) EXPECT_TRUE(s->done());
}

TEST(Mcts, VirtualLossLetsOneSearchWaitOnSeveralLeaves) {
  // From the Connect Four start with a uniform prior, four waiting walks spread over four
  // different columns: a virtual loss of 1 makes a waiting column look lost, and with values 0
  // and equal priors every sibling beats it, so no walk of a round meets another's leaf. The
  // other seven searches give batches of 7 roots, then 28 leaves a round: 40 walks in 10.
  ConnectFourGame game;
  ConnectFourState start;
  std::vector<MctsSearch> searches;
  for (int i = 0; i < 8; ++i) {
    MctsOptions options;
    options.simulations = 40;
    options.max_pending_leaves = 4;
    options.seed = i;
    searches.push_back(*MctsSearch::Create(game, start, 0, options));
  }
  std::span<const State* const> first = searches[0].NextLeaves();
  ASSERT_EQ(first.size(), 1u);  // the root, alone
  ASSERT_TRUE(searches[0].SetEvaluations(std::vector<LeafEvaluation>{UniformZero(start)}).ok());
  std::span<const State* const> four = searches[0].NextLeaves();
  ASSERT_EQ(four.size(), 4u);
  std::vector<std::string> boards;
  for (const State* s : four)
    boards.push_back(static_cast<const ConnectFourState*>(s)->BoardString());
  EXPECT_EQ(boards[0].substr(35), "x......");
  EXPECT_EQ(boards[1].substr(35), ".x.....");
  EXPECT_EQ(boards[2].substr(35), "..x....");
  EXPECT_EQ(boards[3].substr(35), "...x...");

  std::vector<MctsSearch*> rest;
  for (size_t i = 1; i < searches.size(); ++i) rest.push_back(&searches[i]);
  FunctionEvaluator evaluator(UniformZero);
  ASSERT_TRUE(RunSearches(rest, evaluator).ok());
  std::vector<int> expected = {7};
  for (int round = 0; round < 10; ++round) expected.push_back(28);
  EXPECT_EQ(evaluator.batch_sizes, expected);
}

TEST(Mcts, AWaitingLeafMetAgainEndsTheRound) {
  // Root prior (0.9, 0.05, 0.05), values 0, c_puct 1, two leaves may wait. Walk 1 takes arm 0
  // (0.9 against 0.05). Walk 2 sees N = 2 and arm 0 with one virtual visit: with a virtual loss
  // of 1 its score is -1 + 0.9 * 1.414 / 2 = -0.36 against arm 1's 0.05 * 1.414 = 0.07, so it
  // takes arm 1; with a virtual loss of 0 arm 0 still scores 0.64, the walk meets the waiting
  // leaf and the round ends with one leaf.
  ArmsGame game(/*length=*/100);
  FunctionEvaluator::Rule rule = [](const State& s) {
    if (static_cast<const ArmsState&>(s).plies() == 0) return LeafEvaluation{{0.9, 0.05, 0.05}, 0};
    return UniformZero(s);
  };
  for (double virtual_loss : {1.0, 0.0}) {
    MctsOptions options;
    options.simulations = 10;
    options.c_puct = 1.0;
    options.max_pending_leaves = 2;
    options.virtual_loss = virtual_loss;
    MctsSearch search = *MctsSearch::Create(game, *game.NewInitialState(), 0, options);
    std::span<const State* const> root = search.NextLeaves();
    ASSERT_EQ(root.size(), 1u);
    ASSERT_TRUE(search.SetEvaluations(std::vector<LeafEvaluation>{rule(*root[0])}).ok());
    std::vector<std::string> leaves;
    for (const State* s : search.NextLeaves()) leaves.push_back(s->ToString());
    if (virtual_loss == 1.0) {
      EXPECT_EQ(leaves, (std::vector<std::string>{"arm 0 ply 1", "arm 1 ply 1"}));
    } else {
      EXPECT_EQ(leaves, (std::vector<std::string>{"arm 0 ply 1"}));
    }
  }
}

TEST(Mcts, RefusesChanceGamesOtherPlayerCountsTerminalRootsAndBadOptions) {
  KuhnPokerGame kuhn;
  absl::StatusOr<MctsSearch> s = MctsSearch::Create(kuhn, *kuhn.NewInitialState(), 0, {});
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.status().message().find("chance"), std::string::npos) << s.status();

  ArmsGame three(/*length=*/4, /*players=*/3);
  s = MctsSearch::Create(three, *three.NewInitialState(), 0, {});
  EXPECT_NE(s.status().message().find("3 players"), std::string::npos) << s.status();

  ArmsGame arms(/*length=*/1);
  std::unique_ptr<State> over = arms.NewInitialState();
  over->ApplyAction(0);
  s = MctsSearch::Create(arms, *over, 0, {});
  EXPECT_NE(s.status().message().find("terminal"), std::string::npos) << s.status();

  TicTacToeGame game;
  TicTacToeState start;
  auto refused = [&](std::function<void(MctsOptions&)> change, const std::string& field) {
    MctsOptions options;
    change(options);
    absl::StatusOr<MctsSearch> r = MctsSearch::Create(game, start, 0, options);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << field;
    EXPECT_NE(r.status().message().find(field), std::string::npos) << r.status();
  };
  refused([](MctsOptions& o) { o.simulations = 0; }, "simulations");
  refused([](MctsOptions& o) { o.c_puct = -1; }, "c_puct");
  refused([](MctsOptions& o) { o.dirichlet_epsilon = 1.5; }, "dirichlet_epsilon");
  refused([](MctsOptions& o) { o.dirichlet_epsilon = 0.25, o.dirichlet_alpha = 0; },
          "dirichlet_alpha");
  refused([](MctsOptions& o) { o.temperature = -0.1; }, "temperature");
  refused([](MctsOptions& o) { o.max_pending_leaves = 0; }, "max_pending_leaves");
}

TEST(Mcts, RejectsEvaluationsOutsideTheContractAndPassesEvaluatorErrorsOn) {
  TicTacToeGame game;
  TicTacToeState start;
  MctsOptions options;
  options.simulations = 5;
  auto status_with = [&](FunctionEvaluator::Rule rule) {
    FunctionEvaluator evaluator(std::move(rule));
    return Search(game, start, 0, options, evaluator).status();
  };
  absl::Status short_prior = status_with([](const State&) { return LeafEvaluation{{1, 1}, 0}; });
  EXPECT_EQ(short_prior.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(short_prior.message().find("prior has 2 entries for 9 legal actions"),
            std::string::npos)
      << short_prior;
  absl::Status big_value = status_with([](const State& s) {
    LeafEvaluation e = UniformZero(s);
    e.value = 1.5;
    return e;
  });
  EXPECT_NE(big_value.message().find("value 1.5 is outside [-1, 1]"), std::string::npos)
      << big_value;
  absl::Status negative = status_with([](const State& s) {
    LeafEvaluation e = UniformZero(s);
    e.prior[4] = -0.1;
    return e;
  });
  EXPECT_NE(negative.message().find("prior entry -0.1"), std::string::npos) << negative;

  class Failing : public LeafEvaluator {
    absl::StatusOr<std::vector<LeafEvaluation>> Evaluate(std::span<const State* const>) override {
      return absl::UnavailableError("inference worker stopped");
    }
  } failing;
  EXPECT_EQ(Search(game, start, 0, options, failing).status().code(),
            absl::StatusCode::kUnavailable);

  absl::StatusOr<MctsSearch> search = MctsSearch::Create(game, start, 0, options);
  ASSERT_TRUE(search.ok());
  EXPECT_EQ(search->Result().status().code(), absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace rally
