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
