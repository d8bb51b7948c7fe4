#include "common/util/crc32c.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "tests/unit/crc32c_reference.h"

namespace rally {
namespace {

TEST(Crc32c, MatchesTheStandardCheckValues) {
  // The check value of CRC-32C (RFC 3720, appendix B.4) and of 32 zero bytes.
  EXPECT_EQ(Crc32c(0, "123456789"), 0xE3069283u);
  EXPECT_EQ(Crc32cPortable(0, "123456789"), 0xE3069283u);
  EXPECT_EQ(Crc32c(0, std::string(32, '\0')), 0x8A9136AAu);
  EXPECT_EQ(Crc32c(0, ""), 0u);
}

TEST(Crc32c, TheInstructionAndTheTableAgreeAndChainAcrossPieces) {
  std::mt19937 rng(3);
  std::string data(70001, '\0');
  for (char& c : data) c = static_cast<char>(rng());
  const uint32_t whole = Crc32cPortable(0, data);
  EXPECT_EQ(Crc32c(0, data), whole);
  // Any split, including ones that leave pieces unaligned or shorter than a word.
  for (size_t cut : {size_t{0}, size_t{1}, size_t{7}, size_t{8}, size_t{4097}, data.size()}) {
    std::string_view a = std::string_view(data).substr(0, cut);
    std::string_view b = std::string_view(data).substr(cut);
    EXPECT_EQ(Crc32c(Crc32c(0, a), b), whole) << cut;
    EXPECT_EQ(Crc32cPortable(Crc32cPortable(0, a), b), whole) << cut;
  }
  data[12345] ^= 1;
  EXPECT_NE(Crc32c(0, data), whole);
}

TEST(Crc32c, EveryLengthAndAlignmentAroundTheBlockSizesAgreesWithTheTable) {
  // The instruction path runs three streams over blocks of 2048 and then 256 bytes (thirds of
  // 6144 and 768) and joins them; lengths at and around those sizes, at every alignment, must
  // give the table's result.
  std::mt19937 rng(11);
  std::string data(30000, '\0');
  for (char& c : data) c = static_cast<char>(rng());
  std::vector<size_t> lengths;
  for (size_t n = 0; n <= 1600; ++n) lengths.push_back(n);
  for (size_t base : {6144, 2 * 6144, 6144 + 768, 6144 + 2 * 768 + 7}) {
    for (size_t n = base - 9; n <= base + 9; ++n) lengths.push_back(n);
  }
  for (int i = 0; i < 50; ++i) lengths.push_back(rng() % 29000);
  for (size_t n : lengths) {
    for (size_t offset = 0; offset < 8; ++offset) {
      const std::string_view piece = std::string_view(data).substr(offset, n);
      ASSERT_EQ(Crc32c(0x1234567u, piece), Crc32cPortable(0x1234567u, piece))
          << "length " << n << ", offset " << offset;
    }
  }
}

TEST(Crc32c, TheTablesAgreeWithTheBitwiseDefinitionAtEveryLengthAndAlignment) {
  // The tables take eight bytes at a time and the rest one by one.
  std::mt19937 rng(5);
  std::string data(600, '\0');
  for (char& c : data) c = static_cast<char>(rng());
  for (size_t n = 0; n <= 520; ++n) {
    for (size_t offset = 0; offset < 8; ++offset) {
      const std::string_view piece = std::string_view(data).substr(offset, n);
      ASSERT_EQ(Crc32cPortable(0x89abcdefu, piece), testing::BitwiseCrc32c(0x89abcdefu, piece))
          << "length " << n << ", offset " << offset;
    }
  }
}

}  // namespace
}  // namespace rally
