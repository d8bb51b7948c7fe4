// CRC-32C (Castagnoli), the checksum of the replay's write-ahead log. With SSE4.2 it runs on
// the processor's crc32 instruction (several GB/s; zlib's CRC-32 was a tenth of the replay's
// time when logging large items); elsewhere on a table.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace rally {

// The CRC-32C of `data` continued from `crc`, the CRC-32C of the bytes before it (0 for none):
// Crc32c(Crc32c(0, a), b) == Crc32c(0, a + b).
uint32_t Crc32c(uint32_t crc, std::string_view data);

// The same on the table, whatever the processor (for tests comparing the two).
uint32_t Crc32cPortable(uint32_t crc, std::string_view data);

}  // namespace rally
