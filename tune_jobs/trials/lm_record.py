"""The language-model trial's resolved config as it reports it (``runtime.run_record``): every section's fields."""

from __future__ import annotations

from trainables.lm.config import SECTIONS, LMRun
from tune_jobs.runtime.run_record import resolved_report


def lm_params(run: LMRun) -> dict[str, str]:
    """``param/*`` result keys: every field of every ``LMRun`` section (model, train with its
    ``schedule``, data, tokenizer, generation, audit). The corpus and split checksums are the
    ``data/train_sha256`` and ``data/val_sha256`` tags the trainable reports with its data."""
    return resolved_report({name: getattr(run, name) for name in SECTIONS})
