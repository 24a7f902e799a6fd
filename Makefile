# reprotune: the two set-up commands are `make sweep-addition` and `make test`; both create .venv on first use.
# Budgets are make variables: make sweep-addition CONFIGS=4 SEEDS=5 STEPS=27000 CONCURRENCY=2 SPACE=full

PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
# CPU wheel by default; a GPU user overrides, e.g. TORCH_SPEC="torch==2.13.0 --index-url <cuda index>"
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.installed

SPACE ?= default
CONFIGS ?=
SEEDS ?=
STEPS ?=
EVAL_INTERVAL ?=
MODE ?=
CONCURRENCY ?=
THREADS ?=
GPUS ?=
SEARCH_SEED ?=
NAME ?=
EXPERIMENT ?=
TRACKING_URI ?=
ARGS ?=
CLAIM ?=
COMMAND_JOB ?=
JOB ?=
CKPT ?= 456p_s43
PROTOCOL ?= both
MLFLOW_PORT ?= 5000

opt = $(if $(2),$(1) $(2))
SWEEP_ARGS = --space $(SPACE) $(call opt,--num-configs,$(CONFIGS)) $(call opt,--seeds,$(SEEDS)) \
  $(call opt,--train-steps,$(STEPS)) $(call opt,--eval-interval,$(EVAL_INTERVAL)) $(call opt,--mode,$(MODE)) \
  $(call opt,--max-concurrent,$(CONCURRENCY)) $(call opt,--threads,$(THREADS)) $(call opt,--gpus-per-trial,$(GPUS)) \
  $(call opt,--search-seed,$(SEARCH_SEED)) $(call opt,--name,$(NAME)) $(call opt,--experiment,$(EXPERIMENT)) \
  $(call opt,--tracking-uri,$(TRACKING_URI)) $(ARGS)

# Language-model jobs (docs/lm.md): make sweep-vocab CONFIGS=4 SEEDS=3 STEPS=400 CORPUS=stdlib MAX_BYTES=2000000
CORPUS ?=
MAX_BYTES ?=
VOCAB_ARGS = --space $(SPACE) $(call opt,--num-configs,$(CONFIGS)) $(call opt,--seeds,$(SEEDS)) \
  $(call opt,--train-steps,$(STEPS)) $(call opt,--eval-interval,$(EVAL_INTERVAL)) $(call opt,--corpus,$(CORPUS)) \
  $(call opt,--max-bytes,$(MAX_BYTES)) $(call opt,--max-concurrent,$(CONCURRENCY)) $(call opt,--threads,$(THREADS)) \
  $(call opt,--gpus-per-trial,$(GPUS)) $(call opt,--search-seed,$(SEARCH_SEED)) $(call opt,--name,$(NAME)) \
  $(call opt,--experiment,$(EXPERIMENT)) $(call opt,--tracking-uri,$(TRACKING_URI)) $(ARGS)
CROSS_ARGS = $(call opt,--seeds,$(SEEDS)) $(call opt,--train-steps,$(STEPS)) $(call opt,--max-bytes,$(MAX_BYTES)) \
  $(call opt,--max-concurrent,$(CONCURRENCY)) $(call opt,--threads,$(THREADS)) $(call opt,--name,$(NAME)) \
  $(call opt,--experiment,$(EXPERIMENT)) $(call opt,--tracking-uri,$(TRACKING_URI)) $(ARGS)

.PHONY: venv sweep-addition sweep-addition-smoke reproduce claims sweep-command sweep-vocab crosslingual evaluate \
  mlflow-ui test test-slow clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH_SPEC)
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

sweep-addition: $(STAMP)
	$(PY) -m tune_jobs.sweep_addition $(SWEEP_ARGS)

sweep-addition-smoke: SPACE = smoke
sweep-addition-smoke: CONFIGS := $(or $(CONFIGS),2)
sweep-addition-smoke: $(STAMP)
	$(PY) -m tune_jobs.sweep_addition $(SWEEP_ARGS)

# make reproduce CLAIM=512p-s42 [SEEDS=2] [STEPS=300] [THREADS=2] [MODE=fast] [COMMAND_JOB=command_jobs/reference_repo.toml]
reproduce: $(STAMP)
	$(if $(CLAIM),,$(error CLAIM=<name> is required; `make claims` lists them))
	$(PY) -m tune_jobs.reproduce --claim $(CLAIM) $(call opt,--seeds,$(SEEDS)) $(call opt,--train-steps,$(STEPS)) \
	  $(call opt,--threads,$(THREADS)) $(call opt,--mode,$(MODE)) $(call opt,--command-job,$(COMMAND_JOB)) \
	  $(call opt,--max-concurrent,$(CONCURRENCY)) $(call opt,--gpus-per-trial,$(GPUS)) $(call opt,--name,$(NAME)) \
	  $(call opt,--tracking-uri,$(TRACKING_URI)) $(ARGS)

claims: $(STAMP)
	$(PY) -m tune_jobs.reproduce --list

# make sweep-command JOB=command_jobs/reference_repo.toml [CONFIGS=2] [SEEDS=3]
sweep-command: $(STAMP)
	$(if $(JOB),,$(error JOB=<job file> is required, e.g. command_jobs/reference_repo.toml))
	$(PY) -m tune_jobs.sweep_command --job $(JOB) $(call opt,--num-configs,$(CONFIGS)) $(call opt,--seeds,$(SEEDS)) \
	  $(call opt,--max-concurrent,$(CONCURRENCY)) $(call opt,--threads,$(THREADS)) $(call opt,--search-seed,$(SEARCH_SEED)) \
	  $(call opt,--name,$(NAME)) $(call opt,--tracking-uri,$(TRACKING_URI)) $(ARGS)
sweep-vocab: $(STAMP)
	$(PY) -m tune_jobs.sweep_vocab $(VOCAB_ARGS)

crosslingual: $(STAMP)
	$(PY) -m tune_jobs.crosslingual $(CROSS_ARGS)

evaluate: $(STAMP)
	$(PY) -m trainables.addition evaluate --checkpoint $(CKPT) --protocol $(PROTOCOL)

mlflow-ui: $(STAMP)
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false $(VENV)/bin/mlflow server --workers 1 --host 127.0.0.1 --port $(MLFLOW_PORT) \
	  --backend-store-uri sqlite:///$(CURDIR)/mlruns.db --default-artifact-root $(CURDIR)/mlartifacts

test: $(STAMP)
	$(PY) -m pytest -q

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

clean:
	rm -rf ray_results mlartifacts mlruns.db .pytest_cache
