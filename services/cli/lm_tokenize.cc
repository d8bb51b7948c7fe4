// `rally lm-tokenize --tokenizer FILE --text TEXT`: the ids of TEXT as one line of JSON,
// {"ids": [...]}. No special tokens are added around the text; those written in it are matched.
#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "common/lm/tokenizer.h"
#include "nlohmann/json.hpp"
#include "services/cli/lm_commands.h"

ABSL_FLAG(std::string, tokenizer, "", "lm-tokenize: a Hugging Face tokenizer.json");
ABSL_FLAG(std::string, text, "", "lm-tokenize: the text to encode");

namespace rally {

int LmTokenizeCommand() {
  const std::string path = absl::GetFlag(FLAGS_tokenizer);
  if (path.empty()) {
    std::fprintf(stderr, "lm-tokenize: --tokenizer FILE is required\n");
    return 2;
  }
  absl::StatusOr<std::unique_ptr<Tokenizer>> tokenizer = LoadTokenizer(path);
  if (!tokenizer.ok()) {
    std::fprintf(stderr, "lm-tokenize: %s\n", std::string(tokenizer.status().message()).c_str());
    return 1;
  }
  const nlohmann::json out = {{"ids", (*tokenizer)->Encode(absl::GetFlag(FLAGS_text))}};
  std::printf("%s\n", out.dump().c_str());
  return 0;
}

}  // namespace rally
