"""Command jobs under Ray: a claim reproduced through an external command, and a command sweep."""


import pytest
from mlflow.tracking import MlflowClient

from tests.system.test_reproduce import CLAIM
from trainables.paths import PROJECT_ROOT
from tune_jobs.reproduce import ReproduceArgs, run_reproduction
from tune_jobs.sweep_command import SweepCommandArgs, main, run_command_sweep

ROOT = PROJECT_ROOT
FAKE_REPO = ROOT / "tests" / "fake_reference_repo"


@pytest.fixture(scope="module")
def ray_module():
    ray = pytest.importorskip("ray")
    yield ray
    ray.shutdown()


def test_claim_reproduced_through_the_reference_repos_command(ray_module, tmp_path, monkeypatch):
    """The shipped example job (command_jobs/reference_repo.toml) on a stand-in of the reference repo."""
    monkeypatch.setenv("REFERENCE_REPO", str(FAKE_REPO))
    claim = tmp_path / "tiny-claim.toml"
    claim.write_text(CLAIM)
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    args = ReproduceArgs(claim=str(claim), seeds=1, train_steps=20, command_job=ROOT / "command_jobs" / "reference_repo.toml",
                         name="cmd-reproduce", experiment="cmd", tracking_uri=uri, storage_path=tmp_path / "ray")
    verdict, runs = run_reproduction(args)
    assert verdict.verdict == "CLAIM REPRODUCED" and verdict.deterministic
    assert sorted(runs["seed"]) == [5, 5, 6] and runs["finished"].all()
    assert runs["measured"].between(0, 1).all()  # AdderBoard score of the command's own best.pt
    # the stand-in trains with reprotune's trainable, so its last.pt carries every step's loss
    assert all(runs["trace_length"] == 20)
    client = MlflowClient(uri)
    children = [r for r in client.search_runs([client.get_experiment_by_name("cmd").experiment_id])
                if r.data.tags.get("role") == "trial"]
    assert len(children) == 3 and {c.info.status for c in children} == {"FINISHED"}
    assert all(c.data.tags["command_job"] == "reference-repo" for c in children)
    assert all(c.data.params["seed"] in ("5", "6") and "params.seed" not in c.data.params for c in children)


def test_command_sweep_keeps_going_when_a_command_fails(ray_module, tmp_path):
    job = tmp_path / "job.toml"
    job.write_text(f'''name = "fake"
workdir = "{FAKE_REPO}"
command = """{{python}} -m src.train --run-dir {{out_dir}} --seed {{seed}} --d-model 4 --d-ff 8 --lr {{lr}}
  --train-steps 21 --warmup-steps 5 --eval-interval 10 --val-size 32 --test-size 32 --batch-size 16 --crash-if-seed 1"""
timeout_s = 120
[metrics]
file = "{{out_dir}}/metrics.csv"
names = {{ train_loss = "train/loss", val_exact = "val/exact_match", val_token_acc = "val/token_accuracy" }}
[checkpoints]
dir = "{{out_dir}}/checkpoints"
[search]
seeds = [0, 1, 2]
lr = {{ loguniform = [0.005, 0.02] }}
''')
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    args = SweepCommandArgs(job=job, num_configs=1, name="cmd-sweep", tracking_uri=uri, storage_path=tmp_path / "ray")
    table = run_command_sweep(args)
    row = table.iloc[0]
    assert (row["seeds_run"], row["errored"], row["verdict"]) == (2, 1, "INCONCLUSIVE")
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("command-sweep").experiment_id])
    children = {r.data.tags["seed"]: r for r in runs if r.data.tags.get("role") == "trial"}
    assert children["1"].info.status == "FAILED" and "exited with code 3" in children["1"].data.tags["error"]
    assert "simulated crash" in children["1"].data.tags["error"]
    assert children["0"].info.status == children["2"].info.status == "FINISHED"
    history = client.get_metric_history(children["0"].info.run_id, "val/exact_match")
    assert [m.step for m in history] == [0, 10, 20]
    assert "checkpoints/best.pt" in {a.path for a in client.list_artifacts(children["0"].info.run_id, "checkpoints")}


def test_a_sweep_whose_every_trial_fails_exits_1_and_keeps_the_reason(ray_module, tmp_path, capsys):
    job = tmp_path / "job.toml"
    job.write_text(f'''name = "hang"
workdir = "{tmp_path}"
command = "{{python}} -c 'import time; time.sleep(120)' {{seed}}"
timeout_s = 3
[metrics]
regex = 'step=(?P<step>\\\\d+)'
[search]
seeds = [0, 1]
''')
    argv = ["--job", str(job), "--name", "all-fail", "--max-failures", "0", "--tracking-uri",
            f"sqlite:///{tmp_path / 'mlruns.db'}", "--storage-path", str(tmp_path / "ray")]
    assert main(argv) == 1
    captured = capsys.readouterr()
    failed = [line for line in captured.out.splitlines() if line.lstrip().startswith("trial ") and " failed: " in line]
    assert len(failed) == 2 and all(line.endswith("command of job 'hang' timed out after 3 s") for line in failed)
    assert "every trial failed" in captured.err


def test_a_refused_metrics_row_fails_its_trial_once_without_a_retry(ray_module, tmp_path, capsys):
    """Issue 20, item 9: a deterministic bad row was retried max_failures times like a crash."""
    attempts = tmp_path / "attempts"
    job = tmp_path / "job.toml"
    job.write_text(f'''name = "garbage"
workdir = "{tmp_path}"
command = "{{python}} -c 'import sys; open(sys.argv[1], \\"a\\").write(\\"ran\\\\n\\"); print(\\"step=5 acc=7.5\\")' {{attempts}} {{seed}}"
timeout_s = 30
[metrics]
regex = 'step=(?P<step>\\d+) acc=(?P<val_exact_match>\\S+)'
names = {{ val_exact_match = "val/exact_match" }}
[params]
attempts = "{attempts}"
[search]
seeds = [0]
''')
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    argv = ["--job", str(job), "--name", "garbage", "--max-failures", "2", "--tracking-uri", uri,
            "--storage-path", str(tmp_path / "ray")]
    assert main(argv) == 1  # its only trial failed
    assert attempts.read_text() == "ran\n"  # once, with two retries allowed
    assert "output line 1: val_exact_match='7.5' (reported as val/exact_match) must be in [0, 1]" in capsys.readouterr().out
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("command-sweep").experiment_id])
    [child] = [r for r in runs if r.data.tags.get("role") == "trial"]
    assert child.info.status == "FAILED" and "val_exact_match='7.5'" in child.data.tags["error"]


def test_a_command_that_exits_0_without_a_metric_fails_its_trial_not_the_sweep(ray_module, tmp_path, capsys):
    """A result-less trial used to stop Tune's whole run (the objective missing from its results)."""
    job = tmp_path / "job.toml"
    job.write_text(f'''name = "silent"
workdir = "{tmp_path}"
command = "{{python}} -c 'print(0)' {{seed}}"
timeout_s = 30
[metrics]
regex = 'step=(?P<step>\\d+) acc=(?P<val_exact_match>\\S+)'
names = {{ val_exact_match = "val/exact_match" }}
[search]
seeds = [0, 1]
''')
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    argv = ["--job", str(job), "--name", "silent", "--tracking-uri", uri, "--storage-path", str(tmp_path / "ray")]
    assert main(argv) == 1  # both trials failed, each alone; the sweep ended with its verdict
    out = capsys.readouterr().out
    assert out.count("exited 0 without reporting val/exact_match") >= 2
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("command-sweep").experiment_id])
    children = [r for r in runs if r.data.tags.get("role") == "trial"]
    assert len(children) == 2 and {c.info.status for c in children} == {"FAILED"}
