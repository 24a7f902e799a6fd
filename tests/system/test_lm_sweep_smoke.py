"""A vocabulary sweep on a local Ray: what lands in MLflow, including a configuration that crashes."""

from __future__ import annotations

import json

import pytest

from tests.mlflow_helpers import job_runs
from search_spaces import Choice, IntRange, SearchSpace
from search_spaces import load_space
from tune_jobs.sweep_vocab import VocabSweepArgs, run_vocab_sweep

SMOKE = load_space("smoke", "lm")
from tune_jobs.verdicts.seeds import INCONCLUSIVE

# One configuration trains; the other trains on the 'meta' device, which fails at the first
# loss.item(): a real crash inside the trial, not a mock.
SPACE = SearchSpace(
    name="test", description="two tiny configurations, one of which crashes", seeds=(0, 1, 2),
    sections={**SMOKE.sections, "tokenizer": {"algorithm": "byte_bpe", "vocab_size": IntRange(300, 400, log=True)},
              "train": {**SMOKE.sections["train"], "device": Choice(("cpu", "meta"))}},
    points_to_evaluate=({"tokenizer": {"vocab_size": 300}, "train": {"lr": 5e-3, "device": "cpu"}},
                        {"tokenizer": {"vocab_size": 400}, "train": {"lr": 5e-3, "device": "meta"}}),
)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    ray = pytest.importorskip("ray")
    root = tmp_path_factory.mktemp("vocab")
    uri = f"sqlite:///{root / 'mlruns.db'}"
    args = VocabSweepArgs(space="smoke", num_configs=2, name="test-vocab", experiment="test", tracking_uri=uri,
                          storage_path=root / "ray_results", max_concurrent=2)
    try:
        table = run_vocab_sweep(args, SPACE)
    finally:
        ray.shutdown()
    client, parent, children = job_runs(uri, "test")
    return table, client, parent, children


def test_verdict_table(sweep):
    table, *_ = sweep
    assert len(table) == 2
    crashed, trained = table[table["errored"] == 3], table[table["errored"] == 0]
    assert len(crashed) == 1 and crashed.iloc[0]["verdict"] == INCONCLUSIVE and crashed.iloc[0]["seeds_run"] == 0
    assert len(trained) == 1 and trained.iloc[0]["seeds_run"] == 3 and trained.iloc[0]["seeds"] == "0,1,2"
    row = trained.iloc[0]
    assert row["verdict"] != INCONCLUSIVE and 0 < row["bpb_mean"] < 16 and row["bpb_spread"] >= 0
    assert row["tokenizer/vocab_size"] == 300 and 0 < row["tok/tokens_per_byte"] < 1
    assert row["name"] == "v300-d32-lr0.005-glu" and list(table.columns[:2]) == ["name", "config_id"]


def test_names_outcomes_figures_and_per_configuration_metrics(sweep):
    table, client, parent, children = sweep
    assert parent.info.run_name == "sweep-vocab test"
    assert sorted(c.info.run_name for c in children) == sorted(
        f"{name} s{seed}" for name in table["name"] for seed in (0, 1, 2))
    outcomes = sorted(c.data.tags["outcome"] for c in children)
    assert outcomes[:3] == ["errored"] * 3 and set(outcomes[3:]) <= {"success", "suspect"}
    figures = {a.path for a in client.list_artifacts(parent.info.run_id, "figures")}
    assert figures == {"figures/bits_per_byte.png", "figures/learning_curves.png"}
    trained = table[table["errored"] == 0].iloc[0]
    for child in children:  # each seed's run carries its configuration's figures; the parent keeps them in verdict.json
        if child.data.tags["config_id"] == trained["config_id"]:
            assert child.data.metrics["config/bpb_mean"] == pytest.approx(trained["bpb_mean"])
    assert not [key for key in parent.data.metrics if key.startswith("bpb_mean/")]
    assert "Best configuration: **v300-d32-lr0.005-glu**" in parent.data.tags["mlflow.note.content"]


def test_parent_run_holds_the_verdicts(sweep):
    table, client, parent, _ = sweep
    assert parent.info.status == "FINISHED"
    for name in table["name"]:
        assert parent.data.tags[f"verdict.{name}"].split()[0] in ("INCONCLUSIVE", "SUSPECT", "CONSISTENT",
                                                                   "SEED-SENSITIVE")
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"verdict.json", "verdict.csv", "trials.json"} <= artifacts
    assert parent.data.params["job.num_configs"] == "2" and parent.data.metrics["perf/job_seconds"] > 0


def test_one_nested_run_per_trial_none_left_running(sweep):
    _, _, parent, children = sweep
    assert len(children) == 6 and {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    assert sorted(c.info.status for c in children) == ["FAILED"] * 3 + ["FINISHED"] * 3
    for run in children:
        if run.info.status == "FAILED":
            assert "meta" in run.data.tags["error"] and run.data.params["train.device"] == "meta"


def test_finished_trials_log_metrics_tables_and_tokenizer(sweep):
    _, client, _, children = sweep
    finished = [c for c in children if c.info.status == "FINISHED"]
    for run in finished:
        run_id = run.info.run_id
        for key in ("val/bits_per_byte", "train/loss", "diag/generalization_gap", "diag/erank/hidden/block0",
                    "diag/gate/blocks.0.ffn.sigmoid/dead", "lr"):
            assert [m.step for m in client.get_metric_history(run_id, key)] == [0, 10, 20, 29], key
        metrics = run.data.metrics
        for key in ("tok/vocab_size", "tok/tokens_per_char", "tok/unk_rate", "tok/vocab_used", "gen/collapse_rate",
                    "gen/repetition_ratio", "audit/causal_leak", "audit/split_overlap", "perf/diagnostics_share"):
            assert key in metrics, key
        assert metrics["audit/causal_leak"] == 0.0 and metrics["tok/unk_rate"] == 0.0
        assert run.data.params["tokenizer.vocab_size"] == "300" and run.data.tags["verdict"]
        assert run.data.tags["node_id"] and run.data.tags["node"]  # which Ray node trained it
        files = {a.path for a in client.list_artifacts(run_id)}
        assert "completions.json" in files
        table = json.loads(open(client.download_artifacts(run_id, "completions.json")).read())
        assert set(table["columns"]) >= {"prompt", "mode", "completion", "repetition_ratio", "collapsed"}
        checkpoint = {a.path for a in client.list_artifacts(run_id, "checkpoints")}
        assert {"checkpoints/tokenizer.json", "checkpoints/model.pt"} <= checkpoint
    # the split and the tokenizer never depend on the seed
    assert len({r.data.tags["data/train_sha256"] for r in finished}) == 1
