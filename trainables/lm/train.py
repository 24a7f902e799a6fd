"""Training loop of the language-model trainable: a plain function, no Ray, no MLflow.

Order of a run: split the corpus (its own seed); build or load the tokenizer of the training text
(plus ``tokenizer.extra_corpora``); encode; build the model (seed); then AdamW steps on random
windows of the training tokens (a generator seeded with ``seed + 1``), an evaluation after every
``eval_interval``-th 0-based step and after the last; finally generation health, the ablation of
each component the model lists (``trainables.lm.ablation``) and the audits.

At an evaluation the model scores ``eval_bytes`` of validation text and as much training text,
each sampled as ``eval_pieces`` line-aligned chunks spread over its split
(``trainables.lm.evaluate``); their difference in bits per byte is the generalization gap. Diagnostics (``trainables.diagnostics``) are timed, and their
share of the run's wall time is reported as ``perf/diagnostics_share``.

Data parallelism (``train(..., shard=(rank, world), prepare=...)``, as in the addition trainable):
every rank draws the same global batch from the same seeded generator and trains on its
``batch_size / world`` rows through the wrapped (DistributedDataParallel) model; gradients are
averaged, so with equal shards the run is the one-process run up to floating-point reordering.

Checkpoints (``train(..., checkpoint_interval=k, resume_from=folder)``, as in the addition trainable):
``model.pt`` every ``k`` steps and after the last (``trainables.lm.checkpoint``). A run resumed from
it ends bit-identical (same device and thread count) to one never stopped.

Each evaluation reports ``step``, ``lr``, ``train/loss`` (mean batch loss since the previous
evaluation), ``val/{loss,perplexity,bits_per_byte}``, ``train_eval/*`` (the same on training text),
``diag/*``, ``perf/*``; the first and last add ``data/*`` and ``tok/*``; the last adds ``gen/*``,
``diag/ablation/*`` (``trainables.lm.ablation``), ``audit/*``, ``audit_reasons``
(``trainables.lm.final_checks``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F

from trainables import diagnostics
from trainables.lm import ablation
from trainables.lm.checkpoint import MODEL_FILE, copy_outputs, load_checked, restore, resume_state, save_model
from trainables.lm.checkpoint import save_outputs, set_rng_state
from trainables.lm.config import LMRun
from trainables.lm.data import Prepared
from trainables.lm.data import prepare as prepare_data
from trainables.lm.evaluate import score_ids
from trainables.lm.final_checks import final_checks
from trainables.lm.model import CausalLM, build_model
from trainables.loop import Reporter, check_run_control, global_loss, resumed_at_end, shard_rows
from trainables.optim import adamw, clip_gradients, set_lr

__all__ = ["LMResult", "MODEL_FILE", "train"]


@dataclass
class LMResult:
    """Summary of one run."""

    history: list[dict[str, Any]] = field(default_factory=list)
    """Every reported dict, in order (the last holds generation, audits and ``audit_reasons``)."""
    completions: list[dict[str, Any]] = field(default_factory=list)
    """One row per completion of the generation check; column ``ablation`` is ``none`` for the
    model's own, else the ablated variant that wrote it (``trainables.lm.ablation``)."""
    flags: dict[str, str] = field(default_factory=dict)
    """Audit flag -> reason."""

    @property
    def final(self) -> dict[str, Any]:
        return self.history[-1]

    @property
    def ablations(self) -> dict[str, dict[str, float]]:
        """``<component>/<variant>`` -> bits_per_byte, delta_bits_per_byte, relative_change of the
        ablation audit (``trainables.lm.ablation``); empty before the last evaluation."""
        return ablation.summary(self.history[-1]) if self.history else {}


def _optimizer(model: CausalLM, run: LMRun) -> torch.optim.AdamW:
    """AdamW with weight decay on the 2-D weights only (not on norms, biases or the position table)."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    rest = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": run.train.weight_decay}, {"params": rest, "weight_decay": 0.0}]
    return adamw(groups, run.train)


def _batch(ids: torch.Tensor, run: LMRun, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    length = run.model.context_length
    starts = torch.randint(0, ids.numel() - length - 1, (run.train.batch_size,), generator=generator)
    index = starts.unsqueeze(1) + torch.arange(length + 1)
    windows = ids[index]
    return windows[:, :-1].to(run.train.device), windows[:, 1:].to(run.train.device)


def _diagnose(model: CausalLM, data: Prepared, run: LMRun) -> dict[str, float]:
    """Weight and hidden-state effective ranks and gate health on up to 4 validation windows."""
    length, ids = run.model.context_length, data.val_ids
    rows = min(4, (ids.numel() - 1) // length)
    x = (ids[: rows * length].view(rows, length) if rows else ids[:-1].unsqueeze(0)).to(run.train.device)
    layers = {f"block{i}": block for i, block in enumerate(model.blocks)}
    return {**diagnostics.weight_ranks(model), **diagnostics.hidden_state_ranks(model, layers, lambda: model(x)),
            **diagnostics.gate_health(model, lambda: model(x))}


def _evaluate(model: CausalLM, data: Prepared, run: LMRun) -> dict[str, float]:
    val = score_ids(model, data.val_ids.tolist(), run.model.context_length, data.val_bytes, device=run.train.device)
    train = score_ids(model, data.train_eval_ids.tolist(), run.model.context_length, data.train_eval_bytes,
                      device=run.train.device)
    return {**val.metrics("val"), **train.metrics("train_eval"),
            "diag/generalization_gap": val.bits_per_byte - train.bits_per_byte}


def train(run: LMRun, out_dir: str | Path | None = None, report: Reporter | None = None,
          data: Prepared | None = None, shard: tuple[int, int] = (0, 1),
          prepare: Callable[[torch.nn.Module], torch.nn.Module] | None = None,
          checkpoint_interval: int = 0, resume_from: str | Path | None = None) -> LMResult:
    """Train one language model, evaluating as it goes; see the module doc for the order of work.

    Args:
        run: every setting (``trainables.lm.config``).
        out_dir: folder for model.pt, tokenizer.json, completions.json, run.json; None writes nothing.
        report: called after each evaluation with its metrics (module doc) and, after a checkpoint,
            its folder (``out_dir``; rank 0 only), else None.
        data: the prepared corpus and tokenizer (``trainables.lm.data.prepare(run)``), to share.
        shard: (rank, world size) of data-parallel training: every rank draws the same global batch
            and trains on its ``batch_size / world`` rows; ``prepare`` must then wrap the model so
            gradients are averaged (DistributedDataParallel); ``train/loss`` is the global batch's.
            Every rank evaluates, diagnoses, generates and audits the same (unwrapped) weights; only
            rank 0 writes. With equal shards and ``model.dropout`` 0 this is the one-process run up to
            floating-point reordering; with dropout each rank draws its own masks (same distribution).
        prepare: wraps the built model for the training forward pass only (e.g.
            ``ray.train.torch.prepare_model``).
        checkpoint_interval: write the resumable ``model.pt`` every this many steps (a multiple of
            ``eval_interval``; 0: only after the last step, which always writes it). Needs ``out_dir``.
        resume_from: a folder whose ``model.pt`` (written by this function with the same sections) the
            run continues from; the history holds every evaluation since step 0. Resuming from the
            final checkpoint trains nothing and reports the final result again (copying the folder's
            outputs to ``out_dir``). Every rank resumes from the same (rank 0's) checkpoint.

    Raises:
        ValueError: bad ``checkpoint_interval`` or ``batch_size`` (``loop.check_run_control``), or
            ``resume_from``'s checkpoint written with other sections (before any work) or other data.
        FileNotFoundError: ``resume_from`` has no ``model.pt`` (before any work).
        ConfigError, FileNotFoundError: from ``trainables.lm.data.prepare``.
    """
    cfg = run.train
    check_run_control(checkpoint_interval, cfg.eval_interval, out_dir, cfg.batch_size, shard[1])
    saved = load_checked(Path(resume_from) / MODEL_FILE, run) if resume_from is not None else None
    torch.set_num_threads(cfg.threads)
    started = time.perf_counter() - (saved["resume"]["elapsed_seconds"] if saved else 0.0)
    session = _Session(run, data or prepare_data(run), out_dir, saved, started, prepare)
    resumed_at = session.next_step
    for step in range(resumed_at, cfg.train_steps):
        session.loss_sum += _train_step(session.forward, session.model, session.optimizer, session.data, run,
                                        session.generator, step, shard)
        session.loss_count += 1
        if step % cfg.eval_interval == 0 or step == cfg.train_steps - 1:
            session.evaluate(step, report, checkpoint_interval, writes_files=shard[0] == 0)
    if resumed_at_end(resume_from, resumed_at, cfg.train_steps):
        writes = session.out is not None and shard[0] == 0
        if writes:  # the outputs, where this run writes them
            copy_outputs(Path(resume_from), session.out)
        if report is not None:
            report(session.result.history[-1], session.out if writes else None)
    return session.result


class _Session:
    """One run's data, model (and its training wrapper), optimizer, window generator, result and
    timers, restored from a checked checkpoint on resume."""

    def __init__(self, run: LMRun, data: Prepared, out_dir: str | Path | None, saved: dict[str, Any] | None,
                 started: float, prepare: Callable[[torch.nn.Module], torch.nn.Module] | None) -> None:
        cfg = run.train
        self.run, self.data, self.started = run, data, started
        self.model = build_model(run.model, data.tokenizer.get_vocab_size(), cfg.seed, cfg.device)
        self.forward = prepare(self.model) if prepare is not None else self.model
        self.optimizer = _optimizer(self.model, run)
        self.generator = torch.Generator().manual_seed(cfg.seed + 1)
        self.constants = {**data.record(self.model), "data/split_overlap": data.overlap}
        self.out = Path(out_dir) if out_dir is not None else None
        self.result, self.diag_seconds, self.next_step = LMResult(), 0.0, 0
        if saved is not None:  # in place, under any wrapper; the global RNG last, just before the first step
            self.next_step, self.diag_seconds = restore(saved, self.model, self.optimizer, self.generator, data,
                                                        self.result, run)
            set_rng_state(saved["resume"], cfg.device)
        self.loss_sum, self.loss_count, self.tick = 0.0, 0, time.perf_counter()

    def evaluate(self, step: int, report: Reporter | None, checkpoint_interval: int, writes_files: bool) -> None:
        """Evaluate after ``step``, run the final checks after the last, checkpoint and report."""
        cfg, model, data = self.run.train, self.model, self.data
        final = step == cfg.train_steps - 1
        now = time.perf_counter()
        metrics: dict[str, Any] = {"step": step, "lr": cfg.lr_at(step), "train/loss": self.loss_sum / self.loss_count,
                                   "perf/steps_per_second": self.loss_count / max(now - self.tick, 1e-9),
                                   **_evaluate(model, data, self.run)}
        if cfg.diagnostics:
            diag_start = time.perf_counter()
            metrics.update(_diagnose(model, data, self.run))
            self.diag_seconds += time.perf_counter() - diag_start
        metrics["perf/diagnostics_seconds"] = self.diag_seconds
        metrics["perf/diagnostics_share"] = self.diag_seconds / max(time.perf_counter() - self.started, 1e-9)
        if step == 0 or final:
            metrics.update(self.constants)
        if final:
            metrics.update(final_checks(model, data, self.run, self.result, metrics))
        self.result.history.append(metrics)
        checkpointed = self.out is not None and (final or (checkpoint_interval and step % checkpoint_interval == 0))
        writes = checkpointed and writes_files
        if writes:
            self._checkpoint(step, final)
        if report is not None:
            report(metrics, self.out if writes else None)
        self.loss_sum, self.loss_count, self.tick = 0.0, 0, time.perf_counter()

    def _checkpoint(self, step: int, final: bool) -> None:
        """model.pt after ``step`` (with the other output files after the last step)."""
        resume = resume_state(self.optimizer, self.generator, self.result, self.diag_seconds,
                              time.perf_counter() - self.started, self.run.train.device, final)
        save = save_outputs if final else save_model
        save(self.out, self.model, self.data, self.run, self.result, step, resume)


def _train_step(forward: Callable[[torch.Tensor], torch.Tensor], model: CausalLM, optimizer: torch.optim.Optimizer,
                data: Prepared, run: LMRun, generator: torch.Generator, step: int,
                shard: tuple[int, int] = (0, 1)) -> float:
    """One optimizer step through ``forward`` (the model, or its DDP wrapper); returns the global
    batch's loss. With ``shard`` = (rank, world), this rank trains on its slice of the global batch."""
    x, y = shard_rows(*_batch(data.train_ids, run, generator), shard)
    set_lr(optimizer, run.train.lr_at(step))
    optimizer.zero_grad(set_to_none=True)
    logits = forward(x)
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
    loss.backward()
    clip_gradients(model.parameters(), run.train.grad_clip)
    optimizer.step()
    return global_loss(loss, shard[1])  # every row scores context_length tokens
