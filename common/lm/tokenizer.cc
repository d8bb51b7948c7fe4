#include "common/lm/tokenizer.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <queue>
#include <sstream>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "nlohmann/json.hpp"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <utf8proc.h>

namespace rally {
namespace {

using nlohmann::json;

// ---------------------------------------------------------------------------------------------
// UTF-8

// The length of the valid UTF-8 sequence at text[i] (1 to 4), or 0 where it is not valid
// (overlong forms, surrogates and code points above U+10FFFF are not).
size_t Utf8SequenceLength(std::string_view text, size_t i) {
  const auto byte = [&](size_t k) { return static_cast<uint8_t>(text[k]); };
  const uint8_t lead = byte(i);
  if (lead < 0x80) return 1;
  size_t n = 0;
  uint32_t cp = 0;
  uint32_t min = 0;
  if ((lead & 0xe0) == 0xc0) {
    n = 2, cp = lead & 0x1f, min = 0x80;
  } else if ((lead & 0xf0) == 0xe0) {
    n = 3, cp = lead & 0x0f, min = 0x800;
  } else if ((lead & 0xf8) == 0xf0) {
    n = 4, cp = lead & 0x07, min = 0x10000;
  } else {
    return 0;
  }
  if (i + n > text.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    if ((byte(i + k) & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (byte(i + k) & 0x3f);
  }
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
  return n;
}

// A stretch of text that is valid UTF-8 throughout, or invalid at every byte.
struct Utf8Run {
  std::string_view text;
  bool valid;
};

std::vector<Utf8Run> SplitValidUtf8(std::string_view text) {
  std::vector<Utf8Run> runs;
  size_t i = 0;
  while (i < text.size()) {
    const size_t start = i;
    const bool valid = Utf8SequenceLength(text, i) > 0;
    while (i < text.size()) {
      const size_t n = Utf8SequenceLength(text, i);
      if ((n > 0) != valid) break;
      i += valid ? n : 1;
    }
    runs.push_back({text.substr(start, i - start), valid});
  }
  return runs;
}

void AppendUtf8(uint32_t cp, std::string& out) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xc0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xe0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else {
    out.push_back(static_cast<char>(0xf0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  }
}

// NFC of valid UTF-8 text (utf8proc); the text unchanged if utf8proc refuses it.
std::string Nfc(std::string_view text) {
  utf8proc_uint8_t* out = nullptr;
  const utf8proc_ssize_t n =
      utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()),
                   static_cast<utf8proc_ssize_t>(text.size()), &out,
                   static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
  std::string result = n < 0 ? std::string(text) : std::string(reinterpret_cast<char*>(out), n);
  std::free(out);
  return result;
}

// ---------------------------------------------------------------------------------------------
// The GPT-2 byte table: each byte is written as a printable character in vocab and merges.
// Printable Latin-1 bytes ('!'..'~', '¡'..'¬', '®'..'ÿ') stand for themselves; the other 68
// bytes, in ascending order, for U+0100, U+0101, ...

class ByteAlphabet {
 public:
  ByteAlphabet() {
    byte_of_.fill(-1);
    int next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) || b >= 0xae;
      const int cp = printable ? b : next++;
      byte_of_[cp] = b;
      char_of_[b] = cp;
    }
  }
  // The vocab/merges string `bytes` is written as: each byte's character, UTF-8 encoded.
  std::string ToToken(std::string_view bytes) const {
    std::string token;
    for (char c : bytes) {
      utf8proc_uint8_t buffer[4];
      const utf8proc_ssize_t n = utf8proc_encode_char(char_of_[static_cast<uint8_t>(c)], buffer);
      token.append(reinterpret_cast<const char*>(buffer), static_cast<size_t>(n));
    }
    return token;
  }
  // The bytes a vocab/merges string stands for; nullopt if a character is outside the table.
  std::optional<std::string> ToBytes(std::string_view token) const {
    std::string bytes;
    int32_t cp = 0;
    for (size_t i = 0; i < token.size();) {
      const utf8proc_ssize_t n =
          utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(token.data()) + i,
                           static_cast<utf8proc_ssize_t>(token.size() - i), &cp);
      if (n <= 0 || cp < 0 || cp >= static_cast<int32_t>(byte_of_.size()) || byte_of_[cp] < 0) {
        return std::nullopt;
      }
      bytes.push_back(static_cast<char>(byte_of_[cp]));
      i += n;
    }
    return bytes;
  }

 private:
  std::array<int, 512> byte_of_;  // code point -> byte, -1 where none
  std::array<int, 256> char_of_;  // byte -> code point
};

const ByteAlphabet& Gpt2Bytes() {
  static const ByteAlphabet* alphabet = new ByteAlphabet();
  return *alphabet;
}

// ---------------------------------------------------------------------------------------------
// Added tokens: found in the text before anything else, leftmost first, then longest.

struct AddedToken {
  std::string content;  // non-empty
  int32_t id = 0;
  bool lstrip = false;       // takes the whitespace before it
  bool rstrip = false;       // takes the whitespace after it
  bool single_word = false;  // only between non-word characters
};

class AddedTokens {
 public:
  // A stretch of plain text (id empty) or one added token (with the whitespace it strips).
  struct Segment {
    std::string_view text;
    std::optional<int32_t> id;
  };

  void Add(AddedToken token) {
    if (by_content_.contains(token.content)) return;
    by_content_[token.content] = token.id;
    by_id_[token.id] = token.content;
    auto& bucket = by_first_byte_[static_cast<uint8_t>(token.content[0])];
    tokens_.push_back(std::move(token));
    bucket.push_back(tokens_.size() - 1);
    std::stable_sort(bucket.begin(), bucket.end(), [&](size_t a, size_t b) {
      return tokens_[a].content.size() > tokens_[b].content.size();
    });
  }

  std::vector<Segment> Split(std::string_view text) const {
    std::vector<Segment> out;
    size_t plain = 0;  // where the current plain stretch began
    size_t i = 0;
    while (i < text.size()) {
      const AddedToken* match = MatchAt(text, i);
      if (match == nullptr) {
        ++i;
        continue;
      }
      size_t begin = i;
      size_t end = i + match->content.size();
      if (match->lstrip) {
        while (begin > plain && IsSpace(text[begin - 1])) --begin;
      }
      if (match->rstrip) {
        while (end < text.size() && IsSpace(text[end])) ++end;
      }
      if (begin > plain) out.push_back({text.substr(plain, begin - plain), std::nullopt});
      out.push_back({text.substr(begin, end - begin), match->id});
      plain = i = end;
    }
    if (plain < text.size()) out.push_back({text.substr(plain), std::nullopt});
    return out;
  }

  std::optional<int32_t> IdOf(std::string_view content) const {
    auto it = by_content_.find(absl::string_view(content.data(), content.size()));
    if (it == by_content_.end()) return std::nullopt;
    return it->second;
  }
  const std::string* ContentOf(int32_t id) const {
    auto it = by_id_.find(id);
    return it == by_id_.end() ? nullptr : &it->second;
  }
  int32_t MaxId() const {
    int32_t max = -1;
    for (const AddedToken& t : tokens_) max = std::max(max, t.id);
    return max;
  }
  size_t size() const { return tokens_.size(); }

 private:
  static bool IsSpace(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
  }
  // ASCII letters, digits and '_', and every byte of a non-ASCII character.
  static bool IsWordByte(char c) {
    const auto b = static_cast<uint8_t>(c);
    return b >= 0x80 || std::isalnum(b) || c == '_';
  }

  const AddedToken* MatchAt(std::string_view text, size_t i) const {
    for (size_t k : by_first_byte_[static_cast<uint8_t>(text[i])]) {
      const AddedToken& t = tokens_[k];
      if (text.substr(i, t.content.size()) != t.content) continue;
      const size_t end = i + t.content.size();
      if (t.single_word &&
          ((i > 0 && IsWordByte(text[i - 1])) || (end < text.size() && IsWordByte(text[end])))) {
        continue;
      }
      return &t;
    }
    return nullptr;
  }

  std::vector<AddedToken> tokens_;
  std::array<std::vector<size_t>, 256> by_first_byte_;  // indices into tokens_, longest first
  absl::flat_hash_map<std::string, int32_t> by_content_;
  absl::flat_hash_map<int32_t, std::string> by_id_;
};

// ---------------------------------------------------------------------------------------------
// The byte tokenizer.

class ByteTokenizer final : public Tokenizer {
 public:
  ByteTokenizer() {
    int32_t id = 256;
    for (const char* text : {"<|endoftext|>", "<|im_start|>", "<|im_end|>"}) {
      specials_.Add({.content = text, .id = id++});
    }
  }
  std::vector<int32_t> Encode(std::string_view text) const override {
    std::vector<int32_t> ids;
    ids.reserve(text.size());
    for (const AddedTokens::Segment& segment : specials_.Split(text)) {
      if (segment.id) {
        ids.push_back(*segment.id);
        continue;
      }
      for (char c : segment.text) ids.push_back(static_cast<uint8_t>(c));
    }
    return ids;
  }
  std::string Decode(std::span<const int32_t> ids) const override {
    std::string out;
    for (int32_t id : ids) {
      if (id >= 0 && id < 256) {
        out.push_back(static_cast<char>(id));
      } else if (const std::string* text = specials_.ContentOf(id)) {
        out += *text;
      }
    }
    return out;
  }
  int VocabSize() const override { return 259; }
  Counts counts() const override {
    return {.vocab_entries = 256, .merges = 0, .added_tokens = static_cast<int>(specials_.size())};
  }
  std::optional<int32_t> SpecialTokenId(std::string_view text) const override {
    return specials_.IdOf(text);
  }

 private:
  AddedTokens specials_;
};

// ---------------------------------------------------------------------------------------------
// Pre-tokenisation: a regular expression (PCRE2, UTF with Unicode properties) cuts text into
// pieces; each piece is merged on its own.

// GPT-2's pattern, the one ByteLevel applies when use_regex is true.
constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

class Regex {
 public:
  // `literal`: the pattern is plain text to find, not a regular expression.
  static absl::StatusOr<std::shared_ptr<const Regex>> Compile(std::string_view pattern,
                                                              bool literal) {
    int error = 0;
    PCRE2_SIZE offset = 0;
    uint32_t options = PCRE2_UTF | PCRE2_MATCH_INVALID_UTF;
    options |= literal ? PCRE2_LITERAL : PCRE2_UCP;  // PCRE2 refuses UCP with LITERAL
    pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                     options, &error, &offset, nullptr);
    if (code == nullptr) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(error, message, sizeof(message));
      return absl::InvalidArgumentError(absl::StrCat("does not compile at offset ", offset, ": ",
                                                     reinterpret_cast<const char*>(message)));
    }
    pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // the interpreter runs it where JIT cannot
    return std::shared_ptr<const Regex>(new Regex(code));
  }
  ~Regex() { pcre2_code_free(code_); }
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // [begin, end) of each non-empty match, left to right. Matching stops (the rest of the text is
  // unmatched) where PCRE2 gives up, past its match and heap limits.
  std::vector<std::pair<size_t, size_t>> FindAll(std::string_view text) const {
    std::vector<std::pair<size_t, size_t>> matches;
    pcre2_match_data* data = pcre2_match_data_create_from_pattern(code_, nullptr);
    const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
    size_t offset = 0;
    while (offset < text.size()) {
      int rc = pcre2_match(code_, subject, text.size(), offset, 0, data, nullptr);
      if (rc < 0 && rc != PCRE2_ERROR_NOMATCH) {  // e.g. the JIT stack: retry interpreted
        rc = pcre2_match(code_, subject, text.size(), offset, PCRE2_NO_JIT, data, nullptr);
      }
      if (rc < 0) break;
      const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(data);
      const size_t begin = ovector[0];
      const size_t end = ovector[1];
      if (end > begin) {
        matches.emplace_back(begin, end);
        offset = end;
      } else {  // an empty match: step over one character
        if (begin >= text.size()) break;
        offset = begin + std::max<size_t>(Utf8SequenceLength(text, begin), 1);
      }
    }
    pcre2_match_data_free(data);
    return matches;
  }

 private:
  explicit Regex(pcre2_code* code) : code_(code) {}
  pcre2_code* code_;
};

// Hugging Face's SplitDelimiterBehavior: what becomes of the matches of a Split.
enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

struct Span {
  size_t begin;
  size_t end;
  bool is_match;
};

// The spans of `text` (matches and the gaps between them) after `behavior`, as Hugging Face's
// NormalizedString::split computes them.
std::vector<Span> ApplyBehavior(std::vector<Span> spans, SplitBehavior behavior) {
  std::vector<Span> out;
  switch (behavior) {
    case SplitBehavior::kIsolated:
      return spans;
    case SplitBehavior::kRemoved:
      for (const Span& s : spans) {
        if (!s.is_match) out.push_back(s);
      }
      return out;
    case SplitBehavior::kMergedWithPrevious: {
      bool previous_match = false;
      for (const Span& s : spans) {
        if (s.is_match && !previous_match && !out.empty()) {
          out.back().end = s.end;
        } else {
          out.push_back(s);
        }
        previous_match = s.is_match;
      }
      return out;
    }
    case SplitBehavior::kMergedWithNext: {
      bool previous_match = false;
      for (auto it = spans.rbegin(); it != spans.rend(); ++it) {
        if (it->is_match && !previous_match && !out.empty()) {
          out.back().begin = it->begin;
        } else {
          out.push_back(*it);
        }
        previous_match = it->is_match;
      }
      std::reverse(out.begin(), out.end());
      return out;
    }
    case SplitBehavior::kContiguous: {
      bool previous_match = false;
      for (const Span& s : spans) {
        if (s.is_match == previous_match && !out.empty()) {
          out.back().end = s.end;
        } else {
          out.push_back(s);
        }
        previous_match = s.is_match;
      }
      return out;
    }
  }
  return spans;
}

// One step of the pre-tokeniser: a Split, or ByteLevel (a prefix space, then GPT-2's pattern
// when use_regex). Byte-level mapping itself is implicit: pieces stay bytes throughout.
struct PreTokenizeStep {
  std::shared_ptr<const Regex> regex;  // null: no split
  SplitBehavior behavior = SplitBehavior::kIsolated;
  bool invert = false;
  bool add_prefix_space = false;
};

void SplitPiece(const std::string& piece, const PreTokenizeStep& step,
                std::vector<std::string>& out) {
  std::vector<Span> spans;
  size_t last = 0;
  for (const auto& [begin, end] : step.regex->FindAll(piece)) {
    if (begin > last) spans.push_back({last, begin, step.invert});
    spans.push_back({begin, end, !step.invert});
    last = end;
  }
  if (last < piece.size()) spans.push_back({last, piece.size(), step.invert});
  for (const Span& s : ApplyBehavior(std::move(spans), step.behavior)) {
    if (s.end > s.begin) out.push_back(piece.substr(s.begin, s.end - s.begin));
  }
}

std::vector<std::string> PreTokenize(std::string text, const std::vector<PreTokenizeStep>& steps) {
  std::vector<std::string> pieces;
  pieces.push_back(std::move(text));
  for (const PreTokenizeStep& step : steps) {
    std::vector<std::string> next;
    for (std::string& piece : pieces) {
      if (step.add_prefix_space && !piece.starts_with(' ')) piece.insert(0, " ");
      if (step.regex == nullptr) {
        next.push_back(std::move(piece));
      } else {
        SplitPiece(piece, step, next);
      }
    }
    pieces = std::move(next);
  }
  return pieces;
}

// ---------------------------------------------------------------------------------------------
// The BPE model, over bytes: vocab and merges are read through the GPT-2 byte table once, so
// that encoding never builds the printable form.

struct MergeRule {
  int32_t rank;
  int32_t merged_id;
};

class BpeModel {
 public:
  // Appends the ids of `piece` (non-empty bytes) to `out`: starting from single bytes, the
  // adjacent pair with the lowest merge rank (leftmost among equals) is merged until none is
  // left. O(n log n) in the piece's length.
  void Encode(std::string_view piece, std::vector<int32_t>& out) const {
    if (ignore_merges_) {
      auto it = vocab_.find(absl::string_view(piece.data(), piece.size()));
      if (it != vocab_.end()) {
        out.push_back(it->second);
        return;
      }
    }
    struct Symbol {
      int32_t id;  // -1 once merged into its left neighbour
      int prev;
      int next;
    };
    struct Candidate {
      int32_t rank;
      int pos;
      int32_t left;
      int32_t right;
      bool operator>(const Candidate& o) const {
        return rank != o.rank ? rank > o.rank : pos > o.pos;
      }
    };
    const int n = static_cast<int>(piece.size());
    std::vector<Symbol> symbols(n);
    for (int i = 0; i < n; ++i) {
      symbols[i] = {byte_ids_[static_cast<uint8_t>(piece[i])], i - 1, i + 1 < n ? i + 1 : -1};
    }
    std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> queue;
    const auto consider = [&](int pos) {
      if (pos < 0 || symbols[pos].next < 0) return;
      const int32_t left = symbols[pos].id;
      const int32_t right = symbols[symbols[pos].next].id;
      if (const MergeRule* rule = Find(left, right)) queue.push({rule->rank, pos, left, right});
    };
    for (int i = 0; i + 1 < n; ++i) consider(i);
    while (!queue.empty()) {
      const Candidate c = queue.top();
      queue.pop();
      Symbol& s = symbols[c.pos];
      // Stale when either side has changed since the candidate was queued: a symbol only grows,
      // so an unchanged id means an unchanged symbol.
      if (s.id != c.left || s.next < 0 || symbols[s.next].id != c.right) continue;
      Symbol& absorbed = symbols[s.next];
      s.id = Find(c.left, c.right)->merged_id;
      absorbed.id = -1;
      s.next = absorbed.next;
      if (s.next >= 0) symbols[s.next].prev = c.pos;
      consider(s.prev);
      consider(c.pos);
    }
    for (int i = 0; i >= 0; i = symbols[i].next) out.push_back(symbols[i].id);
  }

  const MergeRule* Find(int32_t left, int32_t right) const {
    auto it = merges_.find(Key(left, right));
    return it == merges_.end() ? nullptr : &it->second;
  }
  static uint64_t Key(int32_t left, int32_t right) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) |
           static_cast<uint32_t>(right);
  }

  absl::flat_hash_map<std::string, int32_t> vocab_;  // bytes -> id
  std::vector<std::string> bytes_of_id_;             // id -> bytes ("" where no token)
  std::array<int32_t, 256> byte_ids_{};              // the single-byte tokens
  absl::flat_hash_map<uint64_t, MergeRule> merges_;  // Key(left, right) -> rule
  bool ignore_merges_ = false;
  size_t vocab_entries_ = 0;  // as the file lists them
  size_t merge_count_ = 0;
};

// ---------------------------------------------------------------------------------------------
// The byte-level BPE tokenizer.

class BpeTokenizer final : public Tokenizer {
 public:
  BpeTokenizer(BpeModel model, AddedTokens added, std::vector<PreTokenizeStep> steps, bool nfc)
      : model_(std::move(model)),
        added_(std::move(added)),
        steps_(std::move(steps)),
        nfc_(nfc),
        vocab_size_(std::max<int32_t>(static_cast<int32_t>(model_.bytes_of_id_.size()) - 1,
                                      added_.MaxId()) +
                    1) {}

  std::vector<int32_t> Encode(std::string_view text) const override {
    std::vector<int32_t> ids;
    for (const AddedTokens::Segment& segment : added_.Split(text)) {
      if (segment.id) {
        ids.push_back(*segment.id);
        continue;
      }
      for (const Utf8Run& run : SplitValidUtf8(segment.text)) {
        if (!run.valid) {
          model_.Encode(run.text, ids);
          continue;
        }
        std::string normalized = nfc_ ? Nfc(run.text) : std::string(run.text);
        for (const std::string& piece : PreTokenize(std::move(normalized), steps_)) {
          EncodeCached(piece, ids);
        }
      }
    }
    return ids;
  }

  std::string Decode(std::span<const int32_t> ids) const override {
    std::string out;
    for (int32_t id : ids) {
      if (const std::string* text = added_.ContentOf(id)) {
        out += *text;
      } else if (id >= 0 && static_cast<size_t>(id) < model_.bytes_of_id_.size()) {
        out += model_.bytes_of_id_[id];
      }
    }
    return out;
  }

  int VocabSize() const override { return vocab_size_; }

  Counts counts() const override {
    return {.vocab_entries = static_cast<int>(model_.vocab_entries_),
            .merges = static_cast<int>(model_.merge_count_),
            .added_tokens = static_cast<int>(added_.size())};
  }

  std::optional<int32_t> SpecialTokenId(std::string_view text) const override {
    return added_.IdOf(text);
  }

 private:
  static constexpr size_t kCacheEntries = 1 << 16;
  static constexpr size_t kCachedPieceBytes = 64;

  void EncodeCached(const std::string& piece, std::vector<int32_t>& out) const {
    if (piece.size() > kCachedPieceBytes) {
      model_.Encode(piece, out);
      return;
    }
    {
      absl::MutexLock lock(&cache_mu_);
      auto it = cache_.find(piece);
      if (it != cache_.end()) {
        out.insert(out.end(), it->second.begin(), it->second.end());
        return;
      }
    }
    const size_t first = out.size();
    model_.Encode(piece, out);
    absl::MutexLock lock(&cache_mu_);
    if (cache_.size() >= kCacheEntries) cache_.clear();
    cache_.try_emplace(piece, out.begin() + first, out.end());
  }

  const BpeModel model_;
  const AddedTokens added_;
  const std::vector<PreTokenizeStep> steps_;
  const bool nfc_;
  const int vocab_size_;
  // Pieces already merged (at most kCacheEntries, cleared when full).
  mutable absl::Mutex cache_mu_;
  mutable absl::flat_hash_map<std::string, std::vector<int32_t>> cache_ ABSL_GUARDED_BY(cache_mu_);
};

// ---------------------------------------------------------------------------------------------
// Reading tokenizer.json. Every accessor checks the JSON type first (nlohmann throws otherwise).

// Ids above this are refused: a vocabulary of that size does not exist, and the id -> bytes
// table is allocated up to the largest id.
constexpr int64_t kMaxTokenId = (1 << 22) - 1;

class JsonReader {
 public:
  explicit JsonReader(std::string_view origin) : origin_(origin) {}

  // "<origin>: <key>: <what>", or "<origin>: <what>" for the file as a whole (key "").
  absl::Status Error(const std::string& key, const std::string& what) const {
    if (key.empty()) return absl::InvalidArgumentError(absl::StrCat(origin_, ": ", what));
    return absl::InvalidArgumentError(absl::StrCat(origin_, ": ", key, ": ", what));
  }
  // A token id at `key`.
  absl::StatusOr<int32_t> Id(const json& value, const std::string& key) const {
    int64_t id = -1;
    if (value.is_number_unsigned()) {
      id = value.get<uint64_t>() > static_cast<uint64_t>(kMaxTokenId) ? kMaxTokenId + 1
                                                                      : value.get<int64_t>();
    } else if (value.is_number_integer()) {
      id = value.get<int64_t>();
    } else {
      return Error(key, "is not an integer token id");
    }
    if (id < 0 || id > kMaxTokenId) {
      return Error(key, absl::StrCat("token id ", value.dump(), " is outside 0..", kMaxTokenId));
    }
    return static_cast<int32_t>(id);
  }
  // The boolean at object[field]; `fallback` when absent or null.
  absl::StatusOr<bool> Bool(const json& object, const char* field, const std::string& key,
                            bool fallback) const {
    auto it = object.find(field);
    if (it == object.end() || it->is_null()) return fallback;
    if (!it->is_boolean()) return Error(absl::StrCat(key, ".", field), "is not true or false");
    return it->get<bool>();
  }
  // The string at object[field]; "" when absent or null.
  absl::StatusOr<std::string> String(const json& object, const char* field,
                                     const std::string& key) const {
    auto it = object.find(field);
    if (it == object.end() || it->is_null()) return std::string();
    if (!it->is_string()) return Error(absl::StrCat(key, ".", field), "is not a string");
    return it->get<std::string>();
  }

 private:
  std::string origin_;
};

std::string Quoted(const json& value) {
  return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

absl::StatusOr<AddedTokens> ReadAddedTokens(const json& root, const JsonReader& reader) {
  AddedTokens added;
  auto it = root.find("added_tokens");
  if (it == root.end() || it->is_null()) return added;
  if (!it->is_array()) return reader.Error("added_tokens", "is not an array");
  for (size_t i = 0; i < it->size(); ++i) {
    const json& entry = (*it)[i];
    const std::string key = absl::StrCat("added_tokens[", i, "]");
    if (!entry.is_object()) return reader.Error(key, "is not an object");
    AddedToken token;
    auto content = reader.String(entry, "content", key);
    if (!content.ok()) return content.status();
    if (content->empty()) return reader.Error(key + ".content", "is missing or empty");
    token.content = *std::move(content);
    auto id = reader.Id(entry.contains("id") ? entry["id"] : json(), key + ".id");
    if (!id.ok()) return id.status();
    token.id = *id;
    for (auto [field, target] :
         {std::pair{"lstrip", &token.lstrip}, std::pair{"rstrip", &token.rstrip},
          std::pair{"single_word", &token.single_word}}) {
      auto value = reader.Bool(entry, field, key, false);
      if (!value.ok()) return value.status();
      *target = *value;
    }
    added.Add(std::move(token));
  }
  return added;
}

absl::Status ReadVocab(const json& model, const AddedTokens& added, const JsonReader& reader,
                       BpeModel& bpe) {
  auto vocab = model.find("vocab");
  if (vocab == model.end() || !vocab->is_object()) {
    return reader.Error("model.vocab", "is missing or not an object");
  }
  bpe.vocab_entries_ = vocab->size();
  for (auto it = vocab->begin(); it != vocab->end(); ++it) {
    const std::string key = absl::StrCat("model.vocab[", Quoted(it.key()), "]");
    auto id = reader.Id(it.value(), key);
    if (!id.ok()) return id.status();
    std::optional<std::string> bytes = Gpt2Bytes().ToBytes(it.key());
    if (!bytes) {
      if (added.IdOf(it.key()) == *id) continue;  // an added token, decoded by its text
      return reader.Error(key, "has a character outside the GPT-2 byte-level alphabet");
    }
    if (static_cast<size_t>(*id) >= bpe.bytes_of_id_.size()) bpe.bytes_of_id_.resize(*id + 1);
    bpe.bytes_of_id_[*id] = *bytes;
    bpe.vocab_[*std::move(bytes)] = *id;
  }
  for (int b = 0; b < 256; ++b) {
    auto it = bpe.vocab_.find(std::string(1, static_cast<char>(b)));
    if (it == bpe.vocab_.end()) {
      return reader.Error("model.vocab", absl::StrFormat("has no token for the byte 0x%02x (a "
                                                         "byte-level vocabulary has all 256)",
                                                         b));
    }
    bpe.byte_ids_[b] = it->second;
  }
  return absl::OkStatus();
}

// The two halves of a merges entry: "a b" or ["a", "b"].
std::optional<std::pair<std::string, std::string>> MergePair(const json& entry) {
  if (entry.is_string()) {
    const std::string text = entry.get<std::string>();
    const size_t space = text.find(' ');
    if (space == std::string::npos || text.find(' ', space + 1) != std::string::npos) {
      return std::nullopt;
    }
    return std::pair{text.substr(0, space), text.substr(space + 1)};
  }
  if (entry.is_array() && entry.size() == 2 && entry[0].is_string() && entry[1].is_string()) {
    return std::pair{entry[0].get<std::string>(), entry[1].get<std::string>()};
  }
  return std::nullopt;
}

absl::Status ReadMerges(const json& model, const JsonReader& reader, BpeModel& bpe) {
  auto merges = model.find("merges");
  if (merges == model.end() || !merges->is_array()) {
    return reader.Error("model.merges", "is missing or not an array");
  }
  if (merges->size() > static_cast<size_t>(std::numeric_limits<int32_t>::max())) {
    return reader.Error("model.merges", "has too many entries");
  }
  bpe.merge_count_ = merges->size();
  for (size_t i = 0; i < merges->size(); ++i) {
    const json& entry = (*merges)[i];
    const std::string key = absl::StrCat("model.merges[", i, "] ", Quoted(entry));
    auto pair = MergePair(entry);
    if (!pair) return reader.Error(key, R"(is neither "a b" nor ["a", "b"])");
    std::string joined;
    int32_t halves[2];
    int k = 0;
    for (const std::string* half : {&pair->first, &pair->second}) {
      std::optional<std::string> bytes = Gpt2Bytes().ToBytes(*half);
      auto it = bytes ? bpe.vocab_.find(*bytes) : bpe.vocab_.end();
      if (it == bpe.vocab_.end()) {
        return reader.Error(key, absl::StrCat("token ", Quoted(*half), " is not in model.vocab"));
      }
      halves[k++] = it->second;
      joined += *bytes;
    }
    auto merged = bpe.vocab_.find(joined);
    if (merged == bpe.vocab_.end()) {
      return reader.Error(key, absl::StrCat("the merged token ", Quoted(pair->first + pair->second),
                                            " is not in model.vocab"));
    }
    bpe.merges_[BpeModel::Key(halves[0], halves[1])] = {static_cast<int32_t>(i), merged->second};
  }
  return absl::OkStatus();
}

absl::StatusOr<BpeModel> ReadModel(const json& root, const AddedTokens& added,
                                   const JsonReader& reader) {
  auto model = root.find("model");
  if (model == root.end() || !model->is_object()) {
    return reader.Error("model", "is missing or not an object");
  }
  auto type = reader.String(*model, "type", "model");
  if (!type.ok()) return type.status();
  if (!type->empty() && *type != "BPE") {
    return reader.Error("model.type", absl::StrCat("'", *type, "' is not supported (only BPE)"));
  }
  auto byte_fallback = reader.Bool(*model, "byte_fallback", "model", false);
  if (!byte_fallback.ok()) return byte_fallback.status();
  if (*byte_fallback) return reader.Error("model.byte_fallback", "true is not supported");
  for (const char* field : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    auto affix = reader.String(*model, field, "model");
    if (!affix.ok()) return affix.status();
    if (!affix->empty()) return reader.Error(absl::StrCat("model.", field), "is not supported");
  }
  auto dropout = model->find("dropout");
  if (dropout != model->end() && !dropout->is_null() &&
      !(dropout->is_number() && dropout->get<double>() == 0.0)) {
    return reader.Error("model.dropout", "BPE dropout is not supported");
  }
  BpeModel bpe;
  auto ignore_merges = reader.Bool(*model, "ignore_merges", "model", false);
  if (!ignore_merges.ok()) return ignore_merges.status();
  bpe.ignore_merges_ = *ignore_merges;
  if (absl::Status s = ReadVocab(*model, added, reader, bpe); !s.ok()) return s;
  if (absl::Status s = ReadMerges(*model, reader, bpe); !s.ok()) return s;
  return bpe;
}

// Whether the file asks for NFC: normalizer null, NFC, or a Sequence of NFCs.
absl::StatusOr<bool> ReadNormalizer(const json& normalizer, const std::string& key,
                                    const JsonReader& reader) {
  if (normalizer.is_null()) return false;
  if (!normalizer.is_object()) return reader.Error(key, "is not an object");
  auto type = reader.String(normalizer, "type", key);
  if (!type.ok()) return type.status();
  if (*type == "NFC") return true;
  if (*type == "Sequence") {
    auto list = normalizer.find("normalizers");
    if (list == normalizer.end() || !list->is_array()) {
      return reader.Error(key + ".normalizers", "is missing or not an array");
    }
    bool nfc = false;
    for (size_t i = 0; i < list->size(); ++i) {
      auto one = ReadNormalizer((*list)[i], absl::StrCat(key, ".normalizers[", i, "]"), reader);
      if (!one.ok()) return one.status();
      nfc = nfc || *one;
    }
    return nfc;
  }
  return reader.Error(key + ".type",
                      absl::StrCat("'", *type, "' is not supported (null or NFC only)"));
}

absl::StatusOr<SplitBehavior> ReadBehavior(const json& split, const std::string& key,
                                           const JsonReader& reader) {
  auto name = reader.String(split, "behavior", key);
  if (!name.ok()) return name.status();
  static const std::pair<const char*, SplitBehavior> kNames[] = {
      {"Removed", SplitBehavior::kRemoved},
      {"Isolated", SplitBehavior::kIsolated},
      {"MergedWithPrevious", SplitBehavior::kMergedWithPrevious},
      {"MergedWithNext", SplitBehavior::kMergedWithNext},
      {"Contiguous", SplitBehavior::kContiguous}};
  for (const auto& [text, behavior] : kNames) {
    if (*name == text) return behavior;
  }
  return reader.Error(key + ".behavior", absl::StrCat("'", *name, "' is not a split behavior"));
}

absl::StatusOr<PreTokenizeStep> ReadSplit(const json& split, const std::string& key,
                                          const JsonReader& reader) {
  PreTokenizeStep step;
  auto pattern = split.find("pattern");
  if (pattern == split.end() || !pattern->is_object() || pattern->size() != 1 ||
      !(pattern->contains("Regex") || pattern->contains("String")) ||
      !pattern->begin()->is_string()) {
    return reader.Error(key + ".pattern", R"(is not {"Regex": "..."} or {"String": "..."})");
  }
  auto regex = Regex::Compile(pattern->begin()->get<std::string>(), pattern->contains("String"));
  if (!regex.ok()) return reader.Error(key + ".pattern", std::string(regex.status().message()));
  step.regex = *std::move(regex);
  auto behavior = ReadBehavior(split, key, reader);
  if (!behavior.ok()) return behavior.status();
  step.behavior = *behavior;
  auto invert = reader.Bool(split, "invert", key, false);
  if (!invert.ok()) return invert.status();
  step.invert = *invert;
  return step;
}

absl::Status ReadPreTokenizer(const json& pre, const std::string& key, const JsonReader& reader,
                              std::vector<PreTokenizeStep>& steps) {
  if (pre.is_null()) return absl::OkStatus();
  if (!pre.is_object()) return reader.Error(key, "is not an object");
  auto type = reader.String(pre, "type", key);
  if (!type.ok()) return type.status();
  if (*type == "ByteLevel") {
    PreTokenizeStep step;
    auto prefix = reader.Bool(pre, "add_prefix_space", key, true);
    auto use_regex = reader.Bool(pre, "use_regex", key, true);
    if (!prefix.ok()) return prefix.status();
    if (!use_regex.ok()) return use_regex.status();
    step.add_prefix_space = *prefix;
    if (*use_regex) {
      auto regex = Regex::Compile(kGpt2Pattern, false);
      if (!regex.ok()) return reader.Error(key, std::string(regex.status().message()));
      step.regex = *std::move(regex);
    }
    steps.push_back(std::move(step));
    return absl::OkStatus();
  }
  if (*type == "Split") {
    auto step = ReadSplit(pre, key, reader);
    if (!step.ok()) return step.status();
    steps.push_back(*std::move(step));
    return absl::OkStatus();
  }
  if (*type == "Sequence") {
    auto list = pre.find("pretokenizers");
    if (list == pre.end() || !list->is_array()) {
      return reader.Error(key + ".pretokenizers", "is missing or not an array");
    }
    for (size_t i = 0; i < list->size(); ++i) {
      const std::string item = absl::StrCat(key, ".pretokenizers[", i, "]");
      if (absl::Status s = ReadPreTokenizer((*list)[i], item, reader, steps); !s.ok()) return s;
    }
    return absl::OkStatus();
  }
  return reader.Error(key + ".type", absl::StrCat("'", *type,
                                                  "' is not supported (ByteLevel, Split or a "
                                                  "Sequence of them)"));
}

absl::StatusOr<std::unique_ptr<Tokenizer>> ReadTokenizer(const json& root,
                                                         const JsonReader& reader) {
  auto added = ReadAddedTokens(root, reader);
  if (!added.ok()) return added.status();
  auto model = ReadModel(root, *added, reader);
  if (!model.ok()) return model.status();
  auto nfc = ReadNormalizer(root.value("normalizer", json()), "normalizer", reader);
  if (!nfc.ok()) return nfc.status();
  std::vector<PreTokenizeStep> steps;
  if (absl::Status s =
          ReadPreTokenizer(root.value("pre_tokenizer", json()), "pre_tokenizer", reader, steps);
      !s.ok()) {
    return s;
  }
  return std::make_unique<BpeTokenizer>(*std::move(model), *std::move(added), std::move(steps),
                                        *nfc);
}

}  // namespace

absl::StatusOr<std::unique_ptr<Tokenizer>> ParseTokenizerJson(std::string_view text,
                                                              std::string_view origin) {
  const JsonReader reader(origin);
  json root = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded()) return reader.Error("", "is not valid JSON");
  if (!root.is_object()) return reader.Error("", "is not a JSON object");
  try {
    return ReadTokenizer(root, reader);
  } catch (const json::exception& e) {  // every access is checked; this is a last guard
    return reader.Error("", e.what());
  }
}

absl::StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizer(const std::string& tokenizer_json_path) {
  std::error_code error;
  std::ifstream file;
  if (std::filesystem::is_regular_file(tokenizer_json_path, error)) {
    file.open(tokenizer_json_path, std::ios::binary);
  }
  std::ostringstream text;
  text << file.rdbuf();
  if (!file.is_open() || file.bad()) {
    return absl::InvalidArgumentError(
        absl::StrCat(tokenizer_json_path, ": cannot read the tokenizer file"));
  }
  return ParseTokenizerJson(text.str(), tokenizer_json_path);
}

std::unique_ptr<Tokenizer> MakeByteTokenizer() { return std::make_unique<ByteTokenizer>(); }

std::string ByteLevelToken(std::string_view bytes) { return Gpt2Bytes().ToToken(bytes); }

}  // namespace rally
