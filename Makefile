# losslab: `make help` lists the targets. Every target that runs Python first makes sure .venv
# exists and holds the project, installed from the committed lock files (pip install -r <lock>,
# then the project itself with --no-deps), so a fresh clone gets exactly the versions CI tested:
#   requirements.lock      what training needs: train, bench, ui, compare, tune, report, landscape, workers
#   requirements-dev.lock  the same pins + the dev and server extras (pytest, ruff, hypothesis,
#                          PostgreSQL drivers): test, lint, test-backends, server
# Each is re-installed when its lock file or pyproject.toml changes. `make lock` re-pins both
# lock files from pyproject.toml (it needs the package registry).
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
RUN_LOCK  := requirements.lock
DEV_LOCK  := requirements-dev.lock
STAMP_RUN := $(VENV)/.stamp-run
STAMP_DEV := $(VENV)/.stamp-dev
STAMP_BACKENDS := $(VENV)/.stamp-backends

# Training knobs (every config key: `python -m training.train --help`); empty means "the config default".
LOSS      ?= ce
DATASET   ?= digits
EPOCHS    ?=
SEED      ?=
IMBALANCE ?=
RESUME    ?=
STRATEGY  ?=
DEVICES   ?=
LANDSCAPE ?=
ARGS      ?=
# Compare / tune / report / landscape knobs.
SEEDS      ?=
LOSSES     ?=
TUNE       ?=
TRIALS     ?=
SWEEP      ?=
EXPERIMENT ?=
PARENT     ?=
RUN        ?=
# Compare grid: WORKERS local worker processes (N, or gpus: one per GPU), DATASETS=a,b one grid.
WORKERS  ?= 1
DATASETS ?=
# make workers: TRAIN_WORKERS tf.distribute processes of one training.
TRAIN_WORKERS ?= 2
# UI / server (make server's processes: SERVER_WORKERS, read by mlflow/server.sh).
PORT ?= 5000
HOST ?= 127.0.0.1
# make lock UPGRADE=1: move every pin to the newest release pyproject.toml allows.
UPGRADE ?=

opt = $(if $(2),$(1)=$(2))
# One shell word, whatever it holds: DATASET="idx:my data" stays one argument.
quote = '$(subst ','\'',$(1))'
# A resumed run takes its config from the run itself: only what is given explicitly is passed.
ifdef RESUME
TRAIN_ARGS = resume=$(RESUME) $(call opt,epochs,$(EPOCHS)) $(ARGS)
else
TRAIN_ARGS = loss=$(LOSS) dataset=$(call quote,$(DATASET)) $(call opt,epochs,$(EPOCHS)) $(call opt,seed,$(SEED)) \
	$(call opt,imbalance,$(IMBALANCE)) $(call opt,strategy,$(STRATEGY)) \
	$(call opt,devices,$(DEVICES)) $(call opt,landscape,$(LANDSCAPE)) $(ARGS)
endif

# pip check fails when a lock file is stale (pyproject.toml asks for what it lacks): `make lock`.
$(STAMP_RUN): $(RUN_LOCK) pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r $(RUN_LOCK)
	$(PY) -m pip install -q --no-deps -e .
	$(PY) -m pip check
	@touch $@

$(STAMP_DEV): $(DEV_LOCK) pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r $(DEV_LOCK)
	$(PY) -m pip install -q --no-deps -e .
	$(PY) -m pip check
	@touch $@

# The backends extra, keeping every pin of the dev lock: jax[cpu] and torch 2.13.0, for which
# pip takes the CPU wheel (2.13.0+cpu) that lies on the disk of the project's machines.
$(STAMP_BACKENDS): $(STAMP_DEV) $(DEV_LOCK) pyproject.toml
	$(PY) -m pip install -q -c $(DEV_LOCK) -e '.[backends]'
	@touch $@

# The lock files are compiled with uv for CPython 3.11 on x86_64 Linux (manylinux_2_28), the
# interpreter and platform of the project's machines and CI. The runtime lock is constrained by the
# dev lock, so the two never pin a shared package differently. Existing pins are kept unless
# pyproject.toml needs others (or UPGRADE=1).
UV_VERSION    := 0.13.9
LOCK_PYTHON   := 3.11
LOCK_PLATFORM := x86_64-manylinux_2_28
UV            := $(VENV)/bin/uv
UV_COMPILE = $(UV) pip compile pyproject.toml --quiet --no-header --python-version $(LOCK_PYTHON) \
	--python-platform $(LOCK_PLATFORM) $(if $(UPGRADE),--upgrade)
lock_header = { printf '%s\n' \
	'\# $(1): $(2), pinned from pyproject.toml by `make lock`' \
	'\# (uv $(UV_VERSION) pip compile, for CPython $(LOCK_PYTHON) on $(LOCK_PLATFORM), i.e. x86_64 Linux).' \
	'\# Install: pip install -r $(1) && pip install --no-deps -e .   (what `make` does)'; \
	cat $(1); } > $(1).tmp && mv $(1).tmp $(1)

.PHONY: help venv lock train tune test test-slow test-backends lint bench ui compare report landscape server workers runs-clean clean

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / { s = $$2; \
		while (match(s, /\$$\([A-Z_]+\)/)) s = substr(s, 1, RSTART - 1) substr(s, RSTART + 2, RLENGTH - 3) substr(s, RSTART + RLENGTH); \
		printf "  make %-14s %s\n", $$1, s }' $(MAKEFILE_LIST)
	@echo "  Variables (empty: the config default): LOSS=$(LOSS) DATASET=$(DATASET) EPOCHS SEED IMBALANCE RESUME"
	@echo "    STRATEGY DEVICES LANDSCAPE ARGS=\"key=value ...\"  SEEDS LOSSES TUNE SWEEP TRIALS EXPERIMENT PARENT RUN DATASETS"
	@echo "    WORKERS=$(WORKERS) (compare) TRAIN_WORKERS=$(TRAIN_WORKERS) (make workers) PORT=$(PORT) HOST=$(HOST)  PYTHON=$(PYTHON) (creates .venv)  UPGRADE=1 (make lock)  TEST_WORKERS=$(TEST_WORKERS)"

venv: $(STAMP_RUN) ## Create .venv and install what training needs from requirements.lock (the other targets do it too)

lock: ## Re-pin requirements.lock and requirements-dev.lock from pyproject.toml (needs the package registry)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@test -x $(UV) || $(PY) -m pip install -q "uv==$(UV_VERSION)"
	$(UV_COMPILE) --extra dev --extra server -o $(DEV_LOCK)
	$(UV_COMPILE) -c $(DEV_LOCK) -o $(RUN_LOCK)
	@$(call lock_header,$(DEV_LOCK),runtime + dev + server extras)
	@$(call lock_header,$(RUN_LOCK),runtime dependencies)

train: $(STAMP_RUN) ## Train one model: make train LOSS=focal DATASET=digits EPOCHS=10 ARGS="gamma=1"
	$(PY) -m training.train $(TRAIN_ARGS)

tune: $(STAMP_RUN) ## Tune one loss's hyperparameters with Optuna: make tune LOSS=focal TRIALS=20
	$(PY) -m training.tune loss=$(LOSS) dataset=$(call quote,$(DATASET)) $(call opt,trials,$(TRIALS)) $(call opt,epochs,$(EPOCHS)) $(ARGS)

# The suite on TEST_WORKERS processes (pytest-xdist), a whole file per worker so each module
# fixture runs once; tests/conftest.py hands out the files with most end-to-end tests first, so
# no worker is left alone with a long file at the end. 3 on 2 cores: the workers spend part of
# their time waiting on the subprocesses and servers they start (2 workers kept the cores 84 %
# busy). TEST_WORKERS=0: one process.
TEST_WORKERS ?= 3
PYTEST_WORKERS = $(if $(filter-out 0,$(TEST_WORKERS)),-n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder)

# Two tiers. `make test` is every test not marked `slow` (unit tests against NumPy references,
# small in-process trainings): under 8 minutes on 2 cores, run it before every commit.
# `make test-slow` is the end-to-end tier (marked `slow`): real processes and signals, servers,
# the browser, benchmarks' smoke runs, every README command. CI (.ci/run) runs both.
test: $(STAMP_DEV) ## Run the fast suite (tests/, not marked slow) on TEST_WORKERS=3 processes
	$(PY) -m pytest -q -m "not slow" $(PYTEST_WORKERS)

test-slow: $(STAMP_DEV) ## Run the end-to-end tier (tests marked slow); CI runs it after make test
	$(PY) -m pytest -q -m slow $(PYTEST_WORKERS)

test-backends: $(STAMP_BACKENDS) ## Run tests/losses under JAX and PyTorch (installs their CPU builds: the backends extra)
	KERAS_BACKEND=jax $(PY) -m pytest -q $(PYTEST_WORKERS) tests/losses
	KERAS_BACKEND=torch $(PY) -m pytest -q $(PYTEST_WORKERS) tests/losses

lint: $(STAMP_DEV) ## Lint with ruff
	$(PY) -m ruff check .

bench: $(STAMP_RUN) ## Benchmarks: losses vs references, training throughput (medians, ratios)
	$(PY) -m benchmarks.losses
	$(PY) -m benchmarks.regression_losses
	$(PY) -m benchmarks.train
	$(PY) -m benchmarks.backbones
	$(PY) -m benchmarks.retrieval
	$(PY) -m benchmarks.mining
	$(PY) -m benchmarks.data
	$(PY) -m benchmarks.compare_workers

# One worker process: a local UI has one user, and starts in about half the time of four.
ui: $(STAMP_RUN) ## MLflow UI on HOST:PORT (default 127.0.0.1:5000) over the default store
	@echo "MLflow UI, training view: http://$(HOST):$(PORT)/#/experiments?workflowType=machine_learning"
	$(PY) -m mlflow ui --backend-store-uri "$${MLFLOW_TRACKING_URI:-sqlite:///mlflow.db}" --host $(HOST) --port $(PORT) --workers 1

# RESUME=<parent run id>: the compare's own settings, its cells not FINISHED (WORKERS may change).
ifdef RESUME
COMPARE_ARGS = resume=$(RESUME) workers=$(WORKERS)
else
COMPARE_ARGS = $(if $(DATASETS),datasets=$(call quote,$(DATASETS)),dataset=$(call quote,$(DATASET))) $(call opt,seeds,$(SEEDS)) \
	$(call opt,losses,$(LOSSES)) $(call opt,epochs,$(EPOCHS)) $(call opt,imbalance,$(IMBALANCE)) \
	$(call opt,landscape,$(LANDSCAPE)) $(call opt,tune,$(TUNE)) $(if $(SWEEP),sweep=$(call quote,$(SWEEP))) \
	workers=$(WORKERS) $(ARGS)
endif

compare: $(STAMP_RUN) ## Compare losses over seeds in a grid: make compare DATASET=digits SEEDS=3 LOSSES=ce,focal WORKERS=2
	$(PY) -m training.compare $(COMPARE_ARGS)

report: $(STAMP_RUN) ## Rebuild a compare report from the store: make report [EXPERIMENT=...] [PARENT=run_id]
	$(PY) -m training.report $(call opt,experiment,$(EXPERIMENT)) $(call opt,parent,$(PARENT)) $(ARGS)

landscape: $(STAMP_RUN) ## Loss landscape of a finished run: make landscape RUN=<run_id>
	$(PY) -m training.landscape run=$(RUN) $(ARGS)

server: $(STAMP_DEV) ## Team tracking server on PostgreSQL (see mlflow/README.md)
	bash mlflow/server.sh

workers: $(STAMP_RUN) ## N local tf.distribute workers of one training: make workers TRAIN_WORKERS=2 LOSS=ce
	$(PY) -m training.workers workers=$(TRAIN_WORKERS) $(TRAIN_ARGS)

runs-clean: $(STAMP_RUN) ## Mark RUNNING runs whose process is gone (or, on another host, whose heartbeat is stale) KILLED
	$(PY) -m training.store $(ARGS)

clean: ## Remove caches (keeps .venv, mlflow.db and checkpoints)
	rm -rf .pytest_cache .ruff_cache **/__pycache__
