// The policy export format, written by `rally export-policy` and read back for exact evaluation:
//   {"game": NAME,
//    "policy": {KEY: {ACTION: PROB, ..., "invalid": Q}},
//    "invalid_answer_rate": {"per_decision": R, "per_game": R, "max": R}}
// KEY and ACTION in the game's classic notation (games/policy_notation.h). "invalid" is the
// entry's forfeit probability (TabularPolicy::Forfeit: a language model's invalid-answer mass,
// common/lm/lm_policy.h), written only where it is not 0 and read as 0 where absent;
// "invalid_answer_rate" (exploitability.h's ForfeitRate) is written only when given. A document
// without either reads as one of a policy that never forfeits.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "common/eval/exploitability.h"
#include "common/eval/policy.h"

namespace rally {

// The JSON of `policy`, whose keys must be the classic keys of `game_name`, with
// "invalid_answer_rate" when `invalid_answer_rate` is given. INVALID_ARGUMENT for a game without a
// notation.
absl::StatusOr<nlohmann::json> PolicyToJson(const std::string& game_name,
                                            const TabularPolicy& policy,
                                            const ForfeitRate* invalid_answer_rate = nullptr);

// A TabularPolicy keyed by the classic notation of the document's game. INVALID_ARGUMENT naming
// the entry for a malformed document, an unknown action name, a negative probability or an
// "invalid" mass outside [0, 1].
absl::StatusOr<TabularPolicy> PolicyFromJson(const nlohmann::json& document);

// The document's "invalid_answer_rate" (max_key left empty), or nullopt when it has none.
// INVALID_ARGUMENT naming the field unless each of its three fields is a number in [0, 1].
absl::StatusOr<std::optional<ForfeitRate>> InvalidAnswerRateFromJson(
    const nlohmann::json& document);

}  // namespace rally
