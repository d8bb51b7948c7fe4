#include <cstdio>

#include "services/cli/lm_commands.h"

namespace rally {

int LmScoreCommand() {
  std::fprintf(stderr, "lm-score: not built yet\n");
  return 1;
}

int LmGenerateCommand() {
  std::fprintf(stderr, "lm-generate: not built yet\n");
  return 1;
}

}  // namespace rally
