"""Search spaces of the 10-digit addition sweep, as data.

Fields are those of ``trainables.addition.config`` (sections ``model`` and ``train``). Every space
starts from a configuration the public record says learns quickly, d_model 8, d_ff 28, full rank,
lr 0.015 (``shared/reference/addition.md`` section 6: 99.999% at lr 0.015 on one GPU run), so
each sweep has a known-good reference point to compare the others with.
"""

from __future__ import annotations

from search_spaces.dimensions import Choice, LogUniform, SearchSpace

RECORD_FAST_LEARNER = {"model": {"d_model": 8, "d_ff": 28, "pos_rank": 0, "qkv_rank": 0, "attn_out_rank": 0,
                                 "ffn_rank": 0, "use_rmsnorm": False},
                       "train": {"lr": 0.015}}
"""d8/ff28 full rank at lr 0.015: the record's fastest reliable learner (section 6)."""
POSITIVE_CONTROL = {"model": {"d_model": 16, "d_ff": 64, "pos_rank": 0, "qkv_rank": 0, "attn_out_rank": 0,
                              "ffn_rank": 0, "use_rmsnorm": False},
                    "train": {"lr": 0.01}}
"""d16/ff64 full rank at lr 0.01: larger than the record's models, it learns the task within a few
thousand steps on this project's CPU box (RESULTS.md), so a sweep that finds no success anywhere
points at the machinery, not the configuration."""

_FULL_RANK_FAMILY = {
    "d_model": Choice((7, 8)),
    "d_ff": Choice((14, 28)),
    "pos_rank": Choice((0, 3)),
    "qkv_rank": Choice((0, 3)),
    "attn_out_rank": Choice((0, 3)),
    "ffn_rank": Choice((0, 3)),
    "use_rmsnorm": Choice((False, True)),
    "tie_qkv": "none",
}

DEFAULT = SearchSpace(
    name="default",
    description="d_model, d_ff, the four ranks, norm and lr around the record's configs (and a larger "
                "positive control); 3 seeds a configuration, 10k-step schedule: fits 30 minutes on 2 CPU cores",
    seeds=(0, 1, 2),
    sections={
        "model": {**_FULL_RANK_FAMILY, "d_model": Choice((7, 8, 16)), "d_ff": Choice((14, 28, 64))},
        "train": {"lr": LogUniform(0.006, 0.03), "train_steps": 10_000, "eval_interval": 500,
                  "warmup_steps": 500, "curriculum": ((0, 1, 3), (1000, 1, 6), (3000, 1, 10)), "mode": "fast"},
    },
    points_to_evaluate=(RECORD_FAST_LEARNER, POSITIVE_CONTROL),
)

SMOKE = SearchSpace(
    name="smoke",
    description="a few hundred steps of tiny models: checks the machinery end to end in minutes",
    seeds=(0, 1, 2),
    sections={
        "model": {"d_model": Choice((4, 8)), "d_ff": Choice((8, 28)), "pos_rank": 0, "qkv_rank": 0,
                  "attn_out_rank": 0, "ffn_rank": 0, "use_rmsnorm": Choice((False, True)), "tie_qkv": "none"},
        "train": {"lr": LogUniform(0.006, 0.03), "train_steps": 300, "eval_interval": 100, "warmup_steps": 50,
                  "val_size": 500, "test_size": 500, "curriculum": ((0, 1, 3),), "mode": "fast"},
    },
    points_to_evaluate=({"model": {"d_model": 8, "d_ff": 28, "use_rmsnorm": False}, "train": {"lr": 0.015}},),
)

LOW_RANK = SearchSpace(
    name="lowrank",
    description="the 456p/512p low-rank family: ranks 2-3, LayerNorm/RMSNorm, every Q/K/V tie mode "
                "that factors through shared low-rank maps; the record's 27k-step recipe",
    seeds=(0, 1, 2, 3, 4),
    sections={
        "model": {"d_model": 7, "d_ff": 14, "pos_rank": Choice((2, 3)), "qkv_rank": Choice((2, 3)),
                  "attn_out_rank": Choice((2, 3)), "ffn_rank": Choice((2, 3)), "use_rmsnorm": Choice((False, True)),
                  "tie_qkv": Choice(("none", "shareA", "shareA_tieKV", "shareA_tieQK", "shareB", "shareB_tieKV",
                                     "shareB_tieQK"))},
        "train": {"lr": LogUniform(0.005, 0.04), "train_steps": 27_000, "eval_interval": 1000},
    },
    points_to_evaluate=({"model": {"pos_rank": 3, "qkv_rank": 3, "attn_out_rank": 3, "ffn_rank": 3,
                                   "use_rmsnorm": False, "tie_qkv": "none"}, "train": {"lr": 0.02}},),
)

FULL = SearchSpace(
    name="full",
    description="the record's full recipe (27k steps, reference curriculum, faithful mode) over the "
                "full-rank family with 5 seeds a configuration: for a GPU cluster",
    seeds=(0, 1, 2, 3, 4),
    sections={
        "model": _FULL_RANK_FAMILY,
        "train": {"lr": LogUniform(0.005, 0.03), "train_steps": 27_000, "eval_interval": 1000},
    },
    points_to_evaluate=(RECORD_FAST_LEARNER,),
)

SPACES = {space.name: space for space in (DEFAULT, SMOKE, LOW_RANK, FULL)}
"""Named spaces, selectable with ``SPACE=<name>``."""
