#include <gtest/gtest.h>

#include "common/eval/network_evaluation.h"

namespace rally {
namespace {

v1::EvalResult Round(const std::string& opponent, int wins, int draws, int losses) {
  v1::EvalResult r;
  r.set_opponent(opponent);
  r.set_games(wins + draws + losses);
  r.set_wins(wins);
  r.set_draws(draws);
  r.set_losses(losses);
  return r;
}

TEST(League, RatesVersionsAgainstRandomAndEachOther) {
  League league;
  EXPECT_EQ(League::Player(120), "v120");
  league.Add("v10", Round("random", 60, 0, 40));
  league.Add("v20", Round("random", 80, 0, 20));
  league.Add("v20", Round("v10", 70, 0, 30));
  league.Add("v20", Round("v20", 50, 0, 50));   // itself: ignored
  league.Add("v30", Round("random", 0, 0, 0));  // no games: ignored
  EXPECT_EQ(league.matches(), 3u);
  auto ratings = league.Ratings();
  ASSERT_TRUE(ratings.ok()) << ratings.status();
  EXPECT_EQ(ratings->size(), 3u);
  EXPECT_DOUBLE_EQ(ratings->at("random"), 0.0);  // the anchor
  EXPECT_GT(ratings->at("v10"), 0.0);
  EXPECT_GT(ratings->at("v20"), ratings->at("v10") + 50);
  // The fit reproduces the head-to-head score roughly (the prior pulls towards 0).
  EXPECT_NEAR(EloExpectedScore(ratings->at("v20"), ratings->at("v10")), 0.7, 0.1);
}

TEST(League, WithoutRandomTheRatingsAreCentred) {
  League league;
  league.Add("v1", Round("alpha_beta_2", 30, 10, 60));
  auto ratings = league.Ratings();
  ASSERT_TRUE(ratings.ok()) << ratings.status();
  EXPECT_LT(ratings->at("v1"), ratings->at("alpha_beta_2"));
}

}  // namespace
}  // namespace rally
