#include "common/eval/policy_json.h"

#include "absl/strings/str_cat.h"
#include "common/games/policy_notation.h"

namespace rally {

absl::StatusOr<nlohmann::json> PolicyToJson(const std::string& game_name,
                                            const TabularPolicy& policy) {
  absl::StatusOr<PolicyNotation> notation = GetPolicyNotation(game_name);
  if (!notation.ok()) return notation.status();
  nlohmann::json table = nlohmann::json::object();
  for (const auto& [key, probs] : policy.table()) {
    nlohmann::json entry = nlohmann::json::object();
    for (const auto& [action, probability] : probs) {
      entry[notation->action_name(action)] = probability;
    }
    table[key] = std::move(entry);
  }
  return nlohmann::json{{"game", game_name}, {"policy", std::move(table)}};
}

absl::StatusOr<TabularPolicy> PolicyFromJson(const nlohmann::json& document) {
  if (!document.is_object() || !document.contains("game") || !document["game"].is_string() ||
      !document.contains("policy") || !document["policy"].is_object()) {
    return absl::InvalidArgumentError(
        "a policy document is {\"game\": NAME, \"policy\": {KEY: {ACTION: PROB}}}");
  }
  std::string game = document["game"].get<std::string>();
  absl::StatusOr<PolicyNotation> notation = GetPolicyNotation(game);
  if (!notation.ok()) return notation.status();
  TabularPolicy policy(notation->key);
  for (const auto& [key, entry] : document["policy"].items()) {
    if (!entry.is_object()) {
      return absl::InvalidArgumentError(absl::StrCat("policy entry '", key, "' is not an object"));
    }
    ActionsAndProbs probs;
    for (const auto& [name, probability] : entry.items()) {
      int action = notation->action_from_name(name);
      if (action < 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("policy entry '", key, "' names unknown action '", name, "'"));
      }
      if (!probability.is_number() || probability.get<double>() < 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("policy entry '", key, "' action '", name, "' needs a probability >= 0"));
      }
      probs.emplace_back(action, probability.get<double>());
    }
    policy.Set(key, std::move(probs));
  }
  return policy;
}

}  // namespace rally
