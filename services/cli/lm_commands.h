// The language-model tools of the `rally` CLI. Each reads its own flags (defined beside it) and
// returns the process's exit status: 0 on success, 1 with an error on stderr, 2 for bad usage.
#pragma once

#include <cstdint>
#include <iostream>
#include <string>

#include "absl/status/statusor.h"

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

// `rally play` against a transformer checkpoint (`checkpoint_dir`, a step-N directory): the
// person plays as text. Each of the person's turns shows what the seat observes (the game's text
// rendering in the checkpoint's prompt style) and reads one line as the answer: the move in
// brackets ("[Bet]", "[4]") or without them; a line that is not a legal move is asked again. The
// model's turns are generated (its sampling at temperature 1, or greedy) from the seat's
// transcript, and an invalid answer of the model forfeits as in training. Seats alternate from
// `first_seat`. Returns the person's total return (lm_model_commands.cc).
absl::StatusOr<double> PlayLanguageModel(const std::string& checkpoint_dir, int games,
                                         int first_seat, bool greedy, uint64_t seed,
                                         std::istream& in, std::ostream& out);

}  // namespace rally
