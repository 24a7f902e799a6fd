"""`make reproduce CLAIM=<name> [SEEDS=n]`: re-run a published claim and judge it on this machine.

    python -m tune_jobs.reproduce --claim 512p-s42 --seeds 2

Arguments -> the claim (``claims/addition/<name>.toml``, ``verdicts.claims``) -> its configuration
run with the claimed seed twice (bit-identical loss traces, or the first step where they differ) and
with ``seeds`` further seeds (claimed + 1, claimed + 2, ...), through the addition trial (or the
command trial, for another repository's training command) -> each run's best checkpoint scored on
the claim's protocol -> the claim verdict with the environment that produced it, in MLflow: one
parent run, one child per run. Faithful mode by default: the reference's random streams and
operation order.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Optional

import pandas as pd
import torch

from trainables.checks import require
from trainables.command import load_command_spec, render_command
from tune_jobs.runtime.cli import run_main
from tune_jobs.runtime.job import Job, open_job
from tune_jobs.runtime.report import log_figures, markdown_table
from tune_jobs.runtime.results import error_line
from tune_jobs.runtime.replicates import replicate_results
from tune_jobs.runtime.searcher import FixedConfigs, SeedGroups
from tune_jobs.runtime.settings import RunSettings
from tune_jobs.runtime.trial_config import REPLICATE, RUN, replicate_of, seed_of, with_seeds
from tune_jobs.trials.addition import ADDITION, STACKED_TRAIN
from tune_jobs.trials.command import COMMAND
from tune_jobs.verdicts import figures as plots
from tune_jobs.verdicts.claims import Claim, ClaimError, ClaimVerdict, claim_verdict, list_claims, load_claim

ROLES = ("claimed-a", "claimed-b")
"""Roles of the claimed seed's two runs (replicates 0 and 1); every later replicate is 'other'."""


@dataclass(frozen=True, kw_only=True)
class ReproduceArgs(RunSettings):
    """Which claim, how many extra seeds, and where results go."""

    claim: str
    """Claim name (see claims/addition/, or `make claims`) or path to a claim .toml file."""
    seeds: int = 2
    """Further seeds beyond the claimed one (for the success rate and its Wilson interval)."""
    train_steps: Optional[int] = None
    """Stop every run after this many steps of the claim's schedule (a short check whose steps are
    exactly the full run's first ones; the claim's value is not expected to hold). A command job is
    given this as its train_steps instead (its schedule shortens)."""
    mode: Literal["faithful", "fast"] = "faithful"
    """faithful: the reference's streams and op order; fast: quicker, numerically different."""
    command_job: Optional[Path] = None
    """Run the claim through another repository's training command (a job file, see
    command_jobs/reference_repo.toml) instead of reprotune's trainable."""
    experiment: str = "addition-reproduce"
    """MLflow experiment."""

    def check(self) -> None:
        super().check()
        require(self.seeds >= 0 and (self.train_steps is None or self.train_steps >= 1),
                f"seeds must be >= 0 and train_steps >= 1, got {self.seeds!r} and {self.train_steps!r}")


def role_of(config: dict[str, Any]) -> str:
    """A run's role: 'claimed-a' / 'claimed-b' for the claimed seed's two runs, else 'other'."""
    index = replicate_of(config)
    return ROLES[index] if index < len(ROLES) else "other"


def trial_configs(sections: dict[str, Any], seeds: list[int], per_trial: int) -> list[dict[str, Any]]:
    """The trial configs of a reproduction: the claimed seed's two runs in the claim's own mode, then the
    other seeds one per trial, or ``per_trial`` stacked per trial on the counter stream in fast mode."""
    configs = [with_seeds({**sections, REPLICATE: index}, [seed], 1) for index, seed in enumerate(seeds[:len(ROLES)])]
    others = seeds[len(ROLES):]
    if not others:
        return configs
    groups = SeedGroups(tuple(others), per_trial)
    stacked = sections if per_trial == 1 else {**sections, "train": {**sections["train"], **STACKED_TRAIN}}
    return configs + [with_seeds({**stacked, REPLICATE: len(ROLES) + i}, groups.group(i), per_trial)
                      for i in range(groups.count())]


def run_plan(claim: Claim, args: ReproduceArgs) -> tuple[dict[str, Any], list[int], dict[str, Any]]:
    """(the claim's configuration as trial sections, the seed of each run, the run settings).

    Raises:
        ClaimError: a command job that cannot render the claim's fields (before Ray starts).
        ConfigError: the mode / thread / device overrides make the claim's recipe impossible.
    """
    train = {k: v for k, v in dataclasses.asdict(claim.train).items() if k != "seed"}
    train.update(mode=args.mode, threads=args.threads, device="cuda" if args.gpus_per_trial > 0 else "cpu")
    seeds = [claim.train.seed] * len(ROLES) + [claim.train.seed + i for i in range(1, args.seeds + 1)]
    run: dict[str, Any] = {"protocol": claim.protocol}
    if args.command_job is None:
        type(claim.train).from_dict({**train, "seed": claim.train.seed})  # the overrides are valid
        if args.seeds_per_trial > 1:
            type(claim.train).from_dict({**train, **STACKED_TRAIN, "seed": claim.train.seed})
        if args.train_steps is not None:
            run["max_steps"] = args.train_steps
        return {"model": dataclasses.asdict(claim.model), "train": train}, seeds, run
    fields = {**dataclasses.asdict(claim.model), **train}
    if args.train_steps is not None:
        fields.update(train_steps=args.train_steps, warmup_steps=min(fields["warmup_steps"], args.train_steps - 1))
    spec = load_command_spec(args.command_job)
    try:
        render_command(spec, {**fields, "seed": seeds[0]}, Path("/tmp"), "check")
    except KeyError as error:
        raise ClaimError(f"job {args.command_job}: {error}") from error
    return {"command": {"job": str(Path(args.command_job).resolve()), "threads": args.threads},
            "params": fields}, seeds, run


def run_reproduction(args: ReproduceArgs) -> tuple[ClaimVerdict, pd.DataFrame]:
    """Run the claim and judge it; returns the verdict and one row per run.

    Raises:
        ClaimError: unknown or malformed claim (before anything starts).
        TrackingError: MLflow unreachable (before training).
    """
    claim = load_claim(args.claim)
    sections, seeds, run = run_plan(claim, args)
    trial = COMMAND if args.command_job is not None else ADDITION
    params = {f"claim.{k}": v for k, v in dataclasses.asdict(claim).items() if k not in ("model", "train")}
    tags = {"claim": claim.name, "claim.rule": claim.rule()}
    with open_job(args, trial, "reproduce", f"reproduce-{claim.name}", params, tags, label=claim.name,
                  resolved={"train_steps": claim.train.train_steps}) as job:
        configs = trial_configs(sections, seeds, args.seeds_per_trial)
        grid, _ = job.fit(trial, {RUN: run}, FixedConfigs(configs), len(configs),
                          run_name=lambda config: f"{claim.name} {role_of(config)} s{seed_of(config)}")
        job.raise_if_interrupted()  # a claim is never judged on cut-short runs
        runs = run_table(grid)
        claimed = runs[runs["role"].str.startswith("claimed") & runs["finished"]]
        others = runs[(runs["role"] == "other") & runs["finished"]]
        if claimed.empty:
            raise ClaimError(f"no run of the claimed seed {claim.train.seed} finished, so the claim cannot be "
                             f"judged; see the MLflow runs of {job.name}: {_errors(runs)}")
        verdict = claim_verdict(claim, list(zip(claimed["measured"], claimed["trace"])), list(others["measured"]))
        environment = describe_environment(runs)
        _log(job, claim, verdict, runs, environment)
    _print(claim, verdict, runs, environment, args)
    job.print_footer()
    return verdict, runs


def _errors(runs: pd.DataFrame) -> str:
    return "; ".join(f"{r.role} seed {r.seed}: {r.error}" for r in runs.itertuples() if r.error) or "no error recorded"


def run_table(grid: Any) -> pd.DataFrame:
    """One row per run: role, seed, finished, measured protocol value, loss trace (every step from
    reprotune's trainable; the logged points of a command) and its length, environment."""
    rows = []
    for result in (replicate for trial in grid for replicate in replicate_results(trial)):
        metrics = result.metrics or {}
        trace = loss_trace(result) if result.error is None else []
        rows.append({"role": role_of(result.config), "seed": seed_of(result.config), "finished": result.error is None,
                     "stream": data_stream(result.config),
                     "measured": float(metrics.get("protocol/exact_match", math.nan)),
                     "best_val_exact_match": float(metrics.get("val/best_exact_match", math.nan)),
                     "trace_length": len(trace), "trace": trace, "trial_id": result.key,
                     "error": error_line(result),
                     **{k[len("env/"):]: v for k, v in metrics.items() if k.startswith("env/")}})
    return pd.DataFrame(rows).sort_values(["role", "seed"]).reset_index(drop=True)


def data_stream(config: dict[str, Any]) -> str:
    """The data stream a run trained on, as the verdict names it: 'reference' (faithful mode: the
    reference repository's own streams), 'vectorized' (fast mode's), or 'counter' (a pure function
    of seed, step and row: what stacked seeds train on)."""
    train = config.get("train", {})
    if train.get("stream", "default") == "counter":
        return "counter"
    return "reference" if train.get("mode", "faithful") == "faithful" else "vectorized"


def loss_trace(result: Any) -> list[float]:
    """A run's training-loss trace: every step's loss from reprotune's last.pt, else the reported
    ``train/loss`` history (what an external command logged)."""
    if result.checkpoint is not None:
        with result.checkpoint.as_directory() as folder:
            last = Path(folder) / "last.pt"
            if last.is_file():
                payload = torch.load(last, map_location="cpu", weights_only=True)
                if "loss_trace" in payload:
                    return payload["loss_trace"].tolist()
    history = result.metrics_dataframe
    return history["train/loss"].tolist() if history is not None and "train/loss" in history else []


def describe_streams(runs: pd.DataFrame) -> str:
    """Which data stream each role's runs used, e.g. 'claimed-a, claimed-b: reference; other: counter'."""
    by_stream: dict[str, list[str]] = {}
    for role, stream in runs[["role", "stream"]].drop_duplicates().itertuples(index=False):
        by_stream.setdefault(stream, []).append(role)
    return "; ".join(f"{', '.join(roles)}: {stream}" for stream, roles in by_stream.items())


def describe_environment(runs: pd.DataFrame) -> str:
    """'cpu (AMD EPYC, AuthenticAMD 25/1 AVX2), torch 2.13.0+cpu, 1 thread(s)', joined with ' | ' if runs
    differ (the device kind where the runs record it)."""
    columns = [c for c in ("device", "device_name", "device_kind", "torch_version", "threads") if c in runs.columns]
    if not columns:
        return "unknown"
    def one(row: pd.Series) -> str:
        names = ", ".join(str(row[c]) for c in ("device_name", "device_kind") if c in row and not pd.isna(row[c]))
        return f"{row.get('device')} ({names}), torch {row.get('torch_version')}, {row.get('threads')} thread(s)"
    return " | ".join(one(row) for _, row in runs[columns].drop_duplicates().iterrows())


def _log(job: Job, claim: Claim, verdict: ClaimVerdict, runs: pd.DataFrame, environment: str) -> None:
    tracker = job.tracker
    tags = {"claim.verdict": verdict.verdict, "claim.label": verdict.label, "claim.environment": environment,
            "claim.data_streams": describe_streams(runs),
            "claim.deterministic": str(verdict.deterministic).lower(),
            "claim.first_difference_step": "" if verdict.first_difference_step is None else verdict.first_difference_step,
            "claim.claimed_seed_value": f"{verdict.claimed_seed_value:.6f}",
            "claim.other_seeds": f"{verdict.other_successes}/{verdict.other_seeds}",
            "claim.wilson_interval": f"[{verdict.wilson_low:.3f}, {verdict.wilson_high:.3f}]"}
    tracker.set_tags(tracker.parent_run_id, tags)
    table = runs.drop(columns=["trace"])
    tracker.log_table(table, "runs")
    for row in runs.itertuples():
        run_id = job.run_ids.get(row.trial_id)
        if run_id is not None:
            holds = claim.holds(row.measured)
            tracker.set_tags(run_id, {"claim.verdict": verdict.label, "claim.holds": str(holds).lower(),
                                      "outcome": "errored" if not row.finished else "success" if holds else "failed"})
    tracker.log_summary(tracker.parent_run_id, {"claim/claimed_seed_value": verdict.claimed_seed_value,
                                                "claim/claimed_value": claim.claimed_value})
    _describe(job, claim, verdict, table, environment)


def _describe(job: Job, claim: Claim, verdict: ClaimVerdict, runs: pd.DataFrame, environment: str) -> None:
    """The parent run's figures (the claim against each run's value; validation exact match against
    step of every run) and its description."""
    single = pd.DataFrame([{"name": claim.name, "config_id": cid, "verdict": verdict.label}
                           for cid in job.curves["config_id"].unique()])
    figures = {"claim_values.png": plots.claim_values(runs, claim)}
    if not single.empty:
        figures["learning_curves.png"] = plots.learning_curves(job.curves, single, "val/exact_match")
    links = log_figures(job.tracker, figures)
    same = "bit-identical loss traces" if verdict.deterministic else \
        f"loss traces differ from step {verdict.first_difference_step}"
    lines = [f"**reproduce** claim `{claim.name}`: {claim.description}", "",
             f"Source: {claim.source_repository} @ {claim.source_commit}, on {claim.source_device}; "
             f"rule: {claim.rule()}; seed {claim.train.seed}.", "",
             f"**VERDICT: {verdict.label}**; the claimed seed twice: {same}; environment: {environment}.", "",
             markdown_table(runs, ("role", "seed", "stream", "finished", "trace_length", "best_val_exact_match",
                                   "measured", "error")), "", *links]
    job.tracker.set_description(job.tracker.parent_run_id, "\n".join(lines))


def _print(claim: Claim, verdict: ClaimVerdict, runs: pd.DataFrame, environment: str, args: ReproduceArgs) -> None:
    print(f"\nClaim {claim.name}: {claim.description}")
    print(f"  source: {claim.source_repository} @ {claim.source_commit}, on {claim.source_device}")
    print(f"  rule: {claim.rule()}; seed {claim.train.seed}; {claim.train.train_steps} steps"
          + (f" (stopped at {args.train_steps})" if args.train_steps else ""))
    with pd.option_context("display.width", 200):
        print(runs[["role", "seed", "stream", "finished", "trace_length", "best_val_exact_match", "measured",
                    "error"]].to_string(index=False))
    same = "bit-identical loss traces" if verdict.deterministic else \
        f"loss traces differ from step {verdict.first_difference_step}"
    print(f"  claimed seed twice: {same}")
    if verdict.other_seeds:
        print(f"  other seeds meeting the claim: {verdict.other_successes}/{verdict.other_seeds}, "
              f"95% Wilson [{verdict.wilson_low:.2f}, {verdict.wilson_high:.2f}]")
    print(f"  data streams: {describe_streams(runs)}")
    print(f"VERDICT: {verdict.label}\n  environment: {environment}")


def main(argv: list[str] | None = None) -> int:
    if argv is None and sys.argv[1:] == ["--list"]:
        print("\n".join(list_claims()))
        return 0
    return run_main(ReproduceArgs, run_reproduction, argv)


if __name__ == "__main__":
    sys.exit(main())
