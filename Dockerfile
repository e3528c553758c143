# spinnet-server, the spinnet CLI and spinnet-train in a Debian 12 image.
#
#   docker build -t spinnet:latest .
#   buildah bud --isolation chroot --format docker -t spinnet:latest .
#   docker run -d -p 50051:50051 -p 9464:9464 -v spinnet-data:/var/lib/spinnet spinnet:latest
#
# That is one server on its embedded SQLite store. Replicas share a
# PostgreSQL store instead (--store postgresql://USER@HOST:PORT/DB with
# --store-password-file): deploy/docker-compose.yml and deploy/k8s/.
#
# Where no registry is reachable, deploy/make-base-image.sh makes the local
# debian:bookworm base with debootstrap; deploy/verify-image.sh builds this
# image and checks it end to end (health, training, classification, on
# SQLite and on PostgreSQL) and deploy/verify-compose.sh runs the compose
# topology with it (two replicas, PostgreSQL, Prometheus, a replica killed).
#
# Build args:
#   SPINNET_CTEST_ARGS  ctest arguments for the tests run while building
#                       [none: every test, 1-1.5 min on 2 cores]; e.g.
#                       '-E server_e2e|spinnet_train_cli' skips the two
#                       process-level tests, the slowest (~50 s and ~20 s).
#   SPINNET_SKIP_TESTS  1 skips the tests (not for release images).

# ---------------------------------------------------------------------------
# Build stage: compilers and -dev packages (deploy/install-deps.sh),
# portable binaries, every test, then an install tree in /staging.
# ---------------------------------------------------------------------------
FROM debian:bookworm AS build

# The packages by name are in deploy/install-deps.sh, the same list the host
# build uses (compilers, the -dev packages, python3, Prometheus and the
# PostgreSQL server for the tests); copied alone so that this layer stays
# cached when sources change. The tests run as root here: tests/pg_cluster.py
# runs its throw-away clusters as the postgres user the package creates.
ARG DEBIAN_FRONTEND=noninteractive
COPY deploy/install-deps.sh /tmp/install-deps.sh
RUN bash /tmp/install-deps.sh && rm -rf /var/lib/apt/lists/* /tmp/install-deps.sh

WORKDIR /src
COPY . .

# SPINNET_NATIVE=OFF: no -march=native, so the binaries run on any x86-64 CPU,
# not only on the one that built the image.
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=Release -DSPINNET_NATIVE=OFF \
 && cmake --build /build -j"$(nproc)"

ARG SPINNET_CTEST_ARGS=""
ARG SPINNET_SKIP_TESTS=0
RUN if [ "$SPINNET_SKIP_TESTS" = 1 ]; then echo "tests skipped"; exit 0; fi; \
    cd /build && ctest --output-on-failure -j"$(nproc)" --timeout 900 $SPINNET_CTEST_ARGS

RUN DESTDIR=/staging cmake --install /build --prefix /usr/local \
 && test -x /staging/usr/local/bin/spinnet-server \
 && test -x /staging/usr/local/bin/spinnet \
 && test -x /staging/usr/local/bin/spinnet-train \
 && test -s /staging/usr/local/share/spinnet/digits.csv.gz \
 && strip --strip-unneeded /staging/usr/local/bin/*

# ---------------------------------------------------------------------------
# Runtime stage: the shared libraries the binaries link, nothing to build with.
# ---------------------------------------------------------------------------
FROM debian:bookworm

ARG DEBIAN_FRONTEND=noninteractive
# libgrpc++1.51 brings libgrpc29 (and with it libssl3, libre2-9, libc-ares2);
# libprometheus-cpp-pull1.0 brings libcivetweb1; libpq5 is the PostgreSQL
# client library of the postgresql:// store.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libgrpc++1.51 libprotobuf32 libabsl20220623 \
      libprometheus-cpp-core1.0 libprometheus-cpp-pull1.0 \
      libsqlite3-0 libpq5 zlib1g ca-certificates \
 && rm -rf /var/lib/apt/lists/*

# spinnet-server, spinnet, spinnet-train in /usr/local/bin; the digits data
# in /usr/local/share/spinnet/digits.csv.gz, where the server looks first.
COPY --from=build /staging/usr/local/ /usr/local/

# Every library resolves, and the binaries start.
RUN set -e; \
    for b in spinnet-server spinnet spinnet-train; do \
      if ldd "/usr/local/bin/$b" | grep 'not found'; then echo "$b: missing library" >&2; exit 1; fi; \
      "$b" --help >/dev/null; \
    done

# A non-root user owns the data dir (SQLite store, models, checkpoints,
# uploaded datasets). The directory is made before VOLUME so that a new
# volume starts out owned by spinnet.
RUN groupadd --gid 10001 spinnet \
 && useradd --uid 10001 --gid 10001 --no-log-init --no-create-home \
      --home-dir /var/lib/spinnet --shell /usr/sbin/nologin spinnet \
 && install -d -o spinnet -g spinnet -m 0750 /var/lib/spinnet
VOLUME /var/lib/spinnet
WORKDIR /var/lib/spinnet
USER spinnet:spinnet

# gRPC API and Prometheus /metrics.
EXPOSE 50051 9464

HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["spinnet", "--server", "127.0.0.1:50051", "--timeout", "3", "health"]

# --allow-insecure-remote lets the server listen on 0.0.0.0 with neither TLS
# nor a token: fine on a trusted network or behind a proxy that adds them.
# Production passes --auth-token-file instead (a mounted secret:
# --auth-token-file=/run/secrets/spinnet_token, as deploy/docker-compose.yml
# and deploy/k8s/spinnet.yaml do), and --tls-cert/--tls-key where the network
# is not trusted; every RPC but health then needs the bearer token.
ENTRYPOINT ["spinnet-server"]
CMD ["--listen", "0.0.0.0:50051", "--metrics-listen", "0.0.0.0:9464", "--data-dir", "/var/lib/spinnet", "--allow-insecure-remote"]
