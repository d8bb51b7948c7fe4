// PolicyFromJson (common/eval/policy_json.h) on arbitrary JSON, as `rally evaluate-policy`
// reads an exported policy file: a document that reads writes back (PolicyToJson) into one that
// reads to the same table.
#include <cstddef>
#include <cstdint>

#include "common/eval/policy_json.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const nlohmann::json document =
      nlohmann::json::parse(rally::fuzz::Bytes(data, size), nullptr, /*allow_exceptions=*/false);
  if (document.is_discarded()) return 0;
  absl::StatusOr<rally::TabularPolicy> policy = rally::PolicyFromJson(document);
  if (!policy.ok()) return 0;
  absl::StatusOr<nlohmann::json> written =
      rally::PolicyToJson(document["game"].get<std::string>(), *policy);
  FUZZ_CHECK(written.ok());
  absl::StatusOr<rally::TabularPolicy> back = rally::PolicyFromJson(*written);
  FUZZ_CHECK(back.ok());
  FUZZ_CHECK(back->table() == policy->table());
  return 0;
}
