// CRC-32C (Castagnoli), the checksum of the replay's write-ahead log. It runs on the processor's
// crc32c instruction where there is one (x86 with SSE4.2, 64-bit Arm with the CRC extension:
// tens of GB/s; zlib's CRC-32 was a tenth of the replay's time when logging large items), and
// elsewhere on tables, eight bytes at a time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace rally {

// The CRC-32C of `data` continued from `crc`, the CRC-32C of the bytes before it (0 for none):
// Crc32c(Crc32c(0, a), b) == Crc32c(0, a + b).
uint32_t Crc32c(uint32_t crc, std::string_view data);

// The same on the tables, whatever the processor (for tests comparing the two).
uint32_t Crc32cPortable(uint32_t crc, std::string_view data);

// True when Crc32c runs on the processor's instruction.
bool Crc32cOnInstruction();

}  // namespace rally
