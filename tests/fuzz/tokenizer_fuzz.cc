// The tokenizers (common/lm/tokenizer.h) on arbitrary bytes. An input whose first byte is odd is
// a tokenizer.json (ParseTokenizerJson must answer, not crash); otherwise it is text for a small
// byte-level BPE with Qwen's pre-tokeniser and added tokens, and for the byte tokenizer: every
// id is in the vocabulary and Decode(Encode(text)) == text, valid UTF-8 or not.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "common/lm/tokenizer.h"
#include "nlohmann/json.hpp"
#include "tests/fuzz/fuzz_util.h"

namespace {

// Bytes as their ids (the GPT-2 byte table), a few merges, Qwen's Split pattern, three added
// tokens. No normaliser (NFC changes text) and no lstrip/rstrip (a stripped space decodes as
// nothing): either would break the round trip.
std::string SmallTokenizerJson() {
  nlohmann::json vocab = nlohmann::json::object();
  const auto byte_char = [](int b) {
    const auto printable = [](int x) {
      return (x >= 33 && x <= 126) || (x >= 161 && x <= 172) || x >= 174;
    };
    int cp = b;
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
  };
  for (int b = 0; b < 256; ++b) vocab[byte_char(b)] = b;
  const std::string space = byte_char(' ');
  nlohmann::json merges = nlohmann::json::array();
  int next = 256;
  for (const auto& [a, b] : {std::pair<std::string, std::string>{"t", "h"},
                             {"th", "e"},
                             {space, "the"},
                             {"e", "r"},
                             {space, space},
                             {"i", "n"}}) {
    vocab[a + b] = next++;
    merges.push_back({a, b});
  }
  const nlohmann::json pre_tokenizer = {
      {"type", "Sequence"},
      {"pretokenizers",
       {{{"type", "Split"},
         {"pattern",
          {{"Regex",
            R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)"}}},
         {"behavior", "Isolated"},
         {"invert", false}},
        {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}};
  const nlohmann::json added =
      nlohmann::json::array({{{"id", next}, {"content", "<|endoftext|>"}, {"special", true}},
                             {{"id", next + 1}, {"content", "<|im_start|>"}, {"special", true}},
                             {{"id", next + 2}, {"content", "<|im"}, {"special", false}}});
  return nlohmann::json{{"added_tokens", added},
                        {"normalizer", nullptr},
                        {"pre_tokenizer", pre_tokenizer},
                        {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", merges}}}}
      .dump();
}

void CheckRoundTrip(const rally::Tokenizer& tokenizer, std::string_view text) {
  const std::vector<int32_t> ids = tokenizer.Encode(text);
  for (int32_t id : ids) FUZZ_CHECK(id >= 0 && id < tokenizer.VocabSize());
  FUZZ_CHECK(tokenizer.Decode(ids) == text);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::unique_ptr<rally::Tokenizer> bpe = [] {
    auto tokenizer = rally::ParseTokenizerJson(SmallTokenizerJson(), "fuzz.json");
    FUZZ_CHECK(tokenizer.ok());
    return *std::move(tokenizer);
  }();
  static const std::unique_ptr<rally::Tokenizer> bytes = rally::MakeByteTokenizer();
  if (size == 0) return 0;
  const std::string_view rest = rally::fuzz::Bytes(data + 1, size - 1);
  if (data[0] & 1) {
    auto parsed = rally::ParseTokenizerJson(rest, "input.json");
    if (parsed.ok()) (*parsed)->Decode((*parsed)->Encode("The <|im_start|> text\xff"));
    return 0;
  }
  CheckRoundTrip(*bpe, rest);
  CheckRoundTrip(*bytes, rest);
  return 0;
}
