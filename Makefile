# Two entry points on a fresh machine: `make run` (the whole system on the simulator) and `make test`.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# numba compiles once and caches here, not in the source tree
export NUMBA_CACHE_DIR := $(CURDIR)/.numba_cache

.PHONY: setup run down test lint bench bench-deps clean debian-packages

$(STAMP): pyproject.toml constraints.txt
	@command -v $(PY) >/dev/null || { echo "python3.11 is required"; exit 1; }
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(BIN)/zerotick up --config deploy/zerotick.toml

down: $(STAMP)
	$(BIN)/zerotick down --config deploy/zerotick.toml

debian-packages:
	scripts/install-debian-packages

test: $(STAMP) debian-packages
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -q -p no:cacheprovider

lint: $(STAMP)
	$(BIN)/ruff check .

# The optional `bench` extra (nautilus_trader, for bench.book); --no-deps: see pyproject.toml
bench-deps: $(STAMP)
	$(BIN)/pip install -q -c constraints.txt --no-deps nautilus_trader

bench: $(STAMP) bench-deps
	$(BIN)/python -m bench.suite

clean:
	rm -rf $(VENV)
