#!/usr/bin/env bash
# Builds crc32c_check for 64-bit Arm and runs it under QEMU, which emulates the CRC extension:
# the write-ahead log's checksum on the Arm instruction must equal the definition. Skipped
# (exit 77) without the cross compiler and QEMU (deploy/local/install-deps.sh installs both).
# usage: crc32c_arm64_test.sh SOURCE_DIR WORK_DIR
set -euo pipefail
src=$1
work=$2
for tool in aarch64-linux-gnu-g++ qemu-aarch64; do
  if ! command -v "$tool" > /dev/null; then
    echo "skipped: $tool is not installed"
    exit 77
  fi
done
mkdir -p "$work"
aarch64-linux-gnu-g++ -std=c++20 -O2 -Wall -Werror -static -I"$src" \
  "$src/tests/unit/crc32c_check.cc" "$src/common/util/crc32c.cc" -o "$work/crc32c_check_arm64"
qemu-aarch64 -cpu max "$work/crc32c_check_arm64" --expect-instruction
