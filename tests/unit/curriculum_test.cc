#include "services/replay/curriculum.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <map>
#include <set>
#include <thread>

#include "common/net/server.h"
#include "services/learner/weight_service.h"
#include "services/replay/curriculum_service.h"
#include "services/replay/snapshot_pool.h"

namespace rally {
namespace {

constexpr int kDraws = 40000;

std::unique_ptr<Curriculum> Make(CurriculumOptions options) {
  auto c = Curriculum::Create(std::move(options));
  EXPECT_TRUE(c.ok()) << c.status();
  return std::move(*c);
}

// Reports `wins`, `draws` and `losses` against `opponent` on `task` from seat 0.
void Report(Curriculum& c, const std::string& task, const std::string& opponent, int wins,
            int draws, int losses) {
  for (int i = 0; i < wins; ++i)
    ASSERT_TRUE(c.ReportOutcome(task, opponent, 0, 1, Outcome::kWin).ok());
  for (int i = 0; i < draws; ++i) {
    ASSERT_TRUE(c.ReportOutcome(task, opponent, 0, 0, Outcome::kDraw).ok());
  }
  for (int i = 0; i < losses; ++i) {
    ASSERT_TRUE(c.ReportOutcome(task, opponent, 0, -1, Outcome::kLoss).ok());
  }
}

// How often NextTask picks each opponent and each task over `n` draws.
struct Frequencies {
  std::map<std::string, int> opponents;
  std::map<std::string, int> tasks;
  std::map<int, int> seats;
};
Frequencies Draw(Curriculum& c, int n = kDraws) {
  Frequencies f;
  for (int i = 0; i < n; ++i) {
    CurriculumAssignment a = c.NextTask();
    ++f.opponents[a.opponent_id];
    ++f.tasks[a.task_id];
    ++f.seats[a.learner_seat];
  }
  return f;
}

// A binomial count of `n` draws at probability `p` lies within 5 standard deviations of n p.
void ExpectBinomial(int count, int n, double p, const std::string& what) {
  double sd = std::sqrt(n * p * (1 - p));
  EXPECT_NEAR(count, n * p, 5 * sd + 1e-9) << what << ": p = " << p;
}

// P(opponent | task) as Stats reports it, by opponent id.
std::map<std::string, double> OpponentProbabilities(const Curriculum& c, size_t task = 0) {
  std::map<std::string, double> p;
  CurriculumStats stats = c.Stats();
  for (const OpponentStats& o : stats.tasks.at(task).opponents) p[o.opponent_id] = o.probability;
  return p;
}

const OpponentStats& Find(const TaskStats& t, const std::string& opponent) {
  for (const OpponentStats& o : t.opponents) {
    if (o.opponent_id == opponent) return o;
  }
  ADD_FAILURE() << "no stats for opponent " << opponent;
  static OpponentStats none;
  return none;
}

TEST(CurriculumOptions, RejectsOutOfRangeValues) {
  auto bad = [](auto change) {
    CurriculumOptions o;
    change(o);
    return Curriculum::Create(o).status().code();
  };
  EXPECT_TRUE(Curriculum::Create(CurriculumOptions{}).ok());
  EXPECT_EQ(bad([](auto& o) { o.window = 0; }), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(bad([](auto& o) { o.opponent_selection = "elo"; }), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(bad([](auto& o) { o.pfsp_weighting = "easy"; }), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(bad([](auto& o) { o.pfsp_exponent = 0; }), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(bad([](auto& o) { o.pfsp_exponent = std::nan(""); }),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(bad([](auto& o) { o.self_play_share = 1.5; }), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(bad([](auto& o) { o.prior_win_rate = -0.1; }), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(bad([](auto& o) { o.task_floor = 2; }), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(bad([](auto& o) { o.prior_success_rate = std::nan(""); }),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(bad([](auto& o) { o.num_seats = 0; }), absl::StatusCode::kInvalidArgument);
}

TEST(CurriculumFunctions, ProposerRewardIsOneMinusSuccessInsideZeroOne) {
  EXPECT_DOUBLE_EQ(ProposerReward(0.0), 0.0);
  EXPECT_DOUBLE_EQ(ProposerReward(1.0), 0.0);
  EXPECT_DOUBLE_EQ(ProposerReward(0.125), 0.875);
  EXPECT_DOUBLE_EQ(ProposerReward(0.5), 0.5);
  EXPECT_DOUBLE_EQ(ProposerReward(0.875), 0.125);
  EXPECT_DOUBLE_EQ(Learnability(0.5), 0.25);
  EXPECT_DOUBLE_EQ(Learnability(0.2), 0.16);
  EXPECT_DOUBLE_EQ(Learnability(1.0), 0.0);
  EXPECT_DOUBLE_EQ(PfspWeight("hard", 0.2, 2.0), 0.64);
  EXPECT_DOUBLE_EQ(PfspWeight("hard", 0.5, 3.0), 0.125);
  EXPECT_DOUBLE_EQ(PfspWeight("variance", 0.3, 2.0), 0.21);
}

TEST(CurriculumOpponents, LatestModeAlwaysPlaysTheLearningPolicy) {
  CurriculumOptions o;
  o.opponent_selection = "latest";
  auto c = Make(o);
  ASSERT_TRUE(c->SetPool({"snapshot-1", "snapshot-2"}).ok());
  Frequencies f = Draw(*c, 1000);
  EXPECT_EQ(f.opponents.size(), 1u);
  EXPECT_EQ(f.opponents[kLatestOpponent], 1000);
}

TEST(CurriculumOpponents, EmptyPoolPlaysLatestInEveryMode) {
  for (const char* mode : {"uniform", "pfsp"}) {
    CurriculumOptions o;
    o.opponent_selection = mode;
    auto c = Make(o);
    Frequencies f = Draw(*c, 200);
    EXPECT_EQ(f.opponents[kLatestOpponent], 200) << mode;
  }
}

TEST(CurriculumOpponents, UniformIsUniformOverThePool) {
  CurriculumOptions o;
  o.opponent_selection = "uniform";
  o.seed = 7;
  auto c = Make(o);
  for (const char* id : {"snapshot-10", "snapshot-20", "snapshot-30", "random"}) {
    ASSERT_TRUE(c->AddSnapshot(id).ok());
  }
  // Outcomes do not move uniform selection.
  Report(*c, "", "snapshot-10", 0, 0, 20);
  Frequencies f = Draw(*c);
  EXPECT_EQ(f.opponents.count(kLatestOpponent), 0u);
  for (const char* id : {"snapshot-10", "snapshot-20", "snapshot-30", "random"}) {
    ExpectBinomial(f.opponents[id], kDraws, 0.25, id);
    EXPECT_DOUBLE_EQ(OpponentProbabilities(*c)[id], 0.25) << id;
  }
  // Seats are uniform too.
  ExpectBinomial(f.seats[0], kDraws, 0.5, "seat 0");
  EXPECT_EQ(f.seats[0] + f.seats[1], kDraws);
}

TEST(CurriculumOpponents, SelfPlayShareMixesInTheLatestPolicy) {
  CurriculumOptions o;
  o.opponent_selection = "uniform";
  o.self_play_share = 0.3;
  auto c = Make(o);
  ASSERT_TRUE(c->SetPool({"a", "b"}).ok());
  Frequencies f = Draw(*c);
  ExpectBinomial(f.opponents[kLatestOpponent], kDraws, 0.3, "latest");
  ExpectBinomial(f.opponents["a"], kDraws, 0.35, "a");
  ExpectBinomial(f.opponents["b"], kDraws, 0.35, "b");
  auto p = OpponentProbabilities(*c);
  EXPECT_DOUBLE_EQ(p[kLatestOpponent], 0.3);
  EXPECT_DOUBLE_EQ(p["a"], 0.35);
}

TEST(CurriculumOpponents, PfspHardWeightsAreOneMinusWinRateToThePNormalised) {
  CurriculumOptions o;
  o.opponent_selection = "pfsp";
  o.pfsp_weighting = "hard";
  o.pfsp_exponent = 2.0;
  o.prior_win_rate = 0.5;
  o.seed = 11;
  auto c = Make(o);
  ASSERT_TRUE(c->SetPool({"weak", "even", "strong", "drawish", "unseen"}).ok());
  Report(*c, "", "weak", 8, 0, 2);     // x = 0.8
  Report(*c, "", "even", 5, 0, 5);     // x = 0.5
  Report(*c, "", "strong", 2, 0, 8);   // x = 0.2
  Report(*c, "", "drawish", 4, 4, 2);  // x = 0.6: draws count half
  const std::map<std::string, double> x = {
      {"weak", 0.8}, {"even", 0.5}, {"strong", 0.2}, {"drawish", 0.6}, {"unseen", 0.5}};
  double sum = 0;
  for (const auto& [id, xo] : x) sum += std::pow(1 - xo, 2.0);

  TaskStats t = c->Stats().tasks.at(0);
  Frequencies f = Draw(*c);
  for (const auto& [id, xo] : x) {
    double expected = std::pow(1 - xo, 2.0) / sum;
    EXPECT_NEAR(Find(t, id).win_rate, xo, 1e-12) << id;
    EXPECT_NEAR(Find(t, id).probability, expected, 1e-12) << id;
    ExpectBinomial(f.opponents[id], kDraws, expected, id);
  }
  // The opponent the learner struggles against most is picked most.
  EXPECT_GT(f.opponents["strong"], f.opponents["even"]);
  EXPECT_GT(f.opponents["even"], f.opponents["weak"]);
}

TEST(CurriculumOpponents, PfspHardExponentSharpensTheWeights) {
  CurriculumOptions o;
  o.pfsp_exponent = 4.0;
  auto c = Make(o);
  ASSERT_TRUE(c->SetPool({"a", "b"}).ok());
  Report(*c, "", "a", 1, 0, 3);  // x = 0.25
  Report(*c, "", "b", 3, 0, 1);  // x = 0.75
  double wa = std::pow(0.75, 4), wb = std::pow(0.25, 4);
  auto p = OpponentProbabilities(*c);
  EXPECT_NEAR(p["a"], wa / (wa + wb), 1e-12);
  EXPECT_NEAR(p["b"], wb / (wa + wb), 1e-12);
}

TEST(CurriculumOpponents, PfspVarianceWeightsPeakAtEvenMatches) {
  CurriculumOptions o;
  o.pfsp_weighting = "variance";
  o.seed = 5;
  auto c = Make(o);
  ASSERT_TRUE(c->SetPool({"x10", "x30", "x50", "x70", "x90"}).ok());
  const std::map<std::string, int> wins = {
      {"x10", 1}, {"x30", 3}, {"x50", 5}, {"x70", 7}, {"x90", 9}};
  for (const auto& [id, w] : wins) Report(*c, "", id, w, 0, 10 - w);
  double sum = 0.09 + 0.21 + 0.25 + 0.21 + 0.09;
  auto p = OpponentProbabilities(*c);
  Frequencies f = Draw(*c);
  for (const auto& [id, w] : wins) {
    double x = w / 10.0;
    EXPECT_NEAR(p[id], x * (1 - x) / sum, 1e-12) << id;
    ExpectBinomial(f.opponents[id], kDraws, x * (1 - x) / sum, id);
    if (id != "x50") EXPECT_LT(p[id], p["x50"]) << id;
  }
  EXPECT_NEAR(p["x30"], p["x70"], 1e-12);
}

TEST(CurriculumOpponents, PfspFallsBackToUniformWhenEveryWeightIsZero) {
  auto c = Make(CurriculumOptions{});
  ASSERT_TRUE(c->SetPool({"a", "b"}).ok());
  Report(*c, "", "a", 3, 0, 0);  // x = 1: weight 0
  Report(*c, "", "b", 2, 0, 0);
  auto p = OpponentProbabilities(*c);
  EXPECT_DOUBLE_EQ(p["a"], 0.5);
  EXPECT_DOUBLE_EQ(p["b"], 0.5);
}

TEST(CurriculumOpponents, PfspEstimatesWinRatesPerTask) {
  auto c = Make(CurriculumOptions{});
  ASSERT_TRUE(c->AddTask("easy").ok());
  ASSERT_TRUE(c->AddTask("hard").ok());
  ASSERT_TRUE(c->SetPool({"a", "b"}).ok());
  Report(*c, "easy", "a", 4, 0, 0);  // x = 1 on easy: weight 0
  CurriculumStats s = c->Stats();
  EXPECT_DOUBLE_EQ(Find(s.tasks[0], "a").probability, 0.0);
  EXPECT_DOUBLE_EQ(Find(s.tasks[0], "b").probability, 1.0);
  EXPECT_DOUBLE_EQ(Find(s.tasks[1], "a").probability, 0.5);  // hard: both at the prior
}

TEST(CurriculumTasks, LearnabilityWeightsAreSuccessTimesFailureNormalisedPlusTheFloor) {
  CurriculumOptions o;
  o.opponent_selection = "latest";
  o.task_floor = 0.1;
  o.prior_success_rate = 0.5;
  o.seed = 3;
  auto c = Make(o);
  for (const char* t : {"half", "hard", "solved", "new"}) ASSERT_TRUE(c->AddTask(t).ok());
  Report(*c, "half", kLatestOpponent, 5, 0, 5);     // s = 0.5
  Report(*c, "hard", kLatestOpponent, 2, 3, 5);     // s = 0.2: draws are not successes
  Report(*c, "solved", kLatestOpponent, 10, 0, 0);  // s = 1
  const std::map<std::string, double> s = {
      {"half", 0.5}, {"hard", 0.2}, {"solved", 1.0}, {"new", 0.5}};
  double sum = 0.25 + 0.16 + 0.0 + 0.25;

  CurriculumStats stats = c->Stats();
  ASSERT_EQ(stats.tasks.size(), 4u);
  Frequencies f = Draw(*c);
  for (const TaskStats& t : stats.tasks) {
    double expected = 0.1 / 4 + 0.9 * Learnability(s.at(t.task_id)) / sum;
    EXPECT_NEAR(t.success_rate, s.at(t.task_id), 1e-12) << t.task_id;
    EXPECT_NEAR(t.probability, expected, 1e-12) << t.task_id;
    ExpectBinomial(f.tasks[t.task_id], kDraws, expected, t.task_id);
  }
  // The floor keeps a solved task alive.
  EXPECT_DOUBLE_EQ(stats.tasks[2].probability, 0.025);
  EXPECT_GT(f.tasks["solved"], 0);
}

TEST(CurriculumTasks, UniformWhenNoTaskIsLearnable) {
  CurriculumOptions o;
  o.task_floor = 0;
  auto c = Make(o);
  ASSERT_TRUE(c->AddTask("a").ok());
  ASSERT_TRUE(c->AddTask("b").ok());
  Report(*c, "a", kLatestOpponent, 4, 0, 0);
  Report(*c, "b", kLatestOpponent, 0, 0, 4);
  CurriculumStats stats = c->Stats();
  for (const TaskStats& t : stats.tasks) EXPECT_DOUBLE_EQ(t.probability, 0.5) << t.task_id;
}

TEST(CurriculumTasks, DefaultTaskUntilTasksAreRegistered) {
  auto c = Make(CurriculumOptions{});
  EXPECT_EQ(c->NextTask().task_id, "");
  ASSERT_TRUE(c->ReportOutcome("", kLatestOpponent, 0, 1, Outcome::kWin).ok());
  ASSERT_TRUE(c->AddTask("9x9").ok());
  ASSERT_TRUE(c->AddTask("9x9").ok());  // registering twice is a no-op
  CurriculumStats s = c->Stats();
  ASSERT_EQ(s.tasks.size(), 1u);
  EXPECT_EQ(s.tasks[0].task_id, "9x9");
  EXPECT_EQ(c->NextTask().task_id, "9x9");
  EXPECT_EQ(c->ReportOutcome("", kLatestOpponent, 0, 1, Outcome::kWin).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(CurriculumStats, SlidingWindowForgetsOldOutcomes) {
  CurriculumOptions o;
  o.window = 3;
  auto c = Make(o);
  ASSERT_TRUE(c->AddSnapshot("s1").ok());
  ASSERT_TRUE(c->AddSnapshot("s2").ok());
  ASSERT_TRUE(c->ReportOutcome("", "s1", 0, -1, Outcome::kLoss).ok());  // evicted below
  ASSERT_TRUE(c->ReportOutcome("", "s1", 1, 1, Outcome::kWin).ok());
  ASSERT_TRUE(c->ReportOutcome("", "s1", 0, 0, Outcome::kDraw).ok());
  // Another opponent's episodes do not push s1's out.
  Report(*c, "", "s2", 0, 0, 5);
  ASSERT_TRUE(c->ReportOutcome("", "s1", 1, 2, Outcome::kWin).ok());

  TaskStats t = c->Stats().tasks.at(0);
  const OpponentStats& s1 = Find(t, "s1");
  EXPECT_EQ(s1.total.games, 3);
  EXPECT_EQ(s1.total.wins, 2);
  EXPECT_EQ(s1.total.draws, 1);
  EXPECT_EQ(s1.total.losses, 0);
  EXPECT_DOUBLE_EQ(s1.total.mean_return, 1.0);
  EXPECT_NEAR(s1.win_rate, 2.5 / 3, 1e-12);
  ASSERT_EQ(s1.by_seat.size(), 2u);
  EXPECT_EQ(s1.by_seat[0].games, 1);
  EXPECT_EQ(s1.by_seat[0].draws, 1);
  EXPECT_DOUBLE_EQ(s1.by_seat[0].mean_return, 0.0);
  EXPECT_EQ(s1.by_seat[1].games, 2);
  EXPECT_EQ(s1.by_seat[1].wins, 2);
  EXPECT_DOUBLE_EQ(s1.by_seat[1].mean_return, 1.5);
  const OpponentStats& s2 = Find(t, "s2");
  EXPECT_EQ(s2.total.games, 3);
  EXPECT_EQ(s2.total.losses, 3);
  // Task totals are over every opponent's window.
  EXPECT_EQ(t.total.games, 6);
  EXPECT_NEAR(t.success_rate, 2.0 / 6, 1e-12);

  // Once three wins replace them, the old losses against s2 stop counting.
  Report(*c, "", "s2", 3, 0, 0);
  EXPECT_DOUBLE_EQ(Find(c->Stats().tasks.at(0), "s2").win_rate, 1.0);
}

TEST(CurriculumStats, SetPoolDropsRemovedOpponents) {
  auto c = Make(CurriculumOptions{});
  ASSERT_TRUE(c->SetPool({"s1", "s2", "s1"}).ok());
  EXPECT_EQ(c->Stats().opponent_pool, (std::vector<std::string>{"s1", "s2"}));
  Report(*c, "", "s1", 2, 0, 0);
  Report(*c, "", kLatestOpponent, 1, 0, 0);
  ASSERT_TRUE(c->SetPool({"s2", "s3"}).ok());
  TaskStats t = c->Stats().tasks.at(0);
  ASSERT_EQ(t.opponents.size(), 3u);
  EXPECT_EQ(t.opponents[0].opponent_id, kLatestOpponent);
  EXPECT_EQ(t.opponents[0].total.games, 1);  // "latest" keeps its statistics
  EXPECT_EQ(t.opponents[1].opponent_id, "s2");
  EXPECT_EQ(t.opponents[2].opponent_id, "s3");
  EXPECT_EQ(c->ReportOutcome("", "s1", 0, 1, Outcome::kWin).code(),
            absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(c->AddSnapshot("s1").ok());
  EXPECT_EQ(Find(c->Stats().tasks.at(0), "s1").total.games, 0);
}

TEST(CurriculumErrors, RefusesBadOutcomesAndPoolIds) {
  auto c = Make(CurriculumOptions{});
  ASSERT_TRUE(c->AddTask("a").ok());
  ASSERT_TRUE(c->AddSnapshot("s1").ok());
  const auto kInvalid = absl::StatusCode::kInvalidArgument;
  EXPECT_EQ(c->ReportOutcome("b", "s1", 0, 1, Outcome::kWin).code(), kInvalid);
  EXPECT_EQ(c->ReportOutcome("a", "s9", 0, 1, Outcome::kWin).code(), kInvalid);
  EXPECT_EQ(c->ReportOutcome("a", "s1", -1, 1, Outcome::kWin).code(), kInvalid);
  EXPECT_EQ(c->ReportOutcome("a", "s1", 2, 1, Outcome::kWin).code(), kInvalid);
  EXPECT_EQ(c->ReportOutcome("a", "s1", 0, std::nan(""), Outcome::kWin).code(), kInvalid);
  EXPECT_EQ(
      c->ReportOutcome("a", "s1", 0, std::numeric_limits<double>::infinity(), Outcome::kWin).code(),
      kInvalid);
  EXPECT_EQ(c->AddSnapshot("").code(), kInvalid);
  EXPECT_EQ(c->AddSnapshot(kLatestOpponent).code(), kInvalid);
  EXPECT_EQ(c->SetPool({"s2", kLatestOpponent}).code(), kInvalid);
  EXPECT_EQ(c->Stats().opponent_pool, std::vector<std::string>{"s1"});  // unchanged
  // Nothing refused was counted.
  EXPECT_EQ(c->Stats().tasks.at(0).total.games, 0);
}

TEST(CurriculumDeterminism, SameSeedSameAssignments) {
  CurriculumOptions o;
  o.seed = 99;
  o.self_play_share = 0.2;
  auto a = Make(o);
  auto b = Make(o);
  for (Curriculum* c : {a.get(), b.get()}) {
    ASSERT_TRUE(c->AddTask("t1").ok());
    ASSERT_TRUE(c->AddTask("t2").ok());
    ASSERT_TRUE(c->SetPool({"s1", "s2", "s3"}).ok());
  }
  for (int i = 0; i < 200; ++i) {
    CurriculumAssignment x = a->NextTask(), y = b->NextTask();
    ASSERT_EQ(x.task_id, y.task_id);
    ASSERT_EQ(x.opponent_id, y.opponent_id);
    ASSERT_EQ(x.learner_seat, y.learner_seat);
  }
}

TEST(CurriculumConcurrency, ConcurrentCallsCountEveryOutcome) {
  CurriculumOptions o;
  o.window = 100000;
  auto c = Make(o);
  ASSERT_TRUE(c->SetPool({"s1", "s2"}).ok());
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&c] {
      for (int i = 0; i < 500; ++i) {
        CurriculumAssignment a = c->NextTask();
        EXPECT_TRUE(
            c->ReportOutcome(a.task_id, a.opponent_id, a.learner_seat, 0, Outcome::kDraw).ok());
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(c->Stats().tasks.at(0).total.games, 2000);
}

TEST(CurriculumService, MapsRequestsAndErrors) {
  CurriculumServiceImpl service;
  grpc::ServerContext ctx;
  v1::NextTaskRequest next;
  next.set_actor_id("actor-0");
  next.set_game("tictactoe");
  v1::NextTaskResponse assigned;
  EXPECT_EQ(service.NextTask(&ctx, &next, &assigned).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);

  CurriculumOptions o;
  o.opponent_selection = "uniform";
  std::shared_ptr<Curriculum> curriculum = Make(o);
  ASSERT_TRUE(curriculum->AddSnapshot("snapshot-120").ok());
  service.SetCurriculum("tictactoe", curriculum);
  ASSERT_TRUE(service.NextTask(&ctx, &next, &assigned).ok());
  EXPECT_EQ(assigned.task_id(), "");
  EXPECT_EQ(assigned.opponent_id(), "snapshot-120");
  next.set_game("connect_four");
  EXPECT_EQ(service.NextTask(&ctx, &next, &assigned).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);

  v1::ReportOutcomeRequest report;
  report.set_task_id("");
  report.set_opponent_id("snapshot-120");
  report.set_learner_seat(1);
  report.set_learner_return(1.0);
  report.set_outcome(v1::OUTCOME_WIN);
  v1::ReportOutcomeResponse ack;
  ASSERT_TRUE(service.ReportOutcome(&ctx, &report, &ack).ok());

  v1::ReportOutcomeRequest bad = report;
  bad.set_outcome(v1::OUTCOME_UNSPECIFIED);
  EXPECT_EQ(service.ReportOutcome(&ctx, &bad, &ack).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  bad = report;
  bad.set_learner_return(std::nan(""));
  EXPECT_EQ(service.ReportOutcome(&ctx, &bad, &ack).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  bad = report;
  bad.set_task_id("13x13");
  grpc::Status unknown_task = service.ReportOutcome(&ctx, &bad, &ack);
  EXPECT_EQ(unknown_task.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(unknown_task.error_message().find("13x13"), std::string::npos);

  v1::CurriculumStatsRequest stats_req;
  v1::CurriculumStatsResponse stats;
  ASSERT_TRUE(service.Stats(&ctx, &stats_req, &stats).ok());
  EXPECT_EQ(stats.opponent_selection(), "uniform");
  EXPECT_EQ(stats.window(), o.window);
  ASSERT_EQ(stats.tasks_size(), 1);
  ASSERT_EQ(stats.tasks(0).opponents_size(), 2);  // latest, snapshot-120
  const v1::OpponentStats& s = stats.tasks(0).opponents(1);
  EXPECT_EQ(s.opponent_id(), "snapshot-120");
  EXPECT_EQ(s.total().games(), 1);
  EXPECT_EQ(s.total().wins(), 1);
  ASSERT_EQ(s.by_seat_size(), 2);
  EXPECT_EQ(s.by_seat(1).seat(), 1);
  EXPECT_EQ(s.by_seat(1).counts().wins(), 1);
  EXPECT_DOUBLE_EQ(s.probability(), 1.0);

  service.ClearCurriculum();
  EXPECT_EQ(service.Stats(&ctx, &stats_req, &stats).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
}

TEST(CurriculumService, NextTaskWithCountReturnsThatManyIndependentPicks) {
  CurriculumServiceImpl service;
  CurriculumOptions o;
  o.opponent_selection = "uniform";
  std::shared_ptr<Curriculum> curriculum = Make(o);
  ASSERT_TRUE(curriculum->SetPool({"snapshot-10", "snapshot-20"}).ok());
  service.SetCurriculum("tictactoe", curriculum);
  grpc::ServerContext ctx;
  v1::NextTaskRequest next;
  next.set_count(64);
  v1::NextTaskResponse picks;
  ASSERT_TRUE(service.NextTask(&ctx, &next, &picks).ok());
  ASSERT_EQ(picks.more_size(), 63);
  std::map<std::string, int> by_opponent;
  std::set<int> seats;
  ++by_opponent[picks.opponent_id()];
  for (const v1::NextTaskResponse& p : picks.more()) {
    EXPECT_EQ(p.more_size(), 0);
    ++by_opponent[p.opponent_id()];
    seats.insert(p.learner_seat());
  }
  EXPECT_EQ(by_opponent.size(), 2u);
  EXPECT_EQ(by_opponent["snapshot-10"] + by_opponent["snapshot-20"], 64);
  EXPECT_EQ(seats, (std::set<int>{0, 1}));

  // 0 and 1 both mean one pick; out of range is refused.
  for (int count : {0, 1}) {
    next.set_count(count);
    v1::NextTaskResponse one;
    ASSERT_TRUE(service.NextTask(&ctx, &next, &one).ok());
    EXPECT_EQ(one.more_size(), 0);
    EXPECT_NE(one.opponent_id(), "");
  }
  for (int count : {-1, CurriculumServiceImpl::kMaxPicks + 1}) {
    next.set_count(count);
    v1::NextTaskResponse none;
    EXPECT_EQ(service.NextTask(&ctx, &next, &none).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);
  }
}

TEST(CurriculumService, ReportOutcomesCountsEachOutcomeOnItsOwn) {
  prometheus::Registry registry;
  CurriculumServiceImpl service(&registry);
  CurriculumOptions o;
  o.opponent_selection = "uniform";
  std::shared_ptr<Curriculum> curriculum = Make(o);
  ASSERT_TRUE(curriculum->SetPool({"snapshot-10"}).ok());
  service.SetCurriculum("tictactoe", curriculum);
  grpc::ServerContext ctx;
  v1::ReportOutcomesRequest req;
  auto add = [&](const std::string& opponent, int seat, double ret, v1::Outcome outcome) {
    v1::ReportOutcomeRequest* r = req.add_outcomes();
    r->set_opponent_id(opponent);
    r->set_learner_seat(seat);
    r->set_learner_return(ret);
    r->set_outcome(outcome);
  };
  add("snapshot-10", 0, 1, v1::OUTCOME_WIN);
  add("snapshot-5", 0, 1, v1::OUTCOME_WIN);  // left the pool: refused
  add("snapshot-10", 1, -1, v1::OUTCOME_LOSS);
  add("latest", 1, 0, v1::OUTCOME_DRAW);
  add("snapshot-10", 0, 0, v1::OUTCOME_UNSPECIFIED);  // refused
  v1::ReportOutcomesResponse resp;
  ASSERT_TRUE(service.ReportOutcomes(&ctx, &req, &resp).ok());
  EXPECT_EQ(resp.accepted(), 3);
  EXPECT_EQ(resp.refused(), 2);
  EXPECT_NE(resp.first_error().find("snapshot-5"), std::string::npos) << resp.first_error();

  CurriculumStats stats = curriculum->Stats();
  ASSERT_EQ(stats.tasks.at(0).opponents.size(), 2u);
  EXPECT_EQ(stats.tasks[0].opponents[0].total.games, 1);  // latest
  EXPECT_EQ(stats.tasks[0].opponents[1].total.games, 2);  // snapshot-10
  EXPECT_EQ(stats.tasks[0].opponents[1].total.wins, 1);

  // Metrics: the outcome counters and, after UpdateMetrics, per-opponent gauges.
  service.UpdateMetrics();
  std::map<std::string, double> values;
  for (const auto& family : registry.Collect()) {
    for (const auto& m : family.metric) {
      std::string key = family.name;
      for (const auto& l : m.label) key += "," + l.name + "=" + l.value;
      values[key] =
          family.type == prometheus::MetricType::Counter ? m.counter.value : m.gauge.value;
    }
  }
  EXPECT_EQ(values["rally_curriculum_outcomes_total,result=accepted"], 3);
  EXPECT_EQ(values["rally_curriculum_outcomes_total,result=refused"], 2);
  EXPECT_EQ(values["rally_curriculum_pool_size"], 1);
  EXPECT_DOUBLE_EQ(values["rally_curriculum_opponent_probability,opponent=snapshot-10,task="], 1.0);
  EXPECT_DOUBLE_EQ(values["rally_curriculum_opponent_win_rate,opponent=snapshot-10,task="], 0.5);

  service.ClearCurriculum();
  EXPECT_EQ(service.ReportOutcomes(&ctx, &req, &resp).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
}

TEST(SnapshotPoolPoller, MirrorsTheLearnersSnapshotPool) {
  prometheus::Registry registry;
  WeightServiceOptions wo;
  wo.pool = {2, 3};  // every 2nd version, the newest 3
  WeightServiceImpl weights(registry, wo);
  auto server = GrpcServer::Start("127.0.0.1", 0, {&weights});
  ASSERT_TRUE(server.ok()) << server.status();
  CurriculumOptions o;
  o.opponent_selection = "uniform";
  std::shared_ptr<Curriculum> curriculum = Make(o);
  std::string address;
  SnapshotPoolPoller poller([&] { return address; }, curriculum, std::chrono::milliseconds(500));

  // Unknown or unreachable learner: an error, and the pool stays as it is.
  EXPECT_EQ(poller.PollOnce().code(), absl::StatusCode::kUnavailable);
  address = "127.0.0.1:1";
  EXPECT_EQ(poller.PollOnce().code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(curriculum->Stats().opponent_pool.empty());

  address = (*server)->address();
  for (int64_t v = 1; v <= 8; ++v) weights.Publish(v, v, std::string(16, 'w'));
  ASSERT_TRUE(poller.PollOnce().ok());
  EXPECT_EQ(curriculum->Stats().opponent_pool,
            (std::vector<std::string>{"snapshot-4", "snapshot-6", "snapshot-8"}));
  weights.Publish(10, 10, std::string(16, 'w'));
  ASSERT_TRUE(poller.PollOnce().ok());
  EXPECT_EQ(curriculum->Stats().opponent_pool,
            (std::vector<std::string>{"snapshot-6", "snapshot-8", "snapshot-10"}));

  weights.Close();
  (*server)->Shutdown();
}

}  // namespace
}  // namespace rally
