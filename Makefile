# From a fresh clone, each target sets itself up: `make sweep` runs the demo sweep, `make test` the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install sweep test bench lint image-tools browser postgres clean

install: $(VENV)/.installed

# hydra-optuna-sweeper goes in without its optuna<3 pin (see pyproject.toml's `optuna` extra).
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,optuna]'
	$(BIN)/python -m pip install --quiet --no-deps hydra-optuna-sweeper==1.3.0
	touch $@

sweep: install
	$(BIN)/python -m sweeper model=rf,lasso -m

# ~10 min on 2 cores: sweeper against the Hydra launchers and the original scripts (bench/RESULTS.md).
bench: install
	$(BIN)/python bench/run.py

# ruff, then mypy on sweeper/, steps/ and hydra_plugins/ (its settings: pyproject.toml).
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The step-image tests build docker/Dockerfile with Debian's buildah (no Docker engine needed).
image-tools:
	@command -v buildah >/dev/null && command -v debootstrap >/dev/null && command -v podman >/dev/null \
	  || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq buildah debootstrap podman)

# The browser test opens the printed MLflow compare link in Debian's headless Chromium.
browser:
	@command -v chromium >/dev/null \
	  || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)

# The production MLflow tests run `mlflow server` on Debian's PostgreSQL (a throwaway cluster).
postgres:
	@ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 \
	  || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql)

test: lint image-tools browser postgres
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) mlflow.db multirun outputs sweeper-store dist
