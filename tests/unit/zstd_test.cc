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

std::string Noise(size_t bytes, unsigned seed) {
  std::mt19937 rng(seed);
  std::string noise(bytes, '\0');
  for (char& c : noise) c = static_cast<char>(rng());
  return noise;
}

std::string Text(size_t bytes) {
  std::string text;
  while (text.size() < bytes) text += "observation_tokens: 17 18 19; ";
  text.resize(bytes);
  return text;
}

TEST(AdaptiveCompressor, TheProbeSkipsPayloadsThatDoNotCompress) {
  AdaptiveCompressor compressor;
  EXPECT_TRUE(compressor.Compress(Noise(64 << 10, 2)).empty());
  EXPECT_EQ(compressor.probes(), 1);
  AdaptiveCompressor fresh;
  const std::string text = Text(64 << 10);
  std::string z = fresh.Compress(text);
  ASSERT_FALSE(z.empty());
  EXPECT_EQ(*ZstdDecompress(z, text.size()), text);
  // In pieces, as a cord: the same frame.
  absl::Cord pieces(text.substr(0, 100));
  pieces.Append(text.substr(100));
  EXPECT_EQ(fresh.Compress(pieces), z);
  // Payloads of at most 16 KiB are compressed without a probe.
  EXPECT_EQ(fresh.probes(), 2);
  EXPECT_FALSE(fresh.Compress(Text(16 << 10)).empty());
  EXPECT_EQ(fresh.probes(), 2);
}

TEST(AdaptiveCompressor, AStreamThatDoesNotCompressIsProbedRarelyAndRecoversWhenItDoes) {
  AdaptiveCompressor compressor;
  const std::string noise = Noise(64 << 10, 3);
  // Failed probes skip the next 1, 2, 4, 8, 16, 32, 32, ... payloads: 1000 payloads take
  // 6 probes for the first 1 + 2 + 4 + 8 + 16 + 32 = 63 + 6 payloads, then one per 33.
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(compressor.Compress(noise).empty());
  const int64_t expected = 6 + (1000 - 69 + 32) / 33;
  EXPECT_EQ(compressor.probes(), expected);
  // The stream turns compressible: within 33 payloads one is probed and compressed, and from
  // then on every one is.
  const std::string text = Text(64 << 10);
  int plain = 0;
  while (compressor.Compress(text).empty()) ASSERT_LE(++plain, AdaptiveCompressor::kMaxSkip);
  for (int i = 0; i < 100; ++i) ASSERT_FALSE(compressor.Compress(text).empty()) << i;
  // Small payloads never wait for a skip to run out.
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(compressor.Compress(noise).empty());
  EXPECT_FALSE(compressor.Compress(Text(8 << 10)).empty());
}

TEST(AdaptiveCompressor, APayloadThatGoesPlainUnprobedIsNeverMade) {
  // The replay serialises a sampled item for a zstd client only when it is to be probed or
  // compressed.
  AdaptiveCompressor compressor;
  const std::string noise = Noise(64 << 10, 4);
  int made = 0;
  for (int i = 0; i < 100; ++i) {
    EXPECT_TRUE(compressor
                    .Compress(noise.size(),
                              [&] {
                                ++made;
                                return noise;
                              })
                    .empty());
  }
  // Probes at payloads 1, 3, 6, 11, 20, 37 and 70: each made once, the other 93 never.
  EXPECT_EQ(made, 7);
  EXPECT_EQ(compressor.probes(), 7);
  const std::string text = Text(64 << 10);
  AdaptiveCompressor fresh;
  std::string z = fresh.Compress(text.size(), [&] { return text; });
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
