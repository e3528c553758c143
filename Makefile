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

# Trains the default network on the digits and writes model.bin.
run: build
	$(BUILD)/core/spinnet-train --dataset digits --epochs 30 --seed 0 --out model.bin

# Throughput benchmarks, with eager PyTorch side by side (tests/bench/).
bench:
	SPINNET_BENCH_DEPS=1 bash deploy/install-deps.sh
	$(MAKE) build
	/usr/bin/python3 tests/bench/compare_torch.py --build $(BUILD)

clean:
	rm -rf $(BUILD)
