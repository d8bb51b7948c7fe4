#include "common/config/job_config.h"

#include <gtest/gtest.h>

#include <filesystem>

namespace rally {
namespace {

std::string Message(const absl::StatusOr<JobConfig>& c) {
  return std::string(c.status().message());
}

TEST(JobConfig, TheDefaultConfigParses) {
  auto c = LoadJobConfig(std::string(RALLY_SOURCE_DIR) + "/configs/tictactoe.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->game.name, "tictactoe");
  EXPECT_DOUBLE_EQ(*c->target.at("best_response").max_exploitability, 0.0005);
  EXPECT_EQ(c->actors.opponents.count("perfect"), 0u);
  EXPECT_TRUE(c->self_play);
  EXPECT_EQ(c->evaluation.games, 1000);
}

TEST(JobConfig, OnlyRandomIsASelfPlayFixedOpponent) {
  EXPECT_TRUE(IsSelfPlayOpponent("random"));
  for (const char* held_out :
       {"perfect", "trader", "alpha_beta_1", "alpha_beta_2", "best_response"}) {
    EXPECT_FALSE(IsSelfPlayOpponent(held_out)) << held_out;
  }
}

TEST(JobConfig, SelfPlayOpponentsNeedNoWarning) {
  auto c = ParseJobConfig(
      "game: tictactoe\n"
      "actors:\n"
      "  opponents: {random: 0.3}\n"
      "learner: {snapshot_every_versions: 100}\n"
      "curriculum: {opponent_selection: pfsp}\n"
      "stop: {max_learner_steps: 10}\n",
      "sp.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->self_play);
  EXPECT_TRUE(c->warnings.empty());
  auto none = ParseJobConfig("game: tictactoe\nstop: {max_learner_steps: 10}\n", "none.yaml");
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_TRUE(none->self_play);
  EXPECT_TRUE(none->warnings.empty());
}

TEST(JobConfig, AHeldOutTrainingOpponentWarnsButIsAllowed) {
  auto c = ParseJobConfig(
      "game: tictactoe\n"
      "actors:\n"
      "  opponents:\n"
      "    random: 0.15\n"
      "    perfect: 0.5\n"
      "stop: {max_learner_steps: 10}\n",
      "configs/solver.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_FALSE(c->self_play);
  EXPECT_DOUBLE_EQ(c->actors.opponents.at("perfect"), 0.5);
  ASSERT_EQ(c->warnings.size(), 1u);
  EXPECT_EQ(c->warnings[0].rfind("configs/solver.yaml:5:14: actors.opponents.perfect: 'perfect' "
                                 "is not a self-play opponent",
                                 0),
            0u)
      << c->warnings[0];

  auto two = ParseJobConfig(
      "game: connect_four\n"
      "actors: {opponents: {alpha_beta_1: 0.1, alpha_beta_2: 0.7}}\n"
      "evaluation: {opponents: [alpha_beta_2]}\n"
      "stop: {max_learner_steps: 10}\n",
      "c4.yaml");
  ASSERT_TRUE(two.ok()) << two.status();
  EXPECT_FALSE(two->self_play);
  EXPECT_EQ(two->warnings.size(), 2u);
}

TEST(JobConfig, AZeroShareOfAHeldOutOpponentIsStillSelfPlay) {
  auto c = ParseJobConfig(
      "game: negotiation\n"
      "actors: {opponents: {trader: 0}}\n"
      "evaluation: {opponents: [trader]}\n"
      "stop: {max_learner_steps: 10}\n",
      "t.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->self_play);
  EXPECT_TRUE(c->warnings.empty());
}

TEST(JobConfig, EveryShippedConfigIsSelfPlay) {
  int files = 0;
  for (const auto& entry :
       std::filesystem::directory_iterator(std::string(RALLY_SOURCE_DIR) + "/configs")) {
    if (entry.path().extension() != ".yaml") continue;
    ++files;
    auto c = LoadJobConfig(entry.path().string());
    ASSERT_TRUE(c.ok()) << c.status();
    EXPECT_TRUE(c->self_play) << entry.path() << ": " << testing::PrintToString(c->warnings);
    EXPECT_TRUE(c->warnings.empty()) << entry.path();
  }
  EXPECT_GE(files, 5);
}

TEST(JobConfig, GameParametersComeFromTheSpecAndAreChecked) {
  auto c = ParseJobConfig(
      "game:\n  name: negotiation\n  params: {max_turns: 6, observe_history: 1}\n"
      "evaluation: {opponents: [trader]}\n",
      "g.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->game.params, (GameParameters{{"max_turns", "6"}, {"observe_history", "1"}}));
  auto bad = ParseJobConfig("game:\n  name: negotiation\n  params: {max_turns: 0}\n", "b.yaml");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("b.yaml:3:"), std::string::npos) << bad.status();
  EXPECT_NE(bad.status().message().find("game.params:"), std::string::npos) << bad.status();
  EXPECT_NE(bad.status().message().find("'max_turns' must be an integer in [1, 100]"),
            std::string::npos)
      << bad.status();
  auto unknown = ParseJobConfig("game: {name: tictactoe, params: {size: 4}}\n", "u.yaml");
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.status().message().find("'size'"), std::string::npos) << unknown.status();
}

TEST(JobConfig, MinimalSpecGetsDefaults) {
  auto c = ParseJobConfig("game: tictactoe\nstop: {max_learner_steps: 10}\n", "min.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->name, "tictactoe");
  EXPECT_EQ(c->learner.algorithm, "reinforce_rae");
  EXPECT_DOUBLE_EQ(c->learner.baseline_decay, 0.95);
  EXPECT_EQ(c->stop.max_learner_steps, 10);
}

TEST(JobConfig, UnknownKeyNamesFileLineAndKey) {
  auto c = ParseJobConfig(
      "game: tictactoe\n"
      "learner:\n"
      "  batch_episodes: 64\n"
      "  learnin_rate: 0.1\n",
      "configs/typo.yaml");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(Message(c).find("configs/typo.yaml:4:3: unknown key 'learner.learnin_rate'"),
            std::string::npos)
      << Message(c);
  EXPECT_NE(Message(c).find("learning_rate"), std::string::npos);  // lists the known keys
}

TEST(JobConfig, UnknownTopLevelKey) {
  auto c = ParseJobConfig("game: tictactoe\nlearners: {}\n", "a.yaml");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(Message(c).find("a.yaml:2:1: unknown key 'learners'"), std::string::npos) << Message(c);
}

TEST(JobConfig, WrongTypeNamesFileLineAndKey) {
  auto c = ParseJobConfig(
      "game: tictactoe\n"
      "actors:\n"
      "  count: many\n",
      "b.yaml");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(Message(c).find("b.yaml:3:10: actors.count: expected an integer, got 'many'"),
            std::string::npos)
      << Message(c);
}

TEST(JobConfig, UnknownGameNamesFileLineAndKey) {
  auto c = ParseJobConfig("name: x\ngame:\n  name: chess\n", "c.yaml");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(Message(c).find("c.yaml:3:9: game.name: unknown game 'chess'"), std::string::npos)
      << Message(c);
  EXPECT_NE(Message(c).find("tictactoe"), std::string::npos);
}

TEST(JobConfig, OutOfRangeValuesAndEveryProblemReported) {
  auto c = ParseJobConfig(
      "game: tictactoe\n"
      "learner:\n"
      "  learning_rate: -1\n"
      "  baseline_decay: 1.5\n"
      "actors:\n"
      "  opponents: {random: 0.7, perfect: 0.6}\n",
      "d.yaml");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(Message(c).find("d.yaml:3:18: learner.learning_rate: must be positive"),
            std::string::npos)
      << Message(c);
  EXPECT_NE(Message(c).find("learner.baseline_decay: must lie in [0, 1)"), std::string::npos);
  EXPECT_NE(Message(c).find("shares sum to more than 1"), std::string::npos);
}

TEST(JobConfig, MissingGameAndNeverEndingJobsAreErrors) {
  EXPECT_NE(Message(ParseJobConfig("seed: 3\n", "e.yaml")).find("game: required"),
            std::string::npos);
  auto forever = ParseJobConfig("game: tictactoe\nstop: {max_wall_seconds: 0}\n", "f.yaml");
  EXPECT_NE(Message(forever).find("never ends"), std::string::npos);
}

TEST(JobConfig, InvalidYamlSaysWhere) {
  auto c = ParseJobConfig("game: [tictactoe\n", "g.yaml");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(Message(c).find("g.yaml:"), std::string::npos);
  EXPECT_NE(Message(c).find("invalid YAML"), std::string::npos);
}

TEST(JobConfig, BestResponseNeedsASmallGame) {
  auto ok = ParseJobConfig(
      "game: kuhn_poker\n"
      "evaluation: {opponents: [best_response]}\n"
      "target: {best_response: {max_exploitability: 0.02}}\n",
      "k.yaml");
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_DOUBLE_EQ(*ok->target.at("best_response").max_exploitability, 0.02);
  auto big = ParseJobConfig(
      "game: connect_four\nevaluation: {opponents: [best_response]}\nstop: {max_learner_steps: "
      "1}\n",
      "c4.yaml");
  EXPECT_NE(Message(big).find("needs the full game tree"), std::string::npos) << Message(big);
  auto wrong = ParseJobConfig(
      "game: kuhn_poker\nevaluation: {opponents: [perfect]}\nstop: {max_learner_steps: 1}\n",
      "p.yaml");
  EXPECT_NE(Message(wrong).find("exists for tictactoe only"), std::string::npos) << Message(wrong);
}

TEST(JobConfig, TargetNeedsItsOpponentEvaluated) {
  auto c = ParseJobConfig(
      "game: tictactoe\n"
      "evaluation: {opponents: [random]}\n"
      "target: {perfect: {max_losses: 0}}\n",
      "h.yaml");
  EXPECT_NE(Message(c).find("target.perfect: has a target but is not in evaluation.opponents"),
            std::string::npos)
      << Message(c);
}

TEST(JobConfig, LossFamilyKeysHaveDefaults) {
  auto c = ParseJobConfig("game: tictactoe\nstop: {max_learner_steps: 10}\n", "min.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  const LearnerConfig& l = c->learner;
  EXPECT_DOUBLE_EQ(l.clip_epsilon, 0.2);
  EXPECT_EQ(l.epochs_per_batch, 1);
  EXPECT_EQ(l.objective, "return");
  EXPECT_DOUBLE_EQ(l.value_coef, 0.5);
  EXPECT_DOUBLE_EQ(l.discount, 1.0);
  EXPECT_DOUBLE_EQ(l.vtrace_lambda, 1.0);
  EXPECT_DOUBLE_EQ(l.vtrace_c_bar, 1.0);
  EXPECT_DOUBLE_EQ(l.kl_coef, 0.0);
  EXPECT_EQ(l.kl_reference_update_steps, 0);
  EXPECT_DOUBLE_EQ(l.magnet_coef, 0.0);
  EXPECT_EQ(l.magnet, "uniform");
  EXPECT_DOUBLE_EQ(l.magnet_ema_decay, 0.99);
  EXPECT_DOUBLE_EQ(l.magnet_coef_schedule().At(1000), 0.0);
}

TEST(JobConfig, ReadsTheLossFamilyKeys) {
  auto c = ParseJobConfig(
      "game: tictactoe\n"
      "stop: {max_learner_steps: 10}\n"
      "learner:\n"
      "  algorithm: vtrace\n"
      "  clip_epsilon: 0.1\n"
      "  epochs_per_batch: 2\n"
      "  objective: win\n"
      "  value_coef: 0.25\n"
      "  discount: 0.99\n"
      "  vtrace_lambda: 0.95\n"
      "  vtrace_c_bar: 0.9\n"
      "  kl_coef: 0.05\n"
      "  kl_reference_update_steps: 100\n"
      "  magnet_coef: 0.2\n"
      "  magnet_coef_final: 0.02\n"
      "  magnet_decay_steps: 1000\n"
      "  magnet: ema\n"
      "  magnet_ema_decay: 0.995\n",
      "l.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  const LearnerConfig& l = c->learner;
  EXPECT_EQ(l.algorithm, "vtrace");
  EXPECT_DOUBLE_EQ(l.clip_epsilon, 0.1);
  EXPECT_EQ(l.epochs_per_batch, 2);
  EXPECT_EQ(l.objective, "win");
  EXPECT_DOUBLE_EQ(l.value_coef, 0.25);
  EXPECT_DOUBLE_EQ(l.discount, 0.99);
  EXPECT_DOUBLE_EQ(l.vtrace_lambda, 0.95);
  EXPECT_DOUBLE_EQ(l.vtrace_c_bar, 0.9);
  EXPECT_DOUBLE_EQ(l.kl_coef, 0.05);
  EXPECT_EQ(l.kl_reference_update_steps, 100);
  EXPECT_EQ(l.magnet, "ema");
  EXPECT_DOUBLE_EQ(l.magnet_ema_decay, 0.995);
  // 0.2 -> 0.02 over 1000 steps: halfway 0.11, held at 0.02 after.
  EXPECT_DOUBLE_EQ(l.magnet_coef_schedule().At(0), 0.2);
  EXPECT_NEAR(l.magnet_coef_schedule().At(500), 0.11, 1e-12);
  EXPECT_NEAR(l.magnet_coef_schedule().At(5000), 0.02, 1e-12);
}

TEST(JobConfig, SchedulesShareOneShape) {
  auto c = ParseJobConfig(
      "game: tictactoe\n"
      "stop: {max_learner_steps: 10}\n"
      "learner: {learning_rate: 0.01, learning_rate_final: 0.001, learning_rate_decay_steps: 100,"
      " entropy_coef: 0.1, entropy_coef_final: 0.0, entropy_decay_steps: 10}\n",
      "s.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_NEAR(c->learner.learning_rate_schedule().At(50), 0.0055, 1e-12);
  EXPECT_NEAR(c->learner.entropy_coef_schedule().At(5), 0.05, 1e-12);
  EXPECT_DOUBLE_EQ(c->learner.entropy_coef_schedule().At(20), 0.0);
  // final < 0 or no decay steps: constant.
  EXPECT_DOUBLE_EQ((LinearSchedule{0.3, -1, 100}).At(50), 0.3);
  EXPECT_DOUBLE_EQ((LinearSchedule{0.3, 0.1, 0}).At(50), 0.3);
}

TEST(JobConfig, UnknownAlgorithmNamesTheFieldAndTheKnownOnes) {
  auto c = ParseJobConfig(
      "game: tictactoe\n"
      "stop: {max_learner_steps: 10}\n"
      "learner:\n"
      "  algorithm: a3c\n",
      "m.yaml");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(Message(c).find("m.yaml:4:14: learner.algorithm: unknown algorithm 'a3c' (known: "
                            "reinforce_rae, ppo, vtrace)"),
            std::string::npos)
      << Message(c);
}

TEST(JobConfig, LossFamilyValuesOutOfRange) {
  auto c = ParseJobConfig(
      "game: tictactoe\n"
      "stop: {max_learner_steps: 10}\n"
      "learner:\n"
      "  epochs_per_batch: 0\n"
      "  discount: 0\n"
      "  clip_epsilon: 0\n"
      "  vtrace_lambda: 1.5\n"
      "  magnet: best\n"
      "  magnet_ema_decay: 1\n"
      "  kl_coef: -1\n"
      "  objective: score\n",
      "n.yaml");
  ASSERT_FALSE(c.ok());
  for (const char* expected :
       {"n.yaml:4:21: learner.epochs_per_batch: must be at least 1",
        "learner.discount: must lie in (0, 1]", "learner.clip_epsilon: must be positive",
        "learner.vtrace_lambda: must lie in [0, 1]",
        "learner.magnet: unknown magnet 'best' (known: uniform, ema)",
        "learner.magnet_ema_decay: must lie in [0, 1)", "learner.kl_coef: must be at least 0",
        "n.yaml:11:14: learner.objective: unknown objective 'score' (known: return, win)"}) {
    EXPECT_NE(Message(c).find(expected), std::string::npos) << expected << "\n" << Message(c);
  }
}

TEST(JobConfig, SnapshotPoolKeysHaveDefaultsAndBounds) {
  auto d = ParseJobConfig("game: tictactoe\nstop: {max_learner_steps: 10}\n", "d.yaml");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->learner.snapshot_every_versions, 0);
  EXPECT_EQ(d->learner.snapshot_pool_size, 20);

  auto c = ParseJobConfig(
      "game: tictactoe\n"
      "learner: {snapshot_every_versions: 10, snapshot_pool_size: 5}\n"
      "curriculum: {opponent_selection: pfsp}\n"
      "stop: {max_learner_steps: 10}\n",
      "c.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->learner.snapshot_every_versions, 10);
  EXPECT_EQ(c->learner.snapshot_pool_size, 5);

  auto bad = ParseJobConfig(
      "game: tictactoe\n"
      "learner: {snapshot_every_versions: -1, snapshot_pool_size: 0}\n"
      "stop: {max_learner_steps: 10}\n",
      "b.yaml");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(Message(bad).find("learner.snapshot_every_versions: must be at least 0"),
            std::string::npos)
      << Message(bad);
  EXPECT_NE(Message(bad).find("learner.snapshot_pool_size: must be at least 1"), std::string::npos)
      << Message(bad);
}

TEST(JobConfig, PoolSelectionNeedsSnapshots) {
  auto c = ParseJobConfig(
      "game: tictactoe\n"
      "curriculum: {opponent_selection: uniform}\n"
      "stop: {max_learner_steps: 10}\n",
      "u.yaml");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(Message(c).find("curriculum.opponent_selection: uniform picks opponents from the "
                            "learner's snapshot pool: set learner.snapshot_every_versions > 0"),
            std::string::npos)
      << Message(c);
}

TEST(JobConfig, APolicyIsAnMlpUnlessItSaysTransformer) {
  auto c = ParseJobConfig("game: tictactoe\n", "mlp.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->policy.kind, "mlp");
  EXPECT_FALSE(c->policy.is_transformer());
  EXPECT_EQ(c->policy.hidden, (std::vector<int>{128, 128}));
}

TEST(JobConfig, ATransformerPolicyTakesItsShapeFromTheSpec) {
  auto c = ParseJobConfig(
      "game: kuhn_poker\n"
      "policy: {kind: transformer, layers: 3, d_model: 96, heads: 6, kv_heads: 2, d_ff: 256,\n"
      "         max_seq_len: 256, tie_embeddings: true, temperature: 0.7, top_p: 0.9,\n"
      "         top_k: 20, max_new_tokens: 6}\n"
      "actors: {kv_cache_tokens: 65536}\n"
      "learner: {batch_tokens: 4096, mask_cut_answers: false}\n"
      "evaluation: {opponents: []}\n",
      "t.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  const TransformerConfig& t = c->policy.transformer;
  EXPECT_TRUE(c->policy.is_transformer());
  EXPECT_EQ(t.layers, 3);
  EXPECT_EQ(t.d_model, 96);
  EXPECT_EQ(t.heads, 6);
  EXPECT_EQ(t.kv_heads, 2);
  EXPECT_EQ(t.HeadDim(), 16);
  EXPECT_EQ(t.d_ff, 256);
  EXPECT_EQ(t.max_seq_len, 256);
  EXPECT_TRUE(t.tie_embeddings);
  EXPECT_EQ(c->policy.tokenizer, "byte");
  EXPECT_EQ(t.vocab, kByteTokenizerVocab);  // the byte tokenizer's size when not given
  EXPECT_EQ(c->policy.prompt, "compact");
  EXPECT_DOUBLE_EQ(c->policy.temperature, 0.7);
  EXPECT_DOUBLE_EQ(c->policy.top_p, 0.9);
  EXPECT_EQ(c->policy.top_k, 20);
  EXPECT_EQ(c->policy.max_new_tokens, 6);
  EXPECT_EQ(c->actors.kv_cache_tokens, 65536);
  EXPECT_EQ(c->learner.batch_tokens, 4096);
  EXPECT_FALSE(c->learner.mask_cut_answers);  // true (SPIRAL's choice) unless the spec says

  auto from = ParseJobConfig(
      "game: tictactoe\npolicy: {kind: transformer, from: /models/qwen3, prompt: spiral}\n"
      "evaluation: {opponents: []}\n",
      "from.yaml");
  ASSERT_TRUE(from.ok()) << from.status();
  EXPECT_EQ(from->policy.from, "/models/qwen3");
  EXPECT_EQ(from->policy.tokenizer, "");  // the directory's tokenizer.json, found when loaded
  EXPECT_EQ(from->policy.prompt, "spiral");
}

TEST(JobConfig, ATransformerSpecThatCannotBuildAModelIsRefusedNamingTheKey) {
  auto refused = [](const std::string& policy) {
    auto c = ParseJobConfig("game: tictactoe\npolicy: " + policy + "\n", "bad.yaml");
    return c.ok() ? std::string("accepted") : Message(c);
  };
  EXPECT_NE(refused("{kind: transformer, hidden: [64]}").find("hidden"), std::string::npos);
  EXPECT_NE(refused("{kind: transformer, heads: 4, kv_heads: 3}")
                .find("policy.kv_heads: must "
                      "divide heads (4)"),
            std::string::npos);
  EXPECT_NE(refused("{kind: transformer, d_model: 100, heads: 8}").find("policy.heads"),
            std::string::npos);
  EXPECT_NE(refused("{kind: transformer, d_model: 12, heads: 4}").find("must be even"),
            std::string::npos);
  EXPECT_NE(refused("{kind: transformer, vocab: 200}").find("at least 259 for the byte tokenizer"),
            std::string::npos);
  EXPECT_NE(refused("{kind: transformer, tokenizer: /t/tokenizer.json}")
                .find("policy.vocab: "
                      "required"),
            std::string::npos);
  EXPECT_NE(refused("{kind: transformer, from: /m, layers: 2}").find("not allowed beside `from`"),
            std::string::npos);
  EXPECT_NE(refused("{kind: transformer, prompt: chat}").find("one of compact, spiral"),
            std::string::npos);
  EXPECT_NE(refused("{kind: transformer, top_p: 0}").find("policy.top_p"), std::string::npos);
  EXPECT_NE(refused("{kind: rnn}").find("'rnn': one of mlp, transformer"), std::string::npos);
  // A language-model policy is evaluated exactly or by games against fixed opponents; league
  // rounds are refused rather than failed at run time.
  auto played = ParseJobConfig(
      "game: kuhn_poker\npolicy: {kind: transformer}\n"
      "evaluation: {opponents: [random]}\n",
      "e.yaml");
  EXPECT_TRUE(played.ok()) << played.status();
  auto league = ParseJobConfig(
      "game: kuhn_poker\npolicy: {kind: transformer}\n"
      "evaluation: {opponents: [random], league_games: 10}\n",
      "e.yaml");
  ASSERT_FALSE(league.ok());
  EXPECT_NE(Message(league).find("evaluation.league_games: league rounds are not served for a "
                                 "transformer policy yet"),
            std::string::npos)
      << Message(league);
  auto exact = ParseJobConfig(
      "game: kuhn_poker\npolicy: {kind: transformer}\n"
      "evaluation: {opponents: [best_response]}\n",
      "x.yaml");
  EXPECT_TRUE(exact.ok()) << exact.status();
}

TEST(JobConfig, TransformerVtraceAndTheLegalAnswerMagnet) {
  // V-trace has a token form (a value head on the last prompt token).
  auto vtrace = ParseJobConfig(
      "game: tictactoe\npolicy: {kind: transformer}\nlearner: {algorithm: vtrace}\n", "v.yaml");
  EXPECT_TRUE(vtrace.ok()) << vtrace.status();
  // The magnet is uniform over the legal answers, each one token: the game tokenizer's.
  auto game = ParseJobConfig(
      "game: kuhn_poker\npolicy: {kind: transformer, tokenizer: game, vocab: 263}\n"
      "learner: {algorithm: vtrace, magnet: uniform, magnet_coef: 0.2, magnet_coef_final: 0.05,"
      " magnet_decay_steps: 100}\n"
      "evaluation: {opponents: [best_response]}\n",
      "m.yaml");
  ASSERT_TRUE(game.ok()) << game.status();
  EXPECT_DOUBLE_EQ(game->learner.magnet_coef_schedule().At(50), 0.125);
  auto bytes = ParseJobConfig(
      "game: kuhn_poker\npolicy: {kind: transformer}\nlearner: {magnet_coef: 0.2}\n", "b.yaml");
  ASSERT_FALSE(bytes.ok());
  EXPECT_NE(Message(bytes).find("learner.magnet: uniform over the legal answers needs every "
                                "answer to be one token: policy.tokenizer game, not 'byte'"),
            std::string::npos)
      << Message(bytes);
  // Only a final coefficient still makes a magnet.
  auto final_only = ParseJobConfig(
      "game: kuhn_poker\npolicy: {kind: transformer}\nlearner: {magnet_coef_final: 0.1}\n",
      "f.yaml");
  EXPECT_FALSE(final_only.ok());
  auto ema = ParseJobConfig(
      "game: kuhn_poker\npolicy: {kind: transformer, tokenizer: game, vocab: 263}\n"
      "learner: {magnet: ema, magnet_coef: 0.2}\n",
      "e.yaml");
  ASSERT_FALSE(ema.ok());
  EXPECT_NE(Message(ema).find("learner.magnet: 'ema' has no token-level form"), std::string::npos)
      << Message(ema);
}

}  // namespace
}  // namespace rally
