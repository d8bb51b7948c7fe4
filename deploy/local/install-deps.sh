#!/usr/bin/env bash
# Installs everything rally needs to build and run on Debian bookworm (run as root).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
packages=(
  build-essential cmake ninja-build ccache pkg-config
  protobuf-compiler protobuf-compiler-grpc libprotobuf-dev libgrpc++-dev
  libabsl-dev libtorch-dev libgloo-dev
  prometheus-cpp-dev libyaml-cpp-dev libsqlite3-dev nlohmann-json3-dev libzstd-dev
  libgtest-dev libgmock-dev
  iproute2
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
