# Quick start: `make demo` and `make test`. Everything installs into .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
BENCH_STAMP := $(VENV)/.installed-bench
DEMO_OUT ?= runs/deep-linear

.PHONY: demo test test-fast test-faults bench lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

$(TEST_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP) $@

$(BENCH_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test]'
	$(BIN)/python -m pip install -q torch==2.13.0 torchdiffeq
	touch $(STAMP) $(TEST_STAMP) $@

## demo: run the flagship experiment (deep linear saddle-to-saddle) and print the report's path
demo: $(STAMP)
	$(BIN)/gradflow run deep-linear --out $(DEMO_OUT)

## test: the whole suite (slow tests included), two workers
test: $(TEST_STAMP)
	$(BIN)/python -m pytest -n 2 --durations=15

test-fast: $(TEST_STAMP)
	$(BIN)/python -m pytest -n 2 -m "not slow"

## test-faults: kill tiny runs at random times; every folder must be complete or resume to the same numbers
FAULT_TRIALS ?= 24
test-faults: $(TEST_STAMP)
	MPLBACKEND=Agg $(BIN)/python scripts/fault_injection.py --trials $(FAULT_TRIALS) --double

## bench: the comparative benchmarks (installs the peers: PyTorch CPU, torchdiffeq)
bench: $(BENCH_STAMP)
	$(BIN)/python benchmarks/deep_linear.py
	$(BIN)/python benchmarks/resnet.py
	$(BIN)/python benchmarks/mean_field.py
	$(BIN)/python benchmarks/marion_reproduction.py

lint: $(TEST_STAMP)
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/ruff format --check src tests benchmarks scripts

clean:
	rm -rf $(VENV) runs .pytest_cache
