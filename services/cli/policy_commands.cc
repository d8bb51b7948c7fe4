#include "services/cli/policy_commands.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "common/eval/exploitability.h"
#include "common/eval/game_tree.h"
#include "common/eval/policy_json.h"
#include "common/games/policy_notation.h"
#include "common/games/registry.h"
#include "common/models/policy_net.h"

namespace rally {
namespace {

namespace fs = std::filesystem;

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

}  // namespace

absl::StatusOr<std::string> ResolveCheckpoint(const std::string& path) {
  fs::path p(path);
  if (fs::exists(p / "manifest.json")) return p.string();
  for (const fs::path& dir : {p / "checkpoints", p}) {
    if (fs::exists(dir / "latest")) {
      fs::path cp = dir / Trim(ReadFile(dir / "latest"));
      if (fs::exists(cp / "manifest.json")) return cp.string();
    }
  }
  return absl::NotFoundError(
      absl::StrCat(path,
                   ": no checkpoint here (expected a run's work directory, a checkpoints directory "
                   "with a 'latest' file, or a step-N directory with manifest.json)"));
}

absl::StatusOr<nlohmann::json> ExportPolicy(const std::string& checkpoint_path) {
  auto dir = ResolveCheckpoint(checkpoint_path);
  if (!dir.ok()) return dir.status();
  auto manifest = nlohmann::json::parse(ReadFile(fs::path(*dir) / "manifest.json"), nullptr, false);
  if (!manifest.is_object() || !manifest.contains("game") || !manifest.contains("hidden")) {
    return absl::InvalidArgumentError(
        absl::StrCat(*dir, "/manifest.json: missing game or model shape"));
  }
  const std::string game_name = manifest["game"].get<std::string>();
  auto game = LoadGame(game_name);
  if (!game.ok()) return game.status();
  auto notation = GetPolicyNotation(game_name);
  if (!notation.ok()) return notation.status();
  const int obs = (*game)->ObservationSize();
  const int actions = (*game)->NumDistinctActions();
  PolicyNet net(obs, manifest["hidden"].get<std::vector<int>>(), actions);
  auto weights = DecodeSafetensors(ReadFile(fs::path(*dir) / "weights.safetensors"));
  if (!weights.ok()) return weights.status();
  if (auto s = ImportParameters(net, weights->tensors); !s.ok()) return s;
  net->eval();

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

absl::StatusOr<nlohmann::json> EvaluatePolicy(const nlohmann::json& exported) {
  auto policy = PolicyFromJson(exported);
  if (!policy.ok()) return policy.status();
  const std::string game_name = exported.value("game", "");
  auto game = LoadGame(game_name);
  if (!game.ok()) return game.status();
  auto tree = GameTree::Build(**game);
  if (!tree.ok()) return tree.status();
  nlohmann::json out = {{"game", game_name}, {"information_states", policy->table().size()}};
  auto worst = WorstCaseReturns(*tree, *policy);
  if (!worst.ok()) return worst.status();
  out["worst_case_returns"] = *worst;
  auto nash_conv = NashConv(*tree, *policy);
  if (!nash_conv.ok()) return nash_conv.status();
  out["nash_conv"] = *nash_conv;
  out["exploitability"] = *nash_conv / 2;
  return out;
}

}  // namespace rally
