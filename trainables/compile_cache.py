"""Where Inductor (``torch.compile``'s CPU/GPU backend) keeps its on-disk cache: the project's
``.cache/inductor`` unless the user chose a folder (no Ray, no MLflow)."""

from __future__ import annotations

import os
from pathlib import Path

from trainables import paths

COMPILE_CACHE_ENV = "TORCHINDUCTOR_CACHE_DIR"
"""Inductor's on-disk cache folder; ``use_project_compile_cache`` sets it unless the user did."""
COMPILE_CACHE_DIR = paths.cache_dir("inductor")
"""Default cache folder: ``<project>/.cache/inductor`` (absolute, so Ray workers share it)."""
_USER_CACHE_DIR = os.environ.get(COMPILE_CACHE_ENV)
"""``$TORCHINDUCTOR_CACHE_DIR`` at import, before Inductor (loaded lazily, later) can write its default."""


def use_project_compile_cache() -> Path:
    """Point Inductor's on-disk cache at ``COMPILE_CACHE_DIR`` unless the user set
    ``$TORCHINDUCTOR_CACHE_DIR`` (before this module was imported); returns the folder in use.
    Inductor reads the variable at every cache access, and writes its own default (a folder in /tmp)
    into it when it first loads, so the value found at import time is what tells the user's apart."""
    if not _USER_CACHE_DIR:
        os.environ[COMPILE_CACHE_ENV] = str(COMPILE_CACHE_DIR)
    return Path(os.environ[COMPILE_CACHE_ENV])
