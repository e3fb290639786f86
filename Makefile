# hnm: the README's commands. `make run` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
ARGS   ?=

.PHONY: install run smoke test test-fast lint docs bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# the CPU build of torch; a looser pin would pull a multi-GB CUDA build
	$(BIN)/python -m pip install -q "torch==2.13.0"
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

## the main job on the embedded default: NGAME batches, all-MiniLM-L6-v2, stdlib_code
run: install
	$(BIN)/hnm train +sampler=ngame $(ARGS)

smoke: install
	$(BIN)/hnm train experiment=smoke $(ARGS)

test: install
	$(BIN)/python -m pytest -q $(ARGS)

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow" $(ARGS)

lint: install
	$(BIN)/ruff check hnm tests scripts
	$(BIN)/mypy hnm

## docs/strategies.md from conf/ and the strategy classes' docstrings (a test compares them)
docs: install
	$(BIN)/hnm list --markdown > docs/strategies.md

bench: install
	$(BIN)/python scripts/bench_mining.py
	$(BIN)/python scripts/bench_train.py
	$(BIN)/python scripts/bench_memory.py

clean:
	rm -rf $(VENV) build dist *.egg-info
