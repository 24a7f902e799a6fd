"""Training loop of the addition trainable: a plain function, no Ray, no MLflow.

The recipe is the reference's (``shared/reference/addition.md`` section 4): AdamW on one parameter
group, linear warmup then cosine, global-norm clipping, 512 fresh examples a step under a digit
curriculum, greedy validation exact match every ``eval_interval`` steps and after the last one,
the best-by-validation checkpoint kept. Evaluations follow 0-based steps that are multiples of
``eval_interval`` and the last step. Step order: sample batch; set lr; zero grads; forward;
backward; clip; optimizer step (each mode's step: ``steps.py``). Step losses stay on the device
and are read once per evaluation.

Runs checkpoint every ``checkpoint_interval`` steps (at evaluations) into ``last.pt``: weights,
AdamW state, the data generator's state, the loss of every step, the metric history and the best
weights so far. ``train(..., resume_from=folder)`` continues from it and ends bit-identical (on
the same device and thread count) to a run that was never interrupted.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import torch

from trainables.addition.checkpoint import save_checkpoint
from trainables.addition.config import ModelConfig, TrainConfig, to_flat_dict
from trainables.addition.counter_stream import training_stream
from trainables.addition.data import TrainingStream, build_holdout
from trainables.addition.evaluate import score_pairs
from trainables.addition.model import build_model
from trainables.addition.steps import StepRunner, make_optimizer
from trainables.loop import Reporter, check_run_control
from trainables.provenance import provenance


BEST_CHECKPOINT = "best.pt"
LAST_CHECKPOINT = "last.pt"


@dataclass
class TrainResult:
    """Summary of one training run."""

    best_val_exact_match: float
    """Highest validation exact match seen at an evaluation."""
    best_step: int
    """0-based step of that evaluation."""
    test_exact_match: float
    """Exact match of the best checkpoint on the run's own 10,000 test pairs (nan if test_size is 0)."""
    history: list[dict[str, float]] = field(default_factory=list)
    """Every reported metrics dict, in order."""
    loss_trace: list[float] = field(default_factory=list)
    """Training loss of every step, in order (what bit-exactness checks compare)."""
    checkpoint_dir: Optional[Path] = None
    """Folder holding best.pt and last.pt, when an output folder was given."""


def train(model_config: ModelConfig, train_config: TrainConfig, out_dir: str | Path | None = None,
          report: Reporter | None = None, log_every: int = 0, max_steps: int | None = None,
          checkpoint_interval: int = 0, resume_from: str | Path | None = None, shard: tuple[int, int] = (0, 1),
          prepare: Callable[[torch.nn.Module], torch.nn.Module] | None = None,
          stop: Callable[[list[dict[str, float]]], bool] | None = None) -> TrainResult:
    """Train one addition model and evaluate it on validation as it goes.

    Args:
        model_config: the architecture.
        train_config: the recipe, seed, thread count and device.
        out_dir: where ``best.pt`` and ``last.pt`` go (each carries both configs; ``last.pt`` also the
            optimizer and data-generator state and the float32 loss of every step); None keeps none.
        report: called after every evaluation with metrics ``step`` (0-based index of the step just
            taken: the reference's numbering, so the evaluation at step 1000 follows 1001 updates),
            ``train/loss`` (mean batch loss since the previous evaluation), ``lr``,
            ``val/exact_match``, ``val/token_accuracy``, ``val/best_exact_match``,
            ``perf/steps_per_second``, the first call after a compile ``perf/compile_seconds``; the
            last call adds ``test/exact_match``. Calls that follow a
            checkpoint pass its folder (``out_dir``), else None.
        log_every: print the batch loss every this many steps (0: never).
        max_steps: stop after this many steps of the ``train_steps`` schedule (the schedule is not
            shortened; the stop counts as the last step for evaluation and checkpoints).
        checkpoint_interval: write the resumable ``last.pt`` every this many steps (a multiple of
            ``eval_interval``; 0: only after the last step). Needs ``out_dir``.
        resume_from: a folder whose ``last.pt`` (written by this function with the same configs)
            the run continues from; the steps after it are trained, reported and checkpointed.
        shard: (rank, world size) of data-parallel training: every rank draws the same global batch
            and trains on its ``batch_size / world`` rows; ``prepare`` must then wrap the model so
            gradients are averaged (DistributedDataParallel), and the reported loss is the global
            batch's. With equal shards this is the one-process run up to floating-point reordering.
        prepare: wraps the built model for training (e.g. ``ray.train.torch.prepare_model``); applied
            before ``torch.compile``. A wrapper (DistributedDataParallel) trains with the eager step.
        stop: called after every evaluation with the metric history so far (that evaluation last,
            before its test score); True makes that evaluation the run's last: the test score, the
            final checkpoints and the last report follow as at the schedule's last step, and the
            schedule is not shortened (e.g. ``stop_when_solved``). A resume of a run that ended so
            trains nothing more.

    Returns:
        TrainResult with the best validation exact match, its step and the full metric history
        (including what was trained before a resume).

    Raises:
        ValueError: ``checkpoint_interval`` is negative or not a multiple of ``eval_interval``, or
            is set without ``out_dir``; ``resume_from``'s checkpoint was written with other configs;
            ``batch_size`` does not split evenly over ``shard``'s world size.
        FileNotFoundError: ``resume_from`` has no ``last.pt``.
    """
    cfg = train_config
    check_run_control(checkpoint_interval, cfg.eval_interval, out_dir, cfg.batch_size, shard[1])
    torch.set_num_threads(cfg.threads)
    val_pairs, test_pairs = build_holdout(cfg.seed, cfg.val_size, cfg.test_size)
    holdout = set(map(tuple, torch.cat([val_pairs, test_pairs]).tolist()))
    model = build_model(model_config, cfg.seed, cfg.device)
    optimizer = make_optimizer(model, cfg)
    stream = training_stream(cfg, holdout)
    out = Path(out_dir) if out_dir is not None else None
    meta = {"provenance": provenance(cfg.device, cfg.threads), "flat_config": to_flat_dict(model_config, cfg)}
    run = _RunState()
    if resume_from is not None:
        run = _restore(Path(resume_from) / LAST_CHECKPOINT, model, optimizer, stream, model_config, cfg)
    runner = StepRunner(model, optimizer, stream, cfg, shard, prepare)
    resumed_at = run.next_step

    pending: list[torch.Tensor] = []  # this interval's losses, read from the device at its evaluation
    tick = time.perf_counter()
    last_step = min(cfg.train_steps, max_steps or cfg.train_steps) - 1
    if stop is not None and run.history and "test/exact_match" in run.history[-1]:  # resumed from a run that ended
        last_step = run.next_step - 1
    for step in range(run.next_step, last_step + 1):
        pending.append(runner(step))
        if log_every and step % log_every == 0:
            print(f"step {step} loss {float(pending[-1]):.6f} lr {cfg.lr_at(step):.6g}", flush=True)
        if step % cfg.eval_interval and step != last_step:
            continue
        losses = torch.stack(pending).tolist()
        run.trace.extend(losses)
        score = score_pairs(model, val_pairs, cfg.eval_batch_size)
        now = time.perf_counter()
        metrics = {
            "step": step,
            "train/loss": sum(losses) / len(losses),
            "lr": cfg.lr_at(step),
            "val/exact_match": score.exact_match,
            "val/token_accuracy": score.token_accuracy,
            "perf/steps_per_second": len(losses) / max(now - tick, 1e-9),
        }
        if runner.compile_seconds is not None and step + 1 - len(losses) == resumed_at:  # this call's first report
            metrics["perf/compile_seconds"] = runner.compile_seconds
        pending.clear()
        tick = now
        meta["train_step"] = runner.kind
        if score.exact_match > run.best_em:
            run.best_em, run.best_step, run.best_state = score.exact_match, step, copy.deepcopy(model.state_dict())
            if out is not None:
                save_checkpoint(out / BEST_CHECKPOINT, model, cfg, step=step, val_exact=run.best_em, **meta)
        metrics["val/best_exact_match"] = run.best_em
        final = step == last_step or (stop is not None and stop([*run.history, metrics]))
        if final:
            metrics["test/exact_match"] = _test_exact_match(model, run.best_state, test_pairs, cfg)
        run.history.append(metrics)
        run.next_step = step + 1
        checkpointed = out is not None and (final or (checkpoint_interval and step % checkpoint_interval == 0))
        if checkpointed:
            _save_resumable(out, model, optimizer, stream, cfg, run, score.exact_match, meta)
        if report is not None:
            report(metrics, out if checkpointed else None)
        if final:
            break
    if resume_from is not None and run.next_step == resumed_at and run.history and report is not None:
        report(run.history[-1], out)  # resumed from the final checkpoint: its result goes out again
    return TrainResult(run.best_em, run.best_step, run.history[-1].get("test/exact_match", math.nan), run.history,
                       run.trace, out)


def stop_when_solved(threshold: float, evaluations: int) -> Callable[[list[dict[str, float]]], bool]:
    """A ``stop`` rule for ``train``: end the run once validation exact match has been at or above
    ``threshold`` at the last ``evaluations`` evaluations in a row. The best checkpoint is then at or
    above the threshold, so a success judged by best validation exact match cannot change any more;
    what the rest of the schedule could still change is the best value above the threshold and the
    test score of the best checkpoint.

    Raises:
        ValueError: ``evaluations`` < 1 or ``threshold`` outside (0, 1].
    """
    if not isinstance(evaluations, int) or evaluations < 1:
        raise ValueError(f"evaluations must be an integer >= 1, got {evaluations!r}")
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold must be in (0, 1], got {threshold!r}")

    def solved(history: list[dict[str, float]]) -> bool:
        recent = history[-evaluations:]
        return len(recent) == evaluations and all(m["val/exact_match"] >= threshold for m in recent)
    return solved


@dataclass
class _RunState:
    """What a resumed run needs beyond weights, optimizer and data generator."""

    next_step: int = 0
    trace: list[float] = field(default_factory=list)
    history: list[dict[str, float]] = field(default_factory=list)
    best_em: float = -1.0
    best_step: int = 0
    best_state: Optional[dict[str, torch.Tensor]] = None


def _save_resumable(out: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, stream: TrainingStream,
                    cfg: TrainConfig, run: _RunState, val_exact: float, meta: dict[str, Any]) -> None:
    """``last.pt``: the reference checkpoint format plus everything ``_restore`` needs."""
    save_checkpoint(out / LAST_CHECKPOINT, model, cfg, step=run.next_step - 1, val_exact=val_exact,
                    optimizer_state=optimizer.state_dict(), data_generator_state=stream.generator.get_state(),
                    loss_trace=torch.tensor(run.trace, dtype=torch.float32),
                    resume={"loss_trace_float64": torch.tensor(run.trace, dtype=torch.float64),
                            "history": run.history, "best_exact_match": run.best_em, "best_step": run.best_step,
                            "best_state": run.best_state},
                    **meta)


def _restore(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, stream: TrainingStream,
             model_config: ModelConfig, cfg: TrainConfig) -> _RunState:
    """Load ``last.pt`` into the freshly built model, optimizer and stream; returns the run state.

    Raises:
        FileNotFoundError: no checkpoint at ``path``.
        ValueError: it was written with other configs, or without resume state.
    """
    if not path.is_file():
        raise FileNotFoundError(f"resume_from: no checkpoint at {path}")
    payload = torch.load(path, map_location="cpu", weights_only=True)
    saved = (payload.get("model_config"), payload.get("train_config"))
    if saved != (dataclasses.asdict(model_config), dataclasses.asdict(cfg)):
        diff = {k: (v, dataclasses.asdict(cfg).get(k)) for k, v in (saved[1] or {}).items()
                if v != dataclasses.asdict(cfg).get(k)}
        diff.update({f"model.{k}": (v, dataclasses.asdict(model_config).get(k)) for k, v in (saved[0] or {}).items()
                     if v != dataclasses.asdict(model_config).get(k)})
        raise ValueError(f"resume_from: {path} was written with other configs (saved, now): {diff}")
    if "resume" not in payload:
        raise ValueError(f"resume_from: {path} holds no resume state (not written by train())")
    device = next(model.parameters()).device
    model.load_state_dict({k: v.to(device) for k, v in payload["model_state"].items()})
    optimizer.load_state_dict(payload["optimizer_state"])
    stream.generator.set_state(payload["data_generator_state"])
    resume = payload["resume"]
    best_state = resume["best_state"]
    return _RunState(next_step=int(payload["step"]) + 1, trace=resume["loss_trace_float64"].tolist(),
                     history=list(resume["history"]), best_em=float(resume["best_exact_match"]),
                     best_step=int(resume["best_step"]),
                     best_state=None if best_state is None else {k: v.to(device) for k, v in best_state.items()})


def _test_exact_match(model: torch.nn.Module, best_state: dict[str, Any] | None, test_pairs: torch.Tensor,
                      cfg: TrainConfig) -> float:
    """Exact match of the best-by-validation weights on the run's test pairs (model left at last weights)."""
    if best_state is None or test_pairs.shape[0] == 0:
        return math.nan
    last_state = copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)
    score = score_pairs(model, test_pairs, cfg.eval_batch_size)
    model.load_state_dict(last_state)
    return score.exact_match
