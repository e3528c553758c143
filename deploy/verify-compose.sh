#!/usr/bin/env bash
# Runs the topology of deploy/docker-compose.yml for real, with podman, and
# kills a replica in the middle of a training job:
#  1. builds PostgreSQL and Prometheus images from Debian's packages
#     (deploy/images/, on the local debian:bookworm base) and uses the spinnet
#     image deploy/verify-image.sh built (localhost/spinnet:latest);
#  2. on a podman network of its own, with container names resolving through
#     the CNI dnsname plugin, starts the services as the compose file
#     declares them (command lines, environment, secrets, read from the
#     file; fresh random secrets): postgres, spinnet-1 and spinnet-2 on the
#     postgres store, and prometheus with deploy/prometheus/ (its targets
#     file unchanged: spinnet-1:9464 and spinnet-2:9464; scrape interval cut
#     to 2 s). Both replicas also answer to the shared name `spinnet` (the
#     file's network alias), as pods behind a Kubernetes headless Service do;
#  3. from a client container on that network, through the image's CLI:
#     health of each replica by name; Prometheus sees both targets up; a
#     small model trained and 1024 rows classified through
#     dns:///spinnet:50051, and both replicas answered Classify calls
#     (round_robin over the addresses DNS gives);
#  4. submits a longer training job, waits until a replica runs it (the
#     job's worker names it), kills that replica's container (SIGKILL), and
#     checks that the other replica takes the job over once its lease
#     expires, resumes it from its checkpoint and finishes it: SUCCEEDED,
#     attempt >= 2, every epoch recorded once, a model version; the model
#     classifies; Prometheus sees the killed target down.
# Prints PASS or FAIL and the timings. Everything it made is removed on exit.
#
#   deploy/verify-compose.sh        (as root; after deploy/verify-image.sh)
#
# Needs podman, runc, golang-github-containernetworking-plugin-dnsname,
# buildah, debootstrap, python3-yaml (SPINNET_IMAGE_DEPS=1 bash
# deploy/install-deps.sh). The containers run with --runtime runc (crun
# refuses this kind of VM's hybrid cgroups), ulimits within the VM's hard
# limits, and --no-healthcheck (podman's health checks need systemd timers);
# no port is published: all traffic stays between these containers.
#
# Environment:
#   SPINNET_IMAGE                  the spinnet image [localhost/spinnet:latest]
#   SPINNET_COMPOSE_EPOCHS         epochs of the job that outlives its replica [40]
#   SPINNET_COMPOSE_LEASE_TTL      --lease-ttl of the replicas, seconds [6]
#   SPINNET_COMPOSE_TIMEOUT        bound on the takeover and the rest of the job [240]
#   SPINNET_COMPOSE_KEEP=1         keep the containers, network and files (debugging;
#                                  remove them with podman rm -f / podman network rm)

# The <service>_ARGV/_ENV/... arrays come from the compose file (sourced).
# shellcheck disable=SC2154
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
REPO=$PWD
IMAGE=${SPINNET_IMAGE:-localhost/spinnet:latest}
PG_IMAGE=localhost/spinnet-postgres:15
PROM_IMAGE=localhost/spinnet-prometheus:latest
EPOCHS=${SPINNET_COMPOSE_EPOCHS:-40}
LEASE_TTL=${SPINNET_COMPOSE_LEASE_TTL:-6}
TIMEOUT=${SPINNET_COMPOSE_TIMEOUT:-240}
for v in EPOCHS LEASE_TTL TIMEOUT; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || { echo "verify-compose: $v must be a positive integer" >&2; exit 2; }
done
START_TIMEOUT=60
TAG=spinnet-compose-$$
NET=$TAG
TMP=$(mktemp -d /tmp/spinnet-compose.XXXXXX)
PODMAN=(podman --runtime runc)
# Within this VM's hard limits (podman's defaults are higher: "error setting rlimit").
RUN_OPTS=(--ulimit nofile=1024:1024 --ulimit nproc=1024:1024 --no-healthcheck)
CTRS=()
NET_MADE=0
RESULT=FAIL
STEP=setup
T_IMAGES="-" T_START="-" T_TAKEOVER="-" T_FINISH="-" T_TOTAL="-"
T0=$(date +%s)

log() { printf '[compose %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
fail() { log "FAILED at '${STEP}': $*"; exit 1; }
step() { STEP=$1; log "== $1"; }
now() { date +%s; }
secs() { local s=$1; printf '%dm%02ds' $((s / 60)) $((s % 60)); }

cleanup() {
  local rc=$? c
  trap - EXIT INT TERM
  if ((rc != 0)); then
    for c in "${CTRS[@]}"; do
      [[ $c == *-client ]] && continue
      log "logs of ${c#"$TAG"-} (last 15 lines):"
      timeout 20 podman logs --tail 15 "$c" 2>&1 | sed 's/^/  | /'
    done
  fi
  if [[ ${SPINNET_COMPOSE_KEEP:-0} == 1 ]]; then
    log "SPINNET_COMPOSE_KEEP=1: kept network $NET, containers ${CTRS[*]} and $TMP"
  else
    for c in "${CTRS[@]}"; do
      timeout 60 "${PODMAN[@]}" rm -f -v -t 0 "$c" >/dev/null 2>&1
    done
    ((NET_MADE)) && timeout 60 podman network rm -f "$NET" >/dev/null 2>&1
    rm -rf "$TMP"
  fi
  [[ $rc == 0 && $RESULT == PASS ]] || RESULT=FAIL
  T_TOTAL=$(secs $(($(now) - T0)))
  echo
  echo "================================================================"
  echo " spinnet compose topology (podman): ${RESULT}"
  echo "   images (postgres, prometheus)  ${T_IMAGES}"
  echo "   topology up                    ${T_START}"
  echo "   kill -> other replica runs it  ${T_TAKEOVER} (--lease-ttl ${LEASE_TTL}s)"
  echo "   kill -> job SUCCEEDED          ${T_FINISH}"
  echo "   total                          ${T_TOTAL}"
  [[ $RESULT == PASS ]] || echo "   failed at                      ${STEP}"
  echo "================================================================"
  [[ $RESULT == PASS ]] && exit 0 || exit 1
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# --- preflight ------------------------------------------------------------------------------
step "preflight"
[[ $(id -u) -eq 0 ]] || fail "needs root (podman and buildah with chroot isolation)"
for tool in podman buildah runc /usr/bin/python3; do
  command -v "$tool" >/dev/null ||
    fail "$tool not found: SPINNET_IMAGE_DEPS=1 bash deploy/install-deps.sh"
done
[[ -x /usr/lib/cni/dnsname ]] ||
  fail "no CNI dnsname plugin (container names would not resolve): apt-get install -y golang-github-containernetworking-plugin-dnsname"
/usr/bin/python3 -c 'import yaml' 2>/dev/null || fail "python3-yaml missing"
podman image exists "$IMAGE" || fail "no image $IMAGE: run deploy/verify-image.sh first"
log "$(podman --version), runc $(runc --version | awk 'NR==1 {print $3}'), image $IMAGE"

# --- images ---------------------------------------------------------------------------------
step "images"
t0=$(now)
timeout 1800 bash "$REPO/deploy/make-base-image.sh" || fail "deploy/make-base-image.sh failed"
for spec in "$PG_IMAGE:postgres" "$PROM_IMAGE:prometheus"; do
  img=${spec%:*} dir=${spec##*:}
  # --layers: a rerun is all cache hits; --pull=never: the base is local.
  timeout 1200 buildah bud --isolation chroot --layers --pull=never --quiet \
    -t "$img" "$REPO/deploy/images/$dir" >"$TMP/build-$dir.log" 2>&1 ||
    { tail -n 20 "$TMP/build-$dir.log"; fail "building $img from deploy/images/$dir"; }
done
T_IMAGES=$(secs $(($(now) - t0)))
log "built $PG_IMAGE and $PROM_IMAGE in $T_IMAGES"

# --- the compose file -----------------------------------------------------------------------
# The services' settings as bash arrays (deploy/docker-compose.yml, merge keys
# resolved): <svc>_ARGV (entrypoint + command), <svc>_ENV (-e K=V),
# <svc>_SECRETS (secret:path in the container), <svc>_ALIASES (network
# aliases), <svc>_HEALTH (the health check's command), and SECRET_NAMES.
step "compose file"
/usr/bin/python3 - "$REPO/deploy/docker-compose.yml" >"$TMP/compose.sh" 2>"$TMP/compose.err" <<'PY' ||
import re, shlex, sys, yaml
path = sys.argv[1]
with open(path) as f:
    doc = yaml.safe_load(f)
services = doc["services"]
want = ["postgres", "spinnet-1", "spinnet-2", "prometheus"]
for name in want:
    if name not in services:
        sys.exit(f"{path}: no service {name}")
def arr(name, values):
    print(f"{name}=({' '.join(shlex.quote(v) for v in values)})")
def listify(v):
    if v is None:
        return []
    return shlex.split(v) if isinstance(v, str) else [str(x) for x in v]
for name in want:
    s = services[name]
    var = re.sub(r"\W", "_", name)
    arr(f"{var}_ARGV", listify(s.get("entrypoint")) + listify(s.get("command")))
    env = s.get("environment") or {}
    if isinstance(env, list):
        env = dict(e.split("=", 1) for e in env)
    arr(f"{var}_ENV", [f"{k}={v}" for k, v in env.items()])
    secrets = []
    for x in s.get("secrets") or []:
        src = x if isinstance(x, str) else x["source"]
        target = x if isinstance(x, str) else x.get("target", src)
        secrets.append(f"{src}:{target if target.startswith('/') else '/run/secrets/' + target}")
    arr(f"{var}_SECRETS", secrets)
    nets = s.get("networks") or {}
    arr(f"{var}_ALIASES", [a for n in (nets.values() if isinstance(nets, dict) else [])
                           for a in ((n or {}).get("aliases") or [])])
    # The health check's command (CMD ... or CMD-SHELL "...").
    test = listify((s.get("healthcheck") or {}).get("test"))
    if test[:1] == ["CMD-SHELL"]:
        test = ["sh", "-c", " ".join(test[1:])]
    elif test[:1] == ["CMD"]:
        test = test[1:]
    arr(f"{var}_HEALTH", test if test != ["NONE"] else [])
arr("SECRET_NAMES", list(doc.get("secrets") or {}))
# The Prometheus configuration directory the file mounts at /etc/prometheus.
for v in services["prometheus"].get("volumes") or []:
    src, _, rest = v.partition(":")
    if rest.split(":")[0] == "/etc/prometheus":
        print(f"PROM_CONFIG_DIR={shlex.quote(src)}")
PY
  fail "reading deploy/docker-compose.yml: $(cat "$TMP/compose.err")"
# shellcheck disable=SC1091
source "$TMP/compose.sh"
[[ -n ${PROM_CONFIG_DIR:-} ]] || fail "the prometheus service mounts no /etc/prometheus"
log "spinnet-1: ${spinnet_1_ARGV[*]}"

# Fresh random secrets, world-readable: the services run as non-root users.
for name in "${SECRET_NAMES[@]}"; do
  head -c 32 /dev/urandom | base64 | tr -d '=+/\n' >"$TMP/secret-$name"
  chmod 0444 "$TMP/secret-$name"
done
# secret_mounts SECRETS...: -v options for "name:path" pairs.
secret_mounts() {
  local s
  for s in "$@"; do printf '%s\n' -v "$TMP/secret-${s%%:*}:${s#*:}:ro"; done
}
# deploy/prometheus as it is, but scraping every 2 s instead of 15 s.
cp -r "$REPO/deploy/${PROM_CONFIG_DIR#./}" "$TMP/prometheus"
sed -i -E 's/^(\s*(scrape|evaluation)_interval:\s*)\S+/\12s/' "$TMP/prometheus/prometheus.yml"
chmod -R a+rX "$TMP/prometheus"
log "prometheus targets: $(tr -d ' \n' <"$TMP/prometheus/targets/spinnet.json")"

# 1024 digits rows in the CLI's format: label, then the 64 pixels / 16.
zcat "$REPO/core/data/digits.csv.gz" | head -n 1024 |
  awk -F, '{printf "%s", $65; for (i = 1; i <= 64; i++) printf ",%s", $i / 16; print ""}' \
  >"$TMP/rows.csv"
chmod 0444 "$TMP/rows.csv"

# --- the topology -----------------------------------------------------------------------------
step "network"
t_up=$(now)
podman network create "$NET" >/dev/null || fail "podman network create $NET"
NET_MADE=1
# run SERVICE ALIASES IMAGE [podman run options...] -- ARGV...
run() {
  local svc=$1 aliases=$2 image=$3 a opts=()
  shift 3
  while (($#)) && [[ $1 != -- ]]; do opts+=("$1"); shift; done
  shift
  for a in $aliases; do opts+=(--network-alias "$a"); done
  CTRS+=("$TAG-$svc")
  timeout 120 "${PODMAN[@]}" run -d --name "$TAG-$svc" --hostname "$svc" --network "$NET" \
    "${RUN_OPTS[@]}" "${opts[@]}" --entrypoint "$1" "$image" "${@:2}" >/dev/null ||
    fail "podman run $svc"
}
# wait_log SERVICE TEXT: until the container's output shows TEXT.
wait_log() {
  local deadline=$(($(now) + START_TIMEOUT))
  until timeout 20 podman logs "$TAG-$1" 2>&1 | grep -q "$2"; do
    [[ $(podman inspect -f '{{.State.Running}}' "$TAG-$1" 2>/dev/null) == true ]] ||
      fail "$1 exited: $(podman logs --tail 5 "$TAG-$1" 2>&1)"
    (($(now) < deadline)) || fail "$1 did not show '$2' in ${START_TIMEOUT}s"
    sleep 0.5
  done
}

step "postgres"
mapfile -t m < <(secret_mounts "${postgres_SECRETS[@]}")
envs=()
for e in "${postgres_ENV[@]}"; do envs+=(-e "$e"); done
# The image's entrypoint with the compose command (none: the image's CMD).
run postgres "postgres" "$PG_IMAGE" "${m[@]}" "${envs[@]}" -- \
  spinnet-postgres-entrypoint "${postgres_ARGV[@]:-postgres}"
# The compose file's health check (depends_on: service_healthy), run in the
# container as the engine would.
((${#postgres_HEALTH[@]})) || fail "the postgres service has no healthcheck"
deadline=$(($(now) + START_TIMEOUT))
until out=$(timeout 10 podman exec "$TAG-postgres" "${postgres_HEALTH[@]}" 2>&1); do
  (($(now) < deadline)) || fail "postgres not healthy in ${START_TIMEOUT}s: ${postgres_HEALTH[*]}: $out"
  sleep 0.5
done
log "postgres healthy: ${postgres_HEALTH[*]}: $out"

for svc in spinnet-1 spinnet-2; do
  step "$svc"
  var=${svc//-/_}
  argv_var="${var}_ARGV[@]" secrets_var="${var}_SECRETS[@]" aliases_var="${var}_ALIASES[@]"
  mapfile -t m < <(secret_mounts "${!secrets_var}")
  aliases="$svc ${!aliases_var}"
  [[ " $aliases " == *" spinnet "* ]] || fail "$svc lacks the network alias spinnet"
  # The compose command line, plus short leases so that the test is quick.
  run "$svc" "$aliases" "$IMAGE" "${m[@]}" -- "${!argv_var}" \
    --lease-ttl="$LEASE_TTL" --heartbeat-interval=1
  wait_log "$svc" "listening on"
  log "$(podman logs "$TAG-$svc" 2>&1 | grep -m1 'listening on')"
done

step "prometheus"
# (The compose file gives flags only: the image's entrypoint is prometheus.)
run prometheus "prometheus" "$PROM_IMAGE" -v "$TMP/prometheus:/etc/prometheus:ro" -- \
  /usr/bin/prometheus "${prometheus_ARGV[@]}"
wait_log prometheus "Server is ready to receive web requests"

# The client: the spinnet image's CLI, the token where compose mounts it.
step "client"
mapfile -t m < <(secret_mounts "${spinnet_1_SECRETS[@]}")
run client "" "$IMAGE" "${m[@]}" -v "$TMP/rows.csv:/tmp/rows.csv:ro" -- sleep infinity
TOKEN_FILE=$(printf '%s\n' "${spinnet_1_ARGV[@]}" | sed -n 's/^--auth-token-file=//p')
[[ -n $TOKEN_FILE ]] || fail "spinnet-1 has no --auth-token-file"
# cli TIMEOUT TARGET ARGS...
cli() {
  timeout "$1" podman exec "$TAG-client" spinnet --server "$2" --token-file "$TOKEN_FILE" "${@:3}"
}
# prom_query EXPR: Prometheus's answer (JSON), asked from inside its container.
prom_query() {
  timeout 20 podman exec "$TAG-prometheus" curl -fsS --max-time 10 \
    --data-urlencode "query=$1" http://127.0.0.1:9090/api/v1/query
}
# prom_values EXPR LABEL: "LABEL's value, the value" per series of EXPR.
prom_values() {
  prom_query "$1" | /usr/bin/python3 -c '
import json, sys
for s in json.load(sys.stdin)["data"]["result"]:
    print(s["metric"].get(sys.argv[1], ""), s["value"][1])' "$2"
}
T_START=$(secs $(($(now) - t_up)))

# --- checks -------------------------------------------------------------------------------------
step "health by service name"
for svc in spinnet-1 spinnet-2; do
  deadline=$(($(now) + START_TIMEOUT))
  until out=$(cli 30 "dns:///$svc:50051" --timeout 3 health 2>&1) && [[ $out == SERVING ]]; do
    (($(now) < deadline)) || fail "dns:///$svc:50051 health: $out"
    sleep 1
  done
  log "dns:///$svc:50051: $out"
done

step "prometheus sees both replicas"
deadline=$(($(now) + START_TIMEOUT))
until up=$(prom_values 'up{job="spinnet"}' instance 2>/dev/null) &&
    [[ $(grep -c ' 1$' <<<"$up") == 2 ]]; do
  (($(now) < deadline)) || fail "up{job=\"spinnet\"} is not 1 for both targets: $(tr '\n' ' ' <<<"$up")"
  sleep 1
done
log "up: $(tr '\n' ' ' <<<"$up")"

step "round_robin over both replicas (dns:///spinnet:50051)"
out=$(cli 300 dns:///spinnet:50051 train --dataset digits --model m0 --epochs 1 --neurons 8 --watch 2>&1) ||
  fail "training m0: $(tail -n 3 <<<"$out")"
grep -q "succeeded: model m0 version" <<<"$out" || fail "training m0: $(tail -n 3 <<<"$out")"
out=$(cli 120 dns:///spinnet:50051 classify --model m0 /tmp/rows.csv 2>&1) || fail "classify: $(tail -n 3 <<<"$out")"
rows=$(grep -c '^row [0-9]*:' <<<"$out")
[[ $rows == 1024 ]] || fail "classify answered $rows rows, not 1024"
spread=""
for svc in spinnet-1 spinnet-2; do
  n=$(timeout 20 podman exec "$TAG-prometheus" curl -fsS --max-time 10 "http://$svc:9464/metrics" |
    awk '/^spinnet_grpc_requests_total\{/ && /InferenceService\/Classify"/ && /code="OK"/ {n += $2}
         END {print n + 0}')
  spread+="$svc $n; "
  [[ $n -ge 1 ]] || fail "$svc answered no Classify call (${spread}): round_robin did not spread"
done
log "Classify calls (1024 rows, 256 per call): ${spread}$(grep '^accuracy' <<<"$out")"

step "a job outlives its replica"
out=$(cli 30 dns:///spinnet:50051 --json train --dataset digits --model m --epochs "$EPOCHS") ||
  fail "submitting the job: $out"
JOB=$(/usr/bin/python3 -c 'import json, sys; print(json.loads(sys.argv[1])["id"])' "$out" 2>/dev/null) ||
  fail "no job id in: $out"
log "job $JOB: $EPOCHS epochs"
# job_fields TARGET FIELD...: the job's fields, one per line, asked of TARGET.
job_fields() {
  local target=$1 out
  shift
  out=$(cli 20 "$target" --json job "$JOB" 2>&1) || return 1
  /usr/bin/python3 -c '
import json, sys
j = json.loads(sys.argv[1])
for f in sys.argv[2:]:   # proto names, or their lowerCamelCase JSON names
    camel = f.split("_")[0] + "".join(w.title() for w in f.split("_")[1:])
    print(j.get(f, j.get(camel, "")))' "$out" "$@"
}
deadline=$(($(now) + TIMEOUT))
while :; do
  mapfile -t f < <(job_fields dns:///spinnet:50051 state worker epochs_done attempt)
  [[ ${f[0]:-} == JOB_STATE_RUNNING && -n ${f[1]:-} ]] && break
  [[ ${f[0]:-} == JOB_STATE_QUEUED || ${f[0]:-} == "" ]] ||
    fail "job $JOB is ${f[0]} before it could be interrupted"
  (($(now) < deadline)) || fail "job $JOB did not start in ${TIMEOUT}s"
  sleep 0.3
done
victim=${f[1]}
case $victim in
  spinnet-1) survivor=spinnet-2 ;;
  spinnet-2) survivor=spinnet-1 ;;
  *) fail "job $JOB runs on worker '$victim', neither spinnet-1 nor spinnet-2" ;;
esac
log "running on $victim (epoch ${f[2]}/$EPOCHS, attempt ${f[3]})"
# The replica's own gauge (updated on its heartbeat, so within a few seconds).
deadline=$(($(now) + 15))
until active=$(timeout 20 podman exec "$TAG-prometheus" curl -fsS --max-time 10 \
    "http://$victim:9464/metrics" | awk '/^spinnet_training_jobs_active / {print $2}') &&
    [[ $active == 1 ]]; do
  (($(now) < deadline)) || fail "$victim reports spinnet_training_jobs_active ${active:-?}, not 1"
  sleep 0.5
done

step "kill $victim"
t_kill=$(now)
timeout 60 "${PODMAN[@]}" kill --signal KILL "$TAG-$victim" >/dev/null || fail "podman kill $victim"
mapfile -t f < <(job_fields "dns:///$survivor:50051" epochs_done)
log "killed $victim at epoch ${f[0]}/$EPOCHS"
((f[0] < EPOCHS)) || fail "the job had finished before the kill: raise SPINNET_COMPOSE_EPOCHS"

step "$survivor takes the job over"
deadline=$(($(now) + TIMEOUT))
took=0
while :; do
  mapfile -t f < <(job_fields "dns:///$survivor:50051" state worker epochs_done attempt restarts model_version)
  if ((!took)) && [[ ${f[1]:-} == "$survivor" ]]; then
    took=1
    T_TAKEOVER=$(secs $(($(now) - t_kill)))
    log "running on $survivor after $T_TAKEOVER: epoch ${f[2]}/$EPOCHS, attempt ${f[3]}"
  fi
  case ${f[0]:-} in
    JOB_STATE_SUCCEEDED) break ;;
    JOB_STATE_FAILED | JOB_STATE_CANCELLED) fail "job $JOB ended ${f[0]}" ;;
  esac
  (($(now) < deadline)) || fail "job $JOB not done ${TIMEOUT}s after the kill (state ${f[0]:-?}, worker ${f[1]:-none})"
  sleep 0.5
done
T_FINISH=$(secs $(($(now) - t_kill)))
log "SUCCEEDED ${T_FINISH} after the kill: attempt ${f[3]}, restarts ${f[4]}, model m version ${f[5]}"
((f[3] >= 2 || f[4] >= 1)) || fail "attempt ${f[3]}, restarts ${f[4]}: the job was not taken over"
[[ ${f[5]} == 1 ]] || fail "model version ${f[5]}, expected 1"
# Every epoch recorded exactly once, across both attempts.
out=$(cli 30 "dns:///$survivor:50051" --json metrics "$JOB" 2>&1) || fail "spinnet metrics: $out"
epochs=$(/usr/bin/python3 -c '
import json, sys
text = sys.argv[1].strip()
try:
    docs = [json.loads(text)]
except ValueError:
    docs = [json.loads(l) for l in text.splitlines() if l.strip()]
eps = []
for d in docs:
    rows = d.get("epochs", [d]) if isinstance(d, dict) else d
    eps += [int(r["epoch"]) for r in rows if "epoch" in r]
print(" ".join(map(str, sorted(eps))))' "$out") || fail "reading spinnet --json metrics: $out"
[[ $epochs == "$(seq -s ' ' 1 "$EPOCHS")" ]] || fail "epochs recorded: $epochs"
log "epochs 1..$EPOCHS each recorded once"
out=$(cli 60 "dns:///$survivor:50051" classify --model m /tmp/rows.csv 2>&1) || fail "classify with m: $out"
log "model m on $survivor: $(grep '^accuracy' <<<"$out")"

step "prometheus sees $victim down"
deadline=$(($(now) + START_TIMEOUT))
until up=$(prom_values 'up{job="spinnet"}' instance 2>/dev/null) &&
    grep -q "^$victim:9464 0$" <<<"$up" && grep -q "^$survivor:9464 1$" <<<"$up"; do
  (($(now) < deadline)) || fail "up is not 0 for $victim and 1 for $survivor: $(tr '\n' ' ' <<<"$up")"
  sleep 1
done
log "up: $(tr '\n' ' ' <<<"$up")"

RESULT=PASS
exit 0
