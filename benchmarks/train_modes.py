"""Training throughput of the trainable's modes on the record's configurations, in one run, with the ratio.

    .venv/bin/python benchmarks/train_modes.py --config 512p            # faithful, fast-eager, fast
    .venv/bin/python benchmarks/train_modes.py --config 1128p --profile # + where a step's time goes
    .venv/bin/python benchmarks/train_modes.py --fresh-cache            # the cold compile time too

Modes: ``faithful`` (TrainConfig mode 'faithful'), ``fast-eager`` (mode 'fast', compile off: the
last block at the scored positions, foreach AdamW) and ``fast`` (mode 'fast' with compile: the
whole step compiled). Each is the ``StepRunner`` that ``train()`` uses (data sampling included),
built once (its compile time is printed), warmed up, then timed over ``--steps`` steps per round
from step 7000 (full-length operands, as most of a run), the modes alternating over ``--rounds``
rounds so that machine noise hits all; the medians are compared. The last line is
``ratio fast/faithful: N.NNx``.

Configurations are the record's (``claims/addition/*.toml``, ``shared/reference/addition.md``
section 6): 512p, 456p, 582p, and 1128p (d8/ff28 full rank).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import tomllib
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
if "--fresh-cache" in sys.argv:  # before the trainable is imported: it keeps a cache folder set by then
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="inductor-cold-")

from benchmarks.step_profile import enable_kernel_events, print_profiles  # noqa: E402

from trainables.addition.config import ModelConfig, TrainConfig  # noqa: E402
from trainables.addition.data import TrainingStream  # noqa: E402
from trainables.addition.model import build_model  # noqa: E402
from trainables.addition.steps import StepRunner, make_optimizer  # noqa: E402

CONFIG_CLAIMS = {"512p": "512p-s42", "456p": "456p-s43", "582p": "582p-s42", "1128p": "d8ff28-lr0.015"}
"""Benchmark configuration -> the claim file whose [model] section it uses."""
MODES = {
    "faithful": {"mode": "faithful", "compile": False},
    "fast-eager": {"mode": "fast", "compile": False},
    "fast": {"mode": "fast", "compile": True},
}
START_STEP = 7000
"""First timed step: the curriculum's 1-10 digit phase."""


def claim_model(name: str) -> ModelConfig:
    """The model fields of configuration ``name`` from its claim file."""
    claim = tomllib.loads((ROOT / "claims" / "addition" / f"{CONFIG_CLAIMS[name]}.toml").read_text())
    return ModelConfig(**claim["model"])


def build_runner(model_config: ModelConfig, mode: str, threads: int, batch_size: int) -> StepRunner:
    """The runner of ``mode`` on a fresh model, its first step (and any compile) taken."""
    config = TrainConfig(seed=0, threads=threads, batch_size=batch_size, **MODES[mode])
    model = build_model(model_config, 0)
    runner = StepRunner(model, make_optimizer(model, config), TrainingStream(0, set(), config.mode), config)
    runner(START_STEP).item()
    return runner


def steps_per_second(runner: StepRunner, first: int, steps: int) -> float:
    """Steps/s of ``steps`` steps from ``first`` (the losses read once at the end, as train() does)."""
    began = time.perf_counter()
    losses = [runner(step) for step in range(first, first + steps)]
    torch.stack(losses).tolist()
    return steps / (time.perf_counter() - began)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", choices=CONFIG_CLAIMS, default="512p")
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--steps", type=int, default=200, help="timed steps per mode and round")
    parser.add_argument("--warmup", type=int, default=20, help="untimed steps per mode before the rounds")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--fresh-cache", action="store_true",
                        help="compile into an empty temporary Inductor cache (measures the cold compile)")
    parser.add_argument("--profile", action="store_true", help="print where a step's time goes in each mode")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model_config = claim_model(args.config)
    if args.profile:
        enable_kernel_events()
    runners = {}
    for mode in args.modes:
        runners[mode] = build_runner(model_config, mode, args.threads, args.batch_size)
        if runners[mode].compile_seconds is not None:
            print(f"{mode}: compiled in {runners[mode].compile_seconds:.1f} s ({runners[mode].kind}; cache "
                  f"{os.environ.get('TORCHINDUCTOR_CACHE_DIR')})", flush=True)
        steps_per_second(runners[mode], START_STEP + 1, args.warmup)
    results: dict[str, list[float]] = {mode: [] for mode in args.modes}
    first = START_STEP + 1 + args.warmup
    for _ in range(args.rounds):
        for mode in args.modes:
            results[mode].append(steps_per_second(runners[mode], first, args.steps))
        first += args.steps
    if args.profile:
        print_profiles(runners, first, model_config, args.batch_size)
    print(f"config {args.config} ({build_model(model_config, 0).num_parameters()} parameters: {model_config}), "
          f"batch {args.batch_size}, {args.threads} thread(s), {args.steps} timed steps x {args.rounds} rounds, "
          f"torch {torch.__version__}")
    for mode in args.modes:
        print(f"  {mode:10s} median {statistics.median(results[mode]):6.1f} steps/s  "
              f"(rounds: {', '.join(f'{v:.1f}' for v in results[mode])})")
    medians = {mode: statistics.median(values) for mode, values in results.items()}
    if "fast-eager" in medians and "faithful" in medians:
        print(f"ratio fast-eager/faithful: {medians['fast-eager'] / medians['faithful']:.2f}x")
    if "fast" in medians and "faithful" in medians:
        print(f"ratio fast/faithful: {medians['fast'] / medians['faithful']:.2f}x")


if __name__ == "__main__":
    main()
