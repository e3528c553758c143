#!/usr/bin/env bash
# `make fuzz`: builds the libFuzzer targets with clang, ASan and UBSan in
# their own build directory, then runs each for FUZZ_SECONDS on its seed
# corpus and kept regressions, FUZZ_JOBS targets at a time, and prints the
# executions per target. A crash, leak, timeout, sanitizer report or
# over-limit allocation fails the run; its input is left in
# $FUZZ_BUILD/artifacts/<target>/ (fix it, then keep the input in
# tests/fuzz/regressions/<target>/). New inputs the fuzzer finds go to
# $FUZZ_BUILD/found/<target>/, not into the repository.
#
#   FUZZ_SECONDS=60 FUZZ_JOBS=2 FUZZ_BUILD=build-fuzz tests/fuzz/run_fuzz.sh [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/../.."
SECONDS_EACH=${FUZZ_SECONDS:-60}
JOBS=${FUZZ_JOBS:-$(nproc)}
BUILD=${FUZZ_BUILD:-build-fuzz}
SRC=tests/fuzz

# -max_len per target: a few times its largest seed, so the fuzzer can
# grow inputs without spending its time on huge ones.
declare -A MAX_LEN=(
  [csv]=4096 [model_file]=8192 [checkpoint]=16384 [upload_dataset]=8192
  [import_model]=8192 [submit_job]=2048 [submit_sweep]=2048
  [classify]=4096 [trace_neurons]=4096 [stream_classify]=4096
)
# RSS limit (MB) per target, default 2048: the submissions run
# StartTraining, which may take up to kMaxTrainingBytes (2 GiB,
# core/trainer.h) for an accepted spec; past that is a bug.
declare -A RSS_MB=([submit_job]=4096 [submit_sweep]=4096)
TARGETS=("$@")
if ((${#TARGETS[@]} == 0)); then
  TARGETS=(csv model_file checkpoint upload_dataset import_model submit_job
           submit_sweep classify trace_neurons stream_classify)
fi

start=$(date +%s)
if [[ ! -f $BUILD/CMakeCache.txt ]]; then
  cmake -S . -B "$BUILD" -DSPINNET_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_COMPILER=clang++ \
    $(command -v ccache >/dev/null && echo -DCMAKE_CXX_COMPILER_LAUNCHER=ccache) \
    -DPython3_EXECUTABLE=/usr/bin/python3 >/dev/null
fi
cmake --build "$BUILD" -j "$JOBS" --target spinnet_fuzzers
built=$(date +%s)
echo "fuzz: built in $((built - start)) s; ${SECONDS_EACH} s per target, $JOBS at a time"

run_one() {
  local t=$1 found=$BUILD/found/$1 art=$BUILD/artifacts/$1/
  mkdir -p "$found" "$art"
  local dirs=("$found" "$SRC/corpus/$t")
  [[ -d $SRC/regressions/$t ]] && dirs+=("$SRC/regressions/$t")
  # rss/malloc limits: a crafted length that allocates more is a bug.
  "$BUILD/tests/fuzz/fuzz_$t" -max_total_time="$SECONDS_EACH" \
    -max_len="${MAX_LEN[$t]}" -timeout=20 -rss_limit_mb="${RSS_MB[$t]:-2048}" \
    -malloc_limit_mb=1024 -print_final_stats=1 -artifact_prefix="$art" \
    "${dirs[@]}" >"$BUILD/fuzz_$t.log" 2>&1
}

pids=() names=()
status=0
for t in "${TARGETS[@]}"; do
  [[ -n ${MAX_LEN[$t]:-} ]] || { echo "fuzz: unknown target $t" >&2; exit 2; }
  run_one "$t" &
  pids+=($!) names+=("$t")
  if ((${#pids[@]} >= JOBS)); then
    wait "${pids[0]}" || true
    pids=("${pids[@]:1}")
  fi
done
for p in "${pids[@]}"; do wait "$p" || true; done

printf '%-16s %12s %10s %8s  %s\n' target executions exec/s corpus result
for t in "${names[@]}"; do
  log=$BUILD/fuzz_$t.log
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  corpus=$(ls "$BUILD/found/$t" | wc -l)
  if grep -qE '^==[0-9]+==ERROR|^SUMMARY: |runtime error|FUZZ_CHECK failed|Test unit written' "$log"; then
    result="FAILED ($log)"
    status=1
  else
    result=ok
  fi
  printf '%-16s %12s %10s %8s  %s\n' "$t" "${execs:-?}" "${rate:-?}" "$corpus" "$result"
done
echo "fuzz: $((${#names[@]})) targets in $(($(date +%s) - start)) s (build $((built - start)) s)"
if ((status != 0)); then
  for t in "${names[@]}"; do
    log=$BUILD/fuzz_$t.log
    if grep -qE 'Test unit written' "$log"; then
      echo "=== $t"; grep -E 'ERROR|SUMMARY|runtime error|FUZZ_CHECK|Test unit written|#0 |#1 |#2 |#3 ' "$log" | head -20
    fi
  done
fi
exit $status
