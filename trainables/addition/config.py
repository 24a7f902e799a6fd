"""Configuration of the 10-digit addition trainable: model family and training recipe.

Field names and defaults follow the public record (``shared/reference/addition.md``,
sections 2 and 4; repository yinglunz/A-456-Parameter-Transformer-Solves-10-Digit-Addition
@ 1fb37db), so a reference checkpoint's ``model_config`` / ``train_config`` dicts load
directly. Both dataclasses are frozen and reject contradictions on construction.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Mapping

from trainables.checks import ConfigError, finite_numbers, known_fields
from trainables.checks import require as _require
from trainables.optim import reference_cosine_lr

VOCAB_SIZE = 14
"""Digits 0-9, '+', '=', <PAD>, <EOS> (reference section 1)."""
MAX_SEQ_LEN = 33
"""34-token sequence minus one: model input is full[:-1] (reference section 1)."""

TieMode = Literal[
    "none", "all", "qk", "kv",
    "shareA", "shareA_tieKV", "shareA_tieQK",
    "shareB", "shareB_tieKV", "shareB_tieQK",
]
TIE_MODES: tuple[str, ...] = TieMode.__args__  # type: ignore[attr-defined]
LOW_RANK_TIE_MODES = tuple(m for m in TIE_MODES if m.startswith("share"))
"""Tie modes that factor Q, K, V through shared low-rank factors, so need ``qkv_rank > 0``."""


@dataclass(frozen=True)
class ModelConfig:
    """Shape of one tiny decoder-only transformer of the reference family."""

    d_model: int = 7
    """Width of the residual stream (and of the single attention head)."""
    d_ff: int = 14
    """Hidden width of the MLP."""
    n_layer: int = 1
    """Number of pre-norm decoder blocks (the record uses 1)."""
    n_head: int = 1
    """Attention heads; must divide d_model (the record uses 1)."""
    pos_rank: int = 0
    """Rank of the 33 x d_model position table; 0 = full-rank embedding."""
    qkv_rank: int = 0
    """Rank of the QKV map; 0 = full rank. The share* tie modes need it > 0."""
    attn_out_rank: int = 0
    """Rank of the attention output projection; 0 = full rank."""
    ffn_rank: int = 0
    """Rank of each of fc1 and fc2; 0 = full rank."""
    use_rmsnorm: bool = False
    """RMSNorm (weight only, eps 1e-8) instead of LayerNorm (weight and bias, eps 1e-5)."""
    tie_qkv: TieMode = "none"
    """How Q, K and V share parameters (reference section 2 table)."""
    vocab_size: int = VOCAB_SIZE
    """Fixed by the task: 14 token ids."""
    max_seq_len: int = MAX_SEQ_LEN
    """Fixed by the task: 33 positions."""

    def __post_init__(self) -> None:
        for name in ("d_model", "d_ff", "n_layer", "n_head"):
            value = getattr(self, name)
            _require(isinstance(value, int) and value > 0, f"{name} must be a positive integer, got {value!r}")
        _require(self.d_model % self.n_head == 0,
                 f"n_head={self.n_head} must divide d_model={self.d_model}")
        _require(self.vocab_size == VOCAB_SIZE, f"vocab_size must be {VOCAB_SIZE} for this task, got {self.vocab_size}")
        _require(self.max_seq_len == MAX_SEQ_LEN,
                 f"max_seq_len must be {MAX_SEQ_LEN} for this task, got {self.max_seq_len}")
        for name in ("pos_rank", "qkv_rank", "attn_out_rank", "ffn_rank"):
            value = getattr(self, name)
            _require(isinstance(value, int) and value >= 0, f"{name} must be an integer >= 0, got {value!r}")
            _require(value < self.d_model,
                     f"{name}={value} must be smaller than d_model={self.d_model} (0 means full rank)")
        _require(self.tie_qkv in TIE_MODES, f"tie_qkv must be one of {', '.join(TIE_MODES)}; got {self.tie_qkv!r}")
        _require(self.tie_qkv not in LOW_RANK_TIE_MODES or self.qkv_rank > 0,
                 f"tie_qkv={self.tie_qkv!r} needs a low-rank QKV map, but qkv_rank={self.qkv_rank}")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "ModelConfig":
        """Build from a dict, ignoring reference-only keys (``dropout``) and rejecting unknown ones.

        Raises:
            ConfigError: an unknown key, or an impossible value.
        """
        return cls(**known_fields(cls, values, ignore=("dropout",)))


@dataclass(frozen=True)
class TrainConfig:
    """Training recipe; defaults are the reference's (section 4)."""

    seed: int = 42
    """Seeds model init (global RNG), the holdout split (its own generator) and training data (seed + 1337)."""
    train_steps: int = 27_000
    """Optimizer steps; the cosine schedule spans exactly this many."""
    batch_size: int = 512
    """Fresh examples per step (online data)."""
    lr: float = 0.02
    """Peak learning rate of AdamW."""
    weight_decay: float = 0.01
    """AdamW weight decay, applied to every parameter (one group)."""
    warmup_steps: int = 1350
    """Linear warmup lr*(s+1)/warmup_steps for s < warmup_steps."""
    min_lr_ratio: float = 0.1
    """Cosine decays from lr to min_lr_ratio*lr at train_steps."""
    grad_clip: float = 1.0
    """Global gradient-norm clip; 0 disables clipping."""
    eval_interval: int = 1000
    """Evaluate validation exact match after 0-based steps that are multiples of this, and the last."""
    val_size: int = 5000
    """Validation pairs (the first of the holdout)."""
    test_size: int = 10_000
    """Test pairs (the holdout after validation)."""
    eval_batch_size: int = 512
    """Sequences per forward pass during greedy evaluation."""
    curriculum: tuple[tuple[int, int, int], ...] = ((0, 1, 3), (2000, 1, 6), (7000, 1, 10))
    """(first step, min digits, max digits) phases of operand length."""
    mode: Literal["faithful", "fast"] = "faithful"
    """'faithful' follows the reference's random streams and operation order; 'fast' draws the same
    data distribution vectorized, computes in the last block only what the loss at the 12 scored
    positions needs (exact), uses foreach AdamW and clipping, and keeps the losses on the device
    (same recipe, different numbers; deterministic for a device and thread count)."""
    stream: Literal["default", "counter"] = "default"
    """Training data source. 'default': the mode's ``torch.Generator`` stream (data.TrainingStream);
    'counter': a pure function of (seed, step, row) (counter_stream.CounterStream), the same bits on
    every device and for any number of seeds trained together (the stacked trainer's stream); needs
    mode 'fast'."""
    threads: int = 1
    """torch intra-op threads; results depend on it, so it is recorded with every run."""
    device: str = "cpu"
    """Torch device for training; the model is always initialized on the CPU first."""
    compile: bool = False
    """torch.compile: in fast mode in one process, the whole step (batch encoding, forward, backward,
    clipping, AdamW) as one compiled function, ~2-3x the eager fast step on CPU after a compile
    (cached in <project>/.cache/inductor unless $TORCHINDUCTOR_CACHE_DIR is set), falling back to
    the eager step with a warning if compiling fails; in faithful mode or data-parallel, the
    forward pass only. Numerics differ from eager; deterministic for a device and thread count."""

    adam_betas: ClassVar[tuple[float, float]] = (0.9, 0.999)
    """AdamW's (beta1, beta2), the reference's (section 4); a constant of the recipe, not a field."""
    adam_eps: ClassVar[float] = 1e-8
    """AdamW's eps, the reference's (section 4)."""

    def __post_init__(self) -> None:
        finite_numbers(self)
        if isinstance(self.curriculum, list):  # from JSON / MLflow params
            object.__setattr__(self, "curriculum", tuple(tuple(p) for p in self.curriculum))
        for name in ("train_steps", "batch_size", "eval_interval", "val_size", "eval_batch_size", "threads"):
            value = getattr(self, name)
            _require(isinstance(value, int) and value > 0, f"{name} must be a positive integer, got {value!r}")
        for name in ("warmup_steps", "test_size", "seed"):
            value = getattr(self, name)
            _require(isinstance(value, int) and value >= 0, f"{name} must be an integer >= 0, got {value!r}")
        _require(self.lr > 0, f"lr must be > 0, got {self.lr!r}")
        _require(self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay!r}")
        _require(0 <= self.min_lr_ratio <= 1, f"min_lr_ratio must be in [0, 1], got {self.min_lr_ratio!r}")
        _require(self.grad_clip >= 0, f"grad_clip must be >= 0 (0 disables), got {self.grad_clip!r}")
        _require(self.warmup_steps < self.train_steps,
                 f"warmup_steps={self.warmup_steps} must be smaller than train_steps={self.train_steps}")
        _require(self.mode in ("faithful", "fast"), f"mode must be 'faithful' or 'fast', got {self.mode!r}")
        _require(self.stream in ("default", "counter"), f"stream must be 'default' or 'counter', got {self.stream!r}")
        _require(self.stream == "default" or self.mode == "fast",
                 f"stream={self.stream!r} needs mode='fast' ('faithful' follows the reference's own stream), "
                 f"got mode={self.mode!r}")
        _check_curriculum(self.curriculum)

    def digits_at(self, step: int) -> tuple[int, int]:
        """Operand digit range (min, max) in force at 0-based ``step``."""
        lo, hi = self.curriculum[0][1:]
        for start, phase_lo, phase_hi in self.curriculum:
            if step >= start:
                lo, hi = phase_lo, phase_hi
        return lo, hi

    def lr_at(self, step: int) -> float:
        """Learning rate set before 0-based ``step``: linear warmup, then cosine to min_lr_ratio*lr
        (``optim.reference_cosine_lr``)."""
        return reference_cosine_lr(step, self.lr, self.warmup_steps, self.train_steps, self.min_lr_ratio)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "TrainConfig":
        """Build from a dict; reference bookkeeping keys (paths, run names) are ignored.

        Raises:
            ConfigError: an unknown key, or an impossible value.
        """
        ignore = ("run_name", "run_dir", "split_dir", "best_ckpt_out", "last_ckpt_out", "dtype")
        values = dict(values)
        if values.get("curriculum") in ("", None):
            values.pop("curriculum", None)
        return cls(**known_fields(cls, values, ignore=ignore))


def _check_curriculum(curriculum: tuple[tuple[int, int, int], ...]) -> None:
    _require(len(curriculum) > 0, "curriculum must have at least one (step, min_digits, max_digits) phase")
    previous = -1
    for phase in curriculum:
        _require(len(phase) == 3, f"curriculum phase must be (step, min_digits, max_digits), got {phase!r}")
        start, lo, hi = phase
        _require(start > previous, f"curriculum steps must increase, got {start} after {previous}")
        _require(1 <= lo <= hi <= 10, f"curriculum digits must satisfy 1 <= min <= max <= 10, got {phase!r}")
        previous = start
    _require(curriculum[0][0] == 0, f"curriculum must start at step 0, got {curriculum[0][0]}")



def to_flat_dict(model: ModelConfig, train: TrainConfig) -> dict[str, Any]:
    """Flat ``model.*`` / ``train.*`` dict of every field, for MLflow params and checkpoints."""
    flat = {f"model.{k}": v for k, v in dataclasses.asdict(model).items()}
    flat.update({f"train.{k}": v for k, v in dataclasses.asdict(train).items()})
    return flat


__all__ = [
    "ConfigError", "ModelConfig", "TrainConfig", "TIE_MODES", "LOW_RANK_TIE_MODES",
    "VOCAB_SIZE", "MAX_SEQ_LEN", "to_flat_dict",
]
