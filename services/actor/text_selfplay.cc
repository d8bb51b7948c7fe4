#include "services/actor/text_selfplay.h"

#include <algorithm>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/util/log.h"

namespace rally {
namespace {

// One seat played by the model: its sequence and the tokens it holds.
struct Seat {
  int64_t sequence = -1;
  std::vector<int32_t> context;
};

// The tokens of the canonical answers (answer end included) of the legal moves of the player to
// move in `match`, ascending, when every one is a single token of `tokenizer`; else empty.
std::vector<int32_t> LegalAnswerTokens(const TextMatch& match, PromptStyle style,
                                       const Tokenizer& tokenizer) {
  const std::string end(AnswerEnd(style));
  const State& state = match.state();
  std::vector<int32_t> tokens;
  for (int action : state.LegalActions()) {
    const std::vector<int32_t> ids = tokenizer.Encode(
        CanonicalAnswer(match.rendering(), style, state, state.CurrentPlayer(), action) + end);
    if (ids.size() != 1) return {};
    tokens.push_back(ids[0]);
  }
  std::sort(tokens.begin(), tokens.end());
  tokens.erase(std::unique(tokens.begin(), tokens.end()), tokens.end());
  return tokens;
}

// Records `result` as a Turn of `seat` after `context` (the whole context before the answer),
// with `legal_answers` as its legal_actions.
void AddTurn(v1::Trajectory& trajectory, int seat, const std::vector<int32_t>& context,
             const std::vector<int32_t>& legal_answers, const GenerationResult& result) {
  v1::Turn* turn = trajectory.add_turns();
  turn->set_seat(seat);
  turn->mutable_observation_tokens()->Add(context.begin(), context.end());
  turn->mutable_legal_actions()->Add(legal_answers.begin(), legal_answers.end());
  turn->mutable_action_tokens()->Add(result.tokens.begin(), result.tokens.end());
  turn->mutable_behaviour_log_probs()->Add(result.log_probs.begin(), result.log_probs.end());
  const int64_t newest = *std::max_element(result.versions.begin(), result.versions.end());
  turn->set_policy_version(newest);
  if (std::any_of(result.versions.begin(), result.versions.end(),
                  [&](int64_t v) { return v != newest; })) {
    turn->mutable_action_token_versions()->Add(result.versions.begin(), result.versions.end());
  }
}

}  // namespace

absl::StatusOr<v1::Trajectory> PlayTextEpisode(std::shared_ptr<const Game> game,
                                               const Tokenizer& tokenizer, GenerationWorker& worker,
                                               const TextEpisodeOptions& options,
                                               std::mt19937_64& rng, int* forfeited_by) {
  TextMatchOptions match_options;
  match_options.style = options.style;
  match_options.max_turns = options.max_turns;
  absl::StatusOr<TextMatch> started = TextMatch::Start(game, match_options, rng);
  if (!started.ok()) return started.status();
  TextMatch& match = *started;
  const int players = game->NumPlayers();

  v1::Trajectory trajectory;
  trajectory.set_game(game->Name());
  const int opponent_seat = options.opponent_seat;
  trajectory.set_opponent_id(opponent_seat < 0             ? "latest"
                             : options.opponent != nullptr ? options.opponent->name()
                                                           : "random");
  for (int p = 0; p < players; ++p) {
    if (p != opponent_seat) trajectory.add_learning_seats(p);
  }
  const int learning = trajectory.learning_seats_size();

  // The answer end: a stop token when it is one token, and always a stop string.
  const std::string answer_end(AnswerEnd(options.style));
  const std::vector<int32_t> end_tokens = tokenizer.Encode(answer_end);
  const bool compact = options.style == PromptStyle::kCompact;

  std::vector<Seat> seats(players);
  auto release_all = [&] {
    for (Seat& s : seats) {
      if (s.sequence >= 0) worker.Release(s.sequence);
      s.sequence = -1;
    }
  };
  if (compact) {
    absl::StatusOr<std::vector<int64_t>> ids = worker.Open(learning, options.open_timeout);
    if (!ids.ok()) return ids.status();
    for (int i = 0; i < learning; ++i) seats[trajectory.learning_seats(i)].sequence = (*ids)[i];
  }

  bool truncated = false;
  while (!match.IsOver()) {
    const int p = match.CurrentPlayer();
    if (p == opponent_seat) {
      int action;
      if (options.opponent != nullptr) {
        action = options.opponent->Act(match.state(), rng);
      } else {
        std::vector<int> legal = match.state().LegalActions();
        action = legal[std::uniform_int_distribution<size_t>(0, legal.size() - 1)(rng)];
      }
      const std::string answer =
          CanonicalAnswer(match.rendering(), options.style, match.state(), p, action);
      if (absl::StatusOr<int> applied = match.Answer(answer, rng); !applied.ok()) {
        release_all();
        return absl::InternalError(absl::StrCat("the opponent's canonical answer \"", answer,
                                                "\" was refused: ", applied.status().message()));
      }
      continue;
    }
    Seat& seat = seats[p];
    if (!compact) {
      seat.context.clear();
      absl::StatusOr<std::vector<int64_t>> ids = worker.Open(1, options.open_timeout);
      if (!ids.ok()) {
        release_all();
        return ids.status();
      }
      seat.sequence = (*ids)[0];
    }
    GenerationRequest request;
    request.sequence = seat.sequence;
    request.append = tokenizer.Encode(match.Prompt());
    request.sampling = options.sampling;
    request.seed = rng();
    request.max_new_tokens = options.max_new_tokens;
    if (end_tokens.size() == 1) request.stop_tokens = end_tokens;
    request.stop_string = answer_end;
    seat.context.insert(seat.context.end(), request.append.begin(), request.append.end());
    const std::vector<int32_t> legal_answers = LegalAnswerTokens(match, options.style, tokenizer);
    absl::StatusOr<GenerationResult> result = worker.Generate(std::move(request));
    if (absl::IsResourceExhausted(result.status())) {  // past the sequence capacity
      truncated = true;
      break;
    }
    if (!result.ok()) {
      release_all();
      return result.status();
    }
    AddTurn(trajectory, p, seat.context, legal_answers, *result);
    seat.context.insert(seat.context.end(), result->tokens.begin(), result->tokens.end());
    if (!compact) {
      worker.Release(seat.sequence);
      seat.sequence = -1;
    }
    // The answer is the text before its end; an answer cut before its end is invalid.
    std::string text = tokenizer.Decode(result->tokens);
    const size_t end = text.find(answer_end);
    std::string answer = result->stopped && end != std::string::npos ? text.substr(0, end) : "";
    match.Answer(answer, rng).IgnoreError();  // an invalid answer ends the game by forfeit
  }
  release_all();
  const std::vector<double> returns =
      truncated ? std::vector<double>(players, 0.0) : match.Returns();
  for (double r : returns) trajectory.add_returns(static_cast<float>(r));
  if (forfeited_by != nullptr) *forfeited_by = truncated ? -1 : match.forfeited_by();
  trajectory.set_truncated(truncated || match.cut_at_turn_limit());
  return trajectory;
}

void RunTextSelfPlay(const JobConfig& config, std::shared_ptr<const Game> game,
                     const Tokenizer& tokenizer, GenerationWorker& worker, ReplayWriter& writer,
                     const std::function<bool()>& keep_running, TextSelfPlayStats& stats) {
  double random_share = 0;
  for (const auto& [name, share] : config.actors.opponents) {
    if (name == "random") {
      random_share = share;
    } else {
      LogWarning(
          "text self-play: fixed opponent not supported for language-model policies; "
          "its share is self-play",
          {{"opponent", name}});
    }
  }
  TextEpisodeOptions options;
  absl::StatusOr<PromptStyle> style = ParsePromptStyle(config.policy.prompt);
  options.style = style.ok() ? *style : PromptStyle::kCompact;
  options.sampling.temperature = config.policy.temperature;
  options.sampling.top_p = config.policy.top_p;
  options.sampling.top_k = config.policy.top_k;
  options.max_new_tokens = config.policy.max_new_tokens;
  options.max_turns = config.policy.max_turns;

  std::atomic<bool> writer_open = true;
  std::vector<std::thread> envs;
  const int count = std::max(1, config.actors.envs_per_actor);
  for (int e = 0; e < count; ++e) {
    envs.emplace_back([&, e] {
      std::mt19937_64 rng(std::random_device{}() ^ (uint64_t{0x9E3779B97F4A7C15} * (e + 1)));
      std::uniform_real_distribution<double> unit(0.0, 1.0);
      int64_t played = 0;
      while (writer_open && keep_running()) {
        TextEpisodeOptions episode = options;
        if (unit(rng) < random_share) {
          episode.opponent_seat = static_cast<int>((played + e + 1) % game->NumPlayers());
        }
        ++played;
        absl::StatusOr<v1::Trajectory> trajectory =
            PlayTextEpisode(game, tokenizer, worker, episode, rng);
        if (!trajectory.ok()) {
          ++stats.errors;
          if (absl::IsCancelled(trajectory.status())) return;
          if (absl::IsResourceExhausted(trajectory.status())) {  // a game can never fit
            LogError("text self-play stops", {{"error", trajectory.status().ToString()}});
            return;
          }
          LogWarning("text self-play episode failed", {{"error", trajectory.status().ToString()}});
          continue;
        }
        ++stats.episodes;
        stats.turns += trajectory->turns_size();
        for (float r : trajectory->returns()) {
          if (r == static_cast<float>(kForfeitOffenderReturn)) ++stats.forfeits;
        }
        if (!writer.Push(*trajectory)) writer_open = false;
      }
    });
  }
  for (std::thread& t : envs) t.join();
}

}  // namespace rally
