"""What produced a run: code version, packages, device and thread count.

The public record shows that a seed names a result only together with the code, the device and
the thread count, so every run records these (``shared/reference/addition.md`` section 6).
"""

from __future__ import annotations

import platform
import subprocess
from functools import lru_cache
from pathlib import Path

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


def cpu_fields() -> dict[str, str]:
    """/proc/cpuinfo's fields, each at its first occurrence (``model name``, ``vendor_id``, ``cpu family``,
    ``model``, ...); empty where the file cannot be read (not Linux)."""
    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return fields


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, else ``platform.processor()``."""
    return cpu_fields().get("model name") or platform.processor() or "unknown"


def device_name(device: str) -> str:
    """Human name of a torch device: the GPU's name for CUDA, the CPU model otherwise."""
    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    return cpu_model()


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
        "threads": str(threads),
        "hostname": platform.node(),
    }
