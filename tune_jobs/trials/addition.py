"""The addition trainable as a trial: one configuration x one seed, judged by its seed replicates.

Each report carries the trainable's metrics (``trainables.addition.train``), ``success`` (best
validation exact match at or above the run setting ``success_threshold``), the Optuna ``objective``
(success + ``TIE_BREAK`` x best exact match), and ``env/*`` provenance strings. Every
``checkpoint_interval`` steps and at the last step a report carries the checkpoint folder (best.pt,
last.pt); a retried or restored trial continues from its latest checkpoint, bit-identical to a run
never stopped, and reports ``resumed_from_step``. When the run settings name a ``protocol`` (100k,
adderboard, validation), the last report adds ``protocol/exact_match``: the best checkpoint's score
on it. ``max_steps`` stops the run early on its full schedule, and ``stop_after_success`` N ends a
single-seed run once validation exact match has been at or above ``success_threshold`` at N
evaluations in a row (``train.stop_when_solved``), then reports its last values again at each
evaluation step it skipped and at the schedule's last step, marked carried forward (``carried_forward``). The verdict is the seed rule
(``verdicts.seeds``).
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any

from trainables.addition.checkpoint import load_checkpoint
from trainables.addition.config import ModelConfig, TrainConfig
from trainables.addition.evaluate import PROTOCOLS
from trainables.addition.model import count_parameters
from trainables.addition.stacked import DIVERGED_KEY, train_stacked
from trainables.addition.stacked_checkpoint import STACKED_CHECKPOINT
from trainables.addition.train import BEST_CHECKPOINT, LAST_CHECKPOINT, stop_when_solved, train
from trainables.provenance import provenance
from tune_jobs.runtime.ray_session import node_tags
from tune_jobs.runtime.replicates import is_stacked
from tune_jobs.runtime.results import CARRIED, STOPPED_AT
from tune_jobs.runtime.searcher import OBJECTIVE
from tune_jobs.runtime.trial import Trial, TrialContext, checkpoint_interval, short_number
from tune_jobs.runtime.trial_config import config_id, run_settings, seed_of, seeds_of
from tune_jobs.trials.addition_record import addition_params  # issue 19: resolved config
from tune_jobs.verdicts import figures as plots
from tune_jobs.verdicts import seeds

STACKED_TRAIN = {"stream": "counter", "mode": "fast", "compile": False}
"""What a stacked trial (``--seeds-per-trial K`` > 1) trains with: the one data stream that is the same
for a seed alone or stacked (``trainables.addition.counter_stream``), which needs fast mode; the stacked
trainer's own step (a CUDA graph on a GPU, eager on the CPU) instead of the compiled single-seed step."""
TIE_BREAK = 1e-3
"""Weight of the best exact match in the objective: below the 1/n step of a success rate for n <= 1000 seeds."""
RANKS = (("pos_rank", "pos"), ("qkv_rank", "qkv"), ("attn_out_rank", "attn"), ("ffn_rank", "ffn"))
"""Low-rank fields and their short names in a configuration's name."""


def readable_name(config: dict[str, Any]) -> str:
    """A configuration's name, e.g. 'd8-ff28-lr0.015', 'd7-ff14-pos3-qkv3-attn3-ffn3-rms-lr0.02': width,
    FFN size, each low-rank map's rank and the QKV tie mode only where not full rank / untied, 'rms' for
    RMSNorm (absent: LayerNorm), and the peak learning rate (3 significant digits)."""
    model = ModelConfig.from_dict(config["model"])
    parts = [f"d{model.d_model}", f"ff{model.d_ff}", *(f"{short}{getattr(model, key)}" for key, short in RANKS
                                                      if getattr(model, key))]
    if model.tie_qkv != "none":
        parts.append(model.tie_qkv)
    if model.use_rmsnorm:
        parts.append("rms")
    return "-".join([*parts, f"lr{short_number(float(config['train'].get('lr', TrainConfig.lr)))}"])


def objective(best_exact_match: float, threshold: float) -> tuple[float, float]:
    """(success, objective) of a replicate whose best validation exact match is ``best_exact_match``."""
    success = float(best_exact_match >= threshold)
    return success, success + TIE_BREAK * max(best_exact_match, 0.0)


def body(config: dict[str, Any], context: TrialContext) -> None:
    """Train the trial's configuration with its seed (or its stacked ``seeds``), reporting at every
    evaluation (see the module doc)."""
    if is_stacked(config):
        return stacked_body(config, context)
    seed, run = seed_of(config), run_settings(config)
    model_config = ModelConfig.from_dict(config["model"])
    train_config = TrainConfig.from_dict({**config["train"], "seed": seed})
    constant = {"seed": seed, **_constants(config, train_config)}

    last: dict[str, Any] = {}

    def report(metrics: dict[str, float], checkpoint_dir: Path | None) -> None:
        last.clear()
        last.update({**_scored(metrics, checkpoint_dir, run, train_config), **constant})
        context.report(dict(last), checkpoint_dir)

    with tempfile.TemporaryDirectory(prefix="reprotune-") as out_dir:
        resumed_at = context.restore_latest(out_dir, LAST_CHECKPOINT)
        if resumed_at is not None:
            constant["resumed_from_step"] = resumed_at
        evaluations = int(run.get("stop_after_success", 0))
        stop = stop_when_solved(float(run.get("success_threshold", seeds.SUCCESS_THRESHOLD)), evaluations) \
            if evaluations else None
        train(model_config, train_config, out_dir, report, max_steps=run.get("max_steps"),
              checkpoint_interval=checkpoint_interval(config, train_config.eval_interval),
              resume_from=None if resumed_at is None else out_dir, shard=context.shard, prepare=context.prepare,
              stop=stop)
    if stop is not None and last:
        for carried in carried_forward(last, train_config.train_steps, train_config.eval_interval, run.get("max_steps")):
            context.report(carried, None)


def carried_forward(last: dict[str, Any], train_steps: int, eval_interval: int,
                    max_steps: int | None = None) -> list[dict[str, Any]]:
    """The reports a run ended early by ``stop_after_success`` adds after its stop: its last report's
    values carried forward to every evaluation step it skipped (multiples of ``eval_interval``) and to
    its schedule's last step, marked ``val/carried_forward`` 1 and ``val/stopped_at_step`` (the step it
    stopped at), so a chart that averages seeds by step keeps a solved seed in the mean at every later
    step; none when the run reached the last step (or was stopped by ``max_steps`` before it: not
    solved). A seed's success, grokking step and best values are unchanged by them."""
    final, step = train_steps - 1, int(last.get("step", train_steps - 1))
    if step >= final or not last.get("success") or (max_steps is not None and step >= int(max_steps) - 1):
        return []
    steps = [*range((step // eval_interval + 1) * eval_interval, final, eval_interval), final]
    return [{**last, "step": s, CARRIED: 1.0, STOPPED_AT: float(step)} for s in steps]


def stacked_body(config: dict[str, Any], context: TrialContext) -> None:
    """Train the trial config's ``seeds`` as one stacked model (``trainables.addition.stacked``), one
    report per evaluation holding every running seed's metrics under ``seed<seed>/``
    (``runtime.replicates``) and the mean objective over the seeds (a diverged seed counts as a
    failure); the checkpoint is the stacked run's folder (``stacked_last.pt``, ``seed_<seed>/``)."""
    seed_list, run = seeds_of(config), run_settings(config)
    model_config = ModelConfig.from_dict(config["model"])
    train_config = TrainConfig.from_dict({**config["train"], "seed": seed_list[0]})
    constant = _constants(config, train_config)
    scores = dict.fromkeys(seed_list, 0.0)

    def report_evaluation(step: int, entries: list, folder: Path | None) -> None:
        result: dict[str, Any] = {"step": step, **constant}
        for index, metrics, seed_dir in entries:
            seed = seed_list[index]
            scored = _scored(metrics, seed_dir, run, train_config)
            scores[seed] = 0.0 if DIVERGED_KEY in metrics else scored[OBJECTIVE]
            result.update({f"seed{seed}/{k}": v for k, v in scored.items()})
        context.report({**result, OBJECTIVE: sum(scores.values()) / len(scores)}, folder)

    with tempfile.TemporaryDirectory(prefix="reprotune-stacked-") as out_dir:
        resumed_at = context.restore_latest(out_dir, STACKED_CHECKPOINT)
        if resumed_at is not None:
            constant["resumed_from_step"] = resumed_at
        train_stacked(model_config, train_config, seed_list, out_dir, report_evaluation=report_evaluation,
                      max_steps=run.get("max_steps"), checkpoint_interval=checkpoint_interval(config,
                                                                                              train_config.eval_interval),
                      resume_from=None if resumed_at is None else out_dir)


def _constants(config: dict[str, Any], train_config: TrainConfig) -> dict[str, Any]:
    """What every report of a trial carries: its config id, node and provenance."""
    return {"config_id": config_id(config), **node_tags(), **addition_params(config, train_config),  # issue 19
            **{f"env/{k}": v for k, v in provenance(train_config.device, train_config.threads).items()}}


def _scored(metrics: dict[str, float], checkpoint_dir: Path | None, run: Any, train_config: TrainConfig
            ) -> dict[str, Any]:
    """A replicate's metrics with ``success``, the ``objective`` and, at the end, its protocol score."""
    threshold = float(run.get("success_threshold", seeds.SUCCESS_THRESHOLD))
    best, protocol = metrics["val/best_exact_match"], run.get("protocol")
    success, score = objective(best, threshold)
    result = {**metrics, "success": success, OBJECTIVE: score}
    if "test/exact_match" in metrics and protocol:
        result["protocol/exact_match"] = protocol_score(protocol, checkpoint_dir, best, train_config.device,
                                                        train_config.eval_batch_size)
    return result


def protocol_score(protocol: str, checkpoint_dir: str | Path | None, best_val_exact_match: float, device: str = "cpu",
                   batch_size: int = 512) -> float:
    """Exact match of a run's best checkpoint (``best.pt`` in the reference format) on a published
    protocol; for 'validation', the best validation exact match seen during training.

    Raises:
        FileNotFoundError: the folder has no best.pt.
    """
    if protocol == "validation":
        return best_val_exact_match
    loaded = load_checkpoint(Path(checkpoint_dir or "") / BEST_CHECKPOINT, device)
    return PROTOCOLS[protocol](loaded.model, batch_size).exact_match


def measure(result: Any) -> dict[str, Any]:
    """Trial-table columns of one trial from its reported history: ``finished`` (ended without an
    error, having evaluated), ``best_exact_match`` and ``grokking_step`` (first evaluation at or
    above the success threshold) of validation exact match."""
    history = result.metrics_dataframe
    has_history = history is not None and "val/exact_match" in history
    steps = history["step"].tolist() if has_history else []
    ems = history["val/exact_match"].tolist() if has_history else []
    threshold = float(run_settings(result.config).get("success_threshold", seeds.SUCCESS_THRESHOLD))
    return {"finished": result.error is None and bool(steps), "best_exact_match": max(ems) if ems else math.nan,
            "grokking_step": seeds.grokking_step(steps, ems, threshold)}


def addition_measure(result: Any) -> dict[str, Any]:
    """``measure`` and the model's unique ``parameters`` count."""
    return {**measure(result), "parameters": count_parameters(ModelConfig.from_dict(result.config["model"]))}


def figures(verdicts: Any, trials: Any, curves: Any, settings: Any) -> dict[str, Any]:
    """The seed-judged figures (``verdicts.figures``): success rate with its Wilson interval, validation
    exact match against step for every seed, and the grokking step of every seed."""
    threshold = getattr(settings, "success_threshold", seeds.SUCCESS_THRESHOLD)
    return {"success_rate.png": plots.success_rates(verdicts),
            "learning_curves.png": plots.learning_curves(curves, verdicts, "val/exact_match", threshold),
            "grokking_steps.png": plots.grokking_steps(trials, verdicts, plots.horizon_of(curves, trials))}


def verdict_table(trials: Any, settings: Any) -> Any:
    """The seed verdict (``verdicts.seeds.verdict_table``) with the job's threshold and minimum seeds."""
    return seeds.verdict_table(trials, settings.success_threshold, settings.min_seeds)


COLUMNS = ("name", "config_id", "verdict", "successes", "seeds_run", "errored", "wilson_low", "wilson_high",
           "mean_best_exact_match", "grokking_steps")
"""Verdict columns every seed-judged trial prints first."""
SUMMARY = ("name", "verdict", "successes", "success_rate", "errored", "mean_best_exact_match", "grokking_steps")
"""Verdict columns of the parent run's description."""
SUMMARY_METRICS = ("success_rate", "mean_best_exact_match")
"""Verdict columns logged per configuration as metrics."""

ADDITION = Trial(
    name="addition", body=body, measure=addition_measure, verdict_table=verdict_table,
    summary_line=seeds.summary_line, child_tags=seeds.child_tags, best_config=seeds.best_config, data_parallel=True,
    stacked=True, columns=(*COLUMNS, "parameters", "train/lr"), readable_name=readable_name, curve="val/exact_match",
    summary_metrics=SUMMARY_METRICS, summary_columns=(*SUMMARY, "parameters", "config_id"), figures=figures)
"""The addition trainable (``trainables.addition``) as the runtime runs it."""
