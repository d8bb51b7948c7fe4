// Text-game self-play for language-model policies (SPIRAL, ../shared/REFERENCES.md): one model
// plays every learning seat of a two-player text game (common/games/text_game.h) through the
// generation worker, one sequence per seat, and each finished game becomes a v1::Trajectory.
//
// A seat's turn: the seat's new prompt text (TextMatch::Prompt) is tokenised and appended to its
// sequence; the worker generates the answer until the style's answer end (a stop token when the
// end is one token, and a stop string) or policy.max_new_tokens, then cut: a cut answer is an
// invalid answer (an empty one is given to TextMatch, which forfeits: offender −1.5, other +0.5).
// In the compact style a seat's sequence lives for the whole game (its KV cache is reused across
// turns; both seats' sequences are opened at once, so a game never waits holding half of what it
// needs); in the spiral style each turn is a fresh prompt on a fresh sequence.
//
// The recorded Turn of a learning seat's answer: observation_tokens = the seat's whole context
// before the answer (every prompt and answer token the seat's sequence holds, the new prompt
// included), action_tokens = the generated tokens (the answer end included when it was reached),
// one behaviour log-prob per action token, policy_version = the newest version among them and
// action_token_versions one per token when they differ (empty when all are policy_version), and
// legal_actions = the legal moves in the policy's own action space, the vocabulary: the tokens of
// the legal moves' canonical answers (answer end included), ascending, when each is one token
// (the game tokenizer), else empty. Not the game's action ids: a Kuhn seat's legal ids are {0, 1}
// at every decision, while its legal answers are [Check] and [Bet], or [Call] and [Fold]; the
// learner's magnet needs the answers, and only the actor holds the state that names them.
// A game whose next turn would pass the worker's sequence capacity ends as a truncated draw.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <random>
#include <string>

#include "absl/status/statusor.h"
#include "common/config/job_config.h"
#include "common/eval/agent.h"
#include "common/games/game.h"
#include "common/games/text_game.h"
#include "common/lm/tokenizer.h"
#include "rally/v1/trajectory.pb.h"
#include "services/actor/generation_worker.h"
#include "services/actor/replay_writer.h"

namespace rally {

struct TextEpisodeOptions {
  PromptStyle style = PromptStyle::kCompact;
  SamplingOptions sampling;
  int max_new_tokens = 16;
  int max_turns = 0;  // TextMatchOptions::max_turns
  // The seat a fixed opponent plays (-1: self-play, the model in every seat): `opponent`, or
  // uniform random play when it is null. The opponent writes its move's canonical answer.
  int opponent_seat = -1;
  const Agent* opponent = nullptr;                  // must outlive the call
  absl::Duration open_timeout = absl::Seconds(60);  // waiting for KV-cache slots
};

// Plays one game of `game` (two players, with a text rendering). `tokenizer` must be the one the
// worker's model was trained with, and given to the worker (stop strings). The trajectory has
// game, opponent_id ("latest", "random" or the opponent's name), returns, learning_seats, truncated
// and one Turn per learning seat's answer; no key (the writer sets it). Errors: INVALID_ARGUMENT
// for a game without a text rendering, the worker's errors (DEADLINE_EXCEEDED waiting for slots,
// CANCELLED). `forfeited_by`, when given, is set to the seat whose invalid answer ended the game,
// or -1.
absl::StatusOr<v1::Trajectory> PlayTextEpisode(std::shared_ptr<const Game> game,
                                               const Tokenizer& tokenizer, GenerationWorker& worker,
                                               const TextEpisodeOptions& options,
                                               std::mt19937_64& rng, int* forfeited_by = nullptr);

struct TextSelfPlayStats {
  std::atomic<int64_t> episodes{0};
  std::atomic<int64_t> turns{0};
  std::atomic<int64_t> forfeits{0};
  std::atomic<int64_t> errors{0};
};

// Runs actors.envs_per_actor games at a time (a thread each, all sharing `worker`) until
// `keep_running()` turns false or the writer stops; each game is against a random opponent with
// the share actors.opponents["random"] (the learning seat alternating), else self-play. Other
// fixed opponents are not supported for text games and are skipped with a warning.
void RunTextSelfPlay(const JobConfig& config, std::shared_ptr<const Game> game,
                     const Tokenizer& tokenizer, GenerationWorker& worker, ReplayWriter& writer,
                     const std::function<bool()>& keep_running, TextSelfPlayStats& stats);

}  // namespace rally
