"""The ``audit`` section of a language-model run: the thresholds of the leakage and sanity audits
(``trainables.lm.audits``) that mark a run SUSPECT."""

from __future__ import annotations

from dataclasses import dataclass

from trainables.checks import finite_number as _finite
from trainables.checks import finite_numbers
from trainables.checks import fraction as _fraction
from trainables.checks import positive_ints as _positive
from trainables.checks import require as _require


@dataclass(frozen=True)
class AuditConfig:
    """Thresholds of the audits that mark a run SUSPECT (trainables.lm.audits)."""

    causal_tolerance: float = 1e-5
    """Largest change of an earlier position's logits allowed when later tokens change."""
    overlap_min_chars: int = 40
    """Validation lines shorter than this (stripped) are ignored by the overlap audit."""
    max_overlap: float = 0.3
    """Largest share of validation lines also found in training text."""
    val_better_margin: float = 0.02
    """Bits per byte by which validation must beat training at every evaluation to be flagged."""
    min_perplexity: float = 1.1
    """Validation perplexity per token below this is implausible for natural text."""
    max_collapse_rate: float = 0.5
    """Largest share of collapsed sampled completions allowed when the loss beats a unigram model."""
    linear_input_abs_mean: float = 0.1
    """A tanh/sigmoid gate whose mean |input| is below this in every layer computes a linear function
    (``gates_linear``): tanh(x) = x - x^3/3 + ... differs from x by 0.33% at |x| = 0.1, and sigmoid(x)
    = 1/2 + x/4 - x^3/48 + ... from 1/2 + x/4 by 0.08% of x/4. 0.1 is the line of the external
    review of a 58M-parameter memory LM whose tanh inputs averaged 0.017 ('far below 0.1')."""
    max_dead_share: float = 0.5
    """Largest share of a gate's outputs that pass nothing (``gates_dead``; sigmoid < 0.05, |tanh| <
    0.05, the margin ``trainables.diagnostics.DEAD``). 0.5, a majority, is this project's choice."""
    max_saturated_share: float = 0.5
    """Largest share of a gate's outputs that carry no gradient (``gates_saturated``; sigmoid > 0.95,
    |tanh| > 0.95). 0.5, a majority, is this project's choice."""
    min_ablation_change: float = 0.01
    """A component none of whose ablations (``trainables.lm.ablation``) changes validation bits per
    byte by this share or more is unused (``component_unused``); the reported memory's resets moved
    perplexity by 1 part in 752 (0.13%). 1% is this project's choice."""
    ablation_reset_every: tuple[int, ...] = (1, 16)
    """The ablation also scores the gated memory restarted every N tokens inside each window, for each
    N here below context_length (1: no memory across tokens at all); () for none."""

    def __post_init__(self) -> None:
        finite_numbers(self)
        if isinstance(self.ablation_reset_every, list):
            object.__setattr__(self, "ablation_reset_every", tuple(self.ablation_reset_every))
        _require(self.causal_tolerance >= 0, f"causal_tolerance must be >= 0, got {self.causal_tolerance!r}")
        _positive(self, "overlap_min_chars")
        _require(self.val_better_margin >= 0, f"val_better_margin must be >= 0, got {self.val_better_margin!r}")
        _require(self.min_perplexity >= 1, f"min_perplexity must be >= 1, got {self.min_perplexity!r}")
        for name in ("max_overlap", "max_collapse_rate", "max_dead_share", "max_saturated_share",
                     "min_ablation_change"):
            _fraction(self, name)
        _finite(self, "linear_input_abs_mean")
        every = self.ablation_reset_every
        _require(isinstance(every, tuple) and all(isinstance(n, int) and not isinstance(n, bool) and n > 0
                                                  for n in every),
                 f"ablation_reset_every must hold positive integers, got {every!r}")
