// PolicyFromJson and InvalidAnswerRateFromJson (common/eval/policy_json.h) on arbitrary JSON, as
// `rally evaluate-policy` reads an exported policy file: a document that reads writes back
// (PolicyToJson) into one that reads to the same table, forfeit masses and invalid-answer rate.
#include <cstddef>
#include <cstdint>
#include <optional>

#include "common/eval/policy_json.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const nlohmann::json document =
      nlohmann::json::parse(rally::fuzz::Bytes(data, size), nullptr, /*allow_exceptions=*/false);
  if (document.is_discarded()) return 0;
  absl::StatusOr<rally::TabularPolicy> policy = rally::PolicyFromJson(document);
  if (!policy.ok()) return 0;
  absl::StatusOr<std::optional<rally::ForfeitRate>> rate =
      rally::InvalidAnswerRateFromJson(document);
  if (!rate.ok()) return 0;
  absl::StatusOr<nlohmann::json> written = rally::PolicyToJson(
      document["game"].get<std::string>(), *policy, rate->has_value() ? &**rate : nullptr);
  FUZZ_CHECK(written.ok());
  absl::StatusOr<rally::TabularPolicy> back = rally::PolicyFromJson(*written);
  FUZZ_CHECK(back.ok());
  FUZZ_CHECK(back->table() == policy->table());
  FUZZ_CHECK(back->forfeits() == policy->forfeits());
  absl::StatusOr<std::optional<rally::ForfeitRate>> rate_back =
      rally::InvalidAnswerRateFromJson(*written);
  FUZZ_CHECK(rate_back.ok() && rate_back->has_value() == rate->has_value());
  if (rate->has_value()) {
    FUZZ_CHECK((*rate_back)->per_decision == (*rate)->per_decision &&
               (*rate_back)->per_game == (*rate)->per_game && (*rate_back)->max == (*rate)->max);
  }
  return 0;
}
