#include "common/eval/policy_json.h"

#include <gtest/gtest.h>

#include "common/eval/exploitability.h"
#include "common/games/kuhn_poker.h"

namespace rally {
namespace {

TEST(PolicyJson, RoundTripsAKuhnEquilibrium) {
  auto document = nlohmann::json::parse(R"({"game": "kuhn_poker", "policy": {
      "J": {"p": 1, "b": 0}, "Q": {"p": 1}, "K": {"p": 1, "b": 0},
      "Jpb": {"p": 1}, "Qpb": {"p": 0.6666666666666666, "b": 0.3333333333333333}, "Kpb": {"b": 1},
      "Jp": {"p": 0.6666666666666666, "b": 0.3333333333333333}, "Qp": {"p": 1}, "Kp": {"b": 1},
      "Jb": {"p": 1}, "Qb": {"p": 0.6666666666666666, "b": 0.3333333333333333}, "Kb": {"b": 1}}})");
  auto policy = PolicyFromJson(document);
  ASSERT_TRUE(policy.ok()) << policy.status();
  EXPECT_EQ(policy->table().size(), 12u);
  auto nash_conv = NashConv(KuhnPokerGame(), *policy);
  ASSERT_TRUE(nash_conv.ok()) << nash_conv.status();
  EXPECT_NEAR(*nash_conv, 0.0, 1e-9);
  auto back = PolicyToJson("kuhn_poker", *policy);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ((*back)["game"], "kuhn_poker");
  EXPECT_EQ((*back)["policy"]["Kpb"], (nlohmann::json{{"b", 1.0}}));
  EXPECT_DOUBLE_EQ((*back)["policy"]["Qb"]["b"].get<double>(), 1.0 / 3);
}

TEST(PolicyJson, RoundTripsInvalidMassAndTheInvalidAnswerRate) {
  auto document = nlohmann::json::parse(R"({"game": "kuhn_poker", "policy": {
      "J": {"p": 1}, "Q": {"p": 1}, "K": {"p": 0.3, "b": 0.6, "invalid": 0.1},
      "Jpb": {"p": 1}, "Qpb": {"p": 1}, "Kpb": {"p": 1, "invalid": 0},
      "Jp": {"p": 1}, "Qp": {"p": 1}, "Kp": {"p": 1}, "Jb": {"b": 1}, "Qb": {"b": 1},
      "Kb": {"b": 1}},
      "invalid_answer_rate": {"per_decision": 0.01694915254237288, "per_game": 0.03333333333333333,
                              "max": 0.1}})");
  auto policy = PolicyFromJson(document);
  ASSERT_TRUE(policy.ok()) << policy.status();
  EXPECT_DOUBLE_EQ(policy->Forfeit("K"), 0.1);
  EXPECT_EQ(policy->Forfeit("Kpb"), 0.0);
  EXPECT_EQ(policy->forfeits().size(), 1u);  // an "invalid" of 0 is no forfeit
  // The hand-computed figures of exploitability_test's KuhnForfeit: NashConv 57/60.
  EXPECT_NEAR(*NashConv(KuhnPokerGame(), *policy), 57.0 / 60, 1e-12);
  auto rate = InvalidAnswerRateFromJson(document);
  ASSERT_TRUE(rate.ok()) << rate.status();
  ASSERT_TRUE(rate->has_value());
  EXPECT_DOUBLE_EQ((*rate)->per_game, 1.0 / 30);
  EXPECT_DOUBLE_EQ((*rate)->max, 0.1);

  auto back = PolicyToJson("kuhn_poker", *policy, &**rate);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ((*back)["policy"]["K"], (nlohmann::json{{"p", 0.3}, {"b", 0.6}, {"invalid", 0.1}}));
  EXPECT_FALSE((*back)["policy"]["Kpb"].contains("invalid"));
  EXPECT_EQ((*back)["invalid_answer_rate"], document["invalid_answer_rate"]);
  auto again = PolicyFromJson(nlohmann::json::parse(back->dump()));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->table(), policy->table());
  EXPECT_EQ(again->forfeits(), policy->forfeits());
  // Without a rate nothing is written, and a document without one reads as none.
  auto bare = PolicyToJson("kuhn_poker", *policy);
  EXPECT_FALSE(bare->contains("invalid_answer_rate"));
  EXPECT_FALSE(InvalidAnswerRateFromJson(*bare)->has_value());
}

TEST(PolicyJson, NamesABadInvalidMassOrRate) {
  auto above_one = PolicyFromJson(nlohmann::json::parse(
      R"({"game": "kuhn_poker", "policy": {"K": {"p": 0.5, "invalid": 1.5}}})"));
  EXPECT_EQ(above_one.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(above_one.status().message().find("'K'"), std::string::npos) << above_one.status();
  EXPECT_NE(above_one.status().message().find("invalid"), std::string::npos);
  auto text = PolicyFromJson(nlohmann::json::parse(
      R"({"game": "kuhn_poker", "policy": {"K": {"p": 0.5, "invalid": "0.5"}}})"));
  EXPECT_EQ(text.status().code(), absl::StatusCode::kInvalidArgument);
  auto rate = InvalidAnswerRateFromJson(nlohmann::json::parse(
      R"({"invalid_answer_rate": {"per_decision": 0.1, "per_game": -0.2, "max": 0.3}})"));
  EXPECT_EQ(rate.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(rate.status().message().find("per_game"), std::string::npos) << rate.status();
}

TEST(PolicyJson, NamesWhatIsWrong) {
  auto unknown_action =
      PolicyFromJson(nlohmann::json::parse(R"({"game": "kuhn_poker", "policy": {"J": {"x": 1}}})"));
  EXPECT_EQ(unknown_action.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(unknown_action.status().message().find("'x'"), std::string::npos);
  auto no_notation =
      PolicyFromJson(nlohmann::json::parse(R"({"game": "connect_four", "policy": {}})"));
  EXPECT_EQ(no_notation.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(PolicyFromJson(nlohmann::json::parse("[1, 2]")).status().code(),
            absl::StatusCode::kInvalidArgument);
  auto negative = PolicyFromJson(
      nlohmann::json::parse(R"({"game": "leduc_poker", "policy": {"K::": {"c": -0.5}}})"));
  EXPECT_EQ(negative.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace rally
