"""Training throughput of two trainable modes on the same config, in one run, with their ratio.

    .venv/bin/python benchmarks/train_modes.py                      # faithful vs fast, d8/ff28
    .venv/bin/python benchmarks/train_modes.py --b compile          # fast vs fast + torch.compile

Each mode trains ``--steps`` steps (after ``--warmup`` untimed steps, which include any compile)
from the same seed in the full-length curriculum phase; the modes alternate over ``--repeats``
rounds so that machine noise hits both, and the median steps/s of each is compared.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from trainables.addition.config import ModelConfig, TrainConfig
from trainables.addition.data import TrainingStream
from trainables.addition.model import build_model
from trainables.addition.train import train_step

MODES = {
    "faithful": {"mode": "faithful", "compile": False},
    "fast": {"mode": "fast", "compile": False},
    "compile": {"mode": "fast", "compile": True},
}


def steps_per_second(model_config: ModelConfig, name: str, steps: int, warmup: int, threads: int) -> float:
    """Steps/s of one mode over ``steps`` timed steps, from the phase of 1-10 digit operands."""
    torch.set_num_threads(threads)
    config = TrainConfig(seed=0, threads=threads, **MODES[name])
    model = build_model(model_config, 0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    stream = TrainingStream(0, set(), config.mode)
    forward = torch.compile(model) if config.compile else model
    start_step = 7000  # full-length operands, as most of a run
    for step in range(start_step, start_step + warmup):
        train_step(forward, optimizer, stream, config, step)
    began = time.perf_counter()
    for step in range(start_step + warmup, start_step + warmup + steps):
        train_step(forward, optimizer, stream, config, step)
    return steps / (time.perf_counter() - began)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--a", choices=MODES, default="faithful")
    parser.add_argument("--b", choices=MODES, default="fast")
    parser.add_argument("--d-model", type=int, default=8)
    parser.add_argument("--d-ff", type=int, default=28)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    model_config = ModelConfig(d_model=args.d_model, d_ff=args.d_ff)
    results: dict[str, list[float]] = {args.a: [], args.b: []}
    for _ in range(args.repeats):
        for name in (args.a, args.b):
            results[name].append(steps_per_second(model_config, name, args.steps, args.warmup, args.threads))
    a, b = statistics.median(results[args.a]), statistics.median(results[args.b])
    print(f"config d_model={args.d_model} d_ff={args.d_ff}, batch 512, {args.threads} thread(s), "
          f"{args.steps} timed steps x {args.repeats} rounds")
    for name in (args.a, args.b):
        print(f"  {name:9s} median {statistics.median(results[name]):6.1f} steps/s  "
              f"(rounds: {', '.join(f'{v:.1f}' for v in results[name])})")
    print(f"ratio {args.b}/{args.a}: {b / a:.2f}x")


if __name__ == "__main__":
    main()
