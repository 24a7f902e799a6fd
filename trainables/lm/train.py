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
every ``k`` steps (at evaluations) and after the last step rank 0 writes ``model.pt`` whose ``resume``
entry holds what a continued run needs: AdamW state, the window generator's state, torch's global RNG
state (dropout masks draw from it), the metric history and the diagnostics time so far. A run resumed
from it ends bit-identical (same device and thread count) to one never stopped. The final
``model.pt`` keeps no optimizer state (nothing is left to train), only what re-reporting the result needs.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F

from trainables import diagnostics
from trainables.lm import ablation, audits
from trainables.loop import Reporter, check_run_control, global_loss, shard_rows
from trainables.lm.data import Prepared
from trainables.lm.data import prepare as prepare_data
from trainables.lm.config import LMRun
from trainables.lm.evaluate import score_ids
from trainables.lm.generation import derive_prompts, generation_health
from trainables.lm.model import CausalLM, build_model
from trainables.provenance import provenance

MODEL_FILE = "model.pt"
"""The weights, the run's sections and (key ``resume``) the state a resumed run continues from."""


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
    decay = [p for p in model.parameters() if p.dim() >= 2]
    rest = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": run.train.weight_decay}, {"params": rest, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=run.train.lr, betas=(0.9, 0.95), eps=1e-8)


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
        out_dir: folder for model.pt, tokenizer.json, completions.json, run.json (and the
            intermediate checkpoints' model.pt); None writes nothing.
        report: called after each evaluation with ``step``, ``lr``, ``train/loss`` (mean batch loss
            since the previous evaluation), ``val/{loss,perplexity,bits_per_byte}``,
            ``train_eval/*`` (the same on training text), ``diag/*``, ``perf/*``; the first and last
            add ``data/*`` and ``tok/*``; the last adds ``gen/*``, ``diag/ablation/*``
            (``trainables.lm.ablation``), ``audit/*``, ``audit_reasons``.
            Calls that follow a checkpoint pass its folder (``out_dir``; rank 0 only), else None.
        data: the prepared corpus and tokenizer (``trainables.lm.data.prepare(run)``), to share
            between runs.
        shard: (rank, world size) of data-parallel training: every rank draws the same global batch
            of ``batch_size`` windows and trains on its ``batch_size / world`` rows; ``prepare`` must
            then wrap the model so gradients are averaged (DistributedDataParallel), and the
            reported ``train/loss`` is the global batch's (all-reduced mean of the shards' losses).
            Every rank evaluates, diagnoses, generates and audits the same (unwrapped) weights; only
            rank 0 writes ``out_dir`` and passes it to ``report``. With equal shards and
            ``model.dropout`` 0 this is the one-process run up to floating-point reordering; with
            dropout > 0 each rank draws its own masks for its own rows, so the run is equivalent in
            distribution only, never the same numbers.
        prepare: wraps the built model for the training forward pass only (e.g.
            ``ray.train.torch.prepare_model``); evaluation, diagnostics, generation and audits use
            the unwrapped model.
        checkpoint_interval: write the resumable ``model.pt`` every this many steps (a multiple of
            ``eval_interval``; 0: only after the last step, which always writes it). Needs ``out_dir``.
        resume_from: a folder whose ``model.pt`` (written by this function with the same sections)
            the run continues from: the steps after it are trained, reported and checkpointed, and
            the history holds every evaluation since step 0. Resuming from the final checkpoint
            trains nothing and reports the final result again (with ``out_dir`` on rank 0, after
            copying the folder's outputs there). Every data-parallel rank resumes from the same
            (rank 0's) checkpoint: all ranks hold the same weights, optimizer and generator states.

    Raises:
        ValueError: ``batch_size`` does not split evenly over ``shard``'s world size,
            ``checkpoint_interval`` is negative or not a multiple of ``eval_interval`` or is set
            without ``out_dir``, or ``resume_from``'s checkpoint was written with other sections
            (the message names the differences; all before any work), or on other data (checksums).
        FileNotFoundError: ``resume_from`` has no ``model.pt`` (before any work).
        ConfigError, FileNotFoundError: from ``trainables.lm.data.prepare``.
    """
    cfg = run.train
    rank = shard[0]
    check_run_control(checkpoint_interval, cfg.eval_interval, out_dir, cfg.batch_size, shard[1])
    saved = _load_resumable(Path(resume_from) / MODEL_FILE, run) if resume_from is not None else None
    torch.set_num_threads(cfg.threads)
    started = time.perf_counter() - (saved["resume"]["elapsed_seconds"] if saved else 0.0)
    data = data or prepare_data(run)
    model = build_model(run.model, data.tokenizer.get_vocab_size(), cfg.seed, cfg.device)
    forward = prepare(model) if prepare is not None else model
    optimizer = _optimizer(model, run)
    generator = torch.Generator().manual_seed(cfg.seed + 1)
    constants = {**data.record(model), "data/split_overlap": data.overlap}
    out = Path(out_dir) if out_dir is not None else None
    result, diag_seconds, next_step = LMResult(), 0.0, 0
    if saved is not None:  # in place, under any wrapper; the global RNG last, just before the first step
        next_step, diag_seconds = _restore(saved, model, optimizer, generator, data, result, run)
        _set_rng_state(saved["resume"], cfg.device)
    loss_sum, loss_count, tick = 0.0, 0, time.perf_counter()
    for step in range(next_step, cfg.train_steps):
        loss_sum += _train_step(forward, model, optimizer, data, run, generator, step, shard)
        loss_count += 1
        final = step == cfg.train_steps - 1
        if step % cfg.eval_interval and not final:
            continue
        now = time.perf_counter()
        metrics: dict[str, Any] = {"step": step, "lr": cfg.lr_at(step), "train/loss": loss_sum / loss_count,
                                   "perf/steps_per_second": loss_count / max(now - tick, 1e-9),
                                   **_evaluate(model, data, run)}
        if cfg.diagnostics:
            diag_start = time.perf_counter()
            metrics.update(_diagnose(model, data, run))
            diag_seconds += time.perf_counter() - diag_start
        metrics["perf/diagnostics_seconds"] = diag_seconds
        metrics["perf/diagnostics_share"] = diag_seconds / max(time.perf_counter() - started, 1e-9)
        if step == 0 or final:
            metrics.update(constants)
        if final:
            metrics.update(_finish(model, data, run, result, metrics))
        result.history.append(metrics)
        checkpointed = out is not None and (final or (checkpoint_interval and step % checkpoint_interval == 0))
        writes = checkpointed and rank == 0
        if writes:
            resume = _resume_state(optimizer, generator, result, diag_seconds, time.perf_counter() - started,
                                   cfg.device, final)
            if final:
                _save(out, model, data, run, result, step, resume)
            else:
                _save_model(out, model, data, run, result, step, resume)
        if report is not None:
            report(metrics, out if writes else None)
        loss_sum, loss_count, tick = 0.0, 0, time.perf_counter()
    if saved is not None and next_step == cfg.train_steps:  # resumed from the final checkpoint
        writes = out is not None and rank == 0
        if writes and out.resolve() != Path(resume_from).resolve():  # the outputs, where this run writes them
            out.mkdir(parents=True, exist_ok=True)
            for name in (MODEL_FILE, "tokenizer.json", "completions.json", "run.json"):
                shutil.copyfile(Path(resume_from) / name, out / name)
        if report is not None:
            report(result.history[-1], out if writes else None)
    return result


def _resume_state(optimizer: torch.optim.Optimizer, generator: torch.Generator, result: LMResult,
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


def _load_resumable(path: Path, run: LMRun) -> dict[str, Any]:
    """The checkpoint at ``path``, checked against ``run`` (before any data is prepared).

    Raises:
        FileNotFoundError: no checkpoint at ``path``.
        ValueError: it was written with other sections, or holds no resume state.
    """
    if not path.is_file():
        raise FileNotFoundError(f"resume_from: no checkpoint at {path}")
    saved = torch.load(path, map_location="cpu", weights_only=True)
    now, before = run.to_sections(), saved.get("run") or {}
    diff = {f"{section}.{name}": (before.get(section, {}).get(name), value)
            for section, fields in now.items() for name, value in fields.items()
            if before.get(section, {}).get(name) != value}
    if diff:
        raise ValueError(f"resume_from: {path} was written with other configs (saved, now): {diff}")
    if "resume" not in saved:
        raise ValueError(f"resume_from: {path} holds no resume state (not written by train())")
    return saved


def _restore(saved: dict[str, Any], model: CausalLM, optimizer: torch.optim.Optimizer, generator: torch.Generator,
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


def _set_rng_state(resume: dict[str, Any], device: str) -> None:
    """Torch's global RNG (dropout masks) as it was at the checkpoint (a final one keeps none)."""
    if "rng_state" in resume:
        torch.set_rng_state(resume["rng_state"])
    if "cuda_rng_state" in resume:
        torch.cuda.set_rng_state(resume["cuda_rng_state"], device)


def _train_step(forward: Callable[[torch.Tensor], torch.Tensor], model: CausalLM, optimizer: torch.optim.Optimizer,
                data: Prepared, run: LMRun, generator: torch.Generator, step: int,
                shard: tuple[int, int] = (0, 1)) -> float:
    """One optimizer step through ``forward`` (the model, or its DDP wrapper); returns the global
    batch's loss. With ``shard`` = (rank, world), this rank trains on its slice of the global batch."""
    x, y = shard_rows(*_batch(data.train_ids, run, generator), shard)
    for group in optimizer.param_groups:
        group["lr"] = run.train.lr_at(step)
    optimizer.zero_grad(set_to_none=True)
    logits = forward(x)
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
    loss.backward()
    if run.train.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), run.train.grad_clip)
    optimizer.step()
    return global_loss(loss, shard[1])  # every row scores context_length tokens


def _finish(model: CausalLM, data: Prepared, run: LMRun, result: LMResult, last: dict[str, Any]) -> dict[str, Any]:
    """Generation health, ablations, jump step and audits after the last evaluation ``last`` (fills ``result``)."""
    gen = run.generation
    prompts = list(gen.prompts) or derive_prompts(data.split.val, gen.num_prompts, gen.prompt_chars)
    rows, gen_metrics = generation_health(model, data.tokenizer, prompts, gen, run.model.context_length,
                                          run.train.seed, run.train.device)
    ablations, ablated_rows = ablation.ablation_audit(model, data, run, last["val/bits_per_byte"], prompts)
    result.completions = ablation.labelled(rows, "none") + ablated_rows
    history = result.history + [last]
    steps = [h["step"] for h in history]
    val = [h["val/bits_per_byte"] for h in history]
    train_bpb = [h["train_eval/bits_per_byte"] for h in history]
    measured = {"causal_leak": audits.causal_leak(model, data.tokenizer.get_vocab_size(), run.model.context_length,
                                                  run.train.seed),
                "split_overlap": data.overlap,
                "val_better": float(audits.val_always_better(train_bpb, val, run.audit.val_better_margin)),
                "val_perplexity": last["val/perplexity"], "val_bits_per_byte": last["val/bits_per_byte"],
                "unigram_bits_per_byte": data.unigram_bits_per_byte,
                "collapse_rate_sampled": gen_metrics["gen/collapse_rate_sampled"], **ablations,
                **{k: v for k, v in last.items() if k.startswith("diag/gate/")}}
    result.flags = audits.audit_flags(measured, run.audit)
    jump = diagnostics.jump_step(steps, val, higher_is_better=False)
    return {**gen_metrics, **ablations, "diag/jump_step": math.nan if jump is None else float(jump),
            "val/unigram_bits_per_byte": data.unigram_bits_per_byte,
            "val/best_bits_per_byte": min(val), "audit/causal_leak_max_change": measured["causal_leak"],
            **{f"audit/{name}": float(name in result.flags) for name in audits.FLAGS},
            "audit/flags": float(len(result.flags)), "audit_reasons": "; ".join(
                f"{k}: {v}" for k, v in result.flags.items())}


def _save_model(out: Path, model: CausalLM, data: Prepared, run: LMRun, result: LMResult, step: int,
                resume: dict[str, Any]) -> dict[str, Any]:
    """model.pt: state, sections, vocab size, provenance, data record, audit flags, 0-based ``step``
    and the ``resume`` state; returns the metadata (all but state, step and resume)."""
    out.mkdir(parents=True, exist_ok=True)
    meta = {"run": run.to_sections(), "vocab_size": data.tokenizer.get_vocab_size(),
            "provenance": provenance(run.train.device, run.train.threads),
            "data": {k: v for k, v in data.split.record().items()}, "flags": result.flags}
    torch.save({"model_state": model.state_dict(), **meta, "step": step, "resume": resume}, out / MODEL_FILE)
    return meta


def _save(out: Path, model: CausalLM, data: Prepared, run: LMRun, result: LMResult, step: int,
          resume: dict[str, Any]) -> None:
    """model.pt (see ``_save_model``), tokenizer.json, completions.json, run.json."""
    meta = _save_model(out, model, data, run, result, step, resume)
    shutil.copyfile(data.tokenizer_path, out / "tokenizer.json")
    (out / "completions.json").write_text(json.dumps(result.completions, indent=1, ensure_ascii=False))
    (out / "run.json").write_text(json.dumps({**meta, "ablations": result.ablations}, indent=1, default=str))
