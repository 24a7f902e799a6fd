# reprotune: the two set-up commands are `make sweep-addition` and `make test`; both create .venv on first use.
# Budgets are make variables: make sweep-addition CONFIGS=4 SEEDS=5 STEPS=27000 CONCURRENCY=2 SPACE=full

PYTHON ?= python3.11
VENV ?= .venv
PY := '$(subst ','\'',$(value VENV))'/bin/python
# CPU wheel by default; a GPU user overrides, e.g. TORCH_SPEC="torch==2.13.0 --index-url <cuda index>"
TORCH_SPEC ?= torch==2.13.0
STAMP := $(value VENV)/.installed

SPACE ?= default
CONFIGS ?=
SEEDS ?=
STEPS ?=
EVAL_INTERVAL ?=
MODE ?=
STOP_AFTER_SUCCESS ?=
CONCURRENCY ?=
THREADS ?=
GPUS ?=
SEARCH_SEED ?=
NAME ?=
EXPERIMENT ?=
TRACKING_URI ?=
ARGS ?=
CLAIM ?=
CLAIMS ?=
# make rerun RUN=<run id>; make compare A=<selector> B=<selector> (README, "Re-running and comparing runs")
RUN ?=
A ?=
B ?=
COMMAND_JOB ?=
JOB ?=
CKPT ?= 456p_s43
PROTOCOL ?= both
MLFLOW_PORT ?= 5000
# Optuna's view of every sweep (tune_jobs/runtime/study.py): a journal file beside the MLflow store
OPTUNA_JOURNAL ?= $(CURDIR)/optuna/studies.log
OPTUNA_PORT ?= 8080
# Cluster mode (docs/cluster.md): make cluster-up; make sweep-addition RAY_ADDRESS=127.0.0.1:6390 STORAGE=...
RAY_ADDRESS ?=
STORAGE ?=
CLUSTER_ROOT ?= $(CURDIR)/.cluster
CLUSTER_PORT ?= 6390
MLFLOW_SERVER_PORT ?= 5001
MLFLOW_SERVER_HOST ?= 127.0.0.1

# Every value a user gives reaches the command line single-quoted: the shell never parses it. A value
# set on the command line or in the environment is taken unexpanded ($(value)), so make never runs the
# $(shell ...) or $(...) it may hold either; a value holding a newline is refused before anything runs.
q = '$(subst ','\'',$(1))'
uval = $(if $(filter command line environment%,$(origin $(1))),$(value $(1)),$($(1)))
qv = $(call q,$(call uval,$(1)))
opt = $(if $(call uval,$(2)),$(1) $(call qv,$(2)))
# Words of a list variable (ARGS, TORCH_SPEC), each its own single-quoted argument
argwords = $(foreach w,$(call uval,$(1)),$(call q,$(w)))
define newline


endef
USER_VARIABLES := PYTHON VENV TORCH_SPEC SPACE CONFIGS SEEDS STEPS EVAL_INTERVAL MODE STOP_AFTER_SUCCESS CONCURRENCY \
  THREADS GPUS SEARCH_SEED NAME EXPERIMENT TRACKING_URI ARGS CLAIM COMMAND_JOB JOB CKPT PROTOCOL MLFLOW_PORT \
  OPTUNA_JOURNAL OPTUNA_PORT RAY_ADDRESS STORAGE CLUSTER_ROOT CLUSTER_PORT MLFLOW_SERVER_PORT MLFLOW_SERVER_HOST \
  RESUME SET WORKERS SEEDS_PER_TRIAL CORPUS MAX_BYTES CLAIMS RUN A B
$(foreach v,$(USER_VARIABLES),$(if $(findstring $(newline),$(value $(v))),$(error $(v) holds a newline; give each value on one line)))
# make would expand a command-line variable to export it into a recipe's environment: they reach programs as
# arguments only (RAY_ADDRESS from the environment becomes --ray-address)
unexport $(USER_VARIABLES)
# RESUME=1 continues the job NAME (default: the job's newest one) from Tune's storage with Tuner.restore
RESUME ?=
RESUME_ARG = $(if $(filter-out 0,$(call uval,RESUME)),--resume)
# SET="train.lr=0.015 model.d_model=8": fix or re-range fields of the space (TOML values, no spaces inside one)
SET ?=
WORKERS ?=
# SEEDS_PER_TRIAL=K: K seeds of a configuration trained stacked in one trial (the addition trainable)
SEEDS_PER_TRIAL ?=
SETS = $(foreach s,$(call uval,SET),--set $(call q,$(s)))
# The run settings every job takes, from one place: cluster, storage, tracking, names, resume, resources.
RUN_ARGS = $(call opt,--max-concurrent,CONCURRENCY) $(call opt,--threads,THREADS) \
  $(call opt,--gpus-per-trial,GPUS) $(call opt,--workers,WORKERS) $(call opt,--seeds-per-trial,SEEDS_PER_TRIAL) \
  $(call opt,--name,NAME) \
  $(call opt,--experiment,EXPERIMENT) $(call opt,--tracking-uri,TRACKING_URI) \
  $(call opt,--ray-address,RAY_ADDRESS) $(call opt,--storage-path,STORAGE) $(RESUME_ARG)
SWEEP_ARGS = $(SETS) $(call opt,--num-configs,CONFIGS) $(call opt,--seeds,SEEDS) \
  $(call opt,--train-steps,STEPS) $(call opt,--eval-interval,EVAL_INTERVAL) $(call opt,--search-seed,SEARCH_SEED)

# Language-model jobs (docs/lm.md): make sweep-vocab CONFIGS=4 SEEDS=3 STEPS=400 CORPUS=stdlib MAX_BYTES=2000000
CORPUS ?=
MAX_BYTES ?=
# A driver joining the local cluster needs its auth token: the env file `make cluster-up` wrote, sourced
# only when RAY_ADDRESS is the address it records (so another cluster's address gets no local token).
CLUSTER_ENV = $(if $(call uval,RAY_ADDRESS),if grep -qsx $(call q,export RAY_ADDRESS=$(call uval,RAY_ADDRESS)) \
  $(call qv,CLUSTER_ROOT)/cluster.env; then . $(call qv,CLUSTER_ROOT)/cluster.env; fi;)
JOB_PY = $(CLUSTER_ENV) $(PY) -m

.PHONY: venv sweep-addition sweep-addition-smoke reproduce report rerun compare claims sweep-command sweep-vocab ablate-memory crosslingual evaluate \
  mlflow-ui optuna-dashboard test test-slow test-faults test-ui clean cluster-up cluster-down cluster-status mlflow-server mlflow-server-down test-cluster

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(call qv,PYTHON) -m venv $(call qv,VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(call argwords,TORCH_SPEC)
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(call q,$(STAMP))

sweep-addition: $(STAMP)
	$(JOB_PY) tune_jobs.sweep_addition --space $(call qv,SPACE) $(SWEEP_ARGS) $(call opt,--mode,MODE) \
	  $(call opt,--stop-after-success,STOP_AFTER_SUCCESS) $(RUN_ARGS) $(call argwords,ARGS)

sweep-addition-smoke: SPACE = smoke
sweep-addition-smoke: CONFIGS := $(or $(value CONFIGS),2)
sweep-addition-smoke: sweep-addition

# make reproduce CLAIM=512p-s42 [SEEDS=2] [STEPS=300] [THREADS=2] [MODE=fast] [COMMAND_JOB=command_jobs/reference_repo.toml]
reproduce: $(STAMP)
	$(if $(value CLAIM),,$(error CLAIM=<name> is required; `make claims` lists them))
	$(JOB_PY) tune_jobs.reproduce --claim $(call qv,CLAIM) $(call opt,--seeds,SEEDS) $(call opt,--train-steps,STEPS) \
	  $(call opt,--mode,MODE) $(call opt,--command-job,COMMAND_JOB) $(RUN_ARGS) $(call argwords,ARGS)

# make report [CLAIMS="512p-s42 512p-s42-mps"] [SEEDS=5 or SEEDS=5..12] [STEPS=300] [RESUME=1 NAME=report-...]
report: $(STAMP)
	$(JOB_PY) tune_jobs.report $(if $(call uval,CLAIMS),--claims $(call argwords,CLAIMS)) $(call opt,--seeds,SEEDS) \
	  $(call opt,--train-steps,STEPS) $(RUN_ARGS) $(call argwords,ARGS)

# make rerun RUN=<run id> [TRACKING_URI=...] [ARGS=--allow-other-commit]: train a logged trial again from its params
rerun: $(STAMP)
	$(if $(value RUN),,$(error RUN=<MLflow run id> is required: a trial run's id, e.g. from its rerun_command tag))
	$(PY) -m tune_jobs.rerun --run $(call qv,RUN) $(call opt,--tracking-uri,TRACKING_URI) $(call argwords,ARGS)

# make compare A=<selector> B=<selector> [TRACKING_URI=...]: two sets of seed runs, per configuration and seed
compare: $(STAMP)
	$(if $(and $(value A),$(value B)),,$(error A=<selector> and B=<selector> are required: a sweep name, a store URI, tag=value, or claim:<prefix>[@device]))
	$(PY) -m tune_jobs.compare --a $(call qv,A) --b $(call qv,B) $(call opt,--tracking-uri,TRACKING_URI) $(call argwords,ARGS)

claims: $(STAMP)
	$(PY) -m tune_jobs.reproduce --list

# make sweep-command JOB=command_jobs/reference_repo.toml [CONFIGS=2] [SEEDS=3]
sweep-command: $(STAMP)
	$(if $(value JOB),,$(error JOB=<job file> is required, e.g. command_jobs/reference_repo.toml))
	$(JOB_PY) tune_jobs.sweep_command --job $(call qv,JOB) $(SWEEP_ARGS) $(RUN_ARGS) $(call argwords,ARGS)

sweep-vocab: $(STAMP)
	$(JOB_PY) tune_jobs.sweep_vocab --space $(call qv,SPACE) $(SWEEP_ARGS) $(call opt,--corpus,CORPUS) \
	  $(call opt,--max-bytes,MAX_BYTES) $(RUN_ARGS) $(call argwords,ARGS)

# The gate and ablation audits' planted fault (docs/lm.md): memory LM at gain 1 and 0.5/sqrt(d_model), 3 seeds each
ablate-memory: $(STAMP)
	$(JOB_PY) tune_jobs.sweep_vocab --space ablate_memory --grid --experiment ablate-memory $(SWEEP_ARGS) $(RUN_ARGS) $(call argwords,ARGS)

crosslingual: $(STAMP)
	$(JOB_PY) tune_jobs.crosslingual $(call opt,--seeds,SEEDS) $(call opt,--train-steps,STEPS) \
	  $(call opt,--max-bytes,MAX_BYTES) $(RUN_ARGS) $(call argwords,ARGS)

evaluate: $(STAMP)
	$(PY) -m trainables.addition evaluate --checkpoint $(call qv,CKPT) --protocol $(call qv,PROTOCOL)

# Prints the newest job's runs view (its direct URL) and what to look at, then serves the embedded store
mlflow-ui: $(STAMP)
	@$(PY) -m mlflow_utils.ui --tracking-uri sqlite:///$(call q,$(CURDIR))/mlruns.db --url http://127.0.0.1:$(call qv,MLFLOW_PORT)
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false $(call qv,VENV)/bin/mlflow server --workers 1 --host 127.0.0.1 --port $(call qv,MLFLOW_PORT) \
	  --backend-store-uri sqlite:///$(call q,$(CURDIR))/mlruns.db --default-artifact-root $(call q,$(CURDIR))/mlartifacts

# Optuna's dashboard (history, parameter importance) over every sweep's study, on 127.0.0.1:$(OPTUNA_PORT)
optuna-dashboard: $(STAMP)
	@test -f $(call qv,OPTUNA_JOURNAL) || { echo no $(call qv,OPTUNA_JOURNAL) "yet: a sweep writes it (make sweep-addition-smoke)"; exit 1; }
	@echo "Optuna dashboard on http://127.0.0.1:"$(call qv,OPTUNA_PORT) over $(call qv,OPTUNA_JOURNAL) "(one study per sweep, named by its job)"
	$(call qv,VENV)/bin/optuna-dashboard --host 127.0.0.1 --port $(call qv,OPTUNA_PORT) $(call qv,OPTUNA_JOURNAL)

test: $(STAMP)
	$(PY) -m pytest -q --durations=15

# The MLflow UI in headless Chromium (Debian's chromium and chromium-driver) after a smoke sweep; screenshots
# in ui-screenshots/ (REPROTUNE_UI_SCREENSHOTS to change)
test-ui: $(STAMP)
	$(PY) -m pytest -q -m ui

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

# Fault injection: killed trial process, killed driver then RESUME, killed worker node, MLflow outage
test-faults: $(STAMP)
	REPROTUNE_FAULT_FIGURES=$(call q,$(CURDIR))/fault-figures.jsonl $(PY) -m pytest -q -m faults
	@tail -5 $(call q,$(CURDIR))/fault-figures.jsonl

clean:
	rm -rf ray_results mlartifacts mlruns.db optuna ui-screenshots .pytest_cache

# Local two-node Ray cluster (head + worker, 1 CPU each, ports CLUSTER_PORT..+299, token auth); docs/cluster.md
cluster-up: $(STAMP)
	$(PY) -m tune_jobs.cluster up --root $(call qv,CLUSTER_ROOT) --port $(call qv,CLUSTER_PORT)
	@echo "next: make mlflow-server, then"
	@echo "  make sweep-addition RAY_ADDRESS=127.0.0.1:"$(call qv,CLUSTER_PORT) "TRACKING_URI=http://"$(call qv,MLFLOW_SERVER_HOST)":"$(call qv,MLFLOW_SERVER_PORT) "STORAGE="$(call qv,CLUSTER_ROOT)/storage

cluster-down: $(STAMP)
	$(PY) -m tune_jobs.cluster down --root $(call qv,CLUSTER_ROOT)

cluster-status: $(STAMP)
	$(PY) -m tune_jobs.cluster status --root $(call qv,CLUSTER_ROOT)

test-cluster: $(STAMP)
	$(PY) -m pytest -q -m cluster

# MLflow tracking server for cluster runs, in the background (pid and log in CLUSTER_ROOT); artifacts are
# served over HTTP (--serve-artifacts), so Ray workers need no access to its filesystem.
mlflow-server: $(STAMP)
	@mkdir -p $(call qv,CLUSTER_ROOT)
	@if test -f $(call qv,CLUSTER_ROOT)/mlflow.pid && kill -0 $$(cat $(call qv,CLUSTER_ROOT)/mlflow.pid) 2>/dev/null; then \
	  echo "mlflow server already running (pid $$(cat $(call qv,CLUSTER_ROOT)/mlflow.pid)); make mlflow-server-down"; exit 1; fi
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false setsid $(call qv,VENV)/bin/mlflow server --workers 1 --host $(call qv,MLFLOW_SERVER_HOST) \
	  --port $(call qv,MLFLOW_SERVER_PORT) --backend-store-uri sqlite:///$(call qv,CLUSTER_ROOT)/mlflow.db \
	  --artifacts-destination $(call qv,CLUSTER_ROOT)/mlartifacts --serve-artifacts \
	  > $(call qv,CLUSTER_ROOT)/mlflow.log 2>&1 < /dev/null & echo $$! > $(call qv,CLUSTER_ROOT)/mlflow.pid
	@for i in $$(seq 60); do \
	  $(PY) -c "import sys, urllib.request as u; u.urlopen(sys.argv[1], timeout=2)" \
	    http://$(call qv,MLFLOW_SERVER_HOST):$(call qv,MLFLOW_SERVER_PORT)/health \
	    2>/dev/null && exit 0; \
	  kill -0 $$(cat $(call qv,CLUSTER_ROOT)/mlflow.pid) 2>/dev/null || { tail -5 $(call qv,CLUSTER_ROOT)/mlflow.log; exit 1; }; \
	  sleep 1; done; echo "no answer on /health after 60 s; see" $(call qv,CLUSTER_ROOT)/mlflow.log; exit 1
	@echo "mlflow server on http://"$(call qv,MLFLOW_SERVER_HOST)":"$(call qv,MLFLOW_SERVER_PORT) "(pid $$(cat $(call qv,CLUSTER_ROOT)/mlflow.pid), log" $(call qv,CLUSTER_ROOT)/mlflow.log")"

mlflow-server-down:
	@if test -f $(call qv,CLUSTER_ROOT)/mlflow.pid; then kill -TERM -$$(cat $(call qv,CLUSTER_ROOT)/mlflow.pid) \
	  && echo "stopped mlflow server (process group $$(cat $(call qv,CLUSTER_ROOT)/mlflow.pid))"; rm -f $(call qv,CLUSTER_ROOT)/mlflow.pid; \
	  else echo no $(call qv,CLUSTER_ROOT)/mlflow.pid; fi
