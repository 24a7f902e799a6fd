"""Seed-steps per second: one seed per process (the single-seed trainer) against K stacked seeds.

    python benchmarks/seed_batching.py                         # 512p, batch 512, K = 1, 8, 64, 256, 1024, 4096
    python benchmarks/seed_batching.py --ks 1,8,64,256,1024,4096,8192 --check   # both figures, one run
    python benchmarks/seed_batching.py --device cpu --ks 1,4,16 --steps 10

The single-seed figure is ``steps.StepRunner`` (the single trainer's step: batch, lr, the last block
at the 12 scored positions, backward, clip, foreach AdamW; its loss read back) with the counter stream. Each
stacked K is ``StackedEngine.run`` over K seeds (one CUDA graph per step on a GPU, eager on the
CPU); seed-steps/s = K x steps/s, and the ratio is against the single figure timed in alternation
with it (``--repeats`` rounds, medians). All runs are in the full-length curriculum phase (from step
7000), after ``--warmup`` untimed steps (which include the graph capture). A K that runs out of
memory, or whose timing exceeds ``--max-seconds``, ends the sweep.

``--check`` adds an equivalence check on the device: K = ``--check-seeds`` stacked seeds against
as many single runs with the same counter stream for ``--check-steps`` steps from step 0: initial
weights equal, every batch bit-identical, the step counter and AdamW's step advanced by the graph,
the stacked run deterministic (run twice, same bits), and the loss traces within float32
rounding. Rounding is amplified along a run of this recipe (on CPU, a single 512p run whose initial
weights moved one ulp differs by up to 15% at step 300, RESULTS.md), so the trace is held to
``--check-rtol`` over the first ``--check-early`` steps and, over the whole run, to
``--check-envelope`` times what that one-ulp nudge of the single trainer does on the device. It
prints PASS or FAIL and sets the exit status (1 on FAIL).

Imports only torch, the standard library and ``trainables.addition`` (no Ray, MLflow, tyro, pandas).
The holdout sizes (``--val-size``, ``--test-size``) only change the set-up time: the step looks a
pair up by binary search, whatever the holdout's size.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trainables.addition.config import ModelConfig, TrainConfig  # noqa: E402
from trainables.addition.counter_stream import training_stream  # noqa: E402
from trainables.addition.data import build_holdout  # noqa: E402
from trainables.addition.model import build_model  # noqa: E402
from trainables.addition.stacked_engine import StackedEngine  # noqa: E402
from trainables.addition.steps import StepRunner, make_optimizer  # noqa: E402
from trainables.provenance import device_name  # noqa: E402

START = 7000
"""First timed step: operands of 1-10 digits, as most of a run."""


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _single(model_config: ModelConfig, cfg: TrainConfig, holdout: bool = True, nudge: bool = False
            ) -> Callable[[int, int], list[float]]:
    """The single-seed trainer of ``cfg.seed`` (its holdout excluded from the stream, or none) as
    ``run(start, steps)``: trains steps start .. start + steps - 1, returns each step's loss.
    ``nudge`` moves every initial weight one float32 ulp up: a rounding-sized perturbation."""
    model = build_model(model_config, cfg.seed, cfg.device)
    if nudge:
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(torch.nextafter(p, torch.full_like(p, float("inf"))))
    optimizer = make_optimizer(model, cfg)
    pairs = torch.cat(build_holdout(cfg.seed, cfg.val_size, cfg.test_size)) if holdout else torch.zeros(0, 2)
    stream = training_stream(cfg, set(map(tuple, pairs.long().tolist())))

    runner = StepRunner(model, optimizer, stream, cfg)

    def run(start: int, steps: int) -> list[float]:
        stream.generator.step = start
        return [float(runner(step)) for step in range(start, start + steps)]
    return run


def _seconds(device: str, work: Callable[[], object]) -> float:
    _sync(device)
    began = time.perf_counter()
    work()
    _sync(device)
    return time.perf_counter() - began


def measure(model_config: ModelConfig, cfg: TrainConfig, k: int, args: argparse.Namespace,
            single: Callable[[int, int], list[float]]) -> tuple[list[float], list[float], float, float]:
    """Steps/s of the single-seed trainer ``single`` and of K stacked seeds, timed alternately over
    ``args.repeats`` rounds (so machine noise hits both); also the stacked set-up seconds (engine,
    warm-up, graph capture) and the peak GiB on CUDA."""
    began = time.perf_counter()
    engine = StackedEngine(model_config, cfg, tuple(range(k)), args.step_mode)
    engine.next_step = START
    engine.run(START + args.warmup)
    _sync(cfg.device)
    setup = time.perf_counter() - began
    singles, stacked = [], []
    for _ in range(args.repeats):
        singles.append(args.steps / _seconds(cfg.device, lambda: single(START + args.warmup, args.steps)))
        stacked.append(args.steps / _seconds(cfg.device, lambda: engine.run(engine.next_step + args.steps)))
    peak = torch.cuda.max_memory_allocated() / 2**30 if cfg.device.startswith("cuda") else float("nan")
    return singles, stacked, setup, peak


def _batches_identical(engine: StackedEngine, cfg: TrainConfig, steps: int) -> bool:
    """Every batch of steps 0 .. steps - 1 of every seed of ``engine``: the single trainer's stream's?"""
    streams = [training_stream(dataclasses.replace(cfg, seed=seed), set(map(tuple, torch.cat(
        build_holdout(seed, cfg.val_size, cfg.test_size)).tolist()))) for seed in engine.seeds]
    identical = True
    for step in range(steps):
        stacked_a, stacked_b, held = (t.cpu() for t in engine.batch(torch.tensor([step], device=engine.device)))
        identical &= not bool(held.any())
        for i, stream in enumerate(streams):
            a, b = stream.sample(cfg.batch_size, *cfg.digits_at(step))
            identical &= torch.equal(stacked_a[i], a) and torch.equal(stacked_b[i], b)
    return identical


def _relative(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a - b).abs() / b.abs()


def check(model_config: ModelConfig, cfg: TrainConfig, k: int, steps: int, args: argparse.Namespace) -> bool:
    """Stacked K seeds against K single runs on the device; prints the findings, returns PASS.

    Float32 rounding alone moves a training run: the single trainer started from weights one ulp
    away (``nudge``) is the envelope the stacked run is held to, after ``args.check_early`` steps
    within ``args.check_rtol`` (before the dynamics amplify rounding).
    """
    cfg = dataclasses.replace(cfg, eval_interval=steps)
    engines = [StackedEngine(model_config, cfg, tuple(range(k)), args.step_mode) for _ in range(2)]
    weights = all(torch.equal(engines[0].flat[i].detach().cpu(), torch.nn.utils.parameters_to_vector(
        build_model(model_config, i).parameters()).detach()) for i in range(k))
    batches = _batches_identical(engines[0], cfg, steps)
    alone = torch.tensor([_single(model_config, dataclasses.replace(cfg, seed=i))(0, steps) for i in range(k)]).T
    nudged = torch.tensor([_single(model_config, dataclasses.replace(cfg, seed=i), nudge=True)(0, steps)
                           for i in range(k)]).T
    traces = [engine.run(steps) for engine in engines]
    state = engines[0].optimizer.state[engines[0].flat]
    advanced = int(engines[0].step_t) == steps and float(state["step"]) == steps
    deterministic = torch.equal(traces[0], traces[1])
    stacked, envelope = _relative(traces[0], alone), _relative(nudged, alone)
    early = stacked[:args.check_early].max().item()
    limit = max(args.check_rtol, args.check_envelope * envelope.max().item())
    passed = weights and batches and advanced and deterministic and early <= args.check_rtol \
        and stacked.max().item() <= limit
    print(f"check: K={k} stacked ({engines[0].step_mode}) vs {k} single runs, {steps} steps from step 0:\n"
          f"  initial weights equal: {weights}; batches bit-identical: {batches}; step and AdamW step advanced: "
          f"{advanced}; stacked run deterministic: {deterministic}\n"
          f"  loss relative difference, first {args.check_early} steps: {early:.2e} (tolerance {args.check_rtol:.0e})\n"
          f"  whole trace: {stacked.max().item():.2e}; the single trainer nudged one ulp: "
          f"{envelope.max().item():.2e} (limit {args.check_envelope:g}x that)\n"
          f"  per seed (stacked / nudged): " + ", ".join(
              f"{a:.1e}/{b:.1e}" for a, b in zip(stacked.max(dim=0).values.tolist(), envelope.max(dim=0).values.tolist()))
          + f"\n  {'PASS' if passed else 'FAIL'}")
    return passed


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_device = "cuda" if torch.cuda.is_available() else "cpu"
    parser.add_argument("--device", default=default_device, help=f"torch device (default here: {default_device})")
    parser.add_argument("--ks", default="1,8,64,256,1024,4096", help="comma-separated numbers of stacked seeds")
    parser.add_argument("--steps", type=int, default=50, help="timed steps per measurement")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first (graph capture included)")
    parser.add_argument("--repeats", type=int, default=3, help="alternating rounds of single and stacked timings")
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--d-model", type=int, default=7)
    parser.add_argument("--d-ff", type=int, default=14)
    parser.add_argument("--rank", type=int, default=3, help="pos, qkv, attn-out and ffn rank (0: full)")
    parser.add_argument("--rmsnorm", action="store_true")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--val-size", type=int, default=256)
    parser.add_argument("--test-size", type=int, default=256)
    parser.add_argument("--step-mode", default="auto", choices=("auto", "eager", "sync_free", "graph"))
    parser.add_argument("--max-seconds", type=float, default=120.0, help="stop after a K slower than this")
    parser.add_argument("--check", action="store_true", help="also run the equivalence check (PASS/FAIL)")
    parser.add_argument("--check-seeds", type=int, default=4)
    parser.add_argument("--check-steps", type=int, default=300)
    parser.add_argument("--check-early", type=int, default=25, help="steps held to --check-rtol")
    parser.add_argument("--check-rtol", type=float, default=1e-5, help="relative loss tolerance, early steps")
    parser.add_argument("--check-envelope", type=float, default=3.0,
                        help="whole trace: at most this many times the one-ulp-nudged single run's difference")
    return parser


def main() -> int:
    args = _parser().parse_args()
    torch.set_num_threads(args.threads)
    model_config = ModelConfig(d_model=args.d_model, d_ff=args.d_ff, pos_rank=args.rank, qkv_rank=args.rank,
                               attn_out_rank=args.rank, ffn_rank=args.rank, use_rmsnorm=args.rmsnorm)
    cfg = TrainConfig(seed=0, batch_size=args.batch_size, mode="fast", stream="counter", device=args.device,
                      threads=args.threads, val_size=args.val_size, test_size=args.test_size,
                      eval_interval=max(args.steps, args.warmup))
    params = sum(p.numel() for p in build_model(model_config, 0).parameters())
    print(f"device {args.device} ({device_name(args.device)}), torch {torch.__version__}, {args.threads} thread(s); "
          f"model d{args.d_model}/ff{args.d_ff} rank {args.rank} {'RMSNorm' if args.rmsnorm else 'LayerNorm'} "
          f"({params} params), batch {args.batch_size}, {args.steps} timed steps after {args.warmup}")
    single = _single(model_config, cfg, holdout=False)
    single(START, args.warmup)
    for k in (int(v) for v in args.ks.split(",")):
        try:
            singles, stacked, setup, peak = measure(model_config, cfg, k, args, single)
        except torch.cuda.OutOfMemoryError:
            print(f"stacked K={k}: out of memory; larger K not tried")
            break
        one, rate = statistics.median(singles), statistics.median(stacked)
        print(f"K={k:5d}: single-seed trainer {one:8.1f} seed-steps/s | stacked {rate:8.3g} steps/s = "
              f"{k * rate:10.1f} seed-steps/s | ratio {k * rate / one:7.2f}x  (median of {args.repeats}; "
              f"set-up {setup:.1f} s; peak {peak:.2f} GiB)", flush=True)
        if args.steps / rate > args.max_seconds:
            print(f"K={k} took {args.steps / rate:.0f} s > --max-seconds {args.max_seconds:.0f}; larger K not tried")
            break
        if args.device.startswith("cuda"):
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
    if args.check:
        return 0 if check(model_config, cfg, args.check_seeds, args.check_steps, args) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
