# losslab: `make help` lists the targets. Every target that runs Python first makes sure
# .venv exists and holds the project (re-installed when pyproject.toml changes).
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.install-stamp

# Training knobs (see README "Configuration"); empty means "the config default".
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
# Compare / report / landscape knobs.
SEEDS      ?=
LOSSES     ?=
EXPERIMENT ?=
PARENT     ?=
RUN        ?=
# UI / server.
PORT ?= 5000
HOST ?= 127.0.0.1
WORKERS ?= 2

opt = $(if $(2),$(1)=$(2))
# A resumed run takes its config from the run itself: only what is given explicitly is passed.
ifdef RESUME
TRAIN_ARGS = resume=$(RESUME) $(call opt,epochs,$(EPOCHS)) $(ARGS)
else
TRAIN_ARGS = loss=$(LOSS) dataset=$(DATASET) $(call opt,epochs,$(EPOCHS)) $(call opt,seed,$(SEED)) \
	$(call opt,imbalance,$(IMBALANCE)) $(call opt,strategy,$(STRATEGY)) \
	$(call opt,devices,$(DEVICES)) $(call opt,landscape,$(LANDSCAPE)) $(ARGS)
endif

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $@

.PHONY: help venv train test test-backends lint bench ui compare report landscape server workers clean

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  make %-14s %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo "  Variables: LOSS=$(LOSS) DATASET=$(DATASET) EPOCHS SEED IMBALANCE RESUME STRATEGY DEVICES ARGS=\"key=value ...\""

venv: $(STAMP) ## Create .venv and install the project (done automatically by the other targets)

train: $(STAMP) ## Train one model: make train LOSS=focal DATASET=digits EPOCHS=10 ARGS="gamma=1"
	$(PY) -m training.train $(TRAIN_ARGS)

test: $(STAMP) ## Run the test suite (tests/)
	$(PY) -m pytest -q

test-backends: $(STAMP) ## Run tests/losses under the JAX and PyTorch backends (installs their CPU builds)
	$(PY) -c "import jax" 2>/dev/null || $(PY) -m pip install -q "jax[cpu]>=0.4.30"
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "torch==2.13.0"
	KERAS_BACKEND=jax $(PY) -m pytest -q tests/losses
	KERAS_BACKEND=torch $(PY) -m pytest -q tests/losses

lint: $(STAMP) ## Lint with ruff
	$(PY) -m ruff check .

bench: $(STAMP) ## Benchmarks: losses vs references, training throughput (medians, ratios)
	$(PY) -m benchmarks.losses
	$(PY) -m benchmarks.train

ui: $(STAMP) ## MLflow UI on 127.0.0.1:$(PORT) over the default store
	$(PY) -m mlflow ui --backend-store-uri "$${MLFLOW_TRACKING_URI:-sqlite:///mlflow.db}" --host 127.0.0.1 --port $(PORT)

compare: $(STAMP) ## Compare losses over seeds: make compare DATASET=digits SEEDS=3 LOSSES=ce,focal
	$(PY) -m training.compare dataset=$(DATASET) $(call opt,seeds,$(SEEDS)) $(call opt,losses,$(LOSSES)) \
		$(call opt,epochs,$(EPOCHS)) $(call opt,imbalance,$(IMBALANCE)) $(call opt,landscape,$(LANDSCAPE)) $(ARGS)

report: $(STAMP) ## Rebuild a compare report from the store: make report [EXPERIMENT=...] [PARENT=run_id]
	$(PY) -m training.report $(call opt,experiment,$(EXPERIMENT)) $(call opt,parent,$(PARENT))

landscape: $(STAMP) ## Loss landscape of a finished run: make landscape RUN=<run_id>
	$(PY) -m training.landscape run=$(RUN) $(ARGS)

server: $(STAMP) ## Team tracking server on PostgreSQL (see mlflow/README.md)
	bash mlflow/server.sh

workers: $(STAMP) ## N local tf.distribute workers on loopback: make workers WORKERS=2 LOSS=ce
	$(PY) -m training.workers --workers $(WORKERS) -- $(TRAIN_ARGS)

clean: ## Remove caches (keeps .venv, mlflow.db and checkpoints)
	rm -rf .pytest_cache .ruff_cache **/__pycache__
