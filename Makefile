# Shotline: `make dev` runs it, `make test` tests it. Both install what is missing first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PIP := $(BIN)/python -m pip --disable-pip-version-check
# Extra pytest arguments, e.g. `make test PYTEST_ARGS="-x -k webhook tests/test_cli.py"`.
PYTEST_ARGS ?=
# Every run prints its 20 slowest tests.
PYTEST := $(BIN)/pytest --durations=20

.PHONY: install system-deps dev test test-slow lint bench docker-test clean

install: system-deps $(STAMP)

system-deps:
	@scripts/install-system-deps.sh

# pip prints each package as it collects and installs it (a progress bar on a terminal).
$(STAMP): pyproject.toml
	@echo "==> [1/3] Python virtual environment in $(VENV)/"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "==> [2/3] Upgrading pip"
	@$(PIP) install --quiet --upgrade pip
	@echo "==> [3/3] Installing Shotline and its dev tools into $(VENV)/ (~150 packages; a few minutes the first time)"
	@$(PIP) install --progress-bar on -e '.[dev]'
	@touch $(STAMP)
	@echo "==> Installed. Run: make dev"

dev: install
	$(BIN)/shotline dev

# The everyday loop: everything but the long runs marked `slow` (make test-slow; CI runs both).
test: install
	$(PYTEST) -m "not slow" $(PYTEST_ARGS)

# Chaos, fleet and load tests (minutes each): CI runs them after `make test`.
test-slow: install
	$(PYTEST) -m slow $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

bench: install
	@scripts/install-system-deps.sh --bench
	$(PIP) install --quiet -e '.[dev,bench]'
	$(BIN)/python -m bench

# Both images built and the compose stack run end to end on a real Docker engine (a private
# dockerd as root when DOCKER_HOST answers nothing); see docs/deploy.md.
docker-test: install
	@scripts/docker-test.sh

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
