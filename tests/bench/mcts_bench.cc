// mcts_bench: what the tree search itself costs (common/search/mcts.h), no network.
//
//   mcts_bench [--game tictactoe|connect_four] [--simulations S] [--seconds T] [--json FILE]
//
// N games are played at once on one thread, as a search actor would play them: each move is a
// search of S simulations (walks from the root), and every round the waiting leaves of all N
// searches go to the evaluator in one call. The evaluator is trivial (uniform prior, value 0), so
// the figures are the search's own work: cloning the root and replaying each walk, PUCT
// selection, expansion and backup, starting the next move's search, and gathering the batch. A
// network's forward pass over the batch comes on top of this. For each N (1, 16, 64, 256) and
// each number of leaves one search may have waiting (1, and 4 with virtual loss) it reports
// simulations per second (wall clock, one thread), moves per second, and the mean batch the
// evaluator received. Each row runs for T seconds after one warm-up second.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/games/registry.h"
#include "common/search/mcts.h"
#include "tests/bench/bench_util.h"

using namespace rally;
using Clock = std::chrono::steady_clock;

namespace {

class UniformZeroEvaluator : public LeafEvaluator {
 public:
  absl::StatusOr<std::vector<LeafEvaluation>> Evaluate(
      std::span<const State* const> states) override {
    ++calls;
    leaves += static_cast<int64_t>(states.size());
    std::vector<LeafEvaluation> out(states.size());
    for (size_t i = 0; i < states.size(); ++i) {
      out[i].prior.assign(states[i]->LegalActions().size(), 1.0);
    }
    return out;
  }
  int64_t calls = 0;
  int64_t leaves = 0;
};

// N games played move after move, one search per move, all searches stepped together.
class SearchPool {
 public:
  SearchPool(const Game& game, int games, const MctsOptions& options)
      : game_(game), options_(options), slots_(games) {
    for (Slot& slot : slots_) slot.state = game_.NewInitialState();
  }

  // One round: every game's waiting leaves in one evaluator call, then each finished search's
  // move played (and a finished game restarted).
  void Round(UniformZeroEvaluator& evaluator) {
    std::vector<const State*> batch;
    std::vector<size_t> counts;
    for (Slot& slot : slots_) {
      if (!slot.search) Start(slot);
      std::span<const State* const> leaves = slot.search->NextLeaves();
      counts.push_back(leaves.size());
      batch.insert(batch.end(), leaves.begin(), leaves.end());
    }
    std::vector<LeafEvaluation> evaluations = *evaluator.Evaluate(batch);
    std::span<const LeafEvaluation> rest(evaluations);
    for (size_t i = 0; i < slots_.size(); ++i) {
      Slot& slot = slots_[i];
      Check(slot.search->SetEvaluations(rest.first(counts[i])));
      rest = rest.subspan(counts[i]);
      if (slot.search->done()) Finish(slot);
    }
  }

  int64_t moves = 0;

 private:
  struct Slot {
    std::unique_ptr<State> state;
    int move_number = 0;
    std::optional<MctsSearch> search;
  };

  static void Check(const absl::Status& s) {
    if (!s.ok()) {
      std::fprintf(stderr, "mcts_bench: %s\n", s.ToString().c_str());
      std::exit(1);
    }
  }

  void Start(Slot& slot) {
    MctsOptions options = options_;
    options.seed = options_.seed + static_cast<uint64_t>(moves);
    absl::StatusOr<MctsSearch> search =
        MctsSearch::Create(game_, *slot.state, slot.move_number, options);
    Check(search.status());
    slot.search.emplace(std::move(*search));
  }

  void Finish(Slot& slot) {
    absl::StatusOr<SearchResult> result = slot.search->Result();
    Check(result.status());
    slot.search.reset();
    slot.state->ApplyAction(result->action);
    ++slot.move_number;
    ++moves;
    if (slot.state->IsTerminal()) {
      slot.state = game_.NewInitialState();
      slot.move_number = 0;
    }
  }

  const Game& game_;
  MctsOptions options_;
  std::vector<Slot> slots_;
};

struct Row {
  int games = 0;
  int pending = 0;
  double simulations_per_second = 0;
  double moves_per_second = 0;
  double mean_batch = 0;
};

Row Measure(const Game& game, int games, int pending, int simulations, double seconds) {
  MctsOptions options;
  options.simulations = simulations;
  options.dirichlet_epsilon = 0.25;
  options.dirichlet_alpha = 1.0;
  options.temperature = 1.0;
  options.max_pending_leaves = pending;
  SearchPool pool(game, games, options);
  UniformZeroEvaluator evaluator;
  Clock::time_point warm_end = Clock::now() + std::chrono::seconds(1);
  while (Clock::now() < warm_end) pool.Round(evaluator);
  int64_t moves0 = pool.moves, calls0 = evaluator.calls, leaves0 = evaluator.leaves;
  Clock::time_point start = Clock::now();
  double elapsed = 0;
  while (elapsed < seconds) {
    pool.Round(evaluator);
    elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  }
  Row row{games, pending};
  double moves = static_cast<double>(pool.moves - moves0);
  row.moves_per_second = moves / elapsed;
  row.simulations_per_second = moves * simulations / elapsed;
  row.mean_batch = static_cast<double>(evaluator.leaves - leaves0) /
                   static_cast<double>(std::max<int64_t>(1, evaluator.calls - calls0));
  return row;
}

std::string Flag(int argc, char** argv, const std::string& name, const std::string& fallback) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (argv[i] == name) return argv[i + 1];
  }
  return fallback;
}

}  // namespace

int main(int argc, char** argv) {
  std::string game_name = Flag(argc, argv, "--game", "tictactoe");
  int simulations = std::atoi(Flag(argc, argv, "--simulations", "100").c_str());
  double seconds = std::atof(Flag(argc, argv, "--seconds", "2").c_str());
  absl::StatusOr<std::shared_ptr<const Game>> game = LoadGame(game_name);
  if (!game.ok()) {
    std::fprintf(stderr, "mcts_bench: %s\n", game.status().ToString().c_str());
    return 1;
  }
  std::printf("%s, %d simulations a move, trivial evaluator, one thread\n", game_name.c_str(),
              simulations);
  std::printf("%6s %8s %14s %10s %11s\n", "games", "pending", "simulations/s", "moves/s",
              "mean batch");
  nlohmann::json rows = nlohmann::json::array();
  for (int games : {1, 16, 64, 256}) {
    for (int pending : {1, 4}) {
      Row r = Measure(**game, games, pending, simulations, seconds);
      std::printf("%6d %8d %14.0f %10.1f %11.1f\n", r.games, r.pending, r.simulations_per_second,
                  r.moves_per_second, r.mean_batch);
      rows.push_back({{"games", r.games},
                      {"max_pending_leaves", r.pending},
                      {"simulations_per_second", r.simulations_per_second},
                      {"moves_per_second", r.moves_per_second},
                      {"mean_batch", r.mean_batch}});
    }
  }
  std::string json = bench::JsonPath(argc, argv);
  if (!json.empty()) {
    bench::WriteJson(json, {{"game", game_name}, {"simulations", simulations}, {"rows", rows}});
  }
  return 0;
}
