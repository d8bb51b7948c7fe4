#include "common/util/crc32c.h"

#include <array>
#include <bit>
#include <cstring>

#if defined(__x86_64__)
#include <nmmintrin.h>
#define RALLY_CRC32C_HARDWARE 1
#define RALLY_CRC32C_TARGET __attribute__((target("sse4.2")))
#elif defined(__aarch64__) && defined(__linux__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ && \
    (!defined(__clang__) || __clang_major__ >= 16)
// (GCC, and clang from 16, take target("+crc") and declare __crc32cd under it; getauxval is
// Linux's.)
#include <arm_acle.h>
#include <sys/auxv.h>
#define RALLY_CRC32C_HARDWARE 1
#define RALLY_CRC32C_TARGET __attribute__((target("+crc")))
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

// Slicing by 8: kSliced[k][b] is the register after byte b followed by k zero bytes, so eight
// bytes are folded with eight lookups at once instead of one after another.
using SlicedTables = std::array<std::array<uint32_t, 256>, 8>;

constexpr SlicedTables MakeSlicedTables() {
  SlicedTables t{};
  t[0] = MakeTable();
  for (size_t k = 1; k < 8; ++k) {
    for (uint32_t b = 0; b < 256; ++b) t[k][b] = (t[k - 1][b] >> 8) ^ t[0][t[k - 1][b] & 0xff];
  }
  return t;
}

constexpr SlicedTables kSliced = MakeSlicedTables();

// Eight bytes in the processor's byte order.
uint64_t Load64(const char* p) {
  uint64_t word;
  std::memcpy(&word, p, 8);
  return word;
}

#if RALLY_CRC32C_HARDWARE
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
// The register as the instruction holds it: x86's 64-bit crc32 takes and returns a 64-bit
// register (a 32-bit one would cost a zero-extension in every step's dependency chain).
using Reg = uint64_t;
RALLY_CRC32C_TARGET inline Reg Step64(Reg c, uint64_t word) { return _mm_crc32_u64(c, word); }
RALLY_CRC32C_TARGET inline Reg Step8(Reg c, uint8_t byte) {
  return _mm_crc32_u8(static_cast<uint32_t>(c), byte);
}
bool HasInstruction() {
  static const bool has = __builtin_cpu_supports("sse4.2");
  return has;
}
#else
using Reg = uint32_t;
RALLY_CRC32C_TARGET inline Reg Step64(Reg c, uint64_t word) { return __crc32cd(c, word); }
RALLY_CRC32C_TARGET inline Reg Step8(Reg c, uint8_t byte) { return __crc32cb(c, byte); }
bool HasInstruction() {
  static const bool has = (getauxval(AT_HWCAP) & HWCAP_CRC32) != 0;
  return has;
}
#endif

// The crc32c instruction (x86's crc32, Arm's crc32cx) takes about three cycles and can start
// one each cycle, so three independent streams run about three times as fast as one: each
// block of 3 * kLong bytes is split in three streams of kLong bytes whose registers are then
// joined with the shift operator; then blocks of 3 * kShort for what is left, then single
// words and bytes.
constexpr size_t kLong = 2048;
constexpr size_t kShort = 256;
constexpr ShiftTables kShiftLong = MakeShiftTables(kLong);
constexpr ShiftTables kShiftShort = MakeShiftTables(kShort);

template <size_t kBlock>
RALLY_CRC32C_TARGET Reg ThreeStreams(Reg c0, const ShiftTables& shift, const char*& p, size_t& n) {
  for (; n >= 3 * kBlock; p += 2 * kBlock, n -= 3 * kBlock) {
    Reg c1 = 0;
    Reg c2 = 0;
    for (const char* end = p + kBlock; p < end; p += 8) {
      c0 = Step64(c0, Load64(p));
      c1 = Step64(c1, Load64(p + kBlock));
      c2 = Step64(c2, Load64(p + 2 * kBlock));
    }
    c0 = Shift(shift, static_cast<uint32_t>(c0)) ^ c1;
    c0 = Shift(shift, static_cast<uint32_t>(c0)) ^ c2;
  }
  return c0;
}

RALLY_CRC32C_TARGET uint32_t Crc32cHardware(uint32_t crc, std::string_view data) {
  const char* p = data.data();
  size_t n = data.size();
  Reg c = ~crc;
  c = ThreeStreams<kLong>(c, kShiftLong, p, n);
  c = ThreeStreams<kShort>(c, kShiftShort, p, n);
  for (; n >= 8; p += 8, n -= 8) c = Step64(c, Load64(p));
  for (; n > 0; ++p, --n) c = Step8(c, static_cast<uint8_t>(*p));
  return ~static_cast<uint32_t>(c);
}
#endif

}  // namespace

uint32_t Crc32cPortable(uint32_t crc, std::string_view data) {
  const char* p = data.data();
  size_t n = data.size();
  uint32_t c = ~crc;
  const auto byte = [&](uint32_t r, char ch) {
    return kSliced[0][(r ^ static_cast<uint8_t>(ch)) & 0xff] ^ (r >> 8);
  };
  for (; n >= 8; p += 8, n -= 8) {
    // The register, little-endian, takes the first four bytes; the last four go in as they are.
    uint64_t word = Load64(p);
    if constexpr (std::endian::native == std::endian::big) word = __builtin_bswap64(word);
    const auto lo = static_cast<uint32_t>(word) ^ c;
    const auto hi = static_cast<uint32_t>(word >> 32);
    c = kSliced[7][lo & 0xff] ^ kSliced[6][(lo >> 8) & 0xff] ^ kSliced[5][(lo >> 16) & 0xff] ^
        kSliced[4][lo >> 24] ^ kSliced[3][hi & 0xff] ^ kSliced[2][(hi >> 8) & 0xff] ^
        kSliced[1][(hi >> 16) & 0xff] ^ kSliced[0][hi >> 24];
  }
  for (; n > 0; ++p, --n) c = byte(c, *p);
  return ~c;
}

bool Crc32cOnInstruction() {
#if RALLY_CRC32C_HARDWARE
  return HasInstruction();
#else
  return false;
#endif
}

uint32_t Crc32c(uint32_t crc, std::string_view data) {
#if RALLY_CRC32C_HARDWARE
  if (HasInstruction()) return Crc32cHardware(crc, data);
#endif
  return Crc32cPortable(crc, data);
}

}  // namespace rally
