"""`make reproduce CLAIM=<name> [SEEDS=n]`: re-run a published claim and judge it on this machine.

    python -m tune_jobs.reproduce --claim 512p-s42 --seeds 2

Runs the claim's configuration with the claimed seed twice (bit-identical loss traces, or the
first step where they differ) and with ``seeds`` further seeds (claimed + 1, claimed + 2, ...),
scores each run's best checkpoint on the claim's protocol, and logs the claim verdict
(``tune_jobs.claims``) with the environment that produced it to MLflow: one parent run, one child
per run. Faithful mode by default: the same random streams and operation order as the reference.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Optional

import pandas as pd
import torch
import tyro

from mlflow_utils import TrackingError, sweep_run
from trainables.command import CommandSpecError
from tune_jobs.claims import Claim, ClaimError, ClaimVerdict, claim_verdict, list_claims, load_claim
from tune_jobs.search import seed_of
from tune_jobs.settings import RunSettings, fit

if TYPE_CHECKING:
    from ray.tune import ResultGrid


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

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.seeds < 0 or (self.train_steps is not None and self.train_steps < 1):
            raise ValueError(f"seeds must be >= 0 and train_steps >= 1, got {self.seeds!r} and {self.train_steps!r}")


def run_configs(claim: Claim, args: ReproduceArgs) -> list[dict[str, Any]]:
    """Trial configs: the claimed seed twice ('claimed-a', 'claimed-b'), then the other seeds."""
    train = dataclasses.asdict(claim.train)
    train.update(mode=args.mode, threads=args.threads, device="cuda" if args.gpus_per_trial > 0 else "cpu")
    seed = claim.train.seed
    runs = [("claimed-a", seed), ("claimed-b", seed)] + [("other", seed + i) for i in range(1, args.seeds + 1)]
    common = {"protocol": claim.protocol, "threads": args.threads}
    if args.command_job is not None:  # the command's placeholders: every model and train field, and the seed
        fields = {**dataclasses.asdict(claim.model), **train}
        if args.train_steps is not None:
            fields.update(train_steps=args.train_steps, warmup_steps=min(fields["warmup_steps"], args.train_steps - 1))
        return [{"job": str(Path(args.command_job).resolve()), "params": {**fields, "seed": s}, "role": role,
                 "run_name": f"{claim.name}-{role}-seed{s}", **common} for role, s in runs]
    if args.train_steps is not None:
        common["max_steps"] = args.train_steps
    return [{"model": dataclasses.asdict(claim.model), "train": {**train, "seed": s}, "role": role,
             "run_name": f"{claim.name}-{role}-seed{s}", **common} for role, s in runs]


def run_reproduction(args: ReproduceArgs) -> tuple[ClaimVerdict, pd.DataFrame]:
    """Run the claim and judge it; returns the verdict and one row per run.

    Raises:
        ClaimError: unknown or malformed claim (before anything starts).
        TrackingError: MLflow unreachable (before training).
    """
    claim = load_claim(args.claim)
    configs = run_configs(claim, args)
    if args.command_job is not None:
        from trainables.command import load_command_spec, render_command

        spec = load_command_spec(args.command_job)  # a bad job file fails before Ray starts
        try:
            render_command(spec, configs[0]["params"], Path("/tmp"), "check")
        except KeyError as error:
            raise ClaimError(f"job {args.command_job}: {error}") from error
    else:
        from trainables.addition.config import TrainConfig

        TrainConfig.from_dict(configs[0]["train"])  # the overrides are valid before Ray starts
    name = args.job_name(f"reproduce-{claim.name}")
    params = {f"reproduce.{k}": v for k, v in dataclasses.asdict(args).items()}
    params.update({f"claim.{k}": v for k, v in dataclasses.asdict(claim).items() if k not in ("model", "train")})
    tags = {"job": "reproduce", "claim": claim.name, "claim.rule": claim.rule()}
    with sweep_run(name, args.experiment, params, tags, args.tracking_uri) as tracker:
        grid, callback = _fit(args, configs, name, tracker)
        runs = run_table(grid)
        claimed = runs[runs["role"].str.startswith("claimed") & runs["finished"]]
        others = runs[(runs["role"] == "other") & runs["finished"]]
        if claimed.empty:
            raise RuntimeError(f"no run of the claimed seed {claim.train.seed} finished; see the MLflow runs of {name}")
        verdict = claim_verdict(claim, list(zip(claimed["measured"], claimed["trace"])), list(others["measured"]))
        environment = describe_environment(runs)
        _log(tracker, claim, verdict, runs, environment, callback.runs)
    _print(claim, verdict, runs, environment, args)
    return verdict, runs


def _fit(args: ReproduceArgs, configs: list[dict], name: str, tracker: Any) -> tuple["ResultGrid", Any]:
    from ray import tune

    return fit(args, reproduction_trial, {"run": tune.grid_search(configs)}, name=name, tracker=tracker,
               config_of=run_config)


def run_config(config: dict[str, Any]) -> dict[str, Any]:
    """The run a trial stands for: the grid searches over whole run configs, under key 'run'."""
    return config["run"]


def reproduction_trial(config: dict[str, Any]) -> None:
    """One run of a reproduction: the addition trial, or the command trial when the run names a job."""
    run = run_config(config)
    if "job" in run:
        from tune_jobs.command_trial import command_trial

        command_trial(run)
    else:
        from tune_jobs.addition_trial import addition_trial

        addition_trial(run)


def run_table(grid: "ResultGrid") -> pd.DataFrame:
    """One row per run: role, seed, finished, measured protocol value, loss trace (every step from
    reprotune's trainable; the logged points of a command) and its length, environment."""
    rows = []
    for result in grid:
        config = run_config(result.config)
        metrics = result.metrics or {}
        trace = loss_trace(result) if result.error is None else []
        rows.append({"role": config["role"], "seed": seed_of(config), "finished": result.error is None,
                     "measured": float(metrics.get("protocol/exact_match", math.nan)),
                     "best_val_exact_match": float(metrics.get("val/best_exact_match", math.nan)),
                     "trace_length": len(trace), "trace": trace, "trial_id": metrics.get("trial_id"),
                     "error": None if result.error is None else str(result.error).splitlines()[0][:300],
                     **{k[len("env/"):]: v for k, v in metrics.items() if k.startswith("env/")}})
    return pd.DataFrame(rows).sort_values(["role", "seed"]).reset_index(drop=True)


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


def describe_environment(runs: pd.DataFrame) -> str:
    """'cpu (AMD EPYC ...), torch 2.13.0+cpu, 1 thread(s)', joined with ' | ' if runs differ."""
    columns = [c for c in ("device", "device_name", "torch_version", "threads") if c in runs.columns]
    if not columns:
        return "unknown"
    distinct = runs[columns].dropna().drop_duplicates()
    return " | ".join(f"{r.get('device')} ({r.get('device_name')}), torch {r.get('torch_version')}, "
                      f"{r.get('threads')} thread(s)" for _, r in distinct.iterrows())


def _log(tracker: Any, claim: Claim, verdict: ClaimVerdict, runs: pd.DataFrame, environment: str,
         run_ids: dict[str, str]) -> None:
    tags = {"claim.verdict": verdict.verdict, "claim.label": verdict.label, "claim.environment": environment,
            "claim.deterministic": str(verdict.deterministic).lower(),
            "claim.first_difference_step": "" if verdict.first_difference_step is None else verdict.first_difference_step,
            "claim.claimed_seed_value": f"{verdict.claimed_seed_value:.6f}",
            "claim.other_seeds": f"{verdict.other_successes}/{verdict.other_seeds}",
            "claim.wilson_interval": f"[{verdict.wilson_low:.3f}, {verdict.wilson_high:.3f}]"}
    tracker.set_tags(tracker.parent_run_id, tags)
    tracker.log_table(runs.drop(columns=["trace"]), "runs")
    for row in runs.itertuples():
        run_id = run_ids.get(row.trial_id)
        if run_id is not None:
            tracker.set_tags(run_id, {"claim.verdict": verdict.label, "claim.holds": str(claim.holds(row.measured)).lower()})


def _print(claim: Claim, verdict: ClaimVerdict, runs: pd.DataFrame, environment: str, args: ReproduceArgs) -> None:
    print(f"\nClaim {claim.name}: {claim.description}")
    print(f"  source: {claim.source_repository} @ {claim.source_commit}, on {claim.source_device}")
    print(f"  rule: {claim.rule()}; seed {claim.train.seed}; {claim.train.train_steps} steps"
          + (f" (stopped at {args.train_steps})" if args.train_steps else ""))
    with pd.option_context("display.width", 200):
        print(runs[["role", "seed", "finished", "trace_length", "best_val_exact_match", "measured", "error"]].to_string(index=False))
    same = "bit-identical loss traces" if verdict.deterministic else \
        f"loss traces differ from step {verdict.first_difference_step}"
    print(f"  claimed seed twice: {same}")
    if verdict.other_seeds:
        print(f"  other seeds meeting the claim: {verdict.other_successes}/{verdict.other_seeds}, "
              f"95% Wilson [{verdict.wilson_low:.2f}, {verdict.wilson_high:.2f}]")
    print(f"VERDICT: {verdict.label}\n  environment: {environment}")


def main(argv: list[str] | None = None) -> int:
    if argv is None and len(sys.argv) > 1 and sys.argv[1] == "--list":
        print("\n".join(list_claims()))
        return 0
    try:
        args = tyro.cli(ReproduceArgs, args=argv)
        run_reproduction(args)
    except (ClaimError, CommandSpecError, TrackingError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
