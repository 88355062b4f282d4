# Shotline: `make dev` runs it, `make test` tests it. Both install what is missing first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install system-deps dev test lint bench docker-test clean

install: system-deps $(STAMP)

system-deps:
	@scripts/install-system-deps.sh

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

dev: install
	$(BIN)/shotline dev

test: install
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

bench: install
	@scripts/install-system-deps.sh --bench
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev,bench]'
	$(BIN)/python -m bench

# Both images built and the compose stack run end to end on a real Docker engine (a private
# dockerd as root when DOCKER_HOST answers nothing); see docs/deploy.md.
docker-test: install
	@scripts/docker-test.sh

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
