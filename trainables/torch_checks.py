"""Checks of what torch is handed from outside: ``.pt`` files and devices, each refused with a message.

``.pt`` files are read with ``torch.load(weights_only=True)`` only, and a file that is truncated,
corrupt, not a checkpoint, or a pickle that would run code is a message, not a traceback.

Every ``.pt`` file the project reads (its own checkpoints, the published ones, a command job's
``best.pt``) goes through ``weights_only=True``: tensors, numbers, strings and containers load; any
other object in the pickle is refused, so a checkpoint from elsewhere cannot run code when loaded.
"""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path
from typing import Any

import torch

from trainables.checks import ConfigError


class CheckpointError(ConfigError):
    """A checkpoint file cannot be used; the message names the file and what to do."""


def read_torch_file(path: str | Path, what: str = "checkpoint") -> dict[str, Any]:
    """The dict a ``.pt`` file holds, loaded on the CPU with ``weights_only=True``.

    Raises:
        FileNotFoundError: no file at ``path``.
        CheckpointError: the file does not load (truncated, corrupt, refused by ``weights_only``) or
            does not hold a dict; names ``what``, the file and the loader's first line.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        with warnings.catch_warnings():  # e.g. "Detected pickle protocol 4": the error below says what matters
            warnings.simplefilter("ignore", UserWarning)
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{what} {path} cannot be loaded ({_reason(error)}): the file is truncated, corrupt, "
                              f"not a torch checkpoint, or holds objects other than tensors and plain data; use "
                              f"another one, or delete it and start again") from error
    if not isinstance(payload, dict):
        raise CheckpointError(f"{what} {path} holds a {type(payload).__name__}, not a checkpoint dict")
    return payload


def _reason(error: BaseException) -> str:
    """The informative part of a loader's error: what the weights-only unpickler refused, else the
    first line (never torch's advice to load with ``weights_only=False``)."""
    text = str(error)
    if "WeightsUnpickler error:" in text:
        detail = text.split("WeightsUnpickler error:", 1)[1].strip().split("\n\n")[0].strip()
        return f"refused by weights_only=True: {detail[:200]}"
    first = (text.strip().splitlines() or [type(error).__name__])[0]
    return first.split(". ", 1)[0][:200]


def require_device(device: str, field: str) -> None:
    """A CUDA device is only asked for where torch sees a GPU (this process's own check: on a Ray
    cluster the jobs check the cluster's GPUs instead).

    Raises:
        ConfigError: names the field, the device and what to do.
    """
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"{field}={device!r}: torch sees no CUDA GPU here (torch.cuda.is_available() is False, "
                          f"torch {torch.__version__}); use {field}=cpu, or a CUDA build of torch on a GPU machine")


def check_local_run(device: str, resume: bool, out_dir: Path | None, checkpoint_file: str) -> None:
    """Refuse, before any work, what a trainable's own command line cannot do on this machine: CUDA
    without a GPU (``--train.device``), ``--resume`` without ``--out-dir``, or a checkpoint to resume
    from that does not load.

    Raises:
        ConfigError: names the option (or the file) and what to do.
    """
    require_device(device, "--train.device")
    if resume:
        if out_dir is None:
            raise ConfigError(f"--resume needs --out-dir (the folder holding {checkpoint_file})")
        if (Path(out_dir) / checkpoint_file).is_file():
            read_torch_file(Path(out_dir) / checkpoint_file, "--resume: checkpoint")
