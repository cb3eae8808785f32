# Two entry points (see README): `make demo` and `make test`. Each installs what it needs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test lint bench proto

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# The main job: the lab replays the 23 April 2020 incident on this machine (no root needed).
demo: $(BIN)/python
	$(BIN)/pip install -q -e '.[embedded]'
	$(BIN)/probe-collector lab

# The whole test suite, including lint and types, helm chart tests and the browser test.
test: $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	sh .ci/install-helm.sh
	sh .ci/install-chromium.sh
	sh .ci/install-netns-tools.sh
	sh .ci/install-servers.sh
	sh .ci/install-alerting.sh
	$(MAKE) lint
	$(BIN)/pytest

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench:
	for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

proto:
	$(BIN)/python proto/generate.py
