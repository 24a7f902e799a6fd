"""Generation health: the collapse rule, repetition and distinct-n by hand, sampling filters."""

from __future__ import annotations

import math

import pytest
import torch

from trainables.lm.generation import (
    derive_prompts, distinct_n, filter_logits, is_collapsed, repetition_ratio, summarize,
)


@pytest.mark.parametrize("tokens, collapsed", [
    ([7] * 10, True),                              # one token looping
    ([5, 6] * 8, True),                            # '):):):' as two alternating tokens
    ([1, 2] + [5, 6] * 7, True),                   # 12 of 14 positions repeat 2 back: 0.86 >= 0.8
    ([1, 2, 3] + [5, 6] * 6, False),               # 10 of 13: 0.77 < 0.8
    ([1, 2, 3, 4, 1, 2, 3, 4, 1, 2, 3, 4], False),  # a loop of four is not this rule
    (list(range(12)), False),
    ([7, 7, 7], False),                            # too short to judge
])
def test_collapse_rule(tokens, collapsed):
    assert is_collapsed(tokens, 0.8) is collapsed


def test_repetition_and_distinct_by_hand():
    """[1, 2, 1, 2, 3]: bigrams (1,2) (2,1) (1,2) (2,3): 3 distinct of 4."""
    tokens = [1, 2, 1, 2, 3]
    assert distinct_n(tokens, 2) == pytest.approx(0.75)
    assert repetition_ratio(tokens, 2) == pytest.approx(0.25)
    assert distinct_n(tokens, 1) == pytest.approx(3 / 5)
    assert math.isnan(distinct_n([1], 2))


def test_filter_logits_top_k_and_top_p():
    logits = torch.log(torch.tensor([0.5, 0.3, 0.2]))
    assert torch.isinf(filter_logits(logits, 2, 1.0)).tolist() == [False, False, True]
    # mass before the third token is 0.8 >= 0.6: cut; before the second 0.5 < 0.6: kept
    assert torch.isinf(filter_logits(logits, 0, 0.6)).tolist() == [False, False, True]
    assert torch.isinf(filter_logits(logits, 0, 0.5)).tolist() == [False, True, True]
    assert not torch.isinf(filter_logits(logits, 0, 1.0)).any()


def test_prompts_and_summary():
    text = "".join(f"line number {i}\n" for i in range(100))
    assert derive_prompts(text, 4, 14) == ["line number 0\n", "line number 33", "line number 66", "line number 99"]
    rows = [{"mode": "greedy", "collapsed": True, "repetition_ratio": 1.0, "distinct_1": 0.1, "distinct_2": 0.1,
             "unique_chars": 2},
            {"mode": "sampled", "collapsed": False, "repetition_ratio": 0.0, "distinct_1": 1.0, "distinct_2": 1.0,
             "unique_chars": 10}]
    metrics = summarize(rows)
    assert metrics["gen/collapse_rate"] == 0.5 and metrics["gen/collapse_rate_greedy"] == 1.0
    assert metrics["gen/collapse_rate_sampled"] == 0.0 and metrics["gen/unique_chars"] == 6.0
