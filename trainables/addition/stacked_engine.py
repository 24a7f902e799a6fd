"""The training step of K stacked seeds: counter-stream data, batched forward, per-seed clipping,
one AdamW, per-seed divergence; eagerly on the CPU, as one CUDA graph on a GPU.

Seed i's step is the single-seed ``train_step`` of seed i with the counter stream (mode 'fast') up
to float32 rounding: the same batch bits, the same weights at step 0, the loss the mean
cross-entropy at the 12 scored positions, the gradient of the sum of per-seed losses (so no seed's
gradient depends on another's), clipping by each seed's own global norm, AdamW elementwise. A seed
whose loss or gradient norm is not finite at step t is frozen from then on: step t's update and
every later one are masked for its row, ``diverged_step[i] = t``, and the others go on.
"""

from __future__ import annotations

import torch

from trainables.addition.config import ModelConfig, TrainConfig
from trainables.addition.counter_stream import HoldoutTable, draw_operands, seed_keys
from trainables.addition.data import PROMPT_LEN, build_holdout, encode
from trainables.addition.evaluate import Score
from trainables.addition.stacked_model import Layout, seed_losses, stack_models, stacked_scores
from trainables.optim import adamw, clip_coefficient, set_lr

GRAPH_WARMUP_STEPS = 3
"""Eager steps run (then undone) on a side stream before capture, as torch.cuda.graph requires."""


class StackedEngine:
    """Weights, optimizer and step of K seeds of one configuration.

    ``flat`` (K, N) holds the weights (row i: seed i, ``model.parameters()`` order); ``alive`` (K,)
    and ``diverged_step`` (K,, -1 while alive) the divergence state; ``next_step`` the step the next
    ``run`` starts at. ``val_pairs`` / ``test_pairs`` are each seed's holdout, (K, size, 2).
    """

    def __init__(self, model_config: ModelConfig, train_config: TrainConfig, seeds: tuple[int, ...],
                 step_mode: str = "auto") -> None:
        """``step_mode``: 'eager' (host sets the lr, exact redraws: the tested CPU path), 'sync_free'
        (the step the graph captures, run eagerly: lr read from a device table, one redraw round),
        'graph' (that step captured as one CUDA graph; CUDA only), or 'auto' (graph on CUDA, else
        eager).

        Raises:
            ValueError: an unknown ``step_mode``, or 'graph' off CUDA.
        """
        cfg = self.cfg = train_config
        self.device = torch.device(cfg.device)
        self.step_mode = _resolve(step_mode, self.device)
        self.seeds, self.layout, self.next_step = seeds, Layout.of(model_config), 0
        holdouts = [build_holdout(seed, cfg.val_size, cfg.test_size) for seed in seeds]
        self.val_pairs = torch.stack([val for val, _ in holdouts])
        self.test_pairs = torch.stack([test for _, test in holdouts])
        self.table = HoldoutTable([torch.cat(pair) for pair in holdouts], self.device)
        self.keys = seed_keys(seeds, self.device)
        self.flat = torch.nn.Parameter(stack_models(model_config, seeds).to(self.device))
        self.sync_free = self.step_mode != "eager"
        capturable = self.sync_free and self.device.type == "cuda"
        self.lr = torch.tensor(cfg.lr, device=self.device) if self.sync_free else cfg.lr
        self.optimizer = adamw([self.flat], cfg, lr=self.lr, capturable=capturable,
                               foreach=True if capturable else None)
        steps = range(cfg.train_steps)
        self.lr_table = torch.tensor([cfg.lr_at(s) for s in steps], dtype=torch.float32, device=self.device)
        self.digits = torch.tensor([cfg.digits_at(s) for s in steps], dtype=torch.int64, device=self.device)
        k = len(seeds)
        self.alive = torch.ones(k, dtype=torch.bool, device=self.device)
        self.diverged_step = torch.full((k,), -1, dtype=torch.int64, device=self.device)
        self.unresolved = torch.zeros((), dtype=torch.bool, device=self.device)
        self.trace = torch.zeros(cfg.eval_interval, k, device=self.device)
        self.step_t = torch.zeros(1, dtype=torch.int64, device=self.device)
        self._graph: torch.cuda.CUDAGraph | None = None

    def batch(self, step: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Operands (K, batch_size) of every seed at ``step`` (int64, one element), and the rows
        still held out (sync_free and graph: one redraw round, no host sync; eager: exact, never any)."""
        digits = self.digits.index_select(0, step)
        return draw_operands(self.keys, step, self.cfg.batch_size, digits[:, 0], digits[:, 1], self.table,
                             redraws=1 if self.sync_free else None)

    def _body(self) -> None:
        """One step at ``step_t`` (no host sync unless eager); advances ``step_t``."""
        cfg, step = self.cfg, self.step_t
        a, b, held = self.batch(step)
        full = encode(a.reshape(-1), b.reshape(-1)).view(len(self.seeds), cfg.batch_size, -1)
        losses = seed_losses(self.layout, self.flat, full[:, :, :-1], full[:, :, PROMPT_LEN:])
        losses.sum().backward()
        grad = self.flat.grad
        norms = torch.linalg.vector_norm(grad, dim=1)
        finite = torch.isfinite(losses) & torch.isfinite(norms)
        self.diverged_step.copy_(torch.where(self.alive & ~finite, step, self.diverged_step))
        self.alive.logical_and_(finite)
        if cfg.grad_clip > 0:
            grad.mul_(clip_coefficient(norms, cfg.grad_clip)[:, None])
        if self.sync_free:
            self.lr.copy_(self.lr_table.index_select(0, step)[0])
        before = self.flat.detach().clone()
        self.optimizer.step()
        with torch.no_grad():
            self.flat.copy_(torch.where(self.alive[:, None], self.flat, before))
        self.trace.index_copy_(0, step % cfg.eval_interval, losses.detach()[None])
        self.unresolved.logical_or_(held.any())
        step.add_(1)

    def run(self, stop: int) -> torch.Tensor:
        """Train steps ``next_step .. stop - 1`` (at most ``eval_interval`` of them).

        Returns:
            float32 (steps, K) on the CPU: each seed's loss at each step (frozen seeds' too).

        Raises:
            RuntimeError: a row of the sync-free stream was still held out after its redraw (never
                seen in practice: probability ~1e-32 per example; the eager stream has no limit).
        """
        start = self.next_step
        if not 0 < stop - start <= self.cfg.eval_interval:
            raise ValueError(f"run: {stop - start} steps from {start}; must be 1..{self.cfg.eval_interval}")
        self.step_t.fill_(start)
        for step in range(start, stop):
            if self.step_mode == "graph":
                self._replay()
                continue
            if not self.sync_free:
                set_lr(self.optimizer, self.cfg.lr_at(step))
            self.optimizer.zero_grad(set_to_none=True)
            self._body()
        self.next_step = stop
        if bool(self.unresolved):
            raise RuntimeError("counter stream: a training pair was still held out after its redraw")
        slots = torch.arange(start, stop) % self.cfg.eval_interval
        return self.trace.index_select(0, slots.to(self.device)).cpu()

    def _replay(self) -> None:
        """Replay the captured step, capturing it first (after any ``load_state_dict``)."""
        if self._graph is None:
            self._graph = self._capture()
        self._graph.replay()

    def _capture(self) -> torch.cuda.CUDAGraph:
        """Warm up on a side stream, undo the warm-up steps in place, then capture ``_body``."""
        tensors = [self.flat, self.alive, self.diverged_step, self.unresolved, self.trace, self.step_t]
        saved = [t.detach().clone() for t in tensors]
        had_state = bool(self.optimizer.state)
        state_before = {key: value.clone() for key, value in self.optimizer.state.get(self.flat, {}).items()}
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(GRAPH_WARMUP_STEPS):
                self.optimizer.zero_grad(set_to_none=True)
                self._body()
        torch.cuda.current_stream().wait_stream(side)
        with torch.no_grad():
            for tensor, value in zip(tensors, saved):
                tensor.copy_(value)
            for key, value in self.optimizer.state[self.flat].items():  # fresh AdamW state is all zeros
                if had_state:
                    value.copy_(state_before[key])
                else:
                    value.zero_()
        self.optimizer.zero_grad(set_to_none=True)
        torch.cuda.empty_cache()  # the warm-up's activations: the graph gets its own pool
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self._body()
        return graph

    def scores(self, pairs: torch.Tensor, flat: torch.Tensor | None = None) -> list[Score]:
        """Greedy scores of each seed's weights (``flat``, default the current ones) on its pairs."""
        weights = self.flat.detach() if flat is None else flat
        return stacked_scores(self.layout, weights, pairs, self.cfg.eval_batch_size)

    def state_dict(self) -> dict:
        """Everything ``load_state_dict`` needs to continue bit-identically (CPU tensors)."""
        return {"flat": self.flat.detach().cpu().clone(), "optimizer_state": self.optimizer.state_dict(),
                "alive": self.alive.cpu(), "diverged_step": self.diverged_step.cpu(), "next_step": self.next_step}

    def load_state_dict(self, state: dict) -> None:
        """Restore ``state_dict()``'s output in place (before the first ``run``)."""
        with torch.no_grad():
            self.flat.copy_(state["flat"])
            self.alive.copy_(state["alive"])
            self.diverged_step.copy_(state["diverged_step"])
        self.optimizer.load_state_dict(state["optimizer_state"])
        self.next_step = int(state["next_step"])


STEP_MODES = ("auto", "eager", "sync_free", "graph")


def _resolve(step_mode: str, device: torch.device) -> str:
    if step_mode not in STEP_MODES:
        raise ValueError(f"step_mode must be one of {', '.join(STEP_MODES)}, got {step_mode!r}")
    if step_mode == "graph" and device.type != "cuda":
        raise ValueError(f"step_mode='graph' needs a CUDA device, got device={str(device)!r}")
    if step_mode == "auto":
        return "graph" if device.type == "cuda" else "eager"
    return step_mode
