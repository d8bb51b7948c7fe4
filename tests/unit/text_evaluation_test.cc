#include "services/actor/text_evaluation.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "common/eval/opponents.h"
#include "common/games/registry.h"
#include "common/lm/game_tokenizer.h"
#include "common/lm/transformer.h"

namespace rally {
namespace {

// Kuhn poker's game tokenizer gives [Bet]\n the id 259 (ids 259..262: Bet, Call, Check, Fold).
constexpr int kBetAnswer = 259;

void Fill(NamedTensor& t, float value) {
  std::vector<float> values(t.data.size() / sizeof(float), value);
  std::memcpy(t.data.data(), values.data(), t.data.size());
}

// A model that answers "[Bet]\n" with probability ~1 whatever its context: every layer adds
// nothing (zero output projections), every embedding is the ones vector, so the final hidden
// state is the ones vector and the head's row for [Bet]\n is the only one that is not zero.
Transformer AlwaysBet() {
  TransformerConfig config;
  config.layers = 1;
  config.d_model = 8;
  config.heads = 2;
  config.kv_heads = 1;
  config.d_ff = 16;
  config.vocab = 263;
  config.max_seq_len = 96;
  config.tie_embeddings = false;
  Transformer model = *Transformer::Create(config, 3);
  TensorSet weights = model.ExportWeights();
  for (NamedTensor& t : weights.tensors) {
    if (t.name.ends_with("o_proj.weight") || t.name.ends_with("down_proj.weight")) Fill(t, 0);
    if (t.name == "model.embed_tokens.weight") Fill(t, 1);
    if (t.name == "lm_head.weight") {
      Fill(t, 0);
      std::vector<float> row(config.d_model, 5.0f);  // logit 40 against 0 for every other id
      std::memcpy(t.data.data() + kBetAnswer * config.d_model * sizeof(float), row.data(),
                  row.size() * sizeof(float));
    }
  }
  EXPECT_TRUE(model.LoadWeights(weights).ok());
  return model;
}

// Against uniform random play, a policy that always writes [Bet]: as P0 it bets, and wins when
// P1 folds (1/2) or holds the lower card at the showdown (1/2 of the rest): 3/4. As P1 it faces
// a bet half the time, where [Bet] is not a legal move (Call or Fold): a forfeit, its only
// invalid answer; after a check it bets and wins when P0 folds or holds the lower card: 3/8 in
// all. Every game has exactly one answer of the policy, so the invalid-answer rate is 1/4 and the
// win rate (3/4 + 3/8) / 2 = 9/16; no game is drawn.
TEST(TextEvaluation, AlwaysBetAgainstRandomWinsNineSixteenthsAndForfeitsAQuarter) {
  std::shared_ptr<const Game> game = *LoadGame("kuhn_poker");
  std::unique_ptr<Tokenizer> tokenizer =
      *OpenTokenizer(kGameTokenizerName, *game, PromptStyle::kCompact);
  ASSERT_EQ(tokenizer->Encode("[Bet]\n"), std::vector<int32_t>{kBetAnswer});
  GenerationWorkerOptions options;
  options.max_batch = 32;
  options.kv_cache_tokens = 32 * 96;
  options.tokenizer = tokenizer.get();
  options.initial_version = 7;
  std::unique_ptr<GenerationWorker> worker = *GenerationWorker::Create(AlwaysBet(), options);
  std::unique_ptr<Agent> random = *MakeOpponent("random", *game);
  TextEpisodeOptions episode;
  episode.max_new_tokens = 4;
  constexpr int kGames = 4000;
  absl::StatusOr<v1::EvalResult> r =
      PlayTextEvalRound(game, *tokenizer, *worker, *random, episode, kGames, 11);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->opponent(), "random");
  EXPECT_EQ(r->policy_version(), 7);
  EXPECT_FALSE(r->greedy());
  EXPECT_EQ(r->games(), kGames);
  EXPECT_EQ(r->wins() + r->draws() + r->losses(), kGames);
  EXPECT_EQ(r->draws(), 0);
  // Four standard deviations of the binomial estimates.
  const double win_rate = static_cast<double>(r->wins()) / kGames;
  EXPECT_NEAR(win_rate, 9.0 / 16, 4 * std::sqrt(9.0 / 16 * 7.0 / 16 / kGames));
  EXPECT_NEAR(r->invalid_answer_rate(), 0.25, 4 * std::sqrt(0.25 * 0.75 / kGames));
}

}  // namespace
}  // namespace rally
