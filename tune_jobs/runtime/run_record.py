"""A child run's record of what it ran: the resolved config as params, and the command that re-runs it.

A trial body reports its resolved config (every field of its config dataclasses, defaults included)
as ``param/<section>.<field>`` strings in each result (``resolved_report``); the MLflow callback logs
those the trial config does not already name as params, once per run (``new_params``), with the
run's source tags (``source_tags``). ``decode_section`` reads such params back into a config
section, so a run can be rebuilt from its params alone (``tune_jobs.rerun``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import shlex
import typing
from typing import Any, Literal, Mapping

from tune_jobs.runtime.trial_config import flat_fields

PARAM_PREFIX = "param/"
"""Prefix of a result key holding one resolved-config param (``param/train.batch_size``)."""
SEED_FIELD = "seed"
"""A config field that is the replicate's ``seed`` param, never logged again under its section."""
RERUN_TAG = "rerun_command"
"""Tag holding the command that re-runs a child run (also its ``mlflow.source.name``)."""
GROKKING_STEP = "grokking_step"
"""Child-run metric: the seed's first evaluation step at or above the success threshold (absent when censored)."""
SOURCE_NAME_TAG = "mlflow.source.name"
SOURCE_TYPE_TAG = "mlflow.source.type"


def param_text(value: Any) -> str:
    """A param value as MLflow shows it: a string as it is, anything else as JSON (tuples as lists)."""
    return value if isinstance(value, str) else json.dumps(value)


def resolved_report(sections: Mapping[str, Any], extra: Mapping[str, Any] | None = None) -> dict[str, str]:
    """``param/<section>.<field>`` -> text for every field of each config dataclass in ``sections``
    (section name -> dataclass instance), the seed field left out (it is the ``seed`` param), and
    ``param/<key>`` for each of ``extra`` (e.g. ``schedule.kind``)."""
    out = {f"{PARAM_PREFIX}{name}.{f.name}": param_text(getattr(config, f.name))
           for name, config in sections.items() for f in dataclasses.fields(config) if f.name != SEED_FIELD}
    out.update({f"{PARAM_PREFIX}{key}": param_text(value) for key, value in (extra or {}).items()})
    return out


def new_params(result: Mapping[str, Any], trial_config: Mapping[str, Any], logged: set[str]) -> dict[str, str]:
    """The resolved-config params of ``result`` its run lacks: those not in ``logged`` (the caller adds
    them once written) nor named by the trial config itself (``flat_params`` logged those at the run's
    start, as given)."""
    given = set(flat_fields(trial_config))
    params = {key[len(PARAM_PREFIX):]: value for key, value in result.items()
              if key.startswith(PARAM_PREFIX) and isinstance(value, str)}
    return {key: value for key, value in params.items() if key not in given and key not in logged}


def rerun_command(run_id: str, tracking_uri: str | None = None) -> str:
    """The command that re-runs a child run from its params: ``make rerun RUN=<id>``, with
    ``TRACKING_URI=<uri>`` (shell-quoted) when the store is given."""
    store = "" if tracking_uri is None else f" TRACKING_URI={shlex.quote(tracking_uri)}"
    return f"make rerun RUN={run_id}{store}"


def source_tags(run_id: str, tracking_uri: str | None = None) -> dict[str, str]:
    """Tags naming a child run's source as the command that re-runs it (MLflow's "Source" column)."""
    command = rerun_command(run_id, tracking_uri)
    return {SOURCE_NAME_TAG: command, SOURCE_TYPE_TAG: "LOCAL", RERUN_TAG: command}


def grokking_metric(grokking_step: Any) -> dict[str, float]:
    """``{"grokking_step": step}`` for a trial-table row's grokking step, empty when censored (None/NaN)."""
    step = math.nan if grokking_step is None else float(grokking_step)
    return {} if math.isnan(step) else {GROKKING_STEP: step}


def _is_text(hint: Any) -> bool:
    """Whether a field's type is a string (``str`` or a ``Literal`` of strings)."""
    if hint is str:
        return True
    return typing.get_origin(hint) is Literal and all(isinstance(a, str) for a in typing.get_args(hint))


def decode_section(params: Mapping[str, str], section: str, config_class: type, seed: int | None = None
                   ) -> dict[str, Any]:
    """One config section (field -> value) read back from a run's params ``<section>.<field>``: a
    string field as it is, any other from its JSON text; the seed field from ``seed``.

    Raises:
        KeyError: a field has no param (the run predates the resolved config); names the param.
        ValueError: a param is not valid JSON for its field; names the param and the text.
    """
    hints = typing.get_type_hints(config_class)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(config_class):
        if f.name == SEED_FIELD and seed is not None:
            values[f.name] = seed
            continue
        key = f"{section}.{f.name}"
        if key not in params:
            raise KeyError(f"the run has no param {key!r} (logged before runs recorded their resolved config)")
        text = params[key]
        try:
            values[f.name] = text if _is_text(hints[f.name]) else json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"param {key}={text!r} is not a {hints[f.name]} value") from error
    return values


def decode_run_settings(params: Mapping[str, str]) -> dict[str, Any]:
    """A run's settings (``run.<key>`` and ``run.<key>.<sub>`` params) back as the trial config's
    ``run`` dict: JSON values decoded, anything else kept as text."""
    settings: dict[str, Any] = {}
    for key, text in params.items():
        if not key.startswith("run."):
            continue
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        *parents, leaf = key[len("run."):].split(".")
        target = settings
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = value
    return settings
