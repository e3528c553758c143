# The README's commands. Each target installs what it needs first.
BUILD ?= build
JOBS ?= $(shell nproc)
# ccache (installed by deploy/install-deps.sh) keeps rebuilds from clean
# clones cheap: its cache outlives the build directory.
# Debian's python3 (/usr/bin) has the python3-* packages the Python client
# and its tests use, even where another python3 comes first in PATH.
CMAKE_FLAGS ?= $(if $(shell command -v ccache),-DCMAKE_CXX_COMPILER_LAUNCHER=ccache) \
  $(if $(wildcard /usr/bin/python3),-DPython3_EXECUTABLE=/usr/bin/python3)

.PHONY: deps build check asan tsan test image-test compose-test run bench clean

deps:
	bash deploy/install-deps.sh

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS)

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

# The ctest suite: unit, integration, CLI, end-to-end and monitoring tests.
check: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

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
	$(MAKE) asan tsan
	$(MAKE) image-test

# Starts the server on 127.0.0.1:50051 (metrics on :9464) with its
# embedded store in ./spinnet-data; Ctrl-C stops it gracefully.
run: build
	$(BUILD)/server/spinnet-server --data-dir spinnet-data

# Throughput benchmarks, with eager PyTorch side by side, and the job
# queue on SQLite and PostgreSQL (tests/bench/).
bench:
	SPINNET_BENCH_DEPS=1 bash deploy/install-deps.sh
	$(MAKE) build
	/usr/bin/python3 tests/bench/compare_torch.py --build $(BUILD)
	/usr/bin/python3 tests/bench/queue_bench.py $(BUILD)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD)
