"""Command line of the language-model trainable, without Ray or MLflow.

    python -m trainables.lm --data.corpus en --tokenizer.vocab-size 1024 --train.train-steps 300 --out-dir runs/en

Prints the metrics of every evaluation as one JSON line (strings and numbers), then the audit
flags, the ablation audit's bits per byte (a model with a gated memory) and the completions of the
generation check (the ablated models' labelled with their ablation).
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import tyro

from trainables.lm.config import SECTIONS, ConfigError, LMRun
from trainables.lm.train import MODEL_FILE, train
from trainables.torch_checks import check_local_run


@dataclass(frozen=True)
class Args(LMRun):
    """Train one small language model and print what it measured."""

    out_dir: Optional[Path] = None
    """Folder for model.pt, tokenizer.json, completions.json and run.json (none written if omitted)."""
    checkpoint_interval: int = 0
    """Write the resumable model.pt every this many steps (a multiple of eval_interval; 0: at the end only)."""
    resume: bool = False
    """Continue the run whose model.pt is in out_dir (same settings and corpus)."""


def _printable(metrics: dict) -> dict:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in metrics.items()}


def main(argv: list[str] | None = None) -> int:
    """Exit 0 on success, 2 with one line ``error: ...`` for a user error (an impossible config value
    is refused by tyro's parser, which prints its box naming the field and the value, also exit 2)."""
    args = tyro.cli(Args, args=argv)
    run = LMRun(**{name: getattr(args, name) for name in SECTIONS})
    try:
        check_local_run(args.train.device, args.resume, args.out_dir, MODEL_FILE)
        result = train(run, args.out_dir, lambda metrics, _folder: print(json.dumps(_printable(metrics)), flush=True),
                       checkpoint_interval=args.checkpoint_interval,
                       resume_from=args.out_dir if args.resume else None)
    except (ConfigError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print("audit flags:", json.dumps(result.flags, indent=1) if result.flags else "none")
    if result.ablations:
        print("ablations (validation bits per byte):", json.dumps(result.ablations, indent=1))
    for row in result.completions:
        ablated = "" if row.get("ablation", "none") == "none" else f" {row['ablation']}"
        print(f"[{row['mode']}{ablated}{' COLLAPSED' if row['collapsed'] else ''}] {row['prompt']!r} -> "
              f"{row['completion']!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
