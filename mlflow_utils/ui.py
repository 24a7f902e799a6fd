"""Where to look in MLflow's UI: the direct URL of the newest sweep's runs view, and what to look at.

    python -m mlflow_utils.ui --tracking-uri sqlite:///mlruns.db --url http://127.0.0.1:5000

MLflow 3 opens an experiment on its GenAI view; the table of runs (parent runs with their nested
children) is the view ``#/experiments/<id>/runs?workflowType=machine_learning``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Optional

from mlflow.tracking import MlflowClient

from mlflow_utils.runs import ROLE_TAG, SWEEP_ID_TAG
from mlflow_utils.tracking import resolve_tracking_uri
from mlflow_utils.views import RUNS_VIEW, SHARED_VIEW_TAG, by_config_key, runs_view

GUIDE = (
    "runs view: each job is a parent run; expand it (+) for one run per seed, named '<configuration> s<seed>', "
    "with its outcome (success, failed, errored) and its configuration's success rate",
    "the parent's page: the description holds the verdict table and the figures (success rate with its Wilson "
    "interval, every seed's learning curve, grokking steps); Artifacts: verdict.json, trials.json, figures/",
    "by configuration: the job's seeds grouped per configuration; its Chart view draws each configuration's "
    "mean with a min/max band; make optuna-dashboard shows Optuna's view (history, parameter importance)",
)
"""The three lines ``make mlflow-ui`` prints (README, 'Looking at a sweep')."""


def run_page(base_url: str, experiment_id: str, run_id: str) -> str:
    """A run's page (description, params, metrics, artifacts), with the model-training side bar."""
    return f"{base_url.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}?workflowType=machine_learning"


def newest_job(client: MlflowClient) -> Optional[Any]:
    """The most recently started parent run (tag ``role=sweep``) of any experiment, or None."""
    ids = [e.experiment_id for e in client.search_experiments(max_results=1000)]
    if not ids:
        return None
    runs = client.search_runs(ids, filter_string=f"tags.{ROLE_TAG} = 'sweep'", order_by=["attributes.start_time DESC"],
                              max_results=1)
    return runs[0] if runs else None


def guide(client: MlflowClient, base_url: str) -> list[str]:
    """The lines ``make mlflow-ui`` prints: the newest job's runs view (its shared views when the job
    wrote them), its page, then ``GUIDE``."""
    run = newest_job(client)
    if run is None:
        return [f"MLflow UI on {base_url}: no job logged yet (make sweep-addition-smoke logs one in minutes)"]
    experiment = client.get_experiment(run.info.experiment_id)
    shared = {key[len(SHARED_VIEW_TAG):] for key in experiment.tags if key.startswith(SHARED_VIEW_TAG)}
    grouped = by_config_key(run.data.tags.get(SWEEP_ID_TAG, ""))
    lines = [f"newest job: {run.info.run_name} (experiment {experiment.name!r}, {run.info.status})",
             f"  runs view:        {runs_view(base_url, experiment.experiment_id, RUNS_VIEW if RUNS_VIEW in shared else None)}",
             f"  its page:         {run_page(base_url, experiment.experiment_id, run.info.run_id)}"]
    if grouped in shared:
        lines.append(f"  by configuration: {runs_view(base_url, experiment.experiment_id, grouped)}")
    return [*lines, "what to look at:", *(f"  {index}. {line}" for index, line in enumerate(GUIDE, 1))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracking-uri", default=None, help="MLflow store (default: the project's SQLite file)")
    parser.add_argument("--url", default="http://127.0.0.1:5000", help="where the UI is served")
    args = parser.parse_args(argv)
    try:
        lines = guide(MlflowClient(resolve_tracking_uri(args.tracking_uri)), args.url)
    except Exception as error:  # noqa: BLE001 - a guide must never keep the UI from starting
        lines = [f"(no guide: {error})"]
    print("\n".join(lines), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
