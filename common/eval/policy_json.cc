#include "common/eval/policy_json.h"

#include "absl/strings/str_cat.h"
#include "common/games/policy_notation.h"

namespace rally {
namespace {

constexpr char kInvalidName[] = "invalid";
constexpr char kInvalidAnswerRate[] = "invalid_answer_rate";

bool IsProbability(const nlohmann::json& value) {
  return value.is_number() && value.get<double>() >= 0 && value.get<double>() <= 1;
}

// One entry {ACTION: PROB, ..., "invalid": Q} of the document, set into `policy`.
absl::Status ReadEntry(const PolicyNotation& notation, const std::string& key,
                       const nlohmann::json& entry, TabularPolicy& policy) {
  if (!entry.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat("policy entry '", key, "' is not an object"));
  }
  ActionsAndProbs probs;
  double forfeit = 0;
  for (const auto& [name, probability] : entry.items()) {
    if (name == kInvalidName) {
      if (!IsProbability(probability)) {
        return absl::InvalidArgumentError(
            absl::StrCat("policy entry '", key, "': \"invalid\" needs a mass in [0, 1]"));
      }
      forfeit = probability.get<double>();
      continue;
    }
    int action = notation.action_from_name(name);
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
  policy.Set(key, std::move(probs), forfeit);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<nlohmann::json> PolicyToJson(const std::string& game_name,
                                            const TabularPolicy& policy,
                                            const ForfeitRate* invalid_answer_rate) {
  absl::StatusOr<PolicyNotation> notation = GetPolicyNotation(game_name);
  if (!notation.ok()) return notation.status();
  nlohmann::json table = nlohmann::json::object();
  for (const auto& [key, probs] : policy.table()) {
    nlohmann::json entry = nlohmann::json::object();
    for (const auto& [action, probability] : probs) {
      entry[notation->action_name(action)] = probability;
    }
    if (double forfeit = policy.Forfeit(key); forfeit != 0) entry[kInvalidName] = forfeit;
    table[key] = std::move(entry);
  }
  nlohmann::json document = {{"game", game_name}, {"policy", std::move(table)}};
  if (invalid_answer_rate != nullptr) {
    document[kInvalidAnswerRate] = {{"per_decision", invalid_answer_rate->per_decision},
                                    {"per_game", invalid_answer_rate->per_game},
                                    {"max", invalid_answer_rate->max}};
  }
  return document;
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
    if (absl::Status s = ReadEntry(*notation, key, entry, policy); !s.ok()) return s;
  }
  return policy;
}

absl::StatusOr<std::optional<ForfeitRate>> InvalidAnswerRateFromJson(
    const nlohmann::json& document) {
  if (!document.is_object() || !document.contains(kInvalidAnswerRate)) return std::nullopt;
  const nlohmann::json& rate = document[kInvalidAnswerRate];
  ForfeitRate read;
  for (auto [name, field] : {std::pair{"per_decision", &read.per_decision},
                             std::pair{"per_game", &read.per_game}, std::pair{"max", &read.max}}) {
    if (!rate.is_object() || !rate.contains(name) || !IsProbability(rate[name])) {
      return absl::InvalidArgumentError(
          absl::StrCat(kInvalidAnswerRate, ".", name, " needs a number in [0, 1]"));
    }
    *field = rate[name].get<double>();
  }
  return read;
}

}  // namespace rally
