// `rally export-policy` and `rally evaluate-policy`: a checkpoint's policy as a table over every
// information state of a small game, and the exact evaluation of such a table;
// `rally evaluate-checkpoint`: sampled games of a checkpoint against a fixed opponent;
// `rally play`: a person against a checkpoint.
#pragma once

#include <iosfwd>
#include <string>

#include "absl/status/statusor.h"
#include "common/checkpoint/checkpoint_dir.h"
#include "nlohmann/json.hpp"

namespace rally {

// {"game": NAME, "policy": {KEY: {ACTION: PROB}}}: the policy's probabilities, as sampled, at
// every information state of the checkpoint's game, in the game's classic notation
// (common/eval/policy_json.h, docs/results.md). A language-model checkpoint ("policy_kind":
// "transformer") is scored by ExportLmPolicy (common/lm/lm_policy.h): each entry adds its
// "invalid" mass and the document its "invalid_answer_rate" (docs/lm.md). INVALID_ARGUMENT for a
// game without a notation; the checkpoint readers' errors, naming the file.
absl::StatusOr<nlohmann::json> ExportPolicy(const std::string& checkpoint_path);

// Exact figures of an exported policy over the full game tree (common/eval/exploitability.h):
// the worst-case expected return of each seat against every opponent, NashConv and exploitability
// (two-player zero-sum games), the "invalid" masses counted as forfeits; with any, also the
// "invalid_answer_rate" {per_decision, per_game, max} of the policy in self-play.
absl::StatusOr<nlohmann::json> EvaluatePolicy(const nlohmann::json& exported);

// ExportPolicy then EvaluatePolicy on the checkpoint `checkpoint_path` names, with its
// "checkpoint" directory, "policy_version" and "job_id" added: what `rally run` reports of the
// policy a job ended with.
absl::StatusOr<nlohmann::json> EvaluateCheckpointExactly(const std::string& checkpoint_path);

// `rally evaluate-checkpoint`: the checkpoint's policy plays `games` games against the fixed
// opponent `opponent` (a name of common/eval/opponents.h; MLP checkpoints only, UNIMPLEMENTED for
// a language model's), seats alternating, as the job's
// evaluator plays them (common/eval/network_evaluation.h): sampling from its probabilities, or its
// most probable action when `greedy`. {"game", "checkpoint", "policy_version", "opponent",
// "games", "greedy", "seed", "wins", "draws", "losses", "win_rate"}, from the policy's side.
absl::StatusOr<nlohmann::json> EvaluateCheckpoint(const std::string& checkpoint_path,
                                                  const std::string& opponent, int games,
                                                  bool greedy, uint64_t seed);

// `rally play`: a person plays `games` games against the checkpoint's policy on `in`/`out`,
// seats alternating (the person starts in `first_seat`). The policy samples from its
// probabilities, or plays its most probable move when `greedy`. Each turn the person sees what
// their seat observes and the legal moves, and types a move's number or name; a bad entry is
// answered with the legal moves and asked again. Returns the person's total return.
absl::StatusOr<double> Play(const std::string& checkpoint_path, int games, int first_seat,
                            bool greedy, uint64_t seed, std::istream& in, std::ostream& out);

}  // namespace rally
