"""The one trial-config shape: the seed in one place, the configuration's identity from its sections alone."""

from tune_jobs.runtime.mlflow_callback import flat_params
from tune_jobs.runtime.trial_config import config_id, run_settings, seed_of, sections

TRAIN = {"train_steps": 10000, "eval_interval": 500, "warmup_steps": 500,
         "curriculum": [[0, 1, 3], [1000, 1, 6], [3000, 1, 10]], "mode": "fast", "threads": 1}
FULL_RANK = {"pos_rank": 0, "qkv_rank": 0, "attn_out_rank": 0, "ffn_rank": 0, "use_rmsnorm": False, "tie_qkv": "none"}


def test_config_ids_of_the_default_sweep_are_those_recorded_before_the_redesign():
    """The 10k-step default sweep (README before 2026-12-01, commit cc6b9ce; now the short space): 28a31614 is the d16/ff64 control, 315e94a4 the record's d8/ff28."""
    control = {"model": {"d_model": 16, "d_ff": 64, **FULL_RANK}, "train": {"lr": 0.01, **TRAIN}}
    learner = {"model": {"d_model": 8, "d_ff": 28, **FULL_RANK}, "train": {"lr": 0.015, **TRAIN}}
    assert config_id(control) == "28a31614" and config_id(learner) == "315e94a4"


def test_the_seed_and_the_run_settings_are_not_part_of_the_identity():
    config = {"model": {"d_model": 8}, "train": {"lr": 0.01}}
    runs = [{**config, "seed": seed, "__trial_index__": seed, "run": {"success_threshold": t, "max_steps": 5}}
            for seed, t in ((0, 0.99), (7, 0.5))]
    assert config_id(runs[0]) == config_id(runs[1]) == config_id(config)
    assert config_id({**config, "train": {"lr": 0.02}}) != config_id(config)
    assert [seed_of(r) for r in runs] == [0, 7] and run_settings(runs[1])["success_threshold"] == 0.5
    assert sections(runs[0]) == config


def test_params_flatten_sections_seed_id_and_run_settings():
    config = {"model": {"d_model": 8}, "seed": 3, "__trial_index__": 1,
              "run": {"protocol": "100k", "ray_train": {"workers": 2}}}
    assert flat_params(config) == {"model.d_model": 8, "seed": 3, "config_id": config_id(config),
                                   "run.protocol": "100k", "run.ray_train.workers": 2}
