# internvl_bench: set-up, tests, demo and real benchmark runs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TASK ?= xtd
MODEL ?= internvl-c
DATA_ROOT ?=
CHECKPOINT ?=
ARGS ?=

.PHONY: install install-gpu test test-all demo bench tables bench-metrics lint

install:  ## virtual environment with pinned dependencies, the package editable, test and video extras
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -c constraints.txt 'setuptools==80.9.0' 'wheel==0.45.1'
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[video,dev]'

install-gpu: install  ## adds flash-attn (needs a CUDA toolchain)
	$(BIN)/python -m pip install -q -e '.[gpu]'

test:  ## the default test run (what CI runs)
	$(BIN)/python -m pytest -q

test-all:  ## also the slow tests
	$(BIN)/python -m pytest -q -m ""

demo:  ## offline end-to-end XTD run on generated data with a tiny model; prints Table A
	$(BIN)/internvl-bench demo --workdir demo_data

bench:  ## make bench TASK=xtd MODEL=internvl-c DATA_ROOT=/data/xtd [CHECKPOINT=...] [ARGS="--batch-size 128"]
	$(BIN)/internvl-bench run --task $(TASK) --model $(MODEL) \
		$(if $(DATA_ROOT),--data-root $(DATA_ROOT)) $(if $(CHECKPOINT),--checkpoint $(CHECKPOINT)) $(ARGS)
	$(BIN)/internvl-bench tables --out-dir results/tables

tables:  ## Tables A-G as Markdown and LaTeX under results/tables
	$(BIN)/internvl-bench tables --format md --out-dir results/tables
	$(BIN)/internvl-bench tables --format latex --out-dir results/tables

bench-metrics:  ## retrieval-scoring time and peak memory for growing sizes
	$(BIN)/python benchmarks/bench_retrieval_metrics.py
