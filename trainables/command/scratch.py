"""The temporary folder of one command run, removed when the run ends, and by the next run on the machine
when the process that made it was killed before it could remove it (issue 20, item 7).

A Ctrl-C of a job, or a trial process killed hard, ends the trial's process without running its cleanup:
its folder (``{out_dir}`` of the command, checkpoints included) stayed in the temporary directory. Each
folder is named after the process that owns it (``reprotune-command-<pid>-<random>``); a run starting on
the same machine removes every such folder whose owner is no longer running.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

PREFIX = "reprotune-command-"
"""Name prefix of a run's temporary folder; the owner's process id follows it."""


def _running(pid: int) -> bool:
    """Whether a process ``pid`` runs on this machine (one of another user's counts as running)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_orphans(folder: str | Path | None = None) -> list[Path]:
    """Remove the run folders in ``folder`` (default: the temporary directory) whose owner process has
    ended; returns those removed. A folder that cannot be removed (another user's) is left."""
    removed = []
    for path in Path(folder or tempfile.gettempdir()).glob(f"{PREFIX}*"):
        owner = path.name[len(PREFIX):].split("-", 1)[0]
        if path.is_dir() and owner.isdigit() and not _running(int(owner)):
            shutil.rmtree(path, ignore_errors=True)
            if not path.exists():
                removed.append(path)
    return removed


@contextmanager
def run_folder() -> Iterator[str]:
    """A new temporary folder for one command run, removed at the end of the ``with`` block; the folders
    of runs whose process was killed are removed first (``remove_orphans``)."""
    remove_orphans()
    with tempfile.TemporaryDirectory(prefix=f"{PREFIX}{os.getpid()}-") as folder:
        yield folder
