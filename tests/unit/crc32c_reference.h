// CRC-32C by its definition, one bit at a time: the reference the tests hold the fast paths to.
#pragma once

#include <cstdint>
#include <string_view>

namespace rally::testing {

inline uint32_t BitwiseCrc32c(uint32_t crc, std::string_view data) {
  uint32_t c = ~crc;
  for (char ch : data) {
    c ^= static_cast<uint8_t>(ch);
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
  }
  return ~c;
}

}  // namespace rally::testing
