#!/usr/bin/env bash
# Installs the Debian 12 packages spinnet builds and tests with. Idempotent;
# skips apt entirely when everything is already installed.
set -euo pipefail
PKGS=(
  build-essential cmake pkg-config zlib1g-dev python3
  libeigen3-dev libabsl-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  prometheus-cpp-dev libsqlite3-dev libssl-dev openssl
  prometheus
)
# Optional extras (benchmark comparisons): SPINNET_BENCH_DEPS=1.
if [[ "${SPINNET_BENCH_DEPS:-0}" == 1 ]]; then PKGS+=(python3-torch); fi
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
