"""Settings every job shares: where and how its trials run and are recorded, and a sweep's budget.

Each job's argument dataclass extends ``RunSettings`` (a sweep's, ``SweepSettings``) and sets its own
default MLflow experiment; ``tyro`` turns the fields and their docstrings into the command line.
Every value is checked on construction, before Ray starts; an error names the field and the value.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional, TypeVar, Union

from search_spaces.seeds import SeedRange, parse_seed_option
from trainables.checks import finite_numbers, require
from trainables.paths import PROJECT_ROOT
from tune_jobs.verdicts.seeds import MIN_SEEDS, SUCCESS_THRESHOLD

SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
"""Job names become folder names under the storage path and MLflow run names: a safe alphabet only."""
SAFE_EXPERIMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._-]{0,127}")
_DEFERRED: ContextVar[bool] = ContextVar("reprotune_checks_deferred", default=False)
Settings = TypeVar("Settings", bound="RunSettings")


@contextmanager
def checks_deferred() -> Iterator[None]:
    """Build settings without their checks inside this block (a parser that would swallow the error);
    ``checked`` then runs them."""
    token = _DEFERRED.set(True)
    try:
        yield
    finally:
        _DEFERRED.reset(token)


def checked(settings: Settings) -> Settings:
    """``settings`` after its checks (``RunSettings.check``).

    Raises:
        ConfigError: names the field and the value.
    """
    settings.check()
    return settings


@dataclass(frozen=True)
class RunSettings:
    """Where and how a job's trials run and are recorded."""

    max_concurrent: int = 0
    """Trials at once; 0 = as many as CPU cores (or GPUs) allow."""
    threads: int = 1
    """Intra-op threads (and CPUs reserved) per trial; the numbers depend on it."""
    gpus_per_trial: float = 0.0
    """GPUs per trial; > 0 trains on CUDA."""
    experiment: str = "reprotune"
    """MLflow experiment name (each job sets its own default)."""
    name: Optional[str] = None
    """Job name (Tune experiment folder and parent run); default <job>-<space>-<UTC time>."""
    tracking_uri: Optional[str] = None
    """MLflow tracking URI; default $MLFLOW_TRACKING_URI or sqlite:///<project>/mlruns.db."""
    storage_path: str = str(PROJECT_ROOT / "ray_results")
    """Where Tune keeps trial results and checkpoints: a folder, or a URI (s3://, gs://); on a
    multi-node cluster a folder every node sees (NFS) or a URI, checked before any trial runs.
    Resuming unpickles state from here: it must be storage you trust."""
    ray_address: Optional[str] = None
    """Ray cluster to join; default $RAY_ADDRESS, else a local Ray started for this job."""
    checkpoint_interval: Optional[int] = None
    """Steps between trial checkpoints (rounded up to an evaluation step); default every evaluation, 0 = at the end."""
    max_failures: int = 2
    """Times a crashed trial is retried from its latest checkpoint before it counts as failed."""
    workers: int = 1
    """Data-parallel Ray Train workers per trial (each with ``threads`` CPUs or ``gpus_per_trial`` GPUs);
    > 1 runs every trial as a TorchTrainer driven from Tune, for trials that support it."""
    seeds_per_trial: int = 1
    """Seeds of one configuration trained in one trial as one stacked model (the addition trainable;
    such trials draw the counter data stream in fast mode); MLflow still gets one run per seed."""
    resume: bool = False
    """Continue the interrupted job ``name`` (default: this job's newest one in storage_path) with Tuner.restore."""

    def __post_init__(self) -> None:
        if not _DEFERRED.get():
            self.check()

    def check(self) -> None:
        """Refuse impossible values (each subclass extends this with its own fields).

        Raises:
            ConfigError: names the field and the value.
        """
        finite_numbers(self)
        for field_name, ok in (("max_concurrent", self.max_concurrent >= 0), ("threads", self.threads >= 1),
                               ("gpus_per_trial", self.gpus_per_trial >= 0), ("max_failures", self.max_failures >= -1),
                               ("workers", self.workers >= 1), ("seeds_per_trial", self.seeds_per_trial >= 1),
                               ("checkpoint_interval", self.checkpoint_interval is None or self.checkpoint_interval >= 0)):
            require(ok, f"{field_name} has an impossible value: {getattr(self, field_name)!r}")
        require(self.name is None or (SAFE_NAME.fullmatch(self.name) is not None and ".." not in self.name),
                f"name {self.name!r} must be letters, digits, '.', '_' or '-' (it names a folder of storage_path)")
        require(SAFE_EXPERIMENT.fullmatch(self.experiment) is not None,
                f"experiment {self.experiment!r} must be letters, digits, spaces, '.', '_' or '-'")

    def storage(self) -> str:
        """``storage_path`` as Tune takes it: a URI unchanged, a folder made absolute."""
        return self.storage_path if is_uri(self.storage_path) else str(Path(self.storage_path).expanduser().resolve())


@dataclass(frozen=True)
class SweepSettings(RunSettings):
    """Budget and search settings common to every sweep job (plus where trials run and are recorded)."""

    num_configs: int = 3
    """Configurations Optuna suggests (each runs on every seed): trials = num_configs x seeds."""
    seeds: Optional[str] = None
    """Seeds per configuration: a count N (the space's first N, extended by consecutive integers; every
    configuration runs all of them) or a range min..max, e.g. 3..12 (sequential seeds: min each, more
    while the configuration's success rate is undecided, at most max; tune_jobs/verdicts/sequential.py)."""
    success_threshold: float = SUCCESS_THRESHOLD
    """Validation exact match at which a seed counts as a success."""
    min_seeds: int = MIN_SEEDS
    """Finished seeds below which a configuration's verdict is INCONCLUSIVE."""
    search_seed: int = 0
    """Seed of Optuna's TPE sampler (study variance, kept apart from the trial seeds)."""
    grid: bool = False
    """Run every combination of the space's choices (each once per seed) instead of Optuna's
    suggestions; num_configs is then ignored."""

    def trial_run_settings(self) -> dict[str, Any]:
        """The ``run`` section every trial of the sweep gets (how it runs, not what it is)."""
        return {"success_threshold": self.success_threshold}

    def check(self) -> None:
        super().check()
        for field_name, ok in (("num_configs", self.num_configs >= 1), ("min_seeds", self.min_seeds >= 1),
                               ("search_seed", 0 <= self.search_seed < 2**32),  # issue 20: checks before Ray
                               ("success_threshold", 0 < self.success_threshold <= 1)):
            require(ok, f"{field_name} has an impossible value: {getattr(self, field_name)!r}")
        self.seed_option()

    def seed_option(self) -> Union[int, SeedRange, None]:
        """``seeds`` parsed: a count, a sequential range, or None (the space's own seeds).

        Raises:
            SearchSpaceError: not a count or a range in 1..MAX_SEEDS, naming the value.
        """
        return None if self.seeds is None else parse_seed_option(str(self.seeds), "seeds")


def is_uri(path: str | Path) -> bool:
    """Whether ``path`` is a URI Tune's pyarrow filesystems open (s3://, gs://, file://...)."""
    return "://" in str(path)
