#!/usr/bin/env bash
# Builds the spinnet image from the repo's Dockerfile and proves it works:
#  1. the server from the image, run with the image's own command on
#     loopback, answers health, trains a small model on the built-in digits
#     and classifies digits rows with it, through the image's own `spinnet`
#     CLI; it serves /metrics, runs as uid 10001, stops cleanly on SIGTERM
#     and leaves its store in the data volume;
#  2. the server run with the command lines of deploy/docker-compose.yml
#     (service spinnet-1) and deploy/k8s/spinnet.yaml, on PostgreSQL: a
#     throw-away cluster on host loopback (tests/pg_cluster.py; their --store
#     URL's host:port moved there), the auth token and the database password
#     mounted where those files mount their secrets. Health answers without
#     the token, other RPCs need it; the compose command line trains a model
#     and classifies with it; the k8s one, a new process and container,
#     finds that model in the database and classifies with it, and its
#     health turns NOT_SERVING while the database is stopped and SERVING
#     again once it is back.
# Prints PASS or FAIL and the timings.
#
#   deploy/verify-image.sh
#
# Engine: Docker when a Docker engine answers (`docker info`), otherwise
# buildah (chroot isolation, host network; the base image debian:bookworm is
# made locally by deploy/make-base-image.sh when it is missing). Needs curl,
# /usr/bin/python3 with python3-yaml to read deploy/'s files, and
# PostgreSQL's server binaries (package postgresql) for tests/pg_cluster.py.
# The servers listen on host loopback only (docker: --network host).
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
SERVER_MOUNTS=()     # host file:container path, read-only, for the next server
AUTH=()              # global CLI flags for the token (--token-file PATH)
PG_DIR="" PG_STOP_CMD="" PG_START_CMD=""   # the throw-away PostgreSQL
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
  if [[ -n $PG_DIR ]]; then
    bash -c "$PG_STOP_CMD" >/dev/null 2>&1
    rm -rf "$PG_DIR"
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

# start_server LABEL ARGV...: a new container of the image running ARGV
# (spinnet-server and its flags) as the image's user, with SERVER_MOUNTS
# (host file:container path) mounted read-only. The server listens on host
# loopback, on ports the kernel picks: buildah's chroot isolation has no
# network namespace of its own, and docker runs it with --network host (so
# that it reaches the host's throw-away PostgreSQL on 127.0.0.1 too). Sets
# ADDR (for the CLI), METRICS (host address of /metrics) and checks that the
# server runs as uid 10001.
start_server() {
  local label=$1 line uid deadline argv m
  shift
  mapfile -t argv < <(loopback_argv "$@")
  : >"$TMP/server.log"
  if [[ $ENGINE == buildah ]]; then
    local mount=()
    for m in "${SERVER_MOUNTS[@]}"; do mount+=(--mount "type=bind,src=${m%%:*},dst=${m#*:},ro"); done
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
    # Which user runs it: the spinnet-server process in our process group.
    spid=$(pgrep -g "$SERVER_PID" -x spinnet-server | head -n1)
    [[ -n $spid ]] || fail "no spinnet-server process under the buildah run"
    uid=$(awk '/^Uid:/ {print $2}' "/proc/$spid/status")
  else
    local vol=()
    for m in "${SERVER_MOUNTS[@]}"; do vol+=(-v "$m:ro"); done
    SERVER_CTR=$TAG-$label
    CTRS+=("$SERVER_CTR")
    log "docker run ... ${argv[*]}"
    timeout 120 docker run -d --name "$SERVER_CTR" --network host \
      "${vol[@]}" --entrypoint "${argv[0]}" "$IMAGE" "${argv[@]:1}" >/dev/null || fail "docker run"
    deadline=$(($(now) + START_TIMEOUT))
    until docker logs "$SERVER_CTR" 2>&1 | grep -q "listening on"; do
      [[ $(docker inspect -f '{{.State.Running}}' "$SERVER_CTR") == true ]] ||
        fail "the server exited: $(docker logs "$SERVER_CTR" 2>&1 | tail -n 5)"
      (($(now) < deadline)) || fail "the server did not start in ${START_TIMEOUT}s"
      sleep 0.5
    done
    line=$(docker logs "$SERVER_CTR" 2>&1 | grep -m1 'listening on')
    uid=$(docker exec "$SERVER_CTR" sh -c 'awk "/^Uid:/ {print \$2}" /proc/1/status')
  fi
  ADDR=$(sed -E 's/.*listening on ([^,]+),.*/\1/' <<<"$line")
  METRICS=$(sed -nE 's#.*metrics on http://([^/]+)/metrics.*#\1#p' <<<"$line")
  log "$line"
  log "spinnet-server runs as uid $uid"
  [[ $uid == 10001 ]] || fail "the server runs as uid $uid, not spinnet (10001)"
}

# cli TIMEOUT ARGS...: the image's spinnet CLI against the running server.
cli() {
  if [[ $ENGINE == buildah ]]; then
    timeout "$1" buildah run --isolation chroot --network host --user spinnet:spinnet \
      "${CLI_MOUNT[@]}" "$CLIENT_CTR" -- spinnet --server "$ADDR" "${AUTH[@]}" "${@:2}"
  else
    timeout "$1" docker exec "$SERVER_CTR" spinnet --server "$ADDR" "${AUTH[@]}" "${@:2}"
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

# train_model MODEL: a small training job through the CLI, followed to its end.
train_model() {
  local t0 rc out
  t0=$(now)
  cli "$TRAIN_TIMEOUT" train --dataset digits --model "$1" --epochs 1 --neurons 8 --watch \
    >"$TMP/train.out" 2>&1
  rc=$?
  sed 's/\x1b\[K//g; s/\r/\n/g' "$TMP/train.out" | grep -v '^$' | tail -n 8 | sed 's/^/  | /'
  ((rc == 0)) || fail "spinnet train exited $rc (124 = timed out after ${TRAIN_TIMEOUT}s)"
  grep -q "succeeded: model $1 version" "$TMP/train.out" || fail "training did not succeed"
  log "training took $(secs $(($(now) - t0)))"
  check_model_listed "$1"
}

check_model_listed() {
  local out
  out=$(cli "$CALL_TIMEOUT" models 2>&1) || fail "spinnet models: $out"
  printf '%s\n' "$out" | sed 's/^/  | /'
  grep -qE "^$1[[:space:]]" <<<"$out" || fail "model $1 is not listed"
}

# classify_rows MODEL: the 20 digits rows of few.csv, classified with MODEL.
classify_rows() {
  local out rows
  if [[ $ENGINE == docker ]]; then   # (buildah: copied into the CLI's container above)
    timeout 60 docker cp "$TMP/few.csv" "$SERVER_CTR:/tmp/few.csv" || fail "docker cp few.csv"
  fi
  out=$(cli "$CALL_TIMEOUT" classify --model "$1" /tmp/few.csv 2>&1) || fail "spinnet classify: $out"
  printf '%s\n' "$out" | awk '{ l[NR] = $0 } END { for (i = 1; i <= NR; i++)
    if (i <= 3 || i > NR - 2) print "  | " l[i]; else if (i == 4) print "  | ..." }'
  rows=$(grep -c '^row [0-9]*:' <<<"$out")
  [[ $rows == 20 ]] || fail "classify answered $rows rows, not 20"
  grep -q '^accuracy:' <<<"$out" || fail "classify printed no accuracy"
}

# --- 1. the image's own command: health, training, classification, metrics -------------------------
step "image command"
# Go's formatting of the image config: [spinnet-server] and [--listen ... ].
read -r -a image_argv <<<"${cfg_entry//[\[\]]/} ${cfg_cmd//[\[\]]/}"
SERVER_MOUNTS=() CLI_MOUNT=() AUTH=()
start_server image "${image_argv[@]}"
wait_healthy

step "training"
train_model m

step "classification"
classify_rows m

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

# --- 2. deploy/'s command lines on PostgreSQL, secrets where they mount them -----------------------
# deploy_argv KIND FILE: the server's argv in FILE, one per line, after
# checking that the auth token and the database password reach the paths
# its --auth-token-file and --store-password-file name through the file's
# secrets, that --store names the file's own database service, and (k8s)
# with $(VAR) references to the container's env replaced by sample values.
deploy_argv() {
  /usr/bin/python3 - "$1" "$2" <<'PY'
import os, re, sys, yaml
kind, path = sys.argv[1], sys.argv[2]
def load(p):
    with open(p) as f:
        return [d for d in yaml.safe_load_all(f) if d]
docs = load(path)
def strings(v, what):
    if not (isinstance(v, list) and all(isinstance(x, str) for x in v)):
        sys.exit(f"{path}: {what} must be a list of strings")
    return v
def flag(argv, name):
    for a in argv:
        if a.startswith(f"--{name}="):
            return a.split("=", 1)[1]
        if a == f"--{name}":
            sys.exit(f"{path}: write --{name}=VALUE (one argument)")
    sys.exit(f"{path}: the server's command line has no --{name}")
if kind == "compose":
    services = docs[0]["services"]
    svc = services["spinnet-1"]
    argv = strings(svc.get("entrypoint"), "services.spinnet-1.entrypoint") + \
        strings(svc.get("command"), "services.spinnet-1.command")
    def secret_files(s):
        out = {}
        for x in s.get("secrets", []):
            src = x if isinstance(x, str) else x["source"]
            target = x if isinstance(x, str) else x.get("target", src)
            out[target if target.startswith("/") else "/run/secrets/" + target] = src
        return out
    files = secret_files(svc)
    token, pw = flag(argv, "auth-token-file"), flag(argv, "store-password-file")
    for p, what in ((token, "--auth-token-file"), (pw, "--store-password-file")):
        if p not in files:
            sys.exit(f"{path}: {what}={p} is not a secret of spinnet-1 ({sorted(files)})")
    db = services.get("postgres") or sys.exit(f"{path}: no postgres service")
    db_pw = db.get("environment", {}).get("POSTGRES_PASSWORD_FILE")
    if secret_files(db).get(db_pw) != files[pw]:
        sys.exit(f"{path}: postgres's POSTGRES_PASSWORD_FILE is not the secret "
                 f"{files[pw]} that spinnet-1 reads")
    hosts = set(services)
else:
    dep = next(d for d in docs if d.get("kind") == "Deployment")
    pod = dep["spec"]["template"]["spec"]
    ctr = next(c for c in pod["containers"] if c["name"] == "spinnet")
    argv = strings(ctr.get("command"), "the container's command") + \
        strings(ctr.get("args"), "the container's args")
    env = {e["name"]: e.get("value", f"verify-{e['name'].lower().replace('_', '-')}")
           for e in ctr.get("env", [])}
    argv = [re.sub(r"\$\((\w+)\)", lambda m: env.get(m.group(1), m.group(0)), a)
            for a in argv]
    volumes = {v["name"]: v for v in pod["volumes"]}
    files = {}   # path in the container -> secret name
    for m in ctr["volumeMounts"]:
        v = volumes[m["name"]]
        sources = [{"secret": {"name": v["secret"]["secretName"],
                               "items": v["secret"].get("items")}}] if "secret" in v \
            else v.get("projected", {}).get("sources", [])
        for src in sources:
            sec = src.get("secret")
            if not sec:
                continue
            for it in sec.get("items") or []:
                files[m["mountPath"].rstrip("/") + "/" + it["path"]] = sec["name"]
    token, pw = flag(argv, "auth-token-file"), flag(argv, "store-password-file")
    for p, what in ((token, "--auth-token-file"), (pw, "--store-password-file")):
        if p not in files:
            sys.exit(f"{path}: {what}={p} is not a mounted secret item ({sorted(files)})")
    pg = load(os.path.join(os.path.dirname(path), "postgres.yaml"))
    sts = next(d for d in pg if d.get("kind") == "StatefulSet")
    pg_ctr = sts["spec"]["template"]["spec"]
    pg_secrets = {v["secret"]["secretName"] for v in pg_ctr["volumes"] if "secret" in v}
    if files[pw] not in pg_secrets:
        sys.exit(f"{path}: the password comes from secret {files[pw]}, "
                 f"postgres.yaml's database from {sorted(pg_secrets)}")
    hosts = {d["metadata"]["name"] for d in pg if d.get("kind") == "Service"}
store = flag(argv, "store")
m = re.fullmatch(r"postgres(?:ql)?://([^@/:]+)@([^/:]+)(?::(\d+))?/(\w+)(\?.*)?", store)
if not m:
    sys.exit(f"{path}: --store={store} is not postgresql://USER@HOST:PORT/DB")
if m.group(2) not in hosts:
    sys.exit(f"{path}: --store names host {m.group(2)}, not one of {sorted(hosts)}")
print("\n".join(argv))
PY
}

step "throw-away PostgreSQL"
mapfile -t pg < <(/usr/bin/python3 - "$REPO/tests" 2>"$TMP/pg.err" <<'PY'
import sys
sys.path.insert(0, sys.argv[1])
from pg_cluster import PgCluster
pg = PgCluster()
try:
    pg.start()
    # The database name deploy/'s store URLs use; the user is pg_cluster's.
    pg.create_database("spinnet")
except BaseException:
    pg.cleanup()
    raise
print(pg.dir, pg.port, pg.password, sep="\n")
print(pg.ctl_command("stop", "immediate"))
print(pg.ctl_command("start"))
PY
)
((${#pg[@]} == 5)) ||
  fail "tests/pg_cluster.py could not start PostgreSQL (apt-get install -y postgresql): $(tail -n 5 "$TMP/pg.err")"
PG_DIR=${pg[0]} PG_PORT=${pg[1]} PG_STOP_CMD=${pg[3]} PG_START_CMD=${pg[4]}
printf '%s\n' "${pg[2]}" >"$TMP/pg_password"
chmod 0444 "$TMP/pg_password"
log "PostgreSQL on 127.0.0.1:$PG_PORT (user spinnet, database spinnet) in $PG_DIR"

head -c 32 /dev/urandom | base64 | tr -d '=+/\n' >"$TMP/token"
chmod 0444 "$TMP/token"
for cfg in compose:deploy/docker-compose.yml k8s:deploy/k8s/spinnet.yaml; do
  kind=${cfg%%:*} file=${cfg#*:}
  step "$file"
  deploy_argv "$kind" "$REPO/$file" >"$TMP/argv" 2>"$TMP/argv.err" ||
    fail "could not read the server's command line from $file: $(cat "$TMP/argv.err")"
  mapfile -t argv <"$TMP/argv"
  SERVER_MOUNTS=() token_path=""
  for i in "${!argv[@]}"; do
    case ${argv[$i]} in
      --auth-token-file=*) token_path=${argv[$i]#*=}; SERVER_MOUNTS+=("$TMP/token:$token_path") ;;
      --store-password-file=*) SERVER_MOUNTS+=("$TMP/pg_password:${argv[$i]#*=}") ;;
      # The store's host:port becomes the throw-away cluster's.
      --store=*) argv[$i]=$(sed -E "s#^(--store=postgres(ql)?://[^@/]+@)[^/]+/#\\1127.0.0.1:$PG_PORT/#" <<<"${argv[$i]}") ;;
    esac
  done
  [[ $token_path == "$SECRET" ]] || fail "$file mounts the token at $token_path, not $SECRET"
  AUTH=() CLI_MOUNT=()
  start_server "$kind" "${argv[@]}"
  wait_healthy
  out=$(cli "$CALL_TIMEOUT" models 2>&1) && fail "spinnet models succeeded without the token"
  # (buildah run adds its own lines about the exit status: the CLI's is the first.)
  [[ $out == *UNAUTHENTICATED* ]] || fail "without the token: $out (expected UNAUTHENTICATED)"
  log "without the token: $(head -n1 <<<"$out")"
  AUTH=(--token-file "$SECRET")
  [[ $ENGINE == buildah ]] && CLI_MOUNT=(--mount "type=bind,src=$TMP/token,dst=$SECRET,ro")
  if [[ $kind == compose ]]; then
    step "$file: training on PostgreSQL"
    train_model m
    step "$file: classification"
    classify_rows m
    check_metrics 'spinnet_classifications_total{model="m"} 20'
  else
    # A new server in a new container: the model comes from the database.
    step "$file: the model from the database"
    check_model_listed m
    classify_rows m
    check_metrics 'spinnet_classifications_total{model="m"} 20'

    step "$file: health while the database is down"
    t0=$(now)
    bash -c "$PG_STOP_CMD" >/dev/null 2>&1 || fail "stopping PostgreSQL: $PG_STOP_CMD"
    deadline=$(($(now) + START_TIMEOUT))
    until out=$(cli "$CALL_TIMEOUT" --timeout 3 health 2>&1); [[ $out == *"not serving"* ]]; do
      (($(now) < deadline)) || fail "health did not turn NOT_SERVING in ${START_TIMEOUT}s: $out"
      sleep 0.5
    done
    log "database stopped: health answers '$(head -n1 <<<"$out")' after $(($(now) - t0)) s"
    t0=$(now)
    bash -c "$PG_START_CMD" >/dev/null 2>&1 || fail "starting PostgreSQL again: $PG_START_CMD"
    wait_healthy
    log "database back: SERVING after $(($(now) - t0)) s"
    check_model_listed m
  fi
  stop_server
done

T_VERIFY=$(secs $(($(now) - t_verify0)))
RESULT=PASS
exit 0
