// Checks Crc32c without GoogleTest, so that it can be built for another processor and run
// there (crc32c_arm64_test.sh builds it for 64-bit Arm and runs it under QEMU). Exits non-zero
// on any mismatch; with --expect-instruction, also when the instruction path is not taken.
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <string_view>

#include "common/util/crc32c.h"
#include "tests/unit/crc32c_reference.h"

int main(int argc, char** argv) {
  using rally::Crc32c;
  using rally::Crc32cPortable;
  int failures = 0;
  const bool on_instruction = rally::Crc32cOnInstruction();
  std::printf("crc32c on the processor's instruction: %s\n", on_instruction ? "yes" : "no");
  if (argc > 1 && std::strcmp(argv[1], "--expect-instruction") == 0 && !on_instruction) {
    std::printf("FAIL: the instruction path was expected\n");
    ++failures;
  }
  if (Crc32c(0, "123456789") != 0xE3069283u || Crc32cPortable(0, "123456789") != 0xE3069283u) {
    std::printf("FAIL: the check value of \"123456789\" is not 0xE3069283\n");
    ++failures;
  }
  std::mt19937 rng(7);
  std::string data(40000, '\0');
  for (char& c : data) c = static_cast<char>(rng());
  // Lengths around the instruction path's blocks (6144 and 768 bytes) and the tables' words.
  for (size_t n : {0, 1, 7, 8, 9, 255, 767, 768, 769, 6143, 6144, 6145, 6917, 20000, 39990}) {
    for (size_t offset = 0; offset < 8; ++offset) {
      const std::string_view piece = std::string_view(data).substr(offset, n);
      const uint32_t want = rally::testing::BitwiseCrc32c(0x1234u, piece);
      if (Crc32c(0x1234u, piece) != want || Crc32cPortable(0x1234u, piece) != want) {
        std::printf("FAIL: length %zu, offset %zu\n", n, offset);
        ++failures;
      }
    }
  }
  std::printf("%s\n", failures == 0 ? "ok" : "FAILED");
  return failures == 0 ? 0 : 1;
}
