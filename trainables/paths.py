"""Where the project and the shared material beside it live: the one place that computes them.

The checkout is ``PROJECT_ROOT``; the public record and corpora are read from ``../shared`` beside
it (never copied into the project), each overridable by an environment variable.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
"""The project checkout (the folder holding pyproject.toml)."""
SHARED_DIR_ENV = "REPROTUNE_SHARED_DIR"
"""Environment variable naming the shared folder; default ``<project>/../shared``."""


def shared_dir() -> Path:
    """The shared folder beside the checkout (reference/, data/): $REPROTUNE_SHARED_DIR or ``../shared``."""
    return Path(os.environ.get(SHARED_DIR_ENV, PROJECT_ROOT.parent / "shared")).resolve()


def cache_dir(name: str) -> Path:
    """``<project>/.cache/<name>``: caches a run may rebuild (tokenizers, compiled kernels)."""
    return PROJECT_ROOT / ".cache" / name
