"""Shared fixtures: the published checkpoints (skipped with a reason when absent) and one thread."""

from __future__ import annotations

import pytest
import torch

from trainables.addition.checkpoint import REFERENCE_CHECKPOINTS, reference_checkpoint_path


@pytest.fixture(autouse=True)
def one_thread():
    """Tests run with one intra-op thread, like the trials (results depend on the count)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(params=sorted(REFERENCE_CHECKPOINTS))
def reference_checkpoint(request):
    """Path of each published checkpoint; skips when ../shared/reference/checkpoints is absent."""
    path = reference_checkpoint_path(request.param)
    if not path.is_file():
        pytest.skip(f"published checkpoint {path} is absent (set REPROTUNE_REFERENCE_DIR to its folder)")
    return request.param, path
