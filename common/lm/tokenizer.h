// Tokenizers of language-model policies: text <-> token ids (docs/lm.md).
//
// Two kinds behind one interface:
// - byte-level BPE read from a Hugging Face `tokenizer.json` (the GPT-2 / Qwen family): added
//   tokens are matched first, the rest is NFC-normalised where the file asks, split by the
//   pre-tokeniser's regular expression (PCRE2, Unicode properties), mapped to bytes and merged by
//   the ranked merges;
// - a byte tokenizer for small models trained from scratch (each byte is its own token).
//
// Every input is accepted: bytes that are not valid UTF-8 are neither normalised nor split by
// the regular expression; they form pieces of their own and are encoded as their bytes, so that
// Decode(Encode(text)) == text for every byte string.
//
// Thread safety: a Tokenizer is immutable after loading except for an internal cache behind a
// mutex; Encode and Decode may be called concurrently from any number of threads.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace rally {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  // Token ids of `text`; special tokens written in the text are matched (not split); no special
  // tokens are added around the text.
  virtual std::vector<int32_t> Encode(std::string_view text) const = 0;
  // The bytes the ids stand for (special tokens as their text). Invalid UTF-8 may result (ids can
  // split a character): the raw bytes are returned. Ids outside the vocabulary stand for nothing.
  virtual std::string Decode(std::span<const int32_t> ids) const = 0;
  virtual int VocabSize() const = 0;  // largest id + 1
  // The id of a special/added token by its text (e.g. "<|im_end|>"), if the vocabulary has it.
  virtual std::optional<int32_t> SpecialTokenId(std::string_view text) const = 0;

  // What the vocabulary holds, for reports and tests (zeros where a tokenizer does not say).
  struct Counts {
    int vocab_entries = 0;  // model.vocab (the 256 bytes of the byte tokenizer)
    int merges = 0;
    int added_tokens = 0;
  };
  virtual Counts counts() const { return {}; }
};

// Reads a Hugging Face `tokenizer.json` with a byte-level BPE model (model.type "BPE", merges as
// "a b" strings or ["a", "b"] pairs, pre_tokenizer ByteLevel or Sequence[Split(Regex),
// ByteLevel], normalizer null or NFC). INVALID_ARGUMENT naming the file and the key or entry for
// an unreadable file, bad JSON, or anything outside that family.
absl::StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizer(const std::string& tokenizer_json_path);
// The same from the file's text; `origin` names it in errors.
absl::StatusOr<std::unique_ptr<Tokenizer>> ParseTokenizerJson(std::string_view json,
                                                              std::string_view origin);

// How byte-level vocab and merges entries write `bytes`: each byte as its character of GPT-2's
// byte table ("Ġ" for a space), UTF-8 encoded; LoadTokenizer reads it back as `bytes`.
std::string ByteLevelToken(std::string_view bytes);

// Bytes 0..255 are ids 0..255; then special tokens "<|endoftext|>" 256, "<|im_start|>" 257,
// "<|im_end|>" 258 (matched in the text like the BPE's added tokens). For small models trained
// from scratch.
std::unique_ptr<Tokenizer> MakeByteTokenizer();

}  // namespace rally
