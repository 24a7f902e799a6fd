"""Hostile and careless input at every entry point: exit 2 and a message naming the field (or file) and the
value, before Ray starts and before MLflow gets a run. Table-driven over the five jobs' CLIs, the two
trainables' CLIs, job files, claim files, space files and --set; every case runs the real ``main(argv)``."""

from __future__ import annotations

import fcntl
import json
import re
import socket
import sqlite3

import pytest
import ray
import torch

from trainables.addition import __main__ as addition_cli
from trainables.lm import __main__ as lm_cli
from search_spaces import Choice
from trainables.paths import PROJECT_ROOT
from tune_jobs import crosslingual, report, reproduce, sweep_addition, sweep_command, sweep_vocab

JOB = str(PROJECT_ROOT / "command_jobs" / "reference_repo.toml")
GOOD_CLAIM = (PROJECT_ROOT / "claims" / "addition" / "512p-s42.toml").read_text()
COMMAND_JOB = """name = "bad"
workdir = "."
command = "{python} train.py --lr {lr}"
timeout_s = 60
[metrics]
file = "{out_dir}/metrics.csv"
[params]
lr = 0.01
[search]
seeds = [0, 1, 2]
"""

FILES = {
    "space_nan.toml": "seeds = [0, 1, 2]\n[train]\nlr = nan\n",
    "space_not_toml.toml": "seeds = [0, 1\n",
    "space_no_seeds.toml": "[train]\nlr = 0.01\n",
    "space_seed_range.toml": "seeds = { min = 3, max = 12 }\n[train]\nlr = 0.01\n",
    "job_sh_c.toml": COMMAND_JOB.replace('"{python} train.py --lr {lr}"', """'''sh -c "echo '{tag}'" '''""")
                                .replace("lr = 0.01", "tag = 'x'"),
    "job_nan_timeout.toml": COMMAND_JOB.replace("timeout_s = 60", "timeout_s = nan"),
    "job_bad_name.toml": COMMAND_JOB.replace('name = "bad"', 'name = "../../x"'),
    "job_format.toml": COMMAND_JOB.replace("--lr {lr}", "--lr {lr.__class__}"),
    "job_inf_param.toml": COMMAND_JOB.replace("lr = 0.01", "lr = inf"),
    "job_unclosed.toml": COMMAND_JOB.replace("--lr {lr}", "--lr '{lr}"),
    "claim_nan_tolerance.toml": GOOD_CLAIM.replace("tolerance = 0.0001", "tolerance = nan"),
    "claim_inf_value.toml": GOOD_CLAIM.replace("claimed_value = 0.99988", "claimed_value = inf"),
    "claim_bad_name.toml": GOOD_CLAIM.replace('name = "512p-s42"', 'name = "../../x"'),
    "claim_nan_lr.toml": GOOD_CLAIM.replace("[train]\n", "[train]\nlr = nan\n"),
    "claim_bad_step.toml": GOOD_CLAIM.replace("claimed_best_step = 24000", "claimed_best_step = -3"),
    "empty.txt": "",
    # issue 20, round two
    "space_warmup_choice.toml": "seeds = [0]\n[train]\nwarmup_steps = { choice = [5, 10] }\n",
    "space_big_seed.toml": "seeds = [9223372036854775808]\n[train]\nlr = 0.01\n",
    "job_free_text_script.toml": COMMAND_JOB.replace("--lr {lr}", "--lr {lr} -c {note}").replace("lr = 0.01", "lr = 0.01\nnote = 'x'")
                                 .replace('timeout_s = 60', "timeout_s = 60\nfree_text = ['note']"),
    "job_python_x.toml": COMMAND_JOB.replace('"{python} train.py --lr {lr}"', """"{python} -X dev -c 'print({tag})' {out_dir}" """)
                                    .replace("lr = 0.01", "tag = 'x'"),
}

CASES = [
    # -- sweep-addition: settings, --set, space files ------------------------------------------------------
    (sweep_addition.main, ["--space", "nope"], r"search space 'nope' not found"),
    (sweep_addition.main, ["--space", "{tmp}/space_nan.toml"], r"space_nan.toml\), section 'train': lr must be a finite number, got nan"),
    (sweep_addition.main, ["--space", "{tmp}/space_not_toml.toml"], r"space_not_toml.toml: not valid TOML"),
    (sweep_addition.main, ["--space", "{tmp}/space_seed_range.toml", "--seeds-per-trial", "13"],
     r"seeds 3\.\.12 with --seeds-per-trial 13: seed design: group_size=13 is impossible"),
    (sweep_addition.main, ["--seeds", "3..x"], r"seeds '3\.\.x': expected a count \(3\) or a range min\.\.max \(3\.\.12\)"),
    (sweep_addition.main, ["--seeds", "5..3"], r"seeds '5\.\.3': min=5 must not exceed max=3"),
    (sweep_vocab.main, ["--seeds", "2..4"], r"seeds 2\.\.4: sequential seeds decide on a success rate, and the lm trial has none"),
    (sweep_addition.main, ["--space", "{tmp}/space_no_seeds.toml"], r"seeds must be a non-empty list of integers or \{ min = 3, max = 12 \}, got None"),
    (sweep_addition.main, ["--set", "train.lr=-1"], r"--set train.lr=-1: .*lr must be > 0, got -1"),
    (sweep_addition.main, ["--set", "train.lr=nan"], r"--set train.lr=nan: .*lr must be a finite number, got nan"),
    (sweep_addition.main, ["--set", "train.lr=inf"], r"--set train.lr=inf: .*lr must be a finite number, got inf"),
    (sweep_addition.main, ["--set", "train.train_steps=1e400"], r"train_steps must be a finite number, got inf"),
    (sweep_addition.main, ["--set", "model.d_model={randint=[1,inf]}"], r"--set model.d_model: randint needs two finite numbers \[low, high\], got \[1, inf\]"),
    (sweep_addition.main, ["--set", "train.lr={loguniform=[nan,1]}"], r"train.lr: .*(nan|finite)"),
    (sweep_addition.main, ["--set", "model.qkv_rank=16"], r"qkv_rank=16 must be smaller than d_model=7"),
    (sweep_addition.main, ["--set", "bogus"], r"--set 'bogus': expected section.field=value"),
    (sweep_addition.main, ["--set", "nosuch.x=1"], r"--set nosuch.x=1: unknown section 'nosuch'"),
    (sweep_addition.main, ["--threads", "0"], r"threads has an impossible value: 0"),
    (sweep_addition.main, ["--name", "../../x"], r"name '../../x' must be letters, digits"),
    (sweep_addition.main, ["--name", "a;rm -rf x"], r"name 'a;rm -rf x' must be letters, digits"),
    (sweep_addition.main, ["--experiment", "x$(id)"], r"experiment 'x\$\(id\)' must be letters, digits"),
    (sweep_addition.main, ["--gpus-per-trial", "nan"], r"gpus_per_trial must be a finite number, got nan"),
    (sweep_addition.main, ["--gpus-per-trial", "-1"], r"gpus_per_trial has an impossible value: -1"),
    (sweep_addition.main, ["--max-failures", "-2"], r"max_failures has an impossible value: -2"),
    (sweep_addition.main, ["--success-threshold", "1.5"], r"success_threshold has an impossible value: 1.5"),
    (sweep_addition.main, ["--success-threshold", "nan"], r"success_threshold must be a finite number, got nan"),
    (sweep_addition.main, ["--num-configs", "0"], r"num_configs has an impossible value: 0"),
    (sweep_addition.main, ["--stop-after-success", "-1"], r"stop_after_success has an impossible value: -1"),
    (sweep_addition.main, ["--resume"], r"resume: no interrupted job 'addition-.*-\*' to restore in .*storage"),
    (sweep_addition.main, ["--storage-path", "/proc/reprotune"], r"storage_path '/proc/reprotune' is not writable"),
    (sweep_addition.main, ["--mode", "bogus"], r"invalid choice 'bogus' for argument '--mode'"),
    # issue 20: a typo in --set, a searched warmup, seeds that hang or overflow, a bad search seed
    (sweep_addition.main, ["--set", "train.lr=0.01;x"], r"--set train.lr=0.01;x: train.lr is a number, got '0.01;x'"),
    (sweep_addition.main, ["--set", "train.lr={choice=[0.01,\"x\"]}"], r"section .train.: a field that must be a number holds text \(lr=.x.\)"),
    (sweep_addition.main, ["--seeds", "1000000000"], r"seeds '1000000000': max=1000000000 must not exceed 10000"),
    (sweep_addition.main, ["--space", "{tmp}/space_big_seed.toml"], r"seed 9223372036854775808 is not a 64-bit integer"),
    (sweep_addition.main, ["--search-seed", "-1"], r"search_seed has an impossible value: -1"),
    (sweep_addition.main, ["--threads", "4096"], r"threads=4096 x workers=1: a trial needs 4096 CPUs but this machine has"),
    # -- sweep-vocab and ablate-memory: corpora and the LM space -------------------------------------------
    (sweep_vocab.main, ["--corpus", "/nonexistent/corpus.txt"], r"corpus '/nonexistent/corpus.txt': no file or folder at /nonexistent/corpus.txt"),
    (sweep_vocab.main, ["--corpus", "{tmp}/empty.txt"], r"corpus '.*empty.txt' holds no readable UTF-8 text"),
    (sweep_vocab.main, ["--corpus", "{tmp}/binary.dat"], r"corpus '.*binary.dat' holds no readable UTF-8 text .*1 skipped as binary"),
    (sweep_vocab.main, ["--set", "tokenizer.vocab_size=3"], r"--set tokenizer.vocab_size=3: .*vocab_size"),
    (sweep_vocab.main, ["--set", "train.lr=inf"], r"lr must be a finite number, got inf"),
    (sweep_vocab.main, ["--max-bytes", "-1"], r"max_bytes has an impossible value: -1"),
    (sweep_vocab.main, ["--spread-tolerance", "nan"], r"spread_tolerance must be a finite number, got nan"),
    (sweep_vocab.main, ["--space", "ablate_memory", "--grid", "--experiment", "ablate-memory", "{no-corpora}"],
     r"corpus 'en': no file or folder at .*tiny_shakespeare_en.txt \(set REPROTUNE_CORPORA_DIR"),
    # -- sweep-command: job files ----------------------------------------------------------------------------
    (sweep_command.main, ["--job", "{tmp}/nope.toml"], r"job file not found: .*nope.toml"),
    (sweep_command.main, ["--job", "{tmp}/job_sh_c.toml"], r"job_sh_c.toml: job 'bad': placeholder \{tag\} is inside the script of `sh -c`"),
    (sweep_command.main, ["--job", "{tmp}/job_nan_timeout.toml"], r"job_nan_timeout.toml: timeout_s must be a finite number, got nan"),
    (sweep_command.main, ["--job", "{tmp}/job_bad_name.toml"], r"job_bad_name.toml: name '../../x' must be 1-128 letters"),
    (sweep_command.main, ["--job", "{tmp}/job_format.toml"], r"placeholder \{lr.__class__\} must be a plain name"),
    (sweep_command.main, ["--job", "{tmp}/job_inf_param.toml"], r"job_inf_param.toml: params.lr must be a finite number, got inf"),
    (sweep_command.main, ["--job", "{tmp}/job_unclosed.toml"], r"command cannot be split into arguments: No closing quotation"),
    (sweep_command.main, ["--job", JOB, "--workers", "2"], r"workers=2: the command trial has no data-parallel version"),
    (sweep_command.main, ["--job", JOB, "--set", "params.lr=nan"], r"--set params.lr=nan: .*value of \{lr\} must be a finite number, got nan"),
    # issue 20: values safe by construction, whatever the template
    (sweep_command.main, ["--job", JOB, "--set", "params.tie_qkv='x; touch canary'"],
     r"--set params.tie_qkv='x; touch canary': .*value of \{tie_qkv\} must be a number, a boolean or text of letters"),
    (sweep_command.main, ["--job", "{tmp}/job_python_x.toml", "--set", "params.tag='__import__(\"os\")'"],
     r"value of \{tag\} must be a number, a boolean or text of letters, digits and \._-/\+=:,"),
    (sweep_command.main, ["--job", "{tmp}/job_free_text_script.toml"], r"free-text placeholder \{note\} in '\{note\}' could land"),
    # -- reproduce: claim files ------------------------------------------------------------------------------
    (reproduce.main, ["--claim", "nope"], r"claim 'nope' not found"),
    # make report: the claim set, the seed design, the run shape
    (report.main, ["--claims", "nope"], r"claim 'nope' not found"),
    (report.main, ["--seeds", "3..x"], r"seeds '3\.\.x': expected a count \(3\) or a range min\.\.max \(3\.\.12\)"),
    (report.main, ["--seeds-per-trial", "2"], r"seeds_per_trial=2, workers=1: the report trains one seed per trial"),
    (report.main, ["--train-steps", "0"], r"train_steps has an impossible value: 0"),
    (reproduce.main, ["--claim", "{tmp}/claim_nan_tolerance.toml"], r"claim_nan_tolerance.toml: tolerance must be a finite number >= 0, got nan"),
    (reproduce.main, ["--claim", "{tmp}/claim_inf_value.toml"], r"claim_inf_value.toml: claimed_value must be in \[0, 1\], got inf"),
    (reproduce.main, ["--claim", "{tmp}/claim_bad_name.toml"], r"claim_bad_name.toml: name '../../x' must be 1-128 letters"),
    (reproduce.main, ["--claim", "{tmp}/claim_nan_lr.toml"], r"claim_nan_lr.toml: lr must be a finite number, got nan"),
    (reproduce.main, ["--claim", "{tmp}/claim_bad_step.toml"], r"claimed_best_step must be an integer >= 0, got -3"),
    (reproduce.main, ["--claim", "512p-s42", "--seeds", "-1"], r"seeds must be >= 0 and train_steps >= 1, got -1"),
    (reproduce.main, ["--claim", "512p-s42", "--train-steps", "0"], r"got 2 and 0"),
    (reproduce.main, ["--claim", "512p-s42", "--command-job", "{tmp}/job_sh_c.toml"], r"placeholder \{tag\} is inside the script"),
    (reproduce.main, ["--claim", "512p-s42", "--command-job", JOB, "--workers", "2"], r"workers=2: the command trial"),
    # -- crosslingual ------------------------------------------------------------------------------------------
    (crosslingual.main, ["--lr", "0"], r"lr has an impossible value: 0"),
    (crosslingual.main, ["--lr", "nan"], r"lr must be a finite number, got nan"),
    (crosslingual.main, ["--vocab-size", "0"], r"vocab_size has an impossible value: 0"),
    (crosslingual.main, ["{no-corpora}"], r"corpus 'en': no file or folder at .*tiny_shakespeare_en.txt"),
    # -- the addition trainable's CLI --------------------------------------------------------------------------
    (addition_cli.main, ["train", "--train.lr", "inf"], r"lr must be a finite number, got inf"),
    (addition_cli.main, ["train", "--train.lr", "nan"], r"lr must be a finite number, got nan"),
    (addition_cli.main, ["train", "--model.qkv-rank", "16"], r"qkv_rank=16 must be smaller than d_model=7"),
    (addition_cli.main, ["train", "--train.device", "cuda"], r"--train.device='cuda': torch sees no CUDA GPU here"),
    (addition_cli.main, ["train", "--resume"], r"--resume needs --out-dir"),
    (addition_cli.main, ["train", "--out-dir", "{tmp}/run", "--resume"], r"--resume: checkpoint .*run/last.pt cannot be loaded \(PytorchStreamReader"),
    (addition_cli.main, ["evaluate", "--checkpoint", "{tmp}/random.pt"], r"checkpoint .*random.pt cannot be loaded \(refused by weights_only=True"),
    (addition_cli.main, ["evaluate", "--checkpoint", "{tmp}/truncated.pt"], r"checkpoint .*truncated.pt cannot be loaded"),
    (addition_cli.main, ["evaluate", "--checkpoint", "{tmp}/missing.pt"], r"checkpoint not found: .*missing.pt"),
    (addition_cli.main, ["evaluate", "--checkpoint", "512p", "--batch-size", "0"], r"--batch-size must be an integer >= 1, got 0"),
    (addition_cli.main, ["evaluate", "--checkpoint", "512p", "--protocol", "bogus"], r"invalid choice 'bogus' for argument '--protocol'"),
    # -- the language-model trainable's CLI ------------------------------------------------------------------
    (lm_cli.main, ["--train.lr", "inf"], r"lr must be a finite number, got inf"),
    (lm_cli.main, ["--model.d-model", "0"], r"d_model must be a positive integer, got 0"),
    (lm_cli.main, ["--train.device", "cuda:0"], r"--train.device='cuda:0': torch sees no CUDA GPU here"),
    (lm_cli.main, ["--resume"], r"--resume needs --out-dir"),
    (lm_cli.main, ["--out-dir", "{tmp}/lmrun", "--resume"], r"--resume: checkpoint .*lmrun/model.pt cannot be loaded"),
]
JOBS = (sweep_addition.main, sweep_vocab.main, sweep_command.main, reproduce.main, crosslingual.main, report.main)


@pytest.fixture
def files(tmp_path, monkeypatch):
    """The bad files of the table, in tmp_path; REFERENCE_REPO set so the shipped job file loads."""
    for name, text in FILES.items():
        (tmp_path / name).write_text(text)
    (tmp_path / "binary.dat").write_bytes(bytes(range(256)) * 16)
    torch.save({"step": 1, "w": torch.zeros(64)}, tmp_path / "good.pt")
    (tmp_path / "truncated.pt").write_bytes((tmp_path / "good.pt").read_bytes()[:200])
    (tmp_path / "random.pt").write_bytes(bytes(range(256)) * 4)
    for folder, name in (("run", "last.pt"), ("lmrun", "model.pt")):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / name).write_bytes((tmp_path / "truncated.pt").read_bytes())
    monkeypatch.setenv("REFERENCE_REPO", str(tmp_path))
    monkeypatch.setenv("COLUMNS", "250")  # tyro's error box: one message, one line
    return tmp_path


def _exit_status(main, argv):
    try:
        return main(argv)
    except SystemExit as error:  # tyro rejects a value it cannot parse or construct with SystemExit(2)
        return error.code


@pytest.mark.parametrize("main, argv, message", CASES,
                         ids=[f"{m.__module__.split('.')[-1].replace('__main__', 'cli')}:{' '.join(a)[:60]}"
                              for m, a, _ in CASES])
def test_bad_input_is_exit_2_and_a_message_before_ray_and_mlflow(main, argv, message, files, capsys, monkeypatch):
    if "{no-corpora}" in argv:
        argv = [a for a in argv if a != "{no-corpora}"]
        monkeypatch.setenv("REPROTUNE_CORPORA_DIR", str(files / "no-corpora"))
    argv = [a.replace("{tmp}", str(files)) for a in argv]
    if main in JOBS:
        argv += ["--tracking-uri", f"sqlite:///{files / 'mlruns.db'}", "--storage-path", str(files / "storage")] \
            if "--storage-path" not in argv else ["--tracking-uri", f"sqlite:///{files / 'mlruns.db'}"]
    assert _exit_status(main, argv) == 2
    err = capsys.readouterr().err
    if err.startswith("error: "):  # our own messages: one line
        assert err.count("\n") == 1, err
    else:  # tyro's box around the same message
        err = re.sub(r"[│╭╮╰╯─]+", " ", err)
    assert re.search(message, " ".join(err.split())), err
    assert "Traceback" not in err
    assert not ray.is_initialized()
    assert not (files / "mlruns.db").exists()


def test_the_table_covers_every_entry_point_with_at_least_40_cases():
    entry_points = {main for main, _, _ in CASES}
    assert entry_points == {*JOBS, addition_cli.main, lm_cli.main} and len(CASES) >= 40
    assert json.dumps([a for _, a, _ in CASES])  # every argv is plain text


def test_a_searched_warmup_is_shortened_by_a_short_schedule_not_a_traceback(files):
    """Issue 20, item 9: warmup_steps = {choice = [5, 10]} with --train-steps 20 used to raise a TypeError."""
    path = str(files / "space_warmup_choice.toml")
    space = sweep_addition.resolve_space(sweep_addition.SweepArgs(space=path, train_steps=20))
    assert space.sections["train"]["warmup_steps"] == Choice((5, 10)) and space.sections["train"]["train_steps"] == 20
    short = sweep_addition.resolve_space(sweep_addition.SweepArgs(space=path, train_steps=8))
    assert short.sections["train"]["warmup_steps"] == 1  # the largest choice >= the schedule: shrunk to 1/20 of it


def test_a_store_that_is_not_mlflows_is_refused_naming_the_file_and_left_untouched(files, capsys):
    """Issue 20, item 6: an unrelated SQLite database as the tracking store is not migrated into."""
    other = files / "other.db"
    with sqlite3.connect(other) as connection:
        connection.execute("CREATE TABLE users (name TEXT)")
    before = other.read_bytes()
    argv = ["--tracking-uri", f"sqlite:///{other}", "--storage-path", str(files / "storage"), "--seeds", "1"]
    assert sweep_addition.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"MLflow tracking store '{other}' is another program's database (tables users" in err
    assert other.read_bytes() == before and not ray.is_initialized()
    (files / "text.db").write_text("not a database at all, " * 100)
    assert sweep_addition.main(["--tracking-uri", f"sqlite:///{files / 'text.db'}", "--storage-path",
                                str(files / "storage")]) == 2
    assert "is not an SQLite database" in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_a_gpu_share_on_a_machine_without_one_is_refused_before_ray_and_mlflow(files, capsys):
    """Issue 20, item 8: --gpus-per-trial 1 without a GPU was refused only after Ray started (a FAILED parent)."""
    argv = ["--gpus-per-trial", "1", "--tracking-uri", f"sqlite:///{files / 'mlruns.db'}", "--storage-path",
            str(files / "storage")]
    assert sweep_addition.main(argv) == 2
    assert "gpus_per_trial=1 x workers=1: a trial needs 1 GPUs but this machine has 0" in capsys.readouterr().err
    assert not ray.is_initialized() and not (files / "mlruns.db").exists()


@pytest.mark.parametrize("resume", [[], ["--resume"]])
def test_a_name_in_use_by_a_running_job_is_refused_before_ray_and_mlflow(files, capsys, resume):
    """Issue 20, item 4: two jobs of one --name shared a Tune folder; the lock of a running one refuses the second."""
    storage = files / "storage"
    (storage / "twin").mkdir(parents=True)
    (storage / "twin" / "tuner.pkl").write_bytes(b"")  # what a resume looks for (never read: refused first)
    with open(storage / "twin.lock", "a") as held:  # the running job's lock
        fcntl.flock(held, fcntl.LOCK_EX)
        argv = ["--name", "twin", "--tracking-uri", f"sqlite:///{files / 'mlruns.db'}", "--storage-path", str(storage)]
        assert sweep_addition.main(argv + resume) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "name 'twin': another job of that name is running" in err
    assert not ray.is_initialized() and not (files / "mlruns.db").exists()


def test_cuda_without_a_gpu_share_is_refused_before_ray_starts(files, capsys):
    uri = f"sqlite:///{files / 'mlruns.db'}"
    argv = ["--set", "train.device=cuda", "--tracking-uri", uri, "--storage-path", str(files / "storage")]
    assert sweep_addition.main(argv) == 2
    err = capsys.readouterr().err
    assert "error: train.device='cuda' but gpus_per_trial=0: a trial holding no GPU sees none" in err
    assert not ray.is_initialized()


def test_an_unreachable_ray_address_is_refused_before_ray_and_mlflow(files, capsys, monkeypatch):
    """Issue 20, item 8: an unreachable RAY_ADDRESS hung with a parent run created; now a bounded wait, one line."""
    with socket.socket() as closed:  # a port nothing listens on: bound, never listening
        closed.bind(("127.0.0.1", 0))
        monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{closed.getsockname()[1]}")
        assert sweep_addition.main(["--tracking-uri", f"sqlite:///{files / 'mlruns.db'}", "--storage-path",
                                    str(files / "storage")]) == 2
    err = capsys.readouterr().err
    assert "ray_address '127.0.0.1:" in err and "no Ray cluster answers there within 10 s" in err, err
    assert len(err.strip().splitlines()) == 1, err
    assert not ray.is_initialized() and not (files / "mlruns.db").exists()


def test_a_resume_with_changed_settings_is_refused_naming_each_change_before_ray_and_mlflow(files, capsys, monkeypatch):
    """Issue 20, item 4: `--resume --set train.lr=0.5` was ignored in silence, a changed space failed after Ray
    started. The start saves the job's settings; a resume that changes them is refused, one that does not runs."""
    from tune_jobs.runtime import job

    def no_mlflow(*args, **kwargs):
        raise ConnectionError("stopped here: this test runs no job")
    monkeypatch.setattr(job, "sweep_run", no_mlflow)
    storage = files / "storage"
    argv = ["--name", "kept", "--tracking-uri", f"sqlite:///{files / 'mlruns.db'}", "--storage-path", str(storage)]
    assert sweep_addition.main(argv) == 2 and "stopped here" in capsys.readouterr().err  # the start saved its record
    (storage / "kept" / "tuner.pkl").write_bytes(b"")  # what a resume looks for (never read: refused first)
    assert sweep_addition.main(argv + ["--resume", "--set", "train.lr=0.5", "--max-failures", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "resume: job 'kept' started with other settings" in err, err
    assert 'set: [] -> ["train.lr=0.5"]' in err, err
    assert re.search(r"space\.train\.lr: \"LogUniform\(low=[0-9.e-]+, high=[0-9.e-]+\)\" -> 0\.5;", err), err
    assert "max_failures" not in err  # a retry count may change
    assert not ray.is_initialized() and not (files / "mlruns.db").exists()
    assert sweep_addition.main(argv + ["--resume", "--max-failures", "0"]) == 2  # nothing changed: on to MLflow
    assert "stopped here" in capsys.readouterr().err
