// ParseJobConfig (common/config/job_config.h) on arbitrary YAML: an error or a config, never a
// crash or an exception; a spec that parses parses the same way again.
#include <cstddef>
#include <cstdint>
#include <string>

#include "common/config/job_config.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string yaml(rally::fuzz::Bytes(data, size));
  absl::StatusOr<rally::JobConfig> config = rally::ParseJobConfig(yaml, "fuzz.yaml");
  if (config.ok()) {
    absl::StatusOr<rally::JobConfig> again = rally::ParseJobConfig(yaml, "fuzz.yaml");
    FUZZ_CHECK(again.ok() && again->name == config->name && again->seed == config->seed);
  }
  return 0;
}
