#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "common/games/connect_four.h"
#include "common/games/kuhn_poker.h"
#include "common/games/leduc_poker.h"
#include "common/games/negotiation.h"
#include "common/games/registry.h"
#include "common/games/text_game.h"
#include "common/games/tictactoe.h"

namespace rally {
namespace {

constexpr PromptStyle kCompact = PromptStyle::kCompact;
constexpr PromptStyle kSpiral = PromptStyle::kSpiral;

std::shared_ptr<const Game> Load(const std::string& name) {
  absl::StatusOr<std::shared_ptr<const Game>> game = LoadGame(name);
  EXPECT_TRUE(game.ok()) << game.status();
  return *game;
}

const TextRendering& Rendering(const std::string& name) {
  absl::StatusOr<const TextRendering*> rendering = FindTextRendering(name);
  EXPECT_TRUE(rendering.ok()) << rendering.status();
  return **rendering;
}

std::unique_ptr<State> Play(const Game& game, const std::vector<int>& actions) {
  std::unique_ptr<State> state = game.NewInitialState();
  for (int a : actions) {
    EXPECT_TRUE(state->IsLegal(a)) << a;
    state->ApplyAction(a);
  }
  return state;
}

// Chance: player 0's values and holdings, then player 1's (negotiation.h).
const std::vector<int> kNegotiationDeal = {5, 10, 15, 25, 40, 10, 10, 10, 10, 10,
                                           6, 12, 12, 20, 32, 5,  6,  7,  8,  9};

std::vector<int> NegotiationActions(const std::vector<int>& moves) {
  std::vector<int> actions = kNegotiationDeal;
  actions.insert(actions.end(), moves.begin(), moves.end());
  return actions;
}

int Offer(int give, int give_units, int get, int get_units, int max_units = 5) {
  return NegotiationState::kFirstOffer + EncodeOffer({give, give_units, get, get_units}, max_units);
}

// The error message of parsing `answer` at `state`, or "ok" when it parses.
std::string ParseError(const std::string& game, PromptStyle style, const State& state,
                       const std::string& answer) {
  absl::StatusOr<int> action =
      ParseAnswer(Rendering(game), style, state, state.CurrentPlayer(), answer);
  if (action.ok()) return "ok";
  EXPECT_EQ(action.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(action.status().message());
}

TEST(TextGames, FindsRenderingsByGameName) {
  EXPECT_EQ(GamesWithTextRendering(),
            (std::vector<std::string>{"tictactoe", "kuhn_poker", "negotiation", "leduc_poker",
                                      "connect_four"}));
  absl::StatusOr<const TextRendering*> missing = FindTextRendering("go");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find(
                "tictactoe, kuhn_poker, negotiation, leduc_poker, connect_four"),
            std::string::npos);
  EXPECT_EQ(*ParsePromptStyle("compact"), kCompact);
  EXPECT_EQ(*ParsePromptStyle("spiral"), kSpiral);
  EXPECT_FALSE(ParsePromptStyle("chat").ok());
}

TEST(TextGames, TicTacToeTexts) {
  auto game = Load("tictactoe");
  const TextRendering& r = Rendering("tictactoe");
  auto s = Play(*game, {4, 0, 2});  // x: 4, 2; o: 0; o to move
  EXPECT_EQ(r.Rules(*game, 1, kCompact), "TicTacToe, you are o. Move [cell].\n");
  EXPECT_EQ(r.Observation(*s, 1, kCompact), "o1x\n3x5\n678\n");
  EXPECT_EQ(r.Observation(*s, 1, kSpiral),
            "Board:\n o | 1 | x\n 3 | x | 5\n 6 | 7 | 8\n"
            "You play o. Your legal moves: [1], [3], [5], [6], [7], [8]");
  EXPECT_EQ(r.MoveText(*s, 1, 6), "[6]");
  EXPECT_EQ(CanonicalAnswer(r, kSpiral, *s, 1, 6), "\\boxed{[6]}");

  auto start = game->NewInitialState();
  EXPECT_EQ(SpiralPrompt(r, *game, *start, 0),
            "<|im_start|>user\nYou are playing a two-player zero-sum game. Make valid actions to "
            "win.\nObservation: You are Player 0 in TicTacToe and play x; Player 1 plays o, and x "
            "moves first. Players take turns marking an empty cell of the 3x3 board; three marks "
            "in a row, column or diagonal win, and a full board without one is a draw. Cells are "
            "numbered 0-8 row by row; answer with the cell, e.g. [4].\n"
            "Board:\n 0 | 1 | 2\n 3 | 4 | 5\n 6 | 7 | 8\n"
            "You play x. Your legal moves: [0], [1], [2], [3], [4], [5], [6], [7], [8]\n"
            "Please reason step by step, and put your final answer within \\boxed{}.<|im_end|>\n"
            "<|im_start|>assistant\n");
}

TEST(TextGames, KuhnPokerTexts) {
  auto game = Load("kuhn_poker");
  const TextRendering& r = Rendering("kuhn_poker");
  // Player 0 holds K, player 1 Q. Player 0 checks, player 1 bets.
  auto s = Play(*game, {2, 1, 0});
  EXPECT_EQ(r.Observation(*s, 1, kCompact), "Card Q\nOpp [Check]\nMoves [Check] [Bet]\n");
  s->ApplyAction(KuhnPokerState::kBet);
  EXPECT_EQ(r.Observation(*s, 0, kCompact), "Opp [Bet]\nMoves [Fold] [Call]\n");
  EXPECT_EQ(r.Observation(*s, 0, kSpiral),
            "Your card: K\nBetting so far: Player 0 [Check], Player 1 [Bet]\n"
            "Your legal moves: [Fold], [Call]");
  EXPECT_EQ(r.MoveText(*s, 0, KuhnPokerState::kPass), "[Fold]");
  EXPECT_EQ(r.MoveText(*s, 0, KuhnPokerState::kBet), "[Call]");

  auto dealt = Play(*game, {0, 2});
  EXPECT_EQ(r.Observation(*dealt, 0, kSpiral),
            "Your card: J\nBetting so far: none\nYour legal moves: [Check], [Bet]");
  EXPECT_EQ(r.Rules(*game, 1, kSpiral),
            "You are Player 1 in Kuhn poker. The deck has three cards, J < Q < K. Each player "
            "antes 1 chip and is dealt one card; Player 0 acts first. Before any bet you may "
            "[Check] or [Bet] 1 chip; facing a bet you may [Call] or [Fold]. If nobody folds, the "
            "higher card wins the pot.\n");
}

TEST(TextGames, KuhnPokerCompactTranscriptsOfOneHand) {
  auto game = Load("kuhn_poker");
  const TextRendering& r = Rendering("kuhn_poker");
  const std::vector<int> hand = {2, 1, 0, 1, 1};  // K vs Q: check, bet, call
  EXPECT_EQ(*CompactTranscript(r, *game, hand, 0),
            "Kuhn poker (J<Q<K), you are P0.\n"
            "Card K\nMoves [Check] [Bet]\n[Check]\n"
            "Opp [Bet]\nMoves [Fold] [Call]\n[Call]\n");
  EXPECT_EQ(*CompactTranscript(r, *game, hand, 1),
            "Kuhn poker (J<Q<K), you are P1.\n"
            "Card Q\nOpp [Check]\nMoves [Check] [Bet]\n[Bet]\n");
  // Mid-hand, the transcript ends with the pending turn's prompt.
  EXPECT_EQ(*CompactTranscript(r, *game, std::vector<int>{2, 1, 0, 1}, 0),
            "Kuhn poker (J<Q<K), you are P0.\n"
            "Card K\nMoves [Check] [Bet]\n[Check]\nOpp [Bet]\nMoves [Fold] [Call]\n");
  // Before a seat's first turn its transcript is empty.
  EXPECT_EQ(*CompactTranscript(r, *game, std::vector<int>{2, 1}, 1), "");
  EXPECT_FALSE(CompactTranscript(r, *game, std::vector<int>{2, 2}, 0).ok());  // K dealt twice
}

TEST(TextGames, NegotiationTexts) {
  auto game = Load("negotiation");
  const TextRendering& r = Rendering("negotiation");
  const int kWheat = 0, kSheep = 2, kBrick = 3, kOre = 4;
  auto s = Play(*game, NegotiationActions({Offer(kWheat, 3, kOre, 2)}));
  EXPECT_EQ(r.Rules(*game, 1, kCompact),
            "Negotiation, you are P1, 10 turns. Move [Offer: 3 Wheat -> 2 Ore] (give 3 Wheat for "
            "2 Ore, 1-5 units), [Accept] or [Deny].\n");
  EXPECT_EQ(r.Observation(*s, 1, kCompact),
            "Values: Wheat 6, Wood 12, Sheep 12, Brick 20, Ore 32\n"
            "Have: Wheat 5, Wood 6, Sheep 7, Brick 8, Ore 9\n"
            "Opp [Offer: 3 Wheat -> 2 Ore]\nTurn 2/10\n");
  s->ApplyAction(NegotiationState::kAccept);  // player 0: Wheat 10 - 3, Ore 10 + 2
  EXPECT_EQ(r.Observation(*s, 0, kCompact),
            "Opp [Accept]\nHave: Wheat 7, Wood 10, Sheep 10, Brick 10, Ore 12\nTurn 3/10\n");
  s->ApplyAction(Offer(kBrick, 1, kSheep, 1));
  // Player 1's own accept changed its holdings since its previous turn: Wheat 5 + 3, Ore 9 - 2.
  EXPECT_EQ(r.Observation(*s, 1, kCompact),
            "Opp [Offer: 1 Brick -> 1 Sheep]\nHave: Wheat 8, Wood 6, Sheep 7, Brick 8, Ore 7\n"
            "Turn 4/10\n");
  EXPECT_EQ(r.Observation(*s, 1, kSpiral),
            "Turn 4 of 10.\nYour values: Wheat 6, Wood 12, Sheep 12, Brick 20, Ore 32\n"
            "You have: Wheat 8, Wood 6, Sheep 7, Brick 8, Ore 7\n"
            "You started with: Wheat 5, Wood 6, Sheep 7, Brick 8, Ore 9\n"
            "History: Player 0 [Offer: 3 Wheat -> 2 Ore]; Player 1 [Accept]; Player 0 [Offer: 1 "
            "Brick -> 1 Sheep]\n"
            "Pending offer: Player 0 [Offer: 1 Brick -> 1 Sheep]");
  s->ApplyAction(NegotiationState::kDeny);
  // Nothing changed hands since player 0's previous turn.
  EXPECT_EQ(r.Observation(*s, 0, kCompact), "Opp [Deny]\nTurn 5/10\n");
  EXPECT_EQ(r.MoveText(*s, 0, Offer(kOre, 5, kWheat, 1)), "[Offer: 5 Ore -> 1 Wheat]");
}

// Every legal action of many random states: its canonical answer parses back to it, in both
// styles, also with free text around it and in lower case.
void ExpectCanonicalAnswersAreFixedPoints(const std::string& name, int games) {
  auto game = Load(name);
  const TextRendering& r = Rendering(name);
  std::mt19937_64 rng(7);
  int checked = 0;
  for (int g = 0; g < games; ++g) {
    auto s = game->NewInitialState();
    while (!s->IsTerminal()) {
      if (s->IsChanceNode()) {
        s->ApplyAction(SampleChanceOutcome(*s, rng));
        continue;
      }
      int player = s->CurrentPlayer();
      std::vector<int> legal = s->LegalActions();
      for (int a : legal) {
        for (PromptStyle style : {kCompact, kSpiral}) {
          std::string answer = CanonicalAnswer(r, style, *s, player, a);
          ASSERT_EQ(ParseAnswer(r, style, *s, player, answer).value_or(-1), a)
              << name << " " << answer;
          std::string chatty = "Let me think: [this] is {odd}.\n" + answer + " is my move.";
          ASSERT_EQ(ParseAnswer(r, style, *s, player, chatty).value_or(-1), a) << chatty;
          std::string lower = answer;
          for (char& c : lower) c = static_cast<char>(std::tolower(c));
          ASSERT_EQ(ParseAnswer(r, style, *s, player, lower).value_or(-1), a) << lower;
          ++checked;
        }
      }
      s->ApplyAction(legal[std::uniform_int_distribution<size_t>(0, legal.size() - 1)(rng)]);
    }
  }
  EXPECT_GT(checked, games);
}

TEST(TextGames, TicTacToeCanonicalAnswersParseBack) {
  ExpectCanonicalAnswersAreFixedPoints("tictactoe", 200);
}
TEST(TextGames, KuhnPokerCanonicalAnswersParseBack) {
  ExpectCanonicalAnswersAreFixedPoints("kuhn_poker", 200);
}
TEST(TextGames, NegotiationCanonicalAnswersParseBack) {
  ExpectCanonicalAnswersAreFixedPoints("negotiation", 4);
}

TEST(TextGames, LeducPokerCanonicalAnswersParseBack) {
  ExpectCanonicalAnswersAreFixedPoints("leduc_poker", 200);
}
TEST(TextGames, ConnectFourCanonicalAnswersParseBack) {
  ExpectCanonicalAnswersAreFixedPoints("connect_four", 50);
}

TEST(TextGames, LeducPokerTexts) {
  auto game = Load("leduc_poker");
  const TextRendering& r = Rendering("leduc_poker");
  const int c = LeducPokerState::kCall, b = LeducPokerState::kRaise;
  // Player 0 holds Ks (4), player 1 Qh (3). Round 1: bet, call.
  auto s = Play(*game, {4, 3, b});
  EXPECT_EQ(r.Observation(*s, 1, kCompact), "Card Q\nOpp [Bet]\nMoves [Fold] [Call] [Raise]\n");
  s->ApplyAction(c);
  s->ApplyAction(0);  // the public card: Js
  // Player 0 opens round 2 after its own bet was called.
  EXPECT_EQ(r.Observation(*s, 0, kCompact), "Opp [Call]\nPublic J\nMoves [Check] [Bet]\n");
  s->ApplyAction(b);
  EXPECT_EQ(r.Observation(*s, 1, kCompact), "Public J\nOpp [Bet]\nMoves [Fold] [Call] [Raise]\n");
  EXPECT_EQ(r.Observation(*s, 1, kSpiral),
            "Your card: Q\nPublic card: J\nBetting so far: round 1: Player 0 [Bet], Player 1 "
            "[Call]; round 2: Player 0 [Bet]\nChips in the pot: you 3, opponent 7\n"
            "Your legal moves: [Fold], [Call], [Raise]");
  s->ApplyAction(b);  // player 1 raises: the second raise of the round
  EXPECT_EQ(r.Observation(*s, 0, kCompact), "Opp [Raise]\nMoves [Fold] [Call]\n");
  EXPECT_EQ(ParseError("leduc_poker", kCompact, *s, "[Raise]"),
            "[Raise] is not legal now; the moves are [Fold], [Call]");
  EXPECT_EQ(ParseError("leduc_poker", kCompact, *s, "[Check]"),
            "[Check] is not legal now: facing a bet, the moves are [Fold], [Call] and [Raise]");
  EXPECT_EQ(ParseError("leduc_poker", kCompact, *s, "[fold]"), "ok");
  auto open = Play(*game, {4, 3});
  EXPECT_EQ(ParseError("leduc_poker", kCompact, *open, "[Fold]"),
            "[Fold] is not legal now; the moves are [Check], [Bet]");
  EXPECT_EQ(ParseError("leduc_poker", kCompact, *open, "[Raise]"),
            "[Raise] is not legal now: with nothing owed, the moves are [Check] and [Bet]");
  EXPECT_NE(ParseError("leduc_poker", kCompact, *open, "[Allin]"), "ok");
}

TEST(TextGames, ConnectFourTexts) {
  auto game = Load("connect_four");
  const TextRendering& r = Rendering("connect_four");
  auto s = Play(*game, {3, 3, 4});  // x: 3, 4 on the bottom row; o on top of 3
  EXPECT_EQ(r.Observation(*s, 1, kCompact),
            ".......\n.......\n.......\n.......\n...o...\n...xx..\n0123456\n");
  EXPECT_EQ(r.Rules(*game, 1, kCompact), "Connect Four, you are o. Move [column].\n");
  for (int i = 0; i < 4; ++i) s->ApplyAction(0);  // column 0: o x o x
  s->ApplyAction(0);
  s->ApplyAction(0);  // column 0 full
  EXPECT_EQ(ParseError("connect_four", kCompact, *s, "[0]"), "column 0 is full");
  EXPECT_EQ(ParseError("connect_four", kCompact, *s, "[7]"),
            "'7' is not a Connect Four column: a move is a column 0-6, e.g. [3]");
  EXPECT_EQ(ParseError("connect_four", kSpiral, *s, "\\boxed{6}"), "ok");
  EXPECT_EQ(r.Observation(*s, 1, kSpiral),
            "Board:\nx . . . . . .\no . . . . . .\nx . . . . . .\no . . . . . .\n"
            "x . . o . . .\no . . x x . .\n0 1 2 3 4 5 6\n"
            "You play o. Your legal moves: [1], [2], [3], [4], [5], [6]");
}

TEST(TextGames, PathLeadsToTheState) {
  for (const std::string name : {"tictactoe", "kuhn_poker", "negotiation", "leduc_poker"}) {
    auto game = Load(name);
    const TextRendering& r = Rendering(name);
    std::mt19937_64 rng(5);
    for (int g = 0; g < 50; ++g) {
      auto s = game->NewInitialState();
      while (!s->IsTerminal()) {
        if (!s->IsChanceNode()) {
          absl::StatusOr<std::vector<int>> path = r.Path(*s);
          ASSERT_TRUE(path.ok()) << name << " " << path.status();
          auto replayed = Play(*game, *path);
          ASSERT_EQ(replayed->ToString(), s->ToString()) << name;
          ASSERT_EQ(replayed->InformationStateString(0), s->InformationStateString(0)) << name;
          ASSERT_EQ(replayed->InformationStateString(1), s->InformationStateString(1)) << name;
        }
        std::vector<int> legal = s->LegalActions();
        s->ApplyAction(
            s->IsChanceNode()
                ? SampleChanceOutcome(*s, rng)
                : legal[std::uniform_int_distribution<size_t>(0, legal.size() - 1)(rng)]);
      }
    }
  }
  EXPECT_EQ(Rendering("connect_four").Path(ConnectFourState()).status().code(),
            absl::StatusCode::kUnimplemented);
}

// Every text of a seat at a decision node, for comparing information states.
std::string Texts(const TextRendering& r, const Game& game, const State& s) {
  int p = s.CurrentPlayer();
  return r.Observation(s, p, kCompact) + "|" + r.Observation(s, p, kSpiral) + "|" +
         CompactPrompt(r, game, s, p).value_or("error");
}

// Decision nodes of the whole tree: information-state string -> the set of texts seen there.
void CollectTexts(const TextRendering& r, const Game& game, const State& s,
                  std::map<std::string, std::set<std::string>>* texts) {
  if (s.IsTerminal()) return;
  if (!s.IsChanceNode()) {
    (*texts)[s.InformationStateString(s.CurrentPlayer())].insert(Texts(r, game, s));
  }
  for (int a : s.LegalActions()) {
    auto child = s.Clone();
    child->ApplyAction(a);
    CollectTexts(r, game, *child, texts);
  }
}

// Texts reveal nothing the seat does not know (one text per information state), and tell apart
// what it does know, up to suits in Leduc (12 Kuhn information states; 288 Leduc ones by rank).
TEST(TextGames, PokerTextsAreFunctionsOfTheInformationState) {
  for (const auto& [name, distinct] :
       std::vector<std::pair<std::string, size_t>>{{"kuhn_poker", 12}, {"leduc_poker", 288}}) {
    auto game = Load(name);
    const TextRendering& r = Rendering(name);
    std::map<std::string, std::set<std::string>> texts;
    CollectTexts(r, *game, *game->NewInitialState(), &texts);
    std::set<std::string> all;
    for (const auto& [key, seen] : texts) {
      ASSERT_EQ(seen.size(), 1u) << name << " " << key << ": " << *seen.begin();
      EXPECT_EQ(seen.begin()->find("error"), std::string::npos) << key;
      all.insert(*seen.begin());
    }
    EXPECT_EQ(all.size(), distinct) << name;
  }
}

TEST(TextGames, TicTacToeCompactPromptIsAFunctionOfThePosition) {
  auto game = Load("tictactoe");
  const TextRendering& r = Rendering("tictactoe");
  // Two move orders to one position; the prompt replays x's cells and o's cells ascending.
  auto a = Play(*game, {0, 4, 8, 2});
  auto b = Play(*game, {8, 2, 0, 4});
  EXPECT_EQ(*CompactPrompt(r, *game, *a, 0), *CompactPrompt(r, *game, *b, 0));
  EXPECT_EQ(*CompactPrompt(r, *game, *a, 0),
            "TicTacToe, you are x. Move [cell].\n"
            "012\n345\n678\n[0]\nx1o\n345\n678\n[8]\nx1o\n3o5\n67x\n");
  // Every non-terminal position has a prompt of its own.
  std::map<std::string, std::unique_ptr<State>> positions;
  std::vector<std::unique_ptr<State>> frontier;
  frontier.push_back(game->NewInitialState());
  std::set<std::string> prompts;
  while (!frontier.empty()) {
    std::unique_ptr<State> s = std::move(frontier.back());
    frontier.pop_back();
    if (s->IsTerminal() || positions.count(s->ToString())) continue;
    prompts.insert(*CompactPrompt(r, *game, *s, s->CurrentPlayer()));
    for (int action : s->LegalActions()) {
      auto child = s->Clone();
      child->ApplyAction(action);
      frontier.push_back(std::move(child));
    }
    positions[s->ToString()] = std::move(s);
  }
  EXPECT_EQ(positions.size(), 4520u);
  EXPECT_EQ(prompts.size(), 4520u);
}

// The opponent's private values and holdings do not show in a seat's negotiation texts.
TEST(TextGames, NegotiationTextsHideTheOpponentsValuesAndHoldings) {
  auto game = Load("negotiation");
  const TextRendering& r = Rendering("negotiation");
  std::mt19937_64 rng(9);
  for (int g = 0; g < 20; ++g) {
    for (int seat = 0; seat < 2; ++seat) {
      // The seat's deal, and two deals of its opponent: random, and 25 of everything (so that
      // every action of the random game stays legal).
      std::vector<int> deal(20);
      auto s = game->NewInitialState();
      for (int i = 0; i < 20; ++i) {
        deal[i] = SampleChanceOutcome(*s, rng);
        s->ApplyAction(deal[i]);
      }
      std::vector<int> other = deal;
      const int opponent = 1 - seat;
      for (int i = 10 * opponent; i < 10 * opponent + 10; ++i) {
        other[i] = i % 10 < 5 ? NegotiationValueRange(i % 5).second : kMaxHolding;
      }
      auto t = Play(*game, other);
      while (!s->IsTerminal()) {
        if (s->CurrentPlayer() == seat) {
          ASSERT_EQ(Texts(r, *game, *s), Texts(r, *game, *t));
        }
        std::vector<int> legal = s->LegalActions();
        int action = legal[std::uniform_int_distribution<size_t>(0, legal.size() - 1)(rng)];
        ASSERT_TRUE(t->IsLegal(action));
        s->ApplyAction(action);
        t->ApplyAction(action);
      }
    }
  }
}

TEST(TextGames, MoveIsTheLastBracketOrTheLastBoxed) {
  auto game = Load("kuhn_poker");
  auto s = Play(*game, {0, 1});  // player 0 to act, no bet yet
  const TextRendering& r = Rendering("kuhn_poker");
  auto parse = [&](PromptStyle style, const std::string& answer) {
    return ParseAnswer(r, style, *s, 0, answer).value_or(-1);
  };
  EXPECT_EQ(parse(kCompact, "[Check] or [Bet]? I pick [Bet]"), KuhnPokerState::kBet);
  EXPECT_EQ(parse(kCompact, "  [ cHeCk ]  "), KuhnPokerState::kPass);
  EXPECT_EQ(parse(kSpiral, "\\boxed{[Check]} no, wait: \\boxed{[Bet]}"), KuhnPokerState::kBet);
  EXPECT_EQ(parse(kSpiral, "I check. \\boxed{check}"), KuhnPokerState::kPass);
  EXPECT_EQ(parse(kSpiral, "\\boxed{\\text{[BET]}}"), KuhnPokerState::kBet);
  // Brackets outside the last \boxed{} do not count in the spiral style.
  EXPECT_EQ(parse(kSpiral, "\\boxed{Check} [Bet]"), KuhnPokerState::kPass);
  EXPECT_EQ(ExtractMove(kCompact, "x [ 4 ] y").value_or("?"), "4");
  EXPECT_EQ(ExtractMove(kSpiral, "\\boxed{ [Offer: 3 Wheat -> 2 Ore] }").value_or("?"),
            "Offer: 3 Wheat -> 2 Ore");
}

TEST(TextGames, TicTacToeBadAnswersAreErrors) {
  auto game = Load("tictactoe");
  auto s = Play(*game, {4});
  EXPECT_EQ(ParseError("tictactoe", kCompact, *s, "[4]"), "cell 4 is taken by x");
  EXPECT_EQ(ParseError("tictactoe", kCompact, *s, "[9]"),
            "'9' is not a TicTacToe cell: a move is a cell 0-8, e.g. [4]");
  EXPECT_NE(ParseError("tictactoe", kCompact, *s, "[x]"), "ok");
  EXPECT_NE(ParseError("tictactoe", kCompact, *s, "[12]"), "ok");
  EXPECT_NE(ParseError("tictactoe", kCompact, *s, "[-1]"), "ok");
  EXPECT_NE(ParseError("tictactoe", kCompact, *s, "[]"), "ok");
  EXPECT_EQ(ParseError("tictactoe", kCompact, *s, "cell 3"),
            "no move in brackets, such as [4], in the answer");
  EXPECT_EQ(ParseError("tictactoe", kSpiral, *s, "[3]"), "no \\boxed{...} move in the answer");
  EXPECT_EQ(ParseError("tictactoe", kSpiral, *s, "\\boxed{[3]"),
            "no \\boxed{...} move in the answer");
  EXPECT_EQ(ParseError("tictactoe", kCompact, *s, "[3]"), "ok");
}

TEST(TextGames, KuhnPokerBadAnswersAreErrors) {
  auto game = Load("kuhn_poker");
  auto s = Play(*game, {0, 1, KuhnPokerState::kBet});  // player 1 faces a bet
  EXPECT_EQ(ParseError("kuhn_poker", kCompact, *s, "[Bet]"),
            "[Bet] is not legal now: facing a bet, the moves are [Fold] and [Call]");
  EXPECT_EQ(ParseError("kuhn_poker", kCompact, *s, "[check]"),
            "[Check] is not legal now: facing a bet, the moves are [Fold] and [Call]");
  EXPECT_EQ(ParseError("kuhn_poker", kCompact, *s, "[Raise]"),
            "'Raise' is not a Kuhn poker move: [Check], [Bet], [Call] or [Fold]");
  EXPECT_NE(ParseError("kuhn_poker", kCompact, *s, "[Call it]"), "ok");
  auto open = Play(*game, {0, 1});
  EXPECT_EQ(ParseError("kuhn_poker", kSpiral, *open, "\\boxed{Fold}"),
            "[Fold] is not legal now: with no bet made, the moves are [Check] and [Bet]");
}

TEST(TextGames, NegotiationBadAnswersAreErrors) {
  const int kWheat = 0, kOre = 4;
  auto game = Load("negotiation");
  auto s = Play(*game, kNegotiationDeal);  // player 0 to move, nothing pending
  auto error = [&](const State& state, const std::string& answer) {
    return ParseError("negotiation", kCompact, state, answer);
  };
  EXPECT_EQ(error(*s, "[Accept]"), "no offer is pending to accept");
  EXPECT_EQ(error(*s, "[deny]"), "no offer is pending to deny");
  EXPECT_EQ(error(*s, "[Offer: 3 Gold -> 2 Ore]"),
            "'Gold' is not one resource: Wheat, Wood, Sheep, Brick or Ore, one a side");
  EXPECT_EQ(error(*s, "[Offer: 3 Wheat 2 Ore]"),
            "malformed offer 'Offer: 3 Wheat 2 Ore': write one arrow, as in [Offer: 3 Wheat -> 2 "
            "Ore]");
  EXPECT_EQ(error(*s, "[Offer: 6 Wheat -> 2 Ore]"), "an offer moves 1 to 5 units a side, not 6");
  EXPECT_EQ(error(*s, "[Offer: 0 Wheat -> 2 Ore]"), "an offer moves 1 to 5 units a side, not 0");
  EXPECT_EQ(error(*s, "[Offer: 3 Wheat -> 2 wheat]"),
            "an offer trades two different resources, not Wheat for itself");
  EXPECT_NE(error(*s, "[Offer: 3 Wheat, 1 Wood -> 2 Ore]"), "ok");
  EXPECT_NE(error(*s, "[Offer: Wheat -> 2 Ore]"), "ok");
  EXPECT_NE(error(*s, "[Offer: 3 Wheat -> 2 Ore -> 1 Wood]"), "ok");
  EXPECT_EQ(error(*s, "[Trade]"),
            "'Trade' is not a negotiation move: [Offer: 3 Wheat -> 2 Ore], [Accept] or [Deny]");
  EXPECT_EQ(error(*s, "[offer 3 wheat->2 ore]"), "ok");

  // With up to 10 units a side: offering more than one holds, accepting without the units asked.
  NegotiationOptions options;
  options.max_units = 10;
  NegotiationGame wide(options);
  auto t = Play(wide, kNegotiationDeal);  // player 0 holds 10 of each, player 1 has 9 Ore
  EXPECT_EQ(ParseError("negotiation", kCompact, *t, "[Offer: 10 Wheat -> 10 Ore]"), "ok");
  t->ApplyAction(Offer(kWheat, 1, kOre, 10, 10));
  EXPECT_EQ(ParseError("negotiation", kCompact, *t, "[Accept]"),
            "accepting gives 10 Ore but you have 9");
  EXPECT_EQ(ParseError("negotiation", kCompact, *t, "[Offer: 6 Wheat -> 1 Ore]"),
            "you offer 6 Wheat but have 5");
  EXPECT_EQ(ParseError("negotiation", kCompact, *t, "[Deny]"), "ok");
}

// Plays `answers` through a match; returns the match.
TextMatch PlayMatch(const std::string& name, const TextMatchOptions& options,
                    const std::vector<std::string>& answers, uint64_t seed = 1) {
  std::mt19937_64 rng(seed);
  absl::StatusOr<TextMatch> match = TextMatch::Start(Load(name), options, rng);
  EXPECT_TRUE(match.ok()) << match.status();
  for (const std::string& answer : answers) {
    EXPECT_FALSE(match->IsOver()) << answer;
    (void)match->Answer(answer, rng);
  }
  return std::move(*match);
}

TEST(TextGames, MatchForfeitsOnAnInvalidAnswer) {
  TextMatch m = PlayMatch("tictactoe", {}, {"[4]", "[4]"});  // o plays the taken cell
  EXPECT_TRUE(m.IsOver());
  EXPECT_EQ(m.forfeited_by(), 1);
  EXPECT_EQ(m.Returns(), (std::vector<double>{0.5, -1.5}));
  EXPECT_EQ(m.CurrentPlayer(), kTerminalPlayer);
  std::mt19937_64 rng(1);
  EXPECT_EQ(m.Answer("[0]", rng).status().code(), absl::StatusCode::kFailedPrecondition);

  TextMatch k = PlayMatch("kuhn_poker", {}, {"I bet."});  // no brackets
  EXPECT_EQ(k.forfeited_by(), 0);
  EXPECT_EQ(k.Returns(), (std::vector<double>{-1.5, 0.5}));
  EXPECT_EQ(k.Prompt(), "");

  TextMatch sp = PlayMatch("kuhn_poker", {.style = kSpiral}, {"\\boxed{Bet}", "[Call]"});
  EXPECT_EQ(sp.forfeited_by(), 1);  // brackets without \boxed{} in the spiral style
  EXPECT_EQ(sp.Returns(), (std::vector<double>{0.5, -1.5}));
}

TEST(TextGames, MatchCutAtTheTurnLimitIsADrawAndTheGameEndScoresByItsRules) {
  TextMatch cut = PlayMatch("tictactoe", {.max_turns = 3}, {"[0]", "[4]", "[8]"});
  EXPECT_TRUE(cut.IsOver());
  EXPECT_TRUE(cut.cut_at_turn_limit());
  EXPECT_FALSE(cut.state().IsTerminal());
  EXPECT_EQ(cut.Returns(), (std::vector<double>{0.0, 0.0}));

  // x completes 0-1-2 on the fifth answer, the limit: the win stands.
  TextMatch won = PlayMatch("tictactoe", {.max_turns = 5}, {"[0]", "[4]", "[1]", "[8]", "[2]"});
  EXPECT_TRUE(won.IsOver());
  EXPECT_FALSE(won.cut_at_turn_limit());
  EXPECT_EQ(won.Returns(), (std::vector<double>{1.0, -1.0}));

  // Negotiation ends after its own 10 turns and is scored by the gains: player 0 gives 1 Wheat for
  // 1 Ore, which player 1 accepts, then both deny or counter to the end.
  std::vector<std::string> answers = {"[Offer: 1 Wheat -> 1 Ore]", "[Accept]"};
  for (int t = 2; t < 10; ++t)
    answers.push_back(t % 2 == 0 ? "[Offer: 1 Wood -> 5 Ore]" : "[Deny]");
  TextMatch trade = PlayMatch("negotiation", {}, answers);
  EXPECT_TRUE(trade.IsOver());
  EXPECT_TRUE(trade.state().IsTerminal());
  EXPECT_FALSE(trade.cut_at_turn_limit());
  const auto& s = static_cast<const NegotiationState&>(trade.state());
  EXPECT_EQ(s.Gain(0), s.values(0)[4] - s.values(0)[0]);
  EXPECT_EQ(s.Gain(1), s.values(1)[0] - s.values(1)[4]);
  EXPECT_EQ(trade.Returns(), (std::vector<double>{1.0, -1.0}));  // Ore is worth more than Wheat
}

// The compact context of each seat, built turn by turn from the prompts a match hands out and the
// answers, equals CompactTranscript of the actions played, and only ever grows at its end.
TEST(TextGames, MatchCompactTranscriptIsTheConcatenationOfTurns) {
  for (const std::string name :
       {"tictactoe", "kuhn_poker", "negotiation", "leduc_poker", "connect_four"}) {
    std::mt19937_64 rng(11);
    for (int g = 0; g < 30; ++g) {
      absl::StatusOr<TextMatch> match = TextMatch::Start(Load(name), {}, rng);
      ASSERT_TRUE(match.ok());
      std::vector<std::string> context(2);
      while (!match->IsOver()) {
        int player = match->CurrentPlayer();
        std::vector<int> legal = match->state().LegalActions();
        int action = legal[std::uniform_int_distribution<size_t>(0, legal.size() - 1)(rng)];
        std::string answer =
            match->rendering().MoveText(match->state(), player, action) + " (chosen)";
        context[player] += match->Prompt();
        std::string before = match->Transcript(player);
        ASSERT_EQ(before, context[player]);
        ASSERT_EQ(*match->Answer(answer, rng), action);
        context[player] += answer + "\n";
        ASSERT_EQ(match->Transcript(player).substr(0, before.size()), before);
      }
      for (int p = 0; p < 2; ++p) {
        ASSERT_EQ(match->Transcript(p), context[p]);
        std::string canonical = context[p];
        for (size_t at; (at = canonical.find(" (chosen)")) != std::string::npos;) {
          canonical.erase(at, 9);
        }
        ASSERT_EQ(*CompactTranscript(match->rendering(), match->game(), match->actions(), p),
                  canonical)
            << name;
      }
    }
  }
}

TEST(TextGames, MatchSpiralPromptsAreWholeChatPrompts) {
  std::mt19937_64 rng(3);
  absl::StatusOr<TextMatch> match = TextMatch::Start(Load("kuhn_poker"), {.style = kSpiral}, rng);
  ASSERT_TRUE(match.ok());
  EXPECT_EQ(match->Prompt(), SpiralPrompt(match->rendering(), match->game(), match->state(), 0));
  ASSERT_TRUE(match->Answer("I will bet. \\boxed{[Bet]}", rng).ok());
  EXPECT_EQ(match->Prompt(), SpiralPrompt(match->rendering(), match->game(), match->state(), 1));
  EXPECT_NE(match->Prompt().find("Betting so far: Player 0 [Bet]\nYour legal moves: [Fold], "
                                 "[Call]\nPlease reason step by step"),
            std::string::npos);
}

// A seat's whole compact context stays short. Kuhn: the longest is player 0's check, bet, call
// (or fold): 32 bytes of rules, 7 + 20 + 8 on its first turn, 10 + 20 + 7 on its second = 104.
// TicTacToe: x's five turns of a full board, 35 + 5 * (12 + 4) = 115.
TEST(TextGames, CompactTranscriptsStayShort) {
  for (const auto& [name, longest] :
       std::vector<std::pair<std::string, size_t>>{{"kuhn_poker", 104}, {"tictactoe", 115}}) {
    std::mt19937_64 rng(13);
    size_t seen = 0;
    for (int g = 0; g < 300; ++g) {
      TextMatch match = PlayMatch(name, {}, {}, rng());
      while (!match.IsOver()) {
        std::vector<int> legal = match.state().LegalActions();
        int a = legal[std::uniform_int_distribution<size_t>(0, legal.size() - 1)(rng)];
        ASSERT_TRUE(
            match.Answer(match.rendering().MoveText(match.state(), match.CurrentPlayer(), a), rng)
                .ok());
      }
      for (int p = 0; p < 2; ++p) seen = std::max(seen, match.Transcript(p).size());
    }
    EXPECT_EQ(seen, longest) << name;
  }
}

}  // namespace
}  // namespace rally
