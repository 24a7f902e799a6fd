"""Configuration of the small-language-model trainable: one frozen dataclass per section.

Sections: ``model`` (the transformer), ``train`` (the recipe and seed), ``data`` (corpus and
split), ``tokenizer`` (algorithm and vocabulary size), ``generation`` (prompts and sampling of the
health check) and ``audit`` (the thresholds of the leakage and sanity audits, in
``trainables.lm.audit_config``). Every class is frozen and validates itself on construction;
errors name the field and the value. ``LMRun`` bundles them and flattens them for MLflow params.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Mapping

from trainables.checks import ConfigError, finite_numbers  # noqa: F401 - ConfigError is re-exported
from trainables.checks import finite_number as _finite
from trainables.checks import fraction as _fraction
from trainables.checks import positive_ints as _positive
from trainables.checks import require as _require
from trainables.lm.audit_config import AuditConfig
from trainables.optim import warmup_decay_lr


@dataclass(frozen=True)
class ModelConfig:
    """Shape of a small pre-norm causal transformer LM (vocabulary size comes from the tokenizer)."""

    d_model: int = 128
    """Width of the residual stream."""
    n_layer: int = 2
    """Decoder blocks."""
    n_head: int = 4
    """Attention heads; must divide d_model."""
    context_length: int = 128
    """Tokens of context (positions of the learned position table)."""
    ffn_mult: int = 4
    """Hidden width of the feed-forward unit as a multiple of d_model."""
    dropout: float = 0.0
    """Dropout on embeddings, attention weights and residual branches while training."""
    gate: Literal["none", "glu", "memory"] = "none"
    """'glu': the feed-forward unit is sigmoid-gated (GLU); 'memory': each block adds a gated memory
    (a causal running mean of tanh features, passed through a sigmoid gate). Both are watched by the
    gate diagnostics."""
    tie_embeddings: bool = True
    """Share the token embedding with the output head."""
    gate_input_gain: float = 1.0
    """Constant (not trained) factor on the inputs of the gated memory's tanh and sigmoid: 1 is the
    plain memory; 0.5/sqrt(d_model) reproduces a reported failure (an ``input_gain`` initialized at
    0.5/sqrt(576) kept a 58M-parameter memory LM's tanh inputs at 0.017, a memory it never used).
    Needs gate='memory'."""

    def __post_init__(self) -> None:
        finite_numbers(self)
        _positive(self, "d_model", "n_layer", "n_head", "context_length", "ffn_mult")
        _require(self.d_model % self.n_head == 0, f"n_head={self.n_head} must divide d_model={self.d_model}")
        _require(0 <= self.dropout < 1, f"dropout must be in [0, 1), got {self.dropout!r}")
        _require(self.gate in ("none", "glu", "memory"), f"gate must be 'none', 'glu' or 'memory', got {self.gate!r}")
        _finite(self, "gate_input_gain", above_zero=True)
        _require(self.gate_input_gain == 1.0 or self.gate == "memory",
                 f"gate_input_gain={self.gate_input_gain!r} acts on the gated memory only, but gate={self.gate!r}")


@dataclass(frozen=True)
class TrainConfig:
    """Training recipe: AdamW, warmup then a schedule, random windows of the training split."""

    seed: int = 0
    """Seeds model init and the training-window stream (the split has its own seed, data.split_seed)."""
    train_steps: int = 600
    """Optimizer steps; the schedule spans exactly this many."""
    batch_size: int = 16
    """Windows of context_length + 1 tokens per step."""
    lr: float = 3e-3
    """Peak learning rate."""
    warmup_steps: int = 50
    """Linear warmup lr*(s+1)/warmup_steps for s < warmup_steps."""
    schedule: Literal["cosine", "linear", "constant"] = "cosine"
    """Decay after warmup, from lr to min_lr_ratio*lr at train_steps ('constant': no decay)."""
    min_lr_ratio: float = 0.1
    """Final learning rate as a share of lr."""
    weight_decay: float = 0.1
    """AdamW decoupled weight decay on 2-D weights (not on norms, biases or position table)."""
    grad_clip: float = 1.0
    """Global gradient-norm clip; 0 disables."""
    eval_interval: int = 100
    """Evaluate after 0-based steps that are multiples of this, and after the last step."""
    eval_bytes: int = 65_536
    """UTF-8 bytes of validation text scored at each evaluation (and of training text for the gap)."""
    eval_pieces: int = 64
    """The scored text is this many line-aligned chunks spread evenly over each split (a prefix of a
    few documents is not representative: 8 chunks of the stdlib's training split had 15% more tokens
    per byte than the whole split)."""
    diagnostics: bool = True
    """Compute effective ranks and gate health at each evaluation."""
    threads: int = 1
    """torch intra-op threads (recorded with every run: results depend on it)."""
    device: str = "cpu"
    """Torch device."""

    adam_betas: ClassVar[tuple[float, float]] = (0.9, 0.95)
    """AdamW's (beta1, beta2); a constant of the recipe, not a field."""
    adam_eps: ClassVar[float] = 1e-8
    """AdamW's eps."""

    def __post_init__(self) -> None:
        finite_numbers(self)
        _positive(self, "train_steps", "batch_size", "eval_interval", "eval_bytes", "eval_pieces", "threads")
        _require(isinstance(self.seed, int) and self.seed >= 0, f"seed must be an integer >= 0, got {self.seed!r}")
        _require(isinstance(self.warmup_steps, int) and 0 <= self.warmup_steps < self.train_steps,
                 f"warmup_steps={self.warmup_steps!r} must be in [0, train_steps={self.train_steps})")
        _require(self.lr > 0 and math.isfinite(self.lr), f"lr must be a finite number > 0, got {self.lr!r}")
        _require(self.schedule in ("cosine", "linear", "constant"),
                 f"schedule must be 'cosine', 'linear' or 'constant', got {self.schedule!r}")
        _fraction(self, "min_lr_ratio")
        _require(self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay!r}")
        _require(self.grad_clip >= 0, f"grad_clip must be >= 0 (0 disables), got {self.grad_clip!r}")

    def lr_at(self, step: int) -> float:
        """Learning rate of 0-based ``step``: linear warmup, then the schedule down to min_lr_ratio*lr
        (``optim.warmup_decay_lr``)."""
        return warmup_decay_lr(step, self.lr, self.warmup_steps, self.train_steps, self.min_lr_ratio, self.schedule)


@dataclass(frozen=True)
class DataConfig:
    """Which text, how much of it, and how it splits into training and validation."""

    corpus: str = "stdlib"
    """'stdlib' (this interpreter's standard library *.py), 'en', 'fr', 'es' (the texts in
    $REPROTUNE_CORPORA_DIR), or a path to a text file or a folder."""
    max_bytes: int = 2_000_000
    """Cap on the UTF-8 bytes of the corpus after normalization (documents taken in order); 0 = none."""
    file_pattern: str = "*.txt"
    """Glob of the files read from a folder corpus (recursively, sorted by relative path)."""
    normalize: bool = True
    """Drop a byte-order mark, turn CRLF/CR into LF, and keep only the text between Project
    Gutenberg START/END markers when both are present (so bytes compare across languages)."""
    block_chars: int = 16_384
    """A single-file corpus is cut into documents of about this many characters, at line ends."""
    val_fraction: float = 0.1
    """Share of documents held out for validation (at least one)."""
    split_seed: int = 0
    """Seed of the split's own generator: a training seed never changes the split."""

    def __post_init__(self) -> None:
        finite_numbers(self)
        _require(isinstance(self.corpus, str) and self.corpus.strip() != "",
                 f"corpus must be a name or path, got {self.corpus!r}")
        _require(isinstance(self.max_bytes, int) and self.max_bytes >= 0,
                 f"max_bytes must be an integer >= 0, got {self.max_bytes!r}")
        _positive(self, "block_chars")
        _fraction(self, "val_fraction", low_open=True, high_open=True)
        _require(isinstance(self.split_seed, int) and self.split_seed >= 0,
                 f"split_seed must be an integer >= 0, got {self.split_seed!r}")


@dataclass(frozen=True)
class TokenizerConfig:
    """Tokenizer trained with the ``tokenizers`` library on the training split."""

    algorithm: Literal["byte_bpe", "char"] = "byte_bpe"
    """'byte_bpe': byte-level BPE (no unknown tokens; at least 257 entries); 'char': one token per
    character, the vocab_size - 2 most frequent characters, the rest mapped to <unk>."""
    vocab_size: int = 1024
    """Entries of the vocabulary, special tokens included."""
    extra_corpora: tuple[str, ...] = ()
    """Further corpora whose training splits the tokenizer also learns from (a shared tokenizer)."""

    def __post_init__(self) -> None:
        finite_numbers(self)
        if isinstance(self.extra_corpora, list):
            object.__setattr__(self, "extra_corpora", tuple(self.extra_corpora))
        _require(self.algorithm in ("byte_bpe", "char"),
                 f"algorithm must be 'byte_bpe' or 'char', got {self.algorithm!r}")
        minimum = 257 if self.algorithm == "byte_bpe" else 3
        _require(isinstance(self.vocab_size, int) and self.vocab_size >= minimum,
                 f"vocab_size={self.vocab_size!r} is below the {minimum} entries of a {self.algorithm} vocabulary")


@dataclass(frozen=True)
class GenerationConfig:
    """The generation-health check run after training."""

    prompts: tuple[str, ...] = ()
    """Fixed prompts; empty: num_prompts line starts of the validation text, evenly spaced."""
    num_prompts: int = 8
    """Prompts drawn from validation text when ``prompts`` is empty."""
    prompt_chars: int = 32
    """Characters of each prompt drawn from validation text."""
    max_new_tokens: int = 48
    """Tokens generated per completion."""
    temperature: float = 0.8
    """Softmax temperature of sampled completions."""
    top_k: int = 50
    """Sample among the k most likely tokens; 0 = all."""
    top_p: float = 0.95
    """Nucleus sampling: the smallest set with this much probability; 1 = all."""
    repetition_n: int = 4
    """n of the repeated-n-gram share (repetition ratio)."""
    collapse_share: float = 0.8
    """A completion is collapsed when this share of its tokens repeats the token 1 or 2 back."""

    def __post_init__(self) -> None:
        finite_numbers(self)
        if isinstance(self.prompts, list):
            object.__setattr__(self, "prompts", tuple(self.prompts))
        _positive(self, "num_prompts", "prompt_chars", "max_new_tokens", "repetition_n")
        _require(self.temperature > 0, f"temperature must be > 0, got {self.temperature!r}")
        _require(isinstance(self.top_k, int) and self.top_k >= 0, f"top_k must be an integer >= 0, got {self.top_k!r}")
        _fraction(self, "top_p", low_open=True)
        _fraction(self, "collapse_share", low_open=True)


SECTIONS: dict[str, type] = {"model": ModelConfig, "train": TrainConfig, "data": DataConfig,
                             "tokenizer": TokenizerConfig, "generation": GenerationConfig, "audit": AuditConfig}
"""Section name -> config class."""


@dataclass(frozen=True)
class LMRun:
    """Every setting of one language-model run."""

    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    data: DataConfig = field(default_factory=DataConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    audit: AuditConfig = field(default_factory=AuditConfig)

    @classmethod
    def from_sections(cls, sections: Mapping[str, Mapping[str, Any]], **overrides: Mapping[str, Any]) -> "LMRun":
        """Build from ``{section: {field: value}}`` (missing sections take defaults).

        Raises:
            ConfigError: an unknown field in a section, or an impossible value.
        """
        built = {}
        for name, cls_ in SECTIONS.items():
            values = {**sections.get(name, {}), **overrides.get(name, {})}
            known = {f.name for f in dataclasses.fields(cls_)}
            unknown = sorted(set(values) - known)
            _require(not unknown, f"unknown {name} field(s): {', '.join(unknown)}")
            built[name] = cls_(**values)
        return cls(**built)

    def to_flat_dict(self) -> dict[str, Any]:
        """``section.field`` -> value of every field, for MLflow params and checkpoints."""
        return {f"{name}.{k}": v for name in SECTIONS for k, v in dataclasses.asdict(getattr(self, name)).items()}

    @staticmethod
    def complete(sections: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
        """``sections`` with every field of every section, missing ones at their defaults (tuples as
        lists, ``train.seed`` left out): what a job records as a trial's resolved configuration."""
        defaults = LMRun().to_sections()
        defaults["train"].pop("seed")
        listed = {name: {k: list(v) if isinstance(v, tuple) else v for k, v in fields.items()}
                  for name, fields in defaults.items()}
        return {name: {**fields, **sections.get(name, {})} for name, fields in listed.items()}

    def to_sections(self) -> dict[str, dict[str, Any]]:
        """``{section: {field: value}}``, the inverse of ``from_sections``."""
        return {name: dataclasses.asdict(getattr(self, name)) for name in SECTIONS}
