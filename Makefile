# internvl_bench: set-up, tests, demo and real benchmark runs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TASK ?= xtd
MODEL ?= internvl-c
DATA_ROOT ?=
CHECKPOINT ?=
ARGS ?=

.PHONY: install install-gpu test test-all demo demo-gate demo-baseline bench tables bench-metrics lint

install:  ## virtual environment with pinned dependencies, the package editable, test and video extras
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -c constraints.txt 'setuptools==80.9.0' 'wheel==0.45.1'
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[video,dev]'
# CLIP_benchmark for the differential tests, without its dependencies: the metrics and dataset modules
# the tests run need only those in the dev extra (its own list adds scikit-learn and the like)
	$(BIN)/python -m pip install -q -c constraints.txt --no-deps clip-benchmark

install-gpu: install  ## adds flash-attn (needs a CUDA toolchain)
	$(BIN)/python -m pip install -q -e '.[gpu]'

test:  ## the default test run (what CI runs)
	$(BIN)/python -m pytest -q

test-all:  ## also the slow tests
	$(BIN)/python -m pytest -q -m ""

demo:  ## every task on replicas of the synthetic world with the trained demo models; prints Tables A-G
	$(BIN)/internvl-bench demo --workdir demo_data

demo-gate: demo  ## what CI runs after the tests: fail listing every demo number that moved from the leaderboard
	$(BIN)/internvl-bench regress --baseline results/leaderboard/demo.json --runs demo_data/runs \
		--junit demo_data/regress.xml

demo-baseline: demo  ## after an intended change: rewrite results/leaderboard/demo.json from the demo's records
	$(BIN)/internvl-bench regress --runs demo_data/runs --write-baseline results/leaderboard/demo.json

bench:  ## make bench TASK=xtd MODEL=internvl-c DATA_ROOT=/data/xtd [CHECKPOINT=...] [ARGS="--batch-size 128"]
	$(BIN)/internvl-bench run --task $(TASK) --model $(MODEL) \
		$(if $(DATA_ROOT),--data-root $(DATA_ROOT)) $(if $(CHECKPOINT),--checkpoint $(CHECKPOINT)) $(ARGS)
	$(BIN)/internvl-bench tables --out-dir results/tables

tables:  ## Tables A-G (and captioning) as Markdown, LaTeX and figures under results/tables
	$(BIN)/internvl-bench tables --format md --plots --out-dir results/tables
	$(BIN)/internvl-bench tables --format latex --out-dir results/tables

bench-metrics:  ## retrieval scoring vs the bare matrix product (times, ratio, peak memory), 1k x 5k up to 100k x 500k [ARGS="--sizes 1000x5000 --threads 1"]
	$(BIN)/python benchmarks/bench_retrieval_metrics.py $(ARGS)
