# notary: `make demo` runs the main job on real logs; `make test` runs the test suite.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
DATA   ?= $(if $(wildcard ../shared/data/logs),../shared/data/logs,/var/log)

.PHONY: demo test install test-deps lint bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $@

install: $(BIN)/.installed

demo: install
	DATA="$(DATA)" bash scripts/demo.sh

$(BIN)/.test-installed: $(BIN)/.installed
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

test-deps: $(BIN)/.test-installed
	bash scripts/install_test_tools.sh

test: test-deps
	$(BIN)/python -m pytest

lint: $(BIN)/.test-installed
	$(BIN)/ruff check notary tests scripts
	$(BIN)/ruff format --check notary tests scripts
	$(BIN)/mypy notary

bench: install
	$(BIN)/python scripts/bench_tree.py
	$(BIN)/python scripts/bench_hashing.py

clean:
	rm -rf .demo build dist *.egg-info
