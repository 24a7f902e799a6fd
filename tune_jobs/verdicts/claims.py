"""Published claims as data (``claims/<task>/<name>.toml``), and the verdict of a reproduction.

A claim names a configuration, a seed and a schedule, the protocol its number was measured on
(``100k`` held-out, ``adderboard``, or ``validation``: the best validation exact match during
training), and how a measured value is judged: ``at_least`` (measured >= claimed - tolerance) or
``at_most`` (measured <= claimed + tolerance, for results such as "did not grok").

Claim verdict (``claim_verdict``):

- CLAIM REPRODUCED: the claimed seed's run meets the claim;
- REPRODUCED IN DISTRIBUTION: it does not, but some other seeds do (the rate is stated);
- NOT REPRODUCED: no run meets it;
- and the flag NONDETERMINISTIC when the claimed seed, run twice, gave different loss traces.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Optional, Sequence

from trainables.addition.config import ConfigError, ModelConfig, TrainConfig
from trainables.checks import finite_number, fraction, is_int, require, safe_name
from trainables.paths import PROJECT_ROOT
from tune_jobs.verdicts.seeds import wilson_interval

CLAIMS_DIR = PROJECT_ROOT / "claims"
PROTOCOLS = ("100k", "adderboard", "validation")
CLAIM_REPRODUCED, IN_DISTRIBUTION, NOT_REPRODUCED = "CLAIM REPRODUCED", "REPRODUCED IN DISTRIBUTION", "NOT REPRODUCED"
NONDETERMINISTIC = "NONDETERMINISTIC"


class ClaimError(ConfigError):
    """A claim file is missing or malformed; the message names the file and the field."""


@dataclass(frozen=True)
class Claim:
    """One published result: what was run and what it scored."""

    name: str
    description: str
    source_repository: str
    source_commit: str
    source_device: str
    protocol: Literal["100k", "adderboard", "validation"]
    comparison: Literal["at_least", "at_most"]
    claimed_value: float
    """Exact match on the protocol, in [0, 1]."""
    tolerance: float
    model: ModelConfig
    train: TrainConfig
    """The claim's recipe; its seed is the claimed seed."""
    claimed_best_step: Optional[int] = None

    def holds(self, measured: float) -> bool:
        """Whether a measured exact match meets the claim (NaN never does)."""
        if math.isnan(measured):
            return False
        if self.comparison == "at_least":
            return measured >= self.claimed_value - self.tolerance - 1e-12
        return measured <= self.claimed_value + self.tolerance + 1e-12

    def bound(self) -> float:
        """The value a measured exact match must reach (``at_least``) or stay under (``at_most``)."""
        return self.claimed_value - self.tolerance if self.comparison == "at_least" else self.claimed_value + self.tolerance

    def rule(self) -> str:
        """The claim's test in words, e.g. '100k exact match >= 0.99978'."""
        return f"{self.protocol} exact match {'>=' if self.comparison == 'at_least' else '<='} {self.bound():.6g}"


def claim_path(name: str, task: str = "addition") -> Path:
    """File of a shipped claim by name, or ``name`` itself when it is a path to a .toml file."""
    path = Path(name)
    return path if path.suffix == ".toml" else CLAIMS_DIR / task / f"{name}.toml"


def list_claims(task: str = "addition") -> list[str]:
    """Names of the shipped claims of a task."""
    return sorted(p.stem for p in (CLAIMS_DIR / task).glob("*.toml"))


def load_claim(name: str, task: str = "addition") -> Claim:
    """Read and validate a claim.

    Raises:
        ClaimError: no such claim (the known names are listed), or a missing / impossible field
            (a NaN or infinite number, a name outside the safe alphabet: it names folders and runs).
    """
    path = claim_path(name, task)
    if not path.is_file():
        raise ClaimError(f"claim {name!r} not found ({path}); known: {', '.join(list_claims(task))}")
    try:
        data: dict[str, Any] = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        raise ClaimError(f"{path}: not valid TOML: {error}") from error
    try:
        model = ModelConfig.from_dict(data.pop("model", {}))
        train = TrainConfig.from_dict(data.pop("train", {}))
        claim = Claim(model=model, train=train, **data)
    except (ConfigError, TypeError) as error:
        raise ClaimError(f"{path}: {error}") from error
    try:
        safe_name(claim.name, "name")
        fraction(claim, "claimed_value")
        finite_number(claim, "tolerance")
        require(claim.claimed_best_step is None or (is_int(claim.claimed_best_step) and claim.claimed_best_step >= 0),
                f"claimed_best_step must be an integer >= 0, got {claim.claimed_best_step!r}")
    except ConfigError as error:
        raise ClaimError(f"{path}: {error}") from error
    if claim.protocol not in PROTOCOLS:
        raise ClaimError(f"{path}: protocol must be one of {', '.join(PROTOCOLS)}, got {claim.protocol!r}")
    if claim.comparison not in ("at_least", "at_most"):
        raise ClaimError(f"{path}: comparison must be 'at_least' or 'at_most', got {claim.comparison!r}")
    return claim


def first_difference(a: Sequence[float], b: Sequence[float]) -> Optional[int]:
    """Index of the first step where two loss traces differ (bitwise), or of the shorter's end; None if equal."""
    for index, (x, y) in enumerate(zip(a, b)):
        if x != y and not (math.isnan(x) and math.isnan(y)):
            return index
    return None if len(a) == len(b) else min(len(a), len(b))


@dataclass(frozen=True)
class ClaimVerdict:
    """Outcome of reproducing a claim on one environment."""

    verdict: str
    """CLAIM REPRODUCED, REPRODUCED IN DISTRIBUTION or NOT REPRODUCED."""
    deterministic: bool
    """The claimed seed's two runs gave bit-identical loss traces."""
    first_difference_step: Optional[int]
    """First step where those traces differ (None when identical)."""
    claimed_seed_value: float
    """Measured exact match of the claimed seed's (first) run on the claim's protocol."""
    other_successes: int
    other_seeds: int
    wilson_low: float
    wilson_high: float

    @property
    def label(self) -> str:
        """The verdict, with NONDETERMINISTIC appended when the two runs differed."""
        return self.verdict if self.deterministic else f"{self.verdict} + {NONDETERMINISTIC}"


def claim_verdict(claim: Claim, claimed_runs: Sequence[tuple[float, Sequence[float]]],
                  other_values: Sequence[float]) -> ClaimVerdict:
    """Judge a reproduction.

    Args:
        claim: the claim.
        claimed_runs: (measured value, loss trace) of each run of the claimed seed (normally two).
        other_values: measured values of the runs with other seeds.

    Raises:
        ValueError: no run of the claimed seed.
    """
    if not claimed_runs:
        raise ValueError("claim_verdict needs at least one run of the claimed seed")
    value, trace = claimed_runs[0]
    diffs = [first_difference(trace, other) for _, other in claimed_runs[1:]]
    diff = min((d for d in diffs if d is not None), default=None)
    successes = sum(claim.holds(v) for v in other_values)
    low, high = wilson_interval(successes, len(other_values))
    if claim.holds(value):
        verdict = CLAIM_REPRODUCED
    elif successes:
        verdict = IN_DISTRIBUTION
    else:
        verdict = NOT_REPRODUCED
    return ClaimVerdict(verdict, diff is None, diff, value, successes, len(other_values), low, high)
