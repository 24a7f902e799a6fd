"""The command trainable on a stand-in for an external repository (tests/fake_reference_repo)."""


import pytest

from trainables.paths import PROJECT_ROOT
from trainables.command import CommandFailed, CommandSpecError, load_command_spec, render_command, run_command

JOB = PROJECT_ROOT / "command_jobs" / "reference_repo.toml"
FAKE_REPO = PROJECT_ROOT / "tests" / "fake_reference_repo"
PARAMS = {"seed": 3, "d_model": 4, "d_ff": 8, "pos_rank": 0, "qkv_rank": 0, "attn_out_rank": 0, "ffn_rank": 0,
          "tie_qkv": "none", "use_rmsnorm": False, "train_steps": 21, "lr": 0.01, "warmup_steps": 5,
          "eval_interval": 10, "val_size": 32, "test_size": 32, "batch_size": 16}


@pytest.fixture
def spec(monkeypatch):
    monkeypatch.setenv("REFERENCE_REPO", str(FAKE_REPO))
    return load_command_spec(JOB)


def test_render_quotes_values_and_renders_flags(spec, tmp_path):
    argv = render_command(spec, {**PARAMS, "use_rmsnorm": True, "tie_qkv": "a_b"}, tmp_path, "r1")
    assert argv[1:3] == ["-m", "src.train"]
    assert "--use-rmsnorm" in argv and argv[argv.index("--tie-qkv") + 1] == "a_b"
    with pytest.raises(ValueError, match=r"value of \{tie_qkv\} must be a number, a boolean or text of letters"):
        render_command(spec, {**PARAMS, "tie_qkv": "a b"}, tmp_path, "r1")
    assert "--use-rmsnorm" not in render_command(spec, PARAMS, tmp_path, "r1")
    with pytest.raises(KeyError, match="needs a value for seed"):
        render_command(spec, {k: v for k, v in PARAMS.items() if k != "seed"}, tmp_path, "r1")


def test_metrics_stream_in_step_order_and_last_carries_the_checkpoint(spec, tmp_path):
    calls = []
    result = run_command(spec, PARAMS, tmp_path / "run", lambda m, c: calls.append((m, c)), poll_s=0.05)
    assert [m["step"] for m, _ in calls] == [0.0, 10.0, 20.0]
    assert all("val/exact_match" in m and "train/loss" in m and "elapsed_sec" in m for m, _ in calls)
    assert [c for _, c in calls] == [None, None, tmp_path / "run" / "checkpoints"]
    assert (result.checkpoint_dir / "best.pt").is_file()


def test_regex_metrics(spec, tmp_path):
    from dataclasses import replace

    regex = replace(spec, metrics_file=None, metrics_regex=r"step=\s*(?P<step>\d+) loss=(?P<loss>[0-9.]+)",
                    names={"loss": "train/loss"})
    calls = []
    run_command(regex, PARAMS, tmp_path / "run", lambda m, c: calls.append(m), poll_s=0.05)
    assert [m["step"] for m in calls] == [0.0, 10.0, 20.0] and all("train/loss" in m for m in calls)


def test_failure_raises_with_the_output_tail(spec, tmp_path):
    from dataclasses import replace

    crashing = replace(spec, command=spec.command + " --crash-at-step 10")
    calls = []
    with pytest.raises(CommandFailed, match="exited with code 3") as error:
        run_command(crashing, PARAMS, tmp_path / "run", lambda m, c: calls.append(m), poll_s=0.05)
    assert "simulated crash at step 10" in str(error.value)
    assert [m["step"] for m in calls] == [0.0]


def test_timeout_kills_the_command(spec, tmp_path):
    from dataclasses import replace

    hanging = replace(spec, command=spec.command + " --hang", timeout_s=3.0)
    with pytest.raises(CommandFailed, match="timed out after 3 s") as error:
        run_command(hanging, PARAMS, tmp_path / "run", poll_s=0.05)
    lines = str(error.value).splitlines()  # a trial table shows the last line: it keeps the reason
    assert lines[-1] == "--- end of output: command of job 'reference-repo' timed out after 3 s"


def test_bad_job_files(tmp_path, monkeypatch):
    monkeypatch.delenv("REFERENCE_REPO", raising=False)
    with pytest.raises(CommandSpecError, match="names an unset environment variable"):
        load_command_spec(JOB)
    bad = tmp_path / "job.toml"
    bad.write_text('name = "x"\ncommand = "echo {out_dir}"\n[metrics]\nregex = "loss=(?P<loss>.*)"\n')
    with pytest.raises(CommandSpecError, match="metrics.regex has no named group 'step'"):
        load_command_spec(bad)
    bad.write_text('name = "x"\ncommand = "echo"\ncolour = 1\n[metrics]\nfile = "m.csv"\n')
    with pytest.raises(CommandSpecError, match="unknown field\\(s\\) colour"):
        load_command_spec(bad)
