# The two commands: `make run` (the whole service with a demo) and `make test` (the suite).
# Both create .venv from pyproject.toml on first use.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test bench clean

run: $(STAMP)
	$(BIN)/python -m starter up

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

clean:
	rm -rf $(VENV) .data .pytest_cache
