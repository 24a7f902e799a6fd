"""Views of the runs table that open ready to read: MLflow's shared view states.

MLflow's UI keeps a shared view of an experiment's runs table in the experiment tag
``mlflow.sharedViewState.<key>`` (JSON: search facets such as ``searchFilter``, and table state such
as ``selectedColumns`` and ``groupBy``; MLflow 3.17's ``viewStateShareKey``) and opens it from the runs
view's URL with ``&viewStateShareKey=<key>``. A job writes two: the experiment's runs with the
columns that say how each seed did (``RUNS_VIEW``), and its own trials grouped by configuration
(``by_config_key``), whose charts draw each configuration's mean and min/max band.
"""

from __future__ import annotations

import json
from typing import Mapping, Optional, Sequence

from mlflow.tracking import MlflowClient

SHARED_VIEW_TAG = "mlflow.sharedViewState."
"""Prefix of the experiment tag holding a shared view (MLflow UI's ``viewStateShareKey``)."""
RUNS_VIEW = "reprotune-runs"
"""Share key of the experiment's runs view (each job rewrites it with its trial's columns)."""


def column(kind: str, key: str) -> str:
    """A runs-table column as the UI names it: ``kind`` is attributes, params, metrics or tags."""
    return f"{kind}.`{key}`"


def by_config_key(sweep_id: str) -> str:
    """Share key of a job's view of its trials grouped by configuration."""
    return f"by-config-{sweep_id}"


SORT_BY_NAME = "tags.`mlflow.runName`"
"""The UI's sort key of the run name. A grouped view sorts by it: sorted by creation time (the default)
MLflow 3.17's UI also fetches the parent of every run its filter matches (``shouldFetchParents`` in its
runs-search query), which, lacking the group tag, falls into an 'Additional runs' group and draws its
metrics as charts of their own."""
RUN_NAME = "attributes.`Run Name`"
"""The run-name column (its width is kept only for columns listed in ``columnOrder``)."""


def width(column_id: str) -> int:
    """A column's width in pixels, wide enough for its heading (the UI cuts headings to ~100 px)."""
    return 280 if column_id == RUN_NAME else min(320, 40 + 8 * len(column_id.split("`")[1]))


def view_state(columns: Sequence[str], search_filter: str = "", group_by_tag: Optional[str] = None,
               widths: Optional[Mapping[str, int]] = None) -> dict:
    """A shared view: ``columns`` shown right after the run name and its creation time, each as wide as
    ``widths`` says or as its heading needs, runs matching ``search_filter``, grouped by the tag
    ``group_by_tag`` (average, with min/max bands in charts) and sorted by run name (``SORT_BY_NAME``:
    the filter's runs only) when given; every run shown in charts."""
    order = [RUN_NAME, *columns]
    state: dict = {"selectedColumns": list(columns), "searchFilter": search_filter, "runsHiddenMode": "SHOW_ALL",
                   "columnOrder": order, "columnWidths": {c: (widths or {}).get(c, width(c)) for c in order}}
    if group_by_tag:
        state["groupBy"] = {"aggregateFunction": "average", "groupByKeys": [{"mode": "tag", "groupByData": group_by_tag}]}
        state["useGroupedValuesInCharts"] = True
        state["orderByKey"], state["orderByAsc"] = SORT_BY_NAME, True
    return state


def share_view(client: MlflowClient, experiment_id: str, key: str, state: dict) -> None:
    """Write (or replace) the shared view ``key`` of an experiment."""
    client.set_experiment_tag(experiment_id, f"{SHARED_VIEW_TAG}{key}", json.dumps(state))


def runs_view(base_url: str, experiment_id: str, key: Optional[str] = None) -> str:
    """The runs table of an experiment (not MLflow 3's GenAI overview), in the shared view ``key``."""
    url = f"{base_url.rstrip('/')}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"
    return f"{url}&viewStateShareKey={key}" if key else url
