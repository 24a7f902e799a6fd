"""The local cluster's processes: found by their marker variable or temp dir in ``/proc``, and stopped."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from tune_jobs.cluster.nodes import MARKER_VAR

def _proc_text(pid: int, name: str) -> str:
    """``/proc/<pid>/<name>`` with NULs as spaces; "" when the process is gone or unreadable."""
    try:
        return Path(f"/proc/{pid}/{name}").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, reaped or not, counts as dead)."""
    stat = _proc_text(pid, "stat")
    return bool(stat) and stat.rsplit(")", 1)[-1].split()[0] != "Z"


def node_processes(temp_dir: Path, marker_var: str = MARKER_VAR) -> list[int]:
    """Pids of the live processes of the Ray whose temp dir is ``temp_dir``: those whose environment sets
    ``marker_var`` to it (everything ``ray start`` and the raylet spawn inherits our marker; a driver's
    local Ray inherits its ``RAY_TMPDIR``), and Ray processes (``ray::*`` or a program under the ray
    package) whose command line names ``temp_dir``. Linux ``/proc``."""
    marker, found = f" {marker_var}={temp_dir} ", []
    for pid in (int(d) for d in os.listdir("/proc") if d.isdigit()):
        if pid == os.getpid() or not _alive(pid):
            continue
        argv = _proc_text(pid, "cmdline").split(" ")
        ray_program = argv[0].startswith("ray::") or any(f"{os.sep}ray{os.sep}" in arg for arg in argv[:2])
        if marker in " " + _proc_text(pid, "environ") or (ray_program and str(temp_dir) in " ".join(argv)):
            found.append(pid)
    return found


def stop_processes(pids: list[int], grace_s: float) -> None:
    """SIGTERM ``pids``, then SIGKILL what is left after ``grace_s`` seconds (``grace_s`` 0: SIGKILL now)."""
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5)) if grace_s else ((signal.SIGKILL, 5),):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait_s
        while (pids := [p for p in pids if _alive(p)]) and time.monotonic() < deadline:
            time.sleep(0.2)
        if not pids:
            return
