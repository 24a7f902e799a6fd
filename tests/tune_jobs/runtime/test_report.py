"""The parent run's description, per-configuration metrics and params say what ran and what came out."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from search_spaces import Choice, LogUniform, SearchSpace
from tune_jobs.runtime.params import run_params, space_values
from tune_jobs.runtime.report import (cell_text, child_metrics, description, markdown_table, metric_name, parent_tags,
                                      readable_rates, view_columns)
from tune_jobs.runtime.settings import SweepSettings
from tune_jobs.trials.addition import ADDITION
from tune_jobs.verdicts.seeds import verdict_table


def verdicts() -> pd.DataFrame:
    rows = [{"name": name, "config_id": cid, "seed": seed, "finished": True, "best_exact_match": best,
             "grokking_step": 300 if best >= 0.99 else None, "parameters": params}
            for name, cid, params, bests in (("d16-ff64-lr0.01", "c1", 5000, (1.0, 1.0, 0.5)),
                                             ("d8-ff28-lr0.015", "c2", 1128, (0.0, 0.1, 0.2)))
            for seed, best in enumerate(bests)]
    return verdict_table(pd.DataFrame(rows))


def test_markdown_table_formats_cells_and_names_its_headings():
    table = pd.DataFrame({"name": ["a|b"], "mean_best_exact_match": [2 / 3], "grokking_steps": [None], "x": [math.nan]})
    assert markdown_table(table, ["name", "mean_best_exact_match", "grokking_steps", "missing"]).splitlines() == [
        "| name | mean best exact match | grokking steps |", "|---|---|---|", "| a\\|b | 0.667 | - |"]
    assert cell_text(math.nan) == "-" and cell_text(12) == "12" and cell_text(0.09699999999999998) == "0.097"
    long = markdown_table(pd.DataFrame({"n": range(5)}), ["n"], max_rows=2)
    assert long.count("\n| ") == 2 and "first 2 of 5 configurations" in long


def test_description_leads_with_the_best_configuration_and_holds_the_table_and_figures():
    table = verdicts()
    text = description(["**sweep-addition** on `smoke`"], ADDITION, table, ["![success rate](get-artifact?x)"])
    lines = text.splitlines()
    assert lines[0] == "Best configuration: **d16-ff64-lr0.01**: SEED-SENSITIVE 2/3 [0.21, 0.94]"
    header = next(line for line in lines if line.startswith("| name"))
    assert header.split(" | ")[:4] == ["| name", "verdict", "successes/seeds", "success rate [95% Wilson]"]
    assert "| d16-ff64-lr0.01 | SEED-SENSITIVE | 2/3 | 0.67 [0.21, 0.94] | 0 | 0.833 | 300,300,- | 5000 | c1 |" in lines
    assert lines.index("**sweep-addition** on `smoke`") > lines.index(header)
    assert "![success rate](get-artifact?x)" in lines
    assert readable_rates(table)["successes"].tolist() == ["2/3", "0/3"]


def test_the_parents_tags_are_keyed_by_name_and_its_row_shows_the_best_configuration():
    table = verdicts()
    assert parent_tags(ADDITION, table) == {
        "verdict.d16-ff64-lr0.01": "SEED-SENSITIVE 2/3 [0.21, 0.94]",
        "verdict.d8-ff28-lr0.015": "NOT REPRODUCED 0/3 [0.00, 0.56]",
        "verdict.best_config": "c1", "best_config_id": "c1", "best_config": "d16-ff64-lr0.01",
        "best_verdict": "SEED-SENSITIVE 2/3 [0.21, 0.94]"}
    twins = parent_tags(ADDITION, table.assign(name="same"))  # two configurations of one name keep a tag each
    assert sorted(k for k in twins if k.startswith("verdict.same")) == ["verdict.same c1", "verdict.same c2"]
    assert twins["best_config"] == "same" and twins["best_config_id"] == "c1"
    # the runs table leaves a column whose name holds a dot empty: the parent's row reads these
    shown = [c for c in view_columns(ADDITION) if c.startswith("tags.")]
    assert shown == ["tags.`outcome`", "tags.`config`", "tags.`best_config`", "tags.`best_verdict`"]
    assert not [c for c in shown if "." in c.split("`")[1]]


def test_each_seed_gets_its_configurations_metrics_at_full_precision():
    table = verdicts()
    assert child_metrics(table.iloc[0], ["success_rate", "absent"]) == {"config/success_rate": 0.6666666667}
    assert child_metrics(table.iloc[1], ["mean_best_exact_match"]) == {"config/mean_best_exact_match": 0.1}
    assert metric_name("bpb_mean", "v512, d64 (fr)") == "bpb_mean/v512_ d64 _fr_"
    assert view_columns(ADDITION)[-3:] == ["metrics.`config/success_rate`", "metrics.`config/mean_best_exact_match`",
                                           "metrics.`val/exact_match`"]


def test_parent_params_show_the_values_that_ran_not_the_command_lines_nones(tmp_path, monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    space = SearchSpace(name="smoke", description="d", seeds=(0, 1, 2),
                        sections={"model": {"d_model": Choice((4, 8))},
                                  "train": {"lr": LogUniform(0.006, 0.03), "train_steps": 300, "mode": "fast"}})
    settings = SweepSettings(tracking_uri=f"sqlite:///{tmp_path / 'm.db'}")
    params = run_params(settings, "job-1", {**space_values(space), "train_steps": 300})
    assert params["job.name"] == "job-1" and params["job.seeds"] == [0, 1, 2]
    assert params["job.tracking_uri"] == f"sqlite:///{tmp_path / 'm.db'}" and params["job.ray_address"] == "local"
    assert params["job.checkpoint_interval"] == "every evaluation" and params["job.num_configs"] == 3
    assert space_values(space)["lr"] == "searched" and space_values(space)["mode"] == "fast"
    assert None not in params.values()
