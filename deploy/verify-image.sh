#!/usr/bin/env bash
# Builds the spinnet image from the repo's Dockerfile and proves it works:
# the server from the image, on loopback, answers health, trains a small
# model on the built-in digits and classifies digits rows with it, through
# the image's own `spinnet` CLI. Prints PASS or FAIL and the timings.
#
#   deploy/verify-image.sh
#
# Engine: Docker when a Docker engine answers (`docker info`), otherwise
# buildah (chroot isolation, host network; the base image debian:bookworm is
# made locally by deploy/make-base-image.sh when it is missing).
#
# Environment:
#   SPINNET_IMAGE              image tag to build and check [spinnet:latest]
#   SPINNET_VERIFY_NO_CACHE=1  build without the layer cache
#   SPINNET_VERIFY_SKIP_BUILD=1  check an image already built
#   SPINNET_VERIFY_HOST_CLI=1  drive the server with the host's
#                              build/client/spinnet instead of the image's CLI
#   SPINNET_VERIFY_BUILD_ARGS  extra build flags, e.g.
#                              "--build-arg SPINNET_CTEST_ARGS=-Eserver_e2e"
#   SPINNET_VERIFY_ENGINE      docker or buildah, instead of detecting
#   Bounds (seconds): SPINNET_VERIFY_BUILD_TIMEOUT [2700],
#   SPINNET_VERIFY_START_TIMEOUT [60], SPINNET_VERIFY_TRAIN_TIMEOUT [600].
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
REPO=$PWD
IMAGE=${SPINNET_IMAGE:-spinnet:latest}
BUILD_TIMEOUT=${SPINNET_VERIFY_BUILD_TIMEOUT:-2700}
START_TIMEOUT=${SPINNET_VERIFY_START_TIMEOUT:-60}
TRAIN_TIMEOUT=${SPINNET_VERIFY_TRAIN_TIMEOUT:-600}
CALL_TIMEOUT=60      # any single CLI call but training
for v in BUILD_TIMEOUT START_TIMEOUT TRAIN_TIMEOUT; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || { echo "verify-image: $v must be a positive number of seconds" >&2; exit 2; }
done
TAG=spinnet-verify-$$

TMP=$(mktemp -d /tmp/spinnet-verify.XXXXXX)
ENGINE=""
SERVER_PID=""        # buildah: the setsid'd `buildah run` (its process group)
spid=""              # buildah: the spinnet-server process under it
SERVER_CTR=""        # buildah working container / docker container of the server
CLIENT_CTR=""        # buildah working container for the CLI
T_BASE="-" T_BUILD="-" T_VERIFY="-" SIZE="-"
RESULT=FAIL
STEP="setup"

log() { printf '[verify %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
fail() { log "FAILED at '${STEP}': $*"; exit 1; }
step() { STEP=$1; log "== $1"; }
now() { date +%s; }

# --- cleanup and the verdict (always) ------------------------------------------------
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    # SIGTERM to the server itself first (buildah answers a signal by killing
    # its child outright), then to the whole process group, then SIGKILL.
    [[ -n $spid ]] && kill -TERM "$spid" 2>/dev/null
    for _ in $(seq 1 20); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.5; done
    kill -TERM -- "-$SERVER_PID" 2>/dev/null
    for _ in $(seq 1 10); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.5; done
    kill -KILL -- "-$SERVER_PID" 2>/dev/null
    wait "$SERVER_PID" 2>/dev/null
  fi
  if [[ $ENGINE == docker ]]; then
    [[ -n $SERVER_CTR ]] && timeout 60 docker rm -f -v "$SERVER_CTR" >/dev/null 2>&1
  elif [[ $ENGINE == buildah ]]; then
    for c in $SERVER_CTR $CLIENT_CTR; do timeout 60 buildah rm "$c" >/dev/null 2>&1; done
  fi
  if ((rc != 0)) && [[ -s $TMP/server.log ]]; then
    log "server output (last 30 lines):"; tail -n 30 "$TMP/server.log"
  fi
  rm -rf "$TMP"
  [[ $rc == 0 && $RESULT == PASS ]] || RESULT=FAIL
  echo
  echo "================================================================"
  echo " spinnet image verification: ${RESULT}"
  echo "   engine        ${ENGINE:-none}"
  echo "   image         ${IMAGE} (${SIZE})"
  echo "   base image    ${T_BASE}"
  echo "   image build   ${T_BUILD}"
  echo "   verification  ${T_VERIFY}"
  [[ $RESULT == PASS ]] || echo "   failed at     ${STEP}"
  echo "================================================================"
  [[ $RESULT == PASS ]] && exit 0 || exit 1
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

secs() { local s=$1; printf '%dm%02ds' $((s / 60)) $((s % 60)); }

# --- engine ---------------------------------------------------------------------------------
step "engine"
if [[ -n ${SPINNET_VERIFY_ENGINE:-} ]]; then
  ENGINE=$SPINNET_VERIFY_ENGINE
elif command -v docker >/dev/null && timeout 20 docker info >/dev/null 2>&1; then
  ENGINE=docker
elif command -v buildah >/dev/null; then
  ENGINE=buildah
else
  fail "neither a Docker engine (docker info) nor buildah (apt-get install -y buildah debootstrap)"
fi
[[ $ENGINE == docker || $ENGINE == buildah ]] || fail "unknown engine '$ENGINE'"
[[ $ENGINE == buildah && $(id -u) -ne 0 ]] && fail "the buildah path needs root (chroot isolation, debootstrap)"
log "engine: $ENGINE"

# --- base image and build ----------------------------------------------------------------------
read -r -a EXTRA_BUILD <<<"${SPINNET_VERIFY_BUILD_ARGS:-}"
NOCACHE=()
[[ ${SPINNET_VERIFY_NO_CACHE:-0} == 1 ]] && NOCACHE=(--no-cache)

if [[ ${SPINNET_VERIFY_SKIP_BUILD:-0} != 1 ]]; then
  if [[ $ENGINE == buildah ]]; then
    step "base image"
    t0=$(now)
    timeout 2400 bash "$REPO/deploy/make-base-image.sh" || fail "deploy/make-base-image.sh failed"
    T_BASE=$(secs $(($(now) - t0)))
  else
    T_BASE="(pulled by docker build)"
  fi

  step "image build"
  t0=$(now)
  if [[ $ENGINE == buildah ]]; then
    # --layers keeps the per-instruction cache, so a rerun after a source
    # change rebuilds from COPY on; --pull=never: the base is local.
    timeout "$BUILD_TIMEOUT" buildah bud --isolation chroot --format docker \
      --layers --pull=never "${NOCACHE[@]}" "${EXTRA_BUILD[@]}" \
      -t "$IMAGE" -f Dockerfile . 2>&1 | tee "$TMP/build.log" | sed -u 's/^/  | /'
  else
    timeout "$BUILD_TIMEOUT" docker build "${NOCACHE[@]}" "${EXTRA_BUILD[@]}" \
      -t "$IMAGE" -f Dockerfile . 2>&1 | tee "$TMP/build.log" | sed -u 's/^/  | /'
  fi
  build_rc=${PIPESTATUS[0]}
  T_BUILD=$(secs $(($(now) - t0)))
  ((build_rc == 0)) || fail "image build failed (exit $build_rc; 124 = timed out)"
  # The unit tests run inside the build: show their summary.
  grep -E "tests passed|tests failed|tests skipped|^Total Test time" "$TMP/build.log" | sed 's/^/  /'
fi

# --- image size and configuration -------------------------------------------------------------
step "image configuration"
if [[ $ENGINE == buildah ]]; then
  SIZE=$(buildah images --format '{{.Size}}' "$IMAGE" 2>/dev/null | head -n1)
  # (buildah's --format has no json function: Go's default formatting.)
  inspect() { buildah inspect --type image --format "{{.Docker.Config.$1}}" "$IMAGE"; }
else
  SIZE=$(docker image inspect --format '{{.Size}}' "$IMAGE" | awk '{printf "%.0f MB", $1/1e6}')
  inspect() { docker image inspect --format "{{.Config.$1}}" "$IMAGE"; }
fi
cfg_user=$(inspect User) cfg_entry=$(inspect Entrypoint) cfg_cmd=$(inspect Cmd)
cfg_ports=$(inspect ExposedPorts) cfg_vols=$(inspect Volumes)
cfg_health=$(inspect Healthcheck.Test 2>/dev/null)
[[ -n $SIZE ]] || fail "image $IMAGE not found"
log "size $SIZE; user '$cfg_user'; entrypoint $cfg_entry; cmd $cfg_cmd"
log "ports $cfg_ports; volumes $cfg_vols; healthcheck $cfg_health"
[[ $cfg_user == spinnet* ]] || fail "image user is '$cfg_user', not spinnet"
[[ $cfg_entry == '[spinnet-server]' ]] || fail "entrypoint is $cfg_entry"
[[ $cfg_cmd == *'--data-dir /var/lib/spinnet'* ]] || fail "cmd lacks --data-dir /var/lib/spinnet"
[[ $cfg_ports == *50051/tcp* && $cfg_ports == *9464/tcp* ]] || fail "ports 50051/9464 not exposed"
[[ $cfg_vols == *'/var/lib/spinnet:'* ]] || fail "no VOLUME /var/lib/spinnet"
[[ $cfg_health == *'spinnet --server 127.0.0.1:50051'*health* ]] ||
  fail "no HEALTHCHECK running 'spinnet ... health' (buildah keeps it only with --format docker)"

t_verify0=$(now)

# A few digits rows in the CLI's format: label, then the 64 pixels / 16.
zcat "$REPO/core/data/digits.csv.gz" | head -n 20 |
  awk -F, '{printf "%s", $65; for (i = 1; i <= 64; i++) printf ",%s", $i / 16; print ""}' \
  >"$TMP/few.csv"
[[ $(wc -l <"$TMP/few.csv") == 20 ]] || fail "could not make few.csv from core/data/digits.csv.gz"
chmod 0644 "$TMP/few.csv"

# --- start the server from the image ---------------------------------------------------------
step "server start"
if [[ $ENGINE == buildah ]]; then
  SERVER_CTR=$(buildah from --pull=never --name "$TAG-server" "$IMAGE") || fail "buildah from $IMAGE"
  # The image's entrypoint as the image's non-root user. chroot isolation has
  # no network namespace of its own, so the server listens on host loopback;
  # port 0 (the kernel picks free ports) keeps it clear of any other server.
  # setsid: the server and everything buildah forks share one process group.
  setsid buildah run --isolation chroot --network host --user spinnet:spinnet \
    "$SERVER_CTR" -- spinnet-server --listen 127.0.0.1:0 \
    --metrics-listen 127.0.0.1:0 --data-dir /var/lib/spinnet \
    >"$TMP/server.log" 2>&1 </dev/null &
  SERVER_PID=$!
  deadline=$(($(now) + START_TIMEOUT))
  until grep -q "listening on" "$TMP/server.log"; do
    kill -0 "$SERVER_PID" 2>/dev/null || fail "the server exited: $(tail -n 5 "$TMP/server.log")"
    (($(now) < deadline)) || fail "the server did not start in ${START_TIMEOUT}s"
    sleep 0.5
  done
  line=$(grep -m1 "listening on" "$TMP/server.log")
  log "$line"
  ADDR=$(sed -E 's/.*listening on ([^,]+),.*/\1/' <<<"$line")
  METRICS=$(sed -nE 's#.*metrics on http://([^/]+)/metrics.*#\1#p' <<<"$line")
  # Which user runs it: the spinnet-server process in our process group.
  spid=$(pgrep -g "$SERVER_PID" -x spinnet-server | head -n1)
  [[ -n $spid ]] || fail "no spinnet-server process under the buildah run"
  uid=$(awk '/^Uid:/ {print $2}' "/proc/$spid/status")
  log "spinnet-server pid $spid runs as uid $uid"
  [[ $uid == 10001 ]] || fail "the server runs as uid $uid, not spinnet (10001)"

  CLIENT_CTR=$(buildah from --pull=never --name "$TAG-client" "$IMAGE") || fail "buildah from $IMAGE"
  buildah copy --chown spinnet:spinnet "$CLIENT_CTR" "$TMP/few.csv" /tmp/few.csv >/dev/null ||
    fail "buildah copy few.csv"
  FEW=/tmp/few.csv
  if [[ ${SPINNET_VERIFY_HOST_CLI:-0} == 1 ]]; then
    [[ -x $REPO/build/client/spinnet ]] || fail "no build/client/spinnet on the host"
    cli() { timeout "$1" "$REPO/build/client/spinnet" --server "$ADDR" "${@:2}"; }
    FEW=$TMP/few.csv
  else
    cli() {
      timeout "$1" buildah run --isolation chroot --network host --user spinnet:spinnet \
        "$CLIENT_CTR" -- spinnet --server "$ADDR" "${@:2}"
    }
  fi
else
  # The image's own entrypoint and CMD (0.0.0.0 inside the container),
  # published on host loopback at ports docker picks.
  SERVER_CTR=$TAG-server
  timeout 120 docker run -d --name "$SERVER_CTR" \
    -p 127.0.0.1::50051 -p 127.0.0.1::9464 "$IMAGE" >/dev/null || fail "docker run"
  deadline=$(($(now) + START_TIMEOUT))
  until docker logs "$SERVER_CTR" 2>&1 | grep -q "listening on"; do
    [[ $(docker inspect -f '{{.State.Running}}' "$SERVER_CTR") == true ]] ||
      fail "the server exited: $(docker logs "$SERVER_CTR" 2>&1 | tail -n 5)"
    (($(now) < deadline)) || fail "the server did not start in ${START_TIMEOUT}s"
    sleep 0.5
  done
  log "$(docker logs "$SERVER_CTR" 2>&1 | grep -m1 'listening on')"
  METRICS=$(docker port "$SERVER_CTR" 9464/tcp | head -n1)
  uid=$(docker exec "$SERVER_CTR" sh -c 'awk "/^Uid:/ {print \$2}" /proc/1/status')
  log "spinnet-server runs as uid $uid"
  [[ $uid == 10001 ]] || fail "the server runs as uid $uid, not spinnet (10001)"
  timeout 60 docker cp "$TMP/few.csv" "$SERVER_CTR:/tmp/few.csv" || fail "docker cp few.csv"
  FEW=/tmp/few.csv
  ADDR=127.0.0.1:50051
  if [[ ${SPINNET_VERIFY_HOST_CLI:-0} == 1 ]]; then
    [[ -x $REPO/build/client/spinnet ]] || fail "no build/client/spinnet on the host"
    ADDR=$(docker port "$SERVER_CTR" 50051/tcp | head -n1)
    cli() { timeout "$1" "$REPO/build/client/spinnet" --server "$ADDR" "${@:2}"; }
    FEW=$TMP/few.csv
  else
    cli() { timeout "$1" docker exec "$SERVER_CTR" spinnet --server "$ADDR" "${@:2}"; }
  fi
fi

# --- health ----------------------------------------------------------------------------------
step "health"
deadline=$(($(now) + START_TIMEOUT))
until out=$(cli "$CALL_TIMEOUT" --timeout 3 health 2>&1) && [[ $out == *SERVING* ]]; do
  (($(now) < deadline)) || fail "health did not report SERVING in ${START_TIMEOUT}s: $out"
  sleep 1
done
log "spinnet health: $out"

# --- training ------------------------------------------------------------------------------------
step "training"
t0=$(now)
cli "$TRAIN_TIMEOUT" train --dataset digits --model m --epochs 1 --neurons 8 --watch \
  >"$TMP/train.out" 2>&1
rc=$?
sed 's/\x1b\[K//g; s/\r/\n/g' "$TMP/train.out" | grep -v '^$' | tail -n 8 | sed 's/^/  | /'
((rc == 0)) || fail "spinnet train exited $rc (124 = timed out after ${TRAIN_TIMEOUT}s)"
grep -q "succeeded: model m version" "$TMP/train.out" || fail "training did not succeed"
log "training took $(secs $(($(now) - t0)))"
out=$(cli "$CALL_TIMEOUT" models 2>&1) || fail "spinnet models: $out"
printf '%s\n' "$out" | sed 's/^/  | /'
grep -qE '^m[[:space:]]' <<<"$out" || fail "model m is not listed"

# --- classification ------------------------------------------------------------------------
step "classification"
out=$(cli "$CALL_TIMEOUT" classify --model m "$FEW" 2>&1) || fail "spinnet classify: $out"
printf '%s\n' "$out" | awk '{ l[NR] = $0 } END { for (i = 1; i <= NR; i++)
  if (i <= 3 || i > NR - 2) print "  | " l[i]; else if (i == 4) print "  | ..." }'
rows=$(grep -c '^row [0-9]*:' <<<"$out")
[[ $rows == 20 ]] || fail "classify answered $rows rows, not 20"
grep -q '^accuracy:' <<<"$out" || fail "classify printed no accuracy"

# --- metrics --------------------------------------------------------------------------------------
step "metrics"
if [[ -n ${METRICS:-} ]] && command -v curl >/dev/null; then
  body=$(curl -fsS --max-time 10 "http://$METRICS/metrics") || fail "GET http://$METRICS/metrics"
  grep -q '^spinnet_classifications_total' <<<"$body" || fail "no spinnet_classifications_total in /metrics"
  log "/metrics: $(grep -c '^spinnet_' <<<"$body") spinnet_ samples, e.g. $(grep -m1 '^spinnet_classifications_total' <<<"$body")"
else
  log "skipped (no metrics address or no curl)"
fi

# --- graceful stop ---------------------------------------------------------------------------------
step "shutdown"
if [[ $ENGINE == buildah ]]; then
  kill -TERM "$spid" 2>/dev/null
  for _ in $(seq 1 60); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.5; done
  kill -0 "$SERVER_PID" 2>/dev/null && fail "the server did not stop within 30s of SIGTERM"
  wait "$SERVER_PID"; rc=$?
  SERVER_PID=""
  ((rc == 0)) || fail "the server exited $rc after SIGTERM"
  # The store is in the data dir, written by the non-root user.
  out=$(timeout "$CALL_TIMEOUT" buildah run --isolation chroot --user spinnet:spinnet \
    "$SERVER_CTR" -- sh -c 'ls -ln /var/lib/spinnet' 2>&1) || fail "listing the data dir: $out"
  printf '%s\n' "$out" | sed 's/^/  | /'
  grep -qE ' 10001 +10001 .* spinnet\.db$' <<<"$out" || fail "no spinnet.db owned by spinnet in /var/lib/spinnet"
else
  timeout 60 docker stop -t 30 "$SERVER_CTR" >/dev/null || fail "docker stop"
  rc=$(docker inspect -f '{{.State.ExitCode}}' "$SERVER_CTR")
  [[ $rc == 0 ]] || fail "the server exited $rc after SIGTERM"
fi
log "stopped cleanly"

T_VERIFY=$(secs $(($(now) - t_verify0)))
RESULT=PASS
exit 0
