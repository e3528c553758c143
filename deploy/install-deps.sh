#!/usr/bin/env bash
# Installs the Debian 12 packages spinnet builds and tests with. Idempotent;
# skips apt entirely when everything is already installed.
set -euo pipefail
PKGS=(
  build-essential cmake ccache pkg-config zlib1g-dev python3
  libeigen3-dev libabsl-dev libcli11-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  prometheus-cpp-dev libsqlite3-dev libssl-dev openssl
  libpq-dev postgresql
  prometheus
  python3-grpcio python3-protobuf python3-numpy python3-matplotlib
)
# python3-grpcio/-protobuf/-numpy/-matplotlib: the Python client package
# (client/python) and its tests; grpc_python_plugin, which generates it, is
# in protobuf-compiler-grpc. libpq-dev: the PostgreSQL store; postgresql:
# the server binaries the tests run throw-away clusters with
# (tests/pg_cluster.py).
# Optional extras. SPINNET_IMAGE_DEPS=1: building and checking the container
# image without a Docker engine (deploy/verify-image.sh: buildah with chroot
# isolation, a debootstrap base image, curl for /metrics, python3-yaml to
# read the compose and k8s files) and running the compose topology with
# podman (deploy/verify-compose.sh: podman with the runc runtime, which this
# kind of VM's hybrid cgroups need, and the CNI dnsname plugin, which makes
# container names resolve on a podman network).
# SPINNET_BENCH_DEPS=1: the benchmark comparison with PyTorch.
# SPINNET_FUZZ_DEPS=1: clang (with libFuzzer and the sanitizer runtimes)
# for the fuzz targets (`make fuzz`, tests/fuzz/run_fuzz.sh).
if [[ "${SPINNET_IMAGE_DEPS:-0}" == 1 ]]; then
  PKGS+=(buildah debootstrap debian-archive-keyring gnupg curl python3-yaml
         podman runc golang-github-containernetworking-plugin-dnsname)
fi
if [[ "${SPINNET_BENCH_DEPS:-0}" == 1 ]]; then PKGS+=(python3-torch); fi
if [[ "${SPINNET_FUZZ_DEPS:-0}" == 1 ]]; then PKGS+=(clang); fi
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
