"""An external training command (``trainables.command``) as a trial, judged like the addition trainable.

The trial config's ``command`` section names the job file (``job``) and the thread count given to the
command (``threads``, as OMP/MKL_NUM_THREADS); its ``params`` section fills the command's
placeholders, with the trial's seed as ``{seed}``. Each metrics row the command writes becomes a
report with ``val/best_exact_match``, ``success``, the Optuna ``objective`` and ``env/*`` provenance
(the command repository's commit too). With the run setting ``protocol``, ``protocol/exact_match`` is
the best validation exact match so far ('validation') or, on the last report, the score of the
command's ``best.pt`` (reference checkpoint format) on the 100k / AdderBoard protocol. A failing or
hanging command raises ``CommandFailed``: the trial ends FAILED with the tail of its output (Tune
retries it). A refused metrics row (``BadMetrics``: garbage, or a file outside the run's folder) would be
refused again: the trial reports it as its last result (``TRIAL_ERROR``) and ends FAILED without a retry. The
command runs from scratch when retried (job files have no resume), in a temporary folder removed when
the trial ends, or by the next command trial on the machine if the trial was killed
(``trainables.command.scratch``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, Sequence

from trainables.command import BadMetrics, load_command_spec, run_command
from trainables.command.scratch import run_folder
from trainables.provenance import git_state, provenance
from tune_jobs.runtime.trial import Trial, TrialContext, short_number
from tune_jobs.runtime.trial_config import OBJECTIVE, TRIAL_ERROR, config_id, run_settings, seed_of
from tune_jobs.trials.addition import (COLUMNS, SUMMARY, SUMMARY_METRICS, figures, measure, objective, protocol_score,
                                       verdict_table)
from tune_jobs.trials.command_record import command_params  # issue 19: resolved run
from tune_jobs.verdicts import seeds


def body(config: dict[str, Any], context: TrialContext) -> None:
    """Run the job file with the trial's params and seed (see the module doc)."""
    spec = load_command_spec(config["command"]["job"])
    seed, run = seed_of(config), run_settings(config)
    threads = int(config["command"].get("threads", 1))
    threshold = float(run.get("success_threshold", seeds.SUCCESS_THRESHOLD))
    protocol = run.get("protocol")
    command_commit, command_dirty = git_state(str(spec.workdir))
    constant = {"seed": seed, "config_id": config_id(config),
                **{f"env/{k}": v for k, v in provenance("cpu", threads).items()}, "env/command_job": spec.name,
                "env/command_git_commit": command_commit, "env/command_git_dirty": str(command_dirty).lower(),
                **command_params(config, spec, seed, f"{config_id(config)}-seed{seed}")}  # issue 19: resolved run
    best, last_step = -math.inf, 0.0

    def report(metrics: dict[str, float], checkpoint_dir: Path | None) -> None:
        nonlocal best, last_step
        best, last_step = max(best, metrics.get("val/exact_match", -math.inf)), metrics["step"]
        success, score = objective(best, threshold)
        result = {**metrics, "val/best_exact_match": best, "success": success, OBJECTIVE: score, **constant}
        if protocol == "validation" or (protocol and checkpoint_dir is not None):
            result["protocol/exact_match"] = protocol_score(protocol, checkpoint_dir, best)
        context.report(result, checkpoint_dir)

    try:
        with run_folder() as out_dir:  # also removes the folders of killed trials (trainables.command.scratch)
            run_command(spec, {**config.get("params", {}), "seed": seed}, out_dir, report,
                        run_name=f"{config_id(config)}-seed{seed}",
                        env={"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)})
    except BadMetrics as error:  # deterministic: a retry would refuse the same row (issue 20, item 9)
        context.report({"step": last_step, "success": 0.0, OBJECTIVE: 0.0, **constant, TRIAL_ERROR: str(error)}, None)
        return
    if best == -math.inf:  # exit 0 without a metric: a result-less trial would stop Tune's whole run
        context.report({"step": 0.0, "success": 0.0, OBJECTIVE: 0.0, **constant,
                        TRIAL_ERROR: f"command of job {spec.name!r} exited 0 without reporting val/exact_match "
                                     "(no metrics row matched)"}, None)


def params_name(keys: Sequence[str]) -> Callable[[dict[str, Any]], str]:
    """Names a command configuration by the params ``keys`` (its searched ones), e.g. 'lr0.0123' or
    'd_model8-lr0.02'; by its config id when there are none."""
    def name(config: dict[str, Any]) -> str:
        params = config.get("params", {})
        return "-".join(f"{key}{short_number(params[key])}" for key in keys if key in params) or config_id(config)
    return name


COMMAND = Trial(
    name="command", body=body, measure=measure, verdict_table=verdict_table, summary_line=seeds.summary_line,
    child_tags=seeds.child_tags, best_config=seeds.best_config, data_parallel=False, columns=COLUMNS,
    summary_metrics=SUMMARY_METRICS, summary_columns=(*SUMMARY, "config_id"), figures=figures)
"""An external training command as the runtime runs it (no data-parallel version: refused with workers > 1).
A sweep names its configurations with ``params_name`` of its searched params."""
