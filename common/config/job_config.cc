#include "common/config/job_config.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/config/yaml_reader.h"
#include "common/eval/opponents.h"
#include "common/games/registry.h"
#include "common/games/text_game.h"
#include "common/util/durable_file.h"

namespace rally {
namespace {

template <typename T>
void RequireAtLeast(YamlReader& r, const YAML::Node& map, const std::string& path,
                    const std::string& key, T value, T minimum) {
  if (value < minimum) r.Error(map, path, key, absl::StrCat("must be at least ", minimum));
}

void ReadTransformerShape(YamlReader& r, const YAML::Node& p, PolicyConfig* policy) {
  const std::string pp = "policy";
  TransformerConfig& t = policy->transformer;
  t.vocab = 0;  // the tokenizer's size unless given
  r.Read(p, pp, "layers", &t.layers);
  r.Read(p, pp, "d_model", &t.d_model);
  r.Read(p, pp, "heads", &t.heads);
  t.kv_heads = t.heads;
  r.Read(p, pp, "kv_heads", &t.kv_heads);
  r.Read(p, pp, "head_dim", &t.head_dim);
  r.Read(p, pp, "d_ff", &t.d_ff);
  r.Read(p, pp, "vocab", &t.vocab);
  r.Read(p, pp, "max_seq_len", &t.max_seq_len);
  r.Read(p, pp, "rope_theta", &t.rope_theta);
  r.Read(p, pp, "rms_norm_eps", &t.rms_norm_eps);
  r.Read(p, pp, "tie_embeddings", &t.tie_embeddings);
  r.Read(p, pp, "qk_norm", &t.qk_norm);
  r.Read(p, pp, "attention_bias", &t.attention_bias);
  RequireAtLeast(r, p, pp, "layers", t.layers, 1);
  RequireAtLeast(r, p, pp, "d_model", t.d_model, 1);
  RequireAtLeast(r, p, pp, "heads", t.heads, 1);
  RequireAtLeast(r, p, pp, "kv_heads", t.kv_heads, 1);
  RequireAtLeast(r, p, pp, "head_dim", t.head_dim, 0);
  RequireAtLeast(r, p, pp, "d_ff", t.d_ff, 1);
  RequireAtLeast(r, p, pp, "max_seq_len", t.max_seq_len, 16);
  RequireAtLeast(r, p, pp, "rms_norm_eps", t.rms_norm_eps, 0.0);
  if (t.rope_theta <= 0) r.Error(p, pp, "rope_theta", "must be positive");
  if (t.heads >= 1 && t.kv_heads >= 1 && t.heads % t.kv_heads != 0) {
    r.Error(p, pp, "kv_heads", absl::StrCat("must divide heads (", t.heads, ")"));
  }
  if (t.head_dim == 0 && t.heads >= 1 && t.d_model % t.heads != 0) {
    r.Error(p, pp, "heads",
            absl::StrCat("must divide d_model (", t.d_model, ") unless head_dim is given"));
  }
  if (t.heads >= 1 && t.HeadDim() % 2 != 0) {
    r.Error(p, pp, "head_dim",
            absl::StrCat("the head width ", t.HeadDim(),
                         " must be even (rotary embeddings rotate pairs)"));
  }
}

// The tokenizer and vocabulary: "byte" has kByteTokenizerVocab ids; a tokenizer.json file needs
// `vocab` (the model's embedding rows, at least the file's size) unless `from` gives it.
void ResolveTokenizer(YamlReader& r, const YAML::Node& p, PolicyConfig* policy) {
  TransformerConfig& t = policy->transformer;
  if (policy->tokenizer.empty() && policy->from.empty()) policy->tokenizer = "byte";
  if (!policy->from.empty()) return;
  if (policy->tokenizer == "byte") {
    if (t.vocab == 0) t.vocab = kByteTokenizerVocab;
    if (t.vocab < kByteTokenizerVocab) {
      r.Error(p, "policy", "vocab",
              absl::StrCat("must be at least ", kByteTokenizerVocab, " for the byte tokenizer"));
    }
  } else if (t.vocab < 1) {
    r.Error(p, "policy", "vocab", "required with a tokenizer file: the model's embedding rows");
  }
}

// The magnet of a transformer policy: uniform over the legal answers, each of which must be one
// token (common/rl/token_losses.h) — what the game tokenizer gives and the others do not.
void CheckTokenMagnet(YamlReader& r, const YAML::Node& learner, const PolicyConfig& policy,
                      const LearnerConfig& lc) {
  if (lc.magnet_coef <= 0 && lc.magnet_coef_final <= 0) return;
  if (lc.magnet != "uniform") {
    r.Error(learner, "learner", "magnet",
            absl::StrCat("'", lc.magnet,
                         "' has no token-level form; a transformer policy's magnet is uniform "
                         "(over the legal answers)"));
  } else if (policy.tokenizer != "game") {
    r.Error(learner, "learner", "magnet",
            absl::StrCat("uniform over the legal answers needs every answer to be one token: "
                         "policy.tokenizer game, not '",
                         policy.tokenizer.empty() ? "from's tokenizer" : policy.tokenizer,
                         "' (its answers are several tokens)"));
  }
}

void ReadTransformer(YamlReader& r, const YAML::Node& p, const std::string& game,
                     PolicyConfig* policy) {
  const std::string pp = "policy";
  r.Read(p, pp, "from", &policy->from);
  for (const char* key :
       {"layers", "d_model", "heads", "kv_heads", "head_dim", "d_ff", "vocab", "max_seq_len",
        "rope_theta", "rms_norm_eps", "tie_embeddings", "qk_norm", "attention_bias"}) {
    if (!policy->from.empty() && p[key]) {
      r.Error(p, pp, key,
              "not allowed beside `from`: the model's shape comes from its config.json");
    }
  }
  if (policy->from.empty()) ReadTransformerShape(r, p, policy);
  r.Read(p, pp, "tokenizer", &policy->tokenizer);
  ResolveTokenizer(r, p, policy);
  r.Read(p, pp, "prompt", &policy->prompt);
  if (!ParsePromptStyle(policy->prompt).ok()) {
    r.Error(p, pp, "prompt", absl::StrCat("'", policy->prompt, "': one of compact, spiral"));
  }
  r.Read(p, pp, "temperature", &policy->temperature);
  r.Read(p, pp, "top_p", &policy->top_p);
  r.Read(p, pp, "top_k", &policy->top_k);
  r.Read(p, pp, "max_new_tokens", &policy->max_new_tokens);
  r.Read(p, pp, "max_turns", &policy->max_turns);
  RequireAtLeast(r, p, pp, "temperature", policy->temperature, 0.0);
  if (policy->top_p <= 0 || policy->top_p > 1) r.Error(p, pp, "top_p", "must lie in (0, 1]");
  RequireAtLeast(r, p, pp, "top_k", policy->top_k, 0);
  RequireAtLeast(r, p, pp, "max_new_tokens", policy->max_new_tokens, 1);
  RequireAtLeast(r, p, pp, "max_turns", policy->max_turns, 0);
  if (!FindTextRendering(game).ok()) {
    std::string games;
    for (const std::string& g : GamesWithTextRendering())
      absl::StrAppend(&games, games.empty() ? "" : ", ", g);
    r.Error(p, pp, "kind",
            absl::StrCat("a transformer plays the game as text, and '", game,
                         "' has no text rendering (games with one: ", games, ")"));
  }
}

void ReadPolicy(YamlReader& r, const YAML::Node& top, const std::string& game,
                PolicyConfig* policy) {
  YAML::Node p = r.Section(top, "", "policy");
  r.Read(p, "policy", "kind", &policy->kind);
  if (policy->kind == "transformer") {
    r.CheckKeys(p, "policy",
                {"kind",           "layers",         "d_model",     "heads",          "kv_heads",
                 "head_dim",       "d_ff",           "vocab",       "max_seq_len",    "rope_theta",
                 "rms_norm_eps",   "tie_embeddings", "qk_norm",     "attention_bias", "from",
                 "tokenizer",      "prompt",         "temperature", "top_p",          "top_k",
                 "max_new_tokens", "max_turns"});
    ReadTransformer(r, p, game, policy);
    return;
  }
  if (policy->kind != "mlp") {
    r.Error(p, "policy", "kind", absl::StrCat("'", policy->kind, "': one of mlp, transformer"));
    return;
  }
  r.CheckKeys(p, "policy", {"kind", "hidden"});
  r.Read(p, "policy", "hidden", &policy->hidden);
  if (policy->hidden.empty()) r.Error(top, "", "policy", "policy.hidden needs at least one layer");
  for (int h : policy->hidden) {
    if (h < 1 || h > 65536) r.Error(p, "policy", "hidden", "widths must lie in [1, 65536]");
  }
}

void ReadGame(YamlReader& r, const YAML::Node& root, GameConfig* game) {
  YAML::Node node = root["game"];
  if (!node) {
    r.ErrorAt(root, "game: required key missing");
    return;
  }
  // Accept both `game: tictactoe` and `game: {name: tictactoe}`.
  if (node.IsScalar()) {
    game->name = node.Scalar();
    auto loaded = LoadGame(game->name);
    if (!loaded.ok()) r.Error(root, "", "game", std::string(loaded.status().message()));
    return;
  }
  YAML::Node g = r.Section(root, "", "game");
  r.CheckKeys(g, "game", {"name", "params"});
  r.Read(g, "game", "name", &game->name, /*required=*/true);
  const YAML::Node params = r.Section(g, "game", "params");
  for (const auto& kv : params) {
    const std::string key = kv.first.Scalar();
    if (!kv.second.IsScalar()) {
      r.Error(params, "game.params", key, "must be a single value");
      continue;
    }
    game->params[key] = kv.second.Scalar();
  }
  if (!game->name.empty()) {
    auto loaded = LoadGame(game->name, game->params);
    if (!loaded.ok()) {
      r.Error(g, "game", game->params.empty() ? "name" : "params",
              std::string(loaded.status().message()));
    }
  }
}

void ReadReplay(YamlReader& r, const YAML::Node& top, ReplayConfig* replay) {
  const YAML::Node node = r.Section(top, "", "replay");
  const std::string rp = "replay";
  r.CheckKeys(node, rp, {"tables", "fsync", "fsync_interval_ms", "snapshot_every_seconds"});
  r.Read(node, rp, "fsync", &replay->fsync);
  r.Read(node, rp, "fsync_interval_ms", &replay->fsync_interval_ms);
  r.Read(node, rp, "snapshot_every_seconds", &replay->snapshot_every_seconds);
  if (replay->fsync != "every_batch" && replay->fsync != "interval" && replay->fsync != "never") {
    r.Error(node, rp, "fsync", "must be every_batch, interval or never");
  }
  RequireAtLeast(r, node, rp, "fsync_interval_ms", replay->fsync_interval_ms, 1);
  RequireAtLeast(r, node, rp, "snapshot_every_seconds", replay->snapshot_every_seconds, 0.0);
  const YAML::Node tables = node["tables"];
  if (!tables) return;
  if (!tables.IsSequence() || tables.size() == 0) {
    r.ErrorAt(tables, "replay.tables: expected a non-empty list of tables");
    return;
  }
  const std::vector<std::string> selectors = {"fifo",        "lifo",     "uniform",
                                              "prioritized", "max_heap", "min_heap"};
  replay->tables.clear();
  for (size_t i = 0; i < tables.size(); ++i) {
    const YAML::Node t = tables[i];
    std::string tp = absl::StrCat("replay.tables[", i, "]");
    if (!t.IsMap()) {
      r.ErrorAt(t, tp + ": expected a mapping");
      continue;
    }
    ReplayTableConfig tc;
    r.CheckKeys(t, tp,
                {"name", "sampler", "remover", "max_size", "max_bytes", "max_times_sampled",
                 "priority_exponent", "importance_sampling_exponent", "max_staleness",
                 "rate_limiter", "samples_per_insert", "min_size_to_sample", "error_buffer"});
    r.Read(t, tp, "name", &tc.name, /*required=*/true);
    r.Read(t, tp, "sampler", &tc.sampler);
    r.Read(t, tp, "remover", &tc.remover);
    r.Read(t, tp, "max_size", &tc.max_size);
    r.Read(t, tp, "max_bytes", &tc.max_bytes);
    r.Read(t, tp, "max_times_sampled", &tc.max_times_sampled);
    r.Read(t, tp, "priority_exponent", &tc.priority_exponent);
    r.Read(t, tp, "importance_sampling_exponent", &tc.importance_sampling_exponent);
    r.Read(t, tp, "max_staleness", &tc.max_staleness);
    r.Read(t, tp, "rate_limiter", &tc.rate_limiter);
    r.Read(t, tp, "samples_per_insert", &tc.samples_per_insert);
    r.Read(t, tp, "min_size_to_sample", &tc.min_size_to_sample);
    r.Read(t, tp, "error_buffer", &tc.error_buffer);
    for (const char* key : {"sampler", "remover"}) {
      const std::string& v = std::string(key) == "sampler" ? tc.sampler : tc.remover;
      if (std::find(selectors.begin(), selectors.end(), v) == selectors.end()) {
        r.Error(t, tp, key,
                "unknown selector '" + v +
                    "' (known: fifo, lifo, uniform, prioritized, max_heap, min_heap)");
      }
    }
    if (tc.rate_limiter != "queue" && tc.rate_limiter != "min_size" && tc.rate_limiter != "ratio") {
      r.Error(t, tp, "rate_limiter", "must be queue, min_size or ratio");
    }
    RequireAtLeast(r, t, tp, "max_size", tc.max_size, 1L);
    RequireAtLeast(r, t, tp, "max_bytes", tc.max_bytes, 1L);
    RequireAtLeast(r, t, tp, "max_times_sampled", tc.max_times_sampled, 0);
    RequireAtLeast(r, t, tp, "priority_exponent", tc.priority_exponent, 0.0);
    RequireAtLeast(r, t, tp, "importance_sampling_exponent", tc.importance_sampling_exponent, 0.0);
    RequireAtLeast(r, t, tp, "max_staleness", tc.max_staleness, 0L);
    RequireAtLeast(r, t, tp, "min_size_to_sample", tc.min_size_to_sample, 1L);
    RequireAtLeast(r, t, tp, "error_buffer", tc.error_buffer, 0.0);
    if (tc.samples_per_insert <= 0) r.Error(t, tp, "samples_per_insert", "must be positive");
    if (tc.min_size_to_sample > tc.max_size) {
      r.Error(t, tp, "min_size_to_sample", "exceeds max_size: nothing could ever be sampled");
    }
    for (const auto& other : replay->tables) {
      if (other.name == tc.name) r.Error(t, tp, "name", "duplicate table name '" + tc.name + "'");
    }
    replay->tables.push_back(tc);
  }
}

// Reports `name` unless it is an opponent `game` supports.
void CheckOpponent(YamlReader& r, const YAML::Node& map, const std::string& path,
                   const std::string& key, const std::string& name, const std::string& game) {
  if (name == "best_response") {
    if (game != "tictactoe" && game != "kuhn_poker" && game != "leduc_poker") {
      r.Error(map, path, key,
              "best_response (exact exploitability) needs the full game tree: tictactoe, "
              "kuhn_poker or leduc_poker, not '" +
                  game + "'");
    }
    return;
  }
  auto g = LoadGame(game);
  if (!g.ok()) return;  // reported with game.name
  auto o = MakeOpponent(name, **g);
  if (!o.ok()) r.Error(map, path, key, std::string(o.status().message()));
}

// The self-play rule (DESIGN.md): a positive share for an opponent from outside the job is
// allowed, but marks the job as not self-play and warns at the opponent's key.
void CheckSelfPlay(const YAML::Node& opponents, const std::string& source, JobConfig* c) {
  for (const auto& [name, share] : c->actors.opponents) {
    if (share <= 0 || IsSelfPlayOpponent(name)) continue;
    c->self_play = false;
    const YAML::Mark mark = opponents[name].Mark();
    const std::string where =
        mark.line < 0 ? source : absl::StrCat(source, ":", mark.line + 1, ":", mark.column + 1);
    c->warnings.push_back(absl::StrCat(
        where, ": actors.opponents.", name, ": '", name,
        "' is not a self-play opponent (DESIGN.md, Self-play rule): the job trains against it "
        "on purpose and its result is not a self-play result (summary \"self_play\": false). "
        "Self-play opponents: the policy itself, its snapshots (curriculum.opponent_selection "
        "uniform or pfsp) and random"));
  }
}

// The keys of a mapping, in order.
std::vector<std::string> Keys(const YAML::Node& map) {
  std::vector<std::string> keys;
  if (!map.IsMap()) return keys;
  for (auto it = map.begin(); it != map.end(); ++it) keys.push_back(it->first.Scalar());
  return keys;
}

void ReadTarget(YamlReader& r, const YAML::Node& root, std::map<std::string, OpponentTarget>* out,
                const std::vector<std::string>& opponents, const std::string& game) {
  const YAML::Node t = r.Section(root, "", "target");
  for (const std::string& opp : Keys(t)) {
    CheckOpponent(r, t, "target", opp, opp, game);
    std::string path = absl::StrCat("target.", opp);
    const YAML::Node o = r.Section(t, "target", opp);
    r.CheckKeys(o, path, {"max_losses", "min_win_rate", "max_exploitability"});
    OpponentTarget target;
    if (o["max_exploitability"]) {
      double v = 0;
      r.Read(o, path, "max_exploitability", &v);
      RequireAtLeast(r, o, path, "max_exploitability", v, 0.0);
      target.max_exploitability = v;
    }
    if (o["max_losses"]) {
      long v = 0;
      r.Read(o, path, "max_losses", &v);
      RequireAtLeast(r, o, path, "max_losses", v, 0L);
      target.max_losses = v;
    }
    if (o["min_win_rate"]) {
      double v = 0;
      r.Read(o, path, "min_win_rate", &v);
      if (v < 0 || v > 1) r.Error(o, path, "min_win_rate", "must lie in [0, 1]");
      target.min_win_rate = v;
    }
    if (std::find(opponents.begin(), opponents.end(), opp) == opponents.end()) {
      r.Error(t, "target", opp, "has a target but is not in evaluation.opponents");
    }
    (*out)[opp] = target;
  }
}

}  // namespace

bool IsSelfPlayOpponent(const std::string& name) { return name == "random"; }

double LinearSchedule::At(long step) const {
  if (final_value < 0 || decay_steps <= 0) return initial;
  double frac = std::min(1.0, static_cast<double>(step) / decay_steps);
  return initial + (final_value - initial) * frac;
}

absl::StatusOr<JobConfig> ParseJobConfig(const std::string& yaml_text, const std::string& source) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(source, ":", e.mark.line + 1, ":",
                                                   e.mark.column + 1, ": invalid YAML: ", e.msg));
  }
  if (!root.IsMap()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": a job spec must be a YAML mapping"));
  }
  const YAML::Node& top = root;
  YamlReader r(source);
  JobConfig c;
  c.source = source;
  r.CheckKeys(top, "",
              {"name", "seed", "game", "policy", "actors", "replay", "learner", "evaluation",
               "stop", "target", "curriculum"});
  r.Read(top, "", "name", &c.name);
  r.Read(top, "", "seed", &c.seed);
  ReadGame(r, top, &c.game);

  ReadPolicy(r, top, c.game.name, &c.policy);

  YAML::Node actors = r.Section(top, "", "actors");
  const std::string ap = "actors";
  r.CheckKeys(actors, ap,
              {"count", "envs_per_actor", "threads", "max_batch", "batch_timeout_us", "opponents",
               "kv_cache_tokens"});
  {
    const YAML::Node opp = r.Section(actors, ap, "opponents");
    double total = 0;
    for (const std::string& name : Keys(opp)) {
      CheckOpponent(r, opp, "actors.opponents", name, name, c.game.name);
      double share = 0;
      r.Read(opp, "actors.opponents", name, &share);
      if (share < 0 || share > 1) r.Error(opp, "actors.opponents", name, "must lie in [0, 1]");
      total += share;
      c.actors.opponents[name] = share;
    }
    if (total > 1 + 1e-9) r.Error(actors, ap, "opponents", "shares sum to more than 1");
    CheckSelfPlay(opp, source, &c);
  }
  r.Read(actors, ap, "count", &c.actors.count);
  r.Read(actors, ap, "envs_per_actor", &c.actors.envs_per_actor);
  r.Read(actors, ap, "threads", &c.actors.threads);
  r.Read(actors, ap, "max_batch", &c.actors.max_batch);
  r.Read(actors, ap, "batch_timeout_us", &c.actors.batch_timeout_us);
  RequireAtLeast(r, actors, ap, "count", c.actors.count, 1);
  RequireAtLeast(r, actors, ap, "envs_per_actor", c.actors.envs_per_actor, 1);
  RequireAtLeast(r, actors, ap, "threads", c.actors.threads, 1);
  RequireAtLeast(r, actors, ap, "max_batch", c.actors.max_batch, 1);
  RequireAtLeast(r, actors, ap, "batch_timeout_us", c.actors.batch_timeout_us, 0);
  r.Read(actors, ap, "kv_cache_tokens", &c.actors.kv_cache_tokens);
  RequireAtLeast(r, actors, ap, "kv_cache_tokens", c.actors.kv_cache_tokens, 0L);

  ReadReplay(r, top, &c.replay);

  YAML::Node learner = r.Section(top, "", "learner");
  const std::string lp = "learner";
  LearnerConfig& lc = c.learner;
  r.CheckKeys(learner, lp,
              {"algorithm",
               "batch_episodes",
               "batch_tokens",
               "mask_cut_answers",
               "epochs_per_batch",
               "objective",
               "learning_rate",
               "learning_rate_final",
               "learning_rate_decay_steps",
               "entropy_coef",
               "entropy_coef_final",
               "entropy_decay_steps",
               "baseline_decay",
               "importance_weight_cap",
               "clip_epsilon",
               "value_coef",
               "discount",
               "vtrace_lambda",
               "vtrace_c_bar",
               "kl_coef",
               "kl_reference_update_steps",
               "magnet_coef",
               "magnet_coef_final",
               "magnet_decay_steps",
               "magnet",
               "magnet_ema_decay",
               "publish_every_steps",
               "checkpoint_every_steps",
               "keep_checkpoints",
               "snapshot_every_versions",
               "snapshot_pool_size",
               "device",
               "table"});
  r.Read(learner, lp, "keep_checkpoints", &lc.keep_checkpoints);
  RequireAtLeast(r, learner, lp, "keep_checkpoints", lc.keep_checkpoints, 1);
  r.Read(learner, lp, "snapshot_every_versions", &lc.snapshot_every_versions);
  RequireAtLeast(r, learner, lp, "snapshot_every_versions", lc.snapshot_every_versions, 0L);
  r.Read(learner, lp, "snapshot_pool_size", &lc.snapshot_pool_size);
  RequireAtLeast(r, learner, lp, "snapshot_pool_size", lc.snapshot_pool_size, 1);
  r.Read(learner, lp, "table", &lc.table);
  r.Read(learner, lp, "algorithm", &lc.algorithm);
  r.Read(learner, lp, "batch_episodes", &lc.batch_episodes);
  r.Read(learner, lp, "batch_tokens", &lc.batch_tokens);
  r.Read(learner, lp, "mask_cut_answers", &lc.mask_cut_answers);
  r.Read(learner, lp, "epochs_per_batch", &lc.epochs_per_batch);
  r.Read(learner, lp, "objective", &lc.objective);
  if (lc.objective != "return" && lc.objective != "win") {
    r.Error(learner, lp, "objective",
            "unknown objective '" + lc.objective + "' (known: return, win)");
  }
  r.Read(learner, lp, "learning_rate", &lc.learning_rate);
  r.Read(learner, lp, "learning_rate_final", &lc.learning_rate_final);
  r.Read(learner, lp, "learning_rate_decay_steps", &lc.learning_rate_decay_steps);
  RequireAtLeast(r, learner, lp, "learning_rate_decay_steps", lc.learning_rate_decay_steps, 0L);
  r.Read(learner, lp, "entropy_coef", &lc.entropy_coef);
  r.Read(learner, lp, "entropy_coef_final", &lc.entropy_coef_final);
  r.Read(learner, lp, "entropy_decay_steps", &lc.entropy_decay_steps);
  r.Read(learner, lp, "baseline_decay", &lc.baseline_decay);
  r.Read(learner, lp, "importance_weight_cap", &lc.importance_weight_cap);
  RequireAtLeast(r, learner, lp, "importance_weight_cap", lc.importance_weight_cap, 0.0);
  r.Read(learner, lp, "clip_epsilon", &lc.clip_epsilon);
  r.Read(learner, lp, "value_coef", &lc.value_coef);
  r.Read(learner, lp, "discount", &lc.discount);
  r.Read(learner, lp, "vtrace_lambda", &lc.vtrace_lambda);
  r.Read(learner, lp, "vtrace_c_bar", &lc.vtrace_c_bar);
  r.Read(learner, lp, "kl_coef", &lc.kl_coef);
  r.Read(learner, lp, "kl_reference_update_steps", &lc.kl_reference_update_steps);
  r.Read(learner, lp, "magnet_coef", &lc.magnet_coef);
  r.Read(learner, lp, "magnet_coef_final", &lc.magnet_coef_final);
  r.Read(learner, lp, "magnet_decay_steps", &lc.magnet_decay_steps);
  r.Read(learner, lp, "magnet", &lc.magnet);
  r.Read(learner, lp, "magnet_ema_decay", &lc.magnet_ema_decay);
  r.Read(learner, lp, "publish_every_steps", &lc.publish_every_steps);
  r.Read(learner, lp, "checkpoint_every_steps", &lc.checkpoint_every_steps);
  r.Read(learner, lp, "device", &lc.device);
  if (lc.algorithm != "reinforce_rae" && lc.algorithm != "ppo" && lc.algorithm != "vtrace") {
    r.Error(learner, lp, "algorithm",
            "unknown algorithm '" + lc.algorithm + "' (known: reinforce_rae, ppo, vtrace)");
  }
  RequireAtLeast(r, learner, lp, "batch_episodes", lc.batch_episodes, 1);
  RequireAtLeast(r, learner, lp, "batch_tokens", lc.batch_tokens, 1L);
  if (c.policy.is_transformer()) CheckTokenMagnet(r, learner, c.policy, lc);
  RequireAtLeast(r, learner, lp, "epochs_per_batch", lc.epochs_per_batch, 1);
  if (lc.learning_rate <= 0) r.Error(learner, lp, "learning_rate", "must be positive");
  RequireAtLeast(r, learner, lp, "entropy_coef", lc.entropy_coef, 0.0);
  RequireAtLeast(r, learner, lp, "entropy_decay_steps", lc.entropy_decay_steps, 0L);
  if (lc.baseline_decay < 0 || lc.baseline_decay >= 1) {
    r.Error(learner, lp, "baseline_decay", "must lie in [0, 1)");
  }
  if (lc.clip_epsilon <= 0) r.Error(learner, lp, "clip_epsilon", "must be positive");
  RequireAtLeast(r, learner, lp, "value_coef", lc.value_coef, 0.0);
  if (lc.discount <= 0 || lc.discount > 1) r.Error(learner, lp, "discount", "must lie in (0, 1]");
  if (lc.vtrace_lambda < 0 || lc.vtrace_lambda > 1) {
    r.Error(learner, lp, "vtrace_lambda", "must lie in [0, 1]");
  }
  RequireAtLeast(r, learner, lp, "vtrace_c_bar", lc.vtrace_c_bar, 0.0);
  RequireAtLeast(r, learner, lp, "kl_coef", lc.kl_coef, 0.0);
  RequireAtLeast(r, learner, lp, "kl_reference_update_steps", lc.kl_reference_update_steps, 0L);
  RequireAtLeast(r, learner, lp, "magnet_coef", lc.magnet_coef, 0.0);
  RequireAtLeast(r, learner, lp, "magnet_decay_steps", lc.magnet_decay_steps, 0L);
  if (lc.magnet != "uniform" && lc.magnet != "ema") {
    r.Error(learner, lp, "magnet", "unknown magnet '" + lc.magnet + "' (known: uniform, ema)");
  }
  if (lc.magnet_ema_decay < 0 || lc.magnet_ema_decay >= 1) {
    r.Error(learner, lp, "magnet_ema_decay", "must lie in [0, 1)");
  }
  RequireAtLeast(r, learner, lp, "publish_every_steps", lc.publish_every_steps, 1);
  RequireAtLeast(r, learner, lp, "checkpoint_every_steps", lc.checkpoint_every_steps, 0L);
  const std::string& dev = lc.device;
  if (dev != "auto" && dev != "cpu" && dev.rfind("cuda", 0) != 0) {
    r.Error(learner, lp, "device", "must be auto, cpu or cuda:N");
  }

  YAML::Node eval = r.Section(top, "", "evaluation");
  const std::string ep = "evaluation";
  r.CheckKeys(eval, ep, {"games", "every_seconds", "greedy", "opponents", "league_games"});
  r.Read(eval, ep, "games", &c.evaluation.games);
  r.Read(eval, ep, "every_seconds", &c.evaluation.every_seconds);
  r.Read(eval, ep, "greedy", &c.evaluation.greedy);
  r.Read(eval, ep, "opponents", &c.evaluation.opponents);
  r.Read(eval, ep, "league_games", &c.evaluation.league_games);
  if (c.policy.is_transformer() && c.evaluation.league_games > 0) {
    r.Error(eval, ep, "league_games",
            "league rounds are not served for a transformer policy yet: evaluate it exactly "
            "(best_response) or against fixed opponents (docs/lm.md)");
  }
  RequireAtLeast(r, eval, ep, "games", c.evaluation.games, 2);
  RequireAtLeast(r, eval, ep, "league_games", c.evaluation.league_games, 0);
  RequireAtLeast(r, eval, ep, "every_seconds", c.evaluation.every_seconds, 0.0);
  for (const std::string& o : c.evaluation.opponents) {
    CheckOpponent(r, eval, ep, "opponents", o, c.game.name);
  }

  const YAML::Node cur = r.Section(top, "", "curriculum");
  const std::string cp = "curriculum";
  CurriculumConfig& cc = c.curriculum;
  r.CheckKeys(cur, cp,
              {"window", "opponent_selection", "pfsp_weighting", "pfsp_exponent", "self_play_share",
               "prior_win_rate", "task_floor", "prior_success_rate", "tasks"});
  r.Read(cur, cp, "window", &cc.window);
  r.Read(cur, cp, "opponent_selection", &cc.opponent_selection);
  r.Read(cur, cp, "pfsp_weighting", &cc.pfsp_weighting);
  r.Read(cur, cp, "pfsp_exponent", &cc.pfsp_exponent);
  r.Read(cur, cp, "self_play_share", &cc.self_play_share);
  r.Read(cur, cp, "prior_win_rate", &cc.prior_win_rate);
  r.Read(cur, cp, "task_floor", &cc.task_floor);
  r.Read(cur, cp, "prior_success_rate", &cc.prior_success_rate);
  r.Read(cur, cp, "tasks", &cc.tasks);
  RequireAtLeast(r, cur, cp, "window", cc.window, 1L);
  if (cc.opponent_selection != "latest" && cc.opponent_selection != "uniform" &&
      cc.opponent_selection != "pfsp") {
    r.Error(cur, cp, "opponent_selection", "must be latest, uniform or pfsp");
  }
  if (cc.pfsp_weighting != "hard" && cc.pfsp_weighting != "variance") {
    r.Error(cur, cp, "pfsp_weighting", "must be hard or variance");
  }
  for (const char* key :
       {"self_play_share", "prior_win_rate", "task_floor", "prior_success_rate"}) {
    double v = std::string(key) == "self_play_share"  ? cc.self_play_share
               : std::string(key) == "prior_win_rate" ? cc.prior_win_rate
               : std::string(key) == "task_floor"     ? cc.task_floor
                                                      : cc.prior_success_rate;
    if (v < 0 || v > 1) r.Error(cur, cp, key, "must lie in [0, 1]");
  }
  RequireAtLeast(r, cur, cp, "pfsp_exponent", cc.pfsp_exponent, 0.0);
  if (cc.opponent_selection != "latest" && c.learner.snapshot_every_versions == 0) {
    r.Error(cur, cp, "opponent_selection",
            cc.opponent_selection +
                " picks opponents from the learner's snapshot pool: set "
                "learner.snapshot_every_versions > 0");
  }

  YAML::Node stop = r.Section(top, "", "stop");
  r.CheckKeys(stop, "stop", {"max_wall_seconds", "max_learner_steps"});
  r.Read(stop, "stop", "max_wall_seconds", &c.stop.max_wall_seconds);
  r.Read(stop, "stop", "max_learner_steps", &c.stop.max_learner_steps);
  RequireAtLeast(r, stop, "stop", "max_wall_seconds", c.stop.max_wall_seconds, 0.0);
  RequireAtLeast(r, stop, "stop", "max_learner_steps", c.stop.max_learner_steps, 0L);

  ReadTarget(r, top, &c.target, c.evaluation.opponents, c.game.name);

  if (c.stop.max_wall_seconds == 0 && c.stop.max_learner_steps == 0 && c.target.empty()) {
    r.ErrorAt(top,
              "the job never ends: set stop.max_wall_seconds, stop.max_learner_steps or a "
              "target");
  }
  if (c.learner.table.empty() && !c.replay.tables.empty()) {
    c.learner.table = c.replay.tables.front().name;
  }
  bool table_found = false;
  for (const auto& t : c.replay.tables) table_found |= t.name == c.learner.table;
  if (!table_found)
    r.Error(learner, lp, "table", "no replay table named '" + c.learner.table + "'");
  if (!r.status().ok()) return r.status();
  if (c.name.empty()) c.name = c.game.name;
  return c;
}

absl::StatusOr<JobConfig> LoadJobConfig(const std::string& path) {
  absl::StatusOr<std::string> text = ReadFileBytes(path);
  if (!text.ok()) {
    return absl::Status(text.status().code(),
                        absl::StrCat("cannot read the job spec: ", text.status().message()));
  }
  return ParseJobConfig(*text, path);
}

}  // namespace rally
