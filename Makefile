# From a fresh clone, each target sets itself up: `make sweep` runs the demo sweep, `make test` the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install sweep test bench lint system-packages step-image clean

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

# Debian's packages the tests use, in one apt-get when one is missing: buildah, debootstrap and
# podman build and run the step image, chromium opens the compare link, postgresql serves the
# production MLflow tests (a throwaway cluster). As root.
system-packages:
	@command -v buildah >/dev/null && command -v debootstrap >/dev/null && command -v podman >/dev/null \
	  && command -v chromium >/dev/null && ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 \
	  || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      buildah debootstrap podman chromium postgresql)

# The step image the Argo tests run every pod in (localhost/sweeper:test), built from
# docker/Dockerfile with buildah: no Docker engine needed. Its layers are cached, so the tests'
# own build of it takes seconds unless sweeper/ or steps/ changed.
step-image: system-packages
	$(PYTHON) tests/support/step_image.py

# The image builds while the venv installs and lints: both mostly wait on downloads.
test:
	$(MAKE) --no-print-directory -j2 lint step-image
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) mlflow.db multirun outputs sweeper-store dist
