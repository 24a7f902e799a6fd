"""`make report`: every shipped claim of the record as a success rate over seeds, in one reproducibility report.

    python -m tune_jobs.report --seeds 5            # claims/addition/, 5 seeds a cell, then the claimed seeds
    python -m tune_jobs.report --claims 512p-s42 512p-s42-mps --seeds 3..12 --train-steps 300

Arguments -> the claims (``verdicts.claims``) grouped into cells (``verdicts.claim_report``) -> one
Ray Tune fit of every cell's seeds in compiled fast mode (a count, or ``min..max`` sequential seeds:
``runtime.sequential_replicates``), every cell's seeds in one queue -> a second fit of each claim's
claimed seed in its own mode (faithful), after the cells' -> per claim its label against the cell's
rate -> ``reports/<name>/report.md`` and ``report.html`` (figures embedded, readable offline) and an
MLflow parent run tagged ``role=report`` with the table and the figures; the seed runs are ordinary
child runs. The report is first written when the cells' seeds end (the claimed seeds named as still to
run), then rewritten when the claimed seeds end, or when they are stopped (those that finished judged,
the rest named as still to run). ``--resume`` (``RESUME=1``) continues an interrupted report, either fit.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from pathlib import Path
from statistics import fmean
from typing import Any, Optional

import pandas as pd
from ray import tune

from search_spaces import SearchSpace
from search_spaces.seeds import parse_seed_option, with_seed_option
from trainables.addition.config import TrainConfig
from trainables.checks import require
from trainables.paths import PROJECT_ROOT
from tune_jobs.report_files import TRAINED_SECONDS, write_report
from tune_jobs.runtime.cli import run_main
from tune_jobs.runtime.job import Job, open_job, progress_counts
from tune_jobs.runtime.progress import schedule_steps
from tune_jobs.runtime.replicates import replicate_results
from tune_jobs.runtime.run_record import grokking_metric
from tune_jobs.runtime.searcher import FixedConfigs, replicated, sequential_design
from tune_jobs.runtime.settings import RunSettings
from tune_jobs.runtime.trial import Trial
from tune_jobs.runtime.trial_config import RUN, config_id, seed_of, with_seeds
from tune_jobs.trials.addition import ADDITION
from tune_jobs.trials.addition_record import censoring_step
from tune_jobs.verdicts import claim_report as cr
from tune_jobs.verdicts.allocation import replayed
from tune_jobs.verdicts.claims import Claim, list_claims, load_claim
from tune_jobs.verdicts.seeds import SUCCESS_THRESHOLD

FAST = {"mode": "fast", "compile": True}
"""How a cell's seeds train: compiled fast mode (trainables/addition/compiled_step.py)."""
CLAIMED_PENDING = "still to run (the cells' seeds ran first; this report is rewritten when they end)"
CLAIMED_SKIPPED = "not run (claimed_seeds=False)"
CLAIMED_STOPPED = ("still to run (the report was stopped during the claimed seeds; RESUME=1 continues them and "
                   "rewrites this report)")
CLAIMED_MISSING = "without a finished run"
"""What the report says of the claims whose claimed seed has no value here, at each stage."""


@dataclass(frozen=True)
class ReportArgs(RunSettings):
    """Which claims, how many seeds a cell, and where the report goes."""

    claims: tuple[str, ...] = ()
    """Claim names, claim .toml files or folders of them; default every claim in claims/addition/."""
    seeds: str = "5"
    """Seeds a cell: a count (5) or a sequential range min..max (5..12: more while the cell's success
    rate is undecided, tune_jobs/verdicts/sequential.py)."""
    train_steps: Optional[int] = None
    """Stop every run after this many steps of its schedule (a short check; the claims are not expected to hold)."""
    claimed_seeds: bool = True
    """Run each claim's claimed seed once in the claim's own mode (faithful), after the cells' seeds."""
    reports_dir: Path = PROJECT_ROOT / "reports"
    """Where ``<name>/report.md`` and ``report.html`` are written."""
    experiment: str = "claim-report"
    """MLflow experiment."""

    def check(self) -> None:
        super().check()
        require(self.train_steps is None or self.train_steps >= 1,
                f"train_steps has an impossible value: {self.train_steps!r}")
        require(self.seeds_per_trial == 1 and self.workers == 1,
                f"seeds_per_trial={self.seeds_per_trial}, workers={self.workers}: the report trains one seed per trial "
                "in one process; run it with seeds_per_trial=1 and workers=1")
        self.seed_space()

    def seed_space(self) -> SearchSpace:
        """The seed design as a space holding no fields (``SearchSpaceError`` names a bad ``seeds``)."""
        return with_seed_option(SearchSpace("report", "", (0,), {}), parse_seed_option(str(self.seeds), "seeds"))


def load_claims(names: tuple[str, ...]) -> list[Claim]:
    """The claims ``names`` give (a folder: each .toml file in it), every shipped one when empty.

    Raises:
        ClaimError: an unknown or malformed claim, naming it.
    """
    found: list[str] = []
    for name in names or tuple(list_claims()):
        path = Path(name)
        found += sorted(str(p) for p in path.glob("*.toml")) if path.is_dir() else [name]
    return [load_claim(name) for name in found]


def cell_configs(cell_list: list[cr.Cell], args: ReportArgs) -> list[dict[str, Any]]:
    """Each cell's trial sections in compiled fast mode, its protocol as the run setting."""
    return [{"model": dict(c.sections["model"]), "train": {**c.sections["train"], **FAST, "threads": args.threads},
             RUN: {"protocol": c.protocol()}} for c in cell_list]


def claimed_configs(cell_list: list[cr.Cell], args: ReportArgs) -> list[tuple[str, int, dict[str, Any]]]:
    """(cell key, seed, trial config) of each claimed seed's run in its claims' own mode: one run per cell
    and claimed seed, scored on the protocol those claims need (``Cell.protocol``; a 'validation' claim
    reads the best validation exact match every run measures). Shortest schedule first (cells in their
    order among equals): a report stopped before its faithful runs end has judged the most claims."""
    cells_by_length = sorted(cell_list, key=lambda cell: cell.sections["train"]["train_steps"])
    return [(cell.key, seed, with_seeds({"model": dict(cell.sections["model"]),
                                         "train": {**cell.sections["train"], "threads": args.threads},
                                         RUN: {"protocol": cell.protocol(seed)}}, [seed], 1))
            for cell in cells_by_length for seed in cell.claimed_seeds()]


def claimed_run_name(cell_name: str, config: dict[str, Any]) -> str:
    """A claimed seed's child run name: '512p 27000 steps s42 claimed (100k)', its cell's name beside the
    cell's own seed runs ('512p 27000 steps s0'), then the protocol it is scored on."""
    return f"{cell_name} s{seed_of(config)} claimed ({config[RUN]['protocol']})"


def censoring_steps(cell_list: list[cr.Cell], run: dict[str, Any]) -> dict[str, int]:
    """Cell key -> the step its seeds that never grokked are censored at: the cell's schedule's last
    step, or ``max_steps`` - 1 where ``--train-steps`` stops the seeds earlier (``censoring_step``, the
    rule each run records as ``grokking_censored_at``)."""
    return {cell.key: censoring_step(TrainConfig.from_dict(cell.sections["train"]), run) for cell in cell_list}


def seed_rows(grid: Any, trial: Trial, cell_of: dict[str, str], horizon: dict[str, int]) -> pd.DataFrame:
    """One row per seed run of a fit: ``claim_report.CELL_COLUMNS`` (``cell`` from the run's config id),
    its trial id, its own training time (``report_files.TRAINED_SECONDS``) and its ``env/*`` provenance."""
    rows = []
    for replicate in (r for result in grid for r in replicate_results(result)):
        measured = trial.measure(replicate)
        key = cell_of.get(config_id(replicate.config), "")
        rows.append({"cell": key, "seed": seed_of(replicate.config), "trial_id": replicate.key,
                     "finished": bool(measured["finished"]), "best_exact_match": measured["best_exact_match"],
                     "protocol_exact_match": (replicate.metrics or {}).get("protocol/exact_match"),
                     "grokking_step": measured["grokking_step"], "censored_at": horizon.get(key, 0),
                     TRAINED_SECONDS: (replicate.metrics or {}).get("time_total_s"),
                     **{k[4:]: v for k, v in (replicate.metrics or {}).items() if k.startswith("env/")}})
    return pd.DataFrame(rows, columns=[*cr.CELL_COLUMNS, "trial_id", TRAINED_SECONDS] if not rows else None)


def mean_schedule(configs: list[dict[str, Any]], run: dict[str, Any]) -> float:
    """The mean steps a seed of ``configs`` trains under the run settings ``run``
    (``progress.schedule_steps``): what the progress line weighs a seed not started yet by, so that the
    27k-step seeds running first do not make a fit of 27k- to 100k-step seeds look short."""
    return fmean(schedule_steps({**c, RUN: run}) or 1.0 for c in configs)


def log_grokking_steps(job: Job, runs: pd.DataFrame) -> None:
    """Each seed run's grokking step as its child run's ``grokking_step`` metric (none when it never
    grokked; ``runtime.run_record.grokking_metric``), as a sweep's verdicts log it: ``make compare`` and
    the MLflow UI read the report's runs' time to grok from there."""
    for row in runs.itertuples():
        metrics, run_id = grokking_metric(row.grokking_step), job.run_ids.get(row.trial_id)
        if metrics and run_id is not None:
            job.tracker.log_summary(run_id, metrics)


def run_report(args: ReportArgs, trial: Trial = ADDITION) -> pd.DataFrame:
    """Run every claim's cell over seeds (and its claimed seed), judge each claim, write the report;
    returns one row per claim (``claim_report.claim_rows``).

    Raises:
        ClaimError: an unknown or malformed claim (before anything starts).
        TrackingError: MLflow unreachable (before training).
    """
    claims = load_claims(args.claims)
    cell_list, space = cr.cells(claims), args.seed_space()
    design = sequential_design(space)
    run = {"success_threshold": SUCCESS_THRESHOLD, **({"max_steps": args.train_steps} if args.train_steps else {})}
    params = {"report.claims": ", ".join(c.name for c in claims), "report.cells": len(cell_list),
              "report.seeds": str(args.seeds)}
    with open_job(args, trial, "report", "report", params, {"role": "report"}, label=f"{len(claims)} claims",
                  resolved={"seeds": str(args.seeds)}) as job:
        configs = cell_configs(cell_list, args)
        cell_of = {config_id(c): cell.key for c, cell in zip(configs, cell_list)}
        horizon = censoring_steps(cell_list, run)
        searcher = replicated(FixedConfigs(configs), space, len(configs), trial.failure_score)
        names = {cell_id: cell.name for cell_id, cell in zip(cell_of, cell_list)}
        planned, least, decided = progress_counts(searcher, len(configs))
        grid, trials = job.fit(trial, {RUN: run}, searcher, searcher.max_trials(len(configs)),
                               run_name=lambda c: f"{names.get(config_id(c), '?')} s{seed_of(c)}",
                               planned=planned, least=least, decided=decided,
                               seed_steps=mean_schedule(configs, run))
        job.raise_if_interrupted()
        seeds = seed_rows(grid, trial, cell_of, horizon)
        log_grokking_steps(job, seeds)
        decisions = _decisions(trials, design, cell_of)
        rows = cr.claim_rows(cell_list, seeds, pd.DataFrame(), decisions)
        folder = write_report(job, args, rows, seeds, cell_list, final=not args.claimed_seeds,
                              claimed_note=CLAIMED_PENDING if args.claimed_seeds else CLAIMED_SKIPPED)
        if args.claimed_seeds:  # the cells' rates are on disk before the long faithful runs start
            print(f"The cells' seeds are done; report so far: {folder / 'report.md'}. Now the claimed seeds.")
            claimed, claimed_runs = _claimed(job, trial, cell_list, args, run)
            log_grokking_steps(job, claimed_runs[~claimed_runs["cut_short"]])
            rows = cr.claim_rows(cell_list, seeds, claimed, decisions)
            folder = write_report(job, args, rows, seeds, cell_list, final=not job.interrupted,
                                  claimed_note=CLAIMED_STOPPED if job.interrupted else CLAIMED_MISSING,
                                  claimed_runs=claimed_runs)
            job.raise_if_interrupted()  # the report's name resumes it, both fits (not the claimed fit's own)
    print(rows[["claim", "label", "rate", "wilson_low", "wilson_high", "claimed_seed_value", "record"]]
          .to_string(index=False))
    print(f"Report: {folder / 'report.md'} and {folder / 'report.html'}")
    job.print_footer()
    return rows


def _decisions(trials: pd.DataFrame, design: Any, cell_of: dict[str, str]) -> Optional[dict[str, str]]:
    """Cell key -> the sequential decision its seeds reached (``verdicts.allocation.replayed``); None
    under fixed seeds."""
    if design is None or trials.empty:
        return None
    return {cell_of.get(d.config_id, d.config_id): d.label
            for d in replayed(design, trials, SUCCESS_THRESHOLD).decisions()}


def _claimed(job: Job, trial: Trial, cell_list: list[cr.Cell], args: ReportArgs, run: dict[str, Any]
             ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The claimed seeds' runs (a second Tune experiment ``<name>-claimed`` of the same job): one row per
    claim whose run finished or failed (``claim``, ``finished``, ``best_exact_match``, ``protocol_exact_match``),
    and one row per run (``seed_rows``, with ``cut_short``: a Ctrl-C or SIGTERM stopped it, so it is no
    result and its claims are still to run; ``job.interrupted`` then holds it)."""
    planned = claimed_configs(cell_list, args)
    name = f"{job.name}-claimed"
    resume = args.resume and tune.Tuner.can_restore(f"{args.storage().rstrip('/')}/{name}")
    second = dataclasses.replace(job, name=name, settings=dataclasses.replace(args, resume=resume))
    configs = [config for _, _, config in planned]
    cell_of = {config_id(config): key for key, _, config in planned}
    names = {cell.key: cell.name for cell in cell_list}
    grid, _ = second.fit(trial, {RUN: run}, FixedConfigs(configs), len(planned),
                         run_name=lambda c: claimed_run_name(names.get(cell_of.get(config_id(c), ""), "?"), c),
                         seed_steps=mean_schedule(configs, run))
    job.run_ids.update(second.run_ids)
    job.interrupted |= second.interrupted
    table = seed_rows(grid, trial, cell_of, {})
    table["cut_short"] = table["trial_id"].isin(second.interrupted)
    runs = table[~table["cut_short"]].set_index(["cell", "seed"])
    return pd.DataFrame([{"claim": claim.name, **runs.loc[(cell.key, claim.train.seed)][list(cr.CLAIMED_COLUMNS)]}
                         for cell in cell_list for claim in cell.claims if (cell.key, claim.train.seed) in runs.index]), table


def main(argv: list[str] | None = None) -> int:
    return run_main(ReportArgs, run_report, argv)


if __name__ == "__main__":
    sys.exit(main())
