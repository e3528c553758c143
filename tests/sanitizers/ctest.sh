#!/usr/bin/env bash
# ctest in a sanitizer build dir (`make asan`, `make tsan`; the CMake option
# SPINNET_SANITIZE) with the sanitizers' runtime options set:
#   tests/sanitizers/ctest.sh BUILD_DIR [ctest arguments...]
# Every instrumented process the tests start (gtest binaries, and the
# spinnet-server, spinnet and spinnet-train processes of the Python tests)
# inherits them. A report ends the process with a non-zero status, so the
# test that ran it fails; it is also written to BUILD_DIR/sanitizer-reports/,
# which must be empty at the end: that catches reports from processes whose
# exit status a test does not look at (say, a server a Python test stops
# with SIGTERM at its end, where a leak report would otherwise go unseen).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "$1" && pwd)
shift
reports=$build/sanitizer-reports
rm -rf "$reports"
mkdir "$reports"
log="log_path=$reports/report:log_exe_name=1"
# ASan stops at its first report; detect_stack_use_after_return also
# catches a reference to a local that outlives its function.
export ASAN_OPTIONS="$log:detect_leaks=1:detect_stack_use_after_return=1:check_initialization_order=1:strict_init_order=1"
export LSAN_OPTIONS="suppressions=$here/lsan.supp:print_suppressions=0"
# The build has -fno-sanitize-recover=undefined; halt_on_error is the same
# for anything built without it.
export UBSAN_OPTIONS="$log:halt_on_error=1:print_stacktrace=1"
# TSan reports every race it sees, then exits 66.
export TSAN_OPTIONS="$log:second_deadlock_stack=1:suppressions=$here/tsan.supp:print_suppressions=0"

status=0
(cd "$build" && ctest --output-on-failure "$@") || status=$?
shopt -s nullglob
found=("$reports"/report*)
for f in "${found[@]}"; do
  echo "==== $f"
  cat "$f"
done
if ((${#found[@]})); then
  echo "${#found[@]} sanitizer report(s) in $reports" >&2
  exit 1
fi
exit "$status"
