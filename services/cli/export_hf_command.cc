#include <cstdio>

#include "services/cli/lm_commands.h"

namespace rally {

int ExportHfCommand() {
  std::fprintf(stderr, "export-hf: not built yet\n");
  return 1;
}

}  // namespace rally
