"""`make rerun RUN=<run id>`: train a logged trial again from its MLflow params alone and compare.

    python -m tune_jobs.rerun --run 3f2a... [--tracking-uri sqlite:///other/mlruns.db] [--allow-other-commit]

The run's params (``runtime.run_record``: every config field, the seed, the run settings) rebuild
its trial config; the trial's own body trains it in this process (no Ray, no checkpoint of the
original); a new run in the original's experiment, tagged ``rerun_of``, holds what it reported.
On the same machine kind (device name) and thread count the two metric traces must be equal float
for float: BIT-IDENTICAL, or the first step where any trained metric differs with the loss there.
Elsewhere the outcome is compared: success, best validation exact match (within ``tolerance``),
grokking step. A run logged from another git commit is refused unless ``--allow-other-commit``.
Addition, language-model and command runs (a command run is refused when its job file changed).
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import pandas as pd

from mlflow_utils.records import RERUN_OF_TAG, RunRecord, log_finished_run, metric_history, open_store, read_run
from trainables.checks import ConfigError
from trainables.lm.config import SECTIONS as LM_SECTIONS
from trainables.provenance import git_state
from tune_jobs.runtime.cli import run_main
from tune_jobs.runtime.mlflow_callback import METRIC_KEYS, METRIC_PREFIXES
from tune_jobs.runtime.replicates import split_result
from tune_jobs.runtime.run_record import decode_run_settings, decode_section, source_tags
from tune_jobs.runtime.trial import Trial, TrialContext
from tune_jobs.runtime.trial_config import RUN, with_seeds
from tune_jobs.trials.addition import ADDITION
from tune_jobs.trials.addition_record import SECTIONS as ADDITION_SECTIONS
from tune_jobs.trials.command import COMMAND
from tune_jobs.trials.lm import LM
from tune_jobs.verdicts.compare import first_differing_step
from tune_jobs.verdicts.seeds import SUCCESS_THRESHOLD, grokking_step

RUN_ID = re.compile(r"[0-9a-f]{32}")
STACKED_REPLICATE = re.compile(r".+-s\d+")
"""The ``trial_id`` tag of a seed trained stacked (``runtime.replicates.replicate_key``: ``<trial id>-s<seed>``)."""
COMPARED_PREFIXES = tuple(p for p in METRIC_PREFIXES if p != "perf/")
"""Metrics whose traces must be equal in a bit-identical rerun (timings are not)."""
NOT_COMPARED = frozenset({"tok/cache_hit"})
"""Metrics of how a run found its inputs, not of what it trained (a rerun finds the tokenized corpus cached)."""
COMMAND_RESOLVED = ("command.argv", "command.job_sha256")
"""A command run's params that record how it ran, not what to run (``trials.command_record``)."""


@dataclass(frozen=True)
class RerunArgs:
    """Which run to train again, from which store."""

    run: str
    """MLflow run id of a trial's run (32 hex digits), e.g. from the run's page or its rerun_command tag."""
    tracking_uri: Optional[str] = None
    """MLflow tracking URI holding the run; default $MLFLOW_TRACKING_URI or sqlite:///<project>/mlruns.db."""
    allow_other_commit: bool = False
    """Re-run a run logged from another git commit than this checkout's (the comparison says so)."""
    tolerance: float = 0.01
    """Best validation exact matches within this are the same outcome (another machine kind)."""

    def check(self) -> None:
        if not RUN_ID.fullmatch(self.run):
            raise ConfigError(f"run must be an MLflow run id (32 hex digits), got {self.run!r}")
        if not 0 <= self.tolerance <= 1:
            raise ConfigError(f"tolerance must be in [0, 1], got {self.tolerance!r}")


class _NoCheckpoint:
    """A checkpoint type that keeps nothing: a rerun reports its metrics only."""

    @staticmethod
    def from_directory(path: str) -> None:
        return None


def _decoded(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def command_sections(record: RunRecord) -> dict[str, Any]:
    """A command run's ``command`` and ``params`` sections from its params.

    Raises:
        ConfigError: the job file changed since the run (its sha256 differs); names the file.
    """
    sections: dict[str, dict[str, Any]] = {"command": {}, "params": {}}
    for key, text in record.params.items():
        section, _, name = key.partition(".")
        if section in sections and key not in COMMAND_RESOLVED:
            sections[section][name] = _decoded(text)
    job = Path(str(sections["command"].get("job", "")))
    logged = record.params.get("command.job_sha256")
    if not job.is_file() or (logged and hashlib.sha256(job.read_bytes()).hexdigest() != logged):
        raise ConfigError(f"run {record.run_id}: job file {str(job)!r} is missing or changed since the run "
                          f"(sha256 {logged})")
    return sections


def trial_of(record: RunRecord) -> Trial:
    """The trial record that ran ``record``: a command job, a language model, else addition."""
    if any(key.startswith("command.") for key in record.params):
        return COMMAND
    return LM if any(key.startswith("tokenizer.") for key in record.params) else ADDITION


def trial_config(record: RunRecord) -> dict[str, Any]:
    """The trial config of a run rebuilt from its params alone (``runtime.run_record``): its one seed as
    a group of one, so a seed of a stacked trial reruns alone, through the stacked trainer it trained
    with (a short last group of a stacked layout: the single-seed step differs in the last float bits).

    Raises:
        ConfigError: a param is missing or unreadable (names it), or a command's job file changed.
    """
    trial = trial_of(record)
    try:
        seed = int(record.params["seed"])
        if trial is COMMAND:
            config: dict[str, Any] = command_sections(record)
        else:
            sections = LM_SECTIONS if trial is LM else ADDITION_SECTIONS
            config = {name: decode_section(record.params, name, cls, seed if name == "train" else None)
                      for name, cls in sections.items()}
    except (KeyError, ValueError) as error:
        raise ConfigError(f"run {record.run_id} cannot be rebuilt from its params: {error}") from error
    stacked = STACKED_REPLICATE.fullmatch(record.tags.get("trial_id", "")) is not None
    return with_seeds({**config, RUN: decode_run_settings(record.params)}, [seed], 2 if stacked else 1)


def check_commit(record: RunRecord, allow_other: bool) -> Optional[str]:
    """The note a rerun from another commit carries (None on the same commit).

    Raises:
        ConfigError: the commits differ and ``allow_other`` is False; names both commits.
    """
    logged, here = record.tags.get("git_commit", "unknown"), git_state()[0]
    if logged == here:
        return None
    if not allow_other:
        raise ConfigError(f"run {record.run_id} was logged at git commit {logged}, this checkout is at {here}; "
                          "check out that commit or pass --allow-other-commit (ARGS=--allow-other-commit)")
    return f"rerun at commit {here} of a run logged at commit {logged}"


def train_again(trial: Trial, config: dict[str, Any]) -> list[dict[str, Any]]:
    """Every report of ``trial``'s body on ``config`` (its one seed's metrics), trained in this process."""
    reports: list[dict[str, Any]] = []

    def report_to(result: dict[str, Any], checkpoint: Any = None) -> None:
        reports.extend(split_result(result, config).values())
    context = TrialContext(report_to, lambda: None, _NoCheckpoint)
    trial.body(config, context)
    return reports


def traces(reports: list[dict[str, Any]]) -> pd.DataFrame:
    """The compared metrics of a rerun's reports: columns ``key``, ``step``, ``value``."""
    rows = [(key, int(r["step"]), float(value)) for r in reports for key, value in r.items()
            if key.startswith(COMPARED_PREFIXES) and key not in NOT_COMPARED
            and isinstance(value, (int, float)) and not isinstance(value, bool)]
    return pd.DataFrame(rows, columns=["key", "step", "value"])


def first_difference(original: pd.DataFrame, rerun: pd.DataFrame) -> Optional[tuple[int, str]]:
    """(step, metric) of the earliest difference between two traces tables over the metrics both
    logged (a metric only one side logged does not count); None when equal float for float."""
    found = []
    for key in sorted(set(original["key"]) & set(rerun["key"])):
        a, b = (t[t["key"] == key].set_index("step")["value"] for t in (original, rerun))
        step = first_differing_step(a, b)
        if step is not None:
            found.append((step, key))
    return min(found) if found else None


def outcome(record_metrics: dict[str, float], history: pd.DataFrame, threshold: float) -> dict[str, Any]:
    """A run's outcome: ``success``, ``best_exact_match`` (validation) and ``grokking_step`` (None if
    it never grokked) from its latest metrics and its ``val/exact_match`` trace."""
    em = history[history["key"] == "val/exact_match"].sort_values("step")
    return {"success": record_metrics.get("success"), "best_exact_match": record_metrics.get("val/best_exact_match"),
            "grokking_step": grokking_step(em["step"].tolist(), em["value"].tolist(), threshold)}


def outcome_line(original: dict[str, Any], rerun: dict[str, Any], tolerance: float) -> str:
    """'OUTCOME AGREES' or 'OUTCOME DIFFERS', with each side's success, best exact match and grokking step."""
    best_a, best_b = original["best_exact_match"], rerun["best_exact_match"]
    agree = original["success"] == rerun["success"] and original["grokking_step"] == rerun["grokking_step"] \
        and best_a is not None and best_b is not None and abs(best_a - best_b) <= tolerance
    sides = ", ".join(f"{key} {original[key]} -> {rerun[key]}" for key in ("success", "best_exact_match", "grokking_step"))
    return f"{'OUTCOME AGREES' if agree else 'OUTCOME DIFFERS'} ({sides}; best exact match tolerance {tolerance})"


def _machine(tags: dict[str, str]) -> str:
    """'AMD EPYC (AuthenticAMD 25/1 AVX2) x1': device name, its kind where recorded, thread count."""
    kind = f" ({tags['device_kind']})" if "device_kind" in tags else ""
    return f"{tags.get('device_name')}{kind} x{tags.get('threads')}"


def verdict(record: RunRecord, env: dict[str, str], history: pd.DataFrame, rerun: pd.DataFrame,
            rerun_metrics: dict[str, float], args: RerunArgs) -> str:
    """The comparison in one line: on the same device name and thread count BIT-IDENTICAL or the first
    differing step with the loss there; elsewhere the outcome agreement (``outcome_line``)."""
    keys = ("device", "device_name", "threads") + (("device_kind",) if "device_kind" in record.tags else ())
    same_kind = all(record.tags.get(key) == env.get(key) for key in keys)  # device_kind: runs since 2026-12-04
    if not same_kind:
        machines = " -> ".join(_machine(tags) for tags in (record.tags, env))
        threshold = float(record.params.get("run.success_threshold", SUCCESS_THRESHOLD))
        return f"other machine kind ({machines}): " + outcome_line(
            outcome(record.metrics, history, threshold), outcome(rerun_metrics, rerun, threshold), args.tolerance)
    difference = first_difference(history, rerun)
    if difference is None:
        return f"BIT-IDENTICAL ({history['key'].nunique()} metrics at {history['step'].nunique()} steps)"
    step, key = difference

    def at(table: pd.DataFrame, name: str) -> Any:
        values = table[(table["key"] == name) & (table["step"] == step)]["value"]
        return float(values.iloc[0]) if len(values) else None  # a Python float: numpy 2's repr reads np.float64(...)
    return (f"DIFFERS from step {step} ({key}): train/loss {at(history, 'train/loss')!r} (original) vs "
            f"{at(rerun, 'train/loss')!r} (rerun)")


def rerun(args: RerunArgs) -> str:
    """Re-run ``args.run`` and log the new run; returns (and prints) the comparison line.

    Raises:
        TrackingError: the store or the run cannot be read (before any training).
        ConfigError: another commit without ``allow_other_commit``, or a run that cannot be rebuilt.
    """
    client = open_store(args.tracking_uri)
    record = read_run(client, args.run)
    config = trial_config(record)
    note = check_commit(record, args.allow_other_commit)
    print(f"re-running {record.name or record.run_id} ({record.run_id}) from its params")
    reports = train_again(trial_of(record), config)
    rerun_table = traces(reports)
    history = metric_history(client, record.run_id, sorted(set(rerun_table["key"])))
    last = reports[-1] if reports else {}
    env = {k.removeprefix("env/"): v for k, v in last.items() if k.startswith("env/") and isinstance(v, str)}
    metrics = {k: v for k, v in last.items() if k.startswith(METRIC_PREFIXES) or k in METRIC_KEYS}
    line = verdict(record, env, history, rerun_table, metrics, args) + (f"; {note}" if note else "")
    steps = [(int(r["step"]), {k: v for k, v in r.items() if k.startswith(METRIC_PREFIXES) or k in METRIC_KEYS})
             for r in reports]
    tags = {**env, **source_tags(record.run_id, client.tracking_uri), RERUN_OF_TAG: record.run_id, "role": "rerun", "rerun_verdict": line,
            **{k: record.tags[k] for k in ("config_id", "seed", "config") if k in record.tags}}
    run_id = log_finished_run(client, record.experiment_id, f"{record.name} rerun", record.params, tags, steps,
                              description=f"Rerun of run `{record.run_id}`: {line}")
    print(line)
    print(f"MLflow: rerun logged as run {run_id} (tag rerun_of={record.run_id}) at {client.tracking_uri}")
    return line


def main(argv: list[str] | None = None) -> int:
    return run_main(RerunArgs, rerun, argv)


if __name__ == "__main__":
    sys.exit(main())
