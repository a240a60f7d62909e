# Two entry points on a fresh machine: `make run` (the whole system on the simulator) and `make test`.
# The distribution's python3.11 when it can make a venv: Debian and Ubuntu build it with PGO and LTO,
# and Python code runs ~1.5x faster on it than on a plain source build such as pyenv's (measured:
# docs/architecture.md, "The interpreter"); else the first python3.11 on PATH that can.
# PY=/path/to/python3.11 chooses another.
ifeq ($(origin PY),undefined)
PY := $(shell for p in /usr/bin/python3.11 python3.11; do $$p -c 'import ensurepip, venv' 2>/dev/null && { command -v $$p; break; }; done)
endif
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# numba compiles once and caches here, not in the source tree
export NUMBA_CACHE_DIR := $(CURDIR)/.numba_cache

# a .venv made from another interpreter than PY's is made again
PY_EXE := $(shell $(PY) -c 'import sys; print(sys.executable)' 2>/dev/null)
VENV_EXE := $(shell sed -n 's/^executable = //p' $(VENV)/pyvenv.cfg 2>/dev/null)
ifneq ($(PY_EXE),$(VENV_EXE))
.PHONY: $(STAMP)
endif

.PHONY: setup run down test lint bench bench-deps clean debian-packages

$(STAMP): pyproject.toml constraints.txt
	@test -n "$(PY)" && command -v $(PY) >/dev/null || { echo "python3.11 with venv is required"; exit 1; }
	$(PY) -m venv --clear $(VENV)
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
