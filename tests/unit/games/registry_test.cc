#include "common/games/registry.h"

#include <gtest/gtest.h>

#include "common/games/policy_notation.h"

namespace rally {
namespace {

TEST(Registry, ListsTheFiveGames) {
  EXPECT_EQ(RegisteredGames(), (std::vector<std::string>{"tictactoe", "connect_four", "kuhn_poker",
                                                         "leduc_poker", "negotiation"}));
}

TEST(Registry, DeclaresEachGamesShapes) {
  struct Expected {
    std::string name;
    int actions, chance_outcomes, observation, information_state, max_length;
  };
  for (const Expected& e : std::vector<Expected>{{"tictactoe", 9, 0, 27, 27, 9},
                                                 {"connect_four", 7, 0, 126, 126, 42},
                                                 {"kuhn_poker", 2, 3, 7, 11, 3},
                                                 {"leduc_poker", 3, 6, 32, 30, 8},
                                                 {"negotiation", 502, 41, 31, 162, 10}}) {
    auto g = LoadGame(e.name);
    ASSERT_TRUE(g.ok()) << g.status();
    EXPECT_EQ((*g)->Name(), e.name);
    EXPECT_EQ((*g)->NumPlayers(), 2);
    EXPECT_EQ((*g)->NumDistinctActions(), e.actions) << e.name;
    EXPECT_EQ((*g)->MaxChanceOutcomes(), e.chance_outcomes) << e.name;
    EXPECT_EQ((*g)->ObservationSize(), e.observation) << e.name;
    EXPECT_EQ((*g)->InformationStateSize(), e.information_state) << e.name;
    EXPECT_EQ((*g)->MaxGameLength(), e.max_length) << e.name;
  }
}

TEST(Registry, AppliesParametersOverDefaults) {
  auto g = LoadGame("negotiation", {{"max_turns", "4"}, {"max_units", "3"}});
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ((*g)->MaxGameLength(), 4);
  EXPECT_EQ((*g)->NumDistinctActions(), 2 + 20 * 9);
  EXPECT_EQ((*g)->Parameters(),
            (GameParameters{{"max_turns", "4"}, {"max_units", "3"}, {"observe_history", "0"}}));
  auto defaults = DefaultParameters("negotiation");
  ASSERT_TRUE(defaults.ok());
  EXPECT_EQ(*defaults,
            (GameParameters{{"max_turns", "10"}, {"max_units", "5"}, {"observe_history", "0"}}));
  auto history = LoadGame("negotiation", {{"observe_history", "1"}});
  ASSERT_TRUE(history.ok()) << history.status();
  EXPECT_EQ((*history)->ObservationSize(), 31 + 15 * 10);
  auto recent = LoadGame("negotiation", {{"observe_history", "2"}});
  ASSERT_TRUE(recent.ok()) << recent.status();
  EXPECT_EQ((*recent)->ObservationSize(), 31 + 16 * 10);
  EXPECT_FALSE(LoadGame("negotiation", {{"observe_history", "3"}}).ok());
  EXPECT_EQ((*LoadGame("negotiation"))->Parameters(), *defaults);
}

TEST(Registry, NamesAnUnknownParameter) {
  auto g = LoadGame("negotiation", {{"rounds", "5"}});
  EXPECT_EQ(g.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(g.status().message().find("'rounds'"), std::string::npos) << g.status();
  EXPECT_NE(g.status().message().find("max_turns"), std::string::npos) << g.status();
  auto k = LoadGame("kuhn_poker", {{"players", "3"}});
  EXPECT_EQ(k.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(k.status().message().find("'players'"), std::string::npos) << k.status();
}

TEST(Registry, RejectsBadValues) {
  for (const char* bad : {"0", "101", "ten", ""}) {
    auto g = LoadGame("negotiation", {{"max_turns", bad}});
    EXPECT_EQ(g.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(g.status().message().find("max_turns"), std::string::npos);
  }
}

TEST(Registry, UnknownGameIsNotFoundAndListsTheKnownOnes) {
  auto g = LoadGame("chess", {});
  EXPECT_EQ(g.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(g.status().message().find("leduc_poker"), std::string::npos);
  EXPECT_EQ(DefaultParameters("chess").status().code(), absl::StatusCode::kNotFound);
}

TEST(PolicyNotation, ExistsForTheSmallGamesOnly) {
  for (const char* name : {"tictactoe", "kuhn_poker", "leduc_poker"}) {
    EXPECT_TRUE(GetPolicyNotation(name).ok()) << name;
  }
  for (const char* name : {"connect_four", "negotiation"}) {
    EXPECT_EQ(GetPolicyNotation(name).status().code(), absl::StatusCode::kInvalidArgument);
  }
  auto leduc = GetPolicyNotation("leduc_poker");
  EXPECT_EQ(leduc->action_name(0), "f");
  EXPECT_EQ(leduc->action_name(2), "r");
  EXPECT_EQ(leduc->action_from_name("c"), 1);
  EXPECT_EQ(leduc->action_from_name("x"), -1);
  auto ttt = GetPolicyNotation("tictactoe");
  EXPECT_EQ(ttt->action_from_name("8"), 8);
  EXPECT_EQ(ttt->key(*(*LoadGame("tictactoe"))->NewInitialState()), ".........");
}

}  // namespace
}  // namespace rally
