#include "services/cli/policy_commands.h"

#include <filesystem>
#include <iostream>
#include <random>

#include "absl/algorithm/container.h"
#include "absl/strings/str_cat.h"
#include "common/checkpoint/checkpoint_dir.h"
#include "common/eval/exploitability.h"
#include "common/eval/game_tree.h"
#include "common/eval/network_evaluation.h"
#include "common/eval/opponents.h"
#include "common/eval/policy_json.h"
#include "common/games/policy_notation.h"
#include "common/games/registry.h"
#include "common/lm/lm_checkpoint.h"
#include "common/lm/lm_policy.h"
#include "common/models/network_policy.h"
#include "common/models/policy_net.h"
#include "common/models/safetensors.h"
#include "common/util/durable_file.h"
#include "services/cli/lm_commands.h"

namespace rally {
namespace {

namespace fs = std::filesystem;

struct LoadedPolicy {
  std::string dir;  // the checkpoint directory
  std::string game_name;
  std::shared_ptr<const Game> game;
  std::vector<int> hidden;
  int64_t policy_version = 0;
  std::string job_id;   // the job that trained it
  std::string weights;  // weights.safetensors as stored
  PolicyNet net{nullptr};
};

// The game a checkpoint manifest names ("game", "game_params"); DATA_LOSS naming the field of
// `where` (the manifest's path) for a damaged one.
absl::StatusOr<std::shared_ptr<const Game>> ManifestGame(const nlohmann::json& manifest,
                                                         const std::string& where) {
  if (!manifest.contains("game") || !manifest["game"].is_string()) {
    return absl::DataLossError(absl::StrCat(where, ": game: not a string"));
  }
  if (manifest.contains("game_params") && !manifest["game_params"].is_object()) {
    return absl::DataLossError(absl::StrCat(where, ": game_params: not an object"));
  }
  GameParameters params;
  try {
    params = manifest.value("game_params", GameParameters{});
  } catch (const nlohmann::json::exception& e) {
    return absl::DataLossError(absl::StrCat(where, ": game_params: ", e.what()));
  }
  return LoadGame(manifest["game"].get<std::string>(), params);
}

// The game and network of the checkpoint `path` names.
absl::StatusOr<LoadedPolicy> LoadPolicy(const std::string& path) {
  auto dir = ResolveCheckpoint(path);
  if (!dir.ok()) return dir.status();
  absl::StatusOr<nlohmann::json> read = ReadCheckpointManifestJson(*dir);
  if (!read.ok()) return read.status();
  nlohmann::json& manifest = *read;
  if (!manifest.contains("game") || !manifest.contains("hidden")) {
    return absl::InvalidArgumentError(
        absl::StrCat(*dir, "/manifest.json: missing game or model shape"));
  }
  // A damaged manifest is an error naming the field, never an exception or an overflow.
  const std::string where = absl::StrCat(*dir, "/manifest.json: ");
  const nlohmann::json& hidden = manifest["hidden"];
  const bool hidden_ok =
      hidden.is_array() && absl::c_all_of(hidden, [](const nlohmann::json& h) {
        return h.is_number_integer() && h.get<int64_t>() >= 1 && h.get<int64_t>() <= (1 << 20);
      });
  if (!hidden_ok) {
    return absl::DataLossError(where + "hidden: not a list of layer widths from 1 to 2^20");
  }
  for (const char* field : {"policy_version", "learner_step"}) {
    if (manifest.contains(field) && !manifest[field].is_number_integer()) {
      return absl::DataLossError(absl::StrCat(where, field, ": not an integer"));
    }
  }
  if (manifest.contains("job_id") && !manifest["job_id"].is_string()) {
    return absl::DataLossError(where + "job_id: not a string");
  }
  LoadedPolicy p;
  p.dir = *dir;
  auto game = ManifestGame(manifest, *dir + "/manifest.json");
  if (!game.ok()) return game.status();
  p.game_name = manifest["game"].get<std::string>();
  p.game = *game;
  p.hidden = hidden.get<std::vector<int>>();
  p.policy_version = manifest.value("policy_version", int64_t{0});
  p.job_id = manifest.value("job_id", "");
  p.net = PolicyNet(p.game->ObservationSize(), p.hidden, p.game->NumDistinctActions());
  const fs::path weights_path = fs::path(*dir) / "weights.safetensors";
  absl::StatusOr<std::string> weights_bytes = ReadFileBytes(weights_path);
  if (!weights_bytes.ok()) return absl::DataLossError(weights_bytes.status().message());
  p.weights = std::move(*weights_bytes);
  if (auto s =
          VerifyFileChecksum(manifest, "weights.safetensors", p.weights, weights_path.string());
      !s.ok()) {
    return s;
  }
  auto weights = DecodeSafetensors(p.weights);
  if (!weights.ok()) return weights.status();
  if (auto s = ImportParameters(p.net, weights->tensors); !s.ok()) return s;
  p.net->eval();
  return p;
}

// The policy's probabilities at every information state of its game (ExportPolicy's document).
absl::StatusOr<nlohmann::json> ExportLoaded(LoadedPolicy& loaded) {
  const std::string& game_name = loaded.game_name;
  const std::shared_ptr<const Game>* game = &loaded.game;
  PolicyNet& net = loaded.net;
  auto notation = GetPolicyNotation(game_name);
  if (!notation.ok()) return notation.status();
  const int obs = (*game)->ObservationSize();
  const int actions = (*game)->NumDistinctActions();

  auto states = CollectInformationStates(**game, notation->key);
  if (!states.ok()) return states.status();
  const int64_t n = static_cast<int64_t>(states->size());
  torch::Tensor x = torch::zeros({n, obs});
  torch::Tensor mask = torch::zeros({n, actions}, torch::kBool);
  for (int64_t i = 0; i < n; ++i) {
    const InformationStateEntry& e = (*states)[i];
    e.state->ObservationTensor(e.player, std::span<float>(x[i].data_ptr<float>(), obs));
    for (int a : e.actions) mask[i][a] = true;
  }
  torch::Tensor probs;
  {
    torch::NoGradGuard no_grad;
    probs = MaskedLogSoftmax(net->forward(x), mask).exp().contiguous();
  }
  const float* p = probs.data_ptr<float>();
  TabularPolicy policy(notation->key);
  for (int64_t i = 0; i < n; ++i) {
    ActionsAndProbs row;
    for (int a : (*states)[i].actions) row.emplace_back(a, p[i * actions + a]);
    policy.Set((*states)[i].key, std::move(row));
  }
  return PolicyToJson(game_name, policy);
}

// A checkpoint's exported policy and where it came from.
struct ExportedCheckpoint {
  nlohmann::json document;
  std::string dir;
  int64_t policy_version = 0;
  std::string job_id;
};

// ExportPolicy of either kind of checkpoint, by the manifest's "policy_kind".
absl::StatusOr<ExportedCheckpoint> ExportCheckpoint(const std::string& checkpoint_path) {
  absl::StatusOr<std::string> dir = ResolveCheckpoint(checkpoint_path);
  if (!dir.ok()) return dir.status();
  absl::StatusOr<nlohmann::json> manifest = ReadCheckpointManifestJson(*dir);
  if (!manifest.ok()) return manifest.status();
  if (manifest->value("policy_kind", "") != kTransformerPolicyKind) {
    auto loaded = LoadPolicy(*dir);
    if (!loaded.ok()) return loaded.status();
    auto exported = ExportLoaded(*loaded);
    if (!exported.ok()) return exported.status();
    return ExportedCheckpoint{*std::move(exported), loaded->dir, loaded->policy_version,
                              loaded->job_id};
  }
  absl::StatusOr<LmCheckpoint> checkpoint = ReadLmCheckpoint(*dir);
  if (!checkpoint.ok()) return checkpoint.status();
  auto game = ManifestGame(checkpoint->manifest, *dir + "/manifest.json");
  if (!game.ok()) return game.status();
  absl::StatusOr<nlohmann::json> exported = ExportLmPolicy(*checkpoint, **game);
  if (!exported.ok()) return exported.status();
  const nlohmann::json& job_id = checkpoint->manifest.value("job_id", nlohmann::json());
  return ExportedCheckpoint{*std::move(exported), *dir, checkpoint->policy_version,
                            job_id.is_string() ? job_id.get<std::string>() : ""};
}

}  // namespace

absl::StatusOr<nlohmann::json> ExportPolicy(const std::string& checkpoint_path) {
  absl::StatusOr<ExportedCheckpoint> exported = ExportCheckpoint(checkpoint_path);
  if (!exported.ok()) return exported.status();
  return std::move(exported->document);
}

absl::StatusOr<nlohmann::json> EvaluateCheckpointExactly(const std::string& checkpoint_path) {
  absl::StatusOr<ExportedCheckpoint> exported = ExportCheckpoint(checkpoint_path);
  if (!exported.ok()) return exported.status();
  auto figures = EvaluatePolicy(exported->document);
  if (!figures.ok()) return figures.status();
  (*figures)["checkpoint"] = exported->dir;
  (*figures)["policy_version"] = exported->policy_version;
  (*figures)["job_id"] = exported->job_id;
  return figures;
}

absl::StatusOr<nlohmann::json> EvaluateCheckpoint(const std::string& checkpoint_path,
                                                  const std::string& opponent, int games,
                                                  bool greedy, uint64_t seed) {
  if (games < 1) return absl::InvalidArgumentError("--games must be at least 1");
  absl::StatusOr<std::string> dir = ResolveCheckpoint(checkpoint_path);
  if (!dir.ok()) return dir.status();
  absl::StatusOr<nlohmann::json> manifest = ReadCheckpointManifestJson(*dir);
  if (!manifest.ok()) return manifest.status();
  if (manifest->value("policy_kind", "") == kTransformerPolicyKind) {
    return absl::UnimplementedError(
        absl::StrCat(*dir,
                     " holds a language-model policy: evaluate-checkpoint plays MLP policies only; "
                     "use export-policy and evaluate-policy for its exact figures"));
  }
  auto loaded = LoadPolicy(*dir);
  if (!loaded.ok()) return loaded.status();
  const Game& game = *loaded->game;
  auto agent = MakeOpponent(opponent, game);
  if (!agent.ok()) return agent.status();
  auto policy =
      NetworkPolicy::FromWeights(game.ObservationSize(), loaded->hidden, game.NumDistinctActions(),
                                 loaded->policy_version, loaded->weights);
  if (!policy.ok()) return policy.status();
  std::mt19937_64 rng(seed);
  v1::EvalResult r = Evaluate(game, **policy, **agent, games, greedy, rng);
  return nlohmann::json{{"game", loaded->game_name},
                        {"checkpoint", loaded->dir},
                        {"policy_version", r.policy_version()},
                        {"opponent", r.opponent()},
                        {"games", r.games()},
                        {"greedy", greedy},
                        {"seed", seed},
                        {"wins", r.wins()},
                        {"draws", r.draws()},
                        {"losses", r.losses()},
                        {"win_rate", static_cast<double>(r.wins()) / r.games()}};
}

absl::StatusOr<nlohmann::json> EvaluatePolicy(const nlohmann::json& exported) {
  auto policy = PolicyFromJson(exported);
  if (!policy.ok()) return policy.status();
  const std::string game_name = exported.value("game", "");
  auto game = LoadGame(game_name);
  if (!game.ok()) return game.status();
  auto tree = GameTree::Build(**game);
  if (!tree.ok()) return tree.status();
  const Policy* one[] = {&*policy};
  absl::StatusOr<TreePolicyTable> table = MakeTreePolicyTable(*tree, one);
  if (!table.ok()) return table.status();
  nlohmann::json out = {{"game", game_name}, {"information_states", policy->table().size()}};
  auto worst = WorstCaseReturns(*tree, *table);
  if (!worst.ok()) return worst.status();
  out["worst_case_returns"] = *worst;
  auto nash_conv = NashConv(*tree, *table);
  if (!nash_conv.ok()) return nash_conv.status();
  out["nash_conv"] = *nash_conv;
  out["exploitability"] = *nash_conv / 2;
  if (!policy->forfeits().empty()) {
    auto rate = ComputeForfeitRate(*tree, *table);
    if (!rate.ok()) return rate.status();
    out["invalid_answer_rate"] = {
        {"per_decision", rate->per_decision}, {"per_game", rate->per_game}, {"max", rate->max}};
  }
  return out;
}

absl::StatusOr<double> Play(const std::string& checkpoint_path, int games, int first_seat,
                            bool greedy, uint64_t seed, std::istream& in, std::ostream& out) {
  absl::StatusOr<std::string> dir = ResolveCheckpoint(checkpoint_path);
  if (!dir.ok()) return dir.status();
  absl::StatusOr<nlohmann::json> manifest = ReadCheckpointManifestJson(*dir);
  if (!manifest.ok()) return manifest.status();
  if (manifest->value("policy_kind", "") == kTransformerPolicyKind) {
    return PlayLanguageModel(*dir, games, first_seat, greedy, seed, in, out);
  }
  auto loaded = LoadPolicy(checkpoint_path);
  if (!loaded.ok()) return loaded.status();
  const Game& game = *loaded->game;
  const int obs = game.ObservationSize();
  const int actions = game.NumDistinctActions();
  std::mt19937_64 rng(seed);
  double total = 0;
  for (int g = 0; g < games; ++g) {
    const int human = (first_seat + g) % game.NumPlayers();
    out << "\n=== game " << g + 1 << " of " << games << ": you are player " << human << " ===\n";
    std::unique_ptr<State> s = game.NewInitialState();
    while (!s->IsTerminal()) {
      if (s->IsChanceNode()) {
        s->ApplyAction(SampleChanceOutcome(*s, rng));
        continue;
      }
      const int player = s->CurrentPlayer();
      std::vector<int> legal = s->LegalActions();
      if (player == human) {
        out << s->ObservationString(human) << "\nyour move:";
        for (int a : legal) out << " [" << a << "] " << s->ActionToString(player, a);
        out << "\n> " << std::flush;
        int chosen = -1;
        std::string line;
        while (chosen < 0) {
          if (!std::getline(in, line)) return absl::CancelledError("input ended");
          while (!line.empty() && (line.back() == ' ' || line.back() == '\r')) line.pop_back();
          for (int a : legal) {
            if (line == std::to_string(a) || line == s->ActionToString(player, a)) chosen = a;
          }
          if (chosen < 0) out << "not a legal move here; type a number or a name from the list\n> ";
        }
        s->ApplyAction(chosen);
        continue;
      }
      torch::Tensor x = torch::zeros({1, obs});
      torch::Tensor mask = torch::zeros({1, actions}, torch::kBool);
      s->ObservationTensor(player, std::span<float>(x.data_ptr<float>(), obs));
      for (int a : legal) mask[0][a] = true;
      torch::Tensor probs;
      {
        torch::NoGradGuard no_grad;
        probs = MaskedLogSoftmax(loaded->net->forward(x), mask).exp().contiguous();
      }
      const float* p = probs.data_ptr<float>();
      int action = legal.front();
      if (greedy) {
        for (int a : legal) action = p[a] > p[action] ? a : action;
      } else {
        std::vector<double> w;
        for (int a : legal) w.push_back(p[a]);
        action = legal[std::discrete_distribution<int>(w.begin(), w.end())(rng)];
      }
      out << "policy (player " << player << ") plays " << s->ActionToString(player, action) << "\n";
      s->ApplyAction(action);
    }
    double r = s->Returns()[human];
    total += r;
    out << s->ToString() << "\nresult for you: " << r << "\n";
  }
  out << "\ntotal over " << games << " game(s): " << total << "\n";
  return total;
}

}  // namespace rally
