#!/usr/bin/env bash
# Installs everything rally needs to build and run on Debian bookworm (run as root).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
packages=(
  build-essential cmake ninja-build ccache pkg-config
  protobuf-compiler protobuf-compiler-grpc libprotobuf-dev libgrpc++-dev
  # libcrypto (OpenSSL, which Debian's gRPC uses too): mutual TLS and `rally certs init`.
  libssl-dev
  libabsl-dev libtorch-dev libgloo-dev
  # Debian's LibTorch calls the system's libblas.so.3. Alone it is the reference BLAS, with which
  # a training step of the default model runs ~8x slower (tests/bench/learner_bench). BLIS, not
  # OpenBLAS: OpenBLAS's 60 KB of thread-local storage leaves civetweb's 100 KB thread stacks too
  # small, and the Prometheus endpoint of every process that loads LibTorch fails to start.
  libblis4-pthread
  prometheus-cpp-dev libyaml-cpp-dev libsqlite3-dev nlohmann-json3-dev libzstd-dev
  # Tokenizers (common/lm): PCRE2 for the pre-tokeniser's lookahead and \p{L}, utf8proc for NFC.
  libpcre2-dev libutf8proc-dev
  libgtest-dev libgmock-dev
  iproute2
  # Tests only: the write-ahead log's checksum is built for 64-bit Arm and run under QEMU.
  g++-aarch64-linux-gnu qemu-user
  # Tests only: the fuzz targets (tests/fuzz/run.sh) are built with clang and its libFuzzer.
  clang
  # Tests only: libFuzzer's runtime (libclang_rt.fuzzer-x86_64.a) for Debian's clang-14.
  libclang-rt-14-dev
  # Tests only: g++'s sanitizer runtimes (tests/sanitizers/run.sh); g++-12 already pulls them in.
  libasan8 libubsan1 libtsan2
  # Monitoring: Debian's Prometheus server and promtool (2.42), which check deploy/prometheus and
  # scrape a local cluster in tests/integration/monitoring_test.cc (docs/operations.md).
  prometheus
  # scripts/plot_progress.py (docs/results.md's plots), run on a real run's progress by the tests.
  python3-matplotlib
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# Tests only: the control API driven from Python (tests/python, docs/api.md): grpcio and protobuf
# for Debian's python3; grpc_python_plugin comes with protobuf-compiler-grpc above.
for p in python3-grpcio python3-protobuf; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends "$p"; }
done
# OpenBLAS must not be the libblas.so.3 or liblapack.so.3 that LibTorch loads (see BLIS above),
# yet a package may pull it in: installed in one go with the rest, python3-scipy's pythran takes
# libopenblas-dev, the first of its alternatives, and OpenBLAS then outranks BLIS. So BLIS, and
# the reference LAPACK over it, are chosen explicitly.
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch)
for lib in blas:blis-pthread lapack:lapack; do
  name=${lib%%:*} dir=${lib#*:}
  target=/usr/lib/$multiarch/$dir/lib$name.so.3
  if [ -e "$target" ]; then
    update-alternatives --quiet --set "lib$name.so.3-$multiarch" "$target"
  fi
done
