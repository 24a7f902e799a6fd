"""`make compare A=<selector> B=<selector>`: two sets of seed runs compared per configuration and seed.

    python -m tune_jobs.compare --a sweep-addition-smoke-20261202T1010 --b threads=2
    python -m tune_jobs.compare --a claim:456p@cuda --b claim:456p@mps

A selector is a sweep name (its ``sweep_id``), a store URI (every trial run in it), ``<tag>=<value>``
for one of ``SELECTOR_TAGS`` (runs of the ``--tracking-uri`` store), or ``claim:<prefix>[@<device>]``:
the record's own outcomes, one per claim file ``claims/addition/<prefix>-s<seed>*.toml`` whose source
device names ``<device>`` (default cuda). Trial runs that FINISHED are matched by configuration
(``match_id``: the config params without threads and device) and seed (the newest run of a pair
when several are selected); claim sides match by ``<prefix>``, so they
compare with other claim sides. The statistics are ``verdicts.compare``'s; the table, the seed table,
the Kaplan-Meier figure and one action line per configuration go to the terminal and to an MLflow run
tagged ``role=comparison`` in the ``--tracking-uri`` store.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import sys
from dataclasses import dataclass
from typing import Any, Optional

import pandas as pd

from mlflow_utils.records import find_trial_runs, log_finished_run, metric_history, open_store
from trainables.checks import ConfigError
from tune_jobs.runtime.cli import run_main
from tune_jobs.runtime.settings import SAFE_NAME
from tune_jobs.verdicts import compare as stats
from tune_jobs.verdicts.claims import list_claims, load_claim

SELECTOR_TAGS = ("device", "device_name", "device_kind", "threads", "hostname", "torch_version", "git_commit",
                 "sweep_id")
"""Tags a ``<tag>=<value>`` selector may name."""
SAFE_VALUE = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._:+@()/-]{0,127}")
"""A tag value or claim prefix a selector may hold (never a quote: it goes into MLflow's filter)."""
STORE_PREFIXES = ("sqlite:", "file:", "http://", "https://", "postgresql", "mysql")
ENVIRONMENT_PARAMS = ("train.threads", "train.device", "seed", "config_id", "grokking_censored_at")
"""Params that are not the configuration: what two environments may differ in, the seed, bookkeeping."""


def match_id(params: dict[str, str]) -> str:
    """A run's configuration id across environments: the first 8 hex digits of the SHA-1 of its config
    params (sorted JSON) without ``ENVIRONMENT_PARAMS`` and the run settings (``run.*``), so that the
    same configuration run with another thread count or device matches."""
    kept = {k: v for k, v in params.items() if k not in ENVIRONMENT_PARAMS and not k.startswith("run.")}
    return hashlib.sha1(json.dumps(kept, sort_keys=True).encode()).hexdigest()[:8]


@dataclass(frozen=True)
class Selector:
    """One side of a comparison: a store and tags to select trial runs by, or a claim set."""

    text: str
    store: Optional[str] = None
    """Tracking URI to read (None: the job's ``--tracking-uri``)."""
    tags: tuple[tuple[str, str], ...] = ()
    claim: Optional[str] = None
    """Claim prefix, e.g. '456p' (a claim side)."""
    device: str = "cuda"
    """A claim side's source device (matched case-blind inside the claim's ``source_device``)."""


def parse_selector(text: str) -> Selector:
    """A selector (see the module doc) from its text.

    Raises:
        ConfigError: an empty or unsafe value, or an unknown tag; names the selector.
    """
    if text.startswith("claim:"):
        prefix, _, device = text[len("claim:"):].partition("@")
        if not SAFE_VALUE.fullmatch(prefix) or (device and not SAFE_VALUE.fullmatch(device)):
            raise ConfigError(f"selector {text!r}: write claim:<prefix>[@<device>], e.g. claim:456p@mps")
        return Selector(text, claim=prefix, device=device or "cuda")
    if text.startswith(STORE_PREFIXES):
        return Selector(text, store=text)
    if "=" in text:
        key, _, value = text.partition("=")
        if key not in SELECTOR_TAGS or not SAFE_VALUE.fullmatch(value):
            raise ConfigError(f"selector {text!r}: a tag selector is <tag>=<value> with a tag among "
                              f"{', '.join(SELECTOR_TAGS)} and a value of letters, digits and ._:+@()-")
        return Selector(text, tags=((key, value),))
    if not SAFE_NAME.fullmatch(text):
        raise ConfigError(f"selector {text!r} is neither a sweep name, a store URI, <tag>=<value> nor claim:<prefix>")
    return Selector(text, tags=(("sweep_id", text),))


@dataclass(frozen=True)
class CompareArgs:
    """The two sides and where the comparison is read and logged."""

    a: str
    """Side A: a sweep name, a store URI, <tag>=<value> (device, threads, hostname, torch_version...) or claim:<prefix>[@device]."""
    b: str
    """Side B, written the same way."""
    tracking_uri: Optional[str] = None
    """MLflow store of sweep and tag selectors and of the comparison run; default $MLFLOW_TRACKING_URI or the project's."""
    experiment: str = "comparisons"
    """MLflow experiment of the comparison run."""
    alpha: float = stats.ALPHA
    """Significance level of the action lines."""

    def check(self) -> None:
        parse_selector(self.a), parse_selector(self.b)
        if not 0 < self.alpha < 1:
            raise ConfigError(f"alpha must be in (0, 1), got {self.alpha!r}")


def claim_sample(selector: Selector) -> pd.DataFrame:
    """The record's outcomes of ``selector``'s claim set, one row per seed: grokked when the claim is an
    ``at_least`` one (its ``claimed_best_step``, the best checkpoint's step, stands for the grokking step,
    an upper bound), never grokked (censored at its schedule's last step) when ``at_most``.

    Raises:
        ConfigError: no claim file matches; names the selector.
    """
    rows = []
    for name in list_claims("addition"):
        claim = load_claim(name, "addition")
        if name.startswith(f"{selector.claim}-s") and selector.device.lower() in claim.source_device.lower():
            grokked = claim.comparison == "at_least"
            step = claim.claimed_best_step if grokked and claim.claimed_best_step is not None else math.nan
            rows.append({"config_id": selector.claim, "name": selector.claim, "seed": claim.train.seed,
                         "success": float(grokked), "grokking_step": step if grokked else math.nan,
                         "censored_at": claim.train.train_steps - 1, "run_id": None})
    if not rows:
        raise ConfigError(f"selector {selector.text!r}: no claim {selector.claim}-s<seed> on a device naming "
                          f"{selector.device!r} (make claims lists them)")
    return pd.DataFrame(rows)


def run_sample(records: list[Any]) -> pd.DataFrame:
    """One row per (configuration, seed) of the FINISHED trial runs (the newest of duplicates): the
    ``verdicts.compare.SAMPLE_COLUMNS`` (``config_id`` is ``match_id``) and ``run_id``."""
    rows = []
    for run in records:
        if run.status != "FINISHED" or "config_id" not in run.tags or "seed" not in run.tags:
            continue
        horizon = run.params.get("grokking_censored_at") or int(run.params.get("train.train_steps", "0")) - 1
        rows.append({"config_id": match_id(run.params), "name": run.tags.get("config") or run.name.rsplit(" s", 1)[0],
                     "seed": int(run.tags["seed"]), "success": float(run.metrics.get("success", 0.0)),
                     "grokking_step": run.metrics.get("grokking_step", math.nan), "censored_at": float(horizon),
                     "run_id": run.run_id})
    table = pd.DataFrame(rows, columns=[*stats.SAMPLE_COLUMNS, "run_id"])
    return table.drop_duplicates(["config_id", "seed"], keep="first").reset_index(drop=True)


def load_side(selector: Selector, default: Any) -> tuple[pd.DataFrame, Any]:
    """(sample, the client it was read with; None for a claim side).

    Raises:
        TrackingError: a store selector's store cannot be reached.
        ConfigError: nothing finished matches; names the selector and the store.
    """
    if selector.claim is not None:
        return claim_sample(selector), None
    client = open_store(selector.store) if selector.store else default
    sample = run_sample(find_trial_runs(client, dict(selector.tags)))
    if sample.empty:
        raise ConfigError(f"selector {selector.text!r}: no FINISHED trial run in {client.tracking_uri}")
    return sample, client


def loss_differences(a: pd.DataFrame, b: pd.DataFrame, clients: tuple[Any, Any]) -> dict[tuple[str, int], Any]:
    """(config_id, seed) -> first step where the ``train/loss`` traces of a matched seed differ (None:
    identical), for the seeds both sides have a run of."""
    if clients[0] is None or clients[1] is None:
        return {}
    pairs = a[["config_id", "seed", "run_id"]].merge(b[["config_id", "seed", "run_id"]], on=["config_id", "seed"])
    out = {}
    for row in pairs.itertuples():
        traces = [metric_history(client, run_id, ["train/loss"]).set_index("step")["value"]
                  for client, run_id in zip(clients, (row.run_id_x, row.run_id_y))]
        out[(row.config_id, int(row.seed))] = stats.first_differing_step(*traces)
    return out


def trace_summary(seeds: pd.DataFrame, config: str) -> str:
    """How a configuration's matched loss traces compare (``verdicts.compare.seed_table`` rows), e.g. 'loss
    traces identical in 3/3 seeds' or 'loss traces differ in 2/3 seeds, first at steps 100, 200'; empty when
    none was compared."""
    steps = seeds.loc[seeds["config_id"] == config, "first_differing_step"]
    steps = steps[steps != "not compared"]
    if steps.empty:
        return ""
    differing = [int(s) for s in steps if s != "identical"]
    if not differing:
        return f"loss traces identical in {len(steps)}/{len(steps)} seeds"
    return f"loss traces differ in {len(differing)}/{len(steps)} seeds, first at steps {', '.join(map(str, differing))}"


def readable(table: pd.DataFrame) -> pd.DataFrame:
    """The configuration table as the terminal shows it: 'k/n [low, high]' per side, the two p-values."""
    def side(row: Any, s: str) -> str:
        return f"{row[f'successes_{s}']}/{row[f'seeds_{s}']} [{row[f'wilson_low_{s}']:.2f}, {row[f'wilson_high_{s}']:.2f}]"
    return pd.DataFrame({"name": table["name"], "config_id": table["config_id"],
                         "A success [95% Wilson]": [side(r, "a") for _, r in table.iterrows()],
                         "B success [95% Wilson]": [side(r, "b") for _, r in table.iterrows()],
                         "p (Fisher)": table["p_rate"], "p (log-rank)": table["p_logrank"]})


def compare(args: CompareArgs) -> pd.DataFrame:
    """Compare the two sides; prints the tables and action lines, logs them as a ``role=comparison``
    run with the time-to-grok figure, and returns the configuration table (``verdicts.compare``).

    Raises:
        ConfigError: a selector matches nothing (names it).
        TrackingError: a store cannot be reached.
    """
    selectors = parse_selector(args.a), parse_selector(args.b)
    default = open_store(args.tracking_uri)
    (a, client_a), (b, client_b) = (load_side(s, default) for s in selectors)
    table = stats.compare_configurations(a, b, args.alpha)
    seeds = stats.seed_table(a, b, loss_differences(a, b, (client_a, client_b))).sort_values(
        ["config_id", "seed"], ignore_index=True)
    lines = [f"{row.name} ({row.config_id}): {row.action}" + (f"; {trace}" if (trace := trace_summary(
        seeds, row.config_id)) else "") for row in table.itertuples()]
    with pd.option_context("display.width", 250, "display.max_columns", 20, "display.float_format", "{:.3g}".format):
        print(f"\nA = {args.a} ({len(a)} seed runs), B = {args.b} ({len(b)} seed runs)")
        print(readable(table).to_string(index=False))
        print("\nMatched seeds:" if not seeds.empty else "\nNo seed was run on both sides.")
        if not seeds.empty:
            print(seeds.to_string(index=False))
    print("\n" + "\n".join(lines))
    figure = stats.time_to_grok_figure(a, b, ("A", "B"))
    run_id = log_finished_run(default, args.experiment, f"compare {args.a} vs {args.b}",
                              {"a": args.a, "b": args.b, "alpha": args.alpha},
                              {"role": "comparison", "a": args.a, "b": args.b}, (),
                              {"comparison": table, "seeds": seeds}, {"time_to_grok.png": figure},
                              f"**A** = `{args.a}`, **B** = `{args.b}`\n\n" + "\n".join(f"- {line}" for line in lines))
    print(f"MLflow: comparison run {run_id} (role=comparison) at {default.tracking_uri}")
    return table


def main(argv: list[str] | None = None) -> int:
    return run_main(CompareArgs, compare, argv)


if __name__ == "__main__":
    sys.exit(main())
