#include "common/util/crc32c.h"

#include <array>
#include <cstring>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

namespace rally {
namespace {

constexpr uint32_t kPolynomial = 0x82F63B78;  // Castagnoli, reflected

constexpr std::array<uint32_t, 256> MakeTable() {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ kPolynomial : c >> 1;
    table[i] = c;
  }
  return table;
}

constexpr std::array<uint32_t, 256> kTable = MakeTable();

// a·b modulo the polynomial, both in the reflected representation (bit 31 is x^0).
constexpr uint32_t MultModP(uint32_t a, uint32_t b) {
  uint32_t product = 0;
  for (uint32_t m = 1u << 31; m != 0; m >>= 1) {
    if (a & m) product ^= b;
    b = (b & 1) ? (b >> 1) ^ kPolynomial : b >> 1;
  }
  return product;
}

// The operator that runs a raw CRC register over `n` zero bytes, as four byte tables:
// register' = t[0][r & 0xff] ^ t[1][(r >> 8) & 0xff] ^ t[2][(r >> 16) & 0xff] ^ t[3][r >> 24].
// It is multiplication by x^(8n) (the register is linear in its input), so the CRC of A + B
// is Shift(crc(A), |B|) ^ crc(B) for raw registers, B's started at 0.
using ShiftTables = std::array<std::array<uint32_t, 256>, 4>;

constexpr ShiftTables MakeShiftTables(size_t n) {
  uint32_t power = 1u << 31;   // x^0
  uint32_t square = 1u << 30;  // x^1, squared each bit of the exponent 8n
  for (size_t e = 8 * n; e != 0; e >>= 1) {
    if (e & 1) power = MultModP(power, square);
    square = MultModP(square, square);
  }
  ShiftTables t{};
  for (uint32_t k = 0; k < 4; ++k) {
    for (uint32_t v = 0; v < 256; ++v) t[k][v] = MultModP(power, v << (8 * k));
  }
  return t;
}

uint32_t Shift(const ShiftTables& t, uint32_t r) {
  return t[0][r & 0xff] ^ t[1][(r >> 8) & 0xff] ^ t[2][(r >> 16) & 0xff] ^ t[3][r >> 24];
}

#if defined(__x86_64__)
uint64_t Load64(const char* p) {
  uint64_t word;
  std::memcpy(&word, p, 8);
  return word;
}

// The crc32 instruction takes three cycles and can start one each cycle, so three independent
// streams run about three times as fast as one: each block of 3 * kLong bytes is split in three
// streams of kLong bytes whose registers are then joined with the shift operator; then blocks
// of 3 * kShort for what is left, then single words and bytes.
constexpr size_t kLong = 2048;
constexpr size_t kShort = 256;
constexpr ShiftTables kShiftLong = MakeShiftTables(kLong);
constexpr ShiftTables kShiftShort = MakeShiftTables(kShort);

template <size_t kBlock>
__attribute__((target("sse4.2"))) uint64_t ThreeStreams(uint64_t c0, const ShiftTables& shift,
                                                        const char*& p, size_t& n) {
  for (; n >= 3 * kBlock; p += 2 * kBlock, n -= 3 * kBlock) {
    uint64_t c1 = 0;
    uint64_t c2 = 0;
    for (const char* end = p + kBlock; p < end; p += 8) {
      c0 = _mm_crc32_u64(c0, Load64(p));
      c1 = _mm_crc32_u64(c1, Load64(p + kBlock));
      c2 = _mm_crc32_u64(c2, Load64(p + 2 * kBlock));
    }
    c0 = Shift(shift, static_cast<uint32_t>(c0)) ^ c1;
    c0 = Shift(shift, static_cast<uint32_t>(c0)) ^ c2;
  }
  return c0;
}

__attribute__((target("sse4.2"))) uint32_t Crc32cHardware(uint32_t crc, std::string_view data) {
  const char* p = data.data();
  size_t n = data.size();
  uint64_t c = ~crc;
  c = ThreeStreams<kLong>(c, kShiftLong, p, n);
  c = ThreeStreams<kShort>(c, kShiftShort, p, n);
  for (; n >= 8; p += 8, n -= 8) c = _mm_crc32_u64(c, Load64(p));
  auto c32 = static_cast<uint32_t>(c);
  for (; n > 0; ++p, --n) c32 = _mm_crc32_u8(c32, static_cast<uint8_t>(*p));
  return ~c32;
}

bool HasSse42() {
  static const bool has = __builtin_cpu_supports("sse4.2");
  return has;
}
#endif

}  // namespace

uint32_t Crc32cPortable(uint32_t crc, std::string_view data) {
  uint32_t c = ~crc;
  for (char ch : data) c = kTable[(c ^ static_cast<uint8_t>(ch)) & 0xff] ^ (c >> 8);
  return ~c;
}

uint32_t Crc32c(uint32_t crc, std::string_view data) {
#if defined(__x86_64__)
  if (HasSse42()) return Crc32cHardware(crc, data);
#endif
  return Crc32cPortable(crc, data);
}

}  // namespace rally
