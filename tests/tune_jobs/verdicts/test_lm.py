"""Verdict rules of a language-model configuration: spread over seeds, audit flags, collapse interval."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from tune_jobs.verdicts.lm import CONSISTENT, SUSPECT, label, summary_line, verdict_table
from tune_jobs.verdicts.seeds import INCONCLUSIVE, SEED_SENSITIVE, wilson_interval


def _trials(config_id, bpbs, flags=("",) * 3, finished=(True,) * 3, collapsed=(0, 0, 0)):
    return [{"config_id": config_id, "seed": i, "finished": f, "bits_per_byte": b, "flags": fl,
             "reasons": "; ".join(f"{x}: because" for x in fl.split(",") if x), "collapsed_sampled": c,
             "completions_sampled": 8, "tokenizer.vocab_size": 512}
            for i, (b, fl, f, c) in enumerate(zip(bpbs, flags, finished, collapsed))]


def test_labels():
    assert label(3, 0.01, False) == CONSISTENT
    assert label(3, 0.2, False) == SEED_SENSITIVE
    assert label(2, 0.0, False) == INCONCLUSIVE
    assert label(3, 0.0, True) == SUSPECT and label(1, 0.0, True) == SUSPECT


def test_verdict_table_statistics_flags_and_order():
    rows = (_trials("good", [2.00, 2.02, 2.04], collapsed=(1, 0, 2))
            + _trials("leaky", [0.5, 0.5, 0.5], flags=("split_overlap", "split_overlap", ""))
            + _trials("noisy", [2.1, 2.5, 2.3])
            + _trials("short", [1.9, 1.9, math.nan], finished=(True, True, False)))
    table = verdict_table(pd.DataFrame(rows))
    assert table["config_id"].tolist() == ["good", "noisy", "short", "leaky"]  # SUSPECT last despite its bpb
    good = table.iloc[0]
    assert good["verdict"] == CONSISTENT and good["bpb_mean"] == pytest.approx(2.02)
    assert good["bpb_std"] == pytest.approx(0.02) and good["bpb_spread"] == pytest.approx(0.04)
    assert good["collapse_rate_sampled"] == pytest.approx(3 / 24)
    assert (good["collapse_low"], good["collapse_high"]) == pytest.approx(wilson_interval(3, 24))
    assert good["tokenizer.vocab_size"] == 512
    leaky = table.set_index("config_id").loc["leaky"]
    assert leaky["verdict"] == SUSPECT and leaky["audit_flags"] == "split_overlap (seeds 0,1)"
    assert leaky["audit_reasons"] == "split_overlap: because"
    assert table.set_index("config_id").loc["noisy", "verdict"] == SEED_SENSITIVE
    short = table.set_index("config_id").loc["short"]
    assert short["verdict"] == INCONCLUSIVE and short["errored"] == 1 and short["seeds"] == "0,1"
    assert summary_line(good).startswith("CONSISTENT bpb 2.020 +- 0.020 (spread 0.040, 3 seeds)")
    assert summary_line(leaky).endswith("; split_overlap (seeds 0,1)")


def test_missing_columns_are_named():
    with pytest.raises(KeyError, match="flags"):
        verdict_table(pd.DataFrame([{"config_id": "a", "seed": 0, "finished": True, "bits_per_byte": 1.0}]))
