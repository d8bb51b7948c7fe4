// `rally run` end to end: every process of the cluster as a separate OS process on loopback.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "nlohmann/json.hpp"
#include "tests/integration/process.h"

namespace rally {
namespace {

using namespace std::chrono_literals;
using testing::ReadFile;
using testing::RunToCompletion;
using testing::SourcePath;

TEST(Cluster, AShortJobFlowsTrajectoriesTrainsAndUpdatesActors) {
  std::string dir = testing::TempDir("cluster");
  std::string workdir = dir + "/run";
  int code = RunToCompletion("rally",
                             {"run", SourcePath("tests/integration/configs/short.yaml"),
                              "--workdir=" + workdir, "--summary-json=" + dir + "/summary.json"},
                             dir + "/rally.out", 240s);
  ASSERT_EQ(code, 0) << ReadFile(dir + "/rally.out");
  auto summary = nlohmann::json::parse(ReadFile(dir + "/summary.json"));
  // The job ends by its step limit (it sets no target).
  EXPECT_EQ(summary["state"], "SUCCEEDED") << summary.dump(2);
  EXPECT_EQ(summary["learner_steps"].get<int64_t>(), 100);  // the learner stops at the limit
  // Trajectories flowed: the learner consumed 16 episodes per step.
  EXPECT_GE(summary["trajectories_inserted"].get<int64_t>(), 100 * 16);
  EXPECT_GE(summary["episodes"].get<int64_t>(), 100 * 16);
  // Actors received newer weights than the initial version 0.
  EXPECT_GE(summary["actor_policy_version_max"].get<int64_t>(), 1);
  EXPECT_EQ(summary["policy_version"].get<int64_t>(), 50);  // published every 2 steps
  // The evaluator reported rounds against both opponents.
  for (const char* opponent : {"random", "perfect"}) {
    ASSERT_TRUE(summary["eval"].contains(opponent)) << summary.dump(2);
    const auto& e = summary["eval"][opponent];
    EXPECT_EQ(e["games"].get<int>(), 100) << opponent;
    EXPECT_EQ(e["wins"].get<int>() + e["draws"].get<int>() + e["losses"].get<int>(), 100);
  }
  EXPECT_EQ(summary["eval"]["perfect"]["wins"].get<int>(), 0);  // nobody beats perfect play
  EXPECT_EQ(summary["target_met"], false);
  // Everything the run made is under the workdir.
  for (const char* log : {"control", "replay", "learner", "evaluator", "actor-0", "actor-1"}) {
    EXPECT_TRUE(std::filesystem::exists(workdir + "/logs/" + log + ".log")) << log;
    // Each process shut down cleanly on the CLI's SIGTERM.
    EXPECT_NE(ReadFile(workdir + "/logs/" + log + ".log").find("\"msg\":\"stopped\""),
              std::string::npos)
        << log;
  }
  // Checkpoints every 10 steps; the newest three are kept, `latest` names the last.
  EXPECT_EQ(ReadFile(workdir + "/checkpoints/latest"), "step-100\n");
  EXPECT_TRUE(std::filesystem::exists(workdir + "/checkpoints/step-80/weights.safetensors"));
  EXPECT_FALSE(std::filesystem::exists(workdir + "/checkpoints/step-70"));
  auto manifest = nlohmann::json::parse(ReadFile(workdir + "/checkpoints/step-100/manifest.json"));
  EXPECT_EQ(manifest["learner_step"], 100);
  EXPECT_EQ(manifest["policy_version"], 50);
  ASSERT_TRUE(manifest["baselines"].is_array());
  EXPECT_EQ(manifest["baselines"].size(), 2u);  // one per seat
  EXPECT_TRUE(std::filesystem::exists(workdir + "/checkpoints/step-100/optimizer.safetensors"));
}

// A language-model policy through every process: actors generate answers on the generation
// worker, the replay stores token turns (it refuses, at insert, any turn without prompt tokens or
// whose behaviour log-probabilities do not number its generated tokens: docs/replay.md), the
// learner trains at token level and publishes, and the checkpoint exports to a Hugging Face
// directory that `rally lm-score` reads.
TEST(Cluster, ATextGameJobTrainsATransformerThroughEveryProcess) {
  std::string dir = testing::TempDir("cluster_text");
  std::string workdir = dir + "/run";
  int code = RunToCompletion("rally",
                             {"run", SourcePath("tests/integration/configs/kuhn_text.yaml"),
                              "--workdir=" + workdir, "--summary-json=" + dir + "/summary.json"},
                             dir + "/rally.out", 240s);
  ASSERT_EQ(code, 0) << ReadFile(dir + "/rally.out");
  auto summary = nlohmann::json::parse(ReadFile(dir + "/summary.json"));
  EXPECT_EQ(summary["state"], "SUCCEEDED") << summary.dump(2);
  EXPECT_EQ(summary["learner_steps"].get<int64_t>(), 30);
  EXPECT_EQ(summary["policy_version"].get<int64_t>(), 15);  // published every 2 steps
  EXPECT_GE(summary["trajectories_inserted"].get<int64_t>(), 30);
  EXPECT_GE(summary["actor_policy_version_max"].get<int64_t>(), 1);  // new weights reached actors
  // The evaluator scored the policy exactly: a random model's answers rarely parse, so most of
  // its probability is invalid answers, each a forfeit (offender -1.5, opponent +0.5).
  ASSERT_TRUE(summary["eval"].contains("best_response")) << summary.dump(2);
  const auto& exact = summary["eval"]["best_response"];
  EXPECT_GE(exact["policy_version"].get<int64_t>(), 1);
  EXPECT_GT(exact["invalid_answer_rate"].get<double>(), 0.5) << exact.dump();
  EXPECT_LE(exact["invalid_answer_rate"].get<double>(), 1.0) << exact.dump();
  EXPECT_GT(exact["exploitability"].get<double>(), 0.5) << exact.dump();
  EXPECT_LE(exact["exploitability"].get<double>(), 2.0) << exact.dump();
  // No insert was refused: every turn carried what the replay checks.
  const std::string actor_log = ReadFile(workdir + "/logs/actor-0.log");
  EXPECT_EQ(actor_log.find("INVALID_ARGUMENT"), std::string::npos) << actor_log.substr(0, 2000);
  auto manifest = nlohmann::json::parse(ReadFile(workdir + "/checkpoints/step-30/manifest.json"));
  EXPECT_EQ(manifest["policy_kind"], "transformer");
  EXPECT_EQ(manifest["tokenizer"], "byte");
  EXPECT_EQ(manifest["learner_step"], 30);

  const std::string hf = dir + "/hf";
  code = RunToCompletion("rally", {"export-hf", "--checkpoint=" + workdir, "--out=" + hf},
                         dir + "/export.out", 60s);
  ASSERT_EQ(code, 0) << ReadFile(dir + "/export.out");
  auto config = nlohmann::json::parse(ReadFile(hf + "/config.json"));
  EXPECT_EQ(config["model_type"], "llama");
  EXPECT_EQ(config["hidden_size"], 32);
  EXPECT_EQ(config["vocab_size"], 259);
  code = RunToCompletion("rally", {"lm-score", "--model=" + hf, "--token-ids=91,66,101,116,93,10"},
                         dir + "/score.out", 60s);
  ASSERT_EQ(code, 0) << ReadFile(dir + "/score.out");
  auto scored = nlohmann::json::parse(ReadFile(dir + "/score.out"));
  ASSERT_EQ(scored["log_probs"].size(), 5u);
  for (const auto& lp : scored["log_probs"]) {
    EXPECT_LT(lp.get<double>(), 0.0);
    EXPECT_GT(lp.get<double>(), -50.0);
  }
  // The run itself is a model for the lm tools: the same weights, the same scores.
  code = RunToCompletion("rally",
                         {"lm-score", "--model=" + workdir, "--token-ids=91,66,101,116,93,10"},
                         dir + "/score_run.out", 60s);
  ASSERT_EQ(code, 0) << ReadFile(dir + "/score_run.out");
  EXPECT_EQ(nlohmann::json::parse(ReadFile(dir + "/score_run.out")), scored);
  code = RunToCompletion("rally", {"lm-score", "--model=" + dir, "--token-ids=1,2"},
                         dir + "/score_none.out", 60s);
  EXPECT_EQ(code, 1);
  EXPECT_NE(ReadFile(dir + "/score_none.out").find("no checkpoint here"), std::string::npos)
      << ReadFile(dir + "/score_none.out");

  // scripts/plot_progress.py draws the run's progress file (exploitability by wall time and
  // steps): a PNG comes out.
  if (std::system("/usr/bin/python3 -c 'import matplotlib' 2>/dev/null") != 0) {
    ADD_FAILURE() << "python3-matplotlib is missing: run deploy/local/install-deps.sh";
  } else {
    const std::string png = dir + "/progress.png";
    const std::string plot = "/usr/bin/python3 " + testing::SourcePath("scripts/plot_progress.py") +
                             " " + workdir + "/progress.jsonl " + png + " > " + dir +
                             "/plot.out 2>&1";
    ASSERT_EQ(std::system(plot.c_str()), 0) << ReadFile(dir + "/plot.out");
    EXPECT_EQ(ReadFile(png).substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  }

  // A person plays the language model as text: a word that is no move is asked again; the
  // model's answers are generated and, when invalid, forfeit.
  std::string command = "printf 'castle\\nBet\\nCall\\nFold\\nCheck\\nBet\\n' | " +
                        testing::BinPath("rally") + " play --checkpoint=" + workdir +
                        " --games=2 --seed=7 > " + dir + "/play.out 2>&1";
  ASSERT_EQ(std::system(command.c_str()), 0) << ReadFile(dir + "/play.out");
  const std::string played = ReadFile(dir + "/play.out");
  EXPECT_NE(played.find("Kuhn poker (J<Q<K), you are P0."), std::string::npos) << played;
  EXPECT_NE(played.find("not a legal move here"), std::string::npos) << played;
  EXPECT_NE(played.find("model (player 1) answers"), std::string::npos) << played;
  EXPECT_NE(played.find("model (player 0) answers"), std::string::npos) << played;
  EXPECT_NE(played.find("total over 2 game(s):"), std::string::npos) << played;
}

TEST(Cluster, ThePolicyVersionThatMetTheTargetIsSavedAsItWasMeasured) {
  // The job ends when a round meets its target, but the learner trains on until it hears so;
  // the version the round measured is saved as checkpoints/target, and `rally run` evaluates it
  // exactly: the same figures the evaluator reported, within the bar.
  std::string dir = testing::TempDir("target");
  std::string workdir = dir + "/run";
  ASSERT_EQ(RunToCompletion("rally",
                            {"run", SourcePath("tests/integration/configs/target.yaml"),
                             "--workdir=" + workdir, "--summary-json=" + dir + "/summary.json"},
                            dir + "/rally.out", 180s),
            0)
      << ReadFile(dir + "/rally.out");
  auto summary = nlohmann::json::parse(ReadFile(dir + "/summary.json"));
  ASSERT_EQ(summary["target_met"], true) << summary.dump(2);
  const int64_t target = summary["target_policy_version"].get<int64_t>();
  ASSERT_TRUE(summary.contains("target_checkpoint")) << summary.dump(2);
  const auto& saved = summary["target_checkpoint"];
  EXPECT_EQ(saved["policy_version"].get<int64_t>(), target);
  EXPECT_LE(saved["exploitability"].get<double>(), 0.6);  // the config's bar
  // The evaluator's figure for the round that measured that version (the summary may hold a
  // later round, merged from the evaluator's last report).
  double measured = -1;
  for (const auto& line : testing::LogLines(workdir + "/logs/evaluator.log", "evaluation")) {
    if (line.value("opponent", "") == "best_response" &&
        line.value("policy_version", int64_t{-1}) == target) {
      measured = line["exploitability"].get<double>();
    }
  }
  ASSERT_GE(measured, 0) << ReadFile(workdir + "/logs/evaluator.log");
  EXPECT_NEAR(saved["exploitability"].get<double>(), measured, 1e-6);
  EXPECT_GE(summary["final_checkpoint"]["policy_version"].get<int64_t>(), target);
  auto manifest = nlohmann::json::parse(ReadFile(workdir + "/checkpoints/target/manifest.json"));
  EXPECT_EQ(manifest["format"], "rally-policy/1");
  EXPECT_EQ(manifest["policy_version"].get<int64_t>(), target);
  EXPECT_NE(ReadFile(dir + "/rally.out").find("target policy v" + std::to_string(target) + ":"),
            std::string::npos)
      << ReadFile(dir + "/rally.out");
  // The other commands read it as a checkpoint.
  EXPECT_EQ(RunToCompletion("rally",
                            {"export-policy", "--checkpoint=" + workdir + "/checkpoints/target",
                             "--out=" + dir + "/target.json"},
                            dir + "/export.out", 60s),
            0)
      << ReadFile(dir + "/export.out");
  // The manifest records the weights' CRC-32C: a changed byte is refused, naming the file.
  const std::string weights_path = workdir + "/checkpoints/target/weights.safetensors";
  EXPECT_EQ(manifest["checksums"]["weights.safetensors"].get<std::string>().rfind("crc32c:", 0), 0u)
      << manifest.dump(2);
  std::string weights = ReadFile(weights_path);
  ASSERT_GT(weights.size(), 100u);
  weights[weights.size() - 7] ^= 0x02;
  std::ofstream(weights_path, std::ios::binary | std::ios::trunc) << weights;
  EXPECT_NE(RunToCompletion("rally",
                            {"export-policy", "--checkpoint=" + workdir + "/checkpoints/target",
                             "--out=" + dir + "/damaged.json"},
                            dir + "/damaged.out", 60s),
            0);
  EXPECT_NE(ReadFile(dir + "/damaged.out").find(weights_path + ": its checksum is crc32c:"),
            std::string::npos)
      << ReadFile(dir + "/damaged.out");
  // A damaged manifest is refused naming the field (it used to throw out of the command).
  nlohmann::json bad = manifest;
  bad["game"] = 5;
  std::ofstream(workdir + "/checkpoints/target/manifest.json", std::ios::trunc) << bad.dump();
  EXPECT_EQ(RunToCompletion("rally",
                            {"export-policy", "--checkpoint=" + workdir + "/checkpoints/target",
                             "--out=" + dir + "/bad.json"},
                            dir + "/bad.out", 60s),
            1);
  EXPECT_NE(ReadFile(dir + "/bad.out").find("manifest.json: game: not a string"), std::string::npos)
      << ReadFile(dir + "/bad.out");
}

TEST(Cluster, ExportAndExactlyEvaluateTheTrainedPolicy) {
  std::string dir = testing::TempDir("export");
  std::string workdir = dir + "/run";
  ASSERT_EQ(RunToCompletion(
                "rally",
                {"run", SourcePath("tests/integration/configs/short.yaml"), "--workdir=" + workdir,
                 "--quiet", "--summary-json=" + dir + "/summary.json"},
                dir + "/rally.out", 240s),
            0)
      << ReadFile(dir + "/rally.out");
  // The job's final policy is checkpointed and exported from the work directory.
  ASSERT_EQ(
      RunToCompletion("rally",
                      {"export-policy", "--checkpoint=" + workdir, "--out=" + dir + "/policy.json"},
                      dir + "/export.out", 60s),
      0)
      << ReadFile(dir + "/export.out");
  auto doc = nlohmann::json::parse(ReadFile(dir + "/policy.json"));
  EXPECT_EQ(doc["game"], "tictactoe");
  ASSERT_EQ(doc["policy"].size(), 4520u);  // every non-terminal position
  for (const auto& [key, probs] : doc["policy"].items()) {
    ASSERT_EQ(key.size(), 9u);
    double total = 0;
    for (const auto& [action, p] : probs.items()) {
      EXPECT_EQ(key[std::stoi(action)], '.') << key << " " << action;  // legal moves only
      total += p.get<double>();
    }
    EXPECT_NEAR(total, 1.0, 1e-5) << key;
  }
  ASSERT_EQ(RunToCompletion("rally", {"evaluate-policy", dir + "/policy.json"},
                            dir + "/evaluate.out", 120s),
            0)
      << ReadFile(dir + "/evaluate.out");
  auto eval = nlohmann::json::parse(ReadFile(dir + "/evaluate.out"));
  ASSERT_EQ(eval["worst_case_returns"].size(), 2u);
  for (const auto& v : eval["worst_case_returns"]) {
    EXPECT_GE(v.get<double>(), -1.0);
    EXPECT_LT(v.get<double>(), 0.0);  // 100 steps of training are far from perfect play
  }
  EXPECT_NEAR(eval["exploitability"].get<double>(), eval["nash_conv"].get<double>() / 2, 1e-12);
  // `rally run` reported the same exact figures of the same (final) checkpoint.
  auto summary = nlohmann::json::parse(ReadFile(dir + "/summary.json"));
  ASSERT_TRUE(summary.contains("final_checkpoint")) << summary.dump(2);
  const auto& final_checkpoint = summary["final_checkpoint"];
  EXPECT_EQ(final_checkpoint["policy_version"], 50);
  EXPECT_DOUBLE_EQ(final_checkpoint["exploitability"].get<double>(),
                   eval["exploitability"].get<double>());
  EXPECT_EQ(final_checkpoint["worst_case_returns"], eval["worst_case_returns"]);
  EXPECT_NE(ReadFile(dir + "/rally.out").find("final checkpoint v50: exploitability "),
            std::string::npos)
      << ReadFile(dir + "/rally.out");

  // Sampled games of the same checkpoint against fixed opponents.
  auto evaluate = [&](const std::string& opponent, const std::string& out) {
    int rc = RunToCompletion("rally",
                             {"evaluate-checkpoint", "--checkpoint=" + workdir,
                              "--opponent=" + opponent, "--games=60", "--seed=3"},
                             dir + "/" + out, 120s);
    return std::make_pair(rc, ReadFile(dir + "/" + out));
  };
  auto [perfect_rc, perfect_out] = evaluate("perfect", "perfect.out");
  ASSERT_EQ(perfect_rc, 0) << perfect_out;
  auto perfect = nlohmann::json::parse(perfect_out);
  EXPECT_EQ(perfect["opponent"], "perfect");
  std::string latest = ReadFile(workdir + "/checkpoints/latest");
  latest.pop_back();  // the newline
  auto manifest =
      nlohmann::json::parse(ReadFile(workdir + "/checkpoints/" + latest + "/manifest.json"));
  EXPECT_EQ(perfect["policy_version"], manifest["policy_version"]);
  EXPECT_EQ(perfect["checkpoint"], workdir + "/checkpoints/" + latest);
  EXPECT_EQ(perfect["games"], 60);
  EXPECT_EQ(perfect["wins"], 0);  // nobody beats perfect play
  EXPECT_EQ(perfect["draws"].get<int>() + perfect["losses"].get<int>(), 60);
  auto [random_rc, random_out] = evaluate("random", "random.out");
  ASSERT_EQ(random_rc, 0) << random_out;
  auto random = nlohmann::json::parse(random_out);
  EXPECT_EQ(random["wins"].get<int>() + random["draws"].get<int>() + random["losses"].get<int>(),
            60);
  // The same seed plays the same games.
  EXPECT_EQ(evaluate("random", "random2.out").second, random_out);
  // An opponent the game does not have is refused with its name.
  auto [bad_rc, bad_out] = evaluate("trader", "bad.out");
  EXPECT_EQ(bad_rc, 1);
  EXPECT_NE(bad_out.find("trader"), std::string::npos) << bad_out;
}

TEST(Cluster, APersonPlaysAgainstACheckpointInTheTerminal) {
  std::string dir = testing::TempDir("play");
  std::string workdir = dir + "/run";
  ASSERT_EQ(RunToCompletion("rally",
                            {"run", SourcePath("tests/integration/configs/short.yaml"),
                             "--workdir=" + workdir, "--quiet"},
                            dir + "/rally.out", 240s),
            0);
  // The person types a word that is no move, then the cells 0..8 over and over: what is not a
  // legal move is refused and asked again.
  std::string moves = "castle\\n";
  for (int round = 0; round < 9; ++round) {
    for (int cell = 0; cell < 9; ++cell) moves += std::to_string(cell) + "\\n";
  }
  std::string command = "printf '" + moves + "' | " + testing::BinPath("rally") +
                        " play --checkpoint=" + workdir + " --games=2 --seed=7 > " + dir +
                        "/play.out 2>&1";
  ASSERT_EQ(std::system(command.c_str()), 0) << ReadFile(dir + "/play.out");
  std::string out = ReadFile(dir + "/play.out");
  EXPECT_NE(out.find("you are player 0"), std::string::npos) << out;
  EXPECT_NE(out.find("you are player 1"), std::string::npos);  // seats alternate
  EXPECT_NE(out.find("policy (player 1) plays"), std::string::npos);
  EXPECT_NE(out.find("not a legal move here"), std::string::npos);
  EXPECT_NE(out.find("total over 2 game(s):"), std::string::npos);
}

TEST(Cluster, ABadConfigFailsBeforeAnythingStarts) {
  std::string dir = testing::TempDir("badconfig");
  std::string workdir = dir + "/run";
  int code = RunToCompletion(
      "rally",
      {"run", SourcePath("tests/integration/configs/unknown_key.yaml"), "--workdir=" + workdir},
      dir + "/rally.out", 30s);
  EXPECT_EQ(code, 2);
  std::string out = ReadFile(dir + "/rally.out");
  EXPECT_NE(out.find("configs/unknown_key.yaml:5:3: unknown key 'learner.learnin_rate'"),
            std::string::npos)
      << out;
  EXPECT_FALSE(std::filesystem::exists(workdir));  // nothing was started
}

TEST(Cluster, ValidateAcceptsTheShippedConfigs) {
  std::string dir = testing::TempDir("validate");
  for (const char* config :
       {"configs/tictactoe.yaml", "configs/kuhn_poker.yaml", "configs/leduc_poker.yaml",
        "configs/connect_four.yaml", "configs/negotiation.yaml"}) {
    EXPECT_EQ(RunToCompletion("rally", {"validate", SourcePath(config)}, dir + "/out", 30s), 0)
        << config << ": " << ReadFile(dir + "/out");
  }
}

}  // namespace
}  // namespace rally

namespace rally {
namespace {

TEST(Cluster, ActorsSpreadOverReplayShardsAndTheLearnerSamplesFromAll) {
  std::string dir = testing::TempDir("shards");
  std::string workdir = dir + "/run";
  int code = testing::RunToCompletion(
      "rally",
      {"run", testing::SourcePath("tests/integration/configs/short.yaml"), "--replay-shards=2",
       "--workdir=" + workdir, "--summary-json=" + dir + "/summary.json"},
      dir + "/rally.out", std::chrono::seconds(240));
  ASSERT_EQ(code, 0) << testing::ReadFile(dir + "/rally.out");
  auto summary = nlohmann::json::parse(testing::ReadFile(dir + "/summary.json"));
  // The learner takes batches from the shards in turn: reaching 100 steps needs both.
  EXPECT_EQ(summary["learner_steps"].get<int64_t>(), 100);
  EXPECT_GE(summary["trajectories_inserted"].get<int64_t>(), 100 * 16);
  for (const char* shard : {"replay-0", "replay-1"}) {
    std::string log = testing::ReadFile(workdir + "/logs/" + shard + ".log");
    EXPECT_NE(log.find("\"msg\":\"job installed\""), std::string::npos) << shard;
    EXPECT_TRUE(std::filesystem::exists(workdir + "/" + shard)) << shard;  // its data directory
  }
}

}  // namespace
}  // namespace rally
