#!/usr/bin/env bash
# Builds the spinnet image from the repo's Dockerfile and proves it works:
#  1. the server from the image, run with the image's own command on
#     loopback, answers health, trains a small model on the built-in digits
#     and classifies digits rows with it, through the image's own `spinnet`
#     CLI; it serves /metrics, runs as uid 10001, stops cleanly on SIGTERM
#     and leaves its store in the data volume;
#  2. the server run with the command lines of deploy/docker-compose.yml and
#     deploy/k8s/spinnet.yaml, the auth token mounted where those files mount
#     it: health answers without the token, other RPCs need it.
# Prints PASS or FAIL and the timings.
#
#   deploy/verify-image.sh
#
# Engine: Docker when a Docker engine answers (`docker info`), otherwise
# buildah (chroot isolation, host network; the base image debian:bookworm is
# made locally by deploy/make-base-image.sh when it is missing). Needs curl,
# and /usr/bin/python3 with python3-yaml to read deploy/'s files.
#
# Environment:
#   SPINNET_IMAGE              image tag to build and check [spinnet:latest]
#   SPINNET_VERIFY_NO_CACHE=1  build without the layer cache
#   SPINNET_VERIFY_SKIP_BUILD=1  check an image already built
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
CTRS=()              # every container made, removed at the end
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
  for c in "${CTRS[@]}"; do
    if [[ $ENGINE == docker ]]; then
      timeout 60 docker rm -f -v "$c" >/dev/null 2>&1
    else
      timeout 60 buildah rm "$c" >/dev/null 2>&1
    fi
  done
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

# --- the server from the image, and the CLI next to it ----------------------------------------
SECRET=/run/secrets/spinnet_token   # where compose and k8s mount the auth token
CLIENT_CTR=""                       # buildah: the container the CLI runs in
CLI_MOUNT=()                        # buildah: the token, mounted for the CLI too

# Prints ARGV one per line with --listen and --metrics-listen on host
# loopback, port 0 (the kernel picks free ports, clear of any other server).
loopback_argv() {
  local a skip=0 listen=0 metrics=0
  for a in "$@"; do
    if ((skip)); then skip=0; printf '%s\n' 127.0.0.1:0; continue; fi
    case $a in
      --listen=*) listen=1; printf '%s\n' --listen=127.0.0.1:0 ;;
      --metrics-listen=*) metrics=1; printf '%s\n' --metrics-listen=127.0.0.1:0 ;;
      --listen) listen=1; skip=1; printf '%s\n' "$a" ;;
      --metrics-listen) metrics=1; skip=1; printf '%s\n' "$a" ;;
      *) printf '%s\n' "$a" ;;
    esac
  done
  ((listen)) || printf '%s\n' --listen=127.0.0.1:0
  ((metrics)) || printf '%s\n' --metrics-listen=127.0.0.1:0
}

# start_server LABEL TOKEN ARGV...: a new container of the image running ARGV
# (spinnet-server and its flags) as the image's user, with the host file
# TOKEN (or nothing, for '') mounted read-only at $SECRET. buildah's chroot
# isolation has no network namespace of its own, so there the listen
# addresses move to host loopback; docker publishes the container's ports on
# host loopback. Sets ADDR (for the CLI), METRICS (host address of /metrics)
# and checks that the server runs as uid 10001.
start_server() {
  local label=$1 token=$2 line uid deadline
  shift 2
  : >"$TMP/server.log"
  if [[ $ENGINE == buildah ]]; then
    local argv mount=()
    mapfile -t argv < <(loopback_argv "$@")
    [[ -n $token ]] && mount=(--mount "type=bind,src=$token,dst=$SECRET,ro")
    CLI_MOUNT=("${mount[@]}")
    SERVER_CTR=$(buildah from --pull=never --name "$TAG-$label" "$IMAGE") || fail "buildah from $IMAGE"
    CTRS+=("$SERVER_CTR")
    log "buildah run ... ${argv[*]}"
    # setsid: the server and everything buildah forks share one process group.
    setsid buildah run --isolation chroot --network host --user spinnet:spinnet "${mount[@]}" \
      "$SERVER_CTR" -- "${argv[@]}" >"$TMP/server.log" 2>&1 </dev/null &
    SERVER_PID=$!
    deadline=$(($(now) + START_TIMEOUT))
    until grep -q "listening on" "$TMP/server.log"; do
      kill -0 "$SERVER_PID" 2>/dev/null || fail "the server exited: $(tail -n 5 "$TMP/server.log")"
      (($(now) < deadline)) || fail "the server did not start in ${START_TIMEOUT}s"
      sleep 0.5
    done
    line=$(grep -m1 "listening on" "$TMP/server.log")
    ADDR=$(sed -E 's/.*listening on ([^,]+),.*/\1/' <<<"$line")
    METRICS=$(sed -nE 's#.*metrics on http://([^/]+)/metrics.*#\1#p' <<<"$line")
    # Which user runs it: the spinnet-server process in our process group.
    spid=$(pgrep -g "$SERVER_PID" -x spinnet-server | head -n1)
    [[ -n $spid ]] || fail "no spinnet-server process under the buildah run"
    uid=$(awk '/^Uid:/ {print $2}' "/proc/$spid/status")
  else
    local vol=()
    [[ -n $token ]] && vol=(-v "$token:$SECRET:ro")
    SERVER_CTR=$TAG-$label
    CTRS+=("$SERVER_CTR")
    log "docker run ... $*"
    timeout 120 docker run -d --name "$SERVER_CTR" -p 127.0.0.1::50051 -p 127.0.0.1::9464 \
      "${vol[@]}" --entrypoint "$1" "$IMAGE" "${@:2}" >/dev/null || fail "docker run"
    deadline=$(($(now) + START_TIMEOUT))
    until docker logs "$SERVER_CTR" 2>&1 | grep -q "listening on"; do
      [[ $(docker inspect -f '{{.State.Running}}' "$SERVER_CTR") == true ]] ||
        fail "the server exited: $(docker logs "$SERVER_CTR" 2>&1 | tail -n 5)"
      (($(now) < deadline)) || fail "the server did not start in ${START_TIMEOUT}s"
      sleep 0.5
    done
    line=$(docker logs "$SERVER_CTR" 2>&1 | grep -m1 'listening on')
    ADDR=127.0.0.1:50051      # the CLI runs in the server's container
    METRICS=$(docker port "$SERVER_CTR" 9464/tcp | head -n1)
    uid=$(docker exec "$SERVER_CTR" sh -c 'awk "/^Uid:/ {print \$2}" /proc/1/status')
  fi
  log "$line"
  log "spinnet-server runs as uid $uid"
  [[ $uid == 10001 ]] || fail "the server runs as uid $uid, not spinnet (10001)"
}

# cli TIMEOUT ARGS...: the image's spinnet CLI against the running server.
cli() {
  if [[ $ENGINE == buildah ]]; then
    timeout "$1" buildah run --isolation chroot --network host --user spinnet:spinnet \
      "${CLI_MOUNT[@]}" "$CLIENT_CTR" -- spinnet --server "$ADDR" "${@:2}"
  else
    timeout "$1" docker exec "$SERVER_CTR" spinnet --server "$ADDR" "${@:2}"
  fi
}

wait_healthy() {
  local out deadline=$(($(now) + START_TIMEOUT))
  until out=$(cli "$CALL_TIMEOUT" --timeout 3 health 2>&1) && [[ $out == *SERVING* ]]; do
    (($(now) < deadline)) || fail "health did not report SERVING in ${START_TIMEOUT}s: $out"
    sleep 1
  done
  log "spinnet health (no token): $out"
}

# check_metrics [LINE]: /metrics answers with spinnet_ series (and LINE).
check_metrics() {
  local body want
  body=$(curl -fsS --max-time 10 "http://$METRICS/metrics") || fail "GET http://$METRICS/metrics"
  for want in spinnet_grpc_requests_total "$@"; do
    grep -qF "$want" <<<"$body" || fail "no '$want' in /metrics"
  done
  log "/metrics: $(grep -c '^spinnet_' <<<"$body") spinnet_ samples"
}

# SIGTERM, as docker stop and the kubelet send it: the server must exit 0.
stop_server() {
  local rc
  if [[ $ENGINE == buildah ]]; then
    kill -TERM "$spid" 2>/dev/null
    for _ in $(seq 1 60); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.5; done
    kill -0 "$SERVER_PID" 2>/dev/null && fail "the server did not stop within 30s of SIGTERM"
    wait "$SERVER_PID"; rc=$?
    SERVER_PID="" spid=""
  else
    timeout 60 docker stop -t 30 "$SERVER_CTR" >/dev/null || fail "docker stop"
    rc=$(docker inspect -f '{{.State.ExitCode}}' "$SERVER_CTR")
  fi
  ((rc == 0)) || fail "the server exited $rc after SIGTERM"
  log "stopped cleanly"
}

command -v curl >/dev/null || fail "curl not found (apt-get install -y curl)"
if [[ $ENGINE == buildah ]]; then
  CLIENT_CTR=$(buildah from --pull=never --name "$TAG-client" "$IMAGE") || fail "buildah from $IMAGE"
  CTRS+=("$CLIENT_CTR")
  buildah copy --chown spinnet:spinnet "$CLIENT_CTR" "$TMP/few.csv" /tmp/few.csv >/dev/null ||
    fail "buildah copy few.csv"
fi

# --- 1. the image's own command: health, training, classification, metrics -------------------------
step "image command"
# Go's formatting of the image config: [spinnet-server] and [--listen ... ].
read -r -a image_argv <<<"${cfg_entry//[\[\]]/} ${cfg_cmd//[\[\]]/}"
start_server image "" "${image_argv[@]}"
wait_healthy

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

step "classification"
if [[ $ENGINE == docker ]]; then   # (buildah: copied into the CLI's container above)
  timeout 60 docker cp "$TMP/few.csv" "$SERVER_CTR:/tmp/few.csv" || fail "docker cp few.csv"
fi
out=$(cli "$CALL_TIMEOUT" classify --model m /tmp/few.csv 2>&1) || fail "spinnet classify: $out"
printf '%s\n' "$out" | awk '{ l[NR] = $0 } END { for (i = 1; i <= NR; i++)
  if (i <= 3 || i > NR - 2) print "  | " l[i]; else if (i == 4) print "  | ..." }'
rows=$(grep -c '^row [0-9]*:' <<<"$out")
[[ $rows == 20 ]] || fail "classify answered $rows rows, not 20"
grep -q '^accuracy:' <<<"$out" || fail "classify printed no accuracy"

step "metrics"
check_metrics 'spinnet_classifications_total{model="m"} 20'

step "shutdown"
stop_server
if [[ $ENGINE == buildah ]]; then
  # The store is in the data dir, written by the non-root user.
  out=$(timeout "$CALL_TIMEOUT" buildah run --isolation chroot --user spinnet:spinnet \
    "$SERVER_CTR" -- sh -c 'ls -ln /var/lib/spinnet' 2>&1) || fail "listing the data dir: $out"
  printf '%s\n' "$out" | sed 's/^/  | /'
  grep -qE ' 10001 +10001 .* spinnet\.db$' <<<"$out" || fail "no spinnet.db owned by spinnet in /var/lib/spinnet"
fi

# --- 2. deploy/'s command lines, with the auth token where they mount it ----------------------------
# Prints the path the file mounts the token secret at, then the server's argv.
deploy_argv() {
  /usr/bin/python3 - "$1" "$2" <<'PY'
import sys, yaml
kind, path = sys.argv[1], sys.argv[2]
with open(path) as f:
    docs = [d for d in yaml.safe_load_all(f) if d]
def strings(v, what):
    if not (isinstance(v, list) and all(isinstance(x, str) for x in v)):
        sys.exit(f"{path}: {what} must be a list of strings")
    return v
if kind == "compose":
    svc = docs[0]["services"]["spinnet"]
    argv = strings(svc.get("entrypoint"), "services.spinnet.entrypoint") + \
        strings(svc.get("command"), "services.spinnet.command")
    s = svc["secrets"][0]
    target = s if isinstance(s, str) else s.get("target", s["source"])
    secret = target if target.startswith("/") else "/run/secrets/" + target
else:
    dep = next(d for d in docs if d.get("kind") == "Deployment")
    pod = dep["spec"]["template"]["spec"]
    ctr = next(c for c in pod["containers"] if c["name"] == "spinnet")
    argv = strings(ctr.get("command"), "the container's command") + \
        strings(ctr.get("args"), "the container's args")
    vol = next(v for v in pod["volumes"] if "secret" in v)
    mount = next(m for m in ctr["volumeMounts"] if m["name"] == vol["name"])
    items = vol["secret"].get("items")
    secret = mount["mountPath"].rstrip("/") + "/" + (items[0]["path"] if items else "token")
print(secret)
print("\n".join(argv))
PY
}

head -c 32 /dev/urandom | base64 | tr -d '=+/\n' >"$TMP/token"
chmod 0444 "$TMP/token"
for cfg in compose:deploy/docker-compose.yml k8s:deploy/k8s/spinnet.yaml; do
  kind=${cfg%%:*} file=${cfg#*:}
  step "$file"
  mapfile -t lines < <(deploy_argv "$kind" "$REPO/$file") || true
  ((${#lines[@]} >= 2)) || fail "could not read the server's command line from $file"
  [[ ${lines[0]} == "$SECRET" ]] || fail "$file mounts the token at ${lines[0]}, not $SECRET"
  argv=("${lines[@]:1}")
  [[ " ${argv[*]} " == *" --auth-token-file=$SECRET "* ]] ||
    fail "$file does not pass --auth-token-file=$SECRET"
  start_server "$kind" "$TMP/token" "${argv[@]}"
  wait_healthy
  out=$(cli "$CALL_TIMEOUT" models 2>&1) && fail "spinnet models succeeded without the token"
  # (buildah run adds its own lines about the exit status: the CLI's is the first.)
  [[ $out == *UNAUTHENTICATED* ]] || fail "without the token: $out (expected UNAUTHENTICATED)"
  log "without the token: $(head -n1 <<<"$out")"
  out=$(cli "$CALL_TIMEOUT" --token-file "$SECRET" models 2>&1) || fail "with the token: $out"
  log "with the token: spinnet models answers: $(head -n1 <<<"$out")"
  check_metrics
  stop_server
done

T_VERIFY=$(secs $(($(now) - t_verify0)))
RESULT=PASS
exit 0
