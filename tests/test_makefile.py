"""The Makefile never lets a shell or make itself parse a value a user sets: `make -n` and real cheap targets."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
VENV = Path(sys.prefix)
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")


def make(tmp_path: Path, *args: str, dry_run: bool = True) -> subprocess.CompletedProcess:
    """`make` in the repository with this venv (its stamp taken as up to date), run from ``tmp_path``."""
    command = ["make", "-s", "-C", str(ROOT), "-o", f"{VENV}/.installed", f"VENV={VENV}", *(["-n"] if dry_run else []),
               *args]
    return subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=60)


def hostile(canary: Path) -> dict[str, str]:
    """A value per shape that ran a command before: make's $(shell), a shell's ; and $(), a quote that closes."""
    c = str(canary)
    return {"make": f"$(shell touch {c}-make)x", "semicolon": f"5999; touch {c}-semi; exit 3; #",
            "substitution": f"$(touch {c}-subst)", "quote": f"x'; touch {c}-quote; '", "backquote": f"`touch {c}-bq`"}


TARGETS = {
    "sweep-addition": ["NAME", "SPACE", "CONFIGS", "SEEDS", "EXPERIMENT", "TRACKING_URI", "RAY_ADDRESS", "STORAGE",
                       "CLUSTER_ROOT", "MODE", "SET", "ARGS"],
    "sweep-addition-smoke": ["NAME", "CONFIGS"],
    "sweep-command": ["JOB", "NAME", "SEEDS"],
    "reproduce": ["CLAIM", "COMMAND_JOB", "SEEDS"],
    "rerun": ["RUN", "TRACKING_URI", "ARGS"],
    "compare": ["A", "B", "TRACKING_URI", "ARGS"],
    "evaluate": ["CKPT", "PROTOCOL"],
    "mlflow-ui": ["MLFLOW_PORT"],
    "optuna-dashboard": ["OPTUNA_JOURNAL", "OPTUNA_PORT"],
    "cluster-up": ["CLUSTER_ROOT", "CLUSTER_PORT", "MLFLOW_SERVER_HOST", "MLFLOW_SERVER_PORT"],
    "mlflow-server": ["CLUSTER_ROOT", "MLFLOW_SERVER_HOST", "MLFLOW_SERVER_PORT"],
    "mlflow-server-down": ["CLUSTER_ROOT"],
}


@pytest.mark.parametrize("target", TARGETS)
def test_dry_run_recipes_carry_each_hostile_value_single_quoted_and_run_nothing(tmp_path, target):
    canary = tmp_path / "canary"
    for shape, value in hostile(canary).items():
        assignments = [f"{name}={value}" for name in TARGETS[target]]
        done = make(tmp_path, target, *assignments)
        assert done.returncode == 0, (shape, done.stderr)
        quoted = "'" + value.replace("'", "'\\''") + "'"
        if target not in ("sweep-addition-smoke",) or shape != "make":
            assert quoted in done.stdout or all(f"'{word}'" in done.stdout for word in value.split()), (shape, done.stdout)
        assert list(tmp_path.iterdir()) == [], (shape, sorted(p.name for p in tmp_path.iterdir()))
        # the printed recipe itself, run by a shell, touches nothing either (mlflow-server's would start a server)
        if target in ("optuna-dashboard", "mlflow-server-down"):
            subprocess.run(["sh", "-c", done.stdout], cwd=tmp_path, capture_output=True, timeout=30)
            assert list(tmp_path.iterdir()) == [], shape


def test_real_targets_with_hostile_values_create_no_file(tmp_path):
    canary = tmp_path / "canary"
    for shape, value in hostile(canary).items():
        for target, names in (("optuna-dashboard", ["OPTUNA_JOURNAL", "OPTUNA_PORT"]),
                              ("mlflow-server-down", ["CLUSTER_ROOT"])):
            make(tmp_path, target, *[f"{name}={value}" for name in names], dry_run=False)
            assert list(tmp_path.iterdir()) == [], (target, shape)
    done = make(tmp_path, "evaluate", f"CKPT={hostile(canary)['make']}", f"PROTOCOL={hostile(canary)['semicolon']}",
                dry_run=False)
    assert done.returncode == 2 and "invalid choice '5999; touch" in done.stderr  # the value arrived verbatim
    assert list(tmp_path.iterdir()) == []  # make would have expanded a command-line variable to export it


def test_a_value_from_the_environment_is_not_expanded_either(tmp_path):
    canary = tmp_path / "canary"
    done = subprocess.run(["make", "-s", "-C", str(ROOT), "-o", f"{VENV}/.installed", f"VENV={VENV}",
                           "mlflow-server-down"], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "CLUSTER_ROOT": f"$(shell touch {canary})x"})
    assert f"no '$(shell touch {canary})x'/mlflow.pid" not in done.stdout  # echo prints the value, unquoted
    assert f"no $(shell touch {canary})x/mlflow.pid" in done.stdout
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["NAME", "MLFLOW_PORT", "SET", "ARGS"])
def test_a_newline_in_a_variable_is_a_clear_error_before_any_recipe(tmp_path, name):
    done = make(tmp_path, "sweep-addition", f"{name}=a\ntouch {tmp_path}/canary")
    assert done.returncode == 2
    assert f"{name} holds a newline; give each value on one line" in done.stderr
    assert done.stdout == "" and list(tmp_path.iterdir()) == []
