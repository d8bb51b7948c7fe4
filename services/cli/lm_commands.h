// The language-model tools of the `rally` CLI. Each reads its own flags (defined beside it) and
// returns the process's exit status: 0 on success, 1 with an error on stderr, 2 for bad usage.
#pragma once

namespace rally {

// `rally lm-tokenize --tokenizer FILE --text TEXT`: {"ids": [...]} (services/cli/lm_tokenize.cc).
int LmTokenizeCommand();
// `rally lm-score --model DIR --token-ids 1,5,9`: {"log_probs": [...]} (lm_model_commands.cc).
int LmScoreCommand();
// `rally lm-generate --model DIR --prompt TEXT [--max-new-tokens N] [--temperature T]
// [--seed S]`: the continuation only (lm_model_commands.cc).
int LmGenerateCommand();
// `rally export-hf --checkpoint RUN --out DIR [--dtype bf16|fp16|fp32]`: a language-model
// checkpoint as a Hugging Face directory (export_hf_command.cc).
int ExportHfCommand();

}  // namespace rally
