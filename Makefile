# The README's commands. Each target installs what it needs into .venv first,
# so a fresh machine with Python 3.11 and make is enough.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test lint bench bench-suite clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[synapse,dev]'
	# Bytecode for the editable sources too, as pip makes for the rest: each run
	# would otherwise compile them again where PYTHONDONTWRITEBYTECODE is set.
	$(BIN)/python -m compileall -q src
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/matrix-bot-tester demo

test: $(STAMP)
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests examples bench
	$(BIN)/ruff format --check src tests examples bench
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python bench/roundtrip.py

# A whole suite (200 conversations) at -j 1 and the default -j: the tester's CPU and memory.
bench-suite: $(STAMP)
	$(BIN)/python bench/suite.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
