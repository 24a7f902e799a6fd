"""What a command run may count and leave behind (issue 20): metrics written by this run inside its folder,
no process outliving its run, a bounded output tail."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from trainables.command import BadMetrics, CommandFailed, load_command_spec, run_command
from trainables.command.runner import TAIL_LINE_CHARS
from trainables.command.scratch import PREFIX, run_folder
from trainables.paths import PROJECT_ROOT


def job(tmp_path: Path, command: str, metrics: str = "file = '{out_dir}/metrics.csv'", params: str = "") -> Path:
    path = tmp_path / "job.toml"
    path.write_text(f"name = 'bounds'\nworkdir = {json.dumps(str(tmp_path))}\ncommand = {json.dumps(command)}\n"
                    f"timeout_s = 30\n[metrics]\n{metrics}\n[params]\n{params}\n")
    return path


def old_csv(tmp_path: Path) -> Path:
    old = tmp_path / "old.csv"
    old.write_text("step,val_exact\n0,1.0\n100,1.0\n")
    return old


def test_a_metrics_file_outside_the_run_folder_fails_before_the_command_runs(tmp_path):
    old = old_csv(tmp_path)
    for metrics, params in ((f"file = {json.dumps(str(old))}", ""), ("file = '{out_dir}/../old.csv'", ""),
                            ("file = '{where}'", f"where = {json.dumps(str(old))}")):
        spec = load_command_spec(job(tmp_path, "{python} -c 'open(\"ran\", \"w\")' {out_dir} {where}", metrics,
                                     params or "where = 'x'"))
        with pytest.raises(BadMetrics, match=f"metrics file '{old}' lies outside the run's folder"):
            run_command(spec, {}, tmp_path / "run", poll_s=0.01)
        assert not (tmp_path / "ran").exists()


def test_rows_already_in_the_metrics_file_are_not_this_runs(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "metrics.csv").write_text("step,val_exact\n0,1.0\n100,1.0\n")
    spec = load_command_spec(job(tmp_path, "{python} -c pass {out_dir}"))
    assert run_command(spec, {}, out, poll_s=0.01).history == []  # the command wrote nothing: nothing counts
    grows = ("{python} -c 'import sys; open(sys.argv[1] + \"/metrics.csv\", \"a\").write(\"200,0.5\\n\")' {out_dir}")
    spec = load_command_spec(job(tmp_path, grows))
    assert [row["step"] for row in run_command(spec, {}, out, poll_s=0.01).history] == [200.0]
    rewrites = ("{python} -c 'import sys; open(sys.argv[1] + \"/metrics.csv\", \"w\").write(\"step,val_exact\\n7,0.25\\n\")' "
                "{out_dir}")
    spec = load_command_spec(job(tmp_path, rewrites))
    assert [(r["step"], r["val_exact"]) for r in run_command(spec, {}, out, poll_s=0.01).history] == [(7.0, 0.25)]


def test_a_child_forked_by_the_command_ends_with_it(tmp_path):
    script = tmp_path / "fork.py"
    script.write_text("import os, subprocess, sys, time\n"
                      "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
                      "open(os.path.join(sys.argv[1], 'child.pid'), 'w').write(str(child.pid))\n")
    spec = load_command_spec(job(tmp_path, "{python} fork.py {out_dir}"))
    run_command(spec, {}, tmp_path / "run", poll_s=0.01)
    pid = int((tmp_path / "run" / "child.pid").read_text())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.05)
    assert not _alive(pid)


def test_an_interrupted_run_ends_its_command(tmp_path):
    spec = load_command_spec(job(tmp_path, "{python} -c 'import os, sys, time; open(sys.argv[1] + \"/pid\", \"w\")"
                                           ".write(str(os.getpid())); time.sleep(60)' {out_dir}"))
    out = tmp_path / "run"

    def interrupt(metrics, checkpoint):  # never called: the command reports nothing
        raise AssertionError

    previous = signal.signal(signal.SIGALRM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        signal.setitimer(signal.ITIMER_REAL, 1.0)
        with pytest.raises(KeyboardInterrupt):
            run_command(spec, {}, out, interrupt, poll_s=0.05)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert not _alive(int((out / "pid").read_text()))


def test_one_huge_output_line_leaves_a_bounded_message(tmp_path):
    spec = load_command_spec(job(tmp_path, "{python} -c 'print(\"x\" * 5_000_000 + \"END\"); raise SystemExit(3)' "
                                           "{out_dir}"))
    with pytest.raises(CommandFailed) as error:
        run_command(spec, {}, tmp_path / "run", poll_s=0.01)
    message = str(error.value)
    assert len(message) < 3 * TAIL_LINE_CHARS and "characters cut]" in message and message.count("xxEND") == 1
    assert message.endswith("exited with code 3")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/stat")
    return not (status.exists() and status.read_text().split()[2] == "Z")  # a zombie has ended


def test_the_folder_of_a_killed_run_is_removed_by_the_next_run_and_a_live_ones_is_kept(tmp_path, monkeypatch):
    """Issue 20, item 7: a Ctrl-C or a hard kill ends the trial's process before its cleanup runs."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    code = ("import sys, time; sys.path.insert(0, sys.argv[1]); from trainables.command.scratch import run_folder\n"
            "with run_folder() as folder:\n    print(folder, flush=True); time.sleep(60)\n")
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    killed = subprocess.Popen([sys.executable, "-c", code, str(PROJECT_ROOT)], stdout=subprocess.PIPE, text=True,
                              env=env)
    orphan = Path(killed.stdout.readline().strip())
    killed.kill()
    killed.wait()
    assert orphan.is_dir() and orphan.parent == tmp_path  # what a hard kill leaves
    live = tmp_path / f"{PREFIX}{os.getpid()}-live"
    live.mkdir()
    with run_folder() as folder:
        assert not orphan.exists() and live.is_dir() and Path(folder).name.startswith(f"{PREFIX}{os.getpid()}-")
    assert not Path(folder).exists() and live.is_dir()
