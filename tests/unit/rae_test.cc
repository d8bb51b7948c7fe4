#include "common/rl/rae.h"

#include <gtest/gtest.h>

namespace rally {
namespace {

TEST(RoleBaselines, AdvantageReadsTheBaselineBeforeUpdatingIt) {
  RoleBaselines b(0.95);
  // b = 0: A = 1 - 0 = 1; b <- 0.95 * 0 + 0.05 * 1 = 0.05
  EXPECT_DOUBLE_EQ(b.Advantage("tictactoe", "0", 1.0), 1.0);
  EXPECT_NEAR(b.baseline("tictactoe", "0"), 0.05, 1e-12);
  // A = -1 - 0.05 = -1.05; b <- 0.95 * 0.05 - 0.05 = -0.0025
  EXPECT_DOUBLE_EQ(b.Advantage("tictactoe", "0", -1.0), -1.05);
  EXPECT_NEAR(b.baseline("tictactoe", "0"), -0.0025, 1e-15);
  // A = 1 + 0.0025 = 1.0025; b <- 0.95 * -0.0025 + 0.05 = 0.047625
  EXPECT_NEAR(b.Advantage("tictactoe", "0", 1.0), 1.0025, 1e-15);
  EXPECT_NEAR(b.baseline("tictactoe", "0"), 0.047625, 1e-15);
  // A draw: A = 0 - 0.047625; b <- 0.95 * 0.047625 = 0.04524375
  EXPECT_NEAR(b.Advantage("tictactoe", "0", 0.0), -0.047625, 1e-15);
  EXPECT_NEAR(b.baseline("tictactoe", "0"), 0.04524375, 1e-15);
}

TEST(RoleBaselines, RolesAndGamesKeepSeparateBaselines) {
  RoleBaselines b(0.95);
  b.Advantage("tictactoe", "0", 1.0);
  EXPECT_NEAR(b.baseline("tictactoe", "1"), 0.0, 1e-12);
  EXPECT_NEAR(b.baseline("kuhn_poker", "0"), 0.0, 1e-12);
  EXPECT_DOUBLE_EQ(b.Advantage("tictactoe", "1", -1.0), -1.0);
  EXPECT_NEAR(b.baseline("tictactoe", "1"), -0.05, 1e-12);
  EXPECT_NEAR(b.baseline("tictactoe", "0"), 0.05, 1e-12);
}

TEST(RoleBaselines, DecayIsConfigurable) {
  RoleBaselines b(0.5);
  EXPECT_DOUBLE_EQ(b.Advantage("g", "0", 2.0), 2.0);
  EXPECT_NEAR(b.baseline("g", "0"), 1.0, 1e-12);
  EXPECT_DOUBLE_EQ(b.Advantage("g", "0", 2.0), 1.0);
  EXPECT_NEAR(b.baseline("g", "0"), 1.5, 1e-12);
}

}  // namespace
}  // namespace rally
