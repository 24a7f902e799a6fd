"""Training loop of the addition trainable: a plain function, no Ray, no MLflow.

The recipe is the reference's (``shared/reference/addition.md`` section 4): AdamW on one parameter
group, linear warmup then cosine, global-norm clipping, 512 fresh examples a step under a digit
curriculum, greedy validation exact match every ``eval_interval`` steps and after the last one,
the best-by-validation checkpoint kept. Evaluations follow 0-based steps that are multiples of
``eval_interval`` and the last step. Step order: sample batch; set lr; zero grads; forward;
backward; clip; optimizer step.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import torch
import torch.nn.functional as F

from trainables.addition.checkpoint import save_checkpoint
from trainables.addition.config import ModelConfig, TrainConfig, to_flat_dict
from trainables.addition.data import IGNORE_INDEX, PROMPT_LEN, TrainingStream, build_holdout, encode, inputs_and_targets
from trainables.addition.evaluate import score_pairs
from trainables.addition.model import build_model
from trainables.provenance import provenance

Reporter = Callable[[dict[str, float], Optional[Path]], None]
"""Called at every evaluation with flat metrics and, on the last one, the checkpoint folder."""

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
          report: Reporter | None = None, log_every: int = 0, max_steps: int | None = None) -> TrainResult:
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
            ``perf/steps_per_second``; the last call adds ``test/exact_match`` and the checkpoint folder.
        log_every: print the batch loss every this many steps (0: never).
        max_steps: stop after this many steps of the ``train_steps`` schedule (the schedule is not
            shortened; the stop counts as the last step for evaluation and checkpoints).

    Returns:
        TrainResult with the best validation exact match, its step and the full metric history.
    """
    cfg = train_config
    torch.set_num_threads(cfg.threads)
    val_pairs, test_pairs = build_holdout(cfg.seed, cfg.val_size, cfg.test_size)
    holdout = set(map(tuple, torch.cat([val_pairs, test_pairs]).tolist()))
    model = build_model(model_config, cfg.seed, cfg.device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.9, 0.999), eps=1e-8,
                                  weight_decay=cfg.weight_decay)
    stream = TrainingStream(cfg.seed, holdout, cfg.mode)
    forward = torch.compile(model) if cfg.compile else model
    out = Path(out_dir) if out_dir is not None else None
    meta = {"provenance": provenance(cfg.device, cfg.threads), "flat_config": to_flat_dict(model_config, cfg)}

    history: list[dict[str, float]] = []
    best_em, best_step, best_state = -1.0, 0, None
    loss_sum, loss_count, tick = 0.0, 0, time.perf_counter()
    last_step = min(cfg.train_steps, max_steps or cfg.train_steps) - 1
    trace: list[float] = []
    for step in range(last_step + 1):
        loss = train_step(forward, optimizer, stream, cfg, step)
        trace.append(loss)
        loss_sum += loss
        loss_count += 1
        if log_every and step % log_every == 0:
            print(f"step {step} loss {loss:.6f} lr {cfg.lr_at(step):.6g}", flush=True)
        if step % cfg.eval_interval and step != last_step:
            continue
        score = score_pairs(model, val_pairs, cfg.eval_batch_size)
        now = time.perf_counter()
        metrics = {
            "step": step,
            "train/loss": loss_sum / loss_count,
            "lr": cfg.lr_at(step),
            "val/exact_match": score.exact_match,
            "val/token_accuracy": score.token_accuracy,
            "perf/steps_per_second": loss_count / max(now - tick, 1e-9),
        }
        loss_sum, loss_count, tick = 0.0, 0, now
        if score.exact_match > best_em:
            best_em, best_step, best_state = score.exact_match, step, copy.deepcopy(model.state_dict())
            if out is not None:
                save_checkpoint(out / BEST_CHECKPOINT, model, cfg, step=step, val_exact=best_em, **meta)
        metrics["val/best_exact_match"] = best_em
        final = step == last_step
        if final:
            metrics["test/exact_match"] = _test_exact_match(model, best_state, test_pairs, cfg)
            if out is not None:
                save_checkpoint(out / LAST_CHECKPOINT, model, cfg, step=step, val_exact=score.exact_match,
                                optimizer_state=optimizer.state_dict(), data_generator_state=stream.generator.get_state(),
                                loss_trace=torch.tensor(trace, dtype=torch.float32), **meta)
        history.append(metrics)
        if report is not None:
            report(metrics, out if final else None)
    return TrainResult(best_em, best_step, history[-1].get("test/exact_match", math.nan), history, trace, out)


def train_step(forward: Callable[[torch.Tensor], torch.Tensor], optimizer: torch.optim.Optimizer,
                stream: TrainingStream, cfg: TrainConfig, step: int) -> float:
    """One optimizer step in the reference's order; returns the batch's training loss."""
    a, b = stream.sample(cfg.batch_size, *cfg.digits_at(step))
    x, y = inputs_and_targets(encode(a, b))
    x, y = x.to(cfg.device), y.to(cfg.device)
    lr = cfg.lr_at(step)
    for group in optimizer.param_groups:
        group["lr"] = lr
    optimizer.zero_grad(set_to_none=True)
    if cfg.mode == "fast":  # only the 12 scored positions (prompt targets are all ignored)
        logits, y = forward(x, PROMPT_LEN - 1), y[:, PROMPT_LEN - 1:]
    else:
        logits = forward(x)
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), ignore_index=IGNORE_INDEX)
    loss.backward()
    if cfg.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]], cfg.grad_clip)
    optimizer.step()
    return loss.item()


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
