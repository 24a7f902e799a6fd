"""Addition checkpoints in the reference's format, so ours and the published ones load alike.

A checkpoint is a ``torch.save`` dict (reference section 7): ``model_state``, ``model_config``,
``train_config``, ``step``, ``val_exact``, ``params``, plus, in ours, ``provenance`` (seed,
threads, versions, git commit) and ``metrics``.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from trainables.addition.config import ConfigError, ModelConfig, TrainConfig
from trainables.addition.model import AdditionTransformer
from trainables.paths import shared_dir
from trainables.torch_checks import CheckpointError, read_torch_file

REFERENCE_CHECKPOINTS = {
    "456p_s43": "best_456p_s43.pt",
    "512p": "best_512params.pt",
}
"""Published checkpoints (reference section 7) by short name -> file name."""
BEST_CHECKPOINT = "best.pt"
"""A run's best-by-validation weights, in its output folder (a stacked run's: in each seed's folder)."""
LAST_CHECKPOINT = "last.pt"
"""A run's resumable checkpoint (``save_resumable``), beside ``best.pt``."""
REFERENCE_DIR_ENV = "REPROTUNE_REFERENCE_DIR"
"""Environment variable naming the folder that holds ``checkpoints/``; default ``../shared/reference``."""


def reference_dir() -> Path:
    """Folder of the public record: $REPROTUNE_REFERENCE_DIR or ``<project>/../shared/reference``."""
    return Path(os.environ.get(REFERENCE_DIR_ENV, shared_dir() / "reference")).resolve()


def reference_checkpoint_path(name: str) -> Path:
    """Path of a published checkpoint by short name ('456p_s43', '512p') or file name.

    Raises:
        KeyError: an unknown short name.
    """
    file_name = REFERENCE_CHECKPOINTS.get(name, name)
    if not file_name.endswith(".pt"):
        raise KeyError(f"unknown reference checkpoint {name!r}; known: {', '.join(REFERENCE_CHECKPOINTS)}")
    return reference_dir() / "checkpoints" / file_name


@dataclass
class LoadedCheckpoint:
    """A model rebuilt from a checkpoint, with its configs and bookkeeping."""

    model: AdditionTransformer
    model_config: ModelConfig
    train_config: TrainConfig
    step: int
    val_exact: float
    extra: dict[str, Any]


def save_checkpoint(path: str | Path, model: AdditionTransformer, train_config: TrainConfig, *,
                    step: int, val_exact: float, **extra: Any) -> Path:
    """Write ``model`` with its resolved configs; returns the path. Parent folders are created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    payload = {
        "model_state": state,
        "model_config": dataclasses.asdict(model.config),
        "train_config": dataclasses.asdict(train_config),
        "step": int(step),
        "val_exact": float(val_exact),
        "params": model.num_parameters(),
        **extra,
    }
    return write_atomically(payload, path)


def write_atomically(payload: dict[str, Any], path: Path) -> Path:
    """``torch.save`` ``payload`` to ``path`` through a temporary file beside it, so that a reader
    (or a run killed mid-write) never sees half a checkpoint; returns the path."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def save_resumable(path: Path, model: AdditionTransformer, train_config: TrainConfig, *, step: int,
                   val_exact: float, optimizer_state: dict[str, Any], data_generator_state: torch.Tensor,
                   trace: list[float], history: list[dict[str, float]], best_exact_match: float, best_step: int,
                   best_state: dict[str, torch.Tensor] | None, **extra: Any) -> Path:
    """``last.pt``: ``save_checkpoint``'s format plus what a resumed ``train`` needs: the AdamW state,
    the data generator's state, the float32 ``loss_trace`` of every step and a ``resume`` entry (the
    float64 trace, the metric history, the best exact match, its step and weights)."""
    return save_checkpoint(path, model, train_config, step=step, val_exact=val_exact, optimizer_state=optimizer_state,
                           data_generator_state=data_generator_state,
                           loss_trace=torch.tensor(trace, dtype=torch.float32),
                           resume={"loss_trace_float64": torch.tensor(trace, dtype=torch.float64),
                                   "history": history, "best_exact_match": best_exact_match,
                                   "best_step": best_step, "best_state": best_state},
                           **extra)


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> LoadedCheckpoint:
    """Load an addition checkpoint (ours or the reference's) onto ``device``.

    Loading uses ``weights_only=True`` and maps CUDA-saved tensors to the CPU first.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        CheckpointError: the file is truncated or corrupt, is no addition checkpoint, its stored config
            is impossible or has unknown fields, or its weights do not fit its config (names the file).
    """
    payload = read_torch_file(path, "checkpoint")
    try:
        model_config = ModelConfig.from_dict(payload["model_config"])
        train_config = TrainConfig.from_dict(payload.get("train_config", {}))
        model = AdditionTransformer(model_config)
        model.load_state_dict(payload["model_state"])
    except KeyError as error:
        raise CheckpointError(f"checkpoint {path} has no {error.args[0]!r}: it is not an addition checkpoint") from None
    except (ConfigError, RuntimeError, TypeError, AttributeError) as error:
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise CheckpointError(f"checkpoint {path} does not rebuild a model: {reason[:300]}") from error
    known = {"model_state", "model_config", "train_config", "step", "val_exact"}
    extra = {k: v for k, v in payload.items() if k not in known}
    return LoadedCheckpoint(model.to(device).eval(), model_config, train_config,
                            int(payload.get("step", -1)), float(payload.get("val_exact", float("nan"))), extra)
