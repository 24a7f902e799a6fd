"""The parent run's params and description lines: the settings as the job ran, and the space it searched."""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Mapping

from mlflow_utils import resolve_tracking_uri
from search_spaces import Choice, IntRange, LogUniform, SearchSpace
from tune_jobs.runtime.settings import RunSettings
from tune_jobs.verdicts.sequential import INTERVAL_KIND, SequentialDesign


def run_params(settings: RunSettings, name: str, resolved: Mapping[str, Any]) -> dict[str, Any]:
    """The parent run's ``job.<setting>`` params as the job ran: a setting left to its default (None)
    shows the value used: ``resolved``'s (the space's or the claim's steps, seeds, mode...), the job's
    name, the absolute tracking URI, the Ray address ('local' when the job starts its own Ray), the
    checkpoint cadence; any other None shows as 'none'."""
    used = {"name": name, "tracking_uri": resolve_tracking_uri(settings.tracking_uri),
            "ray_address": settings.ray_address or os.environ.get("RAY_ADDRESS") or "local",
            "checkpoint_interval": "every evaluation", **resolved}
    return {f"job.{key}": used.get(key, "none") if value is None else value
            for key, value in dataclasses.asdict(settings).items()}


def space_values(space: SearchSpace) -> dict[str, Any]:
    """What a space fixes, by field name (for ``run_params``): its seeds and each section's constants
    (a searched field reads 'searched')."""
    values: dict[str, Any] = {"seeds": list(space.seeds) if space.seed_range is None else str(space.seed_range)}
    for fields in space.sections.values():
        for key, value in fields.items():
            values.setdefault(key, "searched" if isinstance(value, (Choice, IntRange, LogUniform)) else value)
    return values


def space_params(space: SearchSpace, configs: int, design: SequentialDesign | None = None) -> dict[str, Any]:
    """Parent-run params describing a space: name, source file, description, seeds, the searched
    fields, and the configurations and trials it runs; under a sequential ``design`` the seed range
    (``space.seeds`` is then the order seeds are handed out in), the most seeds it may run
    (``space.max_seed_runs``) and the design's rule: ``seeds.<field>`` (min/max seeds, group size,
    alpha, bars, mixture, racing) and ``seeds.interval`` (its kind)."""
    params = {"space.name": space.name, "space.source": space.source, "space.description": space.description,
              "space.seeds": list(space.seeds), "space.searched": ", ".join(space.dimensions()) or "none",
              "space.configurations": configs}
    if design is None:
        return {**params, "space.trials": configs * len(space.seeds)}
    rule = {f"seeds.{key}": value for key, value in design.as_dict().items() if key != "seed_order"}
    return {**params, "space.seed_range": str(space.seed_range), "space.max_seed_runs": configs * design.max_seeds,
            **rule, "seeds.interval": INTERVAL_KIND}


def sweep_intro(job: str, space: SearchSpace, configs: int, name: str) -> list[str]:
    """The first lines of a sweep's description: what ran, how long, and how to resume it."""
    steps = space.sections.get("train", {}).get("train_steps")
    seeds = f"{len(space.seeds)} seeds ({', '.join(str(s) for s in space.seeds)})"
    if space.seed_range is not None:
        seeds = (f"{space.seed_range.min_seeds} to {space.seed_range.max_seeds} seeds, sequential (each configuration "
                 f"gets seeds while its success rate is undecided: {INTERVAL_KIND})")
    return [f"**{job}** on search space `{space.name}`: {space.description}", "",
            f"{configs} configurations x {seeds}"
            + (f", {steps} steps each" if steps is not None else "")
            + f"; job `{name}` (continue it: the make command it started with, plus `RESUME=1 NAME={name}`)."]
