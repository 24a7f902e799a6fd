"""Command line of the addition trainable, without Ray or MLflow.

    python -m trainables.addition train --model.d-model 8 --model.d-ff 28 --train.lr 0.015 --out-dir runs/x \
        --checkpoint-interval 1000          # after an interruption, the same command with --resume
    python -m trainables.addition evaluate --checkpoint 456p_s43 --protocol 100k

``--checkpoint`` takes a path or a published checkpoint's short name (456p_s43, 512p), read from
``$REPROTUNE_REFERENCE_DIR/checkpoints`` (default ``../shared/reference/checkpoints``).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional

import torch
import tyro

from trainables.addition.checkpoint import REFERENCE_CHECKPOINTS, load_checkpoint, reference_checkpoint_path
from trainables.addition.config import ConfigError, ModelConfig, TrainConfig
from trainables.addition.evaluate import PROTOCOLS
from trainables.addition.train import LAST_CHECKPOINT, train
from trainables.checks import is_int
from trainables.torch_checks import check_local_run


@dataclass(frozen=True)
class Train:
    """Train one model and print its metrics at every evaluation as JSON lines."""

    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    out_dir: Optional[Path] = None
    """Folder for best.pt and last.pt (none written if omitted)."""
    log_every: int = 0
    """Print the training loss every this many steps (0: never)."""
    checkpoint_interval: int = 0
    """Write the resumable last.pt every this many steps (a multiple of eval_interval; 0: at the end only)."""
    resume: bool = False
    """Continue the run whose last.pt is in out_dir (same configs), bit-identical to one never stopped."""


@dataclass(frozen=True)
class Evaluate:
    """Score a checkpoint on a published protocol and print the result as JSON."""

    checkpoint: str
    """Checkpoint path, or a published one's short name: 456p_s43 or 512p."""
    protocol: Literal["100k", "adderboard", "both"] = "both"
    """100k: the reference's 10 x 10,000 held-out pairs; adderboard: AdderBoard's verify.py pairs."""
    threads: int = 1
    """torch intra-op threads."""
    batch_size: int = 512
    """Sequences per forward pass."""

    def check(self) -> None:
        """Refuse impossible values (after parsing, so that the message is one line).

        Raises:
            ConfigError: names the option and the value.
        """
        for option, value in (("--threads", self.threads), ("--batch-size", self.batch_size)):
            if not (is_int(value) and value >= 1):
                raise ConfigError(f"{option} must be an integer >= 1, got {value!r}")


def resolve_checkpoint(name: str) -> Path:
    """A path as given, or the published checkpoint of that short name."""
    return reference_checkpoint_path(name) if name in REFERENCE_CHECKPOINTS else Path(name)


def evaluate_command(args: Evaluate) -> dict:
    """Run the chosen protocol(s) on a checkpoint; returns the JSON-ready result."""
    torch.set_num_threads(args.threads)
    loaded = load_checkpoint(resolve_checkpoint(args.checkpoint))
    names = list(PROTOCOLS) if args.protocol == "both" else [args.protocol]
    result = {"checkpoint": args.checkpoint, "params": loaded.model.num_parameters(), "step": loaded.step}
    for name in names:
        outcome = PROTOCOLS[name](loaded.model, args.batch_size)
        result[name] = {"passed": outcome.passed, "total": outcome.total, "errors": outcome.errors,
                        "exact_match": outcome.exact_match, "qualified": outcome.qualified,
                        **({"errors_by_seed": outcome.errors_by_seed} if outcome.errors_by_seed else {})}
    return result


def train_command(args: Train) -> dict:
    """Train as ``args`` say, printing each evaluation's metrics; returns the JSON-ready summary.

    Raises:
        ConfigError: ``--resume`` without ``--out-dir``, CUDA asked for without a GPU, a last.pt that
            does not load (checked before any work).
        ValueError, FileNotFoundError: what ``train`` refuses (a last.pt of other configs, none at all).
    """
    check_local_run(args.train.device, args.resume, args.out_dir, LAST_CHECKPOINT)
    result = train(args.model, args.train, args.out_dir, log_every=args.log_every,
                   report=lambda metrics, _: print(json.dumps(metrics), flush=True),
                   checkpoint_interval=args.checkpoint_interval, resume_from=args.out_dir if args.resume else None)
    return {"best_val_exact_match": result.best_val_exact_match, "best_step": result.best_step,
            "test_exact_match": result.test_exact_match}


def main(argv: list[str] | None = None) -> int:
    """Exit 0 on success; 2 with one line ``error: ...`` for a user error (an impossible option of a
    config is refused by tyro's parser, which prints its box naming the field and the value, also exit 2)."""
    try:
        args = tyro.extras.subcommand_cli_from_dict({"train": Train, "evaluate": Evaluate}, args=argv)
        if isinstance(args, Evaluate):
            args.check()
            print(json.dumps(evaluate_command(args), indent=2))
        else:
            print(json.dumps(train_command(args)))
    except (ValueError, FileNotFoundError) as error:  # ConfigError (CheckpointError too) is a ValueError
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
