# Thin wrapper over the CMake presets (as neovim's Makefile is). Every target first runs
# the bootstrap, which installs whatever is missing and is quick when nothing is.
#
#   make train   build, then train ResNet-18 on Fashion-MNIST (the main job)
#   make train-full  the same on every image for 5 epochs (50-110 minutes on 2 cores)
#   make test    build, then run the whole test suite (what .ci/run calls)
#   make bench   build, then run the perf suites (installs python3-torch for comparisons)
#   make fuzz    build the fuzz preset, fuzz each reader FUZZ_SECONDS (default 60)
#   make build   configure and build the PRESET (release by default; debug, asan)
#   make install install the PRESET's build into build/<preset>/install
#   make clean   remove build/
PRESET ?= release
CMAKE := .deps/bin/cmake
CTEST := .deps/bin/ctest
BUILD_DIR := build/$(PRESET)

.PHONY: all bootstrap bootstrap-torch configure build test train train-full bench fuzz install clean help
all: build

help:
	@sed -n '1,11p' Makefile | sed 's/^# \{0,1\}//'

bootstrap:
	@scripts/bootstrap.sh

configure: bootstrap
	@if [ ! -f $(BUILD_DIR)/build.ninja ]; then $(CMAKE) --preset $(PRESET); fi

build: configure
	@$(CMAKE) --build --preset $(PRESET)

test: build
	@$(CTEST) --preset $(PRESET)

# The main job: ResNet-18 on Fashion-MNIST, sized to finish within ten minutes on 2 cores
# (the settings were chosen by measurement: docs/accuracy.md). TRAIN_ARGS overrides them;
# every run gets its own directory under runs/.
TRAIN_ARGS ?= --train-subset 30000 --epochs 1 --image-size 28 --batch-size 32 --schedule cosine --lr 0.005 --nesterov --no-augment
train: configure
	@$(CMAKE) --build --preset $(PRESET) --target odyssey_cli
	@build/$(PRESET)/models/resnet18/odyssey train $(TRAIN_ARGS) --out runs/make-train-$$(date +%Y%m%d-%H%M%S)

# The long job: every training image, 5 epochs, light augmentation, flip test-time
# augmentation; 93.23% in 49 minutes on a Xeon, about 110 on Zen 3 (docs/accuracy.md).
TRAIN_FULL_ARGS ?= --epochs 5 --image-size 28 --batch-size 32 --schedule cosine --lr 0.005 --translate 2 --flip random --tta flip
train-full: configure
	@$(CMAKE) --build --preset $(PRESET) --target odyssey_cli
	@build/$(PRESET)/models/resnet18/odyssey train $(TRAIN_FULL_ARGS) --out runs/make-train-full-$$(date +%Y%m%d-%H%M%S)

# Every kernel at every ResNet-18 shape, then ResNet-18 end to end beside PyTorch.
bench: PRESET = release
bench: bootstrap-torch build
	@build/release/perf/kernels_bench --benchmark_counters_tabular=true \
	  --benchmark_out=build/release/perf/kernels.json --benchmark_out_format=json
	@/usr/bin/python3 perf/summary.py --build build/release --kernels-json build/release/perf/kernels.json

bootstrap-torch:
	@scripts/bootstrap.sh --with-torch

FUZZ_SECONDS ?= 60
fuzz: bootstrap
	@if [ ! -f build/fuzz/build.ninja ]; then $(CMAKE) --preset fuzz; fi
	@$(CMAKE) --build --preset fuzz
	@tests/fuzz/run.sh fuzz $(FUZZ_SECONDS)

install: build
	@$(CMAKE) --install $(BUILD_DIR)

clean:
	rm -rf build
