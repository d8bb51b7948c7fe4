#include "common/util/zstd.h"

#include <gtest/gtest.h>

#include <random>

namespace rally {
namespace {

TEST(Zstd, RoundTripsAndShrinksRepetitiveData) {
  std::string raw;
  for (int i = 0; i < 10000; ++i) raw += "turn " + std::to_string(i % 37) + ";";
  std::string z = ZstdCompress(raw);
  ASSERT_FALSE(z.empty());
  EXPECT_LT(z.size(), raw.size() / 4);
  auto back = ZstdDecompress(z, raw.size());
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, raw);
}

TEST(Zstd, IncompressibleDataIsLeftAlone) {
  std::mt19937 rng(1);
  std::string raw(4096, '\0');
  for (char& c : raw) c = static_cast<char>(rng());
  EXPECT_TRUE(ZstdCompress(raw).empty());
}

TEST(Zstd, TheProbeSkipsPayloadsThatDoNotCompress) {
  std::mt19937 rng(2);
  std::string noise(64 << 10, '\0');
  for (char& c : noise) c = static_cast<char>(rng());
  EXPECT_TRUE(ZstdCompressIfWorthIt(noise).empty());
  std::string text;
  while (text.size() < (64 << 10)) text += "observation_tokens: 17 18 19; ";
  std::string z = ZstdCompressIfWorthIt(text);
  ASSERT_FALSE(z.empty());
  EXPECT_EQ(*ZstdDecompress(z, text.size()), text);
}

TEST(Zstd, RejectsMalformedFramesAndFramesOverTheLimit) {
  auto bad = ZstdDecompress("definitely not zstd", 1 << 20);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(bad.status().message(), "not a zstd frame");

  std::string raw(100000, 'a');
  std::string z = ZstdCompress(raw);
  auto over = ZstdDecompress(z, 99999);
  EXPECT_EQ(over.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(over.status().message(),
            "zstd frame expands to 100000 bytes, more than the limit of 99999");
  // A truncated frame does not decompress.
  auto cut = ZstdDecompress(std::string_view(z).substr(0, z.size() - 3), 1 << 20);
  EXPECT_EQ(cut.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace rally
