"""Search spaces of the tokenizer-vocabulary sweep, as data.

Roles (google-research/tuning_playbook): the vocabulary size is the *scientific* parameter;
d_model and the learning rate are *nuisance* parameters searched alongside so that each vocabulary
is judged near its own best model; the rest is fixed. Fields are those of
``trainables.lm.config`` (sections model, train, data, tokenizer, generation, audit). Seeds are
replicates: every suggested configuration runs on each.
"""

from __future__ import annotations

from search_spaces.dimensions import Choice, IntRange, LogUniform, SearchSpace

_FIXED_MODEL = {"n_layer": 2, "n_head": 4, "context_length": 128, "ffn_mult": 4, "dropout": 0.0, "gate": "none"}

DEFAULT = SearchSpace(
    name="default",
    description="byte-level BPE vocabulary 320-4096 (log scale), d_model 64/128, lr 1e-3-1e-2 on 2 MB of the "
                "stdlib; 3 seeds a configuration, 4 configurations: fits 30 minutes on 2 CPU cores",
    seeds=(0, 1, 2),
    sections={
        "tokenizer": {"algorithm": "byte_bpe", "vocab_size": IntRange(320, 4096, log=True)},
        "model": {"d_model": Choice((64, 128)), **_FIXED_MODEL},
        "train": {"lr": LogUniform(1e-3, 1e-2), "train_steps": 400, "eval_interval": 100, "warmup_steps": 40,
                  "batch_size": 16, "eval_bytes": 65_536},
        "data": {"corpus": "stdlib", "max_bytes": 2_000_000},
    },
    points_to_evaluate=({"tokenizer": {"vocab_size": 1024}, "model": {"d_model": 128}, "train": {"lr": 3e-3}},),
)

SMOKE = SearchSpace(
    name="smoke",
    description="tiny models on 200 kB of the stdlib for a few dozen steps: checks the machinery in minutes",
    seeds=(0, 1, 2),
    sections={
        "tokenizer": {"algorithm": "byte_bpe", "vocab_size": IntRange(300, 600, log=True)},
        "model": {"d_model": 32, "n_layer": 1, "n_head": 2, "context_length": 32, "gate": "glu"},
        "train": {"lr": LogUniform(3e-3, 1e-2), "train_steps": 30, "eval_interval": 10, "warmup_steps": 5,
                  "batch_size": 4, "eval_bytes": 4096},
        "data": {"corpus": "stdlib", "max_bytes": 200_000},
        "generation": {"num_prompts": 2, "max_new_tokens": 8},
    },
    points_to_evaluate=({"tokenizer": {"vocab_size": 400}, "train": {"lr": 5e-3}},),
)

SPACES = {space.name: space for space in (DEFAULT, SMOKE)}
"""Named spaces of ``make sweep-vocab``, selectable with ``SPACE=<name>``."""
