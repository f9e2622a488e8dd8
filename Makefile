# `make demo` and `make test` each set everything up from nothing: a virtual
# environment in .venv with this package installed editable (with dev extras, by uv),
# and Debian's dataset-fashion-mnist where apt-get is usable. `make bench` adds the
# bench extra (the CPU build of PyTorch that pyproject.toml pins) to the same environment.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
BENCH_STAMP := $(VENV)/.installed-bench-stamp
FMNIST_DIR := /usr/share/datasets/fashion-mnist
DEMO_WORKDIR ?= demo_workdir

.PHONY: setup demo test test-fast lint docs bench bench-jobs clean

# uv resolves to the same versions as pip here, and installs them in about 45 s against pip's 150 s
# (measured 2026-12-06 on a fresh clone); pip does it if uv cannot be had.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	($(BIN)/pip install -q --disable-pip-version-check uv \
	  && $(BIN)/uv pip install -q --python $(BIN)/python --compile-bytecode -e '.[dev]') \
	  || $(BIN)/pip install -q --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

# Only `make bench` installs the bench extra (torch, for benchmarks/train.py's PyTorch side).
$(BENCH_STAMP): $(STAMP) pyproject.toml
	$(BIN)/pip install -q --disable-pip-version-check -e '.[dev,bench]'
	touch $(BENCH_STAMP)

$(FMNIST_DIR):
	@if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  (apt-get install -y -q dataset-fashion-mnist || (apt-get update -q && apt-get install -y -q dataset-fashion-mnist)) >/dev/null \
	  || echo "warning: could not install dataset-fashion-mnist; the demo needs it (or data.source_dir)"; \
	else \
	  echo "note: $(FMNIST_DIR) missing and apt-get unusable; install dataset-fashion-mnist or set --config.data.source_dir"; \
	fi

setup: $(STAMP) | $(FMNIST_DIR)

demo: setup
	$(BIN)/smear run --config quickstart --workdir $(DEMO_WORKDIR)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The documentation site (mkdocs.yml, docs/) into site/. --strict: a broken link, a missing anchor
# or an API object mkdocstrings cannot find fails the build.
docs: setup
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

# The whole suite in TEST_JOBS processes (pytest-xdist), a test file per process at a time, so
# a file's module fixtures run once; longest files first (tests/conftest.py's LONGEST_FIRST, which
# xdist's own reordering by number of tests would undo). `make test-fast` leaves out the tests marked slow (whole
# runs, subprocesses, emulators) and runs in one process: the loop while changing code.
TEST_JOBS ?= 2

test: lint docs
	$(BIN)/pytest -n $(TEST_JOBS) --dist loadfile --no-loadscope-reorder

test-fast: setup
	$(BIN)/pytest -m "not slow"

# `make bench`: every benchmark but jobs (13-26 minutes); `make bench-jobs`: whole `smear run`s with
# --jobs 1 and 2 (15-40 minutes), added to the same report.
bench: setup $(BENCH_STAMP)
	$(BIN)/python benchmarks/run_all.py

bench-jobs: setup $(BENCH_STAMP)
	$(BIN)/python benchmarks/run_all.py --only jobs

clean:
	rm -rf $(VENV) $(DEMO_WORKDIR) *.egg-info site
