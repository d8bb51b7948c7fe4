#include "common/eval/elo.h"

#include <gtest/gtest.h>

#include <cmath>

namespace rally {
namespace {

TEST(Elo, ThreeWinsInFourIsLog10OfThreeTimes400Points) {
  std::vector<MatchResult> results = {{"a", "b", 3, 0, 1}};
  auto ratings = FitElo(results, {.prior_draws = 0});
  ASSERT_TRUE(ratings.ok()) << ratings.status();
  EXPECT_NEAR(ratings->at("a") - ratings->at("b"), 400 * std::log10(3.0), 1e-6);  // 190.85
  EXPECT_NEAR(ratings->at("a") + ratings->at("b"), 0.0, 1e-6);                    // mean 0
}

TEST(Elo, DrawsCountHalfAndResultsAddUp) {
  // 2 wins, 2 draws, 1 loss: 3 points of 5, odds 3:2. Split over two records, the same fit.
  std::vector<MatchResult> one = {{"a", "b", 2, 2, 1}};
  std::vector<MatchResult> split = {{"a", "b", 2, 0, 0}, {"b", "a", 1, 2, 0}};
  auto r1 = FitElo(one, {.prior_draws = 0});
  auto r2 = FitElo(split, {.prior_draws = 0});
  ASSERT_TRUE(r1.ok() && r2.ok());
  EXPECT_NEAR(r1->at("a") - r1->at("b"), 400 * std::log10(1.5), 1e-6);
  EXPECT_NEAR(r2->at("a") - r2->at("b"), 400 * std::log10(1.5), 1e-6);
}

TEST(Elo, RatingsChainAcrossPlayersWhoNeverMet) {
  std::vector<MatchResult> results = {{"a", "b", 3, 0, 1}, {"b", "c", 3, 0, 1}};
  auto ratings = FitElo(results, {.prior_draws = 0, .anchor = "c", .anchor_rating = 1000});
  ASSERT_TRUE(ratings.ok()) << ratings.status();
  EXPECT_NEAR(ratings->at("c"), 1000, 1e-6);
  EXPECT_NEAR(ratings->at("b"), 1000 + 400 * std::log10(3.0), 1e-6);
  EXPECT_NEAR(ratings->at("a"), 1000 + 800 * std::log10(3.0), 1e-6);
}

TEST(Elo, ThePriorKeepsAnUnbeatenPlayerFiniteAndTheFitExact) {
  std::vector<MatchResult> results = {{"a", "b", 10, 0, 0}, {"b", "c", 6, 2, 2}};
  auto ratings = FitElo(results);  // one virtual draw each against a player rated 0
  ASSERT_TRUE(ratings.ok()) << ratings.status();
  EXPECT_TRUE(std::isfinite(ratings->at("a")));
  EXPECT_GT(ratings->at("a"), ratings->at("b"));
  EXPECT_GT(ratings->at("b"), ratings->at("c"));
  // Maximum likelihood: each player's expected points equal its points (virtual games included).
  auto expected = [&](const std::string& p, const std::string& q) {
    return EloExpectedScore(ratings->at(p), ratings->at(q));
  };
  auto virtual_draw = [&](const std::string& p) { return EloExpectedScore(ratings->at(p), 0); };
  EXPECT_NEAR(10 * expected("a", "b") + virtual_draw("a"), 10 + 0.5, 1e-6);
  EXPECT_NEAR(10 * expected("b", "a") + 10 * expected("b", "c") + virtual_draw("b"), 0 + 7 + 0.5,
              1e-6);
  EXPECT_NEAR(10 * expected("c", "b") + virtual_draw("c"), 3 + 0.5, 1e-6);
}

TEST(Elo, SaysWhenRatingsAreNotFinite) {
  std::vector<MatchResult> unbeaten = {{"a", "b", 4, 0, 0}};
  EXPECT_EQ(FitElo(unbeaten, {.prior_draws = 0}).status().code(),
            absl::StatusCode::kInvalidArgument);
  std::vector<MatchResult> apart = {{"a", "b", 1, 0, 1}, {"c", "d", 1, 0, 1}};
  EXPECT_EQ(FitElo(apart, {.prior_draws = 0}).status().code(), absl::StatusCode::kInvalidArgument);
  std::vector<MatchResult> itself = {{"a", "a", 1, 0, 0}};
  EXPECT_EQ(FitElo(itself).status().code(), absl::StatusCode::kInvalidArgument);
  std::vector<MatchResult> fine = {{"a", "b", 1, 0, 1}};
  EXPECT_EQ(FitElo(fine, {.anchor = "z"}).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(Elo, ExpectedScoreIsTheLogisticOf400Points) {
  EXPECT_DOUBLE_EQ(EloExpectedScore(1000, 1000), 0.5);
  EXPECT_NEAR(EloExpectedScore(1400, 1000), 10.0 / 11, 1e-12);
}

}  // namespace
}  // namespace rally
