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

Each evaluation reports ``step`` (0-based index of the step just taken: the reference's numbering,
so the evaluation at step 1000 follows 1001 updates), ``train/loss`` (mean batch loss since the
previous evaluation), ``lr``, ``val/exact_match``, ``val/token_accuracy``, ``val/best_exact_match``,
``perf/steps_per_second``, at the first evaluation after a compile ``perf/compile_seconds``, and at
the last ``test/exact_match`` (the best checkpoint on the run's own test pairs).
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

from trainables.addition.checkpoint import BEST_CHECKPOINT, LAST_CHECKPOINT, save_checkpoint, save_resumable
from trainables.addition.config import ModelConfig, TrainConfig, to_flat_dict
from trainables.addition.counter_stream import training_stream
from trainables.addition.data import build_holdout
from trainables.addition.evaluate import score_pairs
from trainables.addition.model import build_model
from trainables.addition.steps import StepRunner, make_optimizer
from trainables.loop import Reporter, check_run_control, load_resumable, resumed_at_end
from trainables.provenance import provenance



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
        model_config, train_config: the architecture; the recipe, seed, thread count and device.
        out_dir: where ``best.pt`` and ``last.pt`` go (each carries both configs; ``last.pt`` also the
            optimizer and data-generator state and the float32 loss of every step); None keeps none.
        report: called after every evaluation with its metrics (module doc) and, when a checkpoint
            was just written, its folder (``out_dir``), else None.
        log_every: print the batch loss every this many steps (0: never).
        max_steps: stop after this many steps of the ``train_steps`` schedule (the schedule is not
            shortened; the stop counts as the last step for evaluation and checkpoints).
        checkpoint_interval: write the resumable ``last.pt`` every this many steps (a multiple of
            ``eval_interval``; 0: only after the last step). Needs ``out_dir``.
        resume_from: a folder whose ``last.pt`` (written by this function with the same configs) the
            run continues from; resuming from the final one trains nothing and reports it again.
        shard: (rank, world size) of data-parallel training: every rank draws the same global batch
            and trains on its ``batch_size / world`` rows; ``prepare`` must then wrap the model so
            gradients are averaged (DistributedDataParallel), and the reported loss is the global
            batch's. With equal shards this is the one-process run up to floating-point reordering.
        prepare: wraps the built model for training (e.g. ``ray.train.torch.prepare_model``); applied
            before ``torch.compile``. A wrapper (DistributedDataParallel) trains with the eager step.
        stop: called after every evaluation with the metric history so far (that evaluation last,
            before its test score); True makes that evaluation the run's last, as the schedule's last
            step would be (e.g. ``stop_when_solved``). A resume of a run that ended so trains no more.

    Returns:
        TrainResult: best validation exact match, its step, the metric history since step 0.

    Raises:
        ValueError: bad ``checkpoint_interval`` (``loop.check_run_control``), ``batch_size`` not split
            evenly over ``shard``'s world size, or ``resume_from``'s checkpoint written with other configs.
        FileNotFoundError: ``resume_from`` has no ``last.pt``.
    """
    cfg = train_config
    check_run_control(checkpoint_interval, cfg.eval_interval, out_dir, cfg.batch_size, shard[1])
    torch.set_num_threads(cfg.threads)
    session = _Session(model_config, cfg, out_dir, resume_from)
    resumed_at = session.run.next_step
    runner = StepRunner(session.model, session.optimizer, session.stream, cfg, shard, prepare)
    run = session.loop(runner, _last_step(cfg, max_steps, stop, session.run), report, log_every,
                       checkpoint_interval, stop)
    if resumed_at_end(resume_from, resumed_at, run.next_step) and run.history and report is not None:
        report(run.history[-1], session.out)
    return TrainResult(run.best_em, run.best_step, run.history[-1].get("test/exact_match", math.nan), run.history,
                       run.trace, session.out)


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


def _last_step(cfg: TrainConfig, max_steps: int | None, stop: Callable[..., bool] | None, run: _RunState) -> int:
    """The 0-based step a run ends at: the schedule's last, or ``max_steps``' last; a resumed run that
    a ``stop`` rule had ended (its last report holds the test score) trains nothing more."""
    if stop is not None and run.history and "test/exact_match" in run.history[-1]:
        return run.next_step - 1
    return min(cfg.train_steps, max_steps or cfg.train_steps) - 1


class _Session:
    """One run's model, optimizer, data, holdout, output folder and run state (restored on resume)."""

    def __init__(self, model_config: ModelConfig, cfg: TrainConfig, out_dir: str | Path | None,
                 resume_from: str | Path | None) -> None:
        self.cfg = cfg
        self.val_pairs, self.test_pairs = build_holdout(cfg.seed, cfg.val_size, cfg.test_size)
        holdout = set(map(tuple, torch.cat([self.val_pairs, self.test_pairs]).tolist()))
        self.model = build_model(model_config, cfg.seed, cfg.device)
        self.optimizer = make_optimizer(self.model, cfg)
        self.stream = training_stream(cfg, holdout)
        self.out = Path(out_dir) if out_dir is not None else None
        self.meta = {"provenance": provenance(cfg.device, cfg.threads),
                     "flat_config": to_flat_dict(model_config, cfg)}
        self.run = _RunState()
        if resume_from is not None:
            self.run = self._restore(Path(resume_from) / LAST_CHECKPOINT, model_config)

    def loop(self, runner: StepRunner, last_step: int, report: Reporter | None, log_every: int,
             checkpoint_interval: int, stop: Callable[[list[dict[str, float]]], bool] | None) -> _RunState:
        """Train steps ``run.next_step .. last_step``, evaluating, checkpointing and reporting."""
        cfg, run, out = self.cfg, self.run, self.out
        resumed_at = run.next_step
        pending: list[torch.Tensor] = []  # this interval's losses, read from the device at its evaluation
        tick = time.perf_counter()
        for step in range(run.next_step, last_step + 1):
            pending.append(runner(step))
            if log_every and step % log_every == 0:
                print(f"step {step} loss {float(pending[-1]):.6f} lr {cfg.lr_at(step):.6g}", flush=True)
            if step % cfg.eval_interval and step != last_step:
                continue
            metrics, val_exact, tick = self._evaluate(step, pending, tick)
            if runner.compile_seconds is not None and step + 1 - len(pending) == resumed_at:  # first report
                metrics["perf/compile_seconds"] = runner.compile_seconds
            pending.clear()
            self.meta["train_step"] = runner.kind
            self._keep_best(step, val_exact)
            metrics["val/best_exact_match"] = run.best_em
            final = step == last_step or (stop is not None and stop([*run.history, metrics]))
            if final:
                metrics["test/exact_match"] = self._test_exact_match()
            run.history.append(metrics)
            run.next_step = step + 1
            checkpointed = out is not None and (final or (checkpoint_interval and step % checkpoint_interval == 0))
            if checkpointed:
                self._save_resumable(val_exact)
            if report is not None:
                report(metrics, out if checkpointed else None)
            if final:
                break
        return run

    def _evaluate(self, step: int, pending: list[torch.Tensor], tick: float) -> tuple[dict[str, float], float, float]:
        """Read the interval's losses into the run's trace and score validation; returns the metrics,
        the validation exact match and the time the scoring ended (the next interval's start)."""
        losses = torch.stack(pending).tolist()
        self.run.trace.extend(losses)
        score = score_pairs(self.model, self.val_pairs, self.cfg.eval_batch_size)
        now = time.perf_counter()
        return {
            "step": step,
            "train/loss": sum(losses) / len(losses),
            "lr": self.cfg.lr_at(step),
            "val/exact_match": score.exact_match,
            "val/token_accuracy": score.token_accuracy,
            "perf/steps_per_second": len(losses) / max(now - tick, 1e-9),
        }, score.exact_match, now

    def _keep_best(self, step: int, val_exact: float) -> None:
        """Keep the weights (and write ``best.pt``) when ``val_exact`` beats the best so far."""
        run = self.run
        if val_exact > run.best_em:
            run.best_em, run.best_step, run.best_state = val_exact, step, copy.deepcopy(self.model.state_dict())
            if self.out is not None:
                save_checkpoint(self.out / BEST_CHECKPOINT, self.model, self.cfg, step=step, val_exact=run.best_em,
                                **self.meta)

    def _save_resumable(self, val_exact: float) -> None:
        """``last.pt`` (``checkpoint.save_resumable``) with everything ``_restore`` needs."""
        run = self.run
        save_resumable(self.out / LAST_CHECKPOINT, self.model, self.cfg, step=run.next_step - 1, val_exact=val_exact,
                       optimizer_state=self.optimizer.state_dict(),
                       data_generator_state=self.stream.generator.get_state(), trace=run.trace, history=run.history,
                       best_exact_match=run.best_em, best_step=run.best_step, best_state=run.best_state, **self.meta)

    def _restore(self, path: Path, model_config: ModelConfig) -> _RunState:
        """Load ``last.pt`` into the freshly built model, optimizer and stream; returns the run state.

        Raises:
            FileNotFoundError: no checkpoint at ``path``.
            ValueError: it was written with other configs, or without resume state.
        """
        now = _flat_configs(dataclasses.asdict(model_config), dataclasses.asdict(self.cfg))
        payload = load_resumable(path, now, lambda saved: _flat_configs(saved.get("model_config"),
                                                                        saved.get("train_config")))
        device = next(self.model.parameters()).device
        self.model.load_state_dict({k: v.to(device) for k, v in payload["model_state"].items()})
        self.optimizer.load_state_dict(payload["optimizer_state"])
        self.stream.generator.set_state(payload["data_generator_state"])
        resume = payload["resume"]
        best_state = resume["best_state"]
        return _RunState(next_step=int(payload["step"]) + 1, trace=resume["loss_trace_float64"].tolist(),
                         history=list(resume["history"]), best_em=float(resume["best_exact_match"]),
                         best_step=int(resume["best_step"]),
                         best_state=None if best_state is None else {k: v.to(device) for k, v in best_state.items()})

    def _test_exact_match(self) -> float:
        """Exact match of the best-by-validation weights on the run's test pairs (model left at last weights)."""
        if self.run.best_state is None or self.test_pairs.shape[0] == 0:
            return math.nan
        last_state = copy.deepcopy(self.model.state_dict())
        self.model.load_state_dict(self.run.best_state)
        score = score_pairs(self.model, self.test_pairs, self.cfg.eval_batch_size)
        self.model.load_state_dict(last_state)
        return score.exact_match


def _flat_configs(model_config: dict[str, Any] | None, train_config: dict[str, Any] | None) -> dict[str, Any]:
    """The resume check's flat view of both configs: train fields by name, model fields as ``model.<name>``."""
    return {**(train_config or {}), **{f"model.{k}": v for k, v in (model_config or {}).items()}}
