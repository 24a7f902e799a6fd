"""Seed-batched training: K seeds of one addition configuration trained as one stacked model in one
process (no Ray, no MLflow), each seed reported, checkpointed and judged like a single run.

Seed i of ``train_stacked(model_config, train_config, seeds)`` is the single run
``train(model_config, replace(train_config, seed=seeds[i]))`` with the counter stream (mode
'fast'): the same initial weights (``build_model`` under its seed), the same batch at every step
(``counter_stream``), its own holdout, and the same recipe, so their loss traces agree up to
float32 rounding (``tests/test_stacked.py``). The step itself is ``stacked_engine``; the CUDA path
captures it as one graph.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import torch

from trainables.addition.config import ModelConfig, TrainConfig
from trainables.addition.stacked_checkpoint import SeedCheckpoints, SeedState, load_stacked, save_stacked, seed_folder
from trainables.addition.stacked_engine import StackedEngine
from trainables.addition.train import TrainResult
from trainables.loop import check_run_control, resumed_at_end

SeedReporter = Callable[[int, dict[str, float], Optional[Path]], None]
"""``report(seed_index, metrics, checkpoint_folder)``: ``train``'s Reporter with the seed's index
in front, called for each seed in index order at every evaluation."""

Entry = tuple[int, dict[str, float], Optional[Path]]
EvaluationReporter = Callable[[int, list[Entry], Optional[Path]], None]
"""``report_evaluation(step, entries, run_folder)``: once per evaluation, after the per-seed calls,
with the ``(seed_index, metrics, seed_folder)`` of every seed reported at it and the run's folder
when ``stacked_last.pt`` was written at it (else None): what one Tune report with one checkpoint
per evaluation needs."""

DIVERGED_KEY = "train/diverged_step"
"""Metric present in a seed's last report when its training diverged (value: the step)."""


@dataclass
class SeedRun(TrainResult):
    """One seed's outcome: ``train``'s TrainResult, plus its seed and divergence."""

    seed: int = 0
    diverged_step: Optional[int] = None
    """Step whose loss or gradient norm was not finite (the seed was frozen there), or None."""


def train_stacked(model_config: ModelConfig, train_config: TrainConfig, seeds: Sequence[int],
                  out_dir: str | Path | None = None, report: SeedReporter | None = None,
                  max_steps: int | None = None, checkpoint_interval: int = 0,
                  resume_from: str | Path | None = None, step_mode: str = "auto",
                  report_evaluation: EvaluationReporter | None = None) -> list[SeedRun]:
    """Train one model per seed, stacked, evaluating each on its own validation set as it goes.

    Args:
        model_config, train_config: the architecture; the recipe, thread count and device (needs
            ``stream='counter'``, hence mode 'fast', and ``compile=False``; ``seed`` replaced by each seed).
        seeds: K distinct seeds >= 0; seed i is reported as index i.
        out_dir: the run's folder: ``stacked_last.pt`` (resumable) and ``seed_<seed>/best.pt`` and
            ``last.pt`` per seed, in the single-model format of ``train``'s (readable by
            ``load_checkpoint``; ``train(..., resume_from=seed folder)`` continues that seed alone).
        report: called at every evaluation for every seed still running, with ``train``'s metrics
            (``step``, ``train/loss``, ``lr``, ``val/exact_match``, ``val/token_accuracy``,
            ``val/best_exact_match``, ``perf/steps_per_second`` (stacked steps per second);
            ``test/exact_match`` in the last call) and the seed's folder after its checkpoint was
            written, else None. A seed that diverges gets one more report, at the evaluation that
            follows, with ``train/diverged_step`` and its folder (if any), and none after.
        max_steps, checkpoint_interval, resume_from: as in ``train`` (``resume_from``: a folder with
            ``stacked_last.pt`` written by this function for the same configs and seeds).
        step_mode: ``StackedEngine``'s: 'auto' captures the step as one CUDA graph on a CUDA device
            and runs it eagerly elsewhere; 'eager', 'sync_free', 'graph' force one.
        report_evaluation: see ``EvaluationReporter``; called after ``report``'s calls of an evaluation.

    Returns:
        One SeedRun per seed, in the order of ``seeds``.

    Raises:
        ValueError: bad seeds, stream, compile or step_mode; bad ``checkpoint_interval``; ``resume_from`` was
            written for other configs or seeds.
        FileNotFoundError: ``resume_from`` has no ``stacked_last.pt``.
    """
    cfg, seeds = train_config, _checked_seeds(train_config, seeds)
    check_run_control(checkpoint_interval, cfg.eval_interval, out_dir, cfg.batch_size, 1)
    torch.set_num_threads(cfg.threads)
    engine = StackedEngine(model_config, cfg, seeds, step_mode)
    states = [SeedState() for _ in seeds]
    if resume_from is not None:
        engine_state, states = load_stacked(Path(resume_from), model_config, cfg, seeds)
        engine.load_state_dict(engine_state)
    out = Path(out_dir) if out_dir is not None else None
    writer = SeedCheckpoints(model_config, [dataclasses.replace(cfg, seed=s) for s in seeds], out) if out else None
    last_step = min(cfg.train_steps, max_steps or cfg.train_steps) - 1
    resumed_at, tick = engine.next_step, time.perf_counter()
    while engine.next_step <= last_step:
        step = min(last_step, -(-engine.next_step // cfg.eval_interval) * cfg.eval_interval)
        entries, tick = _train_interval(engine, states, writer, step, last_step, checkpoint_interval, tick)
        saved = out is not None and (step == last_step or any(folder for _, _, folder in entries))
        if saved:
            save_stacked(out, model_config, cfg, seeds, engine.state_dict(), states)
        _publish(report, report_evaluation, step, entries, out if saved else None)
    if resumed_at_end(resume_from, resumed_at, engine.next_step):
        entries = [(i, state.history[-1], seed_folder(out, seeds[i]) if out else None) for i, state in enumerate(states)]
        _publish(report, report_evaluation, max(e[1]["step"] for e in entries), entries, out)
    return [_seed_run(seed, state, seed_folder(out, seed) if out else None) for seed, state in zip(seeds, states)]


def _train_interval(engine: StackedEngine, states: list[SeedState], writer: SeedCheckpoints | None, step: int,
                    last_step: int, checkpoint_interval: int, tick: float) -> tuple[list[Entry], float]:
    """Train up to ``step`` (an evaluation), record losses, evaluate and checkpoint every running seed;
    returns the entries to report and the time the interval ended."""
    losses = engine.run(step + 1)
    _record_losses(states, losses, step + 1 - losses.shape[0], engine.diverged_step.cpu().tolist())
    now = time.perf_counter()
    folders = _evaluate(engine, states, writer, step, step == last_step, losses.shape[0] / max(now - tick, 1e-9),
                        bool(checkpoint_interval) and step % checkpoint_interval == 0)
    entries = [(i, states[i].history[-1], folder) for i, folder in enumerate(folders) if folder is not False]
    for i, _, _ in entries:
        states[i].finished = step == last_step or states[i].diverged_step is not None
    return entries, now


def _publish(report: SeedReporter | None, report_evaluation: EvaluationReporter | None, step: int,
             entries: list[Entry], run_folder: Path | None) -> None:
    for entry in entries:
        if report is not None:
            report(*entry)
    if report_evaluation is not None:
        report_evaluation(step, entries, run_folder)


def _checked_seeds(cfg: TrainConfig, seeds: Sequence[int]) -> tuple[int, ...]:
    if cfg.stream != "counter":
        raise ValueError(f"train_stacked needs train_config.stream='counter' (the one stream that is the same "
                         f"for a seed alone or stacked), got stream={cfg.stream!r}")
    if cfg.compile:
        raise ValueError("train_stacked does not support compile=True (its CUDA path captures a CUDA graph)")
    seeds = tuple(seeds)
    if not seeds or any(not isinstance(s, int) or s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct integers >= 0, at least one; got {list(seeds)!r}")
    return seeds


def _record_losses(states: list[SeedState], losses: torch.Tensor, first_step: int, diverged: list[int]) -> None:
    """Append each running seed's losses of steps ``first_step ...``, up to its diverging step."""
    for i, state in enumerate(states):
        if state.finished:
            continue
        column = losses[:, i].tolist()
        if diverged[i] >= 0:
            state.diverged_step = diverged[i]
            column = column[:max(0, diverged[i] - first_step + 1)]
        state.trace.extend(column)


def _evaluate(engine: StackedEngine, states: list[SeedState], writer: SeedCheckpoints | None, step: int,
              final: bool, rate: float, interval_hit: bool) -> list[Path | None | bool]:
    """Score every running seed, keep its best, write its checkpoints; returns per seed its report's
    folder (None: reported without checkpoint; False: not reported, it finished earlier)."""
    cfg = engine.cfg
    scores = engine.scores(engine.val_pairs)
    flat = engine.flat.detach().cpu()
    running = [not state.finished for state in states]
    for i, state in enumerate(states):
        if running[i] and scores[i].exact_match > state.best_em:
            state.best_em, state.best_step, state.best_row = scores[i].exact_match, step, flat[i].clone()
            if writer is not None:
                writer.save_best(i, flat[i], step, state.best_em)
    tests = _test_scores(engine, states, flat) if final else None
    adam = engine.optimizer.state[engine.flat]
    folders: list[Path | None | bool] = []
    for i, state in enumerate(states):
        if not running[i]:
            folders.append(False)
            continue
        window = state.trace[len(state.trace) - _window_length(state, step, cfg.eval_interval):]
        metrics = {"step": step, "train/loss": sum(window) / max(len(window), 1), "lr": cfg.lr_at(step),
                   "val/exact_match": scores[i].exact_match, "val/token_accuracy": scores[i].token_accuracy,
                   "perf/steps_per_second": rate, "val/best_exact_match": state.best_em}
        if state.diverged_step is not None:
            metrics[DIVERGED_KEY] = state.diverged_step
        elif tests is not None:
            metrics["test/exact_match"] = tests[i]
        state.history.append(metrics)
        write = writer is not None and (final or interval_hit or state.diverged_step is not None)
        if write:
            seed_adam = {"step": adam["step"], "exp_avg": adam["exp_avg"][i].cpu(),
                         "exp_avg_sq": adam["exp_avg_sq"][i].cpu()}
            writer.save_last(i, flat[i], seed_adam, state, scores[i].exact_match,
                             {"seeds": list(engine.seeds), "index": i, "diverged_step": state.diverged_step})
        folders.append(seed_folder(writer.out, engine.seeds[i]) if write else None)
    return folders


def _window_length(state: SeedState, step: int, interval: int) -> int:
    """Losses of this seed since its previous evaluation (the previous multiple of ``interval``)."""
    previous = (step - 1) // interval * interval if step > 0 else -1
    last = step if state.diverged_step is None else state.diverged_step
    return max(0, last - previous)


def _test_scores(engine: StackedEngine, states: list[SeedState], flat: torch.Tensor) -> list[float]:
    """Each seed's best-by-validation weights on its own test pairs (nan without test pairs)."""
    if engine.cfg.test_size == 0:
        return [math.nan] * len(states)
    best = torch.stack([flat[i] if s.best_row is None else s.best_row for i, s in enumerate(states)])
    return [score.exact_match for score in engine.scores(engine.test_pairs, best.to(engine.device))]


def _seed_run(seed: int, state: SeedState, folder: Path | None) -> SeedRun:
    test = state.history[-1].get("test/exact_match", math.nan) if state.history else math.nan
    return SeedRun(state.best_em, state.best_step, test, state.history, state.trace, folder, seed=seed,
                   diverged_step=state.diverged_step)
