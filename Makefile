# From a fresh clone, each target sets itself up: `make sweep` runs the demo sweep, `make test` the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install dev sweep test test-fast docs bench lint system-packages step-image clean

# What a sweep needs, and nothing else.
install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $@

# The tools of the tests, lint, docs and bench, and Optuna. hydra-optuna-sweeper goes in without
# its optuna<3 pin (see pyproject.toml's `optuna` extra).
dev: $(VENV)/.dev

$(VENV)/.dev: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e '.[test,lint,docs,bench,optuna]'
	$(BIN)/python -m pip install --quiet --no-deps hydra-optuna-sweeper==1.3.0
	touch $@

sweep: install
	$(BIN)/python -m sweeper model=rf,lasso -m

# ~10 min on 2 cores: sweeper against the Hydra launchers and the original scripts (bench/RESULTS.md).
bench: dev
	$(BIN)/python bench/run.py

# ruff, then mypy on sweeper/, steps/ and hydra_plugins/ (its settings: pyproject.toml).
lint: dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The manual as a site, into site/; a broken link or anchor fails it.
docs: dev
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

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

# The image builds while the venv installs, lints and builds the docs: both mostly wait on downloads.
test:
	$(MAKE) --no-print-directory -j2 lint step-image
	$(MAKE) --no-print-directory docs
	$(BIN)/python -m pytest

# The edit-run loop: the unit tests only (no server, no process started), in about a minute.
test-fast: dev
	$(BIN)/python -m pytest -m unit -n 0

clean:
	rm -rf $(VENV) mlflow.db multirun outputs sweeper-store dist site
