"""What produced a run: code version, packages, device and thread count.

The public record shows that a seed names a result only together with the code, the device and
the thread count, so every run records these (``shared/reference/addition.md`` section 6).
"""

from __future__ import annotations

import platform
import subprocess
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Mapping

import torch

from trainables.paths import PROJECT_ROOT



@lru_cache(maxsize=1)
def git_state(root: str = str(PROJECT_ROOT)) -> tuple[str, bool]:
    """(commit sha, dirty flag) of the project checkout; ('unknown', False) outside git."""
    try:
        sha = subprocess.run(["git", "-C", root, "rev-parse", "HEAD"], capture_output=True, text=True,
                             check=True, timeout=10).stdout.strip()
        status = subprocess.run(["git", "-C", root, "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, check=True, timeout=10).stdout
        return sha, bool(status.strip())
    except (OSError, subprocess.SubprocessError):
        return "unknown", False


@lru_cache(maxsize=1)
def cpu_fields() -> Mapping[str, str]:
    """/proc/cpuinfo's fields, each at its first occurrence (``model name``, ``vendor_id``, ``cpu family``,
    ``model``, ...), read once per process (read-only); empty where the file cannot be read (not Linux)."""
    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return MappingProxyType(fields)


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, else ``platform.processor()``."""
    return cpu_fields().get("model name") or platform.processor() or "unknown"


def device_name(device: str) -> str:
    """Human name of a torch device: the GPU's name for CUDA, the CPU model otherwise."""
    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    return cpu_model()


def cpu_kind() -> tuple[str, str, str]:
    """(vendor id, ``family/model`` from /proc/cpuinfo, ATen's CPU capability, e.g. AVX2 or AVX512):
    CPUs sharing a model name ("AMD EPYC") differ in these, and so do their float results."""
    fields = cpu_fields()
    return (fields.get("vendor_id", "unknown"), f"{fields.get('cpu family', '?')}/{fields.get('model', '?')}",
            torch.backends.cpu.get_cpu_capability())


def device_kind(device: str) -> str:
    """The device as far as float results go: a CUDA GPU's compute capability ('sm_90'); for the CPU its
    vendor, family/model and ATen capability ('AuthenticAMD 25/1 AVX2', ``cpu_kind``). Two runs of one
    seed on one kind and thread count should agree bit for bit; across kinds they need not."""
    if device.startswith("cuda") and torch.cuda.is_available():
        major, minor = torch.cuda.get_device_capability(torch.device(device))
        return f"sm_{major}{minor}"
    return " ".join(cpu_kind())


def provenance(device: str, threads: int) -> dict[str, str]:
    """Flat string dict describing the environment of a run (for tags and checkpoints)."""
    sha, dirty = git_state()
    return {
        "git_commit": sha,
        "git_dirty": str(dirty).lower(),
        "torch_version": str(torch.__version__),
        "python_version": platform.python_version(),
        "device": device,
        "device_name": device_name(device),
        "device_kind": device_kind(device),
        "threads": str(threads),
        "hostname": platform.node(),
    }
