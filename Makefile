# The README's commands. Each target installs what it needs first.
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: deps build test run bench clean

deps:
	bash deploy/install-deps.sh

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS)

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

# Every test: unit, integration and CLI.
test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

# Starts the server on 127.0.0.1:50051 (metrics on :9464) with its
# embedded store in ./spinnet-data; Ctrl-C stops it gracefully.
run: build
	$(BUILD)/server/spinnet-server --data-dir spinnet-data

# Throughput benchmarks, with eager PyTorch side by side (tests/bench/).
bench:
	SPINNET_BENCH_DEPS=1 bash deploy/install-deps.sh
	$(MAKE) build
	/usr/bin/python3 tests/bench/compare_torch.py --build $(BUILD)

clean:
	rm -rf $(BUILD)
