// The policy export format: {"game": NAME, "policy": {KEY: {ACTION: PROB}}}, KEY and ACTION in the
// game's classic notation (games/policy_notation.h). Written by `rally export-policy`, read back
// for exact evaluation.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "absl/status/statusor.h"
#include "common/eval/policy.h"

namespace rally {

// The JSON of `policy`, whose keys must be the classic keys of `game_name`. INVALID_ARGUMENT for a
// game without a notation.
absl::StatusOr<nlohmann::json> PolicyToJson(const std::string& game_name,
                                            const TabularPolicy& policy);

// A TabularPolicy keyed by the classic notation of the document's game. INVALID_ARGUMENT naming
// the entry for a malformed document, an unknown action name or a negative probability.
absl::StatusOr<TabularPolicy> PolicyFromJson(const nlohmann::json& document);

}  // namespace rally
