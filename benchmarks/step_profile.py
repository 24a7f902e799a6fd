"""Where a training step's time goes, per mode: data sampling, forward, backward, optimizer, and the rest
(Python and dispatch overhead), measured with ``torch.profiler``; and the step's FLOP count.

Eager modes label their phases (``trainables/addition/steps.py``: forward, backward, optimizer, the
last including clipping). A compiled step is one graph, so its time is split into Inductor's fused
C++ kernels (named after the operations they fuse; the benchmark turns on their profiler events),
the matrix products it hands to the BLAS library (forward and backward together), and what is
left of the step's wall time (guards, the Python wrapper, allocation).
"""

from __future__ import annotations

import time
from collections import defaultdict

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode

from trainables.addition.config import ModelConfig
from trainables.addition.data import IGNORE_INDEX, encode, inputs_and_targets
from trainables.addition.losses import scored_loss
from trainables.addition.model import build_model
from trainables.addition.steps import StepRunner

PROFILED_STEPS = 50
EAGER_PHASES = ("forward", "backward", "optimizer")
MATMULS = ("aten::mm", "aten::bmm", "aten::addmm", "aten::baddbmm")


def enable_kernel_events() -> None:
    """Make Inductor's generated kernels emit profiler events (before compiling; a separate cache entry)."""
    torch._inductor.config.cpp.enable_kernel_profile = True


def step_mflop(model_config: ModelConfig, batch_size: int, scored_only: bool) -> float:
    """MFLOP of one forward + backward (matrix products, as ``FlopCounterMode`` counts them), of the
    fast step (``scored_only``) or of the full sequence (faithful)."""
    model = build_model(model_config, 0)
    a = torch.randint(0, 10**10, (batch_size,))
    x, y = inputs_and_targets(encode(a, a.flip(0)))
    with FlopCounterMode(display=False) as counter:
        if scored_only:
            loss = scored_loss(model, x, y)
        else:
            loss = F.cross_entropy(model(x).reshape(-1, 14), y.reshape(-1), ignore_index=IGNORE_INDEX)
        loss.backward()
    return counter.get_total_flops() / 1e6


def _profiled(runner: StepRunner, first: int) -> tuple[profile, float]:
    """The profiler's record of ``PROFILED_STEPS`` updates (batches sampled beforehand) and their
    wall milliseconds per step under the profiler."""
    batches = [runner.stream.sample(runner.cfg.batch_size, 1, 10) for _ in range(PROFILED_STEPS)]
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        began = time.perf_counter()
        losses = [runner.update(a, b, first + i) for i, (a, b) in enumerate(batches)]
        torch.stack(losses).tolist()
        wall = (time.perf_counter() - began) * 1e3 / PROFILED_STEPS
    return prof, wall


def _phases(prof: profile, compiled: bool) -> dict[str, float]:
    """Milliseconds per step by phase: the eager step's labels, or a compiled step's kernel kinds."""
    times: dict[str, float] = defaultdict(float)
    for event in prof.key_averages():
        if not compiled and event.key in EAGER_PHASES:
            times[event.key] += event.cpu_time_total / 1e3 / PROFILED_STEPS
        elif compiled and "cpp_fused" in event.key:
            times["fused kernels"] += event.self_cpu_time_total / 1e3 / PROFILED_STEPS
        elif compiled and event.key in MATMULS:
            times["matmuls (BLAS)"] += event.self_cpu_time_total / 1e3 / PROFILED_STEPS
    return dict(times)


def _top_kernels(prof: profile, count: int = 8) -> list[tuple[str, float]]:
    events = [e for e in prof.key_averages() if "cpp_fused" in e.key or e.key in MATMULS]
    events.sort(key=lambda e: -e.self_cpu_time_total)
    return [(e.key, e.self_cpu_time_total / 1e3 / PROFILED_STEPS) for e in events[:count]]


def _sampling_ms(runner: StepRunner) -> float:
    began = time.perf_counter()
    for _ in range(PROFILED_STEPS):
        runner.stream.sample(runner.cfg.batch_size, 1, 10)
    return (time.perf_counter() - began) * 1e3 / PROFILED_STEPS


def print_profiles(runners: dict[str, StepRunner], first: int, model_config: ModelConfig, batch_size: int) -> None:
    """Print, for each mode, milliseconds per step by phase, and the FLOP floor of a step."""
    full, scored = step_mflop(model_config, batch_size, False), step_mflop(model_config, batch_size, True)
    print(f"profile ({PROFILED_STEPS} steps per mode; ms per step). Matrix products of a forward+backward at "
          f"batch {batch_size}: {full:.1f} MFLOP on the full sequence, {scored:.1f} MFLOP with the last block "
          f"at the scored positions:")
    for mode, runner in runners.items():
        mflop = full if runner.cfg.mode == "faithful" else scored
        sampling = _sampling_ms(runner)
        prof, wall = _profiled(runner, first)
        phases = _phases(prof, runner.compiled is not None)
        parts = ", ".join(f"{name} {ms:.2f}" for name, ms in phases.items())
        total = sampling + wall
        print(f"  {mode:10s} {total:6.2f} ms = data sampling {sampling:.2f} + step {wall:.2f} ({parts}, "
              f"Python/dispatch/other {wall - sum(phases.values()):.2f}); {mflop / total:.1f} GFLOP/s")
        if runner.compiled is not None:
            for name, ms in _top_kernels(prof):
                print(f"      {ms:6.3f} ms  {name[:110]}")
