#include <cstdio>

#include "services/cli/lm_commands.h"

namespace rally {

int LmTokenizeCommand() {
  std::fprintf(stderr, "lm-tokenize: not built yet\n");
  return 1;
}

}  // namespace rally
