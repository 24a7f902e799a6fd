"""Checkpoints of the language-model trainable: ``model.pt`` (weights, the run's sections and the
state a resumed run continues from) and the run's other output files (no Ray, no MLflow).

Every ``checkpoint_interval`` steps (at evaluations) and after the last step rank 0 writes
``model.pt`` whose ``resume`` entry holds what a continued run needs: AdamW state, the window
generator's state, torch's global RNG state (dropout masks draw from it), the metric history and
the diagnostics time so far. The final ``model.pt`` keeps no optimizer state (nothing is left to
train), only what re-reporting the result needs; with it come tokenizer.json, completions.json and
run.json.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from trainables.lm.config import LMRun
from trainables.lm.data import Prepared
from trainables.lm.model import CausalLM
from trainables.loop import load_resumable
from trainables.provenance import provenance

if TYPE_CHECKING:  # the result type only: train imports this module
    from trainables.lm.train import LMResult

MODEL_FILE = "model.pt"
"""The weights, the run's sections and (key ``resume``) the state a resumed run continues from."""
OUTPUT_FILES = (MODEL_FILE, "tokenizer.json", "completions.json", "run.json")
"""What a finished run leaves in its output folder."""


def resume_state(optimizer: torch.optim.Optimizer, generator: torch.Generator, result: LMResult,
                 diag_seconds: float, elapsed_seconds: float, device: str, final: bool) -> dict[str, Any]:
    """The ``resume`` entry of model.pt (no optimizer, generator or RNG state after the last step)."""
    resume: dict[str, Any] = {"history": result.history, "completions": result.completions, "flags": result.flags,
                              "diagnostics_seconds": diag_seconds, "elapsed_seconds": elapsed_seconds}
    if not final:
        resume.update(optimizer_state=optimizer.state_dict(), generator_state=generator.get_state(),
                      rng_state=torch.get_rng_state())
        if torch.device(device).type == "cuda":
            resume["cuda_rng_state"] = torch.cuda.get_rng_state(device)
    return resume


def _sections(saved: dict[str, Any]) -> dict[str, Any]:
    """The flat ``<section>.<field>`` view of a checkpoint's (or a run's) sections, for the resume check."""
    return {f"{section}.{name}": value for section, fields in (saved.get("run") or {}).items()
            for name, value in fields.items()}


def load_checked(path: Path, run: LMRun) -> dict[str, Any]:
    """The checkpoint at ``path``, checked against ``run`` (before any data is prepared).

    Raises:
        FileNotFoundError: no checkpoint at ``path``.
        ValueError: it was written with other sections, or holds no resume state.
    """
    return load_resumable(path, _sections({"run": run.to_sections()}), _sections)


def restore(saved: dict[str, Any], model: CausalLM, optimizer: torch.optim.Optimizer, generator: torch.Generator,
            data: Prepared, result: LMResult, run: LMRun) -> tuple[int, float]:
    """Load a checked checkpoint into the fresh model, optimizer, generator and result; returns
    (next step, diagnostics seconds so far).

    Raises:
        ValueError: the prepared data's checksums differ from the checkpoint's.
    """
    checksums = ("data/train_sha256", "data/val_sha256")
    record = data.split.record()
    if any(saved["data"].get(k) != record[k] for k in checksums):
        raise ValueError(f"resume_from: the checkpoint was trained on other data (saved, now): "
                         f"{ {k: (saved['data'].get(k), record[k]) for k in checksums} }")
    resume = saved["resume"]
    model.load_state_dict({k: v.to(run.train.device) for k, v in saved["model_state"].items()})
    next_step = int(saved["step"]) + 1
    if next_step < run.train.train_steps:
        optimizer.load_state_dict(resume["optimizer_state"])
        generator.set_state(resume["generator_state"])
    result.history = list(resume["history"])
    result.completions = list(resume["completions"])
    result.flags = dict(resume["flags"])
    return next_step, float(resume["diagnostics_seconds"])


def set_rng_state(resume: dict[str, Any], device: str) -> None:
    """Torch's global RNG (dropout masks) as it was at the checkpoint (a final one keeps none)."""
    if "rng_state" in resume:
        torch.set_rng_state(resume["rng_state"])
    if "cuda_rng_state" in resume:
        torch.cuda.set_rng_state(resume["cuda_rng_state"], device)


def save_model(out: Path, model: CausalLM, data: Prepared, run: LMRun, result: LMResult, step: int,
               resume: dict[str, Any]) -> dict[str, Any]:
    """model.pt: state, sections, vocab size, provenance, data record, audit flags, 0-based ``step``
    and the ``resume`` state; returns the metadata (all but state, step and resume)."""
    out.mkdir(parents=True, exist_ok=True)
    meta = {"run": run.to_sections(), "vocab_size": data.tokenizer.get_vocab_size(),
            "provenance": provenance(run.train.device, run.train.threads),
            "data": {k: v for k, v in data.split.record().items()}, "flags": result.flags}
    torch.save({"model_state": model.state_dict(), **meta, "step": step, "resume": resume}, out / MODEL_FILE)
    return meta


def save_outputs(out: Path, model: CausalLM, data: Prepared, run: LMRun, result: LMResult, step: int,
                 resume: dict[str, Any]) -> None:
    """The final ``OUTPUT_FILES``: model.pt (see ``save_model``), tokenizer.json, completions.json, run.json."""
    meta = save_model(out, model, data, run, result, step, resume)
    shutil.copyfile(data.tokenizer_path, out / "tokenizer.json")
    (out / "completions.json").write_text(json.dumps(result.completions, indent=1, ensure_ascii=False))
    (out / "run.json").write_text(json.dumps({**meta, "ablations": result.ablations}, indent=1, default=str))


def copy_outputs(source: Path, out: Path) -> None:
    """A finished run's ``OUTPUT_FILES`` from ``source`` into ``out`` (nothing when they are one folder)."""
    if out.resolve() != source.resolve():
        out.mkdir(parents=True, exist_ok=True)
        for name in OUTPUT_FILES:
            shutil.copyfile(source / name, out / name)
