"""An external training command as a Ray Tune function trainable (``trainables.command``)."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any

from ray import tune

from trainables.command import load_command_spec, run_command
from trainables.provenance import git_state, provenance
from tune_jobs.addition_trial import protocol_score
from tune_jobs.search import OBJECTIVE, TIE_BREAK, config_id, seed_of


def command_trial(config: dict[str, Any]) -> None:
    """Run the job file ``config['job']`` with ``config['params']`` and the trial's seed.

    The command runs with ``config['threads']`` (default 1) as OMP/MKL thread count. Each metrics row
    it writes becomes a Tune report with ``val/best_exact_match``, ``success``, the Optuna
    ``objective`` and ``env/*`` provenance. With ``config['protocol']``, ``protocol/exact_match`` is
    the best validation exact match so far ('validation') or, on the last report, the score of the
    command's ``best.pt`` (reference checkpoint format) on the 100k / AdderBoard protocol. A failing or hanging command raises
    ``CommandFailed`` (the trial ends FAILED with the tail of its output).
    """
    spec = load_command_spec(config["job"])
    seed = seed_of(config)
    threads = int(config.get("threads", 1))
    threshold = float(config.get("success_threshold", 0.99))
    protocol = config.get("protocol")
    command_commit, command_dirty = git_state(str(spec.workdir))
    constant = {"seed": seed, "config_id": config_id(config),
                **{f"env/{k}": v for k, v in provenance("cpu", threads).items()}, "env/command_job": spec.name,
                "env/command_git_commit": command_commit, "env/command_git_dirty": str(command_dirty).lower()}
    best = -math.inf

    def report(metrics: dict[str, float], checkpoint_dir: Path | None) -> None:
        nonlocal best
        best = max(best, metrics.get("val/exact_match", -math.inf))
        success = float(best >= threshold)
        result = {**metrics, "val/best_exact_match": best, "success": success,
                  OBJECTIVE: success + TIE_BREAK * max(best, 0.0), **constant}
        if protocol == "validation" or (protocol and checkpoint_dir is not None):
            result["protocol/exact_match"] = protocol_score(protocol, checkpoint_dir or "", best)
        checkpoint = tune.Checkpoint.from_directory(str(checkpoint_dir)) if checkpoint_dir else None
        tune.report(result, checkpoint=checkpoint)

    with tempfile.TemporaryDirectory(prefix="reprotune-command-") as out_dir:
        run_command(spec, {**config.get("params", {}), "seed": seed}, out_dir, report,
                    run_name=config.get("run_name", f"{config_id(config)}-seed{seed}"),
                    env={"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)})
