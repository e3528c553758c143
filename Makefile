# The README's commands. Each target installs what it needs first.
BUILD ?= build
JOBS ?= $(shell nproc)
# ccache (installed by deploy/install-deps.sh) keeps rebuilds from clean
# clones cheap: its cache outlives the build directory.
# Debian's python3 (/usr/bin) has the python3-* packages the Python client
# and its tests use, even where another python3 comes first in PATH.
CMAKE_FLAGS ?= $(if $(shell command -v ccache),-DCMAKE_CXX_COMPILER_LAUNCHER=ccache) \
  $(if $(wildcard /usr/bin/python3),-DPython3_EXECUTABLE=/usr/bin/python3)
# Paths relative to the checkout in ccache's hashes (and no working
# directory in those of -g builds), so that a clone elsewhere, such as CI's,
# reuses the objects of earlier builds.
export CCACHE_BASEDIR ?= $(CURDIR)
export CCACHE_NOHASHDIR ?= 1

.PHONY: deps build check fuzz asan tsan test image-test compose-test run bench clean

deps:
	bash deploy/install-deps.sh

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS)

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

# The ctest suite: unit, integration, CLI, end-to-end and monitoring tests.
check: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

# Every fuzz target (tests/fuzz/) built with clang, libFuzzer, ASan and
# UBSan in $(FUZZ_BUILD), then run for FUZZ_SECONDS each on its corpus,
# JOBS at a time; prints the executions per target and fails on any finding.
FUZZ_SECONDS ?= 60
FUZZ_BUILD ?= build-fuzz
fuzz:
	SPINNET_FUZZ_DEPS=1 bash deploy/install-deps.sh
	FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_BUILD=$(FUZZ_BUILD) FUZZ_JOBS=$(JOBS) \
	  bash tests/fuzz/run_fuzz.sh

# The same suite built with AddressSanitizer and UndefinedBehaviorSanitizer
# (its own build dir; ccache keeps it apart from the Release objects). The
# server and CLI processes the Python tests start are instrumented too; any
# report fails the run (tests/sanitizers/ctest.sh).
ASAN_BUILD ?= build-asan
SANITIZER_FLAGS = -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS)
asan: deps
	cmake -S . -B $(ASAN_BUILD) -DSPINNET_SANITIZE=address,undefined $(SANITIZER_FLAGS)
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	bash tests/sanitizers/ctest.sh $(ASAN_BUILD) -j $(JOBS)

# ThreadSanitizer on the tests labelled `concurrency`: core's threads and the
# server's own (job runner, sweeps, stores, registry, stream protocol), none
# of which runs gRPC (Debian's gRPC is not instrumented, so TSan cannot see
# its synchronization). Only those tests' targets are built.
TSAN_BUILD ?= build-tsan
tsan: deps
	cmake -S . -B $(TSAN_BUILD) -DSPINNET_SANITIZE=thread $(SANITIZER_FLAGS)
	cmake --build $(TSAN_BUILD) -j $(JOBS) --target concurrency_tests
	bash tests/sanitizers/ctest.sh $(TSAN_BUILD) -j $(JOBS) -L concurrency

# The container image, built from the Dockerfile (its build runs the tests
# again inside) and checked end to end by running the server from it.
image-test:
	SPINNET_IMAGE_DEPS=1 bash deploy/install-deps.sh
	bash deploy/verify-image.sh
	$(MAKE) compose-test

# deploy/docker-compose.yml's topology run with podman on that image: two
# replicas on PostgreSQL and Prometheus; a replica killed in mid-job.
compose-test:
	SPINNET_IMAGE_DEPS=1 bash deploy/install-deps.sh
	bash deploy/verify-compose.sh

# Every test, one after the other: what CI runs.
test: check
	$(MAKE) fuzz asan tsan
	$(MAKE) image-test

# Starts the server on 127.0.0.1:50051 (metrics on :9464) with its
# embedded store in ./spinnet-data; Ctrl-C stops it gracefully.
run: build
	$(BUILD)/server/spinnet-server --data-dir spinnet-data

# Throughput benchmarks, with eager PyTorch side by side, the paper's Fig. 3a
# study per core-hour (about 12 minutes on the idle 2-core VM; e.g.
# STUDY_BENCH_FLAGS="--seeds 1 --epochs 10" for a quick estimate), the job
# queue on SQLite and PostgreSQL, and StreamClassify next to a bare gRPC echo
# stream (tests/bench/). BASELINE=path/to/core_bench of another build adds
# its training rate beside this one's.
STUDY_BENCH_FLAGS ?=
bench:
	SPINNET_BENCH_DEPS=1 bash deploy/install-deps.sh
	$(MAKE) build
	/usr/bin/python3 tests/bench/compare_torch.py --build $(BUILD) \
	  $(if $(BASELINE),--baseline $(BASELINE))
	/usr/bin/python3 tests/bench/study_bench.py --build $(BUILD) --header \
	  --label "$$(git rev-parse --short HEAD 2>/dev/null)" $(STUDY_BENCH_FLAGS)
	/usr/bin/python3 tests/bench/queue_bench.py $(BUILD)
	/usr/bin/python3 tests/bench/stream_compare.py $(BUILD)/tests/bench/stream_load

clean:
	rm -rf $(BUILD) $(FUZZ_BUILD) $(ASAN_BUILD) $(TSAN_BUILD)
