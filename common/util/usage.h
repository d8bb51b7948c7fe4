// `--help` for rally's binaries: lists the flags defined in rally's own sources (common/ and
// services/), which absl's default (flags of the file named after the program) never matches,
// so that `--help` printed "No flags matched". `--helpfull` still lists every flag, absl's too.
#pragma once

#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/strings/string_view.h"

namespace rally {

// Whether a flag defined in `file` (its __FILE__) is one of rally's own.
inline bool IsRallyFlagFile(absl::string_view file) {
  return absl::StrContains(file, "services/") || absl::StrContains(file, "common/");
}

// Makes --help and --helpshort list rally's own flags. Call in main before parsing flags.
inline void ListRallyFlagsInHelp() {
  absl::FlagsUsageConfig config;
  config.contains_help_flags = IsRallyFlagFile;
  config.contains_helpshort_flags = IsRallyFlagFile;
  absl::SetFlagsUsageConfig(config);
}

}  // namespace rally
