"""Checkpoints of a stacked run: one resumable stacked file, and each seed's best.pt / last.pt
sliced out in the single-model format (``checkpoint.save_checkpoint``), so that
``load_checkpoint``, ``trainables.addition evaluate`` and the published protocols read them and
``train(..., resume_from=<seed folder>)`` can continue a seed as a single run."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch

from trainables.addition.checkpoint import BEST_CHECKPOINT, LAST_CHECKPOINT, save_checkpoint, save_resumable
from trainables.addition.checkpoint import write_atomically
from trainables.addition.config import ModelConfig, TrainConfig, to_flat_dict
from trainables.addition.stacked_model import Layout, load_row, template_model
from trainables.loop import load_resumable
from trainables.optim import adamw
from trainables.provenance import provenance

STACKED_CHECKPOINT = "stacked_last.pt"
"""The resumable stacked checkpoint in a stacked run's output folder."""


def seed_folder(out: Path, seed: int) -> Path:
    """The folder of one seed's best.pt and last.pt inside a stacked run's output folder."""
    return out / f"seed_{seed}"


@dataclass
class SeedState:
    """The host-side record of one seed of a stacked run."""

    trace: list[float] = field(default_factory=list)
    """Loss of every step this seed trained (up to and including a diverging step)."""
    history: list[dict[str, float]] = field(default_factory=list)
    """Every metrics dict reported for this seed."""
    best_em: float = -1.0
    best_step: int = 0
    best_row: Optional[torch.Tensor] = None
    """(N,) best-by-validation weights, on the CPU."""
    diverged_step: Optional[int] = None
    """Step whose loss or gradient norm was not finite; the seed is frozen from it on."""
    finished: bool = False
    """Its last report is out (final step, or the report of its divergence)."""


class SeedCheckpoints:
    """Writes each seed's checkpoints in the single-model format under ``seed_<seed>/``."""

    def __init__(self, model_config: ModelConfig, configs: list[TrainConfig], out: Path) -> None:
        self.configs, self.out = configs, out
        self.model = template_model(model_config)
        self.offsets = Layout.of(model_config).offsets
        self.param_groups = adamw(self.model.parameters(), configs[0]).state_dict()["param_groups"]
        meta = provenance(configs[0].device, configs[0].threads)
        self.meta = [{"provenance": meta, "flat_config": to_flat_dict(model_config, cfg)} for cfg in configs]

    def save_best(self, i: int, row: torch.Tensor, step: int, val_exact: float) -> None:
        cfg = self.configs[i]
        save_checkpoint(seed_folder(self.out, cfg.seed) / BEST_CHECKPOINT, load_row(self.model, row), cfg, step=step,
                        val_exact=val_exact, **self.meta[i])

    def save_last(self, i: int, row: torch.Tensor, adam: dict[str, torch.Tensor], seed: SeedState,
                  val_exact: float, stacked: dict[str, Any]) -> None:
        """``last.pt`` as ``train`` writes it; ``adam``: this seed's AdamW state (step, exp_avg, exp_avg_sq rows)."""
        cfg, step = self.configs[i], seed.history[-1]["step"]
        state = {}
        for j, (offset, p) in enumerate(zip(self.offsets, self.model.parameters())):
            sliced = {k: adam[k][offset:offset + p.numel()].view_as(p).clone() for k in ("exp_avg", "exp_avg_sq")}
            state[j] = {"step": adam["step"].detach().cpu().clone(), **sliced}
        groups = [{**group, "lr": cfg.lr_at(step)} for group in self.param_groups]
        best = None if seed.best_row is None else _state_of(self.model, seed.best_row)
        model = load_row(self.model, row)
        save_resumable(seed_folder(self.out, cfg.seed) / LAST_CHECKPOINT, model, cfg, step=step, val_exact=val_exact,
                       optimizer_state={"state": state, "param_groups": groups},
                       data_generator_state=torch.tensor([step + 1], dtype=torch.int64), trace=seed.trace,
                       history=seed.history, best_exact_match=seed.best_em, best_step=seed.best_step,
                       best_state=best, stacked=stacked, **self.meta[i])


def _state_of(model: torch.nn.Module, row: torch.Tensor) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in load_row(model, row).state_dict().items()}


def _comparable(train_config: TrainConfig) -> dict[str, Any]:
    values = dataclasses.asdict(train_config)
    values.pop("seed")
    return values


def save_stacked(out: Path, model_config: ModelConfig, train_config: TrainConfig, seeds: tuple[int, ...],
                 engine_state: dict[str, Any], states: list[SeedState]) -> Path:
    """Write ``stacked_last.pt``: the engine's state and every seed's record (atomically)."""
    path = out / STACKED_CHECKPOINT
    payload = {"step": engine_state["next_step"] - 1,  # as in last.pt: the last step trained
               "model_config": dataclasses.asdict(model_config), "train_config": _comparable(train_config),
               "seeds": list(seeds), "engine": engine_state, "seeds_state": [dataclasses.asdict(s) for s in states]}
    out.mkdir(parents=True, exist_ok=True)
    return write_atomically(payload, path)


def _flat(model_config: dict[str, Any], train_config: dict[str, Any], seeds: list[int]) -> dict[str, Any]:
    """The resume check's flat view: ``model.<name>``, ``train.<name>`` (no seed) and ``seeds``."""
    return {**{f"model.{k}": v for k, v in model_config.items()},
            **{f"train.{k}": v for k, v in train_config.items()}, "seeds": seeds}


def load_stacked(folder: Path, model_config: ModelConfig, train_config: TrainConfig, seeds: tuple[int, ...]
                 ) -> tuple[dict[str, Any], list[SeedState]]:
    """The engine state and seed records of ``folder/stacked_last.pt``.

    Raises:
        FileNotFoundError: no stacked checkpoint there.
        ValueError: it was written for other configs or seeds (the message names the differences).
    """
    now = _flat(dataclasses.asdict(model_config), _comparable(train_config), list(seeds))
    payload = load_resumable(folder / STACKED_CHECKPOINT, now,
                             lambda saved: _flat(saved["model_config"], saved["train_config"], saved["seeds"]),
                             state_key="engine", what="configs or seeds")
    return payload["engine"], [SeedState(**s) for s in payload["seeds_state"]]
